//! Desired BGP configuration of each node, computed from the fixture cluster files, checked
//! against the sessions Calico's confd would render (calico.md §4.3) — exact peer sets.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use agent::ctl::{BgpPeerRow, NodeAsn, NodeRow};
use agent::datastore::{ClusterConfig, ConfigError, load, parse};
use agent::desired::{
    DesiredBgp, SkipReason, bgp_peer_rows, desired_bgp, hashed_router_id, node_rows,
};
use bgp::config::{NextHopMode, OriginatedRoute, PeerConfig};
use bgp::types::LargeCommunity;
use ipnet::IpNet;

fn fixture(name: &str) -> ClusterConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// One line per session with every field that can differ between sessions.
fn describe(p: &PeerConfig) -> String {
    let mut s = format!(
        "{} {:?} {}:{} as={}",
        p.name, p.kind, p.address, p.port, p.remote_asn
    );
    if let Some(l) = p.local_asn {
        s += &format!(" local_as={l}");
    }
    if p.passive {
        s += " passive";
    }
    if p.rr_client {
        s += " rr_client";
    }
    match p.source_address {
        Some(a) => s += &format!(" src={a}"),
        None => s += " src=none",
    }
    s += &format!(" hold={}", p.hold_time);
    if let Some(k) = p.keepalive_time {
        s += &format!(" keepalive={k}");
    }
    match p.next_hop_mode {
        NextHopMode::Auto => {}
        NextHopMode::SelfAddr => s += " next_hop=self",
        NextHopMode::Keep => s += " next_hop=keep",
    }
    if let Some(r) = p.restart_time {
        s += &format!(" restart={r}");
    }
    if p.allow_local_as != 0 {
        s += &format!(" allow_local_as={}", p.allow_local_as);
    }
    assert_eq!(p.families.len(), 1, "{}: one family per session", p.name);
    s
}

