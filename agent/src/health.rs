//! Liveness and readiness as kubelet probes them (`/liveness`, `/readiness`), with Calico's
//! rules for BIRD applied to the embedded speaker.
//!
//! Owns: the readiness decision (`bgp_readiness`, a pure function of peers, clock and start
//! time), its failure text, and the HTTP endpoints that query `AgentState` under a deadline.
//! Must not: keep state between probes or touch sockets other than through `http`.
//!
//! Rules (calico `node/pkg/health`, `checkBIRDReady`, per IP version like `bird`/`bird6`):
//! no peers ⇒ ready; until `threshold` after the agent started every peer must be Established
//! (a rolling update waits for BGP to come back); after that one Established peer suffices (a
//! mesh does not go unready because other nodes are down). Liveness: the speaker answers a
//! status query within the deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bgp::status::{PeerStatus, SessionState};
use tokio::time::timeout;

use crate::ctl::AgentState;
use crate::http::{HttpHandler, HttpResponse};

/// Calico's `--threshold-time` default.
pub const DEFAULT_READY_THRESHOLD: Duration = Duration::from_secs(30);
/// How long a probe waits for the speaker's status.
pub const DEFAULT_STATUS_DEADLINE: Duration = Duration::from_secs(5);
/// Liveness path.
pub const LIVENESS_PATH: &str = "/liveness";
/// Readiness path.
pub const READINESS_PATH: &str = "/readiness";

/// BGP is not ready: the peers that are not Established, in the order given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("BGP not established with {}", .not_established.join(","))]
pub struct BgpNotReady {
    /// Addresses of the peers that block readiness.
    pub not_established: Vec<String>,
}

/// Calico's BGP readiness rule, applied to IPv4 and IPv6 sessions separately.
pub fn bgp_readiness(
    peers: &[PeerStatus],
    now: SystemTime,
    started: SystemTime,
    threshold: Duration,
) -> Result<(), BgpNotReady> {
    // A start time in the future (clock stepped back) counts as just started.
    let starting = now.duration_since(started).unwrap_or(Duration::ZERO) < threshold;
    let mut not_established = Vec::new();
    for is_v6 in [false, true] {
        let family: Vec<&PeerStatus> = peers
            .iter()
            .filter(|p| p.address.is_ipv6() == is_v6)
            .collect();
        let down: Vec<String> = family
            .iter()
            .filter(|p| p.state != SessionState::Established)
            .map(|p| p.address.to_string())
            .collect();
        let any_up = down.len() < family.len();
        if (starting && !down.is_empty()) || (!starting && !family.is_empty() && !any_up) {
            not_established.extend(down);
        }
    }
    if not_established.is_empty() {
        Ok(())
    } else {
        Err(BgpNotReady { not_established })
    }
}

/// Probe settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// When the agent started (Calico uses the nodename file's mtime).
    pub started: SystemTime,
    /// Start-up period during which every peer must be Established.
    pub ready_threshold: Duration,
    /// How long a probe waits for the speaker.
    pub status_deadline: Duration,
}

impl HealthConfig {
    /// Calico's defaults for an agent that started at `started`.
    pub fn new(started: SystemTime) -> HealthConfig {
        HealthConfig {
            started,
            ready_threshold: DEFAULT_READY_THRESHOLD,
            status_deadline: DEFAULT_STATUS_DEADLINE,
        }
    }
}

/// `/liveness` and `/readiness` over an `AgentState`.
pub struct HealthEndpoints<S> {
    state: Arc<S>,
    config: HealthConfig,
}

impl<S: AgentState> HealthEndpoints<S> {
    /// Endpoints answering from `state`.
    pub fn new(state: Arc<S>, config: HealthConfig) -> HealthEndpoints<S> {
        HealthEndpoints { state, config }
    }

    async fn peers(&self) -> Option<Vec<PeerStatus>> {
        timeout(self.config.status_deadline, self.state.peers())
            .await
            .ok()
    }

    fn speaker_silent(&self) -> String {
        format!(
            "the BGP speaker did not answer a status query within {} s",
            self.config.status_deadline.as_secs_f64()
        )
    }

    /// 200 when the speaker answers in time, else 503 with the reason.
    pub async fn liveness(&self) -> HttpResponse {
        match self.peers().await {
            Some(_) => HttpResponse::text(200, "live\n"),
            None => HttpResponse::text(
                503,
                format!("ginger-node is not live: {}\n", self.speaker_silent()),
            ),
        }
    }

