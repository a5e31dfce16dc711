//! Issue 4, "How it must be shown": pods on different nodes reach each other through routes BGP
//! distributed and felix programmed, with no bridge and no overlay (Calico's BGP mode). Each
//! scenario builds its nodes, pods (real `ginger` plugin) and ToRs (real BIRD / FRR) in lab
//! namespaces and removes them when it ends. Run as root after `cargo build --workspace --bins`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use e2e::fabric::{ContinuousPing, Fabric, HostSpec, kernel_route, ping_once, tor_config};
use e2e::pods::ROUTE_PROTOCOL;
use e2e::scenarios::{Cluster, DaemonKind};
use e2e::*;
use ipnet::IpNet;

const T: Duration = Duration::from_secs(60);
const POOL: &str = "{cidr: 10.244.0.0/16, blockSize: 26}";

fn host(name: &str, segment: usize, cidr: &str) -> HostSpec {
    HostSpec {
        name: name.into(),
        segment,
        cidr: cidr.into(),
    }
}

fn fail(reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: "scenario",
        value: String::new(),
        reason: reason.into(),
    }
}

fn ensure(ok: bool, reason: impl FnOnce() -> String) -> Result<()> {
    if ok { Ok(()) } else { Err(fail(reason())) }
}

/// Every node's blocks are in every other node's kernel via that node, with Ginger's protocol;
/// and `route show --fib` lists them the same way.
fn check_remote_blocks(f: &Fabric) -> Result<()> {
    for owner in &f.nodes {
        for block in owner.blocks()? {
            for other in f.nodes.iter().filter(|n| n.address != owner.address) {
                let route = kernel_route(other.node.netns(), block)?;
                let want = (vec![IpAddr::V4(owner.address)], ROUTE_PROTOCOL.to_string());
                ensure(route.as_ref() == Some(&want), || {
                    format!(
                        "{} should route {block} via {}: {route:?}",
                        other.node.name(),
                        owner.address
                    )
                })?;
                let fib = other.node.fib()?;
                let line = format!("{block} via {} ", owner.address);
                ensure(fib.routes.iter().any(|l| l.starts_with(&line)), || {
                    format!(
                        "{}: route show --fib lacks {line:?}: {:?}",
                        other.node.name(),
                        fib.routes
                    )
                })?;
            }
        }
    }
    Ok(())
}

#[test]
fn three_node_mesh_with_a_bird_tor() {
    scenario("fabric-mesh", |dir| {
        let nodes = [("node-1", ".11"), ("node-2", ".12"), ("node-3", ".13")];
        let mut cluster = Cluster::new()
            .bgp_configuration("default", "{asNumber: 64512}")
            .doc("IPPool", "pool", &[], POOL)
            .bgp_peer("tor", "{peerIP: 10.81.0.1, asNumber: 65000}");
        for (n, a) in nodes {
            cluster = cluster.node(n, &format!("10.81.0{a}/24"), &[], "");
        }
        let file = cluster.write(&dir.path().join("cluster.yaml"))?;
        let hosts: Vec<HostSpec> = nodes
            .iter()
            .map(|(n, a)| host(n, 0, &format!("10.81.0{a}/24")))
            .collect();
        let mut f = Fabric::start(dir.path(), 1, &hosts, &file, &[])?;
        let peers: Vec<_> = f.nodes.iter().map(|n| (n.address, 64512)).collect();
        let tor = tor_config("10.81.0.1", 65000, &peers);
        f.add_tor(dir.path(), 0, "10.81.0.1/24", DaemonKind::Bird, tor)?;
        f.add_pods(2)?;

        f.wait_full_reachability(T)?;
        check_remote_blocks(&f)?;
        // The ToR holds every node's block, via that node (not via whoever re-advertised it).
        let bird = &f.tors[0].daemon;
        for n in &f.nodes {
            for block in n.blocks()? {
                let r = bird.wait_route(block, T, &|_| true)?;
                ensure(r.next_hop == Some(IpAddr::V4(n.address)), || {
                    format!("BIRD has {block} via {:?}, not {}", r.next_hop, n.address)
                })?;
                let in_fib = kernel_route(&f.tors[0].ns, block)?;
                ensure(
                    in_fib
                        .as_ref()
                        .is_some_and(|(g, _)| g == &[IpAddr::V4(n.address)]),
                    || format!("ToR kernel route to {block}: {in_fib:?}"),
                )?;
            }
        }
        Ok(())
    });
}

