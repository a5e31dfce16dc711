//! Pods for real: pod sandboxes are network namespaces plumbed by executing CNI plugin binaries
//! (the real `ginger`, Debian's `ptp`, `portmap`, `tuning`) exactly as containerd does, against
//! a node namespace running `ginger-node`.
//!
//! Owns: `PodRef` (the attachment a runtime describes: container id, netns path, `CNI_ARGS`),
//! `CniRunner` (executes a plugin binary from a thread inside the node namespace, as containerd
//! execs it on the host: a cleared environment plus the `CNI_*` variables, the configuration on
//! stdin, a deadline, the wall time of the execution), `ConfList` and `CniRunner::run_list`
//! (libcni's list semantics: ADD in order threading `prevResult`, CHECK in order and DEL in
//! reverse with the cached result, `runtimeConfig` from `capabilities`), `PodNode` (a node
//! namespace with an uplink and its `ginger-node`, queried through the control socket), `Pod`
//! (one sandbox namespace and its ADD result) and the kernel listings tests assert on (`ip -j`).
//! Must not: build any link, address or route of a pod itself (the plugins do), or touch the
//! machine's own namespace (plugins run only on threads that `setns`'d into a lab namespace).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use agent::ctl::client;
use agent::ctl::protocol::{EndpointRow, FibReport, IpLookup, IpamReport};
use agent::ctl::{Reply, Request};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::bins::bin_path;
use crate::error::{Error, Result};
use crate::ginger::GingerNode;
use crate::netns::Netns;
use crate::setns::thread_in_netns;
use crate::wait::wait_until;

/// The network name of the shipped conflist: the first half of every IPAM handle.
pub const NETWORK: &str = "k8s-pod-network";
/// Debian's reference CNI plugins (`ptp`, `host-local`, `portmap`, `tuning`, …).
pub const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";
/// The pod's gateway, answered by proxy ARP on the host link (calico.md §1.2).
pub const GATEWAY_V4: &str = "169.254.1.1";
/// The MAC of every host-side pod link.
pub const HOST_MAC: &str = "ee:ee:ee:ee:ee:ee";
/// The route protocol `ginger-node` writes (its default `--route-protocol`).
pub const ROUTE_PROTOCOL: &str = "97";
/// How long one plugin execution may take before it is killed.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(90);
/// The shipped conflist, as operators install it.
pub const SHIPPED_CONFLIST: &str = include_str!("../../manifests/cni/10-ginger.conflist");
/// The environment a plugin gets besides the `CNI_*` variables.
const PLUGIN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// How long a control-socket query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `PodNode::wait_torn_down` waits for the agent to remove a pod's veth after DEL.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10);

static POD_COUNTER: AtomicU32 = AtomicU32::new(0);

/// One pod attachment as the runtime describes it to a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    /// Kubernetes namespace (`K8S_POD_NAMESPACE`).
    pub namespace: String,
    /// Pod name (`K8S_POD_NAME`).
    pub name: String,
    /// Pod UID (`K8S_POD_UID`).
    pub uid: String,
    /// Sandbox id (`CNI_CONTAINERID`), 64 hex digits as containerd makes them.
    pub container_id: String,
    /// The sandbox's network namespace (`CNI_NETNS`).
    pub netns: PathBuf,
    /// The interface inside the sandbox (`CNI_IFNAME`).
    pub ifname: String,
}

impl PodRef {
    /// A pod `namespace/name` whose sandbox is the namespace at `netns`, with a fresh container
    /// id and UID unique to this process.
    pub fn new(namespace: &str, name: &str, netns: &Path) -> PodRef {
        let n = POD_COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        PodRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: format!("{pid:08x}-{n:04x}-4000-8000-{:012x}", u64::from(n) << 8),
            container_id: format!("{:016x}{:016x}{:032x}", u64::from(pid), u64::from(n), n),
            netns: netns.to_path_buf(),
            ifname: "eth0".into(),
        }
    }

    /// containerd's `CNI_ARGS` for a pod sandbox.
    pub fn cni_args(&self) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};\
             K8S_POD_UID={}",
            self.namespace, self.name, self.container_id, self.uid
        )
    }

    /// The `CNI_*` variables for `command` (`CNI_PATH` = `cni_path`).
    pub fn env(&self, command: &str, cni_path: &str) -> Vec<(String, String)> {
        vec![
            ("CNI_COMMAND".into(), command.into()),
            ("CNI_CONTAINERID".into(), self.container_id.clone()),
            ("CNI_NETNS".into(), self.netns.display().to_string()),
            ("CNI_IFNAME".into(), self.ifname.clone()),
            ("CNI_ARGS".into(), self.cni_args()),
            ("CNI_PATH".into(), cni_path.into()),
        ]
    }

    /// The IPAM handle of this attachment on `network` (`<network>.<container id>`).
    pub fn handle(&self, network: &str) -> String {
        format!("{network}.{}", self.container_id)
    }
}

