//! The CNI socket end to end: the real `cni_server` on a temporary socket, the real
//! `PodNetwork` over a file IPAM store and endpoint registry in a temporary directory, and the
//! client side framed with the plugin's own `cni::protocol` helpers. The clock and the list of
//! host links are test inputs, so grace periods and vanished links are exercised without
//! waiting or touching any network namespace.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::cni_server;
use agent::datastore::model::{AllowedUse, AssignmentMode, IpPool, Metadata};
use agent::endpoints::EndpointRegistry;
use agent::ipam::{FileStore, Ipam, IpamSettings};
use agent::pod_network::{PodNetwork, PodNetworkConfig, TeardownJob};
use agent::selector::Selector;
use cni::protocol::{
    AssignRequest, Assigned, EndpointInfo, Envelope, ErrorKind, PROTOCOL_VERSION, Reply, Request,
    read_line, write_line,
};
use common::TempDir;
use ipnet::IpNet;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const NETWORK: &str = "k8s-pod-network";
const T0: u64 = 1_700_000_000;

fn pool(name: &str, cidr: &str, block_size: u8) -> IpPool {
    IpPool {
        metadata: Metadata {
            name: name.into(),
            ..Metadata::default()
        },
        cidr: cidr.parse().unwrap(),
        block_size,
        disabled: false,
        disable_bgp_export: false,
        node_selector: Selector::all(),
        nat_outgoing: false,
        allowed_uses: vec![AllowedUse::Workload, AllowedUse::Tunnel],
        assignment_mode: AssignmentMode::Automatic,
    }
}

/// A pod network on disk plus the knobs a test turns.
struct Lab {
    dir: TempDir,
    pools: Vec<IpPool>,
    clock: Arc<AtomicU64>,
    links: Arc<Mutex<BTreeSet<String>>>,
}

impl Lab {
    fn new(tag: &str, pools: Vec<IpPool>) -> Lab {
        Lab {
            dir: TempDir::new(tag),
            pools,
            clock: Arc::new(AtomicU64::new(T0)),
            links: Arc::new(Mutex::new(BTreeSet::new())),
        }
    }

    /// A fresh `PodNetwork` over the lab's directories (what a (re)started agent builds).
    fn pod_network(&self, node: &str) -> PodNetwork<FileStore> {
        let store = FileStore::open(&self.dir.path().join("state/ipam")).unwrap();
        let endpoints = EndpointRegistry::open(
            &self
                .dir
                .path()
                .join(format!("state/nodes/{node}/endpoints")),
        )
        .unwrap();
        let settings = IpamSettings {
            node: node.into(),
            labels: BTreeMap::new(),
            pools: self.pools.clone(),
            block_grace: 60,
        };
        let links = self.links.clone();
        let clock = self.clock.clone();
        PodNetwork::new(
            Ipam::new(store, settings),
            endpoints,
            PodNetworkConfig {
                node: node.into(),
                iface_prefix: "cali".into(),
                mtu: 1440,
                leak_grace: Duration::from_secs(30),
            },
            Box::new(move || Ok(links.lock().unwrap().clone())),
        )
        .with_clock(Box::new(move || clock.load(Ordering::SeqCst)))
    }

