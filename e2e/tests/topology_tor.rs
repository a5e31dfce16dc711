//! eBGP to a top-of-rack router chosen by node labels: three `ginger-node`s and a BIRD ToR
//! (AS 65000) on one L2 segment, the mesh on, and `BGPPeer {nodeSelector: rack == 'a', peerIP:
//! <ToR>, asNumber: 65000}`. The two nodes labelled `rack: a` peer with the ToR (`Node_`
//! sessions next to their mesh sessions); the `rack: b` node does not, even though the ToR is
//! configured for it too and keeps trying. The ToR holds the service range from exactly the two
//! rack-a nodes, with AS_PATH `64512` and each node as next hop; the ToR's own route reaches the
//! rack-a nodes and goes no further (Calico's export rule: learned routes outside the pools
//! stay on the node), so the rack-b node never has it.

use std::time::Duration;

use e2e::scenarios::{Cluster, best_path, ip, net, status_rows};
use e2e::*;

const T: Duration = Duration::from_secs(20);
const SERVICES: &str = "10.96.0.0/12";
const TOR: &str = "10.86.0.1";
const TOR_NET: &str = "203.0.113.0/24";
/// (node, address, rack).
const NODES: [(&str, &str, &str); 3] = [
    ("n-a1", "10.86.0.11", "a"),
    ("n-a2", "10.86.0.12", "a"),
    ("n-b1", "10.86.0.13", "b"),
];

#[test]
fn only_rack_a_nodes_peer_with_the_tor_and_it_holds_their_routes() {
    scenario("tor", |dir| {
        let lan = Segment::new("tor")?;
        let mut cluster = Cluster::new().bgp_configuration(
            "default",
            &format!("{{asNumber: 64512, serviceClusterIPs: [{{cidr: {SERVICES}}}]}}"),
        );
        for (name, addr, rack) in NODES {
            cluster = cluster.node(name, &format!("{addr}/24"), &[("rack", rack)], "");
        }
        let file = cluster
            .bgp_peer(
                "tor-a",
                &format!("{{nodeSelector: \"rack == 'a'\", peerIP: {TOR}, asNumber: 65000}}"),
            )
            .ip_pool("pods", "10.244.0.0/16")
            .write(&dir.join("cluster.yaml"))?;

        let tor_ns = Netns::new("tor")?;
        lan.attach(&tor_ns, "eth0", &[&format!("{TOR}/24")])?;
        let mut tor_config =
            RouterConfig::parse(TOR, 65000).originate(TOR_NET, RouteAttrs::new().med(10));
        for (_, addr, _) in NODES {
            tor_config = tor_config.neighbor(Neighbor::parse(addr, 64512));
        }
        let tor = Bird::start(&tor_ns, dir.path(), tor_config)?;
        let mut namespaces = Vec::new();
        for (name, addr, _) in NODES {
            let ns = Netns::new(name)?;
            lan.attach(&ns, "eth0", &[&format!("{addr}/24")])?;
            namespaces.push(ns);
        }
        let mut nodes = Vec::new();
        for ((name, _, _), ns) in NODES.iter().zip(&namespaces) {
            nodes.push(GingerNode::start(ns, dir.path(), &file, name, &[])?);
        }
        let (a1, a2, b1) = (&nodes[0], &nodes[1], &nodes[2]);

        for (node, (_, addr, _)) in [a1, a2].into_iter().zip(NODES) {
            let p = node.wait_established(ip(TOR), T)?;
            assert_eq!(p.name, "Node_10_86_0_1", "{p:?}");
            assert_eq!(p.remote_asn, 65000, "{p:?}");
            tor.wait_established(ip(addr), T)?;
        }
        // The mesh is up everywhere; the rack-b node has no session to the ToR at all.
        for node in &nodes {
            for (_, addr, _) in NODES {
                if node.peer(ip(addr)).is_ok() {
                    node.wait_established(ip(addr), T)?;
                }
            }
        }
        let b1_peers = b1.peers()?;
        assert_eq!(b1_peers.len(), 2, "{b1_peers:?}");
        assert!(
            b1_peers.iter().all(|p| p.name.starts_with("Mesh_")),
            "{b1_peers:?}"
        );

        // The ToR holds the service range from exactly the rack-a nodes, AS_PATH 64512.
        let svc = net(SERVICES);
        let paths = wait_for(
            T,
            "the ToR's paths to the service range from both rack-a nodes",
            || {
                Ok(tor
                    .routes()?
                    .into_iter()
                    .filter(|r| r.prefix == svc)
                    .collect::<Vec<_>>())
            },
            |p: &Vec<Route>| p.len() == 2,
        )?;
        let mut froms: Vec<_> = paths.iter().map(|r| r.from).collect();
        froms.sort();
        assert_eq!(
            froms,
            vec![Some(ip(NODES[0].1)), Some(ip(NODES[1].1))],
            "{paths:?}"
        );
        for r in &paths {
            assert_eq!(r.as_path, vec![64512], "{r}");
            assert_eq!(r.next_hop, r.from, "{r}");
        }

        // The ToR's route reaches the rack-a nodes...
        for node in [a1, a2] {
            let r = node.wait_route(net(TOR_NET), T, &|_| true)?;
            let p = best_path(&r).expect("best");
            assert_eq!(p.from, "Node_10_86_0_1", "{r:?}");
            assert_eq!(p.as_path, "65000", "{r:?}");
            assert_eq!(p.next_hop, Some(ip(TOR)), "{r:?}");
            assert_eq!(p.med, Some(10), "{r:?}");
        }
        // ...and no further: not to the rack-b node over the mesh, whose service paths from
        // the rack-a nodes have arrived meanwhile (the same sessions would carry it).
        b1.wait_route(net(SERVICES), T, &|r| r.paths.len() == 3)?;
        assert_eq!(b1.route(net(TOR_NET))?, None);
        assert_ne!(tor.peer_state(ip(NODES[2].1))?, SessionState::Established);

        // Calico's status table: the ToR as `node specific`, the others as mesh.
        let (code, out, err) = a1.gingerctl(&["node", "status"])?;
        assert_eq!(code, 0, "{err}");
        let rows: Vec<(String, String, String)> = status_rows(&out)?
            .into_iter()
            .map(|r| (r.address, r.peer_type, r.info))
            .collect();
        let row = |a: &str, t: &str| (a.to_string(), t.to_string(), "Established".to_string());
        assert_eq!(
            rows,
            vec![
                row(TOR, "node specific"),
                row(NODES[1].1, "node-to-node mesh"),
                row(NODES[2].1, "node-to-node mesh"),
            ],
            "{out}"
        );
        Ok(())
    });
}