/// The error JSON a plugin prints (CNI spec §"Error").
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CniErrorReply {
    /// The version the error is printed in.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The spec's (or the plugin's own, ≥ 100) error code.
    pub code: u64,
    /// The message for the user.
    pub msg: String,
    /// More detail, when the plugin has any.
    #[serde(default)]
    pub details: Option<String>,
}

/// What one plugin execution returned.
#[derive(Clone, Debug)]
pub struct CniOutput {
    /// The plugin binary's file name.
    pub plugin: String,
    /// `CNI_COMMAND`.
    pub command: String,
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// stdout (the result or the error JSON).
    pub stdout: String,
    /// stderr (the plugin's logs).
    pub stderr: String,
    /// From just before the fork to the exit.
    pub elapsed: Duration,
}

impl CniOutput {
    /// Whether the plugin exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The result on success (`Null` when stdout is empty, as for DEL); otherwise an error
    /// quoting what the plugin printed.
    pub fn result(&self) -> Result<Value> {
        if !self.success() {
            return Err(self.failure("exit 0"));
        }
        if self.stdout.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(self.stdout.trim()).map_err(|e| {
            Error::parse(
                "cni plugin",
                format!("{} result", self.describe()),
                e.to_string(),
            )
        })
    }

    /// The CNI error of a failed execution; an error if it succeeded or printed no error JSON.
    pub fn error(&self) -> Result<CniErrorReply> {
        if self.success() {
            return Err(self.failure("a CNI error"));
        }
        serde_json::from_str(self.stdout.trim()).map_err(|e| {
            Error::parse(
                "cni plugin",
                format!("{} error JSON", self.describe()),
                format!("{e}: stdout {:?}, stderr {:?}", self.stdout, self.stderr),
            )
        })
    }

    /// `plugin COMMAND`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.plugin, self.command)
    }

    fn failure(&self, expected: &str) -> Error {
        Error::Command {
            cmd: self.describe(),
            status: format!("exit {:?}, expected {expected}", self.code),
            output: format!(
                "stdout: {} stderr: {}",
                self.stdout.trim(),
                self.stderr.trim()
            ),
        }
    }
}

/// A network configuration list and where each plugin type's binary is.
#[derive(Clone, Debug)]
pub struct ConfList {
    /// The list as the runtime reads it from `/etc/cni/net.d`.
    pub json: Value,
    /// Binary per plugin `type`; other types are looked up in `DEBIAN_CNI_DIR`.
    pub binaries: BTreeMap<String, PathBuf>,
    /// The runtime's capability arguments (e.g. `portMappings`), handed to plugins that
    /// declare the capability.
    pub capability_args: Value,
}

impl ConfList {
    /// A list with no capability arguments.
    pub fn new(json: Value, binaries: BTreeMap<String, PathBuf>) -> ConfList {
        ConfList {
            json,
            binaries,
            capability_args: json!({}),
        }
    }

    /// The plugin entries, in list order.
    pub fn plugins(&self) -> Vec<Value> {
        self.json["plugins"].as_array().cloned().unwrap_or_default()
    }

    /// libcni's `buildOneConfig`: the entry with the list's `name` and `cniVersion`, the
    /// previous result and the `runtimeConfig` of the capabilities it declares.
    pub fn plugin_config(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf: Map<String, Value> = plugin.as_object().cloned().unwrap_or_default();
        conf.insert("name".into(), self.json["name"].clone());
        conf.insert("cniVersion".into(), self.json["cniVersion"].clone());
        if let Some(p) = prev {
            conf.insert("prevResult".into(), p.clone());
        }
        let mut runtime = Map::new();
        if let Some(caps) = plugin["capabilities"].as_object() {
            for (cap, on) in caps {
                if on.as_bool() == Some(true)
                    && let Some(arg) = self.capability_args.get(cap)
                {
                    runtime.insert(cap.clone(), arg.clone());
                }
            }
        }
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        Value::Object(conf)
    }

