//! Route reflection with `ginger-node` as the reflector (RFC 4456), Calico's documented setup:
//! one RR node (`routeReflectorClusterID: 244.0.0.1`, label `route-reflector: 'true'`), the mesh
//! off, one `BGPPeer {nodeSelector: all(), peerSelector: route-reflector == 'true'}`, three
//! ginger clients, and a BIRD iBGP router peered with the RR by a node-specific `BGPPeer` (the RR
//! treats it as a client: iBGP and not in its cluster), all on one L2 segment.
//!
//! The clients originate the cluster's service external-IP range, each with its own community
//! (`node.<name>` prefix advertisements). The RR node is labelled out of service advertisement,
//! so it originates nothing itself and every path it sends is a reflected one; as a reflector it
//! still passes routes within the external-IP ranges on (Calico's export rule, `calico.md` §4.4
//! step 7; routes inside pools, like BIRD's, pass by step 8). The RR holds one path per client and reflects
//! its best (client c1's, lowest ORIGINATOR_ID) to the other clients and to BIRD with
//! ORIGINATOR_ID = c1, CLUSTER_LIST = [244.0.0.1] and c1's next hop kept (§8, §6); c1 gets
//! nothing back. BIRD's own route reaches all three clients the same way. When c1 stops
//! advertising (labelled out, a reload), the RR withdraws c1's path and reflects c2's instead,
//! which now reaches c1 too.

use std::time::Duration;

use bgp::status::{PathStatus, RouteStatus};
use e2e::scenarios::{Cluster, ip, net, path_from, status_rows};
use e2e::*;

const T: Duration = Duration::from_secs(20);
/// The service external-IP range every client originates.
const SERVICES: &str = "198.51.100.0/24";
const BIRD_NET: &str = "10.244.50.0/24";
const RR: &str = "10.85.0.1";
const BIRD_ADDR: &str = "10.85.0.20";
const CLUSTER_ID: &str = "244.0.0.1";
const EXCLUDE: (&str, &str) = (
    "node.kubernetes.io/exclude-from-external-load-balancers",
    "true",
);
/// The RR's session name on each client.
const VIA_RR: &str = "Node_10_85_0_1";

fn client_addr(i: usize) -> String {
    format!("10.85.0.{}", 10 + i)
}

/// The cluster file; `c1_advertises: false` labels c1 out of service advertisement.
fn cluster(c1_advertises: bool) -> Cluster {
    let mut c = Cluster::new()
        .bgp_configuration(
            "default",
            &format!(
                "{{asNumber: 64512, nodeToNodeMeshEnabled: false, \
                 serviceExternalIPs: [{{cidr: {SERVICES}}}]}}"
            ),
        )
        .node(
            "rr",
            &format!("{RR}/24"),
            &[("route-reflector", "true"), EXCLUDE],
            &format!("routeReflectorClusterID: {CLUSTER_ID}"),
        );
    for i in 1..=3 {
        let labels: &[(&str, &str)] = if i == 1 && !c1_advertises {
            &[EXCLUDE]
        } else {
            &[]
        };
        c = c
            .bgp_configuration(
                &format!("node.c{i}"),
                &format!(
                    "{{prefixAdvertisements: [{{cidr: {SERVICES}, communities: [\"64512:1{i}\"]}}]}}"
                ),
            )
            .node(&format!("c{i}"), &format!("{}/24", client_addr(i)), labels, "");
    }
    c.bgp_peer(
        "peer-with-route-reflectors",
        "{nodeSelector: all(), peerSelector: \"route-reflector == 'true'\"}",
    )
    .bgp_peer(
        "bird-client",
        &format!("{{node: rr, peerIP: {BIRD_ADDR}, asNumber: 64512}}"),
    )
    .ip_pool("pods", "10.244.0.0/16")
}

/// The one path `route` has from `from`; panics if there is none or more than one.
fn only_path_from<'a>(route: &'a RouteStatus, from: &str) -> &'a PathStatus {
    let paths: Vec<&PathStatus> = route.paths.iter().filter(|p| p.from == from).collect();
    assert_eq!(paths.len(), 1, "one path from {from}: {route:?}");
    paths[0]
}