#[test]
fn two_racks_through_bird_and_frr_tors() {
    scenario("fabric-racks", |dir| {
        // Calico's AS-per-rack model: rack a (AS 65001, BIRD ToR 65101), rack b (AS 65002, FRR
        // ToR 65102), the mesh off, each node peering eBGP with its own ToR, ToRs with each other.
        let file = Cluster::new()
            .bgp_configuration("default", "{asNumber: 64512, nodeToNodeMeshEnabled: false}")
            .doc("IPPool", "pool", &[], POOL)
            .node("a1", "10.83.1.11/24", &[("rack", "a")], "asNumber: 65001")
            .node("b1", "10.83.2.11/24", &[("rack", "b")], "asNumber: 65002")
            .bgp_peer(
                "rack-a-tor",
                "{nodeSelector: \"rack == 'a'\", peerIP: 10.83.1.1, asNumber: 65101}",
            )
            .bgp_peer(
                "rack-b-tor",
                "{nodeSelector: \"rack == 'b'\", peerIP: 10.83.2.1, asNumber: 65102}",
            )
            .write(&dir.path().join("cluster.yaml"))?;
        let hosts = [
            host("a1", 0, "10.83.1.11/24"),
            host("b1", 1, "10.83.2.11/24"),
        ];
        let mut f = Fabric::start(dir.path(), 2, &hosts, &file, &[])?;
        let a1 = f.nodes[0].address;
        let b1 = f.nodes[1].address;
        let bird = tor_config("10.83.1.1", 65101, &[(a1, 65001)])
            .neighbor(Neighbor::parse("10.83.254.2", 65102).connect_retry(1));
        f.add_tor(dir.path(), 0, "10.83.1.1/24", DaemonKind::Bird, bird)?;
        let frr = tor_config("10.83.2.1", 65102, &[(b1, 65002)])
            .neighbor(Neighbor::parse("10.83.254.1", 65101).connect_retry(1));
        f.add_tor(dir.path(), 1, "10.83.2.1/24", DaemonKind::Frr, frr)?;
        let _spine = Veth::new(&f.tors[0].ns, "spine", &f.tors[1].ns, "spine")
            .addr_a("10.83.254.1/30")
            .addr_b("10.83.254.2/30")
            .create()?;
        f.add_pods(2)?;

        f.wait_full_reachability(T)?;
        // Cross-rack routes go through the node's own ToR.
        for (node, other, tor) in [(0, 1, "10.83.1.1"), (1, 0, "10.83.2.1")] {
            for block in f.nodes[other].blocks()? {
                let r = kernel_route(f.nodes[node].node.netns(), block)?;
                let want: IpAddr = tor.parse().unwrap();
                ensure(r.as_ref().is_some_and(|(g, _)| g == &[want]), || {
                    format!(
                        "{}: {block} should go via {tor}: {r:?}",
                        f.nodes[node].node.name()
                    )
                })?;
            }
        }
        Ok(())
    });
}

