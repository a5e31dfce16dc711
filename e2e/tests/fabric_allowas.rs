//! Calico's AS-per-rack model with the mesh off: both nodes of a rack are in the rack's AS
//! (65001) and peer eBGP with their BIRD ToR (AS 65100), which does no AS override. The ToR
//! passes node A's block to node B as `65100 65001`: B drops it as an AS loop (RFC 4271 §9.1.2)
//! until the BGPPeer says `numAllowedLocalASNumbers: 1` (BIRD's `allow local as 1`); after a
//! reload of the cluster file B routes A's block via the ToR and B's pod reaches A's. Run as
//! root after `cargo build --workspace --bins`.

use std::net::IpAddr;
use std::time::Duration;

use e2e::fabric::{Fabric, HostSpec, kernel_route, ping_once};
use e2e::pods::ROUTE_PROTOCOL;
use e2e::scenarios::{Cluster, DaemonKind};
use e2e::*;

const T: Duration = Duration::from_secs(20);
const TOR: &str = "10.91.0.1";
/// The session name B gives its ToR (a `nodeSelector` BGPPeer: node-specific).
const TOR_SESSION: &str = "Node_10_91_0_1";

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

/// The rack: two nodes in AS 65001, the mesh off, one BGPPeer to the ToR with `extra` fields.
fn rack(extra: &str) -> Cluster {
    Cluster::new()
        .bgp_configuration("default", "{asNumber: 64512, nodeToNodeMeshEnabled: false}")
        .doc(
            "IPPool",
            "pool",
            &[],
            "{cidr: 10.244.0.0/16, blockSize: 26}",
        )
        .node(
            "rack-a1",
            "10.91.0.11/24",
            &[("rack", "a")],
            "asNumber: 65001",
        )
        .node(
            "rack-a2",
            "10.91.0.12/24",
            &[("rack", "a")],
            "asNumber: 65001",
        )
        .bgp_peer(
            "rack-a-tor",
            &format!("{{nodeSelector: \"rack == 'a'\", peerIP: {TOR}, asNumber: 65100{extra}}}"),
        )
}

#[test]
fn a_rack_neighbours_block_is_accepted_after_num_allowed_local_as_numbers_is_set() {
    scenario("fabric-allowas", |dir| {
        let file = rack("").write(&dir.path().join("cluster.yaml"))?;
        let hosts =
            [("rack-a1", "10.91.0.11/24"), ("rack-a2", "10.91.0.12/24")].map(|(n, c)| HostSpec {
                name: n.into(),
                segment: 0,
                cidr: c.into(),
            });
        let mut f = Fabric::start(dir.path(), 1, &hosts, &file, &[])?;
        // `next hop self`: B's route to A's block must go through the ToR, not straight to A
        // on the shared segment (BIRD's third-party next hop).
        let mut tor = RouterConfig::parse(TOR, 65100);
        for n in &f.nodes {
            tor = tor.neighbor(
                Neighbor::new(IpAddr::V4(n.address), 65001)
                    .connect_retry(1)
                    .next_hop_self(),
            );
        }
        f.add_tor(dir.path(), 0, &format!("{TOR}/24"), DaemonKind::Bird, tor)?;
        f.add_pods(1)?;
        let (a, b) = (&f.nodes[0], &f.nodes[1]);
        let a_block = *a
            .blocks()?
            .first()
            .ok_or_else(|| fail("rack-a1 has no block"))?;
        let a_pod = a.pods[0].addresses()[0];
        let tor_ip: IpAddr = TOR.parse().expect("an address");

        // The ToR has A's block and passes it on unchanged but for its own AS.
        f.tors[0]
            .daemon
            .wait_route(a_block, T, &|r| r.as_path == [65001])?;
        // B keeps the path with its reason and never selects it.
        let agent_b = b.node.agent()?;
        wait_until(T, "rack-a2 to hold A's block as an AS loop", || {
            let route = agent_b.route(a_block)?;
            let path = route
                .as_ref()
                .and_then(|r| r.paths.iter().find(|p| p.from == TOR_SESSION));
            match path {
                Some(p)
                    if p.as_path == "65100 65001"
                        && !p.best
                        && p.reason.as_deref().is_some_and(|r| r.contains("AS loop")) =>
                {
                    Ok(())
                }
                _ => Err(fail(format!("{route:?}"))),
            }
        })?;
        let (code, text, _) = agent_b.gingerctl(&["route", "show", &a_block.to_string()])?;
        ensure(code == 0 && text.contains("AS loop"), || {
            format!("gingerctl route show {a_block} (exit {code}):\n{text}")
        })?;
        ensure(kernel_route(b.node.netns(), a_block)?.is_none(), || {
            format!("rack-a2 has a kernel route to {a_block} while it is an AS loop")
        })?;
        ensure(!ping_once(b.pods[0].netns(), a_pod), || {
            format!("rack-a2's pod reaches {a_pod} without a route")
        })?;

        // Reload with the field set: B's session to the ToR is reset and A's block accepted.
        rack(", numAllowedLocalASNumbers: 1").write(&file)?;
        let want = (vec![tor_ip], ROUTE_PROTOCOL.to_string());
        wait_until(
            T,
            "A's block in rack-a2's kernel via the ToR",
            || match kernel_route(b.node.netns(), a_block)? {
                Some(r) if r == want => Ok(()),
                other => Err(fail(format!("{other:?}"))),
            },
        )?;
        let route = agent_b
            .route(a_block)?
            .ok_or_else(|| fail("A's block left rack-a2's RIB"))?;
        let best = route.paths.iter().find(|p| p.best);
        ensure(
            best.is_some_and(|p| p.from == TOR_SESSION && p.reason.is_none()),
            || format!("best path of {a_block} at rack-a2: {route:?}"),
        )?;
        f.wait_full_reachability(T)?;
        Ok(())
    });
}