#[test]
fn ginger_rr_reflects_between_ginger_clients_and_a_bird_client() {
    scenario("rr", |dir| {
        let lan = Segment::new("rr")?;
        let file = cluster(true).write(&dir.join("cluster.yaml"))?;
        let rr_ns = Netns::new("rr")?;
        lan.attach(&rr_ns, "eth0", &[&format!("{RR}/24")])?;
        let bird_ns = Netns::new("bird")?;
        lan.attach(&bird_ns, "eth0", &[&format!("{BIRD_ADDR}/24")])?;
        let mut client_ns = Vec::new();
        for i in 1..=3 {
            let ns = Netns::new(&format!("c{i}"))?;
            lan.attach(&ns, "eth0", &[&format!("{}/24", client_addr(i))])?;
            client_ns.push(ns);
        }

        let bird = Bird::start(
            &bird_ns,
            dir.path(),
            RouterConfig::parse(BIRD_ADDR, 64512)
                .neighbor(Neighbor::parse(RR, 64512))
                .originate(BIRD_NET, RouteAttrs::new().community(64512, 20)),
        )?;
        let rr = GingerNode::start(&rr_ns, dir.path(), &file, "rr", &[])?;
        let mut clients = Vec::new();
        for (i, ns) in (1..=3).zip(&client_ns) {
            clients.push(GingerNode::start(
                ns,
                dir.path(),
                &file,
                &format!("c{i}"),
                &[],
            )?);
        }

        // The RR peers with the three clients (reverse peering of the selector BGPPeer) and
        // BIRD; each client only with the RR.
        for i in 1..=3 {
            rr.wait_established(ip(&client_addr(i)), T)?;
        }
        rr.wait_established(ip(BIRD_ADDR), T)?;
        bird.wait_established(ip(RR), T)?;
        assert_eq!(rr.peers()?.len(), 4);
        for c in &clients {
            let p = c.wait_established(ip(RR), T)?;
            assert_eq!(p.name, VIA_RR);
            assert_eq!(c.peers()?.len(), 1, "{}: only the RR", c.node());
        }
        let (code, out, err) = rr.gingerctl(&["node", "status"])?;
        assert_eq!(code, 0, "{err}");
        let rows = status_rows(&out)?;
        assert_eq!(rows.len(), 4, "{out}");
        for r in &rows {
            assert_eq!(
                (r.peer_type.as_str(), r.state.as_str(), r.info.as_str()),
                ("node specific", "up", "Established"),
                "{out}"
            );
        }

        // The RR holds exactly one path per client, each with its originator's next hop.
        let at_rr = rr.wait_route(net(SERVICES), T, &|r| r.paths.len() == 3)?;
        for i in 1..=3 {
            let p = only_path_from(&at_rr, &format!("Node_10_85_0_{}", 10 + i));
            assert_eq!(p.next_hop, Some(ip(&client_addr(i))), "{p:?}");
            assert_eq!(p.communities, vec![format!("64512:1{i}")], "{p:?}");
        }
        assert!(path_from(&at_rr, "local").is_none(), "{at_rr:?}");

        // c1's path, reflected: c2, c3 and BIRD hold it with ORIGINATOR_ID and CLUSTER_LIST.
        let check_reflected = |c: &GingerNode, origin: usize| -> Result<()> {
            let r = c.wait_route(net(SERVICES), T, &|r| {
                path_from(r, VIA_RR)
                    .is_some_and(|p| p.originator_id == Some(ip4(&client_addr(origin))))
            })?;
            let p = only_path_from(&r, VIA_RR);
            assert_eq!(
                p.next_hop,
                Some(ip(&client_addr(origin))),
                "{}: {p:?}",
                c.node()
            );
            assert_eq!(p.cluster_list, vec![ip4(CLUSTER_ID)], "{}: {p:?}", c.node());
            assert_eq!(
                p.communities,
                vec![format!("64512:1{origin}")],
                "{}: {p:?}",
                c.node()
            );
            assert_eq!(p.as_path, "", "{}: {p:?}", c.node());
            assert_eq!(p.local_pref, Some(100), "{}: {p:?}", c.node());
            Ok(())
        };
        check_reflected(&clients[1], 1)?;
        check_reflected(&clients[2], 1)?;
        let at_bird = bird.wait_any_route(net(SERVICES), T)?;
        assert_eq!(
            at_bird.originator_id,
            Some(ip4(&client_addr(1))),
            "{at_bird}"
        );
        assert_eq!(at_bird.cluster_list, vec![ip4(CLUSTER_ID)], "{at_bird}");
        assert_eq!(at_bird.next_hop, Some(ip(&client_addr(1))), "{at_bird}");
        assert_eq!(at_bird.from, Some(ip(RR)), "{at_bird}");
        assert_eq!(at_bird.local_pref, Some(100), "{at_bird}");
        assert!(at_bird.as_path.is_empty(), "{at_bird}");
        assert!(at_bird.has_community(64512, 11), "{at_bird}");

        // BIRD's route reaches every ginger client, reflected.
        for c in &clients {
            let r = c.wait_route(net(BIRD_NET), T, &|_| true)?;
            let p = only_path_from(&r, VIA_RR);
            assert!(p.best, "{}: {r:?}", c.node());
            assert_eq!(p.next_hop, Some(ip(BIRD_ADDR)), "{}: {p:?}", c.node());
            assert_eq!(p.originator_id, Some(ip4(BIRD_ADDR)), "{}: {p:?}", c.node());
            assert_eq!(p.cluster_list, vec![ip4(CLUSTER_ID)], "{}: {p:?}", c.node());
            assert_eq!(
                p.communities,
                vec!["64512:20".to_string()],
                "{}: {p:?}",
                c.node()
            );
        }

        // The RR sends c1 nothing for the range but c1's own path back: c1 has only its own.
        let own = clients[0]
            .route(net(SERVICES))?
            .expect("c1 originates the range");
        assert_eq!(own.paths.len(), 1, "{own:?}");
        assert_eq!(own.paths[0].from, "local", "{own:?}");

        // c1 stops advertising: the RR reflects c2's path instead, to c1 as well.
        cluster(false).write(&dir.join("cluster.yaml"))?;
        rr.wait_route(net(SERVICES), T, &|r| r.paths.len() == 2)?;
        check_reflected(&clients[0], 2)?;
        check_reflected(&clients[2], 2)?;
        bird.wait_route(net(SERVICES), T, &|r| {
            r.originator_id == Some(ip4(&client_addr(2)))
        })?;
        let c1 = clients[0].route(net(SERVICES))?.expect("reflected");
        assert!(path_from(&c1, "local").is_none(), "{c1:?}");
        Ok(())
    });
}

fn ip4(text: &str) -> std::net::Ipv4Addr {
    text.parse()
        .unwrap_or_else(|e| panic!("address {text:?}: {e}"))
}
