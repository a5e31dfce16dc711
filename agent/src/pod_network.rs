//! The node's pod network: what the CNI socket's requests do (IPAM plus the endpoint
//! registry), the garbage-collection sweep, and the published view felix and the BGP speaker
//! follow.
//!
//! Owns: the meaning of `Assign`, `EndpointReady`, `Release`, `Teardown`, `Check`, `Gc` and
//! `Status` (`cni::protocol`), ADDs in flight, host link names, teardowns in flight (a DEL's
//! endpoint is marked terminating and queued; its addresses are released by
//! `finish_teardown` once the `teardown` worker has removed the link), the sweep (endpoints
//! whose host link vanished, allocations with no endpoint after the leak grace period, empty
//! blocks) and its timer, and `NodeNetwork`, republished on every change. Must not: touch the
//! kernel or the speaker (the `dataplane` module follows `subscribe()`, the `teardown` module
//! removes links), or frame socket messages (`cni_server`). Requests enter as `cni::protocol::Request` values and leave as `Reply`
//! values; every method blocks on file I/O, so async callers run it on a blocking thread.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use cni::protocol::{AssignRequest, Assigned, EndpointInfo, ErrorKind, Reply, Request};
use ipnet::IpNet;
use tokio::sync::watch;

use crate::cni_server::CniHandler;
use crate::ctl::protocol::{
    BlockUsage, EndpointRow, IpAllocation, IpLookup, IpamReport, PoolUsage,
};
use crate::datastore::model::IpPool;
use crate::endpoints::{EndpointError, EndpointRecord, EndpointRegistry};
use crate::ipam::allocator::{self, AssignArgs, AssignError, Blocks, NodeContext};
use crate::ipam::{BlockStore, IpFamily, Ipam, IpamError, IpamSettings, NodeBlocks, Source};
use crate::metrics::PodMetrics;

/// Lists the names of the node's links (the daemon asks the kernel through felix). An error
/// skips the link check of that sweep: nothing is released on a guess.
pub type LinkProbe = Box<dyn Fn() -> Result<BTreeSet<String>, String> + Send + Sync>;

/// Unix seconds now (replaceable so grace periods can be tested without waiting).
pub type Clock = Box<dyn Fn() -> u64 + Send + Sync>;

/// Why the pod network could not start or sweep.
#[derive(Debug, thiserror::Error)]
pub enum PodNetworkError {
    /// IPAM failed.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// The endpoint registry failed.
    #[error(transparent)]
    Endpoints(#[from] EndpointError),
}

/// Settings of the pod network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNetworkConfig {
    /// This node's name.
    pub node: String,
    /// Workload link prefix (`cali`).
    pub iface_prefix: String,
    /// The MTU handed to the plugin (host MTU detection).
    pub mtu: u32,
    /// How long an allocation may live without an endpoint (an ADD in flight) before
    /// garbage collection releases it.
    pub leak_grace: Duration,
}

/// How long an ADD waits for the teardown of an earlier attachment with the same handle.
const TEARDOWN_WAIT: Duration = Duration::from_secs(10);

/// A pod's veth for the `teardown` worker to remove: the host link, by index and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeardownJob {
    /// `<network>.<containerID>`.
    pub handle: String,
    /// The host-side link's name when the endpoint was recorded.
    pub host_ifname: String,
    /// The host-side link's index.
    pub host_ifindex: u32,
}

/// What felix and the speaker need to know about this node's pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeNetwork {
    /// Ready endpoints, by handle (not those whose teardown is in flight).
    pub endpoints: Arc<Vec<EndpointRecord>>,
    /// Blocks affine to this node (blackholed, exported as aggregates).
    pub owned: BTreeSet<IpNet>,
    /// This node's addresses in other nodes' blocks (exported as /32 or /128).
    pub borrowed: BTreeSet<IpAddr>,
}

