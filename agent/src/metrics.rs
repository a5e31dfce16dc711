//! Prometheus metrics: every metric name Ginger exports is defined here (documented in
//! `docs/metrics.md`), in one explicit `Registry`.
//!
//! Owns: the registry, the process-level metrics the daemon updates (config reloads), and the
//! per-peer metrics, which are built at scrape time from a `PeerStatus` snapshot: the
//! snapshot's counters are already cumulative, so each scrape exposes them as they are (fresh
//! metric values, never added to earlier ones) and a removed peer's series disappear with it.
//! Must not: poll the speaker in the background or keep per-peer state between scrapes.
//! Data enters as `BgpSnapshot`s and leaves as Prometheus text format (`/metrics`).
//!
//! The pod side (`PodMetrics`: CNI requests, IPAM, endpoints) is updated by `pod_network` as
//! it works; felix's counters are copied from its `MetricsSnapshot` at each scrape, like the
//! per-peer ones.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bgp::packet::notification::Notification;
use bgp::status::{PeerStatus, SessionState};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tokio::time::timeout;

use crate::ctl::AgentState;
use crate::http::{HttpHandler, HttpResponse};

/// Path Prometheus scrapes.
pub const METRICS_PATH: &str = "/metrics";
/// How long a scrape waits for the speaker's snapshot.
pub const DEFAULT_SNAPSHOT_DEADLINE: Duration = Duration::from_secs(5);

/// Labels of every per-peer metric.
const PEER_LABELS: [&str; 3] = ["peer", "address", "type"];

/// A registry or encoding failure (a programming error in metric definitions, in practice).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// What one scrape sees of the speaker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpSnapshot {
    /// Every session; `None` when the speaker did not answer in time.
    pub peers: Option<Vec<PeerStatus>>,
    /// Loc-RIB prefixes `(ipv4, ipv6)`, when known.
    pub loc_rib_prefixes: Option<(u64, u64)>,
    /// Unix time of the snapshot (for uptimes).
    pub now_unix: u64,
}

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    bgp: Arc<BgpCollector>,
    config_reloads: IntCounterVec,
    config_last_reload_success: IntGauge,
    config_last_reload_timestamp: IntGauge,
    pods: PodMetrics,
    felix: Arc<FelixCollector>,
    // One scrape at a time: the snapshot stored in the collector belongs to one gather.
    scrape: Mutex<()>,
}

