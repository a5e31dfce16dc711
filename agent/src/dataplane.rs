//! Where the node's pods become routes: felix's desired state (one workload endpoint per pod,
//! one blackhole per owned block) and the BGP speaker's originated set (service ranges, owned
//! blocks as aggregates, borrowed addresses as /32 or /128 — Calico's export rule,
//! `calico.md` §4.4), kept current as endpoints and blocks change.
//!
//! Owns: the pure translations (`felix_desired`, `originated`, `fib_report`), the task that
//! keeps felix and the speaker current (`follow`: felix's first state whole, then deltas,
//! learned routes included), and the link listing the sweep uses. Must not: compute IPAM or
//! BGP configuration (it follows `pod_network` and `desired`), or turn best paths into routes
//! itself (`learned` does).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use bgp::config::OriginatedRoute;
use bgp::speaker::SpeakerHandle;
use bgp::status::RouteChange;
use felix::plan::RouteSource;
use felix::{
    DesiredChange, DesiredState, FibSnapshot, ReconcilerHandle, RemoteRoute, WorkloadEndpoint,
};
use ipnet::IpNet;
use tokio::sync::{mpsc, watch};

use crate::ctl::protocol::{FibReport, NeighbourRow, RejectedRow};
use crate::desired::DesiredBgp;
use crate::learned::remote_changes;
use crate::pod_network::NodeNetwork;

/// Remote routes by destination (from BGP best paths, see `learned`).
pub type RemoteRoutes = BTreeMap<IpNet, RemoteRoute>;

/// felix's whole desired state: every ready endpoint (the newest when two claim one host
/// link), a blackhole per owned block, and `remotes`.
pub fn felix_desired(network: &NodeNetwork, remotes: &RemoteRoutes) -> DesiredState {
    let mut newest: BTreeMap<&str, &crate::endpoints::EndpointRecord> = BTreeMap::new();
    for e in network.endpoints.iter() {
        let slot = newest.entry(e.host_ifname.as_str()).or_insert(e);
        if e.created_unix > slot.created_unix {
            *slot = e;
        }
    }
    let workloads = newest
        .into_iter()
        .map(|(ifname, e)| {
            let endpoint = WorkloadEndpoint {
                ifname: ifname.to_string(),
                mac: e.mac.parse().ok(),
                ips: e.ips.clone(),
            };
            (ifname.to_string(), endpoint)
        })
        .collect();
    DesiredState {
        workloads,
        blackholes: network.owned.clone(),
        remotes: remotes.clone(),
        retain_unlisted_remotes: false,
    }
}

/// The speaker's whole originated set: the service ranges of `bgp`, every owned block, every
/// borrowed address as a host route, each with the communities `prefixAdvertisements` give
/// its prefix. Pools with `disableBGPExport` are filtered by the speaker's export policy.
pub fn originated(bgp: &DesiredBgp, network: &NodeNetwork) -> BTreeSet<OriginatedRoute> {
    let mut by_prefix: BTreeMap<IpNet, OriginatedRoute> = bgp
        .originated
        .iter()
        .map(|r| (r.prefix, r.clone()))
        .collect();
    let pod_prefixes = network
        .owned
        .iter()
        .copied()
        .chain(network.borrowed.iter().map(|ip| IpNet::from(*ip)));
    for prefix in pod_prefixes {
        by_prefix
            .entry(prefix)
            .or_insert_with(|| bgp.originate(prefix));
    }
    by_prefix.into_values().collect()
}

/// `gingerctl route show --fib` from felix's snapshot.
pub fn fib_report(snapshot: &FibSnapshot) -> FibReport {
    let name = |i: u32| {
        snapshot
            .link_names
            .get(&i)
            .cloned()
            .unwrap_or_else(|| format!("if{i}"))
    };
    FibReport {
        routes: snapshot.route_lines(),
        neighbours: snapshot
            .neighbours
            .iter()
            .map(|n| NeighbourRow {
                ip: n.ip,
                mac: n.mac.to_string(),
                ifname: name(n.ifindex),
            })
            .collect(),
        rejected: snapshot
            .rejected
            .iter()
            .map(|r| RejectedRow {
                dst: r.dst,
                source: match &r.source {
                    RouteSource::Workload { ifname } => format!("workload {ifname}"),
                    RouteSource::Blackhole => "blackhole".to_string(),
                    RouteSource::Remote => "remote".to_string(),
                },
                reason: r.reason.to_string(),
            })
            .collect(),
        converged: snapshot.converged,
    }
}

