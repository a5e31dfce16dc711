//! Fixtures shared by the agent's integration tests: an `AgentState` serving canned snapshots
//! (optionally slow), sample peers and routes, and a self-removing temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent::ctl::{AgentState, BgpPeerRow, NodeAsn, NodeRow};
use bgp::config::PeerKind;
use bgp::status::{PathStatus, PeerCounters, PeerStatus, RouteStatus, SessionState};
use ipnet::IpNet;

/// Canned answers; `delay` makes the speaker-backed calls slow.
pub struct TestState {
    pub peers: Vec<PeerStatus>,
    pub routes: Vec<RouteStatus>,
    pub bgp_peers: Vec<BgpPeerRow>,
    pub nodes: Vec<NodeRow>,
    pub delay: Duration,
    pub not_ready: Vec<String>,
    pub route_queries: Mutex<Vec<Option<IpNet>>>,
    pub peer_queries: AtomicUsize,
}

impl TestState {
    pub fn new() -> TestState {
        TestState {
            peers: vec![
                peer("10.0.0.2", SessionState::Established, None),
                peer(
                    "10.0.0.3",
                    SessionState::Active,
                    Some("Socket: Connection refused"),
                ),
            ],
            routes: vec![
                route("10.244.1.0/26"),
                route("10.244.0.0/16"),
                route("fd00:1::/64"),
            ],
            bgp_peers: vec![BgpPeerRow {
                name: "tor".into(),
                peer_ip: Some("192.0.2.1".parse().unwrap()),
                port: None,
                node: None,
                node_selector: None,
                asn: Some(65001),
            }],
            nodes: vec![NodeRow {
                name: "node-1".into(),
                asn: Some(NodeAsn::Inherited(64512)),
                ipv4: Some("10.0.0.1/24".parse().unwrap()),
                ipv6: None,
            }],
            delay: Duration::ZERO,
            not_ready: Vec::new(),
            route_queries: Mutex::new(Vec::new()),
            peer_queries: AtomicUsize::new(0),
        }
    }

    pub fn slow(delay: Duration) -> TestState {
        TestState {
            delay,
            ..TestState::new()
        }
    }
}

impl AgentState for TestState {
    async fn peers(&self) -> Vec<PeerStatus> {
        self.peer_queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.peers.clone()
    }

    async fn routes(&self, prefix: Option<IpNet>) -> Vec<RouteStatus> {
        self.route_queries.lock().unwrap().push(prefix);
        tokio::time::sleep(self.delay).await;
        // Everything, unfiltered: the server must apply the matching rule.
        self.routes.clone()
    }

    fn bgp_peer_rows(&self) -> Vec<BgpPeerRow> {
        self.bgp_peers.clone()
    }

    fn node_rows(&self) -> Vec<NodeRow> {
        self.nodes.clone()
    }

    async fn loc_rib_prefixes(&self) -> Option<(u64, u64)> {
        Some((2, 1))
    }

    fn not_ready_reasons(&self) -> Vec<String> {
        self.not_ready.clone()
    }
}

pub fn peer(address: &str, state: SessionState, error: Option<&str>) -> PeerStatus {
    let address = address.parse().unwrap();
    PeerStatus {
        name: bgp::config::PeerConfig::calico_name(PeerKind::Mesh, address, 179),
        kind: PeerKind::Mesh,
        address,
        port: 179,
        remote_asn: 64512,
        local_asn: 64512,
        state,
        since_unix: 1_700_000_000,
        last_error: error.map(str::to_string),
        peer_router_id: None,
        hold_time: None,
        families: vec![],
        prefixes_received: 4,
        prefixes_accepted: 4,
        prefixes_advertised: 1,
        counters: PeerCounters {
            updates_in: 9,
            ..PeerCounters::default()
        },
        end_of_rib_received: vec![],
        peer_graceful_restart: false,
        stale_paths: 0,
    }
}

pub fn route(prefix: &str) -> RouteStatus {
    RouteStatus {
        prefix: prefix.parse().unwrap(),
        paths: vec![PathStatus {
            from: "Mesh_10_0_0_2".into(),
            peer_address: Some("10.0.0.2".parse().unwrap()),
            next_hop: Some("10.0.0.2".parse().unwrap()),
            as_path: String::new(),
            origin: "IGP".into(),
            med: None,
            local_pref: Some(100),
            communities: vec![],
            originator_id: None,
            cluster_list: vec![],
            best: true,
            multipath: true,
            stale: false,
            reason: None,
        }],
    }
}

/// A directory under the system temp dir, removed with everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ginger-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
