//! Read-only views of the speaker for the CLI, metrics and health checks.
//!
//! Owns: the serialisable snapshot types (`PeerStatus`, `RouteStatus`, `PathStatus`) and the
//! best-path change events the speaker publishes (`RouteChange`). Must not: hold references into
//! live speaker state; every snapshot is a copy taken at one instant.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::PeerKind;
use crate::types::{Asn, Family};

/// Session states (RFC 4271 §8.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SessionState {
    /// Not trying to connect (stopped, or waiting before the next attempt).
    Idle,
    /// Waiting for our outgoing TCP connection.
    Connect,
    /// Listening for the peer's connection.
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for KEEPALIVE.
    OpenConfirm,
    /// Up: routes are exchanged.
    Established,
}

impl SessionState {
    /// The RFC name (`Established`, `OpenSent`, …) as BIRD prints it.
    pub fn name(self) -> &'static str {
        match self {
            SessionState::Idle => "Idle",
            SessionState::Connect => "Connect",
            SessionState::Active => "Active",
            SessionState::OpenSent => "OpenSent",
            SessionState::OpenConfirm => "OpenConfirm",
            SessionState::Established => "Established",
        }
    }
}

/// Per-peer counters (monotonic since the peer was configured).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCounters {
    /// UPDATE messages received.
    pub updates_in: u64,
    /// UPDATE messages sent.
    pub updates_out: u64,
    /// NOTIFICATIONs received, by `code/subcode` label.
    pub notifications_in: BTreeMap<String, u64>,
    /// NOTIFICATIONs sent, by `code/subcode` label.
    pub notifications_out: BTreeMap<String, u64>,
    /// FSM state transitions, by `From->To`.
    pub transitions: BTreeMap<String, u64>,
    /// Times the session reached Established.
    pub established_count: u64,
    /// UPDATEs handled as treat-as-withdraw (RFC 7606).
    pub treat_as_withdraw: u64,
}

/// One neighbour as seen now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Session name (`Mesh_10_0_0_2`).
    pub name: String,
    /// Mesh, global or node-specific.
    pub kind: PeerKind,
    /// Neighbour address.
    pub address: IpAddr,
    /// Neighbour port.
    pub port: u16,
    /// Configured remote AS.
    pub remote_asn: Asn,
    /// Our AS on this session.
    pub local_asn: Asn,
    /// Current FSM state.
    pub state: SessionState,
    /// Unix time (seconds) of the last state change.
    pub since_unix: u64,
    /// Last error, BIRD style (`Socket: Connection refused`, `Received: Hold timer expired`).
    pub last_error: Option<String>,
    /// Peer's BGP identifier, once an OPEN was received.
    pub peer_router_id: Option<Ipv4Addr>,
    /// Negotiated hold time (seconds), while up.
    pub hold_time: Option<u16>,
    /// Negotiated families, while up.
    pub families: Vec<Family>,
    /// Prefixes received from this peer (Adj-RIB-In size).
    pub prefixes_received: u64,
    /// Received prefixes that passed import checks.
    pub prefixes_accepted: u64,
    /// Prefixes currently advertised to this peer (Adj-RIB-Out size).
    pub prefixes_advertised: u64,
    /// Counters.
    pub counters: PeerCounters,
    /// Families whose End-of-RIB the peer has sent on the current session (RFC 4724 §2).
    #[serde(default)]
    pub end_of_rib_received: Vec<Family>,
    /// The peer advertised the graceful restart capability on the current session, so it
    /// sends End-of-RIB after its initial table.
    #[serde(default)]
    pub peer_graceful_restart: bool,
    /// Paths from this peer kept as stale by graceful restart (we are its helper).
    #[serde(default)]
    pub stale_paths: u64,
}

/// One path to a prefix, with its standing in the decision process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStatus {
    /// Session name the path came from, or `local` for originated routes.
    pub from: String,
    /// Neighbour address (None for local routes).
    pub peer_address: Option<IpAddr>,
    /// Next hop.
    pub next_hop: Option<IpAddr>,
    /// AS path, BIRD style text.
    pub as_path: String,
    /// ORIGIN name.
    pub origin: String,
    /// MED.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// Communities as `aa:nn` and large communities as `a:b:c`.
    pub communities: Vec<String>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST.
    pub cluster_list: Vec<Ipv4Addr>,
    /// The best path.
    pub best: bool,
    /// Part of the equal-cost multipath set (the best path is too).
    pub multipath: bool,
    /// Kept as stale by graceful restart.
    pub stale: bool,
    /// Why this path is not the best (decision step lost at, or why it is ineligible).
    pub reason: Option<String>,
}

/// All paths to one prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// The prefix.
    pub prefix: IpNet,
    /// Paths, best first.
    pub paths: Vec<PathStatus>,
}

/// A change of the best path (set) to a prefix, published to the agent.
///
/// `next_hops` empty means the prefix is no longer reachable (withdrawn); several next hops are
/// an equal-cost multipath set. Locally originated routes are not published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteChange {
    /// The prefix.
    pub prefix: IpNet,
    /// Next hops of the best path and its multipath siblings; empty for a withdrawal.
    pub next_hops: Vec<IpAddr>,
    /// Session name of the best path's peer.
    pub from: Option<String>,
    /// The best path is stale (graceful restart).
    pub stale: bool,
}
