//! Pods through the real CNI plugins, as containerd (libcni) runs a conflist: each plugin of the
//! list in order, found by its `type` on `CNI_PATH`, executed inside the node's namespace with
//! a cleared environment plus the `CNI_*` variables, its configuration on stdin (the list's
//! `name` and `cniVersion` injected, the previous plugin's result as `prevResult`).
//!
//! Owns: the node's conflist (the shipped `manifests/cni/10-ginger.conflist` with the node's
//! `run_dir` and a log file in the lab directory), `PodAttachment` (what a runtime tells the
//! plugins about a sandbox) and `add`. Must not: build any link, address or route of a pod
//! itself: the plugins do.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::{LabError, LabResult};

/// The conflist operators install.
pub const SHIPPED_CONFLIST: &str = include_str!("../../../manifests/cni/10-ginger.conflist");
/// Debian's reference plugins (`portmap` and friends).
pub const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";
/// How long one plugin execution may take (the plugin's own agent timeout is 60 s).
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(70);

/// The shipped conflist pointed at one node: its `ginger-node` run directory and a log file.
pub fn node_conflist(run_dir: &Path, log_file: &Path) -> LabResult<Value> {
    let mut list: Value = serde_json::from_str(SHIPPED_CONFLIST)
        .map_err(|e| LabError::io("reading the shipped conflist", std::io::Error::other(e)))?;
    let plugins = list
        .get_mut("plugins")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| {
            LabError::io(
                "reading the shipped conflist",
                std::io::Error::other("no plugins array"),
            )
        })?;
    for p in plugins.iter_mut().filter(|p| p["type"] == "ginger") {
        p["run_dir"] = Value::from(run_dir.display().to_string());
        p["log_file_path"] = Value::from(log_file.display().to_string());
    }
    Ok(list)
}

/// One sandbox as the runtime describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodAttachment {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: PathBuf,
}

impl PodAttachment {
    /// The `CNI_*` variables for `command`, containerd's `CNI_ARGS` layout.
    fn env(&self, command: &str, cni_path: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", command.into()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            ("CNI_NETNS", self.netns.display().to_string()),
            ("CNI_IFNAME", "eth0".into()),
            (
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};\
                     K8S_POD_INFRA_CONTAINER_ID={}",
                    self.namespace, self.name, self.container_id
                ),
            ),
            ("CNI_PATH", cni_path.into()),
        ]
    }
}

/// A container id as containerd makes them (64 hex digits), unique per lab and pod.
pub fn container_id(lab_prefix: &str, pod: &str, salt: u64) -> String {
    // FNV-1a over the names; the salt (the lab's start time) keeps re-created labs apart.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lab_prefix.bytes().chain([0]).chain(pod.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "{h:016x}{salt:016x}{:016x}{:016x}",
        h.rotate_left(17),
        salt ^ h
    )
}

/// Run the list's ADD for `pod` inside node namespace `node_ns`, as libcni does; returns the
/// final result and the pod's first address.
pub fn add(
    node_ns: &str,
    list: &Value,
    cni_path: &[PathBuf],
    pod: &PodAttachment,
) -> Result<(Value, IpAddr), String> {
    let name = list["name"].clone();
    let version = list["cniVersion"].clone();
    let plugins = list["plugins"]
        .as_array()
        .ok_or("the conflist has no plugins")?;
    let path = cni_path
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut prev: Option<Value> = None;
    for plugin in plugins {
        let kind = plugin["type"].as_str().ok_or("a plugin without a type")?;
        let binary = cni_path
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("plugin {kind:?} is not in CNI_PATH {path}"))?;
        let mut conf = plugin.clone();
        conf["name"] = name.clone();
        conf["cniVersion"] = version.clone();
        if let Some(p) = prev.take() {
            conf["prevResult"] = p;
        }
        let (code, stdout, stderr) =
            exec_plugin(node_ns, &binary, &pod.env("ADD", &path), &conf.to_string())?;
        if code != 0 {
            return Err(plugin_error(kind, code, &stdout, &stderr));
        }
        prev = Some(
            serde_json::from_str(stdout.trim())
                .map_err(|e| format!("{kind} printed no JSON result ({e}): {stdout:?}"))?,
        );
    }
    let result = prev.ok_or("the conflist has no plugins")?;
    let ip = first_ip(&result).ok_or_else(|| format!("the result has no address: {result}"))?;
    Ok((result, ip))
}

