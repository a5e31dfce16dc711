//! The reconciler against a real kernel, inside a network namespace this test creates and
//! deletes: it programs workload routes, permanent neighbours, blackholes and ECMP remote routes
//! (read back with `ip -j`), restores a route deleted by hand, removes a foreign route on a
//! `cali*` link, leaves other protocols' routes on other links alone, sets the workload sysctls,
//! re-adds routes after a link bounce (link events), and a restart on an unchanged kernel issues
//! zero kernel writes.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{ip, ip_json, route, sysctl, wait_for};
use felix::netns::Netns;
use felix::plan::Reason;
use felix::{
    DesiredState, MacAddr, ReconcilerConfig, ReconcilerHandle, RemoteRoute, WorkloadEndpoint,
};
use ipnet::IpNet;

const WAIT: Duration = Duration::from_secs(10);

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn build_host(ns: &Netns) {
    // An uplink with a connected subnet and a default route (for recursive resolution).
    ip(ns, "link add eth0 type veth peer name eth0p");
    ip(ns, "addr add 192.0.2.10/24 dev eth0");
    ip(ns, "-6 addr add fd00:ff::10/64 dev eth0 nodad");
    ip(ns, "link set eth0 up");
    ip(ns, "link set eth0p up");
    ip(
        ns,
        "route add default via 192.0.2.254 dev eth0 proto static",
    );
    // Two workload links (their peers stay in this namespace; only the host side matters here).
    for (cali, pod) in [("caliA", "podA"), ("caliB", "podB")] {
        ip(ns, &format!("link add {cali} type veth peer name {pod}"));
        ip(ns, &format!("link set {cali} up"));
        ip(ns, &format!("link set {pod} up"));
    }
    // Foreign state: a static route on eth0 and one on a non-workload link must survive;
    // a BIRD route on a workload link must go (calico.md §3.2).
    ip(
        ns,
        "route add 10.9.0.0/24 via 192.0.2.1 dev eth0 proto static",
    );
    ip(ns, "route add 10.7.0.0/24 dev podA proto static");
    ip(ns, "route add 10.0.0.77/32 dev caliB proto bird");
}

fn desired() -> DesiredState {
    let mut d = DesiredState::default();
    let mac: MacAddr = "02:00:00:00:00:0a".parse().unwrap();
    d.workloads.insert(
        "caliA".into(),
        WorkloadEndpoint {
            ifname: "caliA".into(),
            mac: Some(mac),
            ips: vec![addr("10.0.0.1")],
        },
    );
    d.workloads.insert(
        "caliB".into(),
        WorkloadEndpoint {
            ifname: "caliB".into(),
            mac: None,
            ips: vec![addr("10.0.0.2"), addr("fd00::2")],
        },
    );
    d.blackholes.insert(net("10.0.0.0/26"));
    let remote = |dst: &str, nhs: &[&str]| RemoteRoute {
        dst: net(dst),
        next_hops: nhs.iter().map(|s| addr(s)).collect(),
    };
    for r in [
        remote("10.1.0.0/26", &["192.0.2.1", "192.0.2.2"]),
        remote("10.2.0.0/26", &["198.51.100.9"]),
        remote("10.3.0.0/26", &["192.0.2.10"]),
        remote("fd00:1::/64", &["fd00:ff::1", "fd00:ff::2"]),
    ] {
        d.remotes.insert(r.dst, r);
    }
    d
}

fn config(ns: &Netns) -> ReconcilerConfig {
    ReconcilerConfig {
        netns: Some(ns.name().to_string()),
        ..Default::default()
    }
}

fn wait_converged(h: &ReconcilerHandle) {
    assert!(
        wait_for(WAIT, || h.snapshot_blocking().is_some_and(|s| s.converged)),
        "reconciler did not converge"
    );
}