#[test]
fn route_reflector_and_three_clients() {
    scenario("fabric-rr", |dir| {
        let mut cluster = Cluster::new()
            .bgp_configuration("default", "{asNumber: 64512, nodeToNodeMeshEnabled: false}")
            .doc("IPPool", "pool", &[], POOL)
            .node(
                "rr",
                "10.84.0.1/24",
                &[("route-reflector", "true")],
                "routeReflectorClusterID: 244.0.0.1",
            )
            .bgp_peer(
                "peer-with-route-reflectors",
                "{nodeSelector: all(), peerSelector: \"route-reflector == 'true'\"}",
            );
        let mut hosts = vec![host("rr", 0, "10.84.0.1/24")];
        for i in 1..=3 {
            let cidr = format!("10.84.0.1{i}/24");
            cluster = cluster.node(&format!("c{i}"), &cidr, &[], "");
            hosts.push(host(&format!("c{i}"), 0, &cidr));
        }
        let file = cluster.write(&dir.path().join("cluster.yaml"))?;
        let mut f = Fabric::start(dir.path(), 1, &hosts, &file, &[])?;
        f.add_pods(1)?;
        f.wait_full_reachability(T)?;
        // Reflected routes keep the originating client as next hop (RFC 4456 §8).
        check_remote_blocks(&f)?;
        Ok(())
    });
}

/// A 3-node fabric peered by a `peerSelector` BGPPeer with short timers (Calico's way to tune
/// what the mesh cannot), one pod per node.
fn tuned_three_nodes(dir: &TestDir, net: &str) -> Result<Fabric> {
    let mut cluster = Cluster::new()
        .bgp_configuration("default", "{asNumber: 64512, nodeToNodeMeshEnabled: false}")
        .doc("IPPool", "pool", &[], POOL)
        .bgp_peer(
            "all",
            "{nodeSelector: all(), peerSelector: all(), keepaliveTime: 2s, holdTime: 6s, \
             maxRestartTime: 4s}",
        );
    let mut hosts = Vec::new();
    for i in 1..=3 {
        let cidr = format!("{net}.1{i}/24");
        cluster = cluster.node(&format!("node-{i}"), &cidr, &[], "");
        hosts.push(host(&format!("node-{i}"), 0, &cidr));
    }
    let file = cluster.write(&dir.path().join("cluster.yaml"))?;
    let mut f = Fabric::start(dir.path(), 1, &hosts, &file, &[])?;
    f.add_pods(1)?;
    f.wait_full_reachability(T)?;
    Ok(f)
}

#[test]
fn node_loss_withdraws_its_blocks_after_hold_and_restart_time() {
    scenario("fabric-loss", |dir| {
        let f = tuned_three_nodes(dir, "10.86.0")?;
        let lost = &f.nodes[2];
        let blocks = lost.blocks()?;
        let watcher = &f.nodes[0];
        // Cut the node off and freeze its agent: no NOTIFICATION, no TCP close.
        let cut = Instant::now();
        lost.node.agent()?.process().sigstop()?;
        lost.uplink.set_up(End::A, false)?;

        // Graceful restart (RFC 4724 §4.2): at hold-time expiry the paths turn stale and stay
        // in the FIB for the restart time (4 s), then they go.
        let mut saw_stale = false;
        let gone = wait_until(T, "the lost node's blocks to leave node-1's FIB", || {
            let routes = watcher.node.agent()?.routes(Some(blocks[0]))?;
            saw_stale |= routes.iter().any(|r| r.paths.iter().any(|p| p.stale));
            match kernel_route(watcher.node.netns(), blocks[0])? {
                None => Ok(cut.elapsed()),
                Some(r) => Err(fail(format!("still {r:?}"))),
            }
        })?;
        ensure(saw_stale, || "the paths were never marked stale".into())?;
        // Hold time 6 s minus at most one keepalive interval (2 s), plus the restart time 4 s.
        ensure(gone >= Duration::from_secs(8), || {
            format!("withdrawn after {gone:?}, before hold time + restart time")
        })?;
        // Nothing stale remains anywhere, and the two live nodes still reach each other.
        for n in &f.nodes[..2] {
            for block in &blocks {
                wait_until(T, "no route to the lost node's block", || {
                    let rib = n.node.agent()?.routes(Some(*block))?;
                    let paths: usize = rib.iter().map(|r| r.paths.len()).sum();
                    let fib = kernel_route(n.node.netns(), *block)?;
                    if paths == 0 && fib.is_none() {
                        Ok(())
                    } else {
                        Err(fail(format!("RIB {rib:?}, FIB {fib:?}")))
                    }
                })?;
            }
            let peers = n.node.agent()?.peers()?;
            ensure(peers.iter().all(|p| p.stale_paths == 0), || {
                format!("{}: stale paths remain: {peers:?}", n.node.name())
            })?;
        }
        let (p1, p2) = (&f.nodes[0].pods[0], &f.nodes[1].pods[0]);
        ensure(ping_once(p1.netns(), p2.addresses()[0]), || {
            "node-1's pod no longer reaches node-2's".into()
        })?;

        // The node comes back: its blocks return.
        lost.uplink.set_up(End::A, true)?;
        lost.node.agent()?.process().sigcont()?;
        f.wait_full_reachability(T)?;
        Ok(())
    });
}