    /// The binary for a plugin entry.
    pub fn binary(&self, plugin: &Value) -> PathBuf {
        let kind = plugin["type"].as_str().unwrap_or_default();
        self.binaries
            .get(kind)
            .cloned()
            .unwrap_or_else(|| Path::new(DEBIAN_CNI_DIR).join(kind))
    }
}

/// One run of a list: each plugin's execution in order, and the final result of an ADD.
#[derive(Clone, Debug, Default)]
pub struct ListRun {
    /// Executions in the order they ran; the last one failed if any did (libcni stops there).
    pub steps: Vec<CniOutput>,
    /// ADD: the last plugin's result, which the runtime caches for CHECK and DEL.
    pub result: Option<Value>,
}

impl ListRun {
    /// The failed execution, if any.
    pub fn failed(&self) -> Option<&CniOutput> {
        self.steps.iter().find(|s| !s.success())
    }

    /// Ok when every plugin succeeded, else an error quoting the one that failed.
    pub fn check(&self) -> Result<()> {
        match self.failed() {
            Some(step) => step.result().map(|_| ()),
            None => Ok(()),
        }
    }
}

/// Executes CNI plugin binaries inside a node namespace, as containerd does on a host.
#[derive(Clone, Copy, Debug)]
pub struct CniRunner<'a> {
    node: &'a Netns,
}

impl<'a> CniRunner<'a> {
    /// A runner for plugins in `node`, with `CNI_PATH` = Debian's plugin directory.
    pub fn new(node: &'a Netns) -> CniRunner<'a> {
        CniRunner { node }
    }

    /// The node namespace the plugins run in.
    pub fn node(&self) -> &'a Netns {
        self.node
    }

    /// Execute `binary` with exactly `env` (plus `PATH`) and `stdin`, from a thread inside the
    /// node namespace (the child inherits it; no `ip netns exec` in between). A plugin that
    /// overruns the deadline is killed and reported as an error.
    pub fn exec(&self, binary: &Path, env: &[(String, String)], stdin: &[u8]) -> Result<CniOutput> {
        let command = env
            .iter()
            .find(|(k, _)| k == "CNI_COMMAND")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let plugin = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", PLUGIN_PATH)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let timeout = PLUGIN_TIMEOUT;
        let line = format!("{} {command}", binary.display());
        let (code, stdout, stderr, elapsed) = thread_in_netns(self.node, move || {
            run_with_stdin(cmd, stdin, timeout, &line)
        })??;
        Ok(CniOutput {
            plugin,
            command,
            code,
            stdout,
            stderr,
            elapsed,
        })
    }

    /// Execute one plugin for `pod` with `conf` on stdin.
    pub fn plugin(
        &self,
        binary: &Path,
        command: &str,
        pod: &PodRef,
        conf: &Value,
    ) -> Result<CniOutput> {
        self.exec(
            binary,
            &pod.env(command, DEBIAN_CNI_DIR),
            conf.to_string().as_bytes(),
        )
    }

    /// Run `command` over `list` as libcni does: ADD in order, each result the next plugin's
    /// `prevResult`; CHECK in order and DEL in reverse order, each with `cached` (the ADD's
    /// final result). Stops at the first failure, as libcni returns it.
    pub fn run_list(
        &self,
        list: &ConfList,
        command: &str,
        pod: &PodRef,
        cached: Option<&Value>,
    ) -> Result<ListRun> {
        let mut plugins = list.plugins();
        if command == "DEL" {
            plugins.reverse();
        }
        let mut run = ListRun {
            steps: Vec::new(),
            result: None,
        };
        let mut prev = cached.cloned();
        for plugin in &plugins {
            let conf = list.plugin_config(plugin, prev.as_ref());
            let out = self.plugin(&list.binary(plugin), command, pod, &conf)?;
            let ok = out.success();
            if ok && command == "ADD" {
                prev = Some(out.result()?);
            }
            run.steps.push(out);
            if !ok {
                return Ok(run);
            }
        }
        if command == "ADD" {
            run.result = prev;
        }
        Ok(run)
    }
}

