//! Shared by the plugin's binary tests: a node namespace (uplink, default route, an address,
//! forwarding on — so proxy ARP answers the pod's gateway), pod namespaces, and running a CNI
//! plugin binary inside the node namespace with the environment and stdin exactly as
//! containerd (libcni) passes them. Every namespace is an RAII `Netns`, deleted on drop.
#![allow(dead_code)]

pub mod agent;

use std::io::Write;
use std::process::{Command, Stdio};

use felix::netns::Netns;
use serde_json::Value;

/// The `ginger` binary under test.
pub const GINGER: &str = env!("CARGO_BIN_EXE_ginger");
/// Debian's reference plugins.
pub const CNI_PLUGIN_DIR: &str = "/usr/lib/cni";
/// The node's own address (on `lo`), what pods ping.
pub const NODE_ADDR: &str = "10.99.0.1";

/// A node namespace set up like a real node for pod traffic.
pub fn node_namespace() -> Netns {
    let node = Netns::create("gcni-node").expect("node namespace");
    ip(&node, "link add up0 type veth peer name up1");
    ip(&node, "link set up0 up");
    ip(&node, "link set up1 up");
    ip(&node, "route add default dev up0");
    ip(&node, &format!("addr add {NODE_ADDR}/32 dev lo"));
    node.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
        .expect("ip_forward");
    node
}

/// An empty pod namespace (as the runtime creates before calling the plugin).
pub fn pod_namespace() -> Netns {
    Netns::create("gcni-pod").expect("pod namespace")
}

/// `ip -n <ns> args…`, panicking with stderr on failure.
pub fn ip(ns: &Netns, args: &str) {
    let argv: Vec<&str> = args.split_whitespace().collect();
    if let Err(e) = ns.ip(&argv) {
        panic!("ip {args}: {e}");
    }
}

/// `ip -j <args>` inside the namespace, parsed.
pub fn ip_json(ns: &Netns, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = ns.ip(&full).expect("ip -j");
    if out.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&out)
        .expect("ip -j output is JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Link names in the namespace.
pub fn links(ns: &Netns) -> Vec<String> {
    ip_json(ns, &["link", "show"])
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(String::from))
        .collect()
}

/// Main-table routes of one family (`-4`/`-6`) as `ip -j` prints them.
pub fn routes(ns: &Netns, family: &str) -> Vec<Value> {
    ip_json(ns, &[family, "route", "show", "table", "main"])
}

/// The main-table route to `dst` (as `ip` prints it, e.g. `10.0.0.1` or `default`).
pub fn route(ns: &Netns, family: &str, dst: &str) -> Option<Value> {
    routes(ns, family).into_iter().find(|r| r["dst"] == dst)
}

/// Global addresses of `dev` as `addr/prefix`.
pub fn addresses(ns: &Netns, dev: &str) -> Vec<String> {
    ip_json(ns, &["addr", "show", "dev", dev])
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

/// What one plugin execution returned.
#[derive(Debug)]
pub struct Exec {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Exec {
    /// stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}; stderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts success and returns stdout's JSON (`Null` when stdout is empty).
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: {}\n{}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a CNI error with `code` and returns its JSON.
    pub fn err(&self, code: u64) -> Value {
        assert_ne!(self.code, 0, "plugin succeeded: {}", self.stdout);
        let v = self.json();
        assert_eq!(v["code"], code, "{v}\nstderr: {}", self.stderr);
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v
    }
}

/// The attachment parameters of one pod, as the runtime sets them.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub namespace: String,
    pub pod: String,
}

impl Attachment {
    pub fn new(pod_ns: &Netns, pod: &str) -> Attachment {
        Attachment {
            container_id: format!("ctr{}", pod_ns.name().replace('-', "")),
            netns: pod_ns.path().to_string_lossy().into_owned(),
            ifname: "eth0".into(),
            namespace: "default".into(),
            pod: pod.to_string(),
        }
    }

    /// The `CNI_*` variables for `command` (containerd's CNI_ARGS layout).
    pub fn env(&self, command: &str) -> Vec<(String, String)> {
        vec![
            ("CNI_COMMAND".into(), command.into()),
            ("CNI_CONTAINERID".into(), self.container_id.clone()),
            ("CNI_NETNS".into(), self.netns.clone()),
            ("CNI_IFNAME".into(), self.ifname.clone()),
            (
                "CNI_ARGS".into(),
                format!(
                    "K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID=0b5f;IgnoreUnknown=1;\
                     K8S_POD_NAMESPACE={};K8S_POD_NAME={}",
                    self.container_id, self.namespace, self.pod
                ),
            ),
            ("CNI_PATH".into(), CNI_PLUGIN_DIR.into()),
        ]
    }

    /// The handle the plugin gives this attachment on network `net`.
    pub fn handle(&self, net: &str) -> String {
        format!("{net}.{}", self.container_id)
    }

    /// The host link name Calico (and the test agent) derive from the pod.
    pub fn host_ifname(&self) -> String {
        felix::workload::host_ifname(&self.namespace, &self.pod)
    }
}

/// Executes `binary` inside `node` with exactly `env` (plus PATH) and `stdin`.
pub fn exec_in(node: &Netns, binary: &str, env: &[(String, String)], stdin: &str) -> Exec {
    let mut child = Command::new("/usr/sbin/ip")
        .args(["netns", "exec", node.name(), binary])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("plugin output");
    Exec {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Executes `ginger` inside `node`.
pub fn ginger(node: &Netns, env: &[(String, String)], conf: &Value) -> Exec {
    exec_in(node, GINGER, env, &conf.to_string())
}
