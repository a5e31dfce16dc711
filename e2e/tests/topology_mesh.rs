//! Three `ginger-node`s in the default node-to-node mesh on one L2 segment.
//!
//! Every node originates the cluster's service range; a per-node `BGPConfiguration`
//! (`node.<name>`) gives each node's advertisement its own community, so every path names its
//! originator. Each node must hold exactly three paths to the range: its own (best) and one per
//! other node, learned over that node's `Mesh_` session with the originator as next hop and
//! nothing reflected (RFC 4271 §9.1.3: iBGP routes are not passed on to iBGP peers). When one
//! node stops, its paths leave the other two.

use std::time::Duration;

use e2e::scenarios::{Cluster, ip, net, path_from, status_rows};
use e2e::*;

const T: Duration = Duration::from_secs(20);
const SERVICES: &str = "10.96.0.0/12";

fn addr(i: usize) -> String {
    format!("10.84.0.{i}")
}

#[test]
fn three_node_mesh_each_node_learns_the_other_two() {
    scenario("mesh3", |dir| {
        let lan = Segment::new("mesh3")?;
        let mut cluster = Cluster::new().bgp_configuration(
            "default",
            // A short graceful restart time, so the stop below is observable end to end.
            &format!(
                "{{asNumber: 64512, nodeMeshMaxRestartTime: 3s, serviceClusterIPs: [{{cidr: {SERVICES}}}]}}"
            ),
        );
        for i in 1..=3 {
            cluster = cluster
                .bgp_configuration(
                    &format!("node.n{i}"),
                    &format!(
                        "{{prefixAdvertisements: [{{cidr: {SERVICES}, communities: [\"64512:{i}\"]}}]}}"
                    ),
                )
                .node(&format!("n{i}"), &format!("{}/24", addr(i)), &[], "");
        }
        let file = cluster
            .ip_pool("pods", "10.244.0.0/16")
            .write(&dir.join("cluster.yaml"))?;
        let mut namespaces = Vec::new();
        for i in 1..=3 {
            let ns = Netns::new(&format!("n{i}"))?;
            lan.attach(&ns, "eth0", &[&format!("{}/24", addr(i))])?;
            namespaces.push(ns);
        }
        let mut nodes = Vec::new();
        for (i, ns) in (1..=3).zip(&namespaces) {
            nodes.push(GingerNode::start(
                ns,
                dir.path(),
                &file,
                &format!("n{i}"),
                &[],
            )?);
        }

        for (i, node) in (1..=3).zip(&nodes) {
            let others: Vec<usize> = (1..=3).filter(|j| *j != i).collect();
            for j in &others {
                let p = node.wait_established(ip(&addr(*j)), T)?;
                assert_eq!(p.name, format!("Mesh_10_84_0_{j}"), "{p:?}");
            }
            assert_eq!(node.peers()?.len(), 2, "n{i}: only the two mesh peers");

            let r = node.wait_route(net(SERVICES), T, &|r| r.paths.len() == 3)?;
            let best = r.paths.iter().find(|p| p.best).expect("a best path");
            assert_eq!(best.from, "local", "n{i}: {r:?}");
            assert_eq!(best.communities, vec![format!("64512:{i}")], "n{i}: {r:?}");
            for j in &others {
                let from = format!("Mesh_10_84_0_{j}");
                let learned: Vec<_> = r.paths.iter().filter(|p| p.from == from).collect();
                assert_eq!(learned.len(), 1, "n{i}: one path from n{j}: {r:?}");
                let p = learned[0];
                assert_eq!(p.next_hop, Some(ip(&addr(*j))), "n{i}: {p:?}");
                assert_eq!(p.communities, vec![format!("64512:{j}")], "n{i}: {p:?}");
                assert_eq!(p.as_path, "", "n{i}: {p:?}");
                assert_eq!(p.local_pref, Some(100), "n{i}: {p:?}");
                assert_eq!(p.originator_id, None, "n{i}: {p:?}");
                assert!(p.cluster_list.is_empty(), "n{i}: {p:?}");
                assert_eq!(
                    p.reason.as_deref(),
                    Some("locally originated route preferred"),
                    "n{i}: {p:?}"
                );
            }
        }

        let (code, out, err) = nodes[0].gingerctl(&["node", "status"])?;
        assert_eq!(code, 0, "{err}");
        let rows = status_rows(&out)?;
        let shown: Vec<(&str, &str, &str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.address.as_str(),
                    r.peer_type.as_str(),
                    r.state.as_str(),
                    r.info.as_str(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("10.84.0.2", "node-to-node mesh", "up", "Established"),
                ("10.84.0.3", "node-to-node mesh", "up", "Established"),
            ],
            "{out}"
        );

        // n3 stops (SIGTERM, as for a restart): its sessions end without a NOTIFICATION, so n1
        // and n2 first keep its paths as stale (RFC 4724 helpers), then drop them when its
        // 3 s restart time passes.
        let n3 = nodes.pop().expect("three nodes");
        n3.process().stop(Signal::SIGTERM)?;
        for node in &nodes {
            node.wait_not_established(ip(&addr(3)), T)?;
            node.wait_route(net(SERVICES), T, &|r| {
                path_from(r, "Mesh_10_84_0_3").is_some_and(|p| p.stale)
            })?;
        }
        for (i, node) in (1..=2).zip(&nodes) {
            let r = node.wait_route(net(SERVICES), T, &|r| r.paths.len() == 2)?;
            assert!(path_from(&r, "Mesh_10_84_0_3").is_none(), "n{i}: {r:?}");
            let other = 3 - i;
            assert!(
                path_from(&r, &format!("Mesh_10_84_0_{other}")).is_some(),
                "n{i}: {r:?}"
            );
        }
        Ok(())
    });
}