/// Spawn `cmd`, feed it `stdin`, collect its output, and time it; kill it after `timeout`.
/// The child is reaped only after the watchdog has stood down, so the watchdog can never
/// signal a reused pid.
fn run_with_stdin(
    mut cmd: Command,
    stdin: &[u8],
    timeout: Duration,
    line: &str,
) -> Result<(Option<i32>, String, String, Duration)> {
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        cmd: line.to_string(),
        source,
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    let (stand_down, until) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        let overran = until.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout);
        if overran {
            let _ = kill(pid, Signal::SIGKILL);
        }
        overran
    });
    let stdout = read_pipe(child.stdout.take());
    let stderr = read_pipe(child.stderr.take());
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading (VERSION, an early error) closes the pipe.
        let _ = input.write_all(stdin);
    }
    // Wait for the exit without reaping (WNOWAIT): the pid stays ours until `wait` below.
    let exited = loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(nix::Error::EINTR) => continue,
            other => break other,
        }
    };
    let elapsed = start.elapsed();
    let _ = stand_down.send(());
    let overran = watchdog.join().unwrap_or(false);
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("reaping `{line}`"), e))?;
    exited.map_err(|e| Error::sys(format!("waiting for `{line}`"), e))?;
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if overran {
        return Err(Error::Command {
            cmd: line.to_string(),
            status: format!("timed out after {timeout:?}, killed"),
            output: stderr.trim().to_string(),
        });
    }
    Ok((status.code(), stdout, stderr, elapsed))
}

fn read_pipe<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A pod sandbox: its own network namespace, the attachment the runtime describes, and the
/// result of its ADD once it ran.
#[derive(Debug)]
pub struct Pod {
    ns: Netns,
    reference: PodRef,
    result: Option<Value>,
}

impl Pod {
    /// A fresh sandbox namespace for pod `namespace/name` (nothing in it but `lo`).
    pub fn create(namespace: &str, name: &str) -> Result<Pod> {
        let ns = Netns::new("pod")?;
        let reference = PodRef::new(namespace, name, &ns.path());
        Ok(Pod {
            ns,
            reference,
            result: None,
        })
    }

    /// The sandbox namespace.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The attachment a runtime would describe.
    pub fn reference(&self) -> &PodRef {
        &self.reference
    }

    /// The cached ADD result.
    pub fn result(&self) -> Option<&Value> {
        self.result.as_ref()
    }

    /// Cache the ADD result (the runtime passes it to CHECK and DEL).
    pub fn set_result(&mut self, result: Option<Value>) {
        self.result = result;
    }

    /// The addresses of the cached result (`ips[].address`, without the prefix length).
    pub fn addresses(&self) -> Vec<IpAddr> {
        result_addresses(self.result.as_ref())
    }

    /// The host-side link of the cached result (Ginger's: the interface without `sandbox`).
    pub fn host_link(&self) -> Option<String> {
        self.result.as_ref().and_then(|r| {
            r["interfaces"]
                .as_array()?
                .iter()
                .find(|i| i.get("sandbox").is_none())
                .and_then(|i| i["name"].as_str().map(str::to_string))
        })
    }
}

