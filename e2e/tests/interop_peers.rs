//! `ginger-node` against BIRD 2, FRR 8 and GoBGP 3, each as eBGP and as iBGP peer (six cases):
//! one node namespace running `ginger-node`, one router namespace running the daemon, a veth
//! between them, a `BGPPeer` in the cluster file (global for eBGP, `node:` for iBGP).
//!
//! Each case shows: the session is Established on both sides; the node's service range arrives
//! at the router with the prefix-advertisement communities, AS_PATH `64512` (eBGP) or empty
//! (iBGP), NEXT_HOP the node, LOCAL_PREF 100 (iBGP); the router's route arrives in
//! ginger-node's Loc-RIB with its MED, LOCAL_PREF (iBGP) and communities, AS_PATH and next hop;
//! a withdrawal at the router empties ginger-node's RIB; removing the service range from the
//! cluster file (a reload) withdraws it at the router, and the session stays up throughout.

use std::time::Duration;

use e2e::scenarios::{Cluster, DaemonKind, best_path, ip, net, path_from, status_rows};
use e2e::*;

/// Per-step deadline; steps normally take a second or two (GoBGP is the slowest).
const T: Duration = Duration::from_secs(20);

const NODE: &str = "10.81.0.2";
const ROUTER: &str = "10.81.0.1";
const OUR_AS: u32 = 64512;
const ROUTER_EBGP_AS: u32 = 65001;
/// The node's service range (originated from `serviceClusterIPs`).
const SERVICES: &str = "10.96.0.0/12";
/// What the router originates.
const ROUTER_NET: &str = "203.0.113.0/24";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Session {
    Ebgp,
    Ibgp,
}

/// The cluster file: one node, the router as its BGPPeer, services with communities.
fn cluster(router_as: u32, session: Session, with_services: bool) -> Cluster {
    let services = if with_services {
        format!("serviceClusterIPs: [{{cidr: {SERVICES}}}], ")
    } else {
        String::new()
    };
    // Global for eBGP, node-specific for iBGP: both BGPPeer scopes meet a real router.
    let scope = match session {
        Session::Ebgp => String::new(),
        Session::Ibgp => "node: n1, ".to_string(),
    };
    Cluster::new()
        .bgp_configuration(
            "default",
            &format!(
                "{{asNumber: {OUR_AS}, {services}\
                 communities: [{{name: svc, value: \"64512:100\"}}], \
                 prefixAdvertisements: [{{cidr: {SERVICES}, communities: [svc, \"64512:1:2\"]}}]}}"
            ),
        )
        .node("n1", &format!("{NODE}/24"), &[], "")
        .bgp_peer(
            "router",
            &format!("{{{scope}peerIP: {ROUTER}, asNumber: {router_as}}}"),
        )
        .ip_pool("pods", "10.244.0.0/16")
}