impl Metrics {
    /// A registry with every Ginger metric registered.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let bgp = Arc::new(BgpCollector::new()?);
        registry.register(Box::new(SharedCollector(bgp.clone())))?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "ginger_config_reloads_total",
                "Configuration reloads applied (result=ok) or rejected (result=failed).",
            ),
            &["result"],
        )?;
        // Both series exist from the start, so a rate() over them is defined.
        for result in ["ok", "failed"] {
            config_reloads.with_label_values(&[result]);
        }
        let config_last_reload_success = IntGauge::new(
            "ginger_config_last_reload_success",
            "1 if the last configuration reload was applied, 0 if it was rejected.",
        )?;
        let config_last_reload_timestamp = IntGauge::new(
            "ginger_config_last_reload_timestamp_seconds",
            "Unix time of the last configuration reload attempt.",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "ginger_build_info",
                "Always 1; the version label names the running build.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(config_last_reload_success.clone()))?;
        registry.register(Box::new(config_last_reload_timestamp.clone()))?;
        registry.register(Box::new(build_info))?;
        let pods = PodMetrics::new()?;
        pods.register(&registry)?;
        let felix = Arc::new(FelixCollector {
            template: FelixMetrics::new()?,
            snapshot: Mutex::new(None),
        });
        registry.register(Box::new(SharedFelixCollector(felix.clone())))?;
        Ok(Metrics {
            registry,
            bgp,
            config_reloads,
            config_last_reload_success,
            config_last_reload_timestamp,
            pods,
            felix,
            scrape: Mutex::new(()),
        })
    }

    /// The pod-side metrics, for the code that updates them.
    pub fn pods(&self) -> PodMetrics {
        self.pods.clone()
    }

    /// felix's counters for the next scrape (`None` when felix does not run).
    pub fn set_dataplane(&self, snapshot: Option<felix::MetricsSnapshot>) {
        *self
            .felix
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    /// Record a configuration reload attempt.
    pub fn record_config_reload(&self, applied: bool, at: SystemTime) {
        let result = if applied { "ok" } else { "failed" };
        if let Ok(c) = self.config_reloads.get_metric_with_label_values(&[result]) {
            c.inc();
        }
        self.config_last_reload_success.set(i64::from(applied));
        self.config_last_reload_timestamp
            .set(unix_seconds(at) as i64);
    }

    /// The registry (to gather in other formats).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric in Prometheus text format, with the BGP metrics taken from `snapshot`.
    pub fn render(&self, snapshot: BgpSnapshot) -> Result<String, MetricsError> {
        let _one_scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        *self.bgp.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
        let families = self.registry.gather();
        let mut text = String::new();
        TextEncoder::new().encode_utf8(&families, &mut text)?;
        Ok(text)
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// BGP4-MIB `bgpPeerState` numbering (RFC 4273): idle 1 … established 6.
pub fn state_number(state: SessionState) -> i64 {
    match state {
        SessionState::Idle => 1,
        SessionState::Connect => 2,
        SessionState::Active => 3,
        SessionState::OpenSent => 4,
        SessionState::OpenConfirm => 5,
        SessionState::Established => 6,
    }
}

/// The `type` label: `mesh`, `global` or `node`.
fn peer_type(peer: &PeerStatus) -> String {
    peer.kind.prefix().to_ascii_lowercase()
}

/// `code`, `subcode` and `name` labels from a `code/subcode` counter key.
fn notification_labels(key: &str) -> [String; 3] {
    let parsed = key
        .split_once('/')
        .and_then(|(c, s)| Some((c.parse::<u8>().ok()?, s.parse::<u8>().ok()?)));
    match parsed {
        Some((code, subcode)) => {
            let n = Notification::new(code, subcode, Vec::new());
            let name = match n.subcode_name() {
                Some(sub) => format!("{}/{}", n.code_name(), sub),
                None => n.code_name().to_string(),
            };
            [code.to_string(), subcode.to_string(), name]
        }
        None => [key.to_string(), String::new(), "unknown".to_string()],
    }
}

/// The metric vectors built from one snapshot.
struct BgpVecs {
    speaker_responsive: IntGauge,
    peers_configured: IntGauge,
    loc_rib_prefixes: IntGaugeVec,
    state: IntGaugeVec,
    established: IntGaugeVec,
    uptime: IntGaugeVec,
    prefixes_received: IntGaugeVec,
    prefixes_accepted: IntGaugeVec,
    prefixes_advertised: IntGaugeVec,
    updates_received: IntCounterVec,
    updates_sent: IntCounterVec,
    notifications_received: IntCounterVec,
    notifications_sent: IntCounterVec,
    transitions: IntCounterVec,
    sessions_established: IntCounterVec,
    treat_as_withdraw: IntCounterVec,
}

fn labels_with(extra: &[&'static str]) -> Vec<&'static str> {
    PEER_LABELS.iter().chain(extra).copied().collect()
}

fn gauge(name: &str, help: &str, extra: &[&'static str]) -> prometheus::Result<IntGaugeVec> {
    IntGaugeVec::new(Opts::new(name, help), &labels_with(extra))
}

fn counter(name: &str, help: &str, extra: &[&'static str]) -> prometheus::Result<IntCounterVec> {
    IntCounterVec::new(Opts::new(name, help), &labels_with(extra))
}

impl BgpVecs {
    fn new() -> prometheus::Result<BgpVecs> {
        Ok(BgpVecs {
            speaker_responsive: IntGauge::new(
                "ginger_bgp_speaker_responsive",
                "1 if the BGP speaker answered this scrape's status query in time.",
            )?,
            peers_configured: IntGauge::new(
                "ginger_bgp_peers_configured",
                "BGP sessions configured.",
            )?,
            loc_rib_prefixes: IntGaugeVec::new(
                Opts::new(
                    "ginger_bgp_loc_rib_prefixes",
                    "Prefixes in the Loc-RIB, by IP family.",
                ),
                &["family"],
            )?,
            state: gauge(
                "ginger_bgp_peer_state",
                "Session state as in BGP4-MIB: 1 idle, 2 connect, 3 active, 4 opensent, \
                 5 openconfirm, 6 established.",
                &[],
            )?,
            established: gauge(
                "ginger_bgp_peer_established",
                "1 if the session is Established.",
                &[],
            )?,
            uptime: gauge(
                "ginger_bgp_peer_uptime_seconds",
                "Seconds since the session reached Established; 0 when it is not.",
                &[],
            )?,
            prefixes_received: gauge(
                "ginger_bgp_peer_prefixes_received",
                "Prefixes received from the peer (Adj-RIB-In).",
                &[],
            )?,
            prefixes_accepted: gauge(
                "ginger_bgp_peer_prefixes_accepted",
                "Received prefixes that passed import checks.",
                &[],
            )?,
            prefixes_advertised: gauge(
                "ginger_bgp_peer_prefixes_advertised",
                "Prefixes advertised to the peer (Adj-RIB-Out).",
                &[],
            )?,
            updates_received: counter(
                "ginger_bgp_peer_updates_received_total",
                "UPDATE messages received.",
                &[],
            )?,
            updates_sent: counter(
                "ginger_bgp_peer_updates_sent_total",
                "UPDATE messages sent.",
                &[],
            )?,
            notifications_received: counter(
                "ginger_bgp_peer_notifications_received_total",
                "NOTIFICATION messages received, by error code and subcode.",
                &["code", "subcode", "name"],
            )?,
            notifications_sent: counter(
                "ginger_bgp_peer_notifications_sent_total",
                "NOTIFICATION messages sent, by error code and subcode.",
                &["code", "subcode", "name"],
            )?,
            transitions: counter(
                "ginger_bgp_peer_fsm_transitions_total",
                "FSM state transitions, by state left and state entered.",
                &["from", "to"],
            )?,
            sessions_established: counter(
                "ginger_bgp_peer_sessions_established_total",
                "Times the session reached Established.",
                &[],
            )?,
            treat_as_withdraw: counter(
                "ginger_bgp_peer_treat_as_withdraw_total",
                "UPDATEs handled as treat-as-withdraw (RFC 7606).",
                &[],
            )?,
        })
    }

    fn collectors(&self) -> [&dyn Collector; 16] {
        [
            &self.speaker_responsive,
            &self.peers_configured,
            &self.loc_rib_prefixes,
            &self.state,
            &self.established,
            &self.uptime,
            &self.prefixes_received,
            &self.prefixes_accepted,
            &self.prefixes_advertised,
            &self.updates_received,
            &self.updates_sent,
            &self.notifications_received,
            &self.notifications_sent,
            &self.transitions,
            &self.sessions_established,
            &self.treat_as_withdraw,
        ]
    }

    fn fill(&self, snapshot: &BgpSnapshot) {
        if let Some((v4, v6)) = snapshot.loc_rib_prefixes {
            for (family, n) in [("ipv4", v4), ("ipv6", v6)] {
                if let Ok(g) = self
                    .loc_rib_prefixes
                    .get_metric_with_label_values(&[family])
                {
                    g.set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
        let Some(peers) = &snapshot.peers else {
            self.speaker_responsive.set(0);
            return;
        };
        self.speaker_responsive.set(1);
        self.peers_configured
            .set(i64::try_from(peers.len()).unwrap_or(i64::MAX));
        for p in peers {
            let (name, address, kind) = (p.name.as_str(), p.address.to_string(), peer_type(p));
            let base = [name, address.as_str(), kind.as_str()];
            let with = |extra: &[&str]| -> Vec<String> {
                base.iter().chain(extra).map(|s| s.to_string()).collect()
            };
            // Label counts match the definitions above, so lookups cannot fail; skip if they do.
            let gauge_set = |v: &IntGaugeVec, value: i64| {
                if let Ok(g) = v.get_metric_with_label_values(&base) {
                    g.set(value);
                }
            };
            let count = |v: &IntCounterVec, labels: &[String], value: u64| {
                if let Ok(c) = v.get_metric_with_label_values(labels) {
                    c.inc_by(value);
                }
            };
            let up = p.state == SessionState::Established;
            let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            gauge_set(&self.state, state_number(p.state));
            gauge_set(&self.established, i64::from(up));
            let uptime = if up {
                snapshot.now_unix.saturating_sub(p.since_unix)
            } else {
                0
            };
            gauge_set(&self.uptime, clamp(uptime));
            gauge_set(&self.prefixes_received, clamp(p.prefixes_received));
            gauge_set(&self.prefixes_accepted, clamp(p.prefixes_accepted));
            gauge_set(&self.prefixes_advertised, clamp(p.prefixes_advertised));
            let c = &p.counters;
            count(&self.updates_received, &with(&[]), c.updates_in);
            count(&self.updates_sent, &with(&[]), c.updates_out);
            count(&self.sessions_established, &with(&[]), c.established_count);
            count(&self.treat_as_withdraw, &with(&[]), c.treat_as_withdraw);
            for (key, &n) in &c.notifications_in {
                let [code, sub, label] = notification_labels(key);
                count(
                    &self.notifications_received,
                    &with(&[&code, &sub, &label]),
                    n,
                );
            }
            for (key, &n) in &c.notifications_out {
                let [code, sub, label] = notification_labels(key);
                count(&self.notifications_sent, &with(&[&code, &sub, &label]), n);
            }
            for (key, &n) in &c.transitions {
                let (from, to) = key.split_once("->").unwrap_or((key.as_str(), ""));
                count(&self.transitions, &with(&[from, to]), n);
            }
        }
    }
}

/// Builds the BGP metric families from the latest snapshot at every gather.
struct BgpCollector {
    // Defines the descriptors once; each gather fills a fresh set built the same way.
    template: BgpVecs,
    snapshot: Mutex<BgpSnapshot>,
}

impl BgpCollector {
    fn new() -> prometheus::Result<BgpCollector> {
        Ok(BgpCollector {
            template: BgpVecs::new()?,
            snapshot: Mutex::new(BgpSnapshot::default()),
        })
    }
}

/// The collector shared between `Metrics` (which stores snapshots) and the registry.
struct SharedCollector(Arc<BgpCollector>);

impl Collector for SharedCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.0
            .template
            .collectors()
            .into_iter()
            .flat_map(|c| c.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(vecs) = BgpVecs::new() else {
            // Same definitions as the template, which were valid at registration.
            return Vec::new();
        };
        vecs.fill(&self.0.snapshot.lock().unwrap_or_else(|e| e.into_inner()));
        vecs.collectors()
            .into_iter()
            .flat_map(|c| c.collect())
            .collect()
    }
}

/// The pod side's metrics: CNI requests, IPAM and endpoints. Clones share the series.
#[derive(Clone)]
pub struct PodMetrics {
    cni_requests: IntCounterVec,
    cni_duration: HistogramVec,
    assignments: IntCounterVec,
    store_conflicts: IntCounter,
    gc_released: IntCounter,
    blocks_released: IntCounter,
    blocks: IntGaugeVec,
    addresses: IntGaugeVec,
    borrowed: IntGaugeVec,
    endpoints: IntGauge,
}

/// The `family` label values.
const FAMILIES: [&str; 2] = ["ipv4", "ipv6"];

impl PodMetrics {
    fn new() -> prometheus::Result<PodMetrics> {
        let m = PodMetrics {
            cni_requests: IntCounterVec::new(
                Opts::new(
                    "ginger_cni_requests_total",
                    "Requests on the CNI socket, by request and result (ok or the error kind).",
                ),
                &["request", "result"],
            )?,
            cni_duration: HistogramVec::new(
                HistogramOpts::new(
                    "ginger_cni_request_duration_seconds",
                    "Time the agent took to answer a CNI socket request.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ]),
                &["request"],
            )?,
            assignments: IntCounterVec::new(
                Opts::new(
                    "ginger_ipam_assignments_total",
                    "Addresses handed out, by where they came from (affine, claimed, \
                     reclaimed, borrowed, existing).",
                ),
                &["source"],
            )?,
            store_conflicts: IntCounter::new(
                "ginger_ipam_store_conflicts_total",
                "IPAM block writes that lost a compare-and-swap and were re-planned.",
            )?,
            gc_released: IntCounter::new(
                "ginger_ipam_gc_released_total",
                "Handles whose addresses garbage collection released (no endpoint, or its \
                 host link vanished).",
            )?,
            blocks_released: IntCounter::new(
                "ginger_ipam_blocks_released_total",
                "Empty blocks this node gave back after the grace period.",
            )?,
            blocks: IntGaugeVec::new(
                Opts::new("ginger_ipam_blocks", "IPAM blocks affine to this node."),
                &["family"],
            )?,
            addresses: IntGaugeVec::new(
                Opts::new(
                    "ginger_ipam_addresses_allocated",
                    "Addresses this node has allocated (own blocks and borrowed).",
                ),
                &["family"],
            )?,
            borrowed: IntGaugeVec::new(
                Opts::new(
                    "ginger_ipam_addresses_borrowed",
                    "Addresses this node has borrowed from other nodes' blocks.",
                ),
                &["family"],
            )?,
            endpoints: IntGauge::new(
                "ginger_workload_endpoints",
                "Pod endpoints recorded on this node.",
            )?,
        };
        for family in FAMILIES {
            m.blocks.with_label_values(&[family]);
            m.addresses.with_label_values(&[family]);
            m.borrowed.with_label_values(&[family]);
        }
        Ok(m)
    }

    fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.cni_requests.clone()))?;
        registry.register(Box::new(self.cni_duration.clone()))?;
        registry.register(Box::new(self.assignments.clone()))?;
        registry.register(Box::new(self.store_conflicts.clone()))?;
        registry.register(Box::new(self.gc_released.clone()))?;
        registry.register(Box::new(self.blocks_released.clone()))?;
        registry.register(Box::new(self.blocks.clone()))?;
        registry.register(Box::new(self.addresses.clone()))?;
        registry.register(Box::new(self.borrowed.clone()))?;
        registry.register(Box::new(self.endpoints.clone()))
    }

    /// One CNI socket request answered.
    pub fn cni_request(&self, request: &str, result: &str, seconds: f64) {
        if let Ok(c) = self
            .cni_requests
            .get_metric_with_label_values(&[request, result])
        {
            c.inc();
        }
        if let Ok(h) = self.cni_duration.get_metric_with_label_values(&[request]) {
            h.observe(seconds);
        }
    }

    /// One address handed out, found as `source`.
    pub fn assignment(&self, source: &str) {
        if let Ok(c) = self.assignments.get_metric_with_label_values(&[source]) {
            c.inc();
        }
    }

    /// Store conflicts seen by one operation.
    pub fn store_conflicts(&self, n: u64) {
        self.store_conflicts.inc_by(n);
    }

    /// What a garbage-collection sweep released.
    pub fn swept(&self, handles: usize, blocks: usize) {
        self.gc_released.inc_by(handles as u64);
        self.blocks_released.inc_by(blocks as u64);
    }

    /// The node's current share of IPAM, per family `[ipv4, ipv6]`.
    pub fn ipam_view(&self, blocks: [u64; 2], addresses: [u64; 2], borrowed: [u64; 2]) {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (i, family) in FAMILIES.iter().enumerate() {
            for (vec, n) in [
                (&self.blocks, blocks[i]),
                (&self.addresses, addresses[i]),
                (&self.borrowed, borrowed[i]),
            ] {
                if let Ok(g) = vec.get_metric_with_label_values(&[family]) {
                    g.set(clamp(n));
                }
            }
        }
    }

    /// Pod endpoints recorded.
    pub fn endpoints(&self, n: usize) {
        self.endpoints.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// felix's counters as metric families, built from one `MetricsSnapshot`.
struct FelixMetrics {
    routes_programmed: IntGauge,
    routes_rejected: IntGauge,
    full_resyncs: IntCounter,
    link_resyncs: IntCounter,
    ops_applied: IntCounter,
    op_failures: IntCounter,
    dataplane_errors: IntCounter,
    kernel_writes: IntCounter,
}

impl FelixMetrics {
    fn new() -> prometheus::Result<FelixMetrics> {
        Ok(FelixMetrics {
            routes_programmed: IntGauge::new(
                "ginger_felix_routes_programmed",
                "Routes Ginger owns in the kernel.",
            )?,
            routes_rejected: IntGauge::new(
                "ginger_felix_routes_rejected",
                "Desired routes felix keeps out of the kernel (see gingerctl route show --fib).",
            )?,
            full_resyncs: IntCounter::new(
                "ginger_felix_full_resyncs_total",
                "Full dataplane resyncs (start, timer, after errors or overruns).",
            )?,
            link_resyncs: IntCounter::new(
                "ginger_felix_link_resyncs_total",
                "Per-link resyncs after link events.",
            )?,
            ops_applied: IntCounter::new(
                "ginger_felix_ops_applied_total",
                "Route and neighbour writes the kernel accepted.",
            )?,
            op_failures: IntCounter::new(
                "ginger_felix_op_failures_total",
                "Route and neighbour writes the kernel refused.",
            )?,
            dataplane_errors: IntCounter::new(
                "ginger_felix_dataplane_errors_total",
                "Failed dumps, lookups or sysctl writes.",
            )?,
            kernel_writes: IntCounter::new(
                "ginger_felix_kernel_writes_total",
                "Kernel-changing requests sent (netlink and sysctl writes).",
            )?,
        })
    }

    fn collectors(&self) -> [&dyn Collector; 8] {
        [
            &self.routes_programmed,
            &self.routes_rejected,
            &self.full_resyncs,
            &self.link_resyncs,
            &self.ops_applied,
            &self.op_failures,
            &self.dataplane_errors,
            &self.kernel_writes,
        ]
    }

    fn fill(&self, s: &felix::MetricsSnapshot) {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.routes_programmed.set(clamp(s.routes_programmed));
        self.routes_rejected.set(clamp(s.routes_rejected));
        self.full_resyncs.inc_by(s.full_resyncs);
        self.link_resyncs.inc_by(s.link_resyncs);
        self.ops_applied.inc_by(s.ops_applied);
        self.op_failures.inc_by(s.op_failures);
        self.dataplane_errors.inc_by(s.dataplane_errors);
        self.kernel_writes.inc_by(s.kernel_writes);
    }
}

/// Builds felix's families from the latest snapshot at every gather; none without felix.
struct FelixCollector {
    template: FelixMetrics,
    snapshot: Mutex<Option<felix::MetricsSnapshot>>,
}

struct SharedFelixCollector(Arc<FelixCollector>);

impl Collector for SharedFelixCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.0
            .template
            .collectors()
            .into_iter()
            .flat_map(|c| c.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(snapshot) = *self.0.snapshot.lock().unwrap_or_else(|e| e.into_inner()) else {
            return Vec::new();
        };
        let Ok(fresh) = FelixMetrics::new() else {
            return Vec::new();
        };
        fresh.fill(&snapshot);
        fresh
            .collectors()
            .into_iter()
            .flat_map(|c| c.collect())
            .collect()
    }
}

/// `/metrics` over an `AgentState`.
pub struct MetricsEndpoint<S> {
    state: Arc<S>,
    metrics: Arc<Metrics>,
    snapshot_deadline: Duration,
}

impl<S: AgentState> MetricsEndpoint<S> {
    /// An endpoint rendering `metrics` with snapshots from `state`.
    pub fn new(state: Arc<S>, metrics: Arc<Metrics>) -> MetricsEndpoint<S> {
        MetricsEndpoint {
            state,
            metrics,
            snapshot_deadline: DEFAULT_SNAPSHOT_DEADLINE,
        }
    }

    /// Wait at most `deadline` for the speaker's snapshot (default 5 s).
    pub fn with_snapshot_deadline(mut self, deadline: Duration) -> MetricsEndpoint<S> {
        self.snapshot_deadline = deadline;
        self
    }

    /// Take a snapshot now and render every metric.
    pub async fn scrape(&self) -> HttpResponse {
        let deadline = self.snapshot_deadline;
        let peers = timeout(deadline, self.state.peers()).await.ok();
        let loc_rib_prefixes = timeout(deadline, self.state.loc_rib_prefixes())
            .await
            .ok()
            .flatten();
        let snapshot = BgpSnapshot {
            peers,
            loc_rib_prefixes,
            now_unix: unix_seconds(SystemTime::now()),
        };
        self.metrics.set_dataplane(self.state.dataplane_metrics());
        match self.metrics.render(snapshot) {
            Ok(text) => HttpResponse {
                status: 200,
                content_type: prometheus::TEXT_FORMAT,
                body: text.into_bytes(),
            },
            Err(e) => HttpResponse::text(500, format!("{e}\n")),
        }
    }
}

impl<S: AgentState> HttpHandler for MetricsEndpoint<S> {
    fn get(&self, path: &str) -> impl Future<Output = Option<HttpResponse>> + Send {
        let wanted = path == METRICS_PATH;
        async move {
            if wanted {
                Some(self.scrape().await)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bgp::config::PeerKind;
    use bgp::status::PeerCounters;

    use super::*;

    /// One sample of the text format: name, labels, value.
    type Sample = (String, BTreeMap<String, String>, f64);

    /// A small parser for the Prometheus text format (enough for what the encoder writes),
    /// also checking that every sample's family was announced by `# TYPE`.
    fn parse(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
        let mut samples = Vec::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').unwrap();
                    let mut labels = BTreeMap::new();
                    // Values are quoted and contain no `",` in these fixtures.
                    for pair in body.split("\",") {
                        let (k, v) = pair.split_once("=\"").unwrap();
                        labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                    }
                    (name.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            // A histogram's samples carry suffixes on the announced name.
            let announced = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|base| types.get(*base).map(String::as_str) == Some("histogram"))
                .unwrap_or(&name);
            assert!(types.contains_key(announced), "{name} has no # TYPE line");
            samples.push((name, labels, value.parse().unwrap()));
        }
        (samples, types)
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| s.2)
    }

    fn fixture() -> Vec<PeerStatus> {
        let base = PeerStatus {
            name: "Mesh_10_0_0_2".into(),
            kind: PeerKind::Mesh,
            address: "10.0.0.2".parse().unwrap(),
            port: 179,
            remote_asn: 64512,
            local_asn: 64512,
            state: SessionState::Established,
            since_unix: 1_000,
            last_error: None,
            peer_router_id: None,
            hold_time: Some(240),
            families: vec![],
            prefixes_received: 12,
            prefixes_accepted: 10,
            prefixes_advertised: 3,
            end_of_rib_received: Vec::new(),
            peer_graceful_restart: false,
            stale_paths: 0,
            counters: PeerCounters {
                updates_in: 40,
                updates_out: 7,
                notifications_in: BTreeMap::from([("6/2".into(), 2), ("4/0".into(), 1)]),
                notifications_out: BTreeMap::from([("3/11".into(), 1)]),
                transitions: BTreeMap::from([
                    ("Idle->Connect".into(), 3),
                    ("OpenConfirm->Established".into(), 2),
                ]),
                established_count: 2,
                treat_as_withdraw: 5,
            },
        };
        let down = PeerStatus {
            name: "Global_192_0_2_1".into(),
            kind: PeerKind::Global,
            address: "192.0.2.1".parse().unwrap(),
            state: SessionState::Active,
            since_unix: 1_500,
            prefixes_received: 0,
            prefixes_accepted: 0,
            prefixes_advertised: 0,
            counters: PeerCounters::default(),
            end_of_rib_received: Vec::new(),
            peer_graceful_restart: false,
            stale_paths: 0,
            ..base.clone()
        };
        vec![base, down]
    }

    #[test]
    fn snapshot_renders_and_parses_back() {
        let metrics = Metrics::new().unwrap();
        metrics.record_config_reload(true, SystemTime::UNIX_EPOCH + Duration::from_secs(50));
        metrics.record_config_reload(false, SystemTime::UNIX_EPOCH + Duration::from_secs(60));
        let text = metrics
            .render(BgpSnapshot {
                peers: Some(fixture()),
                loc_rib_prefixes: Some((25, 4)),
                now_unix: 1_600,
            })
            .unwrap();
        let (samples, types) = parse(&text);
        let mesh = [
            ("peer", "Mesh_10_0_0_2"),
            ("address", "10.0.0.2"),
            ("type", "mesh"),
        ];
        let global = [
            ("peer", "Global_192_0_2_1"),
            ("address", "192.0.2.1"),
            ("type", "global"),
        ];
        let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);

        assert_eq!(types["ginger_bgp_peer_updates_received_total"], "counter");
        assert_eq!(types["ginger_bgp_peer_state"], "gauge");
        assert_eq!(v("ginger_bgp_peer_state", &mesh), Some(6.0));
        assert_eq!(v("ginger_bgp_peer_state", &global), Some(3.0));
        assert_eq!(v("ginger_bgp_peer_established", &mesh), Some(1.0));
        assert_eq!(v("ginger_bgp_peer_established", &global), Some(0.0));
        assert_eq!(v("ginger_bgp_peer_uptime_seconds", &mesh), Some(600.0));
        assert_eq!(v("ginger_bgp_peer_uptime_seconds", &global), Some(0.0));
        assert_eq!(v("ginger_bgp_peer_prefixes_received", &mesh), Some(12.0));
        assert_eq!(v("ginger_bgp_peer_prefixes_accepted", &mesh), Some(10.0));
        assert_eq!(v("ginger_bgp_peer_prefixes_advertised", &mesh), Some(3.0));
        assert_eq!(
            v("ginger_bgp_peer_updates_received_total", &mesh),
            Some(40.0)
        );
        assert_eq!(v("ginger_bgp_peer_updates_sent_total", &mesh), Some(7.0));
        assert_eq!(
            v("ginger_bgp_peer_sessions_established_total", &mesh),
            Some(2.0)
        );
        assert_eq!(
            v("ginger_bgp_peer_treat_as_withdraw_total", &mesh),
            Some(5.0)
        );
        let shutdown = [
            ("peer", "Mesh_10_0_0_2"),
            ("code", "6"),
            ("subcode", "2"),
            ("name", "Cease/Administrative Shutdown"),
        ];
        assert_eq!(
            v("ginger_bgp_peer_notifications_received_total", &shutdown),
            Some(2.0)
        );
        let hold = [
            ("code", "4"),
            ("subcode", "0"),
            ("name", "Hold Timer Expired"),
        ];
        assert_eq!(
            v("ginger_bgp_peer_notifications_received_total", &hold),
            Some(1.0)
        );
        let as_path = [
            ("code", "3"),
            ("subcode", "11"),
            ("name", "UPDATE Message Error/Malformed AS_PATH"),
        ];
        assert_eq!(
            v("ginger_bgp_peer_notifications_sent_total", &as_path),
            Some(1.0)
        );
        let idle_connect = [
            ("peer", "Mesh_10_0_0_2"),
            ("from", "Idle"),
            ("to", "Connect"),
        ];
        assert_eq!(
            v("ginger_bgp_peer_fsm_transitions_total", &idle_connect),
            Some(3.0)
        );
        assert_eq!(v("ginger_bgp_peers_configured", &[]), Some(2.0));
        assert_eq!(v("ginger_bgp_speaker_responsive", &[]), Some(1.0));
        assert_eq!(
            v("ginger_bgp_loc_rib_prefixes", &[("family", "ipv4")]),
            Some(25.0)
        );
        assert_eq!(
            v("ginger_bgp_loc_rib_prefixes", &[("family", "ipv6")]),
            Some(4.0)
        );
        assert_eq!(
            v("ginger_config_reloads_total", &[("result", "ok")]),
            Some(1.0)
        );
        assert_eq!(
            v("ginger_config_reloads_total", &[("result", "failed")]),
            Some(1.0)
        );
        assert_eq!(v("ginger_config_last_reload_success", &[]), Some(0.0));
        assert_eq!(
            v("ginger_config_last_reload_timestamp_seconds", &[]),
            Some(60.0)
        );
        assert_eq!(
            v(
                "ginger_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            Some(1.0)
        );
    }

    /// Counters are the snapshot's cumulative values: scraping twice does not add them up, and
    /// a removed peer's series disappear.
    #[test]
    fn scrapes_do_not_double_count_and_forget_removed_peers() {
        let metrics = Metrics::new().unwrap();
        let snapshot = |peers: Vec<PeerStatus>| BgpSnapshot {
            peers: Some(peers),
            loc_rib_prefixes: None,
            now_unix: 2_000,
        };
        let mesh = [("peer", "Mesh_10_0_0_2")];
        let first = parse(&metrics.render(snapshot(fixture())).unwrap()).0;
        let second = parse(&metrics.render(snapshot(fixture())).unwrap()).0;
        let name = "ginger_bgp_peer_updates_received_total";
        assert_eq!(value(&first, name, &mesh), Some(40.0));
        assert_eq!(value(&second, name, &mesh), Some(40.0));

        let mut grown = fixture();
        grown[0].counters.updates_in = 45;
        grown.truncate(1);
        let third = parse(&metrics.render(snapshot(grown)).unwrap()).0;
        assert_eq!(value(&third, name, &mesh), Some(45.0));
        assert!(
            value(
                &third,
                "ginger_bgp_peer_state",
                &[("peer", "Global_192_0_2_1")]
            )
            .is_none()
        );
        assert!(value(&third, "ginger_bgp_loc_rib_prefixes", &[]).is_none());
    }

    #[test]
    fn an_unresponsive_speaker_still_gives_process_metrics() {
        let metrics = Metrics::new().unwrap();
        let (samples, _) = parse(&metrics.render(BgpSnapshot::default()).unwrap());
        assert_eq!(
            value(&samples, "ginger_bgp_speaker_responsive", &[]),
            Some(0.0)
        );
        assert_eq!(
            value(&samples, "ginger_config_reloads_total", &[("result", "ok")]),
            Some(0.0)
        );
        assert!(value(&samples, "ginger_bgp_peer_state", &[]).is_none());
    }

    #[test]
    fn pod_and_felix_metrics_render() {
        let metrics = Metrics::new().unwrap();
        let (samples, _) = parse(&metrics.render(BgpSnapshot::default()).unwrap());
        // Without felix there are no felix series; the pod series exist from the start.
        assert!(value(&samples, "ginger_felix_routes_programmed", &[]).is_none());
        assert_eq!(
            value(&samples, "ginger_ipam_blocks", &[("family", "ipv6")]),
            Some(0.0)
        );
        let pods = metrics.pods();
        pods.cni_request("Assign", "ok", 0.002);
        pods.cni_request("Assign", "PoolExhausted", 0.001);
        pods.assignment("claimed");
        pods.store_conflicts(2);
        pods.swept(3, 1);
        pods.ipam_view([2, 1], [70, 3], [1, 0]);
        pods.endpoints(73);
        metrics.set_dataplane(Some(felix::MetricsSnapshot {
            full_resyncs: 4,
            routes_programmed: 75,
            kernel_writes: 90,
            ..felix::MetricsSnapshot::default()
        }));
        let (samples, types) = parse(&metrics.render(BgpSnapshot::default()).unwrap());
        let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
        assert_eq!(
            v(
                "ginger_cni_requests_total",
                &[("request", "Assign"), ("result", "ok")]
            ),
            Some(1.0)
        );
        assert_eq!(
            v("ginger_cni_requests_total", &[("result", "PoolExhausted")]),
            Some(1.0)
        );
        assert_eq!(types["ginger_cni_request_duration_seconds"], "histogram");
        assert_eq!(
            v(
                "ginger_cni_request_duration_seconds_count",
                &[("request", "Assign")]
            ),
            Some(2.0)
        );
        assert_eq!(
            v("ginger_ipam_assignments_total", &[("source", "claimed")]),
            Some(1.0)
        );
        assert_eq!(v("ginger_ipam_store_conflicts_total", &[]), Some(2.0));
        assert_eq!(v("ginger_ipam_gc_released_total", &[]), Some(3.0));
        assert_eq!(v("ginger_ipam_blocks_released_total", &[]), Some(1.0));
        assert_eq!(v("ginger_ipam_blocks", &[("family", "ipv4")]), Some(2.0));
        assert_eq!(
            v("ginger_ipam_addresses_allocated", &[("family", "ipv6")]),
            Some(3.0)
        );
        assert_eq!(
            v("ginger_ipam_addresses_borrowed", &[("family", "ipv4")]),
            Some(1.0)
        );
        assert_eq!(v("ginger_workload_endpoints", &[]), Some(73.0));
        assert_eq!(types["ginger_felix_full_resyncs_total"], "counter");
        assert_eq!(v("ginger_felix_full_resyncs_total", &[]), Some(4.0));
        assert_eq!(v("ginger_felix_routes_programmed", &[]), Some(75.0));
        assert_eq!(v("ginger_felix_kernel_writes_total", &[]), Some(90.0));
        // A second scrape shows the same cumulative values, not their sum.
        let (again, _) = parse(&metrics.render(BgpSnapshot::default()).unwrap());
        assert_eq!(
            value(&again, "ginger_felix_full_resyncs_total", &[]),
            Some(4.0)
        );
    }

    #[test]
    fn notification_labels_name_the_error() {
        assert_eq!(
            notification_labels("6/4"),
            [
                "6".to_string(),
                "4".into(),
                "Cease/Administrative Reset".into()
            ]
        );
        assert_eq!(
            notification_labels("4/0"),
            ["4".to_string(), "0".into(), "Hold Timer Expired".into()]
        );
        assert_eq!(
            notification_labels("junk"),
            ["junk".to_string(), "".into(), "unknown".into()]
        );
    }
}