/// SIGKILL and restart the agent of `f.nodes[i]`, then wait until it serves and has finished
/// its graceful restart (ready again).
fn kill_and_restart(f: &mut Fabric, i: usize) -> Result<()> {
    let n = &mut f.nodes[i].node;
    n.stop(Signal::SIGKILL)?;
    n.restart()?;
    let addr = |p: &bgp::status::PeerStatus| p.address;
    wait_until(T, "the restarted agent's sessions and recovery", || {
        let agent = n.agent()?;
        let peers = agent.peers()?;
        let down: Vec<IpAddr> = peers
            .iter()
            .filter(|p| p.state != bgp::status::SessionState::Established)
            .map(addr)
            .collect();
        let (code, out, _) = agent.gingerctl(&["node", "status"])?;
        if down.is_empty() && code == 0 && n.fib()?.converged {
            Ok(out)
        } else {
            Err(fail(format!("down: {down:?}")))
        }
    })?;
    Ok(())
}

/// A continuous 100 packets/s ping between pods on two nodes survives SIGKILL + restart of
/// each node's agent without losing a packet.
fn hitless(f: &mut Fabric, dir: &TestDir) -> Result<()> {
    let src = f.nodes[0].pods[0].netns();
    let dst = f.nodes[1].pods[0].addresses()[0];
    let ping = ContinuousPing::start(src, dst, Duration::from_millis(10), dir.path())?;
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..f.nodes.len() {
        kill_and_restart(f, i)?;
        std::thread::sleep(Duration::from_secs(2));
    }
    let summary = ping.stop()?;
    ensure(
        summary.transmitted >= 300 && summary.received == summary.transmitted,
        || format!("ping across restarts: {summary:?}"),
    )
}

#[test]
fn hitless_agent_restart_in_a_mesh() {
    scenario("fabric-hitless", |dir| {
        let file = Cluster::new()
            .bgp_configuration("default", "{asNumber: 64512}")
            .doc("IPPool", "pool", &[], POOL)
            .node("node-1", "10.87.0.11/24", &[], "")
            .node("node-2", "10.87.0.12/24", &[], "")
            .write(&dir.path().join("cluster.yaml"))?;
        let hosts = [
            host("node-1", 0, "10.87.0.11/24"),
            host("node-2", 0, "10.87.0.12/24"),
        ];
        let mut f = Fabric::start(dir.path(), 1, &hosts, &file, &[])?;
        f.add_pods(1)?;
        f.wait_full_reachability(T)?;
        hitless(&mut f, dir)
    });
}

