//! Reconciler behaviour against the in-memory kernel: convergence after every single injected
//! failure (Calico's `RoutetableFailureScenarios`), the grace period, deltas, and a restart that
//! writes nothing.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use felix::dataplane::mock::{FailFlags, MockKernel};
use felix::monitor::LinkEvent;
use felix::reconciler::Metrics;
use felix::{
    DesiredChange, DesiredState, MacAddr, Neighbour, NextHop, NextHopSet, ReconcilerConfig,
    ReconcilerCore, RemoteRoute, Route, WorkloadEndpoint,
};
use ipnet::IpNet;

const P: u8 = 97;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn gw(g: &str, ifindex: u32) -> NextHop {
    NextHop {
        gateway: Some(ip(g)),
        ifindex,
        onlink: false,
    }
}

const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
/// The MAC a later CNI plugin (`tuning`) gives a pod's `eth0`.
const MAC_TUNED: MacAddr = MacAddr([0xc2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
/// caliA's pod namespace id as seen from the node, and its `eth0`'s ifindex there.
const POD_NSID: i32 = 3;
const POD_IFINDEX: u32 = 2;

/// The foreign routes that must survive everything.
fn foreign_routes(eth0: u32) -> Vec<Route> {
    let connected = Route {
        protocol: 2,
        scope: 253,
        ..Route::via(
            net("192.0.2.0/24"),
            vec![NextHop {
                gateway: None,
                ifindex: eth0,
                onlink: false,
            }],
            2,
        )
    };
    let default = Route::via(net("0.0.0.0/0"), vec![gw("192.0.2.254", eth0)], 4);
    let static_elsewhere = Route::via(net("10.9.0.0/24"), vec![gw("192.0.2.1", eth0)], 4);
    let foreign_blackhole = Route::blackhole(net("10.8.0.0/24"), 12);
    vec![connected, default, static_elsewhere, foreign_blackhole]
}

/// A kernel with stale and foreign state, and the desired state for it.
fn setup() -> (MockKernel, DesiredState) {
    let kernel = MockKernel::new();
    {
        let mut k = kernel.state();
        k.add_link("lo", true);
        let eth0 = k.add_link("eth0", true);
        let cali_a = k.add_link("caliA", true);
        let cali_b = k.add_link("caliB", true);
        let cali_c = k.add_link("caliC", true);
        // The pods' ends of the veths: caliA's has the MAC its endpoint reports; caliB's
        // endpoint reports none, so its far end's MAC must not create an entry.
        k.set_peer(cali_a, POD_NSID, POD_IFINDEX, Some(MAC_A));
        k.set_peer(cali_b, POD_NSID + 1, POD_IFINDEX, Some(MAC_TUNED));
        k.local_addrs.insert(ip("192.0.2.10"));
        for r in foreign_routes(eth0) {
            k.put_route(r);
        }
        // A BIRD route on a workload link: Ginger's to remove (calico.md §3.2).
        k.put_route(Route::workload(ip("10.0.0.77"), cali_b, 12));
        // Ginger's own leftovers: a block no longer owned, a route on an endpoint-less link.
        k.put_route(Route::blackhole(net("10.5.0.0/26"), P));
        k.put_route(Route::workload(ip("10.0.0.9"), cali_c, P));
        for (key, _) in felix::sysctl::workload_link_sysctls("caliA")
            .into_iter()
            .chain(felix::sysctl::workload_link_sysctls("caliB"))
            .chain(felix::sysctl::workload_link_sysctls("caliC"))
        {
            k.sysctls.insert(key, "unset".into());
        }
        k.sysctls.insert("net/ipv4/ip_forward".into(), "0".into());
    }
    let mut d = DesiredState::default();
    d.workloads.insert(
        "caliA".into(),
        WorkloadEndpoint {
            ifname: "caliA".into(),
            mac: Some(MAC_A),
            ips: vec![ip("10.0.0.1")],
        },
    );
    d.workloads.insert(
        "caliB".into(),
        WorkloadEndpoint {
            ifname: "caliB".into(),
            mac: None,
            ips: vec![ip("10.0.0.2"), ip("fd00::2")],
        },
    );
    d.blackholes.insert(net("10.0.0.0/26"));
    let remote = |dst: &str, nhs: &[&str]| RemoteRoute {
        dst: net(dst),
        next_hops: nhs.iter().map(|s| ip(s)).collect(),
    };
    d.remotes.insert(
        net("10.1.0.0/26"),
        remote("10.1.0.0/26", &["192.0.2.1", "192.0.2.2"]),
    );
    d.remotes
        .insert(net("10.2.0.0/26"), remote("10.2.0.0/26", &["198.51.100.9"]));
    d.remotes
        .insert(net("10.3.0.0/26"), remote("10.3.0.0/26", &["192.0.2.10"]));
    (kernel, d)
}

/// Asserts the kernel holds exactly the desired state plus the untouched foreign routes.
fn assert_converged(kernel: &MockKernel, scenario: &str) {
    let k = kernel.state();
    let idx = |name: &str| {
        k.link_index(name)
            .unwrap_or_else(|| panic!("{scenario}: link {name} missing"))
    };
    let (eth0, a, b) = (idx("eth0"), idx("caliA"), idx("caliB"));
    let mut want = foreign_routes(eth0);
    want.extend([
        Route::workload(ip("10.0.0.1"), a, P),
        Route::workload(ip("10.0.0.2"), b, P),
        Route::workload(ip("fd00::2"), b, P),
        Route::blackhole(net("10.0.0.0/26"), P),
        Route::via(
            net("10.1.0.0/26"),
            vec![gw("192.0.2.1", eth0), gw("192.0.2.2", eth0)],
            P,
        ),
        // Resolved recursively through the default route (BIRD's `gateway recursive`).
        Route::via(net("10.2.0.0/26"), vec![gw("192.0.2.254", eth0)], P),
    ]);
    let mut got = k.routes.clone();
    let key = |r: &Route| (r.dst, r.priority, r.protocol);
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want, "{scenario}: routes");
    let neigh: Vec<Neighbour> = k.neighbours.values().copied().collect();
    assert_eq!(
        neigh,
        vec![Neighbour {
            ifindex: a,
            ip: ip("10.0.0.1"),
            mac: MAC_A,
            permanent: true
        }],
        "{scenario}: neighbours"
    );
    for name in ["caliA", "caliB", "caliC"] {
        for (key, value) in felix::sysctl::workload_link_sysctls(name) {
            assert_eq!(
                k.sysctls.get(&key).map(String::as_str),
                Some(value),
                "{scenario}: {key}"
            );
        }
    }
    assert_eq!(
        k.sysctls["net/ipv4/ip_forward"], "1",
        "{scenario}: ip_forward"
    );
}

fn config() -> ReconcilerConfig {
    ReconcilerConfig {
        grace_period: Duration::from_secs(10),
        ..Default::default()
    }
}

/// Steps the reconciler through 40 simulated seconds (past the grace period and any backoff).
fn run_for(
    core: &mut ReconcilerCore<felix::dataplane::mock::MockDataplane>,
    mut now: Instant,
    secs: u64,
) -> Instant {
    for _ in 0..secs * 4 {
        core.step(now);
        now += Duration::from_millis(250);
    }
    now
}

type Hook = fn(&MockKernel, &mut ReconcilerCore<felix::dataplane::mock::MockDataplane>);

struct Scenario {
    name: &'static str,
    fail: fn(&mut FailFlags, &MockKernel),
    /// Runs after the first step (e.g. the CNI re-creating a link that vanished).
    after_first_step: Option<Hook>,
}

fn scenarios() -> Vec<Scenario> {
    fn recreate_cali_a(
        kernel: &MockKernel,
        core: &mut ReconcilerCore<felix::dataplane::mock::MockDataplane>,
    ) {
        let mut k = kernel.state();
        if k.link_index("caliA").is_none() {
            let index = k.add_link("caliA", true);
            let link = k.links[&index].clone();
            for (key, _) in felix::sysctl::workload_link_sysctls("caliA") {
                k.sysctls.insert(key, "unset".into());
            }
            drop(k);
            core.on_link_event(LinkEvent::Changed(link));
        }
    }
    vec![
        Scenario {
            name: "no failure",
            fail: |_, _| {},
            after_first_step: None,
        },
        Scenario {
            name: "fail next route add",
            fail: |f, _| f.next_route_add = true,
            after_first_step: None,
        },
        Scenario {
            name: "fail next route delete",
            fail: |f, _| f.next_route_delete = true,
            after_first_step: None,
        },
        Scenario {
            name: "fail next neighbour set",
            fail: |f, _| f.next_neighbour_set = true,
            after_first_step: None,
        },
        Scenario {
            name: "netlink overrun: replies lost",
            fail: |f, _| f.next_apply_replies_lost = true,
            after_first_step: None,
        },
        Scenario {
            name: "socket error on apply",
            fail: |f, _| f.next_apply_socket_error = true,
            after_first_step: None,
        },
        Scenario {
            name: "link vanished mid-apply",
            fail: |f, k| f.link_vanishes_mid_apply = k.state().link_index("caliA"),
            after_first_step: Some(recreate_cali_a),
        },
        Scenario {
            name: "route list EINTR",
            fail: |f, _| f.next_route_list_eintr = true,
            after_first_step: None,
        },
        Scenario {
            name: "link list fails",
            fail: |f, _| f.next_link_list = true,
            after_first_step: None,
        },
        Scenario {
            name: "neighbour list fails",
            fail: |f, _| f.next_neighbour_list = true,
            after_first_step: None,
        },
        Scenario {
            name: "next-hop lookup fails",
            fail: |f, _| f.next_resolve = true,
            after_first_step: None,
        },
        Scenario {
            name: "sysctl write fails",
            fail: |f, _| f.next_sysctl_write = true,
            after_first_step: None,
        },
        Scenario {
            name: "reading the pods' veth ends fails",
            fail: |f, _| f.next_peer_read = true,
            after_first_step: None,
        },
    ]
}

#[test]
fn converges_after_every_single_failure() {
    for s in scenarios() {
        let (kernel, desired) = setup();
        let mut flags = FailFlags::default();
        (s.fail)(&mut flags, &kernel);
        kernel.state().fail = flags;
        let t0 = Instant::now();
        let mut core = ReconcilerCore::new(
            kernel.dataplane(),
            config(),
            Arc::new(Metrics::default()),
            t0,
        );
        core.set_desired(desired);
        core.step(t0);
        if let Some(hook) = s.after_first_step {
            hook(&kernel, &mut core);
        }
        run_for(&mut core, t0 + Duration::from_millis(250), 40);
        assert_eq!(
            kernel.state().fail,
            FailFlags::default(),
            "{}: the failure never fired",
            s.name
        );
        assert_converged(&kernel, s.name);
        assert!(
            core.snapshot().converged,
            "{}: not marked converged",
            s.name
        );
        let rejected: Vec<IpNet> = core.rejected().iter().map(|r| r.dst).collect();
        assert_eq!(
            rejected,
            vec![net("10.3.0.0/26")],
            "{}: a local next hop must not resolve",
            s.name
        );
    }
}

#[test]
fn monitor_overrun_triggers_full_resync_that_repairs_unseen_changes() {
    let (kernel, desired) = setup();
    let t0 = Instant::now();
    let metrics = Arc::new(Metrics::default());
    let mut core = ReconcilerCore::new(kernel.dataplane(), config(), metrics.clone(), t0);
    core.set_desired(desired);
    let now = run_for(&mut core, t0, 20);
    assert_converged(&kernel, "before");
    // Someone deletes a pod route by hand; the event that would tell us is lost.
    kernel.state().delete_routes_to(net("10.0.0.1/32"));
    let before = metrics.snapshot().full_resyncs;
    core.step(now);
    assert!(
        kernel
            .state()
            .routes
            .iter()
            .all(|r| r.dst != net("10.0.0.1/32")),
        "no resync without a reason"
    );
    core.on_link_event(LinkEvent::Overrun);
    core.step(now + Duration::from_millis(10));
    assert_eq!(metrics.snapshot().full_resyncs, before + 1);
    assert_converged(&kernel, "after overrun");
}

/// The pod's `eth0` as the monitor reports it from the pod's namespace.
fn pod_eth0(mac: Option<MacAddr>) -> felix::Link {
    felix::Link {
        index: POD_IFINDEX,
        name: "eth0".into(),
        up: true,
        running: true,
        mtu: 1500,
        mac,
    }
}

fn neighbour_mac(kernel: &MockKernel, ip_addr: &str) -> Option<MacAddr> {
    let k = kernel.state();
    k.neighbours
        .values()
        .find(|n| n.ip == ip(ip_addr))
        .map(|n| n.mac)
}

#[test]
fn pod_side_mac_change_replaces_the_neighbour_at_once() {
    let (kernel, desired) = setup();
    let t0 = Instant::now();
    let metrics = Arc::new(Metrics::default());
    let mut core = ReconcilerCore::new(kernel.dataplane(), config(), metrics.clone(), t0);
    core.set_desired(desired);
    let now = run_for(&mut core, t0, 20);
    assert_converged(&kernel, "before");
    let before = metrics.snapshot();
    let cali_a = kernel.state().link_index("caliA").unwrap();
    // Events that change nothing about a workload's far end cause no work: another namespace's
    // link with the same ifindex, and caliA's far end going up with its MAC unchanged.
    core.on_link_event(LinkEvent::ChangedElsewhere {
        nsid: 9,
        link: pod_eth0(Some(MAC_TUNED)),
    });
    core.on_link_event(LinkEvent::ChangedElsewhere {
        nsid: POD_NSID,
        link: pod_eth0(Some(MAC_A)),
    });
    core.step(now);
    assert_eq!(metrics.snapshot(), before, "unrelated events did work");
    // `tuning` sets the pod's MAC after the endpoint was reported.
    kernel.state().set_peer_mac(cali_a, Some(MAC_TUNED));
    core.on_link_event(LinkEvent::ChangedElsewhere {
        nsid: POD_NSID,
        link: pod_eth0(Some(MAC_TUNED)),
    });
    core.step(now + Duration::from_millis(10));
    assert_eq!(neighbour_mac(&kernel, "10.0.0.1"), Some(MAC_TUNED));
    let after = metrics.snapshot();
    assert_eq!(after.full_resyncs, before.full_resyncs, "no full resync");
    assert_eq!(
        after.link_resyncs,
        before.link_resyncs + 1,
        "one per-link resync"
    );
    assert_eq!(
        after.ops_applied,
        before.ops_applied + 1,
        "one neighbour replaced"
    );
    assert_eq!(
        neighbour_mac(&kernel, "10.0.0.2"),
        None,
        "caliB reported no MAC"
    );
}

#[test]
fn a_missed_pod_side_mac_change_is_repaired_by_the_periodic_resync() {
    let (kernel, desired) = setup();
    let t0 = Instant::now();
    let mut core = ReconcilerCore::new(
        kernel.dataplane(),
        config(),
        Arc::new(Metrics::default()),
        t0,
    );
    core.set_desired(desired);
    run_for(&mut core, t0, 20);
    let cali_a = kernel.state().link_index("caliA").unwrap();
    kernel.state().set_peer_mac(cali_a, Some(MAC_TUNED));
    core.step(t0 + Duration::from_secs(91));
    assert_eq!(neighbour_mac(&kernel, "10.0.0.1"), Some(MAC_TUNED));
}

#[test]
fn unreadable_pod_side_mac_keeps_the_reported_one() {
    let (kernel, desired) = setup();
    let cali_a = kernel.state().link_index("caliA").unwrap();
    kernel.state().set_peer_mac(cali_a, Some(MAC_TUNED));
    let t0 = Instant::now();
    let mut core = ReconcilerCore::new(
        kernel.dataplane(),
        config(),
        Arc::new(Metrics::default()),
        t0,
    );
    core.set_desired(desired);
    let now = run_for(&mut core, t0, 20);
    assert_eq!(
        neighbour_mac(&kernel, "10.0.0.1"),
        Some(MAC_TUNED),
        "the pod-side MAC wins over the reported one"
    );
    // The far end can no longer be read (its namespace lost its id): back to what was reported.
    kernel.state().set_peer_mac(cali_a, None);
    core.request_full_resync();
    core.step(now);
    assert_eq!(neighbour_mac(&kernel, "10.0.0.1"), Some(MAC_A));
    // A veth with no far end in another namespace at all: the same.
    kernel.state().peers.clear();
    kernel.state().set_peer_mac(cali_a, Some(MAC_TUNED));
    core.request_full_resync();
    core.step(now + Duration::from_millis(10));
    assert_converged(&kernel, "without far ends");
}

#[test]
fn periodic_resync_restores_a_route_deleted_by_hand() {
    let (kernel, desired) = setup();
    let t0 = Instant::now();
    let mut core = ReconcilerCore::new(
        kernel.dataplane(),
        config(),
        Arc::new(Metrics::default()),
        t0,
    );
    core.set_desired(desired);
    let now = run_for(&mut core, t0, 20);
    kernel.state().delete_routes_to(net("10.1.0.0/26"));
    let wake = core.step(now);
    assert!(
        wake <= t0 + Duration::from_secs(91),
        "next wake-up must be the 90 s resync at the latest"
    );
    core.step(t0 + Duration::from_secs(91));
    assert_converged(&kernel, "after periodic resync");
}

#[test]
fn grace_period_keeps_routes_on_a_new_link_until_it_expires() {
    let (kernel, desired) = setup();
    let t0 = Instant::now();
    let mut core = ReconcilerCore::new(
        kernel.dataplane(),
        config(),
        Arc::new(Metrics::default()),
        t0,
    );
    core.set_desired(desired);
    core.step(t0);
    let stale = net("10.0.0.9/32");
    assert!(
        kernel.state().routes.iter().any(|r| r.dst == stale),
        "deleted inside the grace period"
    );
    // A new link appears later with a CNI route, its endpoint not yet known.
    let (cali_d, link) = {
        let mut k = kernel.state();
        let i = k.add_link("caliD", true);
        k.put_route(Route::workload(ip("10.0.0.40"), i, P));
        (i, k.links[&i].clone())
    };
    let t1 = t0 + Duration::from_secs(8);
    core.on_link_event(LinkEvent::Changed(link));
    let wake = core.step(t1);
    assert!(
        wake <= t0 + Duration::from_secs(10),
        "must wake when the first grace period ends"
    );
    core.step(t0 + Duration::from_secs(11));
    {
        let k = kernel.state();
        assert!(
            !k.routes.iter().any(|r| r.dst == stale),
            "stale route outlived its grace period"
        );
        assert!(
            k.routes.iter().any(|r| r.dst == net("10.0.0.40/32")),
            "caliD's grace started at t0+8s"
        );
    }
    // The endpoint arrives in time: the route is kept and adopted.
    core.apply_changes(vec![DesiredChange::UpsertWorkload(WorkloadEndpoint {
        ifname: "caliD".into(),
        mac: None,
        ips: vec![ip("10.0.0.40")],
    })]);
    core.step(t0 + Duration::from_secs(30));
    assert!(
        kernel
            .state()
            .routes
            .contains(&Route::workload(ip("10.0.0.40"), cali_d, P))
    );
}

#[test]
fn restart_on_an_unchanged_kernel_writes_nothing() {
    let (kernel, desired) = setup();
    let t0 = Instant::now();
    let mut first = ReconcilerCore::new(
        kernel.dataplane(),
        config(),
        Arc::new(Metrics::default()),
        t0,
    );
    first.set_desired(desired.clone());
    run_for(&mut first, t0, 20);
    drop(first); // no flush on exit
    assert_converged(&kernel, "after first run");
    let writes = kernel.state().writes;
    let t1 = t0 + Duration::from_secs(60);
    let mut second = ReconcilerCore::new(
        kernel.dataplane(),
        config(),
        Arc::new(Metrics::default()),
        t1,
    );
    second.set_desired(desired);
    run_for(&mut second, t1, 20);
    assert_eq!(
        kernel.state().writes,
        writes,
        "a restart must adopt, not rewrite"
    );
    assert_converged(&kernel, "after restart");
}

#[test]
fn deltas_add_and_remove_routes() {
    let (kernel, desired) = setup();
    let t0 = Instant::now();
    let mut core = ReconcilerCore::new(
        kernel.dataplane(),
        config(),
        Arc::new(Metrics::default()),
        t0,
    );
    core.set_desired(desired);
    let now = run_for(&mut core, t0, 20);
    let eth0 = kernel.state().link_index("eth0").unwrap();
    core.apply_changes(vec![
        DesiredChange::UpsertRemote(RemoteRoute {
            dst: net("10.4.0.0/26"),
            next_hops: NextHopSet::from([ip("192.0.2.3")]),
        }),
        DesiredChange::RemoveRemote(net("10.1.0.0/26")),
        DesiredChange::RemoveWorkload {
            ifname: "caliA".into(),
        },
    ]);
    core.step(now);
    let k = kernel.state();
    assert!(k.routes.contains(&Route::via(
        net("10.4.0.0/26"),
        vec![gw("192.0.2.3", eth0)],
        P
    )));
    assert!(!k.routes.iter().any(|r| r.dst == net("10.1.0.0/26")));
    assert!(!k.routes.iter().any(|r| r.dst == net("10.0.0.1/32")));
    assert!(
        k.neighbours.is_empty(),
        "the removed workload's neighbour entry goes too"
    );
}

#[test]
fn nothing_is_written_before_the_first_desired_state() {
    let (kernel, desired) = setup();
    let t0 = Instant::now();
    let mut core = ReconcilerCore::new(
        kernel.dataplane(),
        config(),
        Arc::new(Metrics::default()),
        t0,
    );
    let before = kernel.state().routes.clone();
    run_for(&mut core, t0, 20);
    assert_eq!(
        kernel.state().routes,
        before,
        "routes changed before the agent said what it wants"
    );
    core.set_desired(desired);
    core.step(t0 + Duration::from_secs(21));
    assert_converged(&kernel, "after the first desired state");
}

#[test]
fn a_burst_of_link_events_becomes_one_full_resync() {
    let (kernel, desired) = setup();
    let t0 = Instant::now();
    let metrics = Arc::new(Metrics::default());
    let mut core = ReconcilerCore::new(kernel.dataplane(), config(), metrics.clone(), t0);
    core.set_desired(desired);
    let now = run_for(&mut core, t0, 20);
    let before = metrics.snapshot();
    let new_links: Vec<felix::Link> = {
        let mut k = kernel.state();
        (0..40)
            .map(|i| k.add_link(&format!("caliN{i}"), true))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|i| k.links[&i].clone())
            .collect()
    };
    for l in new_links {
        core.on_link_event(LinkEvent::Changed(l));
    }
    core.step(now);
    let after = metrics.snapshot();
    assert_eq!(after.full_resyncs, before.full_resyncs + 1);
    assert_eq!(
        after.link_resyncs, before.link_resyncs,
        "no per-link dumps for a burst"
    );
    assert_eq!(
        kernel.state().sysctls["net/ipv4/conf/caliN39/proxy_arp"],
        "1",
        "new links configured"
    );
}

#[test]
fn threaded_handle_over_the_mock_converges_and_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<felix::ReconcilerHandle>();
    let (kernel, desired) = setup();
    let cfg = ReconcilerConfig {
        grace_period: Duration::ZERO,
        ..Default::default()
    };
    let h = felix::ReconcilerHandle::spawn_with(kernel.dataplane(), cfg).expect("spawn");
    h.set_desired(desired);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.snapshot_blocking().expect("thread alive").converged {
        assert!(Instant::now() < deadline, "did not converge");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_converged(&kernel, "threaded handle");
    let rejected = h.rejected().borrow().clone();
    assert_eq!(
        rejected.iter().map(|r| r.dst).collect::<Vec<_>>(),
        vec![net("10.3.0.0/26")]
    );
    let m = h.metrics();
    assert!(
        m.ops_applied > 0 && m.full_resyncs >= 1 && m.routes_programmed == 6,
        "{m:?}"
    );
    h.shutdown();
    assert_converged(&kernel, "shutdown flushes nothing");
}