/// The names of the links of the calling thread's network namespace (blocking netlink).
pub fn host_links() -> Result<BTreeSet<String>, String> {
    use felix::Dataplane;
    let mut dp = felix::dataplane::netlink::NetlinkDataplane::open().map_err(|e| e.to_string())?;
    let links = dp.list_links().map_err(|e| e.to_string())?;
    Ok(links.into_iter().map(|l| l.name).collect())
}

/// What `follow` reads.
pub struct Inputs {
    /// The node's endpoints and blocks.
    pub network: watch::Receiver<Arc<NodeNetwork>>,
    /// The BGP configuration (service ranges, communities).
    pub bgp: watch::Receiver<Arc<DesiredBgp>>,
    /// The speaker's best-path changes (`SpeakerHandle::subscribe`).
    pub learned: mpsc::UnboundedReceiver<Vec<RouteChange>>,
    /// `true` while a restarted agent waits for BGP to relearn its remote routes.
    pub recovering: watch::Receiver<bool>,
}

/// The workload and blackhole deltas from `old` to `new` (remote routes are not compared).
fn local_changes(old: &DesiredState, new: &DesiredState) -> Vec<DesiredChange> {
    let mut out = Vec::new();
    for (name, w) in &new.workloads {
        if old.workloads.get(name) != Some(w) {
            out.push(DesiredChange::UpsertWorkload(w.clone()));
        }
    }
    for name in old.workloads.keys() {
        if !new.workloads.contains_key(name) {
            out.push(DesiredChange::RemoveWorkload {
                ifname: name.clone(),
            });
        }
    }
    for b in new.blackholes.difference(&old.blackholes) {
        out.push(DesiredChange::AddBlackhole(*b));
    }
    for b in old.blackholes.difference(&new.blackholes) {
        out.push(DesiredChange::RemoveBlackhole(*b));
    }
    out
}