/// The addresses of a CNI result's `ips[]`.
pub fn result_addresses(result: Option<&Value>) -> Vec<IpAddr> {
    result
        .and_then(|r| r["ips"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect()
}

/// A cluster file for pod tests: the default BGPConfiguration (`mesh` on or off), one Node per
/// `(name, address/len)` and one IPPool per `(name, cidr, blockSize)`.
pub fn pod_cluster(nodes: &[(&str, &str)], pools: &[(&str, &str, u8)], mesh: bool) -> String {
    let mut docs = vec![format!(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
         spec: {{asNumber: 64512, nodeToNodeMeshEnabled: {mesh}}}\n"
    )];
    for (name, address) in nodes {
        docs.push(format!(
            "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {{name: {name}}}\n\
             spec: {{bgp: {{ipv4Address: {address}}}}}\n"
        ));
    }
    for (name, cidr, block) in pools {
        docs.push(format!(
            "apiVersion: ginger.dev/v1\nkind: IPPool\nmetadata: {{name: {name}}}\n\
             spec: {{cidr: {cidr}, blockSize: {block}}}\n"
        ));
    }
    docs.join("---\n")
}

/// A node namespace with an uplink as a Calico node has one: `eth0` (a veth whose peer `up0`
/// stays in the same namespace, so nothing leaves the lab) with `address` (`A.B.C.D/len`) and
/// the default route, so proxy ARP answers the pods' gateway.
pub fn uplinked_node(label: &str, address: &str) -> Result<Netns> {
    let ns = Netns::new(label)?;
    ns.ip(&[
        "link", "add", "eth0", "mtu", "1500", "type", "veth", "peer", "name", "up0",
    ])?;
    ns.ip(&["addr", "add", address, "dev", "eth0"])?;
    ns.ip(&["link", "set", "up0", "up"])?;
    ns.ip(&["link", "set", "eth0", "up"])?;
    ns.ip(&["route", "add", "default", "dev", "eth0"])?;
    Ok(ns)
}

/// The binaries a pod lab runs.
#[derive(Clone, Debug)]
pub struct PodBinaries {
    /// `ginger-node`.
    pub node: PathBuf,
    /// The `ginger` CNI plugin.
    pub plugin: PathBuf,
}

impl PodBinaries {
    /// The workspace's builds next to the running executable (`target/<profile>/`).
    pub fn built() -> Result<PodBinaries> {
        Ok(PodBinaries {
            node: bin_path("ginger-node")?,
            plugin: bin_path("ginger")?,
        })
    }

    /// The release binaries a benchmark runs: from `bin_dir` when given, else `built()`; an
    /// error that names the build command when either is missing.
    pub fn for_bench(bin_dir: Option<&Path>) -> std::result::Result<PodBinaries, String> {
        const BUILD: &str = "cargo build --release -p agent -p cni -p e2e --bins";
        let binaries = match bin_dir {
            Some(dir) => PodBinaries {
                node: dir.join("ginger-node"),
                plugin: dir.join("ginger"),
            },
            None => PodBinaries::built()
                .map_err(|e| format!("build the release binaries first: {BUILD} ({e})"))?,
        };
        for path in [&binaries.node, &binaries.plugin] {
            if !path.is_file() {
                return Err(format!("{} is missing: {BUILD}", path.display()));
            }
        }
        Ok(binaries)
    }
}

/// A node namespace running `ginger-node`, and the `ginger` plugin configured for it.
pub struct PodNode {
    ns: Netns,
    agent: Option<GingerNode>,
    dir: PathBuf,
    cluster: PathBuf,
    node: String,
    extra: Vec<String>,
    binaries: PodBinaries,
    starts: usize,
}

impl PodNode {
    /// Start `ginger-node --node-name node` in `ns` (files under `dir/ginger-<node>/`, `extra`
    /// appended to its command line) and wait until both of its sockets answer.
    pub fn start(
        ns: Netns,
        dir: &Path,
        binaries: PodBinaries,
        cluster: &Path,
        node: &str,
        extra: &[&str],
    ) -> Result<PodNode> {
        let mut n = PodNode {
            ns,
            agent: None,
            dir: dir.to_path_buf(),
            cluster: cluster.to_path_buf(),
            node: node.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            binaries,
            starts: 0,
        };
        n.launch()?;
        Ok(n)
    }

    fn launch(&mut self) -> Result<()> {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let agent = GingerNode::start_binary(
            &self.ns,
            &self.dir,
            &self.binaries.node,
            &self.cluster,
            &self.node,
            &extra,
        )?;
        self.agent = Some(agent);
        self.starts += 1;
        self.wait_serving(Duration::from_secs(20))
    }

    /// The node namespace.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The node name.
    pub fn name(&self) -> &str {
        &self.node
    }

    /// The running agent (an error once it was stopped).
    pub fn agent(&self) -> Result<&GingerNode> {
        self.agent.as_ref().ok_or_else(|| Error::Rejected {
            daemon: "ginger-node",
            command: "query".into(),
            output: format!("ginger-node {} is stopped", self.node),
        })
    }

    /// The agent's run directory (`cni.sock`, `ginger.sock`).
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join(format!("ginger-{}", self.node)).join("run")
    }

    /// Where the plugin logs (its `log_file_path`).
    pub fn plugin_log(&self) -> PathBuf {
        self.dir.join(format!("cni-{}.log", self.node))
    }

    /// The plugin binary.
    pub fn plugin_binary(&self) -> &Path {
        &self.binaries.plugin
    }

    /// The agent's logs (every start so far).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..self.starts {
            let saved = self.saved_log(n);
            out.push_str(&std::fs::read_to_string(&saved).unwrap_or_default());
        }
        if let Some(a) = &self.agent {
            out.push_str(&a.logs());
        }
        out
    }

    fn saved_log(&self, start: usize) -> PathBuf {
        self.dir
            .join(format!("ginger-{}", self.node))
            .join(format!("run{start}.log"))
    }

    /// Wait until the control socket answers and `cni.sock` exists.
    pub fn wait_serving(&self, timeout: Duration) -> Result<()> {
        let cni_sock = agent::cni_server::socket_path(&self.run_dir());
        wait_until(
            timeout,
            &format!("ginger-node {} to serve", self.node),
            || {
                let agent = self.agent()?;
                if !agent.process().is_running() {
                    return Err(Error::Rejected {
                        daemon: "ginger-node",
                        command: "start".into(),
                        output: format!("exited: {}", agent.logs()),
                    });
                }
                self.ctl(Request::NodeStatus)?;
                if cni_sock.exists() {
                    Ok(())
                } else {
                    Err(Error::io(
                        format!("{} not there yet", cni_sock.display()),
                        std::io::ErrorKind::NotFound.into(),
                    ))
                }
            },
        )
    }

    /// Stop the agent with `signal` and wait for it to exit (SIGKILL: no clean-up at all).
    pub fn stop(&mut self, signal: Signal) -> Result<()> {
        if let Some(agent) = self.agent.take() {
            agent.process().signal(signal)?;
            agent.process().wait_exit(Duration::from_secs(20))?;
            let saved = self.saved_log(self.starts);
            let _ = std::fs::write(&saved, agent.logs());
        }
        Ok(())
    }

    /// Start the agent again with the same command line (after `stop`).
    pub fn restart(&mut self) -> Result<()> {
        if self.agent.is_some() {
            self.stop(Signal::SIGTERM)?;
        }
        self.launch()
    }

    /// The `ginger` entry of the shipped conflist, pointed at this node's run directory and a
    /// log file in the test directory.
    pub fn plugin_entry(&self) -> Result<Value> {
        let list = self.shipped_list()?;
        Ok(list["plugins"][0].clone())
    }

    fn shipped_list(&self) -> Result<Value> {
        let mut list: Value = serde_json::from_str(SHIPPED_CONFLIST)
            .map_err(|e| Error::parse("manifests", "10-ginger.conflist", e.to_string()))?;
        let entry = &mut list["plugins"][0];
        entry["run_dir"] = json!(self.run_dir());
        entry["log_file_path"] = json!(self.plugin_log());
        Ok(list)
    }

    /// The shipped list (`ginger`, then `portmap`) with `more` plugin entries appended.
    pub fn shipped_conflist(&self, more: &[Value]) -> Result<ConfList> {
        let mut list = self.shipped_list()?;
        if let Some(plugins) = list["plugins"].as_array_mut() {
            plugins.extend(more.iter().cloned());
        }
        Ok(self.with_binaries(list))
    }

    /// A list of the shipped `ginger` entry alone: what a runtime runs for a cluster without
    /// `portmap`.
    pub fn ginger_only(&self) -> Result<ConfList> {
        let mut list = self.shipped_list()?;
        list["plugins"] = Value::Array(vec![list["plugins"][0].clone()]);
        Ok(self.with_binaries(list))
    }

    fn with_binaries(&self, list: Value) -> ConfList {
        ConfList::new(
            list,
            BTreeMap::from([("ginger".to_string(), self.binaries.plugin.clone())]),
        )
    }

    /// A runner for plugins in this node.
    pub fn cni(&self) -> CniRunner<'_> {
        CniRunner::new(&self.ns)
    }

    /// ADD through the `ginger`-only list; the result is cached in `pod` on success.
    pub fn add(&self, pod: &mut Pod) -> Result<CniOutput> {
        let list = self.ginger_only()?;
        let conf = list.plugin_config(&list.plugins()[0], None);
        let out = self
            .cni()
            .plugin(&self.binaries.plugin, "ADD", pod.reference(), &conf)?;
        if out.success() {
            pod.set_result(Some(out.result()?));
        }
        Ok(out)
    }

    /// DEL through the `ginger`-only list with the cached result as `prevResult` (libcni).
    /// When DEL succeeds, this also waits until the agent has finished the teardown DEL handed
    /// it (`wait_torn_down`), so callers can list the kernel and IPAM right away.
    pub fn del(&self, pod: &Pod) -> Result<CniOutput> {
        let out = self.del_only(pod)?;
        if out.success() {
            self.wait_torn_down(pod.reference())?;
        }
        Ok(out)
    }

    /// DEL only: returns when the plugin has exited (the agent may still be removing the veth).
    pub fn del_only(&self, pod: &Pod) -> Result<CniOutput> {
        let list = self.ginger_only()?;
        let conf = list.plugin_config(&list.plugins()[0], pod.result());
        self.cni()
            .plugin(&self.binaries.plugin, "DEL", pod.reference(), &conf)
    }

    /// Waits (up to 10 s) until `gingerctl get endpoints` no longer lists the pod: the agent
    /// has removed its veth and released its addresses.
    pub fn wait_torn_down(&self, pod: &PodRef) -> Result<()> {
        wait_until(
            TEARDOWN_TIMEOUT,
            "the agent to finish the pod's teardown",
            || {
                let rows = self.endpoints().map_err(|e| e.to_string())?;
                match rows.iter().find(|r| r.container_id == pod.container_id) {
                    Some(r) => Err(format!("still listed (terminating: {})", r.terminating)),
                    None => Ok(()),
                }
            },
        )
    }

    /// Ask the agent over its control socket (what `gingerctl` does).
    pub fn ctl(&self, request: Request) -> Result<Reply> {
        let socket = agent::ctl::socket_path(&self.run_dir());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting a runtime for a control query", e))?;
        runtime
            .block_on(client::request(&socket, &request, QUERY_TIMEOUT))
            .map_err(|e| Error::Rejected {
                daemon: "ginger-node",
                command: format!("{request:?}"),
                output: e.to_string(),
            })
    }

    /// `gingerctl get endpoints` data.
    pub fn endpoints(&self) -> Result<Vec<EndpointRow>> {
        match self.ctl(Request::GetEndpoints)? {
            Reply::Endpoints(e) => Ok(e),
            other => Err(unexpected(other)),
        }
    }

    /// `gingerctl ipam show` data.
    pub fn ipam(&self) -> Result<IpamReport> {
        match self.ctl(Request::IpamShow)? {
            Reply::Ipam(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// `gingerctl ipam show --ip` data.
    pub fn ipam_ip(&self, ip: IpAddr) -> Result<IpLookup> {
        match self.ctl(Request::IpamShowIp { ip })? {
            Reply::IpamIp(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// `gingerctl route show --fib` data.
    pub fn fib(&self) -> Result<FibReport> {
        match self.ctl(Request::RouteShowFib)? {
            Reply::Fib(f) => Ok(f),
            other => Err(unexpected(other)),
        }
    }

    /// Addresses in use in every pool, summed (`ipam show`'s IPS IN USE).
    pub fn addresses_in_use(&self) -> Result<u64> {
        Ok(self.ipam()?.pools.iter().map(|p| p.in_use).sum())
    }

    /// Wait until felix reports it has converged.
    pub fn wait_converged(&self, timeout: Duration) -> Result<FibReport> {
        wait_until(
            timeout,
            &format!("felix on {} to converge", self.node),
            || {
                let fib = self.fib()?;
                if fib.converged {
                    Ok(fib)
                } else {
                    Err(Error::Rejected {
                        daemon: "ginger-node",
                        command: "RouteShowFib".into(),
                        output: "not converged".into(),
                    })
                }
            },
        )
    }
}

fn unexpected(reply: Reply) -> Error {
    Error::Rejected {
        daemon: "ginger-node",
        command: "control query".into(),
        output: format!("unexpected reply {reply:?}"),
    }
}

/// `ip -j <args>` in `ns`, parsed (an empty output is an empty list).
pub fn ip_json(ns: &Netns, args: &[&str]) -> Result<Vec<Value>> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = ns.ip(&full)?;
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| Error::parse("ip", format!("ip -j {}", args.join(" ")), e.to_string()))?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// IPv4 main-table routes of `ns` as `ip -j -4 route show table main` prints them.
pub fn routes_v4(ns: &Netns) -> Result<Vec<Value>> {
    ip_json(ns, &["-4", "route", "show", "table", "main"])
}

/// The IPv4 main-table route with `dst` exactly as `ip` prints it (`10.0.0.1`, `default`).
pub fn route_to(ns: &Netns, dst: &str) -> Result<Option<Value>> {
    Ok(routes_v4(ns)?.into_iter().find(|r| r["dst"] == dst))
}

/// The neighbour entries of `ns` (`ip -j neigh show`).
pub fn neighbours(ns: &Netns) -> Result<Vec<Value>> {
    ip_json(ns, &["neigh", "show"])
}

/// Link names of `ns`.
pub fn link_names(ns: &Netns) -> Result<Vec<String>> {
    Ok(ip_json(ns, &["link", "show"])?
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect())
}

/// Global-scope addresses of `dev` in `ns` as `addr/len`.
pub fn addresses_of(ns: &Netns, dev: &str) -> Result<Vec<String>> {
    Ok(ip_json(ns, &["addr", "show", "dev", dev])?
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect())
}

/// `ping -c count` from inside `ns`: whether every echo was answered (each waits ≤ `wait_s`).
pub fn ping(ns: &Netns, dst: IpAddr, count: u32, wait_s: u32) -> Result<bool> {
    let out = ns.exec(&[
        "ping",
        "-n",
        "-q",
        "-c",
        &count.to_string(),
        "-i",
        "0.2",
        "-W",
        &wait_s.to_string(),
        &dst.to_string(),
    ])?;
    Ok(out.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_args_are_containerds() {
        let p = PodRef::new("default", "web-0", Path::new("/run/netns/x"));
        assert_eq!(p.container_id.len(), 64);
        assert!(p.container_id.bytes().all(|b| b.is_ascii_hexdigit()));
        let args = p.cni_args();
        assert!(args.starts_with("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"));
        assert!(args.contains(&format!("K8S_POD_INFRA_CONTAINER_ID={}", p.container_id)));
        let env = p.env("ADD", DEBIAN_CNI_DIR);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CNI_NETNS"), Some("/run/netns/x"));
        assert_eq!(get("CNI_IFNAME"), Some("eth0"));
        assert_eq!(get("CNI_COMMAND"), Some("ADD"));
        assert_eq!(
            p.handle(NETWORK),
            format!("k8s-pod-network.{}", p.container_id)
        );
        assert_ne!(
            PodRef::new("default", "web-0", Path::new("/x")).container_id,
            p.container_id
        );
    }

    #[test]
    fn plugin_config_is_libcnis() {
        let list = ConfList {
            json: json!({"name": "net", "cniVersion": "1.0.0", "plugins": [
                {"type": "ginger", "mtu": 0},
                {"type": "portmap", "capabilities": {"portMappings": true, "other": false}}
            ]}),
            binaries: BTreeMap::from([("ginger".into(), PathBuf::from("/x/ginger"))]),
            capability_args: json!({"portMappings": [{"hostPort": 1}], "other": 1}),
        };
        let plugins = list.plugins();
        let first = list.plugin_config(&plugins[0], None);
        assert_eq!(
            first,
            json!({"type": "ginger", "mtu": 0, "name": "net", "cniVersion": "1.0.0"})
        );
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let second = list.plugin_config(&plugins[1], Some(&prev));
        assert_eq!(second["prevResult"], prev);
        assert_eq!(
            second["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 1}]})
        );
        assert_eq!(list.binary(&plugins[0]), Path::new("/x/ginger"));
        assert_eq!(list.binary(&plugins[1]), Path::new("/usr/lib/cni/portmap"));
    }

    #[test]
    fn cluster_file_has_every_document() {
        let y = pod_cluster(
            &[("node-1", "10.99.0.1/24")],
            &[("p", "10.244.0.0/16", 26)],
            false,
        );
        assert_eq!(y.matches("---").count(), 2);
        assert!(y.contains("nodeToNodeMeshEnabled: false"));
        assert!(y.contains("spec: {cidr: 10.244.0.0/16, blockSize: 26}"));
        assert!(y.contains("metadata: {name: node-1}"));
    }

    #[test]
    fn result_addresses_drop_the_length() {
        let r = json!({"ips": [{"address": "10.0.0.1/32"}, {"address": "fd00::1/128"}]});
        assert_eq!(
            result_addresses(Some(&r)),
            [
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "fd00::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn a_plugin_is_timed_fed_and_killed_on_overrun() {
        let mut cat = Command::new("cat");
        cat.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (code, out, _, elapsed) =
            run_with_stdin(cat, b"{}", Duration::from_secs(5), "cat").unwrap();
        assert_eq!((code, out.as_str()), (Some(0), "{}"));
        assert!(elapsed < Duration::from_secs(5));
        let mut sleep = Command::new("sleep");
        sleep
            .arg("30")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let err = run_with_stdin(sleep, b"", Duration::from_millis(200), "sleep 30").unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