fn peers(d: &DesiredBgp) -> Vec<String> {
    d.speaker.peers.values().map(describe).collect()
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn desired(cluster: &ClusterConfig, node: &str) -> DesiredBgp {
    desired_bgp(cluster, node).unwrap_or_else(|e| panic!("{node}: {e}"))
}

#[test]
fn three_node_mesh_uses_string_order_for_passive() {
    let c = fixture("mesh-3.yaml");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());

    let d1 = desired(&c, "node-1");
    assert_eq!(d1.speaker.router_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(d1.speaker.local_asn, 64512);
    assert_eq!(d1.speaker.listen_port, Some(179));
    assert_eq!(d1.speaker.listen_address, None);
    assert_eq!(d1.speaker.cluster_id, None);
    assert_eq!(d1.speaker.local_ipv4, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(d1.speaker.local_ipv6, None);
    assert_eq!(
        peers(&d1),
        vec![
            "Mesh_10_0_0_10 Mesh 10.0.0.10:179 as=64512 passive src=10.0.0.1 hold=240 restart=120",
            "Mesh_10_0_0_2 Mesh 10.0.0.2:179 as=64512 passive src=10.0.0.1 hold=240 restart=120",
        ]
    );
    assert!(d1.skipped.is_empty(), "{:?}", d1.skipped);

    // "10.0.0.2" > "10.0.0.10" as strings: node-2 connects to node-3, node-3 waits.
    let d2 = desired(&c, "node-2");
    assert_eq!(
        peers(&d2),
        vec![
            "Mesh_10_0_0_1 Mesh 10.0.0.1:179 as=64512 src=10.0.0.2 hold=240 restart=120",
            "Mesh_10_0_0_10 Mesh 10.0.0.10:179 as=64512 src=10.0.0.2 hold=240 restart=120",
        ]
    );
    let d3 = desired(&c, "node-3");
    assert_eq!(
        peers(&d3),
        vec![
            "Mesh_10_0_0_1 Mesh 10.0.0.1:179 as=64512 src=10.0.0.10 hold=240 restart=120",
            "Mesh_10_0_0_2 Mesh 10.0.0.2:179 as=64512 passive src=10.0.0.10 hold=240 restart=120",
        ]
    );
    // Every pair has exactly one active side.
    for (a, da, b, db) in [
        ("10.0.0.1", &d1, "10.0.0.2", &d2),
        ("10.0.0.1", &d1, "10.0.0.10", &d3),
        ("10.0.0.2", &d2, "10.0.0.10", &d3),
    ] {
        let ab = &da.speaker.peers[&format!("Mesh_{}", b.replace('.', "_"))];
        let ba = &db.speaker.peers[&format!("Mesh_{}", a.replace('.', "_"))];
        assert_ne!(ab.passive, ba.passive, "{a} <-> {b}");
    }

    // Services: the cluster range with its communities, the external range without, and not
    // the single external address.
    let svc = OriginatedRoute {
        prefix: "10.96.0.0/12".parse().unwrap(),
        communities: vec![(65000 << 16) | 100],
        large_communities: vec![LargeCommunity {
            global: 65000,
            local1: 1,
            local2: 2,
        }],
    };
    let ext = OriginatedRoute::new("192.0.2.0/24".parse().unwrap());
    assert_eq!(d1.originated, BTreeSet::from([svc.clone(), ext.clone()]));
    assert_eq!(d2.originated, d1.originated);
    // node-3 is labelled out of service advertisement.
    assert!(d3.originated.is_empty());

    assert_eq!(
        d1.speaker.export.allow_learned_within,
        Some(nets(&["10.96.0.0/12", "10.244.0.0/16", "192.0.2.0/24"]))
    );
    assert_eq!(d1.speaker.export.deny_within, nets(&["10.245.0.0/16"]));
    assert_eq!(
        d3.speaker.export.allow_learned_within,
        Some(nets(&["10.244.0.0/16"]))
    );

    // Pod blocks get the same community rule through the helper.
    assert_eq!(
        d1.originate("10.96.64.0/26".parse().unwrap()).communities,
        svc.communities
    );
    assert!(
        d1.communities_for(&"10.244.1.0/26".parse().unwrap())
            .0
            .is_empty()
    );
}

#[test]
fn route_reflectors_with_one_bgp_peer() {
    let c = fixture("rr.yaml");
    let client = desired(&c, "client-a");
    assert_eq!(client.speaker.cluster_id, None);
    assert_eq!(
        peers(&client),
        vec![
            "Node_10_0_1_1 NodeSpecific 10.0.1.1:179 as=64512 src=10.0.1.10 hold=240",
            "Node_10_0_1_2 NodeSpecific 10.0.1.2:179 as=64512 src=10.0.1.10 hold=240",
        ]
    );
    let rr = desired(&c, "rr-1");
    assert_eq!(rr.speaker.cluster_id, Some(Ipv4Addr::new(244, 0, 0, 1)));
    // The other reflector (same cluster) is a plain iBGP peer; the clients come from reverse
    // peering and are route-reflector clients.
    assert_eq!(
        peers(&rr),
        vec![
            "Node_10_0_1_10 NodeSpecific 10.0.1.10:179 as=64512 rr_client src=10.0.1.1 hold=240",
            "Node_10_0_1_11 NodeSpecific 10.0.1.11:179 as=64512 rr_client src=10.0.1.1 hold=240",
            "Node_10_0_1_2 NodeSpecific 10.0.1.2:179 as=64512 src=10.0.1.1 hold=240",
        ]
    );
    // rr-2 reaches rr-1 both forward and by reverse peering of the same BGPPeer: one session,
    // nothing to report.
    assert!(rr.skipped.is_empty(), "{:?}", rr.skipped);
    assert!(rr.speaker.validate().is_ok());
}

#[test]
fn top_of_rack_peers_by_rack_label() {
    let c = fixture("tor.yaml");
    let a1 = desired(&c, "n-a1");
    assert_eq!(
        peers(&a1),
        vec![
            "Mesh_10_1_0_12 Mesh 10.1.0.12:179 as=64512 passive src=10.1.0.11 hold=240",
            "Mesh_10_2_0_11 Mesh 10.2.0.11:179 as=64512 passive src=10.1.0.11 hold=240",
            "Node_10_1_0_1 NodeSpecific 10.1.0.1:179 as=65001 src=10.1.0.11 hold=30 keepalive=10 next_hop=self restart=90 allow_local_as=1",
        ]
    );
    let b1 = desired(&c, "n-b1");
    assert_eq!(
        peers(&b1),
        vec![
            "Mesh_10_1_0_11 Mesh 10.1.0.11:179 as=64512 src=10.2.0.11 hold=240",
            "Mesh_10_1_0_12 Mesh 10.1.0.12:179 as=64512 src=10.2.0.11 hold=240",
            // keepOriginalNextHop on an eBGP session is `next hop keep`.
            "Node_10_2_0_1_port_1179 NodeSpecific 10.2.0.1:1179 as=65002 local_as=64600 src=none hold=240 next_hop=keep",
        ]
    );
    assert_eq!(
        bgp_peer_rows(&c),
        vec![
            BgpPeerRow {
                name: "tor-a".into(),
                peer_ip: Some("10.1.0.1".parse().unwrap()),
                port: None,
                node: None,
                node_selector: Some("rack == 'a'".into()),
                asn: Some(65001),
            },
            BgpPeerRow {
                name: "tor-b".into(),
                peer_ip: Some("10.2.0.1".parse().unwrap()),
                port: Some(1179),
                node: None,
                node_selector: Some("rack == \"b\"".into()),
                asn: Some(65002),
            },
        ]
    );
}

#[test]
fn per_node_as_listen_port_and_a_global_peer_that_is_a_node() {
    let c = fixture("per-node-as.yaml");
    let x1 = desired(&c, "x1");
    assert_eq!(x1.speaker.local_asn, 65101);
    assert_eq!(x1.speaker.listen_port, Some(179));
    assert_eq!(x1.speaker.listen_address, Some("10.3.0.1".parse().unwrap()));
    // The global BGPPeer to x2's address takes x2's listen port and replaces the mesh session;
    // it is a node, so the greater address string connects (x2).
    assert_eq!(
        peers(&x1),
        vec![
            "Global_10_3_0_2_port_1790 Global 10.3.0.2:1790 as=65102 passive src=10.3.0.1 hold=240",
            "Mesh_10_3_0_3 Mesh 10.3.0.3:179 as=64512 passive src=10.3.0.1 hold=240",
        ]
    );
    assert_eq!(x1.skipped.len(), 1, "{:?}", x1.skipped);
    assert_eq!(x1.skipped[0].name, "Mesh_10_3_0_2");
    assert_eq!(
        x1.skipped[0].reason,
        SkipReason::Duplicate {
            kept: "Global_10_3_0_2_port_1790".into(),
            kept_source: "BGPPeer \"via-x2\"".into()
        }
    );
    assert!(
        x1.skipped[0]
            .to_string()
            .contains("already peers with the same address and port")
    );

    // x2 is the peer: it gets the reverse sessions towards every node, which replace its mesh.
    let x2 = desired(&c, "x2");
    assert_eq!(x2.speaker.local_asn, 65102);
    assert_eq!(x2.speaker.listen_port, Some(1790));
    assert_eq!(
        peers(&x2),
        vec![
            "Node_10_3_0_1 NodeSpecific 10.3.0.1:179 as=65101 src=10.3.0.2 hold=240",
            "Node_10_3_0_3 NodeSpecific 10.3.0.3:179 as=64512 src=10.3.0.2 hold=240",
        ]
    );
    let skipped: Vec<&str> = x2.skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skipped, vec!["Mesh_10_3_0_1", "Mesh_10_3_0_3"]);

    let x3 = desired(&c, "x3");
    assert_eq!(x3.speaker.local_asn, 64512);
    assert_eq!(
        peers(&x3),
        vec![
            "Global_10_3_0_2_port_1790 Global 10.3.0.2:1790 as=65102 src=10.3.0.3 hold=240",
            "Mesh_10_3_0_1 Mesh 10.3.0.1:179 as=65101 src=10.3.0.3 hold=240",
        ]
    );

    assert_eq!(
        node_rows(&c),
        vec![
            NodeRow {
                name: "x1".into(),
                asn: Some(NodeAsn::Explicit(65101)),
                ipv4: Some("10.3.0.1/24".parse().unwrap()),
                ipv6: None,
            },
            NodeRow {
                name: "x2".into(),
                asn: Some(NodeAsn::Explicit(65102)),
                ipv4: Some("10.3.0.2/24".parse().unwrap()),
                ipv6: None,
            },
            NodeRow {
                name: "x3".into(),
                asn: Some(NodeAsn::Inherited(64512)),
                ipv4: Some("10.3.0.3/24".parse().unwrap()),
                ipv6: None,
            },
        ]
    );
    assert_eq!(
        bgp_peer_rows(&c),
        vec![BgpPeerRow {
            name: "via-x2".into(),
            peer_ip: Some("10.3.0.2".parse().unwrap()),
            port: None,
            node: None,
            node_selector: None,
            asn: Some(65102),
        }]
    );
}

#[test]
fn ipv6_and_dual_stack_nodes() {
    let c = fixture("ipv6.yaml");
    let d1 = desired(&c, "d1");
    assert_eq!(d1.speaker.local_ipv6, Some("fd00:4::1".parse().unwrap()));
    assert_eq!(
        peers(&d1),
        vec![
            "Global_10_4_0_254 Global 10.4.0.254:179 as=65010 src=10.4.0.1 hold=240",
            "Global_fd00_4__fe Global fd00:4::fe:179 as=65010 src=fd00:4::1 hold=240",
            "Mesh_10_4_0_2 Mesh 10.4.0.2:179 as=64512 passive src=10.4.0.1 hold=240",
            "Mesh_fd00_4__2 Mesh fd00:4::2:179 as=64512 passive src=fd00:4::1 hold=240",
            "Mesh_fd00_4__3 Mesh fd00:4::3:179 as=64512 passive src=fd00:4::1 hold=240",
        ]
    );
    assert_eq!(
        d1.originated.iter().map(|r| r.prefix).collect::<Vec<_>>(),
        nets(&["10.96.0.0/12", "fd00:96::/108"])
    );
    assert_eq!(
        d1.speaker.export.allow_learned_within,
        Some(nets(&[
            "10.96.0.0/12",
            "10.244.0.0/16",
            "fd00:96::/108",
            "fd00:244::/48"
        ]))
    );

    // The IPv6-only node: Calico's hashed router id, IPv6 sessions only, the IPv4 peer skipped.
    let s3 = desired(&c, "s3");
    assert_eq!(s3.speaker.router_id, hashed_router_id("s3"));
    assert_eq!(s3.speaker.local_ipv4, None);
    assert_eq!(
        peers(&s3),
        vec![
            "Global_fd00_4__fe Global fd00:4::fe:179 as=65010 src=fd00:4::3 hold=240",
            "Mesh_fd00_4__1 Mesh fd00:4::1:179 as=64512 src=fd00:4::3 hold=240",
            "Mesh_fd00_4__2 Mesh fd00:4::2:179 as=64512 src=fd00:4::3 hold=240",
        ]
    );
    assert_eq!(s3.skipped.len(), 1);
    assert_eq!(s3.skipped[0].name, "Global_10_4_0_254");
    assert!(
        s3.skipped[0]
            .to_string()
            .contains("no ipv4-unicast address"),
        "{}",
        s3.skipped[0]
    );
    assert_eq!(
        s3.originated.iter().map(|r| r.prefix).collect::<Vec<_>>(),
        nets(&["fd00:96::/108"])
    );
}

#[test]
fn unknown_node_and_node_without_address() {
    let c = fixture("mesh-3.yaml");
    let e = desired_bgp(&c, "node-4").unwrap_err();
    assert!(matches!(e, ConfigError::Node { .. }));
    assert!(
        e.to_string()
            .ends_with("mesh-3.yaml: Node \"node-4\": is not defined; did you mean \"node-1\"?"),
        "{e}"
    );

    let c = parse(
        "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {name: bare}\n",
        "cluster.yaml",
    )
    .unwrap();
    let e = desired_bgp(&c, "bare").unwrap_err();
    assert_eq!(
        e.to_string(),
        "cluster.yaml: Node \"bare\": has no spec.bgp.ipv4Address or spec.bgp.ipv6Address, so it cannot run BGP"
    );
    let e = desired_bgp(&c, "zzzzzzzz").unwrap_err();
    assert!(e.to_string().contains("nodes defined: bare"), "{e}");
}

#[test]
fn manual_reverse_peering_and_duplicate_bgp_peers() {
    let text = r#"
apiVersion: ginger.dev/v1
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false}
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: a, labels: {role: edge}}
spec: {bgp: {ipv4Address: 10.5.0.1/24}}
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: b}
spec: {bgp: {ipv4Address: 10.5.0.2/24}}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {name: a-to-b}
spec:
  node: a
  peerSelector: "!has(role)"
  reversePeering: Manual
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {name: b-again}
spec:
  nodeSelector: role == 'edge'
  peerIP: 10.5.0.2
  asNumber: 64512
  holdTime: 9s
