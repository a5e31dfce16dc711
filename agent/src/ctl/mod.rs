//! The agent's control socket and its command-line client, `gingerctl`.
//!
//! Owns: the `AgentState` trait (what the daemon exposes to the CLI, health and metrics), the
//! socket location, and the submodules: `protocol` (wire types and JSON lines), `server` (the
//! unix-socket server), `client` (what `gingerctl` calls), `render` and `render_pods` (pure
//! text output: BGP, then IPAM, endpoints and the FIB) and `table` (the Go table layouts
//! calicoctl prints). Must not: reach into the speaker or the
//! datastore; everything arrives through `AgentState` as snapshot copies.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use bgp::status::{PeerStatus, RouteStatus};
use ipnet::IpNet;

pub mod client;
pub mod protocol;
pub mod render;
pub mod render_pods;
pub mod server;
pub mod table;

pub use protocol::{
    BgpPeerRow, EndpointRow, FibReport, IpLookup, IpamReport, NodeAsn, NodeRow, Reply, Request,
};

/// Where the agent keeps its sockets unless told otherwise (Calico: `/var/run/calico`).
pub const DEFAULT_RUN_DIR: &str = "/var/run/ginger";
/// The control socket's file name inside the run directory.
pub const SOCKET_NAME: &str = "ginger.sock";
/// Environment variable naming the run directory for `gingerctl`.
pub const RUN_DIR_ENV: &str = "GINGER_RUN_DIR";

/// The control socket path inside `run_dir`.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET_NAME)
}

/// What the running agent exposes to `gingerctl`, the health checks and the metrics. The daemon
/// implements it; every method returns a copy taken at the moment of the call.
pub trait AgentState: Send + Sync + 'static {
    /// Every configured BGP session.
    fn peers(&self) -> impl Future<Output = Vec<PeerStatus>> + Send;

    /// Loc-RIB entries. `prefix` narrows the query and is only a hint: return at least every
    /// route whose prefix contains or equals it (returning all routes is correct); the server
    /// applies the exact matching rule with `server::select_routes`.
    fn routes(&self, prefix: Option<IpNet>) -> impl Future<Output = Vec<RouteStatus>> + Send;

    /// Configured BGPPeer resources.
    fn bgp_peer_rows(&self) -> Vec<BgpPeerRow>;

    /// Known nodes.
    fn node_rows(&self) -> Vec<NodeRow>;

    /// Number of Loc-RIB prefixes per IP version (`(ipv4, ipv6)`), for metrics, if the
    /// speaker can count them cheaply.
    fn loc_rib_prefixes(&self) -> impl Future<Output = Option<(u64, u64)>> + Send {
        async { None }
    }

    /// Reasons, besides BGP, why the agent is not ready yet (datastore not synced, dataplane
    /// not programmed); empty when there are none.
    fn not_ready_reasons(&self) -> Vec<String> {
        Vec::new()
    }

    /// Learned routes felix keeps out of the kernel, with the reason (e.g. no next hop
    /// resolves); `route show` prints it next to the best path.
    fn fib_not_installed(&self) -> BTreeMap<IpNet, String> {
        BTreeMap::new()
    }

    /// IP pool and block usage, read fresh from the IPAM store; `Err` with a reason when the
    /// agent has no IPAM or the store cannot be read.
    fn ipam_report(&self) -> impl Future<Output = Result<IpamReport, String>> + Send {
        async { Err("this agent runs no IPAM".to_string()) }
    }

    /// Who holds `ip`, read fresh from the IPAM store.
    fn ipam_lookup(&self, ip: IpAddr) -> impl Future<Output = Result<IpLookup, String>> + Send {
        let _ = ip;
        async { Err("this agent runs no IPAM".to_string()) }
    }

    /// This node's pod endpoints.
    fn endpoint_rows(&self) -> Result<Vec<EndpointRow>, String> {
        Err("this agent records no pod endpoints".to_string())
    }

    /// What felix has programmed.
    fn fib(&self) -> impl Future<Output = Result<FibReport, String>> + Send {
        async { Err("this agent runs no dataplane (felix)".to_string()) }
    }

    /// felix's counters, for metrics, when felix runs.
    fn dataplane_metrics(&self) -> Option<felix::MetricsSnapshot> {
        None
    }
}