/// The pod network of one node (see the module doc).
pub struct PodNetwork<S: BlockStore> {
    ipam: Ipam<S>,
    endpoints: EndpointRegistry,
    /// ADDs between `Assign` and `EndpointReady`: handle → Unix time of the `Assign`.
    pending: Mutex<BTreeMap<String, u64>>,
    config: PodNetworkConfig,
    ready: AtomicBool,
    links: LinkProbe,
    clock: Clock,
    metrics: Option<PodMetrics>,
    published: watch::Sender<Arc<NodeNetwork>>,
    /// Where `Teardown` queues work; without it the plugin removes veths itself.
    teardowns: Option<Mutex<Sender<TeardownJob>>>,
    /// Bumped by every finished teardown; an `Assign` for a handle still terminating waits on it.
    torn_down: (Mutex<u64>, Condvar),
    /// Held while a view is computed and sent, so concurrent requests cannot publish an older
    /// view after a newer one (an endpoint would vanish from felix until the next change).
    publishing: Mutex<()>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
    Reply::Error {
        kind,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> Reply {
    error(ErrorKind::Invalid, message)
}

/// The reply for an IPAM failure.
fn ipam_error(e: &IpamError) -> Reply {
    let kind = match e {
        IpamError::Assign(AssignError::Exhausted { .. }) => ErrorKind::PoolExhausted,
        IpamError::Assign(AssignError::NoPool { .. }) => ErrorKind::NoPool,
        IpamError::Store(_) | IpamError::Contention { .. } => ErrorKind::Internal,
    };
    error(kind, e.to_string())
}

/// How often the sweep runs: half the shorter grace period (Calico scans at half its leak
/// grace period), between 1 s and 60 s.
pub fn sweep_interval(block_grace: Duration, leak_grace: Duration) -> Duration {
    let shortest = [block_grace, leak_grace]
        .into_iter()
        .filter(|d| !d.is_zero())
        .min()
        .unwrap_or(Duration::from_secs(60));
    (shortest / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Run `pods.sweep()` every `interval` (on a blocking thread) until `shutdown`.
pub async fn sweep_periodically<S: BlockStore>(
    pods: Arc<PodNetwork<S>>,
    interval: Duration,
    shutdown: impl std::future::Future,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
        let p = pods.clone();
        match tokio::task::spawn_blocking(move || p.sweep()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("IPAM garbage collection failed (retried): {e}"),
            Err(e) => tracing::warn!("IPAM garbage collection task failed: {e}"),
        }
    }
}

/// The request's name, for logs and metrics.
pub fn request_kind(request: &Request) -> &'static str {
    match request {
        Request::Assign(_) => "Assign",
        Request::EndpointReady(_) => "EndpointReady",
        Request::Release { .. } => "Release",
        Request::Teardown { .. } => "Teardown",
        Request::Check { .. } => "Check",
        Request::Gc { .. } => "Gc",
        Request::Status => "Status",
    }
}

/// The `result` label of a reply.
pub fn reply_result(reply: &Reply) -> &'static str {
    match reply {
        Reply::Error { kind, .. } => match kind {
            ErrorKind::PoolExhausted => "PoolExhausted",
            ErrorKind::NoPool => "NoPool",
            ErrorKind::Invalid => "Invalid",
            ErrorKind::NotReady => "NotReady",
            ErrorKind::UnsupportedVersion => "UnsupportedVersion",
            ErrorKind::Internal => "Internal",
        },
        Reply::Status { ready: false, .. } => "not_ready",
        Reply::NotQueued { .. } => "not_queued",
        _ => "ok",
    }
}

fn source_label(source: Source) -> &'static str {
    match source {
        Source::Existing => "existing",
        Source::Affine => "affine",
        Source::Claimed => "claimed",
        Source::Reclaimed => "reclaimed",
        Source::Borrowed => "borrowed",
    }
}

