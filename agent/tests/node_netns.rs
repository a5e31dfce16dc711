//! `ginger-node` in a network namespace this test creates (and deletes, also on failure),
//! driven over its CNI socket as the plugin would: IPAM, the endpoint registry, felix and the
//! CLI wired together against a real kernel. A "pod" here is a veth pair inside the node's
//! namespace (the plugin's own plumbing is another crate's test). Checks: the host MTU file,
//! felix's blackhole, pod route and neighbour entry, `gingerctl` outputs, the block in the
//! Loc-RIB, a SIGKILL restart that rewrites no route (watched with `ip monitor`), DEL, and a
//! SIGTERM that leaves the kernel as it is. Needs root; every process is killed by its PID.

mod common;

use std::fs::File;
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent::ctl::client;
use agent::ctl::{Reply as CtlReply, Request as CtlRequest};
use cni::protocol::{
    AssignRequest, Assigned, EndpointInfo, Envelope, PROTOCOL_VERSION, Reply, Request, read_line,
    write_line,
};
use common::TempDir;
use felix::netns::Netns;

const T: Duration = Duration::from_secs(20);

const CLUSTER: &str = r#"
apiVersion: ginger.dev/v1
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512}
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: node-1}
spec: {bgp: {ipv4Address: 10.99.0.1/24}}
---
apiVersion: ginger.dev/v1
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 10.244.0.0/16, blockSize: 26}
"#;

/// A process killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal);
    }

    /// Wait for the process to exit by itself.
    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Node {
    ns: Netns,
    dir: TempDir,
}

impl Node {
    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `ginger-node` inside the namespace, logging to `<dir>/ginger-node.<n>.log`.
    fn start(&self, n: usize) -> Proc {
        let cluster = self.dir.path().join("cluster.yaml");
        let log = File::create(self.dir.path().join(format!("ginger-node.{n}.log"))).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                self.ns.name(),
                env!("CARGO_BIN_EXE_ginger-node"),
            ])
            .arg("--config")
            .arg(&cluster)
            .args(["--node-name", "node-1", "--run-dir"])
            .arg(self.run_dir())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--ipam-block-grace", "2s", "--ipam-leak-grace", "5s"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Proc(child)
    }

    fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("ginger-node.{n}.log")))
            .unwrap_or_default()
    }

    fn ip(&self, args: &str) -> String {
        let argv: Vec<&str> = args.split_whitespace().collect();
        self.ns
            .ip(&argv)
            .unwrap_or_else(|e| panic!("ip {args}: {e}"))
    }

    fn cni(&self, request: Request) -> Reply {
        let socket = self.run_dir().join("cni.sock");
        let mut stream = UnixStream::connect(&socket).unwrap();
        write_line(
            &mut stream,
            &Envelope {
                version: PROTOCOL_VERSION,
                request,
            },
        )
        .unwrap();
        read_line(&mut BufReader::new(stream)).unwrap()
    }

    fn ctl(&self, request: CtlRequest) -> Result<CtlReply, client::ClientError> {
        let socket = agent::ctl::socket_path(&self.run_dir());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(client::request(&socket, &request, Duration::from_secs(5)))
    }

    fn gingerctl(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_gingerctl"))
            .arg("--run-dir")
            .arg(self.run_dir())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gingerctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn wait_serving(&self, n: usize) {
        wait(T, "the control socket", || {
            self.ctl(CtlRequest::NodeStatus).is_ok()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.log(n)));
    }
}

fn wait(within: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("timed out waiting for {what}"))
}

fn assigned(reply: Reply) -> Assigned {
    match reply {
        Reply::Assigned(a) => a,
        other => panic!("expected Assigned, got {other:?}"),
    }
}

