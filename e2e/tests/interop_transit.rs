//! Transit through `ginger-node`: BIRD (AS 65001) and FRR (AS 65002), each on its own link to
//! one ginger-node (AS 64512), exchange routes through it. Routes inside the IPPool cross with
//! our AS prepended and ginger-node as next hop (RFC 4271 §5.1.2, §5.1.3) and without the MED
//! of the neighbouring AS (§5.1.4); routes outside every pool stay with ginger-node (Calico's
//! export rule, `calico.md` §4.4 step 9); a withdrawal crosses too.
//!
//! The FRR link is not the node's own subnet, so its BGPPeer has `sourceAddress: None`: the
//! session's local address (not the node address) must then be the next hop FRR sees.

use std::time::Duration;

use e2e::scenarios::{Cluster, best_path, ip, net};
use e2e::*;

const T: Duration = Duration::from_secs(20);

const NODE_TO_BIRD: &str = "10.82.1.2";
const BIRD_ADDR: &str = "10.82.1.1";
const NODE_TO_FRR: &str = "10.82.2.2";
const FRR_ADDR: &str = "10.82.2.1";

#[test]
fn pool_routes_cross_ginger_with_our_as_prepended_and_others_do_not() {
    scenario("transit", |dir| {
        let (bird_ns, node_ns, frr_ns) =
            (Netns::new("bird")?, Netns::new("node")?, Netns::new("frr")?);
        Veth::new(&node_ns, "to-bird", &bird_ns, "eth0")
            .addr_a(&format!("{NODE_TO_BIRD}/24"))
            .addr_b(&format!("{BIRD_ADDR}/24"))
            .create()?;
        Veth::new(&node_ns, "to-frr", &frr_ns, "eth0")
            .addr_a(&format!("{NODE_TO_FRR}/24"))
            .addr_b(&format!("{FRR_ADDR}/24"))
            .create()?;

        let bird = Bird::start(
            &bird_ns,
            dir.path(),
            RouterConfig::parse(BIRD_ADDR, 65001)
                .neighbor(Neighbor::parse(NODE_TO_BIRD, 64512))
                .originate(
                    "10.244.7.0/24",
                    RouteAttrs::new().med(50).community(65001, 7),
                )
                .originate("198.51.100.0/24", RouteAttrs::new()),
        )?;
        let frr = Frr::start(
            &frr_ns,
            dir.path(),
            RouterConfig::parse(FRR_ADDR, 65002)
                .neighbor(Neighbor::parse(NODE_TO_FRR, 64512))
                .originate("10.244.9.0/24", RouteAttrs::new().community(65002, 9))
                .originate("192.0.2.0/24", RouteAttrs::new()),
        )?;
        let file = Cluster::new()
            .bgp_configuration("default", "{asNumber: 64512}")
            .node("n1", &format!("{NODE_TO_BIRD}/24"), &[], "")
            .bgp_peer("bird", &format!("{{peerIP: {BIRD_ADDR}, asNumber: 65001}}"))
            .bgp_peer(
                "frr",
                &format!("{{peerIP: {FRR_ADDR}, asNumber: 65002, sourceAddress: None}}"),
            )
            .ip_pool("pods", "10.244.0.0/16")
            .write(&dir.join("cluster.yaml"))?;
        let ginger = GingerNode::start(&node_ns, dir.path(), &file, "n1", &[])?;
        ginger.wait_established(ip(BIRD_ADDR), T)?;
        ginger.wait_established(ip(FRR_ADDR), T)?;

        // BIRD -> ginger -> FRR.
        let at_frr = frr.wait_route(net("10.244.7.0/24"), T, &|r| r.best)?;
        assert_eq!(at_frr.as_path, vec![64512, 65001], "{at_frr}");
        assert_eq!(at_frr.next_hop, Some(ip(NODE_TO_FRR)), "{at_frr}");
        assert_eq!(at_frr.from, Some(ip(NODE_TO_FRR)), "{at_frr}");
        assert!(at_frr.has_community(65001, 7), "{at_frr}");
        assert_eq!(at_frr.med, None, "{at_frr}");
        // FRR -> ginger -> BIRD.
        let at_bird = bird.wait_route(net("10.244.9.0/24"), T, &|r| r.best)?;
        assert_eq!(at_bird.as_path, vec![64512, 65002], "{at_bird}");
        assert_eq!(at_bird.next_hop, Some(ip(NODE_TO_BIRD)), "{at_bird}");
        assert!(at_bird.has_community(65002, 9), "{at_bird}");

        // ginger-node holds the routes outside every pool itself...
        for (prefix, from) in [
            ("198.51.100.0/24", "Global_10_82_1_1"),
            ("192.0.2.0/24", "Global_10_82_2_1"),
        ] {
            let r = ginger.wait_route(net(prefix), T, &|_| true)?;
            assert_eq!(best_path(&r).map(|p| p.from.as_str()), Some(from), "{r:?}");
        }
        // ...and after a later pool route has crossed (routes leave in order, so anything
        // exported before it has been sent by then), neither router got the other's.
        bird.announce(net("10.244.8.0/24"), &RouteAttrs::new())?;
        frr.announce(net("10.244.10.0/24"), &RouteAttrs::new())?;
        frr.wait_route(net("10.244.8.0/24"), T, &|r| r.best)?;
        bird.wait_route(net("10.244.10.0/24"), T, &|r| r.best)?;
        assert_eq!(frr.route(net("198.51.100.0/24"))?, None);
        assert_eq!(bird.route(net("192.0.2.0/24"))?, None);
        for (peer, want) in [(FRR_ADDR, 2), (BIRD_ADDR, 2)] {
            let p = ginger.peer(ip(peer))?;
            assert_eq!(p.prefixes_advertised, want, "{p:?}");
        }

        // A withdrawal crosses as well.
        bird.withdraw(net("10.244.7.0/24"))?;
        frr.wait_no_route(net("10.244.7.0/24"), T)?;
        assert!(frr.route(net("10.244.8.0/24"))?.is_some());
        Ok(())
    });
}