/// The host-side link name: Calico's `cali` + 11 hex of SHA-1("<namespace>.<pod>") for a
/// pod; outside Kubernetes the prefix and the start of the container id (Calico's plugin),
/// hashed instead when the id holds characters a link name cannot.
pub fn host_ifname(prefix: &str, namespace: &str, pod: &str, container_id: &str) -> String {
    if !namespace.is_empty() && !pod.is_empty() {
        return felix::workload::host_ifname_with_prefix(prefix, namespace, pod);
    }
    let plain = !container_id.is_empty()
        && container_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        let take = 15usize.saturating_sub(prefix.len()).min(container_id.len());
        format!("{prefix}{}", &container_id[..take])
    } else {
        felix::workload::host_ifname_with_prefix(prefix, "", container_id)
    }
}

/// The teardown job of `record`, when its host link index is known.
fn teardown_job(record: &EndpointRecord) -> Option<TeardownJob> {
    Some(TeardownJob {
        handle: record.handle.clone(),
        host_ifname: record.host_ifname.clone(),
        host_ifindex: record.host_ifindex?,
    })
}

/// Calico's `timestamp` attribute: Go's `time.Now().UTC().String()` at whole seconds.
pub fn calico_timestamp(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// `ipam show`'s numbers: every pool with the blocks inside it, then blocks inside no pool.
pub fn ipam_report(blocks: &Blocks, pools: &[IpPool]) -> IpamReport {
    let usage = |b: &crate::ipam::Block| BlockUsage {
        cidr: b.cidr,
        in_use: b.in_use() as u64,
        affinity: b.affinity.clone(),
    };
    let pools_usage = pools
        .iter()
        .map(|p| {
            let blocks: Vec<BlockUsage> = blocks
                .values()
                .filter(|b| p.cidr.contains(&b.cidr))
                .map(usage)
                .collect();
            PoolUsage {
                name: p.name().to_string(),
                cidr: p.cidr,
                in_use: blocks.iter().map(|b| b.in_use).sum(),
                blocks,
            }
        })
        .collect();
    let orphan_blocks = blocks
        .values()
        .filter(|b| !pools.iter().any(|p| p.cidr.contains(&b.cidr)))
        .map(usage)
        .collect();
    IpamReport {
        pools: pools_usage,
        orphan_blocks,
    }
}

impl<S: BlockStore> PodNetwork<S> {
    /// A pod network over `ipam` and `endpoints`; it answers `NotReady` until `load`.
    pub fn new(
        ipam: Ipam<S>,
        endpoints: EndpointRegistry,
        config: PodNetworkConfig,
        links: LinkProbe,
    ) -> PodNetwork<S> {
        PodNetwork {
            ipam,
            endpoints,
            pending: Mutex::new(BTreeMap::new()),
            config,
            ready: AtomicBool::new(false),
            links,
            clock: Box::new(unix_now),
            metrics: None,
            published: watch::channel(Arc::new(NodeNetwork::default())).0,
            teardowns: None,
            torn_down: (Mutex::new(0), Condvar::new()),
            publishing: Mutex::new(()),
        }
    }

    /// Answer `Teardown` by queueing jobs on `queue` (the `teardown` worker's).
    pub fn with_teardowns(mut self, queue: Sender<TeardownJob>) -> PodNetwork<S> {
        self.teardowns = Some(Mutex::new(queue));
        self
    }

    /// Use `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> PodNetwork<S> {
        self.clock = clock;
        self
    }

    /// Record metrics in `metrics`.
    pub fn with_metrics(mut self, metrics: PodMetrics) -> PodNetwork<S> {
        self.metrics = Some(metrics);
        self
    }

    /// The IPAM driver.
    pub fn ipam(&self) -> &Ipam<S> {
        &self.ipam
    }

    /// The settings.
    pub fn config(&self) -> &PodNetworkConfig {
        &self.config
    }

    /// Read the store and the registry, collect garbage (also what a crash left behind) and
    /// start answering. The first `NodeNetwork` is published before this returns.
    pub fn load(&self) -> Result<(), PodNetworkError> {
        self.ipam.refresh()?;
        self.sweep()?;
        // Teardowns a previous run accepted but did not finish.
        for record in self.endpoints.all().into_iter().filter(|r| r.terminating) {
            if let Some(job) = teardown_job(&record) {
                tracing::info!(handle = %record.handle, link = %record.host_ifname, "resuming teardown");
                self.queue_teardown(job);
            }
        }
        self.ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// True once `load` succeeded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Follow the node's network: the current value, then every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<NodeNetwork>> {
        self.published.subscribe()
    }

    /// The last published view.
    pub fn current(&self) -> Arc<NodeNetwork> {
        self.published.borrow().clone()
    }

    /// New pools or labels after a configuration reload.
    pub fn set_pools(&self, pools: Vec<IpPool>, labels: BTreeMap<String, String>) {
        let mut settings = IpamSettings::clone(&self.ipam.settings());
        settings.pools = pools;
        settings.labels = labels;
        self.ipam.set_settings(settings);
    }

    fn pending(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Garbage collection: forget endpoints whose host link is gone, release allocations of
    /// this node that no endpoint or ADD in flight explains once the leak grace period has
    /// passed (at once for the forgotten endpoints), give back long-empty blocks.
    pub fn sweep(&self) -> Result<crate::ipam::SweepReport, PodNetworkError> {
        let now = (self.clock)();
        let leak_grace = self.config.leak_grace.as_secs();
        let dead: BTreeSet<String> = match (self.links)() {
            Ok(links) => self
                .endpoints
                .all()
                .into_iter()
                .filter(|e| !links.contains(&e.host_ifname))
                .map(|e| e.handle)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list links; endpoints are not checked this sweep");
                BTreeSet::new()
            }
        };
        for handle in &dead {
            if let Some(e) = self.endpoints.remove(handle)? {
                tracing::info!(handle = %handle, link = %e.host_ifname, pod = %format!("{}/{}", e.namespace, e.pod),
                    "endpoint's host link is gone; forgetting it and releasing its addresses");
            }
        }
        let live: BTreeSet<String> = {
            let mut pending = self.pending();
            // An ADD whose EndpointReady never came is over once its grace has passed.
            pending.retain(|_, at| now < at.saturating_add(leak_grace));
            self.endpoints
                .all()
                .into_iter()
                .map(|e| e.handle)
                .chain(pending.keys().cloned())
                .collect()
        };
        let report = self.ipam.sweep(now, leak_grace, &live, &dead)?;
        for (handle, ips) in &report.released {
            tracing::info!(handle = %handle, ips = ?ips, "released addresses of a pod that is gone");
        }
        for block in &report.blocks_released {
            tracing::info!(block = %block, "released an empty block");
        }
        if let Some(m) = &self.metrics {
            m.swept(report.released.len(), report.blocks_released.len());
        }
        self.publish(true);
        Ok(report)
    }

    /// Recompute the published view (the endpoint list only when `endpoints_changed`);
    /// subscribers wake only when it changed.
    fn publish(&self, endpoints_changed: bool) {
        let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let NodeBlocks {
            owned,
            borrowed,
            allocated,
        } = self.ipam.node_blocks();
        // A terminating endpoint's routes go now: a new pod of the same name may already own
        // a link of that name while the old one is still being removed.
        let endpoints = if endpoints_changed {
            Arc::new(
                self.endpoints
                    .all()
                    .into_iter()
                    .filter(|e| !e.terminating)
                    .collect(),
            )
        } else {
            self.published.borrow().endpoints.clone()
        };
        if let Some(m) = &self.metrics {
            let count = |f: &dyn Fn(IpFamily) -> u64| [f(IpFamily::V4), f(IpFamily::V6)];
            m.ipam_view(
                count(&|fam| owned.iter().filter(|n| IpFamily::of(n) == fam).count() as u64),
                count(&|fam| allocated.get(&fam).copied().unwrap_or(0)),
                count(&|fam| {
                    borrowed
                        .iter()
                        .filter(|ip| IpFamily::of_addr(ip) == fam)
                        .count() as u64
                }),
            );
            m.endpoints(endpoints.len());
        }
        let network = NodeNetwork {
            endpoints,
            owned,
            borrowed,
        };
        self.published.send_if_modified(|current| {
            if **current == network {
                false
            } else {
                *current = Arc::new(network);
                true
            }
        });
    }

    fn not_ready(&self) -> Option<Reply> {
        (!self.is_ready()).then(|| {
            error(
                ErrorKind::NotReady,
                format!(
                    "ginger-node on {} is starting (loading endpoints and IPAM blocks); try again",
                    self.config.node
                ),
            )
        })
    }

    /// The addresses `handle` holds, from the snapshot or, when `wanted` is not all there, from
    /// a fresh read of the store.
    fn held(&self, handle: &str, wanted: &[IpAddr]) -> Result<Vec<IpNet>, IpamError> {
        let cached = allocator::addresses_of(&self.ipam.cached(), handle);
        let covers = |held: &[IpNet]| wanted.iter().all(|ip| held.iter().any(|n| n.addr() == *ip));
        if !cached.is_empty() && covers(&cached) {
            return Ok(cached);
        }
        Ok(allocator::addresses_of(&*self.ipam.refresh()?, handle))
    }

    fn assign(&self, req: AssignRequest) -> Reply {
        if let Some(r) = self.not_ready() {
            return r;
        }
        if req.handle.is_empty() || req.container_id.is_empty() {
            return invalid("Assign needs a handle and a container id");
        }
        // ADD after DEL for the same attachment: its old veth and addresses go first.
        if !self.wait_torn_down(&req.handle) {
            return error(
                ErrorKind::NotReady,
                format!(
                    "the previous attachment of {} is still being removed; retry",
                    req.handle
                ),
            );
        }
        let mut families = Vec::new();
        if req.ipv4 {
            families.push(IpFamily::V4);
        }
        if req.ipv6 {
            families.push(IpFamily::V6);
        }
        if families.is_empty() {
            return invalid("Assign asks for neither an IPv4 nor an IPv6 address");
        }
        let host_ifname = host_ifname(
            &self.config.iface_prefix,
            &req.namespace,
            &req.pod,
            &req.container_id,
        );
        let now = (self.clock)();
        self.pending().insert(req.handle.clone(), now);
        let args = AssignArgs {
            handle: req.handle.clone(),
            namespace: req.namespace.clone(),
            pod: req.pod.clone(),
            families,
        };
        let assignment = match self.ipam.assign(&args, now) {
            Ok(a) => a,
            Err(e) => {
                self.pending().remove(&req.handle);
                tracing::warn!(handle = %req.handle, pod = %format!("{}/{}", req.namespace, req.pod), "no address: {e}");
                return ipam_error(&e);
            }
        };
        if let Some(m) = &self.metrics {
            m.store_conflicts(assignment.conflicts);
            for (_, source) in &assignment.addresses {
                m.assignment(source_label(*source));
            }
        }
        let ips: Vec<IpNet> = assignment.addresses.iter().map(|(n, _)| *n).collect();
        tracing::info!(handle = %req.handle, pod = %format!("{}/{}", req.namespace, req.pod),
            ips = ?ips, link = %host_ifname, "assigned");
        self.publish(false);
        Reply::Assigned(Assigned {
            ips,
            host_ifname,
            mtu: self.config.mtu,
        })
    }

    fn endpoint_ready(&self, ep: EndpointInfo) -> Reply {
        if let Some(r) = self.not_ready() {
            return r;
        }
        if ep.handle.is_empty() {
            return invalid("EndpointReady needs a handle");
        }
        if ep.host_ifname.is_empty() || ep.host_ifname.len() > 15 {
            return invalid(format!(
                "host link name {:?} is not a Linux link name (1 to 15 bytes)",
                ep.host_ifname
            ));
        }
        if let Err(e) = ep.container_mac.parse::<felix::MacAddr>() {
            return invalid(format!("container MAC: {e}"));
        }
        if ep.ips.is_empty() {
            return invalid("EndpointReady lists no address");
        }
        let held = match self.held(&ep.handle, &ep.ips) {
            Ok(h) => h,
            Err(e) => return ipam_error(&e),
        };
        if let Some(ip) = ep
            .ips
            .iter()
            .find(|ip| !held.iter().any(|n| n.addr() == **ip))
        {
            let holds: Vec<String> = held.iter().map(|n| n.addr().to_string()).collect();
            return invalid(format!(
                "handle {} does not hold {ip} (it holds [{}]); was it released?",
                ep.handle,
                holds.join(", ")
            ));
        }
        let record = EndpointRecord {
            handle: ep.handle.clone(),
            namespace: ep.namespace,
            pod: ep.pod,
            container_id: ep.container_id,
            netns: ep.netns,
            ifname: ep.ifname,
            host_ifname: ep.host_ifname,
            host_ifindex: ep.host_ifindex,
            mac: ep.container_mac,
            ips: ep.ips,
            created_unix: (self.clock)(),
            terminating: false,
        };
        if let Err(e) = self.endpoints.put(record) {
            return error(ErrorKind::Internal, e.to_string());
        }
        self.pending().remove(&ep.handle);
        self.publish(true);
        Reply::Ok
    }

    fn release(&self, handle: &str) -> Reply {
        if let Some(r) = self.not_ready() {
            return r;
        }
        if handle.is_empty() {
            return invalid("Release needs a handle");
        }
        let freed = match self.ipam.release(handle, (self.clock)()) {
            Ok(f) => f,
            Err(e) => return ipam_error(&e),
        };
        let forgotten = match self.endpoints.remove(handle) {
            Ok(r) => r,
            Err(e) => return error(ErrorKind::Internal, e.to_string()),
        };
        self.pending().remove(handle);
        if !freed.is_empty() || forgotten.is_some() {
            tracing::info!(handle = %handle, ips = ?freed, "released");
        }
        self.publish(forgotten.is_some());
        Reply::Ok
    }

    fn teardown(&self, handle: &str) -> Reply {
        if let Some(r) = self.not_ready() {
            return r;
        }
        if handle.is_empty() {
            return invalid("Teardown needs a handle");
        }
        let not_queued = |reason: String| Reply::NotQueued { reason };
        if self.teardowns.is_none() {
            return not_queued("this agent does not remove veths itself".into());
        }
        let Some(mut record) = self.endpoints.get(handle) else {
            return not_queued(format!("no endpoint is recorded for {handle}"));
        };
        let Some(job) = teardown_job(&record) else {
            return not_queued(format!(
                "the index of {}'s host link {} is unknown (recorded by an older plugin)",
                handle, record.host_ifname
            ));
        };
        if record.terminating {
            // A repeated DEL: the first one's job is queued or being retried.
            return Reply::Queued;
        }
        record.terminating = true;
        if let Err(e) = self.endpoints.put(record) {
            return error(ErrorKind::Internal, e.to_string());
        }
        if !self.queue_teardown(job) {
            if let Some(mut r) = self.endpoints.get(handle) {
                r.terminating = false;
                let _ = self.endpoints.put(r);
            }
            return not_queued("the teardown worker has stopped".into());
        }
        tracing::debug!(handle = %handle, "teardown queued");
        self.publish(true);
        Reply::Queued
    }

    /// Hands `job` to the teardown worker; false when there is none (or it stopped).
    fn queue_teardown(&self, job: TeardownJob) -> bool {
        match &self.teardowns {
            Some(q) => q
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(job)
                .is_ok(),
            None => false,
        }
    }

    /// The teardown worker removed `handle`'s host link (or found it gone): release the
    /// addresses and forget the endpoint. Idempotent.
    pub fn finish_teardown(&self, handle: &str) -> Result<(), PodNetworkError> {
        let freed = self.ipam.release(handle, (self.clock)())?;
        let forgotten = self.endpoints.remove(handle)?;
        tracing::info!(handle = %handle, ips = ?freed, "veth removed and addresses released");
        self.publish(forgotten.is_some());
        let (generation, done) = &self.torn_down;
        *generation.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        done.notify_all();
        Ok(())
    }

    /// Handles whose teardown is queued or running.
    pub fn terminating(&self) -> Vec<String> {
        self.endpoints
            .all()
            .into_iter()
            .filter(|r| r.terminating)
            .map(|r| r.handle)
            .collect()
    }

    /// Waits (at most `TEARDOWN_WAIT`) until `handle` is no longer terminating; false on timeout.
    fn wait_torn_down(&self, handle: &str) -> bool {
        let deadline = Instant::now() + TEARDOWN_WAIT;
        let (generation, done) = &self.torn_down;
        let mut guard = generation.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if !self.endpoints.get(handle).is_some_and(|r| r.terminating) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = done
                .wait_timeout(guard, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn check(&self, handle: &str, ips: &[IpAddr]) -> Reply {
        if let Some(r) = self.not_ready() {
            return r;
        }
        let held = match self.held(handle, ips) {
            Ok(h) => h,
            Err(e) => return ipam_error(&e),
        };
        let held: BTreeSet<IpAddr> = held.iter().map(IpNet::addr).collect();
        let listed: BTreeSet<IpAddr> = ips.iter().copied().collect();
        if self.endpoints.get(handle).is_none() {
            return invalid(format!("no endpoint is recorded for handle {handle}"));
        }
        if held != listed {
            let show = |s: &BTreeSet<IpAddr>| {
                s.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return invalid(format!(
                "handle {handle} holds [{}] but the pod's result lists [{}]",
                show(&held),
                show(&listed)
            ));
        }
        Reply::Ok
    }

    fn gc(&self, network: &str, keep: &[String]) -> Reply {
        if let Some(r) = self.not_ready() {
            return r;
        }
        if network.is_empty() {
            return invalid("Gc needs the network name");
        }
        let blocks = match self.ipam.refresh() {
            Ok(b) => b,
            Err(e) => return ipam_error(&e),
        };
        let prefix = format!("{network}.");
        let keep: BTreeSet<&str> = keep.iter().map(String::as_str).collect();
        // ADDs in flight, and teardowns in flight (released once their link is gone).
        let pending: BTreeSet<String> = self
            .pending()
            .keys()
            .cloned()
            .chain(self.terminating())
            .collect();
        let candidates: BTreeSet<String> = allocator::handles_of_node(&blocks, &self.config.node)
            .into_iter()
            .chain(self.endpoints.all().into_iter().map(|e| e.handle))
            .filter(|h| {
                h.starts_with(&prefix) && !keep.contains(h.as_str()) && !pending.contains(h)
            })
            .collect();
        let now = (self.clock)();
        for handle in &candidates {
            if let Err(e) = self.ipam.release(handle, now) {
                return ipam_error(&e);
            }
            if let Err(e) = self.endpoints.remove(handle) {
                return error(ErrorKind::Internal, e.to_string());
            }
            tracing::info!(handle = %handle, "released by CNI GC (the runtime no longer uses it)");
        }
        if let Some(m) = &self.metrics {
            m.swept(candidates.len(), 0);
        }
        self.publish(true);
        Reply::Ok
    }

    fn status(&self) -> Reply {
        if !self.is_ready() {
            return Reply::Status {
                ready: false,
                message: format!(
                    "ginger-node on {} is starting (loading endpoints and IPAM blocks)",
                    self.config.node
                ),
            };
        }
        let settings = self.ipam.settings();
        let ctx = NodeContext {
            node: &settings.node,
            labels: &settings.labels,
            pools: &settings.pools,
        };
        let usable = [IpFamily::V4, IpFamily::V6]
            .iter()
            .any(|f| !allocator::eligible_pools(&ctx, *f).is_empty());
        if usable {
            Reply::Status {
                ready: true,
                message: String::new(),
            }
        } else {
            let reasons: Vec<String> = settings
                .pools
                .iter()
                .filter_map(|p| {
                    allocator::pool_refusal(p, &settings.labels)
                        .map(|why| format!("{} ({why})", p.name()))
                })
                .collect();
            Reply::Status {
                ready: false,
                message: if reasons.is_empty() {
                    "no IP pool is configured".to_string()
                } else {
                    format!(
                        "no IP pool can be used by node {}: {}",
                        settings.node,
                        reasons.join(", ")
                    )
                },
            }
        }
    }

    /// `gingerctl ipam show`: read the store fresh and count.
    pub fn ipam_report(&self) -> Result<IpamReport, IpamError> {
        let blocks = self.ipam.refresh()?;
        Ok(ipam_report(&blocks, &self.ipam.settings().pools))
    }

    /// `gingerctl ipam show --ip`: read the store fresh and look `ip` up.
    pub fn ipam_lookup(&self, ip: IpAddr) -> Result<IpLookup, IpamError> {
        let blocks = self.ipam.refresh()?;
        let allocation = allocator::find(&blocks, ip).map(|(block, a)| {
            let mut attributes = BTreeMap::new();
            if !a.namespace.is_empty() {
                attributes.insert("namespace".to_string(), a.namespace.clone());
            }
            if !a.pod.is_empty() {
                attributes.insert("pod".to_string(), a.pod.clone());
            }
            attributes.insert("node".to_string(), a.node.clone());
            attributes.insert("timestamp".to_string(), calico_timestamp(a.allocated_unix));
            IpAllocation {
                block: block.cidr,
                handle: a.handle.clone(),
                attributes,
            }
        });
        Ok(IpLookup { ip, allocation })
    }

    /// `gingerctl get endpoints`.
    pub fn endpoint_rows(&self) -> Vec<EndpointRow> {
        self.endpoints
            .all()
            .into_iter()
            .map(|e| EndpointRow {
                namespace: e.namespace,
                pod: e.pod,
                node: self.config.node.clone(),
                container_id: e.container_id,
                ips: e.ips,
                host_ifname: e.host_ifname,
                mac: e.mac,
                terminating: e.terminating,
            })
            .collect()
    }
}

impl<S: BlockStore> CniHandler for PodNetwork<S> {
    fn handle(&self, request: Request) -> Reply {
        let started = Instant::now();
        let kind = request_kind(&request);
        let reply = match request {
            Request::Assign(req) => self.assign(req),
            Request::EndpointReady(ep) => self.endpoint_ready(ep),
            Request::Release { handle } => self.release(&handle),
            Request::Teardown { handle } => self.teardown(&handle),
            Request::Check { handle, ips } => self.check(&handle, &ips),
            Request::Gc { network, keep } => self.gc(&network, &keep),
            Request::Status => self.status(),
        };
        if let Some(m) = &self.metrics {
            m.cni_request(kind, reply_result(&reply), started.elapsed().as_secs_f64());
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_link_names() {
        // Calico's name for pod default/web-1 (SHA-1 of "default.web-1").
        let pod = host_ifname("cali", "default", "web-1", "abc");
        assert_eq!(pod, felix::workload::host_ifname("default", "web-1"));
        assert_eq!(pod.len(), 15);
        // Outside Kubernetes: the prefix and the container id's start.
        assert_eq!(
            host_ifname("cali", "", "", "0123456789abcdef"),
            "cali0123456789a"
        );
        assert_eq!(host_ifname("tap", "", "", "short"), "tapshort");
        // An id a link name cannot hold is hashed.
        let odd = host_ifname("cali", "", "", "a/b c");
        assert!(odd.starts_with("cali") && odd.len() == 15, "{odd}");
        assert!(odd[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn sweeps_run_at_half_the_grace() {
        let s = Duration::from_secs;
        assert_eq!(sweep_interval(s(900), s(900)), s(60));
        assert_eq!(sweep_interval(s(4), s(900)), s(2));
        assert_eq!(sweep_interval(s(0), s(1)), s(1));
        assert_eq!(sweep_interval(s(0), s(0)), s(30));
    }

    #[test]
    fn timestamps_print_like_go() {
        assert_eq!(
            calico_timestamp(1_714_566_896),
            "2024-05-01 12:34:56 +0000 UTC"
        );
    }
}