"#;
    let c = parse(text, "inline.yaml").unwrap();
    let a = desired(&c, "a");
    // Both BGPPeers ask for a session to b: the first by name wins and the other is reported.
    assert_eq!(
        peers(&a),
        vec!["Node_10_5_0_2 NodeSpecific 10.5.0.2:179 as=64512 src=10.5.0.1 hold=240"]
    );
    assert_eq!(a.skipped.len(), 1);
    assert!(
        a.skipped[0].to_string().contains("BGPPeer \"b-again\""),
        "{}",
        a.skipped[0]
    );
    // Manual: b does not get the reverse session from a-to-b, but b-again's peerIP is b with
    // the matching AS, so b gets its reverse session towards a.
    let b = desired(&c, "b");
    assert_eq!(
        peers(&b),
        vec!["Node_10_5_0_1 NodeSpecific 10.5.0.1:179 as=64512 src=10.5.0.2 hold=9"]
    );
}

/// A global BGPPeer selecting route reflectors by label, without nodeSelector: clients get
/// `Global_` sessions (passive when the reflector's address string is greater: the reflector
/// connects), reflectors get `Node_` reverse sessions to every client (always active). Every
/// pair of nodes that peers must have at least one active side.
#[test]
fn global_peer_selector_always_has_an_active_side() {
    let mut text = String::from(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n---\napiVersion: ginger.dev/v1\nkind: BGPPeer\nmetadata: {name: to-rrs}\nspec: {peerSelector: \"rr == 'yes'\"}\n",
    );
    // Addresses chosen so string and numeric order disagree.
    let nodes = [
        ("c1", "10.9.0.2", false),
        ("c2", "10.9.0.30", false),
        ("r1", "10.9.0.10", true),
        ("r2", "10.9.0.9", true),
    ];
    for (name, ip, rr) in nodes {
        let labels = if rr { "{rr: 'yes'}" } else { "{}" };
        let cluster = if rr {
            ", routeReflectorClusterID: 244.0.0.1"
        } else {
            ""
        };
        text += &format!(
            "---\napiVersion: ginger.dev/v1\nkind: Node\nmetadata: {{name: {name}, labels: {labels}}}\nspec: {{bgp: {{ipv4Address: {ip}/24{cluster}}}}}\n"
        );
    }
    let c = parse(&text, "inline.yaml").unwrap();
    let all: Vec<(&str, DesiredBgp)> = nodes.iter().map(|(n, _, _)| (*n, desired(&c, n))).collect();
    let c1 = &all[0].1;
    assert_eq!(
        peers(c1),
        vec![
            "Global_10_9_0_10 Global 10.9.0.10:179 as=64512 src=10.9.0.2 hold=240",
            "Global_10_9_0_9 Global 10.9.0.9:179 as=64512 passive src=10.9.0.2 hold=240",
        ]
    );
    let r1 = &all[2].1;
    assert_eq!(
        peers(r1),
        vec![
            "Global_10_9_0_9 Global 10.9.0.9:179 as=64512 passive src=10.9.0.10 hold=240",
            "Node_10_9_0_2 NodeSpecific 10.9.0.2:179 as=64512 rr_client src=10.9.0.10 hold=240",
            "Node_10_9_0_30 NodeSpecific 10.9.0.30:179 as=64512 rr_client src=10.9.0.10 hold=240",
        ]
    );
    for (a, da) in &all {
        for p in da.speaker.peers.values() {
            let (b, db) = all
                .iter()
                .find(|(_, d)| {
                    d.speaker.local_ipv4
                        == Some(match p.address {
                            std::net::IpAddr::V4(v4) => v4,
                            _ => unreachable!(),
                        })
                })
                .unwrap();
            let back = db
                .speaker
                .peers
                .values()
                .find(|q| Some(q.address) == da.speaker.local_ipv4.map(Into::into));
            let back = back.unwrap_or_else(|| panic!("{b} has no session back to {a}"));
            assert!(!(p.passive && back.passive), "{a} <-> {b}: both passive");
        }
    }
}

/// A `node.<name>` BGPConfiguration with its own prefix advertisements replaces the global
/// list on that node (confd reads the node key first); a route reflector that is labelled out
/// of service advertisement originates nothing but still re-exports learned routes inside the
/// external and LoadBalancer ranges.
#[test]
fn per_node_communities_and_route_reflector_export() {
    let text = r#"
apiVersion: ginger.dev/v1
kind: BGPConfiguration
metadata: {name: default}
spec:
  serviceLoadBalancerIPs: [{cidr: 198.51.100.0/24}]
  serviceExternalIPs: [{cidr: 203.0.113.7/32}]
  prefixAdvertisements:
    - {cidr: 198.51.100.0/24, communities: ["65000:1"]}
---
apiVersion: ginger.dev/v1
kind: BGPConfiguration
metadata: {name: node.edge}
spec:
  communities: [{name: edge, value: "65000:2:3"}]
  prefixAdvertisements:
    - {cidr: 198.51.100.0/24, communities: [edge]}
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: edge}
spec: {bgp: {ipv4Address: 10.6.0.1/24}}
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: plain}
spec: {bgp: {ipv4Address: 10.6.0.2/24}}
---
apiVersion: ginger.dev/v1
kind: Node
metadata:
  name: rr
  labels: {node.kubernetes.io/exclude-from-external-load-balancers: "true"}