    fn advance(&self, secs: u64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    fn set_links(&self, names: &[&str]) {
        *self.links.lock().unwrap() = names.iter().map(|s| s.to_string()).collect();
    }
}

/// A CNI socket served by a pod network.
struct Served {
    socket: PathBuf,
    pods: Arc<PodNetwork<FileStore>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Served {
    fn start(lab: &Lab, node: &str, load: bool) -> Served {
        let pods = Arc::new(lab.pod_network(node));
        if load {
            pods.load().unwrap();
        }
        Served::serve(pods, lab.dir.path().join(format!("run-{node}/cni.sock")))
    }

    /// Serves `pods` (already loaded or not) on `socket`.
    fn serve(pods: Arc<PodNetwork<FileStore>>, socket: PathBuf) -> Served {
        let listener = cni_server::bind(&socket).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(cni_server::serve(listener, pods.clone(), async move {
            let _ = stopped.await;
        }));
        Served {
            socket,
            pods,
            stop,
            task,
        }
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server drains")
            .unwrap();
    }

    /// One exchange, framed exactly as the plugin frames it, on a blocking thread.
    async fn ask(&self, request: Request) -> Reply {
        let socket = self.socket.clone();
        tokio::task::spawn_blocking(move || exchange(&socket, request))
            .await
            .unwrap()
    }
}

fn exchange(socket: &Path, request: Request) -> Reply {
    let mut stream = UnixStream::connect(socket).unwrap();
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

/// Send raw bytes and read the reply line.
fn exchange_raw(socket: &Path, bytes: &[u8]) -> Reply {
    use std::io::Write;
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(bytes).unwrap();
    read_line(&mut BufReader::new(stream)).unwrap()
}

fn assign(container: &str, pod: &str) -> Request {
    Request::Assign(AssignRequest {
        handle: format!("{NETWORK}.{container}"),
        network: NETWORK.into(),
        container_id: container.into(),
        namespace: "default".into(),
        pod: pod.into(),
        ifname: "eth0".into(),
        netns: format!("/var/run/netns/{container}"),
        ipv4: true,
        ipv6: false,
    })
}

fn ready(container: &str, pod: &str, assigned: &Assigned) -> Request {
    Request::EndpointReady(EndpointInfo {
        handle: format!("{NETWORK}.{container}"),
        namespace: "default".into(),
        pod: pod.into(),
        container_id: container.into(),
        netns: format!("/var/run/netns/{container}"),
        ifname: "eth0".into(),
        host_ifname: assigned.host_ifname.clone(),
        host_ifindex: Some(41),
        container_mac: "0a:58:0a:3c:00:05".into(),
        ips: assigned.ips.iter().map(IpNet::addr).collect(),
    })
}

fn assigned(reply: Reply) -> Assigned {
    match reply {
        Reply::Assigned(a) => a,
        other => panic!("expected Assigned, got {other:?}"),
    }
}

fn refused(reply: Reply) -> (ErrorKind, String) {
    match reply {
        Reply::Error { kind, message } => (kind, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn handle(container: &str) -> String {
    format!("{NETWORK}.{container}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_then_del_round_trip() {
    let lab = Lab::new(
        "cni-round-trip",
        vec![pool("default-ipv4-ippool", "10.60.0.0/16", 26)],
    );
    let served = Served::start(&lab, "node-1", false);
    let mode = std::fs::metadata(&served.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the CNI socket is root-only");

    // Before the agent has loaded its state, it says so.
    let (kind, message) = refused(served.ask(assign("c1", "web-1")).await);
    assert_eq!(kind, ErrorKind::NotReady);
    assert!(message.contains("starting"), "{message}");
    assert!(matches!(
        served.ask(Request::Status).await,
        Reply::Status { ready: false, .. }
    ));
    served.pods.load().unwrap();
    assert_eq!(
        served.ask(Request::Status).await,
        Reply::Status {
            ready: true,
            message: String::new()
        }
    );
    let mut view = served.pods.subscribe();

    // ADD step 1: the first block is claimed; the reply carries the block's prefix length,
    // Calico's link name and the MTU.
    let a = assigned(served.ask(assign("c1", "web-1")).await);
    assert_eq!(a.ips, vec!["10.60.0.0/26".parse::<IpNet>().unwrap()]);
    assert_eq!(
        a.host_ifname,
        felix::workload::host_ifname("default", "web-1")
    );
    assert_eq!(a.mtu, 1440);
    assert!(view.has_changed().unwrap());
    let net = view.borrow_and_update().clone();
    assert_eq!(net.owned, ["10.60.0.0/26".parse().unwrap()].into());
    assert!(net.endpoints.is_empty(), "pending until EndpointReady");
    // A repeated Assign (the runtime retried the ADD) gets the same address.
    assert_eq!(assigned(served.ask(assign("c1", "web-1")).await).ips, a.ips);

    // ADD step 2.
    assert_eq!(served.ask(ready("c1", "web-1", &a)).await, Reply::Ok);
    let net = view.borrow_and_update().clone();
    assert_eq!(net.endpoints.len(), 1);
    assert_eq!(net.endpoints[0].host_ifname, a.host_ifname);
    assert_eq!(
        served
            .ask(Request::Check {
                handle: handle("c1"),
                ips: vec!["10.60.0.0".parse().unwrap()]
            })
            .await,
        Reply::Ok
    );
    let (kind, message) = refused(
        served
            .ask(Request::Check {
                handle: handle("c1"),
                ips: vec!["10.60.0.9".parse().unwrap()],
            })
            .await,
    );
    assert_eq!(kind, ErrorKind::Invalid);
    assert!(
        message.contains("holds [10.60.0.0] but the pod's result lists [10.60.0.9]"),
        "{message}"
    );
    let lookup = served
        .pods
        .ipam_lookup("10.60.0.0".parse().unwrap())
        .unwrap();
    let alloc = lookup.allocation.unwrap();
    assert_eq!(alloc.handle, handle("c1"));
    assert_eq!(alloc.attributes["pod"], "web-1");
    assert_eq!(alloc.attributes["node"], "node-1");
    assert_eq!(
        alloc.attributes["timestamp"],
        "2023-11-14 22:13:20 +0000 UTC"
    );
    let rows = served.pods.endpoint_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].mac, "0a:58:0a:3c:00:05");

    // DEL, twice: both succeed, the address and the endpoint are gone.
    assert_eq!(
        served
            .ask(Request::Release {
                handle: handle("c1")
            })
            .await,
        Reply::Ok
    );
    assert_eq!(
        served
            .ask(Request::Release {
                handle: handle("c1")
            })
            .await,
        Reply::Ok
    );
    assert!(view.borrow_and_update().endpoints.is_empty());
    assert!(
        served
            .pods
            .ipam_lookup("10.60.0.0".parse().unwrap())
            .unwrap()
            .allocation
            .is_none()
    );
    let (kind, _) = refused(
        served
            .ask(Request::Check {
                handle: handle("c1"),
                ips: vec![],
            })
            .await,
    );
    assert_eq!(kind, ErrorKind::Invalid);
    // The block stays with the node (released only by a sweep after its grace period).
    let report = served.pods.ipam_report().unwrap();
    assert_eq!(report.pools[0].in_use, 0);
    assert_eq!(report.pools[0].blocks.len(), 1);
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_assigns_get_distinct_addresses() {
    let lab = Lab::new(
        "cni-200",
        vec![pool("default-ipv4-ippool", "10.61.0.0/16", 26)],
    );
    let served = Served::start(&lab, "node-1", true);
    let socket = served.socket.clone();
    let started = Instant::now();
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..200)
            .map(|i| {
                let socket = socket.clone();
                scope.spawn(move || {
                    exchange(&socket, assign(&format!("c{i:03}"), &format!("pod-{i}")))
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    let ips: BTreeSet<IpAddr> = replies
        .into_iter()
        .map(|r| assigned(r).ips[0].addr())
        .collect();
    assert_eq!(ips.len(), 200, "200 distinct addresses");
    // 200 addresses fill three /26 blocks and part of a fourth, claimed in order.
    let report = served.pods.ipam_report().unwrap();
    assert_eq!(report.pools[0].in_use, 200);
    let blocks: Vec<String> = report.pools[0]
        .blocks
        .iter()
        .map(|b| b.cidr.to_string())
        .collect();
    assert_eq!(
        blocks,
        [
            "10.61.0.0/26",
            "10.61.0.64/26",
            "10.61.0.128/26",
            "10.61.0.192/26"
        ]
    );
    eprintln!("200 concurrent Assigns answered in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_what_is_wrong() {
    let mut rack_b = pool("rack-b", "10.63.0.0/24", 26);
    rack_b.node_selector = Selector::parse("rack == 'b'").unwrap();
    let lab = Lab::new("cni-errors", vec![pool("tiny", "10.62.0.0/30", 30), rack_b]);
    let served = Served::start(&lab, "node-1", true);
    for i in 0..4 {
        assigned(served.ask(assign(&format!("c{i}"), &format!("p{i}"))).await);
    }
    let (kind, message) = refused(served.ask(assign("c4", "p4")).await);
    assert_eq!(kind, ErrorKind::PoolExhausted);
    assert_eq!(
        message,
        "no IPv4 address left for node node-1: pool tiny (10.62.0.0/30) is full and no other \
         node's block has a free address"
    );
    // Nothing leaked from the refused request.
    assert_eq!(served.pods.ipam_report().unwrap().pools[0].in_use, 4);

    let mut v6 = assign("c6", "p6");
    if let Request::Assign(a) = &mut v6 {
        a.ipv4 = false;
        a.ipv6 = true;
    }
    let (kind, message) = refused(served.ask(v6).await);
    assert_eq!(kind, ErrorKind::NoPool);
    assert_eq!(
        message,
        "no IPv6 IP pool can be used by node node-1: the cluster has no IPv6 IPPool"
    );

    // EndpointReady for addresses the handle does not hold.
    let fake = Assigned {
        ips: vec!["10.62.0.3/30".parse().unwrap()],
        host_ifname: "cali0123456789a".into(),
        mtu: 1500,
    };
    let (kind, message) = refused(served.ask(ready("c9", "p9", &fake)).await);
    assert_eq!(kind, ErrorKind::Invalid);
    assert!(message.contains("does not hold 10.62.0.3"), "{message}");
    // A malformed MAC is refused before anything is recorded.
    let mut bad_mac = ready("c0", "p0", &fake);
    if let Request::EndpointReady(e) = &mut bad_mac {
        e.container_mac = "zz".into();
    }
    assert_eq!(refused(served.ask(bad_mac).await).0, ErrorKind::Invalid);

    // Framing problems: another protocol version, not JSON, not a request.
    let socket = served.socket.clone();
    let raw = tokio::task::spawn_blocking(move || {
        [
            exchange_raw(&socket, b"{\"version\":2,\"request\":\"Status\"}\n"),
            exchange_raw(&socket, b"hello\n"),
            exchange_raw(&socket, b"{\"version\":1,\"request\":\"Frobnicate\"}\n"),
        ]
    })
    .await
    .unwrap();
    let [version, garbage, unknown] = raw;
    let (kind, message) = refused(version);
    assert_eq!(kind, ErrorKind::UnsupportedVersion);
    assert!(message.contains("plugin sent version 2"), "{message}");
    assert_eq!(refused(garbage).0, ErrorKind::Invalid);
    assert_eq!(refused(unknown).0, ErrorKind::Invalid);
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_a_node_no_pool_accepts() {
    let mut rack_b = pool("rack-b", "10.63.0.0/24", 26);
    rack_b.node_selector = Selector::parse("rack == 'b'").unwrap();
    let lab = Lab::new("cni-status", vec![rack_b]);
    let served = Served::start(&lab, "node-1", true);
    assert_eq!(
        served.ask(Request::Status).await,
        Reply::Status {
            ready: false,
            message: "no IP pool can be used by node node-1: rack-b (nodeSelector \"rack == 'b'\" \
                      does not match)"
                .into()
        }
    );
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_releases_what_the_runtime_no_longer_uses() {
    let lab = Lab::new("cni-gc", vec![pool("p", "10.64.0.0/24", 26)]);
    let served = Served::start(&lab, "node-1", true);
    for c in ["keep", "gone-ready", "gone-pending"] {
        let a = assigned(served.ask(assign(c, c)).await);
        if c != "gone-pending" {
            assert_eq!(served.ask(ready(c, c, &a)).await, Reply::Ok);
        }
    }
    // ADDs in flight are left alone; so is another network's attachment.
    let mut other = assign("other-net", "o");
    if let Request::Assign(a) = &mut other {
        a.handle = "other-network.other-net".into();
        a.network = "other-network".into();
    }
    assigned(served.ask(other).await);
    assert_eq!(
        served
            .ask(Request::Gc {
                network: NETWORK.into(),
                keep: vec![handle("keep")],
            })
            .await,
        Reply::Ok
    );
    // keep, gone-pending and other-net still hold their addresses; gone-ready's is free.
    assert_eq!(served.pods.ipam_report().unwrap().pools[0].in_use, 3);
    assert!(
        served
            .pods
            .ipam_lookup("10.64.0.1".parse().unwrap())
            .unwrap()
            .allocation
            .is_none()
    );
    let endpoints: Vec<String> = served
        .pods
        .endpoint_rows()
        .into_iter()
        .map(|e| e.pod)
        .collect();
    assert_eq!(endpoints, ["keep"]);
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_collect_leaks_vanished_pods_and_empty_blocks() {
    let lab = Lab::new("cni-sweep", vec![pool("p", "10.65.0.0/24", 26)]);
    let served = Served::start(&lab, "node-1", true);
    let live = assigned(served.ask(assign("live", "live")).await);
    assert_eq!(served.ask(ready("live", "live", &live)).await, Reply::Ok);
    let vanished = assigned(served.ask(assign("vanished", "vanished")).await);
    assert_eq!(
        served.ask(ready("vanished", "vanished", &vanished)).await,
        Reply::Ok
    );
    // An ADD whose plugin died after Assign: no endpoint ever comes.
    assigned(served.ask(assign("killed", "killed")).await);
    lab.set_links(&[&live.host_ifname]);

    // Within the leak grace (30 s) only the pod whose link vanished goes.
    lab.advance(10);
    let report = served.pods.sweep().unwrap();
    let released: Vec<&str> = report.released.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(released, [handle("vanished")]);
    assert_eq!(served.pods.endpoint_rows().len(), 1);
    // After it, the killed ADD's address goes too; the live pod stays.
    lab.advance(30);
    let report = served.pods.sweep().unwrap();
    let released: Vec<&str> = report.released.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(released, [handle("killed")]);
    assert_eq!(served.pods.ipam_report().unwrap().pools[0].in_use, 1);

    // Fill the first block so a second one is claimed, then empty the second: after the block
    // grace (60 s) a sweep gives it back; the first, still used, stays.
    for i in 0..64 {
        assigned(served.ask(assign(&format!("f{i}"), &format!("f{i}"))).await);
    }
    assert_eq!(served.pods.current().owned.len(), 2);
    lab.set_links(&[&live.host_ifname]);
    for i in 0..64 {
        assert_eq!(
            served
                .ask(Request::Release {
                    handle: handle(&format!("f{i}"))
                })
                .await,
            Reply::Ok
        );
    }
    lab.advance(59);
    assert!(served.pods.sweep().unwrap().blocks_released.is_empty());
    lab.advance(1);
    let report = served.pods.sweep().unwrap();
    assert_eq!(
        report.blocks_released,
        vec!["10.65.0.64/26".parse::<IpNet>().unwrap()]
    );
    assert_eq!(
        served.pods.current().owned,
        ["10.65.0.0/26".parse().unwrap()].into()
    );
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_knows_its_pods_before_serving() {
    let lab = Lab::new("cni-restart", vec![pool("p", "10.66.0.0/24", 26)]);
    let served = Served::start(&lab, "node-1", true);
    let a = assigned(served.ask(assign("c1", "web")).await);
    assert_eq!(served.ask(ready("c1", "web", &a)).await, Reply::Ok);
    let b = assigned(served.ask(assign("c2", "db")).await);
    assert_eq!(served.ask(ready("c2", "db", &b)).await, Reply::Ok);
    served.shutdown().await;

    // The agent restarts: web's link is still there, db's pod went while it was down.
    lab.set_links(&[&a.host_ifname]);
    let restarted = lab.pod_network("node-1");
    restarted.load().unwrap();
    let net = restarted.current();
    assert_eq!(net.endpoints.len(), 1);
    assert_eq!(net.endpoints[0].pod, "web");
    assert_eq!(net.endpoints[0].ips, vec![a.ips[0].addr()]);
    assert_eq!(net.owned, ["10.66.0.0/26".parse().unwrap()].into());
    // db's address was released at start-up.
    assert!(
        restarted
            .ipam_lookup(b.ips[0].addr())
            .unwrap()
            .allocation
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_state_dir_share_the_pool() {
    // A multi-node lab on one machine: two agents, one IPAM directory.
    let lab = Lab::new("cni-two-nodes", vec![pool("p", "10.67.0.0/26", 28)]);
    let n1 = Served::start(&lab, "node-1", true);
    let n2 = Served::start(&lab, "node-2", true);
    let mut all = BTreeSet::new();
    for i in 0..64 {
        let (node, name) = if i % 2 == 0 { (&n1, "a") } else { (&n2, "b") };
        let got = assigned(
            node.ask(assign(&format!("{name}{i}"), &format!("{name}{i}")))
                .await,
        );
        assert!(all.insert(got.ips[0].addr()), "duplicate {}", got.ips[0]);
    }
    // 64 addresses: each node claimed two of the four /28 blocks; nobody borrowed.
    assert_eq!(n1.pods.current().owned.len(), 2);
    assert_eq!(n2.pods.current().owned.len(), 2);
    // The pool is full: node-1 frees one address, node-2 then borrows it (a /32 to export).
    assert_eq!(
        n1.ask(Request::Release {
            handle: handle("a0")
        })
        .await,
        Reply::Ok
    );
    let borrowed = assigned(n2.ask(assign("b-extra", "b-extra")).await);
    assert_eq!(borrowed.ips[0].to_string(), "10.67.0.0/28");
    assert_eq!(
        n2.pods.current().borrowed,
        ["10.67.0.0".parse::<IpAddr>().unwrap()].into()
    );
    n1.shutdown().await;
    n2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_pods_get_one_address_per_family() {
    let lab = Lab::new(
        "cni-dual",
        vec![
            pool("default-ipv4-ippool", "10.70.0.0/16", 26),
            pool("default-ipv6-ippool", "fd00:70::/64", 122),
        ],
    );
    let served = Served::start(&lab, "node-1", true);
    let mut both = assign("c1", "web");
    if let Request::Assign(a) = &mut both {
        a.ipv6 = true;
    }
    let a = assigned(served.ask(both).await);
    let ips: Vec<String> = a.ips.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["10.70.0.0/26", "fd00:70::/122"]);
    assert_eq!(served.ask(ready("c1", "web", &a)).await, Reply::Ok);
    let net = served.pods.current();
    assert_eq!(net.endpoints[0].ips.len(), 2);
    let owned: Vec<String> = net.owned.iter().map(ToString::to_string).collect();
    assert_eq!(owned, ["10.70.0.0/26", "fd00:70::/122"]);
    assert_eq!(
        served
            .ask(Request::Release {
                handle: handle("c1")
            })
            .await,
        Reply::Ok
    );
    let report = served.pods.ipam_report().unwrap();
    assert!(report.pools.iter().all(|p| p.in_use == 0));
    served.shutdown().await;
}

/// `Teardown` of `container`'s handle, which must be refused with `NotQueued`: its reason.
async fn not_queued(served: &Served, container: &str) -> String {
    match served
        .ask(Request::Teardown {
            handle: handle(container),
        })
        .await
    {
        Reply::NotQueued { reason } => reason,
        other => panic!("expected NotQueued, got {other:?}"),
    }
}

/// DEL's `Teardown` (the agent removes the veth after DEL has returned): the endpoint is marked
/// terminating and queued, its address stays allocated (also through CNI GC) until the worker
/// reports the link gone, an ADD for the same attachment waits for that, and a restarted agent
/// resumes what was queued. Here the test plays the teardown worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_is_queued_and_releases_only_when_the_link_is_gone() {
    let lab = Lab::new("cni-teardown", vec![pool("p", "10.66.0.0/24", 26)]);
    let (queue, jobs) = std::sync::mpsc::channel::<TeardownJob>();
    let pods = Arc::new(lab.pod_network("node-1").with_teardowns(queue));
    pods.load().unwrap();
    let served = Served::serve(pods.clone(), lab.dir.path().join("run-td/cni.sock"));

    let a = assigned(served.ask(assign("c1", "web")).await);
    assert_eq!(served.ask(ready("c1", "web", &a)).await, Reply::Ok);
    lab.set_links(&[&a.host_ifname]);
    let ip = a.ips[0].addr();
    let teardown = || Request::Teardown {
        handle: handle("c1"),
    };
    assert_eq!(served.ask(teardown()).await, Reply::Queued);
    let job = jobs.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(
        job,
        TeardownJob {
            handle: handle("c1"),
            host_ifname: a.host_ifname.clone(),
            host_ifindex: 41,
        }
    );
    // Still allocated and listed as terminating; a repeated DEL queues nothing new.
    assert!(pods.ipam_lookup(ip).unwrap().allocation.is_some());
    let rows = pods.endpoint_rows();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].terminating);
    // felix stops programming it (a new pod of the same name may reuse the link name).
    assert!(pods.current().endpoints.is_empty());
    assert_eq!(served.ask(teardown()).await, Reply::Queued);
    assert!(jobs.try_recv().is_err());
    // CNI GC (the runtime no longer lists it) leaves a teardown in flight alone.
    let gc = Request::Gc {
        network: NETWORK.into(),
        keep: vec![],
    };
    assert_eq!(served.ask(gc).await, Reply::Ok);
    assert!(pods.ipam_lookup(ip).unwrap().allocation.is_some());

    // ADD for the same attachment waits until the worker is done, then gets an address.
    let finisher = {
        let pods = pods.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            pods.finish_teardown(&handle("c1")).unwrap();
        })
    };
    let started = Instant::now();
    let again = assigned(served.ask(assign("c1", "web")).await);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "ADD did not wait"
    );
    finisher.join().unwrap();
    assert!(pods.endpoint_rows().is_empty());
    assert_eq!(served.ask(ready("c1", "web", &again)).await, Reply::Ok);

    // Nothing to hand over: no endpoint, or one recorded without a link index.
    let unknown = served
        .ask(Request::Teardown {
            handle: handle("nope"),
        })
        .await;
    assert!(matches!(unknown, Reply::NotQueued { .. }), "{unknown:?}");
    let b = assigned(served.ask(assign("c2", "db")).await);
    let mut old_plugin = ready("c2", "db", &b);
    if let Request::EndpointReady(ep) = &mut old_plugin {
        ep.host_ifindex = None;
    }
    assert_eq!(served.ask(old_plugin).await, Reply::Ok);
    let reason = not_queued(&served, "c2").await;
    assert!(reason.contains("older plugin"), "{reason}");

    // A queued teardown survives a restart of the agent: the new one resumes it.
    assert_eq!(served.ask(teardown()).await, Reply::Queued);
    assert!(jobs.recv_timeout(Duration::from_secs(1)).is_ok());
    served.shutdown().await;
    drop(pods);
    lab.set_links(&[&a.host_ifname, &b.host_ifname]);
    let (queue, jobs) = std::sync::mpsc::channel::<TeardownJob>();
    let restarted = lab.pod_network("node-1").with_teardowns(queue);
    restarted.load().unwrap();
    assert_eq!(jobs.try_recv().unwrap().handle, handle("c1"));
    assert!(jobs.try_recv().is_err());
    assert!(
        restarted
            .ipam_lookup(again.ips[0].addr())
            .unwrap()
            .allocation
            .is_some()
    );

    // Without a worker the agent says so, and the plugin removes the veth itself.
    let served = Served::start(&lab, "node-1", true);
    let reason = not_queued(&served, "c2").await;
    assert!(reason.contains("does not remove"), "{reason}");
    served.shutdown().await;
}
