//! BGP → kernel: what the speaker learned becomes felix remote routes, and a restarted agent
//! keeps the remote routes it finds in the kernel until BGP has relearned them (RFC 4724, the
//! restarting speaker's side).
//!
//! Owns: the translation of best-path changes into felix deltas (`remote_changes`: a burst is
//! coalesced, the last change to a prefix wins, and a change that changes nothing is dropped),
//! the restart-recovery rule (`recovery_done`, pure) and the task that applies it
//! (`recover`), and the start-up look at the kernel (`previous_run`). Must not: program the
//! kernel (felix does, and refuses a remote route over one of this node's blocks or pods, or
//! one whose next hop does not resolve) or choose best paths (the speaker does).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bgp::speaker::SpeakerHandle;
use bgp::status::{PeerStatus, RouteChange, SessionState};
use felix::{DesiredChange, RemoteRoute};
use ipnet::IpNet;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::dataplane::RemoteRoutes;

/// How often the recovery task asks the speaker about its peers.
const RECOVERY_POLL: Duration = Duration::from_millis(100);

/// The felix deltas that bring `current` to what `changes` say, applied in order (the last
/// change to a prefix wins). `current` is updated to match.
pub fn remote_changes(
    current: &mut RemoteRoutes,
    changes: impl IntoIterator<Item = RouteChange>,
) -> Vec<DesiredChange> {
    let mut last: BTreeMap<IpNet, Vec<IpAddr>> = BTreeMap::new();
    for c in changes {
        last.insert(c.prefix.trunc(), c.next_hops);
    }
    let mut out = Vec::new();
    for (dst, next_hops) in last {
        if next_hops.is_empty() {
            if current.remove(&dst).is_some() {
                out.push(DesiredChange::RemoveRemote(dst));
            }
            continue;
        }
        let route = RemoteRoute {
            dst,
            next_hops: next_hops.into_iter().collect(),
        };
        if current.get(&dst) != Some(&route) {
            current.insert(dst, route.clone());
            out.push(DesiredChange::UpsertRemote(route));
        }
    }
    out
}

/// Whether BGP has relearned everything after a restart: every configured peer is Established
/// and has sent End-of-RIB for each negotiated family. A peer without the graceful restart
/// capability sends no End-of-RIB, so for it being Established is all there is to wait for.
pub fn recovery_done(peers: &[PeerStatus]) -> bool {
    peers.iter().all(|p| {
        p.state == SessionState::Established
            && (!p.peer_graceful_restart
                || p.families.iter().all(|f| p.end_of_rib_received.contains(f)))
    })
}

/// The peers recovery still waits for, for the log.
fn waiting_for(peers: &[PeerStatus]) -> Vec<String> {
    peers
        .iter()
        .filter(|p| !recovery_done(std::slice::from_ref(p)))
        .map(|p| p.name.clone())
        .collect()
}

/// Run restart recovery: `recovering` stays `true` until `recovery_done` holds or
/// `restart_time` has passed since start, then becomes `false` (felix then removes the remote
/// routes BGP did not relearn, and the speaker's next OPENs no longer carry the R bit).
pub async fn recover(
    speaker: SpeakerHandle,
    restart_time: Duration,
    recovering: Arc<watch::Sender<bool>>,
    shutdown: impl Future,
) {
    tokio::pin!(shutdown);
    let deadline = Instant::now() + restart_time;
    loop {
        let peers = match speaker.peers().await {
            Ok(p) => p,
            Err(_) => return,
        };
        if recovery_done(&peers) {
            tracing::info!(
                peers = peers.len(),
                "graceful restart: every peer sent End-of-RIB; stale remote routes are removed"
            );
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                waiting_for = ?waiting_for(&peers),
                restart_time_s = restart_time.as_secs(),
                "graceful restart: restart time over; remote routes not relearned are removed"
            );
            break;
        }
        tokio::select! {
            _ = &mut shutdown => return,
            () = tokio::time::sleep(RECOVERY_POLL) => {}
        }
    }
    recovering.send_replace(false);
}

/// What a previous agent left in the kernel of the calling thread's network namespace: the
/// number of routes with Ginger's protocol, and how many of them are remote (via a gateway).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PreviousRun {
    pub routes: usize,
    pub remote: usize,
}