spec: {bgp: {ipv4Address: 10.6.0.3/24, routeReflectorClusterID: 244.0.0.9}}
"#;
    let c = parse(text, "inline.yaml").unwrap();
    let lb: IpNet = "198.51.100.0/24".parse().unwrap();
    let edge = desired(&c, "edge");
    assert_eq!(
        edge.originated,
        BTreeSet::from([OriginatedRoute {
            prefix: lb,
            communities: vec![],
            large_communities: vec![LargeCommunity {
                global: 65000,
                local1: 2,
                local2: 3
            }],
        }])
    );
    let plain = desired(&c, "plain");
    assert_eq!(
        plain.originated,
        BTreeSet::from([OriginatedRoute {
            prefix: lb,
            communities: vec![65000 << 16 | 1],
            large_communities: vec![]
        }])
    );
    assert_eq!(
        plain.speaker.export.allow_learned_within,
        Some(nets(&["198.51.100.0/24"]))
    );
    let rr = desired(&c, "rr");
    assert!(rr.originated.is_empty());
    assert_eq!(
        rr.speaker.export.allow_learned_within,
        Some(nets(&["198.51.100.0/24", "203.0.113.7/32"]))
    );
    // The reflector is out of the mesh; the other two still mesh with each other, not with it.
    assert!(rr.speaker.peers.is_empty());
    assert_eq!(
        peers(&plain),
        vec!["Mesh_10_6_0_1 Mesh 10.6.0.1:179 as=64512 src=10.6.0.2 hold=240"]
    );
}

