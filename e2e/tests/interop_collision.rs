//! Simultaneous connects resolve to one session (RFC 4271 §6.8 connection collision detection):
//! both ends of a session connect actively at the same moment, and exactly one BGP session
//! (one TCP connection) results and stays up.
//!
//! To make the connects truly simultaneous, both ends start while BGP messages on the link are
//! held back (`HeldOpens`: TCP connects, OPENs do not pass); once a connection in each
//! direction is up, the OPENs are let through and cross on both, so each end must detect the
//! collision and keep one connection. The tests check that a collision was really resolved
//! (a Cease / Connection Collision Resolution, 6/7, went one way or the other) and that
//! exactly one session, on one TCP connection, stays up for longer than the hold time. Two
//! cases: two `ginger-node`s with `Node_` peers to each other (both active, unlike mesh peers),
//! and FRR with a ginger-node.

use std::time::Duration;

use bgp::status::PeerCounters;
use e2e::scenarios::{
    Cluster, HeldOpens, bgp_connections, both_directions, hold_for, ip, net, path_from,
};
use e2e::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);
/// How long the single session must stay up: longer than the hold time, so a second
/// connection left half-open would have expired and shown as a flap.
const STABLE: Duration = Duration::from_secs(10);

#[test]
fn two_ginger_nodes_with_node_peers_connecting_at_once_keep_one_session() {
    scenario("collide-gg", |dir| {
        let (a, b) = (Netns::new("n1")?, Netns::new("n2")?);
        Veth::new(&a, "eth0", &b, "eth0")
            .addr_a("10.88.0.1/24")
            .addr_b("10.88.0.2/24")
            .create()?;
        // Mesh off: `Node_` peers from both sides; both connect (confd writes no `passive`).
        let file = Cluster::new()
            .bgp_configuration(
                "default",
                "{asNumber: 64512, nodeToNodeMeshEnabled: false, \
                 serviceClusterIPs: [{cidr: 10.96.0.0/12}]}",
            )
            .node("n1", "10.88.0.1/24", &[], "")
            .node("n2", "10.88.0.2/24", &[], "")
            .bgp_peer(
                "n1-to-n2",
                "{node: n1, peerIP: 10.88.0.2, asNumber: 64512, holdTime: 6s, keepaliveTime: 2s}",
            )
            .bgp_peer(
                "n2-to-n1",
                "{node: n2, peerIP: 10.88.0.1, asNumber: 64512, holdTime: 6s, keepaliveTime: 2s}",
            )
            .write(&dir.join("cluster.yaml"))?;
        let mut held = HeldOpens::hold(&a, "eth0")?;
        let n1 = GingerNode::start(&a, dir.path(), &file, "n1", &[])?;
        let n2 = GingerNode::start(&b, dir.path(), &file, "n2", &[])?;
        let (to_n2, to_n1) = (ip("10.88.0.2"), ip("10.88.0.1"));
        wait_for(
            T,
            "a TCP connection from each node to the other",
            || bgp_connections(&a),
            |c| both_directions(c),
        )?;
        held.release()?;

        let p1 = n1.wait_established(to_n2, T)?;
        let p2 = n2.wait_established(to_n1, T)?;
        assert_eq!(p1.name, "Node_10_88_0_2");
        assert_eq!(p2.name, "Node_10_88_0_1");
        wait_for(
            T,
            "one BGP connection between n1 and n2",
            || bgp_connections(&a),
            |c| c.len() == 1,
        )?;
        let (s1, s2) = hold_for(
            STABLE,
            "one established session, never re-established",
            || Ok((n1.peer(to_n2)?, n2.peer(to_n1)?, bgp_connections(&a)?)),
            |(s1, s2, conns)| {
                [s1, s2].iter().all(|s| {
                    s.state == SessionState::Established && s.counters.established_count == 1
                }) && conns.len() == 1
            },
        )
        .map(|(s1, s2, _)| (s1, s2))?;
        eprintln!("n1 side: {:?}\nn2 side: {:?}", s1.counters, s2.counters);
        assert!(
            [&s1, &s2].iter().any(|s| resolved_collision(&s.counters)),
            "no collision was resolved: {s1:?}\n{s2:?}"
        );
        // Both really connected out (Idle->Connect on both sides: neither was passive).
        for s in [&s1, &s2] {
            assert!(
                s.counters.transitions.contains_key("Idle->Connect"),
                "{s:?}"
            );
        }
        // The one session carries routes.
        let r = n2.wait_route(net("10.96.0.0/12"), T, &|r| r.paths.len() == 2)?;
        let from_n1 = path_from(&r, "Node_10_88_0_1").expect("n1's path");
        assert_eq!(from_n1.next_hop, Some(to_n1));
        Ok(())
    });
}