    /// 200 when ready, else 503 with Calico-style text (`ginger-node is not ready: BGP not
    /// established with 10.0.0.2,10.0.0.3`).
    pub async fn readiness(&self) -> HttpResponse {
        let mut reasons = self.state.not_ready_reasons();
        match self.peers().await {
            Some(peers) => {
                let now = SystemTime::now();
                let c = &self.config;
                if let Err(e) = bgp_readiness(&peers, now, c.started, c.ready_threshold) {
                    reasons.push(e.to_string());
                }
            }
            None => reasons.push(self.speaker_silent()),
        }
        if reasons.is_empty() {
            HttpResponse::text(200, "ready\n")
        } else {
            HttpResponse::text(
                503,
                format!("ginger-node is not ready: {}\n", reasons.join("; ")),
            )
        }
    }
}

impl<S: AgentState> HttpHandler for HealthEndpoints<S> {
    fn get(&self, path: &str) -> impl Future<Output = Option<HttpResponse>> + Send {
        let path = path.to_string();
        async move {
            match path.as_str() {
                LIVENESS_PATH => Some(self.liveness().await),
                READINESS_PATH => Some(self.readiness().await),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bgp::config::PeerKind;
    use bgp::status::PeerCounters;

    use super::*;

    fn peer(address: &str, state: SessionState) -> PeerStatus {
        PeerStatus {
            name: format!("Mesh_{address}"),
            kind: PeerKind::Mesh,
            address: address.parse().unwrap(),
            port: 179,
            remote_asn: 64512,
            local_asn: 64512,
            state,
            since_unix: 0,
            last_error: None,
            peer_router_id: None,
            hold_time: None,
            families: vec![],
            prefixes_received: 0,
            prefixes_accepted: 0,
            prefixes_advertised: 0,
            counters: PeerCounters::default(),
            end_of_rib_received: Vec::new(),
            peer_graceful_restart: false,
            stale_paths: 0,
        }
    }

    use SessionState::{Active, Connect, Established, Idle};

    /// The readiness table (calico `checkBIRDReady`): one row per rule.
    #[test]
    fn readiness_table() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let threshold = Duration::from_secs(30);
        let early = start + Duration::from_secs(10);
        let edge = start + threshold; // not "within" any more (Calico: `since < threshold`)
        let late = start + Duration::from_secs(3600);
        let before_start = start - Duration::from_secs(5);
        type Row = (
            &'static str,
            Vec<(&'static str, SessionState)>,
            SystemTime,
            Option<&'static str>,
        );
        let rows: Vec<Row> = vec![
            ("no peers at start", vec![], early, None),
            ("no peers later", vec![], late, None),
            (
                "all up at start",
                vec![("10.0.0.2", Established), ("10.0.0.3", Established)],
                early,
                None,
            ),
            (
                "one down at start",
                vec![("10.0.0.2", Established), ("10.0.0.3", Active)],
                early,
                Some("BGP not established with 10.0.0.3"),
            ),
            (
                "all down at start",
                vec![("10.0.0.2", Connect), ("10.0.0.3", Idle)],
                early,
                Some("BGP not established with 10.0.0.2,10.0.0.3"),
            ),
            (
                "clock behind start counts as starting",
                vec![("10.0.0.2", Established), ("10.0.0.3", Active)],
                before_start,
                Some("BGP not established with 10.0.0.3"),
            ),
            (
                "one up later",
                vec![("10.0.0.2", Established), ("10.0.0.3", Active)],
                late,
                None,
            ),
            (
                "one up at the threshold",
                vec![("10.0.0.2", Established), ("10.0.0.3", Active)],
                edge,
                None,
            ),
            (
                "none up later",
                vec![("10.0.0.2", Active), ("10.0.0.3", Idle)],
                late,
                Some("BGP not established with 10.0.0.2,10.0.0.3"),
            ),
            (
                "v6 family judged alone later",
                vec![("10.0.0.2", Established), ("fd00::2", Active)],
                late,
                Some("BGP not established with fd00::2"),
            ),
            (
                "both families one up later",
                vec![
                    ("10.0.0.2", Established),
                    ("10.0.0.3", Idle),
                    ("fd00::2", Established),
                    ("fd00::3", Connect),
                ],
                late,
                None,
            ),
            (
                "both families listed at start",
                vec![
                    ("10.0.0.2", Active),
                    ("fd00::2", Active),
                    ("fd00::3", Established),
                ],
                early,
                Some("BGP not established with 10.0.0.2,fd00::2"),
            ),
        ];
        for (name, peers, now, expected) in rows {
            let peers: Vec<PeerStatus> = peers.into_iter().map(|(a, s)| peer(a, s)).collect();
            let got = bgp_readiness(&peers, now, start, threshold).map_err(|e| e.to_string());
            assert_eq!(got.err().as_deref(), expected, "{name}");
        }
    }
}