/// `numAllowedLocalASNumbers` (BIRD `allow local as <n>`) reaches every session its BGPPeer
/// gives, `peerSelector` ones and their reverse peerings included; the mesh keeps 0.
#[test]
fn allowed_local_as_follows_its_bgp_peer_and_not_the_mesh() {
    let text = r#"
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: a, labels: {edge: 'yes'}}
spec: {bgp: {ipv4Address: 10.6.0.1/24}}
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: b}
spec: {bgp: {ipv4Address: 10.6.0.2/24}}
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: c}
spec: {bgp: {ipv4Address: 10.6.0.3/24}}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {name: to-edge}
spec:
  nodeSelector: "!has(edge)"
  peerSelector: has(edge)
  numAllowedLocalASNumbers: 3
"#;
    let c = parse(text, "inline.yaml").unwrap();
    assert_eq!(
        peers(&desired(&c, "b")),
        vec![
            "Mesh_10_6_0_3 Mesh 10.6.0.3:179 as=64512 passive src=10.6.0.2 hold=240",
            "Node_10_6_0_1 NodeSpecific 10.6.0.1:179 as=64512 src=10.6.0.2 hold=240 allow_local_as=3",
        ]
    );
    assert_eq!(
        peers(&desired(&c, "a")),
        vec![
            "Node_10_6_0_2 NodeSpecific 10.6.0.2:179 as=64512 src=10.6.0.1 hold=240 allow_local_as=3",
            "Node_10_6_0_3 NodeSpecific 10.6.0.3:179 as=64512 src=10.6.0.1 hold=240 allow_local_as=3",
        ]
    );
}