/// Look for routes of a previous run (blocking netlink).
pub fn previous_run(protocol: u8) -> Result<PreviousRun, String> {
    use felix::Dataplane;
    let mut dp = felix::dataplane::netlink::NetlinkDataplane::open().map_err(|e| e.to_string())?;
    let routes = dp.list_routes(None).map_err(|e| e.to_string())?;
    let ours = routes.iter().filter(|r| r.protocol == protocol);
    let mut found = PreviousRun::default();
    for r in ours {
        found.routes += 1;
        if r.is_gateway_route() {
            found.remote += 1;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use bgp::status::PeerCounters;
    use bgp::types::Family;

    use super::*;

    fn change(prefix: &str, hops: &[&str]) -> RouteChange {
        RouteChange {
            prefix: prefix.parse().unwrap(),
            next_hops: hops.iter().map(|h| h.parse().unwrap()).collect(),
            from: Some("Mesh_10_0_0_2".into()),
            stale: false,
        }
    }

    #[test]
    fn a_burst_becomes_one_delta_per_prefix() {
        let mut table = RemoteRoutes::new();
        let deltas = remote_changes(
            &mut table,
            [
                change("10.244.1.0/26", &["10.0.0.2"]),
                change("10.244.2.0/26", &["10.0.0.3"]),
                // The last change to a prefix wins; ECMP next hops make one route.
                change("10.244.1.0/26", &["10.0.0.4", "10.0.0.2"]),
                // Announced and withdrawn within the burst: nothing to do.
                change("10.244.3.0/26", &["10.0.0.3"]),
                change("10.244.3.0/26", &[]),
            ],
        );
        assert_eq!(deltas.len(), 2);
        let r = &table[&"10.244.1.0/26".parse().unwrap()];
        assert_eq!(r.next_hops.len(), 2);
        assert_eq!(deltas[0], DesiredChange::UpsertRemote(r.clone()));
        // The same again changes nothing; a withdrawal removes; a new next hop replaces.
        assert!(remote_changes(&mut table, [change("10.244.2.0/26", &["10.0.0.3"])]).is_empty());
        assert_eq!(
            remote_changes(&mut table, [change("10.244.2.0/26", &[])]),
            vec![DesiredChange::RemoveRemote(
                "10.244.2.0/26".parse().unwrap()
            )]
        );
        let d = remote_changes(&mut table, [change("10.244.1.0/26", &["10.0.0.9"])]);
        assert!(matches!(&d[..], [DesiredChange::UpsertRemote(r)] if r.next_hops.len() == 1));
        assert_eq!(table.len(), 1);
        // Withdrawing what was never there is nothing.
        assert!(remote_changes(&mut table, [change("10.9.0.0/16", &[])]).is_empty());
    }

    fn peer(state: SessionState, gr: bool, eor: &[Family]) -> PeerStatus {
        PeerStatus {
            name: "Mesh_10_0_0_2".into(),
            kind: bgp::config::PeerKind::Mesh,
            address: "10.0.0.2".parse().unwrap(),
            port: 179,
            remote_asn: 64512,
            local_asn: 64512,
            state,
            since_unix: 0,
            last_error: None,
            peer_router_id: None,
            hold_time: None,
            families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            prefixes_received: 0,
            prefixes_accepted: 0,
            prefixes_advertised: 0,
            counters: PeerCounters::default(),
            end_of_rib_received: eor.to_vec(),
            peer_graceful_restart: gr,
            stale_paths: 0,
        }
    }

    #[test]
    fn recovery_waits_for_every_peer_and_every_family() {
        use Family::*;
        use SessionState::*;
        let both = [Ipv4Unicast, Ipv6Unicast];
        assert!(recovery_done(&[]));
        assert!(recovery_done(&[peer(Established, true, &both)]));
        assert!(!recovery_done(&[peer(Established, true, &[Ipv4Unicast])]));
        assert!(!recovery_done(&[
            peer(Established, true, &both),
            peer(Active, true, &[])
        ]));
        // No capability, no End-of-RIB to wait for.
        assert!(recovery_done(&[peer(Established, false, &[])]));
        assert!(!recovery_done(&[peer(OpenConfirm, false, &[])]));
    }
}