fn assert_programmed(ns: &Netns) {
    let a = route(ns, "-4", "10.0.0.1").expect("workload route 10.0.0.1");
    assert_eq!(a["dev"], "caliA");
    assert_eq!(a["scope"], "link");
    assert_eq!(a["protocol"], "97");
    let b6 = route(ns, "-6", "fd00::2").expect("workload route fd00::2");
    assert_eq!(b6["dev"], "caliB");
    assert_eq!(b6["protocol"], "97");
    let bh = route(ns, "-4", "10.0.0.0/26").expect("blackhole");
    assert_eq!(bh["type"], "blackhole");
    assert_eq!(bh["protocol"], "97");
    let ecmp = route(ns, "-4", "10.1.0.0/26").expect("ECMP route");
    let hops: Vec<String> = ecmp["nexthops"]
        .as_array()
        .expect("multipath")
        .iter()
        .map(|h| {
            format!(
                "{} {}",
                h["gateway"].as_str().unwrap(),
                h["dev"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(hops, ["192.0.2.1 eth0", "192.0.2.2 eth0"]);
    let rec = route(ns, "-4", "10.2.0.0/26").expect("recursively resolved route");
    assert_eq!(
        rec["gateway"], "192.0.2.254",
        "resolved through the default route"
    );
    assert!(
        route(ns, "-4", "10.3.0.0/26").is_none(),
        "a local next hop must not be installed"
    );
    let ecmp6 = route(ns, "-6", "fd00:1::/64").expect("IPv6 ECMP route");
    assert_eq!(ecmp6["nexthops"].as_array().map(Vec::len), Some(2));
    let neigh = ip_json(ns, &["neigh", "show", "dev", "caliA"]);
    let n = neigh
        .iter()
        .find(|n| n["dst"] == "10.0.0.1")
        .expect("permanent neighbour");
    assert_eq!(n["lladdr"], "02:00:00:00:00:0a");
    assert!(
        n["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "PERMANENT")
    );
    // Foreign state.
    assert!(
        route(ns, "-4", "10.0.0.77").is_none(),
        "foreign route on a cali link must be removed"
    );
    assert_eq!(
        route(ns, "-4", "10.9.0.0/24").expect("static route on eth0 kept")["protocol"],
        "static"
    );
    assert_eq!(
        route(ns, "-4", "10.7.0.0/24").expect("static route on podA kept")["dev"],
        "podA"
    );
    assert_eq!(
        route(ns, "-4", "default").expect("default route kept")["gateway"],
        "192.0.2.254"
    );
}

#[test]
fn netns_reconciler_programs_repairs_and_restarts_without_writes() {
    let host_forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let ns = Netns::create("fx-rec").expect("create namespace");
    build_host(&ns);

    let h = ReconcilerHandle::spawn(config(&ns)).expect("spawn reconciler");
    h.set_desired(desired());
    wait_converged(&h);
    assert_programmed(&ns);
    let lines = h.snapshot_blocking().expect("snapshot").route_lines();
    for want in [
        "blackhole 10.0.0.0/26 proto 97",
        "10.0.0.1/32 dev caliA scope link proto 97",
        "10.1.0.0/26 nexthop via 192.0.2.1 dev eth0 nexthop via 192.0.2.2 dev eth0 proto 97",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "{want:?} not in the FIB snapshot: {lines:#?}"
        );
    }
    let rejected = h.rejected().borrow().clone();
    assert!(
        rejected.iter().any(|r| r.dst == net("10.3.0.0/26") && matches!(r.reason, Reason::Unresolvable { .. })),
        "the caller learns why 10.3.0.0/26 is out: {rejected:?}"
    );

    // Sysctls on workload links and global forwarding, inside the namespace only.
    for link in ["caliA", "caliB"] {
        for (key, value) in felix::sysctl::workload_link_sysctls(link) {
            assert_eq!(sysctl(&ns, &key), value, "{key}");
        }
    }
    assert_eq!(sysctl(&ns, "net/ipv4/ip_forward"), "1");
    assert_eq!(
        sysctl(&ns, "net/ipv4/conf/podA/proxy_arp"),
        "0",
        "non-workload links untouched"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forwarding
    );

    // A workload route deleted by hand comes back after a resync.
    ip(&ns, "route del 10.0.0.1/32 dev caliA");
    assert!(route(&ns, "-4", "10.0.0.1").is_none());
    h.resync();
    wait_converged(&h);
    assert!(
        route(&ns, "-4", "10.0.0.1").is_some(),
        "route not restored by resync"
    );

    // Link bounce: the kernel flushes caliA's routes on down; the link event restores them.
    ip(&ns, "link set caliA down");
    ip(&ns, "link set caliA up");
    assert!(
        wait_for(WAIT, || route(&ns, "-4", "10.0.0.1").is_some()),
        "link event did not trigger a per-link resync"
    );
    wait_converged(&h);
    assert!(h.metrics().link_resyncs > 0, "{:?}", h.metrics());

    // Stop (no flush), restart on the unchanged kernel: adopt everything, write nothing.
    h.shutdown();
    assert_programmed(&ns);
    let h2 = ReconcilerHandle::spawn(config(&ns)).expect("respawn reconciler");
    h2.set_desired(desired());
    wait_converged(&h2);
    assert_programmed(&ns);
    let m = h2.metrics();
    assert_eq!(m.kernel_writes, 0, "restart wrote to the kernel: {m:?}");
    assert_eq!(m.ops_applied, 0);
    assert!(m.routes_programmed >= 7, "{m:?}");
    drop(h2);
}

#[test]
fn netns_reconciler_grace_period_then_cleanup_of_endpointless_link() {
    let ns = Netns::create("fx-grace").expect("create namespace");
    ip(&ns, "link add caliZ type veth peer name podZ");
    ip(&ns, "link set caliZ up");
    ip(&ns, "link set podZ up");
    ip(&ns, "route add 10.0.0.99/32 dev caliZ proto 97");
    let cfg = ReconcilerConfig {
        grace_period: Duration::from_secs(3),
        ..config(&ns)
    };
    let h = ReconcilerHandle::spawn(cfg).expect("spawn reconciler");
    h.set_desired(DesiredState::default());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        route(&ns, "-4", "10.0.0.99").is_some(),
        "deleted inside the grace period"
    );
    assert!(
        wait_for(WAIT, || route(&ns, "-4", "10.0.0.99").is_none()),
        "not deleted after the grace period"
    );
}

#[test]
fn netns_host_mtu_is_the_smallest_up_matching_link() {
    let ns = Netns::create("fx-mtu").expect("create namespace");
    assert_eq!(
        ns.run(|| felix::mtu::detect_host_mtu(felix::mtu::DEFAULT_MTU_IFACE_PATTERN))
            .unwrap()
            .unwrap(),
        1460,
        "fallback"
    );
    ip(&ns, "link add eth0 mtu 9000 type veth peer name ens5");
    ip(&ns, "link set ens5 mtu 1450");
    ip(&ns, "link add eth1 mtu 1300 type veth peer name caliX");
    ip(&ns, "link set eth0 up");
    ip(&ns, "link set ens5 up");
    // eth1 stays down: ignored although it is the smallest.
    let mtu = ns
        .run(|| felix::mtu::detect_host_mtu(felix::mtu::DEFAULT_MTU_IFACE_PATTERN))
        .unwrap()
        .unwrap();
    assert_eq!(mtu, 1450);
}

#[test]
fn netns_reconciler_burst_of_new_workload_links() {
    let ns = Netns::create("fx-burst").expect("create namespace");
    let h = ReconcilerHandle::spawn(config(&ns)).expect("spawn reconciler");
    let n = 60u32;
    let mut d = DesiredState::default();
    for i in 0..n {
        let name = format!("cali{i:011}");
        let ip = addr(&format!("10.0.{}.{}", i / 200, i % 200 + 1));
        d.workloads.insert(
            name.clone(),
            WorkloadEndpoint {
                ifname: name,
                mac: None,
                ips: vec![ip],
            },
        );
    }
    // The endpoints are known before their links exist, as when the CNI reports them first.
    h.set_desired(d);
    wait_converged(&h);
    let dir = std::env::temp_dir().join(format!("fx-burst-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let batch = dir.join("links.batch");
    let mut cmds = String::new();
    for i in 0..n {
        cmds.push_str(&format!("link add cali{i:011} type veth peer name pod{i}\nlink set cali{i:011} up\nlink set pod{i} up\n"));
    }
    std::fs::write(&batch, cmds).unwrap();
    ns.ip(&["-batch", &batch.to_string_lossy()])
        .expect("create links");
    let _ = std::fs::remove_dir_all(&dir);
    let routes = || ip_json(&ns, &["-4", "route", "show", "proto", "97"]).len();
    assert!(
        wait_for(WAIT, || routes() == n as usize),
        "only {} of {n} workload routes after the burst",
        routes()
    );
    wait_converged(&h);
    assert_eq!(
        sysctl(&ns, &format!("net/ipv4/conf/cali{:011}/proxy_arp", n - 1)),
        "1"
    );
}