/// The first address of a CNI result (`ips[0].address`, without its prefix length).
pub fn first_ip(result: &Value) -> Option<IpAddr> {
    let cidr = result["ips"].as_array()?.first()?["address"].as_str()?;
    cidr.split('/').next()?.parse().ok()
}

fn plugin_error(kind: &str, code: i32, stdout: &str, stderr: &str) -> String {
    match serde_json::from_str::<Value>(stdout.trim()) {
        Ok(e) if e.get("code").is_some() => {
            let details = e["details"]
                .as_str()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            format!(
                "{kind}: CNI error {}: {}{details}",
                e["code"],
                e["msg"].as_str().unwrap_or("")
            )
        }
        _ => format!(
            "{kind} exited with {code}: {} {}",
            stdout.trim(),
            stderr.trim()
        ),
    }
}

/// Execute one plugin in `node_ns` with exactly `env` (plus PATH) and `stdin`.
fn exec_plugin(
    node_ns: &str,
    binary: &Path,
    env: &[(&'static str, String)],
    stdin: &str,
) -> Result<(i32, String, String), String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", node_ns])
        .arg(binary)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    let mut input = child.stdin.take().ok_or("no stdin pipe")?;
    input
        .write_all(stdin.as_bytes())
        .map_err(|e| format!("writing the configuration to {}: {e}", binary.display()))?;
    drop(input);
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + PLUGIN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {PLUGIN_TIMEOUT:?}",
                    binary.display()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {}: {e}", binary.display())),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok((status.code().unwrap_or(-1), stdout, stderr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_node_conflist_is_the_shipped_one_pointed_at_the_node() {
        let list = node_conflist(Path::new("/lab/n1/run"), Path::new("/lab/n1/cni.log")).unwrap();
        let shipped: Value = serde_json::from_str(SHIPPED_CONFLIST).unwrap();
        assert_eq!(list["name"], shipped["name"]);
        assert_eq!(list["cniVersion"], shipped["cniVersion"]);
        assert_eq!(list["plugins"][0]["type"], "ginger");
        assert_eq!(list["plugins"][0]["run_dir"], "/lab/n1/run");
        assert_eq!(list["plugins"][0]["log_file_path"], "/lab/n1/cni.log");
        assert_eq!(list["plugins"][0]["ipam"], shipped["plugins"][0]["ipam"]);
        assert_eq!(list["plugins"][1], shipped["plugins"][1]);
    }

    #[test]
    fn container_ids_look_like_containerds_and_differ() {
        let a = container_id("lab", "web-1-node-1", 1);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, container_id("lab", "web-2-node-1", 1));
        assert_ne!(a, container_id("lab", "web-1-node-1", 2));
        assert_ne!(a, container_id("lab2", "web-1-node-1", 1));
    }

    #[test]
    fn results_and_errors_read_as_a_user_needs() {
        let r = json!({"ips": [{"address": "10.244.0.5/32", "interface": 1}]});
        assert_eq!(first_ip(&r), Some("10.244.0.5".parse().unwrap()));
        assert_eq!(first_ip(&json!({"ips": []})), None);
        let e = plugin_error(
            "ginger",
            1,
            r#"{"cniVersion":"1.0.0","code":11,"msg":"is ginger-node running?"}"#,
            "",
        );
        assert_eq!(e, "ginger: CNI error 11: is ginger-node running?");
        let e = plugin_error("portmap", 2, "", "iptables: not found");
        assert!(
            e.contains("portmap exited with 2") && e.contains("iptables"),
            "{e}"
        );
    }

    #[test]
    fn env_is_containerds() {
        let pod = PodAttachment {
            namespace: "default".into(),
            name: "web-1-node-1".into(),
            container_id: "abc".into(),
            netns: "/run/netns/lab-pod-web-1-node-1".into(),
        };
        let env = pod.env("ADD", "/a:/b");
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("CNI_COMMAND").as_deref(), Some("ADD"));
        assert_eq!(
            get("CNI_NETNS").as_deref(),
            Some("/run/netns/lab-pod-web-1-node-1")
        );
        assert_eq!(get("CNI_IFNAME").as_deref(), Some("eth0"));
        assert!(
            get("CNI_ARGS").unwrap().starts_with(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1-node-1;"
            )
        );
        assert_eq!(get("CNI_PATH").as_deref(), Some("/a:/b"));
    }
}