/// Keep felix and the speaker current until `shutdown`: felix gets its whole desired state
/// once (endpoints, blocks, learned routes, and whether to keep unlisted remote routes), then
/// only deltas, a burst of BGP changes coalesced into one; the speaker gets the whole
/// originated set whenever it changes. Start this only once endpoints and blocks are loaded.
pub async fn follow(
    mut inputs: Inputs,
    felix: Arc<ReconcilerHandle>,
    speaker: SpeakerHandle,
    shutdown: impl Future,
) {
    tokio::pin!(shutdown);
    // What felix has been told, remote routes included.
    let mut sent: Option<DesiredState> = None;
    let mut sent_originated: Option<BTreeSet<OriginatedRoute>> = None;
    let mut pending_learned: Vec<RouteChange> = Vec::new();
    let mut learned_open = true;
    loop {
        let net = inputs.network.borrow_and_update().clone();
        let config = inputs.bgp.borrow_and_update().clone();
        let retain = *inputs.recovering.borrow_and_update();
        match sent.as_mut() {
            None => {
                let mut desired = felix_desired(&net, &RemoteRoutes::new());
                remote_changes(&mut desired.remotes, pending_learned.drain(..));
                desired.retain_unlisted_remotes = retain;
                tracing::debug!(
                    workloads = desired.workloads.len(),
                    blackholes = desired.blackholes.len(),
                    remotes = desired.remotes.len(),
                    retain_unlisted_remotes = retain,
                    "felix desired state"
                );
                felix.set_desired(desired.clone());
                sent = Some(desired);
            }
            Some(current) => {
                let local = felix_desired(&net, &RemoteRoutes::new());
                let mut changes = local_changes(current, &local);
                for c in &changes {
                    current.apply(c.clone());
                }
                changes.extend(remote_changes(
                    &mut current.remotes,
                    pending_learned.drain(..),
                ));
                if current.retain_unlisted_remotes != retain {
                    current.retain_unlisted_remotes = retain;
                    changes.push(DesiredChange::RetainUnlistedRemotes(retain));
                }
                if !changes.is_empty() {
                    tracing::debug!(changes = changes.len(), "felix deltas");
                    felix.update(changes);
                }
            }
        }
        let routes = originated(&config, &net);
        if sent_originated.as_ref() != Some(&routes) {
            match speaker.set_originated(routes.clone()).await {
                Ok(()) => sent_originated = Some(routes),
                // A stopped speaker stops the daemon (its watch loop notices); nothing to redo.
                Err(e) => tracing::error!("originated routes not updated: {e}"),
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            changed = inputs.network.changed() => if changed.is_err() { return },
            changed = inputs.bgp.changed() => if changed.is_err() { return },
            changed = inputs.recovering.changed() => if changed.is_err() { return },
            batch = inputs.learned.recv(), if learned_open => match batch {
                Some(batch) => {
                    pending_learned.extend(batch);
                    // Coalesce what else is already queued into the same delta.
                    while let Ok(more) = inputs.learned.try_recv() {
                        pending_learned.extend(more);
                    }
                }
                None => learned_open = false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use bgp::config::SpeakerConfig;

    use super::*;
    use crate::datastore::model::{CommunityValue, PrefixAdvertisement};
    use crate::endpoints::EndpointRecord;

    fn endpoint(handle: &str, link: &str, ip: &str, created: u64) -> EndpointRecord {
        EndpointRecord {
            handle: handle.into(),
            namespace: "default".into(),
            pod: handle.into(),
            container_id: handle.into(),
            netns: "/var/run/netns/x".into(),
            ifname: "eth0".into(),
            host_ifname: link.into(),
            host_ifindex: None,
            mac: "0a:58:0a:f4:00:05".into(),
            ips: vec![ip.parse().unwrap()],
            created_unix: created,
            terminating: false,
        }
    }

    fn network() -> NodeNetwork {
        NodeNetwork {
            endpoints: Arc::new(vec![
                endpoint("a", "cali1", "10.244.0.1", 10),
                endpoint("b", "cali2", "10.244.0.2", 10),
                // A newer pod took cali1 over (the old one's DEL never came).
                endpoint("c", "cali1", "10.244.0.3", 20),
            ]),
            owned: ["10.244.0.0/26".parse().unwrap()].into(),
            borrowed: ["10.244.1.7".parse::<IpAddr>().unwrap()].into(),
        }
    }

    #[test]
    fn felix_gets_endpoints_and_blackholes() {
        let d = felix_desired(&network(), &RemoteRoutes::new());
        assert_eq!(d.workloads.len(), 2);
        assert_eq!(
            d.workloads["cali1"].ips,
            vec!["10.244.0.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            d.workloads["cali2"].mac,
            Some("0a:58:0a:f4:00:05".parse().unwrap())
        );
        assert_eq!(d.blackholes, ["10.244.0.0/26".parse().unwrap()].into());
        assert!(d.remotes.is_empty());
    }

    #[test]
    fn blocks_and_borrowed_addresses_are_originated_with_communities() {
        let mut bgp = DesiredBgp {
            speaker: SpeakerConfig::new("10.0.0.1".parse().unwrap(), 64512),
            originated: [OriginatedRoute::new("10.96.0.0/12".parse().unwrap())].into(),
            prefix_advertisements: vec![PrefixAdvertisement {
                cidr: "10.244.0.0/16".parse().unwrap(),
                communities: vec![CommunityValue::Standard((64512 << 16) | 100)],
            }],
            skipped: vec![],
        };
        let routes = originated(&bgp, &network());
        let prefixes: Vec<String> = routes.iter().map(|r| r.prefix.to_string()).collect();
        assert_eq!(prefixes, ["10.96.0.0/12", "10.244.0.0/26", "10.244.1.7/32"]);
        let block = routes.iter().find(|r| r.prefix.prefix_len() == 26).unwrap();
        assert_eq!(block.communities, vec![(64512 << 16) | 100]);
        let service = routes.iter().find(|r| r.prefix.prefix_len() == 12).unwrap();
        assert!(service.communities.is_empty());
        // No pods, no blocks: only the services.
        bgp.prefix_advertisements.clear();
        let routes = originated(&bgp, &NodeNetwork::default());
        assert_eq!(routes.len(), 1);
    }
}