/// Whether a Cease / Connection Collision Resolution (RFC 4486: 6/7) was sent or received.
fn resolved_collision(c: &PeerCounters) -> bool {
    c.notifications_out.contains_key("6/7") || c.notifications_in.contains_key("6/7")
}

/// FRR's `connectionsEstablished` for `peer` (`show bgp neighbors <peer> json`).
fn frr_connections_established(frr: &Frr, peer: &str) -> Result<u64> {
    let out = frr.vtysh(&[format!("show bgp neighbors {peer} json")])?;
    let doc: Value = serde_json::from_str(&out).map_err(|e| Error::Parse {
        tool: "vtysh",
        what: "show bgp neighbors json".into(),
        detail: format!("{e}: {out}"),
    })?;
    Ok(doc[peer]["connectionsEstablished"].as_u64().unwrap_or(0))
}

#[test]
fn frr_and_ginger_connecting_at_once_keep_one_session() {
    scenario("collide-frr", |dir| {
        let (node_ns, frr_ns) = (Netns::new("node")?, Netns::new("frr")?);
        Veth::new(&node_ns, "eth0", &frr_ns, "eth0")
            .addr_a("10.89.0.2/24")
            .addr_b("10.89.0.1/24")
            .create()?;
        let file = Cluster::new()
            .bgp_configuration("default", "{asNumber: 64512}")
            .node("n1", "10.89.0.2/24", &[], "")
            .bgp_peer(
                "frr",
                "{peerIP: 10.89.0.1, asNumber: 65002, holdTime: 6s, keepaliveTime: 2s}",
            )
            .write(&dir.join("cluster.yaml"))?;
        let mut held = HeldOpens::hold(&node_ns, "eth0")?;
        let frr = Frr::start(
            &frr_ns,
            dir.path(),
            RouterConfig::parse("10.89.0.1", 65002)
                .neighbor(Neighbor::parse("10.89.0.2", 64512).timers(6, 2))
                .originate("203.0.113.0/24", RouteAttrs::new()),
        )?;
        let ginger = GingerNode::start(&node_ns, dir.path(), &file, "n1", &[])?;
        let (to_frr, to_node) = (ip("10.89.0.1"), ip("10.89.0.2"));
        wait_for(
            T,
            "a TCP connection from FRR and one from ginger-node",
            || bgp_connections(&node_ns),
            |c| both_directions(c),
        )?;
        held.release()?;

        ginger.wait_established(to_frr, T)?;
        frr.wait_established(to_node, T)?;
        wait_for(
            T,
            "one BGP connection between FRR and ginger-node",
            || bgp_connections(&node_ns),
            |c| c.len() == 1,
        )?;
        let (mine, frrs) = hold_for(
            STABLE,
            "one established session, never re-established",
            || {
                Ok((
                    ginger.peer(to_frr)?,
                    frr.peer_state(to_node)?,
                    frr_connections_established(&frr, "10.89.0.2")?,
                    bgp_connections(&node_ns)?,
                ))
            },
            |(mine, state, frr_count, conns)| {
                mine.state == SessionState::Established
                    && mine.counters.established_count == 1
                    && *state == SessionState::Established
                    && *frr_count == 1
                    && conns.len() == 1
            },
        )
        .map(|(mine, _, frrs, _)| (mine, frrs))?;
        eprintln!(
            "ginger side: {:?}; FRR connectionsEstablished {frrs}",
            mine.counters
        );
        assert!(
            resolved_collision(&mine.counters),
            "no collision was resolved: {mine:?}"
        );
        assert!(
            mine.counters.transitions.contains_key("Idle->Connect"),
            "{mine:?}"
        );
        ginger.wait_route(net("203.0.113.0/24"), T, &|_| true)?;
        Ok(())
    });
}