fn mac_of(node: &Node, link: &str) -> String {
    let out = node.ip(&format!("-j link show {link}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["address"].as_str().unwrap().to_string()
}

fn has_line(text: &str, words: &[&str]) -> bool {
    text.lines()
        .any(|l| words.iter().all(|w| l.split_whitespace().any(|t| t == *w)))
}

fn setup() -> Node {
    let ns = Netns::create("agent-node").unwrap();
    let dir = TempDir::new("node-netns");
    std::fs::write(dir.path().join("cluster.yaml"), CLUSTER).unwrap();
    let node = Node { ns, dir };
    // The node's uplink: a veth pair inside the namespace, MTU 1400, so MTU detection has a
    // matching link (Calico's pattern matches eth*).
    node.ip("link add eth0 mtu 1400 type veth peer name uplink0 mtu 1400");
    node.ip("addr add 10.99.0.1/24 dev eth0");
    node.ip("link set uplink0 up");
    node.ip("link set eth0 up");
    node
}

#[test]
fn node_agent_programs_pods_and_survives_sigkill() {
    let node = setup();
    let mut daemon = node.start(1);
    node.wait_serving(1);
    assert_eq!(
        std::fs::read_to_string(node.state_dir().join("nodes/node-1/mtu")).unwrap(),
        "1400"
    );
    // A second agent for the same node refuses to start, before touching any state.
    let mut second = node.start(9);
    let status = second.wait_exit(T).expect("the second agent exits");
    assert!(!status.success());
    assert!(
        node.log(9)
            .contains("another ginger agent is already serving"),
        "{}",
        node.log(9)
    );

    // ADD, as the plugin does it: Assign, build the veth, EndpointReady.
    let a = assigned(node.cni(Request::Assign(AssignRequest {
        handle: "k8s-pod-network.c1".into(),
        network: "k8s-pod-network".into(),
        container_id: "c1".into(),
        namespace: "default".into(),
        pod: "web-1".into(),
        ifname: "eth0".into(),
        netns: "/var/run/netns/none".into(),
        ipv4: true,
        ipv6: false,
    })));
    assert_eq!(a.ips[0].to_string(), "10.244.0.0/26");
    assert_eq!(a.mtu, 1400);
    let link = a.host_ifname.clone();
    node.ip(&format!("link add {link} type veth peer name pod0"));
    node.ip(&format!("link set {link} up"));
    node.ip("link set pod0 up");
    let mac = mac_of(&node, "pod0");
    let ready = node.cni(Request::EndpointReady(EndpointInfo {
        handle: "k8s-pod-network.c1".into(),
        namespace: "default".into(),
        pod: "web-1".into(),
        container_id: "c1".into(),
        netns: "/var/run/netns/none".into(),
        ifname: "eth0".into(),
        host_ifname: link.clone(),
        host_ifindex: None,
        container_mac: mac.clone(),
        ips: vec![a.ips[0].addr()],
    }));
    assert_eq!(ready, Reply::Ok);

    // felix: the block's blackhole, the pod's /32 and its permanent neighbour entry.
    wait(T, "felix's routes", || {
        let routes = node.ip("route show");
        has_line(&routes, &["blackhole", "10.244.0.0/26", "proto", "97"])
            && has_line(
                &routes,
                &["10.244.0.0", "dev", &link, "proto", "97", "scope", "link"],
            )
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", node.ip("route show"), node.log(1)));
    wait(T, "the neighbour entry", || {
        has_line(
            &node.ip(&format!("neigh show dev {link}")),
            &["10.244.0.0", "lladdr", &mac, "PERMANENT"],
        )
    })
    .unwrap();

    // What an operator sees.
    let show = node.gingerctl(&["ipam", "show", "--show-blocks"]);
    assert!(
        show.contains("| IP Pool  | 10.244.0.0/16 |     65536 | 1 (0%)     | 65535 (100%) |"),
        "{show}"
    );
    assert!(
        show.contains("| Block    | 10.244.0.0/26 |        64 | 1 (2%)     | 63 (98%)     |"),
        "{show}"
    );
    let ip = node.gingerctl(&["ipam", "show", "--ip", "10.244.0.0"]);
    assert!(
        ip.starts_with("IP 10.244.0.0 is in use\nHandle ID: k8s-pod-network.c1\n"),
        "{ip}"
    );
    assert!(ip.contains("  pod: web-1\n"), "{ip}");
    let eps = node.gingerctl(&["get", "endpoints"]);
    assert!(
        has_line(
            &eps,
            &["default", "web-1", "node-1", "10.244.0.0/32", &link, &mac]
        ),
        "{eps}"
    );
    let fib = node.gingerctl(&["route", "show", "--fib"]);
    assert!(fib.contains("blackhole 10.244.0.0/26 proto 97\n"), "{fib}");
    assert!(
        fib.contains(&format!("10.244.0.0/32 dev {link} scope link proto 97\n")),
        "{fib}"
    );
    // The speaker originates the block (Calico's export rule: the aggregate, not the /32).
    match node.ctl(CtlRequest::RouteShow { prefix: None }).unwrap() {
        CtlReply::Routes(routes) => {
            let prefixes: Vec<String> = routes.iter().map(|r| r.prefix.to_string()).collect();
            assert_eq!(prefixes, ["10.244.0.0/26"]);
        }
        other => panic!("{other:?}"),
    }

    // SIGKILL and restart: no route is deleted or rewritten meanwhile.
    let monitor_out = node.dir.path().join("monitor.log");
    let monitor = Proc(
        Command::new("ip")
            .args(["-n", node.ns.name(), "monitor", "route", "neigh"])
            .stdout(File::create(&monitor_out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(200));
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(daemon.wait_exit(T).is_some());
    let mut daemon = node.start(2);
    node.wait_serving(2);
    wait(T, "felix to converge after the restart", || {
        matches!(node.ctl(CtlRequest::RouteShowFib), Ok(CtlReply::Fib(f))
            if f.converged && f.routes.iter().any(|r| r.contains(&link)))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log(2)));
    std::thread::sleep(Duration::from_millis(500));
    drop(monitor);
    let changes = std::fs::read_to_string(&monitor_out).unwrap();
    assert!(
        !changes.contains("10.244.0."),
        "the restart touched pod routes:\n{changes}"
    );
    assert_eq!(
        node.gingerctl(&["get", "endpoints"]),
        eps,
        "the restarted agent knows the pod"
    );

    // A reload that adds a service range: the speaker originates it beside the pod block.
    let reloaded = CLUSTER.replace(
        "spec: {asNumber: 64512}",
        "spec: {asNumber: 64512, serviceClusterIPs: [{cidr: 10.96.0.0/12}]}",
    );
    std::fs::write(node.dir.path().join("cluster.yaml"), reloaded).unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    wait(T, "the service range and the block in the Loc-RIB", || {
        matches!(node.ctl(CtlRequest::RouteShow { prefix: None }), Ok(CtlReply::Routes(r))
            if r.iter().map(|r| r.prefix.to_string()).collect::<Vec<_>>()
                == ["10.96.0.0/12", "10.244.0.0/26"])
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log(2)));

    // DEL: the pod's route and neighbour entry go, the block's blackhole stays.
    assert_eq!(
        node.cni(Request::Release {
            handle: "k8s-pod-network.c1".into()
        }),
        Reply::Ok
    );
    wait(T, "the pod route to go", || {
        !has_line(&node.ip("route show"), &["10.244.0.0", "dev", &link])
    })
    .unwrap();
    assert!(has_line(
        &node.ip("route show"),
        &["blackhole", "10.244.0.0/26"]
    ));
    assert!(node.ip("neigh show nud permanent").trim().is_empty());

    // SIGTERM: a clean exit that leaves the kernel as it is.
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let status = daemon.wait_exit(T).expect("ginger-node exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", node.log(2));
    assert!(has_line(
        &node.ip("route show"),
        &["blackhole", "10.244.0.0/26", "proto", "97"]
    ));
    assert!(!node.run_dir().join("cni.sock").exists());
}

/// The daemon's own sweep: leaked allocations and then an empty block go on their timers
/// (leak grace 5 s, block grace 2 s here), and the blackhole follows.
#[test]
fn node_agent_gives_back_an_empty_block_after_the_grace() {
    let node = setup();
    let _daemon = node.start(1);
    node.wait_serving(1);
    let assign = |c: &str| {
        assigned(node.cni(Request::Assign(AssignRequest {
            handle: format!("k8s-pod-network.{c}"),
            network: "k8s-pod-network".into(),
            container_id: c.into(),
            namespace: "default".into(),
            pod: c.into(),
            ifname: "eth0".into(),
            netns: "/var/run/netns/none".into(),
            ipv4: true,
            ipv6: false,
        })))
    };
    // 65 addresses: a second block. Their ADDs never complete (no EndpointReady), so the
    // leak grace (5 s) releases them all, then the block grace (2 s) gives back the second
    // block; the node keeps its first.
    for i in 0..65 {
        assign(&format!("c{i}"));
    }
    wait(T, "two blackholes", || {
        node.ip("route show").matches("blackhole").count() == 2
    })
    .unwrap();
    wait(
        Duration::from_secs(30),
        "the second block to be given back",
        || {
            let routes = node.ip("route show");
            has_line(&routes, &["blackhole", "10.244.0.0/26"])
                && !has_line(&routes, &["blackhole", "10.244.0.64/26"])
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log(1)));
    let show = node.gingerctl(&["ipam", "show", "--show-blocks"]);
    assert!(
        show.contains("| Block    | 10.244.0.0/26 |        64 | 0 (0%)     | 64 (100%)    |"),
        "{show}"
    );
    assert!(!show.contains("10.244.0.64/26"), "{show}");
    assert!(node.log(1).contains("released an empty block"));
}