fn interop(kind: DaemonKind, session: Session) {
    let label = format!(
        "{}-{}",
        kind.name(),
        if session == Session::Ebgp {
            "ebgp"
        } else {
            "ibgp"
        }
    );
    scenario(&label, |dir| {
        let ibgp = session == Session::Ibgp;
        let router_as = if ibgp { OUR_AS } else { ROUTER_EBGP_AS };
        let (node_ns, router_ns) = (Netns::new("node")?, Netns::new(kind.name())?);
        Veth::new(&node_ns, "eth0", &router_ns, "eth0")
            .addr_a(&format!("{NODE}/24"))
            .addr_b(&format!("{ROUTER}/24"))
            .create()?;

        let mut attrs = RouteAttrs::new().med(50).community(65001, 7);
        if ibgp {
            attrs = attrs.local_pref(200);
        }
        let router = kind.start(
            &router_ns,
            dir.path(),
            RouterConfig::parse(ROUTER, router_as)
                .neighbor(Neighbor::parse(NODE, OUR_AS))
                .originate(ROUTER_NET, attrs),
        )?;
        let file = cluster(router_as, session, true).write(&dir.join("cluster.yaml"))?;
        let ginger = GingerNode::start(&node_ns, dir.path(), &file, "n1", &[])?;

        // Established on both sides.
        let up = ginger.wait_established(ip(ROUTER), T)?;
        router.wait_established(ip(NODE), T)?;
        let (session_name, peer_type) = if ibgp {
            ("Node_10_81_0_1", "node specific")
        } else {
            ("Global_10_81_0_1", "global")
        };
        assert_eq!(up.name, session_name);
        assert_eq!(up.remote_asn, router_as);
        assert_eq!(up.local_asn, OUR_AS);

        // Node -> router: the service range with the prefix-advertisement communities.
        let at_router = router.wait_any_route(net(SERVICES), T)?;
        let want_path: Vec<u32> = if ibgp { vec![] } else { vec![OUR_AS] };
        // RFC 4271 §5.1.2: our AS prepended towards eBGP, an empty AS_PATH inside the AS; sent
        // as AS_SEQUENCE.
        assert_eq!(at_router.as_path, want_path, "{at_router}");
        if !ibgp {
            assert_eq!(
                at_router.as_path_segments,
                vec![AsSegment::Sequence(vec![OUR_AS])],
                "{at_router}"
            );
        }
        // §5.1.3: NEXT_HOP is the node's address on the shared subnet.
        assert_eq!(at_router.next_hop, Some(ip(NODE)), "{at_router}");
        assert_eq!(at_router.from, Some(ip(NODE)), "{at_router}");
        assert_eq!(at_router.origin, Origin::Igp, "{at_router}");
        // §5.1.5: LOCAL_PREF (default 100) only towards internal peers.
        if ibgp {
            assert_eq!(at_router.local_pref, Some(100), "{at_router}");
        }
        // RFC 1997 / RFC 8092: the communities `prefixAdvertisements` attach.
        assert!(at_router.has_community(64512, 100), "{at_router}");
        assert_eq!(
            at_router.large_communities,
            vec![LargeCommunity {
                global: 64512,
                local1: 1,
                local2: 2
            }],
            "{at_router}"
        );

        // Router -> node: MED, LOCAL_PREF (iBGP) and communities arrive in the Loc-RIB.
        let r = ginger.wait_route(net(ROUTER_NET), T, &|_| true)?;
        assert_eq!(r.paths.len(), 1, "{r:?}");
        let p = best_path(&r).expect("wait_route waits for a best path");
        assert_eq!(p.from, session_name, "{p:?}");
        assert_eq!(p.peer_address, Some(ip(ROUTER)), "{p:?}");
        assert_eq!(p.next_hop, Some(ip(ROUTER)), "{p:?}");
        let want_path = if ibgp {
            String::new()
        } else {
            ROUTER_EBGP_AS.to_string()
        };
        assert_eq!(p.as_path, want_path, "{p:?}");
        assert_eq!(p.origin, "IGP", "{p:?}");
        assert_eq!(p.med, Some(50), "{p:?}");
        if ibgp {
            assert_eq!(p.local_pref, Some(200), "{p:?}");
        }
        assert_eq!(p.communities, vec!["65001:7".to_string()], "{p:?}");
        assert_eq!(p.reason, None, "{p:?}");

        // The router's route is not sent back to it: the node advertises its service range only.
        let peer = ginger.peer(ip(ROUTER))?;
        assert_eq!(peer.prefixes_accepted, 1, "{peer:?}");
        assert_eq!(peer.prefixes_advertised, 1, "{peer:?}");
        // FRR reflects our own range back over eBGP (no sender-side loop check): that path is
        // kept but never used, because our AS is in its AS_PATH (RFC 4271 §9.1.2).
        if peer.prefixes_received > 1 {
            assert_eq!(peer.prefixes_received, 2, "{peer:?}");
            let own = ginger.route(net(SERVICES))?.expect("originated");
            let echoed = path_from(&own, session_name).expect("the echoed path");
            assert_eq!(
                echoed.reason.as_deref(),
                Some("ineligible: AS loop: our AS is in the AS_PATH"),
                "{own:?}"
            );
            assert_eq!(best_path(&own).map(|b| b.from.as_str()), Some("local"));
        }

        // `gingerctl node status` names the peer type Calico's way.
        let (code, out, err) = ginger.gingerctl(&["node", "status"])?;
        assert_eq!(code, 0, "{err}");
        let rows = status_rows(&out)?;
        assert_eq!(rows.len(), 1, "{out}");
        assert_eq!(
            (
                rows[0].address.as_str(),
                rows[0].peer_type.as_str(),
                rows[0].state.as_str(),
                rows[0].info.as_str()
            ),
            (ROUTER, peer_type, "up", "Established"),
            "{out}"
        );

        // Withdrawal router -> node.
        router.withdraw(net(ROUTER_NET))?;
        ginger.wait_no_route(net(ROUTER_NET), T)?;

        // Withdrawal node -> router: the service range leaves the cluster file (reload).
        cluster(router_as, session, false).write(&dir.join("cluster.yaml"))?;
        router.wait_no_route(net(SERVICES), T)?;

        // The reload changed only what is originated: the session never went down.
        let peer = ginger.peer(ip(ROUTER))?;
        assert_eq!(peer.state, SessionState::Established, "{peer:?}");
        assert_eq!(peer.counters.established_count, 1, "{peer:?}");
        assert_eq!(peer.prefixes_advertised, 0, "{peer:?}");
        assert_eq!(router.peer_state(ip(NODE))?, SessionState::Established);
        Ok(())
    });
}

#[test]
fn bird_ebgp() {
    interop(DaemonKind::Bird, Session::Ebgp);
}

#[test]
fn bird_ibgp() {
    interop(DaemonKind::Bird, Session::Ibgp);
}

#[test]
fn frr_ebgp() {
    interop(DaemonKind::Frr, Session::Ebgp);
}

#[test]
fn frr_ibgp() {
    interop(DaemonKind::Frr, Session::Ibgp);
}

#[test]
fn gobgp_ebgp() {
    interop(DaemonKind::Gobgp, Session::Ebgp);
}

#[test]
fn gobgp_ibgp() {
    interop(DaemonKind::Gobgp, Session::Ibgp);
}