#[test]
fn hitless_agent_restart_with_a_bird_tor_as_helper() {
    scenario("fabric-hitless-tor", |dir| {
        // The default topology (mesh and a BIRD ToR). Traffic from the ToR to a pod follows
        // the ToR's own FIB, which stays only if BIRD keeps the restarting node's routes (RFC
        // 4724 helper, BIRD's default "graceful restart aware").
        let file = Cluster::new()
            .bgp_configuration("default", "{asNumber: 64512}")
            .doc("IPPool", "pool", &[], POOL)
            .node("node-1", "10.88.0.11/24", &[], "")
            .node("node-2", "10.88.0.12/24", &[], "")
            .bgp_peer("tor", "{peerIP: 10.88.0.1, asNumber: 65000}")
            .write(&dir.path().join("cluster.yaml"))?;
        let hosts = [
            host("node-1", 0, "10.88.0.11/24"),
            host("node-2", 0, "10.88.0.12/24"),
        ];
        let mut f = Fabric::start(dir.path(), 1, &hosts, &file, &[])?;
        let peers: Vec<_> = f.nodes.iter().map(|n| (n.address, 64512)).collect();
        let tor = tor_config("10.88.0.1", 65000, &peers);
        f.add_tor(dir.path(), 0, "10.88.0.1/24", DaemonKind::Bird, tor)?;
        f.add_pods(1)?;
        f.wait_full_reachability(T)?;
        let target = f.nodes[0].pods[0].addresses()[0];
        wait_until(T, "the ToR to reach node-1's pod", || {
            if ping_once(&f.tors[0].ns, target) {
                Ok(())
            } else {
                Err(fail("no answer"))
            }
        })?;
        let tor_ping =
            ContinuousPing::start(&f.tors[0].ns, target, Duration::from_millis(10), dir.path())?;
        hitless(&mut f, dir)?;
        let summary = tor_ping.stop()?;
        ensure(
            summary.transmitted >= 300 && summary.received == summary.transmitted,
            || format!("ToR → pod ping across restarts: {summary:?}"),
        )
    });
}

#[test]
fn a_borrowed_address_is_reachable_from_every_node() {
    scenario("fabric-borrow", |dir| {
        // Two blocks of eight: node-1 and node-2 take one each, so node-3 must borrow.
        let mut cluster = Cluster::new()
            .bgp_configuration("default", "{asNumber: 64512}")
            .doc(
                "IPPool",
                "small",
                &[],
                "{cidr: 10.89.100.0/28, blockSize: 29}",
            );
        let mut hosts = Vec::new();
        for i in 1..=3 {
            let cidr = format!("10.89.0.1{i}/24");
            cluster = cluster.node(&format!("node-{i}"), &cidr, &[], "");
            hosts.push(host(&format!("node-{i}"), 0, &cidr));
        }
        let file = cluster.write(&dir.path().join("cluster.yaml"))?;
        let mut f = Fabric::start(dir.path(), 1, &hosts, &file, &[])?;
        f.nodes[0].add_pod("owner-1")?;
        f.nodes[1].add_pod("owner-2")?;
        let borrowed = f.nodes[2].add_pod("borrower")?.addresses()[0];
        ensure(f.nodes[2].blocks()?.is_empty(), || {
            "node-3 got a block".into()
        })?;
        let owner = f
            .nodes
            .iter()
            .find(|n| {
                n.blocks()
                    .is_ok_and(|b| b.iter().any(|b| b.contains(&borrowed)))
            })
            .ok_or_else(|| fail(format!("no node owns the block of {borrowed}")))?;
        // The owner routes the /32 to the borrower, over its own blackhole.
        let host_route = IpNet::from(borrowed);
        let node3 = IpAddr::V4(f.nodes[2].address);
        wait_until(T, "the owner's /32 to the borrower", || match kernel_route(
            owner.node.netns(),
            host_route,
        )? {
            Some((g, _)) if g == [node3] => Ok(()),
            other => Err(fail(format!("{other:?}"))),
        })?;
        // From every node and every pod.
        for n in &f.nodes[..2] {
            wait_until(T, "the borrowed address to answer", || {
                if ping_once(n.node.netns(), borrowed) && ping_once(n.pods[0].netns(), borrowed) {
                    Ok(())
                } else {
                    Err(fail(format!("not from {}", n.node.name())))
                }
            })?;
        }
        f.wait_full_reachability(T)?;
        Ok(())
    });
}
