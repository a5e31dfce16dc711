//! The reconciler: keeps the kernel equal to the desired state. `ReconcilerCore` is the
//! synchronous heart (time passed in, one `step` at a time): full resync at start, on a timer and
//! after any error or monitor overrun; per-link resync on link events; a grace period before
//! deleting routes on a new workload link with no endpoint; per-link sysctls; plan → apply →
//! cache update. Both resyncs also read the pod-side end of each workload veth (its MAC, for the
//! neighbour entry), and a change of that end's MAC seen by the monitor in the pod's namespace
//! is a per-link resync of the workload link, so a MAC set by a later CNI plugin is followed at
//! once. `ReconcilerHandle::spawn` runs it on its own thread with a current-thread tokio
//! runtime, the link monitor and a command channel that coalesces bursts into one batch. It never
//! flushes anything on exit: dropping the handle just stops the loop.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::dataplane::netlink::NetlinkDataplane;
use crate::dataplane::{Dataplane, DataplaneError};
use crate::model::{DesiredChange, DesiredState, Link, Neighbour, Resolution, Route};
use crate::monitor::{LinkEvent, LinkMonitor};
use crate::netns::NetnsError;
use crate::nlsock::NetlinkError;
use crate::ownership::Ownership;
use crate::plan::{PlanContext, Rejected, plan};
use crate::programmed::Programmed;
use crate::sysctl;

/// Calico's `RouteRefreshInterval`.
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(90);
/// Calico's `routeCleanupGracePeriod`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
const MIN_RETRY: Duration = Duration::from_millis(50);
/// Above this many changed links in one batch, one full resync is cheaper than per-link dumps
/// (each filtered dump still walks the whole FIB in the kernel).
const MAX_LINK_RESYNCS: usize = 16;
const MAX_RETRY: Duration = Duration::from_secs(5);
/// Datagrams of already-queued link events read before each step.
const MAX_QUEUED_EVENT_READS: usize = 64;

/// How the reconciler behaves.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    pub ownership: Ownership,
    pub resync_interval: Duration,
    pub grace_period: Duration,
    /// Set `ip_forward` and the per-workload-link sysctls.
    pub set_sysctls: bool,
    /// Run inside this network namespace (name or path) instead of the caller's.
    pub netns: Option<String>,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            ownership: Ownership::default(),
            resync_interval: DEFAULT_RESYNC_INTERVAL,
            grace_period: DEFAULT_GRACE_PERIOD,
            set_sysctls: true,
            netns: None,
        }
    }
}

/// Counters for metrics; shared with the handle.
#[derive(Debug, Default)]
pub struct Metrics {
    full_resyncs: AtomicU64,
    link_resyncs: AtomicU64,
    ops_applied: AtomicU64,
    op_failures: AtomicU64,
    dataplane_errors: AtomicU64,
    routes_programmed: AtomicU64,
    routes_rejected: AtomicU64,
    kernel_writes: AtomicU64,
}

/// A copy of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Full resyncs done (start, timer, after errors or overruns).
    pub full_resyncs: u64,
    /// Per-link resyncs done after link events.
    pub link_resyncs: u64,
    /// Ops the kernel accepted.
    pub ops_applied: u64,
    /// Ops the kernel refused.
    pub op_failures: u64,
    /// Failed dumps, lookups or sysctl writes.
    pub dataplane_errors: u64,
    /// Routes Ginger owns in the kernel now.
    pub routes_programmed: u64,
    /// Desired routes kept out of the kernel (see `Rejected`).
    pub routes_rejected: u64,
    /// Kernel-changing requests sent (netlink writes and sysctl writes).
    pub kernel_writes: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            full_resyncs: g(&self.full_resyncs),
            link_resyncs: g(&self.link_resyncs),
            ops_applied: g(&self.ops_applied),
            op_failures: g(&self.op_failures),
            dataplane_errors: g(&self.dataplane_errors),
            routes_programmed: g(&self.routes_programmed),
            routes_rejected: g(&self.routes_rejected),
            kernel_writes: g(&self.kernel_writes),
        }
    }
}

/// What felix has programmed, for `gingerctl route show --fib`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FibSnapshot {
    /// Routes Ginger owns in the kernel.
    pub routes: Vec<Route>,
    /// Permanent neighbour entries Ginger owns.
    pub neighbours: Vec<Neighbour>,
    /// Link names by ifindex (to print next hops).
    pub link_names: BTreeMap<u32, String>,
    /// Desired routes kept out, with the reason.
    pub rejected: Vec<Rejected>,
    /// True when the last step succeeded and nothing is pending.
    pub converged: bool,
}

impl FibSnapshot {
    /// One `ip route`-style line per programmed route (for `gingerctl route show --fib`).
    pub fn route_lines(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|r| r.describe(&self.link_names))
            .collect()
    }
}

/// The synchronous reconciler (see the module doc).
pub struct ReconcilerCore<D: Dataplane> {
    dp: D,
    cfg: ReconcilerConfig,
    metrics: Arc<Metrics>,
    desired: DesiredState,
    /// False until the agent has given a whole desired state: nothing is planned before that,
    /// so a restarting agent never deletes routes it has not been told about yet.
    desired_known: bool,
    programmed: Programmed,
    resolved: BTreeMap<IpAddr, Resolution>,
    /// When each workload link was first seen (grace-period clock).
    first_seen: BTreeMap<u32, Instant>,
    /// Workload links whose sysctls are set, with the name they had.
    configured: BTreeMap<u32, String>,
    ip_forward_done: bool,
    need_full_resync: bool,
    dirty_links: BTreeSet<u32>,
    deleted_links: BTreeSet<u32>,
    need_plan: bool,
    resolve_all: bool,
    last_grace: BTreeSet<u32>,
    rejected: Vec<Rejected>,
    next_periodic: Instant,
    retry_at: Option<Instant>,
    backoff: Duration,
    converged: bool,
}

impl<D: Dataplane> ReconcilerCore<D> {
    /// A reconciler that starts with a full resync at its first `step`.
    pub fn new(dp: D, cfg: ReconcilerConfig, metrics: Arc<Metrics>, now: Instant) -> Self {
        let next_periodic = now + cfg.resync_interval;
        ReconcilerCore {
            dp,
            cfg,
            metrics,
            desired: DesiredState::default(),
            desired_known: false,
            programmed: Programmed::default(),
            resolved: BTreeMap::new(),
            first_seen: BTreeMap::new(),
            configured: BTreeMap::new(),
            ip_forward_done: false,
            need_full_resync: true,
            dirty_links: BTreeSet::new(),
            deleted_links: BTreeSet::new(),
            need_plan: true,
            resolve_all: true,
            last_grace: BTreeSet::new(),
            rejected: Vec::new(),
            next_periodic,
            retry_at: None,
            backoff: MIN_RETRY,
            converged: false,
        }
    }

    pub fn dataplane(&self) -> &D {
        &self.dp
    }

    pub fn desired(&self) -> &DesiredState {
        &self.desired
    }

    /// Replaces the whole desired state.
    pub fn set_desired(&mut self, desired: DesiredState) {
        self.desired = desired;
        self.desired_known = true;
        self.need_plan = true;
    }

    /// Applies deltas to the desired state (planning starts only after a `set_desired`).
    pub fn apply_changes(&mut self, changes: Vec<DesiredChange>) {
        for c in changes {
            self.desired.apply(c);
        }
        self.need_plan = true;
    }

    /// Asks for a full resync at the next step.
    pub fn request_full_resync(&mut self) {
        self.need_full_resync = true;
    }

    /// Records a link event for the next step.
    pub fn on_link_event(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Overrun => {
                info!("link monitor overrun: full resync");
                self.need_full_resync = true;
            }
            LinkEvent::Changed(link) => {
                self.dirty_links.insert(link.index);
            }
            LinkEvent::Deleted { index } => {
                self.deleted_links.insert(index);
                self.dirty_links.remove(&index);
            }
            LinkEvent::ChangedElsewhere { nsid, link } => {
                // Only the far end of a workload link matters, and only when its MAC changed;
                // one not known yet is read when its near end's own event is handled.
                if let Some(index) = self.programmed.link_of_peer(nsid, link.index)
                    && self.programmed.peers.get(&index).map(|p| p.mac) != Some(link.mac)
                {
                    debug!(link = index, nsid, mac = ?link.mac, "pod-side end changed its MAC");
                    self.dirty_links.insert(index);
                }
            }
        }
    }

    /// The routes the kernel holds for Ginger, and what is kept out.
    pub fn snapshot(&self) -> FibSnapshot {
        let links = &self.programmed.links;
        FibSnapshot {
            routes: self
                .programmed
                .all_routes()
                .filter(|r| self.cfg.ownership.owns_route(r, links))
                .cloned()
                .collect(),
            neighbours: self
                .programmed
                .neighbours
                .values()
                .filter(|n| self.cfg.ownership.owns_neighbour(n, links))
                .copied()
                .collect(),
            link_names: links.iter().map(|(i, l)| (*i, l.name.clone())).collect(),
            rejected: self.rejected.clone(),
            converged: self.converged,
        }
    }

    /// The rejected routes of the last plan.
    pub fn rejected(&self) -> &[Rejected] {
        &self.rejected
    }

    /// Does all pending work; returns when it next wants to run (timer, grace expiry, retry).
    pub fn step(&mut self, now: Instant) -> Instant {
        if now >= self.next_periodic {
            debug!("periodic full resync");
            self.need_full_resync = true;
        }
        let retry_pending = self.retry_at.is_some_and(|t| now < t);
        if !retry_pending {
            self.retry_at = None;
            match self.run_step(now) {
                Ok(true) => self.backoff = MIN_RETRY,
                Ok(false) => self.schedule_retry(now),
                Err(e) => {
                    warn!(error = %e, "dataplane sync failed; full resync after backoff");
                    self.metrics
                        .dataplane_errors
                        .fetch_add(1, Ordering::Relaxed);
                    self.need_full_resync = true;
                    self.schedule_retry(now);
                }
            }
        }
        self.converged = self.retry_at.is_none()
            && !self.need_full_resync
            && !self.need_plan
            && self.dirty_links.is_empty()
            && self.deleted_links.is_empty();
        let mut wake = self.next_periodic;
        if let Some(t) = self.retry_at {
            wake = wake.min(t);
        }
        if let Some(t) = self.next_grace_expiry(now) {
            wake = wake.min(t);
        }
        wake
    }

    fn schedule_retry(&mut self, now: Instant) {
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_RETRY);
    }

    /// One pass; `Ok(false)` when some op failed (a full resync follows after backoff).
    fn run_step(&mut self, now: Instant) -> Result<bool, DataplaneError> {
        if self.dirty_links.len() > MAX_LINK_RESYNCS {
            self.need_full_resync = true;
        }
        if self.need_full_resync {
            self.full_resync(now)?;
        } else {
            self.link_resyncs(now)?;
        }
        self.resolve_next_hops()?;
        let mut ok = true;
        if self.cfg.set_sysctls {
            ok &= self.configure_links();
        }
        let grace = self.grace_links(now);
        if self.desired_known && (self.need_plan || grace != self.last_grace) {
            ok &= self.plan_and_apply(&grace);
            self.last_grace = grace;
        }
        self.metrics
            .kernel_writes
            .store(self.dp.writes(), Ordering::Relaxed);
        Ok(ok)
    }

    fn full_resync(&mut self, now: Instant) -> Result<(), DataplaneError> {
        let links = self.dp.list_links()?;
        let routes = self.dp.list_routes(None)?;
        let neighbours = self.dp.list_neighbours(None)?;
        self.programmed = Programmed::from_dumps(links, routes, neighbours);
        let workload_links = self.workload_links(self.programmed.links.values());
        self.programmed.peers = self.dp.read_peers(&workload_links)?;
        self.first_seen
            .retain(|i, _| self.programmed.links.contains_key(i));
        for (i, l) in &self.programmed.links {
            if self.cfg.ownership.is_workload_link(&l.name) {
                self.first_seen.entry(*i).or_insert(now);
            }
        }
        let links = &self.programmed.links;
        self.configured
            .retain(|i, name| links.get(i).is_some_and(|l| l.up && &l.name == name));
        self.ip_forward_done = false;
        self.need_full_resync = false;
        self.dirty_links.clear();
        self.deleted_links.clear();
        self.resolve_all = true;
        self.need_plan = true;
        self.next_periodic = now + self.cfg.resync_interval;
        self.metrics.full_resyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn link_resyncs(&mut self, now: Instant) -> Result<(), DataplaneError> {
        if self.dirty_links.is_empty() && self.deleted_links.is_empty() {
            return Ok(());
        }
        for index in std::mem::take(&mut self.deleted_links) {
            self.programmed
                .refresh_link(None, index, Vec::new(), Vec::new());
            self.first_seen.remove(&index);
            self.configured.remove(&index);
            self.metrics.link_resyncs.fetch_add(1, Ordering::Relaxed);
        }
        let dirty = std::mem::take(&mut self.dirty_links);
        if !dirty.is_empty() {
            let links: BTreeMap<u32, _> = self
                .dp
                .list_links()?
                .into_iter()
                .map(|l| (l.index, l))
                .collect();
            let workload_links =
                self.workload_links(dirty.iter().filter_map(|index| links.get(index)));
            let mut peers = self.dp.read_peers(&workload_links)?;
            for index in dirty {
                let link = links.get(&index).cloned();
                let (routes, neighbours) = match &link {
                    Some(_) => (
                        self.dp.list_routes(Some(index))?,
                        self.dp.list_neighbours(Some(index))?,
                    ),
                    None => (Vec::new(), Vec::new()),
                };
                match &link {
                    Some(l) if self.cfg.ownership.is_workload_link(&l.name) => {
                        self.first_seen.entry(index).or_insert(now);
                        if !l.up || self.configured.get(&index) != Some(&l.name) {
                            self.configured.remove(&index);
                        }
                    }
                    _ => {
                        self.first_seen.remove(&index);
                        self.configured.remove(&index);
                    }
                }
                self.programmed
                    .refresh_link(link, index, routes, neighbours);
                self.programmed.set_peer(index, peers.remove(&index));
                self.metrics.link_resyncs.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Any link change can change how next hops resolve.
        self.resolve_all = true;
        self.need_plan = true;
        Ok(())
    }

    /// The ifindexes of the workload links among `links`.
    fn workload_links<'a>(&self, links: impl Iterator<Item = &'a Link>) -> Vec<u32> {
        links
            .filter(|l| self.cfg.ownership.is_workload_link(&l.name))
            .map(|l| l.index)
            .collect()
    }

    fn resolve_next_hops(&mut self) -> Result<(), DataplaneError> {
        let wanted: BTreeSet<IpAddr> = self
            .desired
            .remotes
            .values()
            .flat_map(|r| r.next_hops.iter().copied())
            .collect();
        if self.resolve_all {
            self.resolved.clear();
        }
        self.resolved.retain(|nh, _| wanted.contains(nh));
        for nh in wanted {
            if !self.resolved.contains_key(&nh) {
                let r = self.dp.resolve(nh, self.cfg.ownership.protocol)?;
                self.resolved.insert(nh, r);
                self.need_plan = true;
            }
        }
        self.resolve_all = false;
        Ok(())
    }

    /// Sets sysctls on up workload links not yet configured; false if any write failed.
    fn configure_links(&mut self) -> bool {
        let mut ok = true;
        if !self.ip_forward_done {
            match ensure_sysctl(&mut self.dp, sysctl::IP_FORWARD.0, sysctl::IP_FORWARD.1) {
                Ok(()) => self.ip_forward_done = true,
                Err(e) => {
                    warn!(error = %e, "cannot enable IPv4 forwarding");
                    ok = false;
                }
            }
        }
        let todo: Vec<(u32, String)> = self
            .programmed
            .links
            .values()
            .filter(|l| l.up && self.cfg.ownership.is_workload_link(&l.name))
            .filter(|l| self.configured.get(&l.index) != Some(&l.name))
            .map(|l| (l.index, l.name.clone()))
            .collect();
        for (index, name) in todo {
            let mut link_ok = true;
            for (key, value) in sysctl::workload_link_sysctls(&name) {
                match ensure_sysctl(&mut self.dp, &key, value) {
                    Ok(()) => {}
                    Err(DataplaneError::Sysctl { source, .. })
                        if sysctl::is_ipv6_key(&key)
                            && source.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        // The link may have vanished meanwhile; its event will follow.
                        debug!(link = %name, error = %e, "sysctl not set");
                        link_ok = false;
                    }
                }
            }
            if link_ok {
                self.configured.insert(index, name);
            } else {
                self.metrics
                    .dataplane_errors
                    .fetch_add(1, Ordering::Relaxed);
                ok = false;
            }
        }
        ok
    }

    fn grace_links(&self, now: Instant) -> BTreeSet<u32> {
        self.first_seen
            .iter()
            .filter(|(_, t)| now < **t + self.cfg.grace_period)
            .filter_map(|(i, _)| self.programmed.links.get(i))
            .filter(|l| !self.desired.workloads.contains_key(&l.name))
            .map(|l| l.index)
            .collect()
    }

    fn next_grace_expiry(&self, now: Instant) -> Option<Instant> {
        self.first_seen
            .values()
            .map(|t| *t + self.cfg.grace_period)
            .filter(|t| *t > now)
            .min()
    }

    fn plan_and_apply(&mut self, grace: &BTreeSet<u32>) -> bool {
        let ctx = PlanContext {
            ownership: &self.cfg.ownership,
            resolved: &self.resolved,
            grace_links: grace,
        };
        let p = plan(&self.desired, &self.programmed, &ctx);
        let mut ok = true;
        if !p.ops.is_empty() {
            debug!(ops = p.ops.len(), "applying");
            let results = self.dp.apply(&p.ops);
            let (mut applied, mut failed) = (0u64, 0u64);
            for (op, r) in p.ops.iter().zip(results) {
                match r {
                    Ok(()) => {
                        self.programmed.record(op);
                        applied += 1;
                    }
                    Err(e) => {
                        if failed < 5 {
                            warn!(error = %e, "kernel refused an op");
                        }
                        failed += 1;
                    }
                }
            }
            self.metrics
                .ops_applied
                .fetch_add(applied, Ordering::Relaxed);
            self.metrics
                .op_failures
                .fetch_add(failed, Ordering::Relaxed);
            if failed > 0 {
                // The cache may be wrong now (e.g. a link vanished): re-read everything.
                self.need_full_resync = true;
                ok = false;
            }
        }
        self.rejected = p.rejected;
        self.need_plan = !ok;
        let links = &self.programmed.links;
        let owned = self
            .programmed
            .all_routes()
            .filter(|r| self.cfg.ownership.owns_route(r, links))
            .count();
        self.metrics
            .routes_programmed
            .store(owned as u64, Ordering::Relaxed);
        self.metrics
            .routes_rejected
            .store(self.rejected.len() as u64, Ordering::Relaxed);
        ok
    }
}

fn ensure_sysctl<D: Dataplane>(dp: &mut D, key: &str, value: &str) -> Result<(), DataplaneError> {
    if dp.read_sysctl(key)? != value {
        dp.write_sysctl(key, value)?;
    }
    Ok(())
}

/// The reconciler could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReconcilerError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("cannot open netlink: {0}")]
    Netlink(#[from] NetlinkError),
    #[error("cannot start the reconciler thread: {0}")]
    Thread(std::io::Error),
    #[error("the reconciler thread exited during start-up")]
    Startup,
}

enum Command {
    Replace(DesiredState),
    Changes(Vec<DesiredChange>),
    Resync,
    Snapshot(oneshot::Sender<FibSnapshot>),
}

/// Control of a running reconciler thread. Dropping it stops the thread; nothing is flushed.
pub struct ReconcilerHandle {
    tx: Option<mpsc::UnboundedSender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
    metrics: Arc<Metrics>,
    rejected: watch::Receiver<Arc<Vec<Rejected>>>,
}

impl ReconcilerHandle {
    /// Starts the reconciler against the real kernel, on its own thread (inside `cfg.netns` when
    /// set), with the link monitor.
    pub fn spawn(cfg: ReconcilerConfig) -> Result<Self, ReconcilerError> {
        Self::start(cfg, |_| Ok((NetlinkDataplane::open()?, true)))
    }

    /// Starts the reconciler over any dataplane (e.g. the mock), without a link monitor.
    pub fn spawn_with<D: Dataplane + Send + 'static>(
        dp: D,
        cfg: ReconcilerConfig,
    ) -> Result<Self, ReconcilerError> {
        Self::start(cfg, move |_| Ok((dp, false)))
    }

    fn start<D, F>(cfg: ReconcilerConfig, make: F) -> Result<Self, ReconcilerError>
    where
        D: Dataplane + 'static,
        F: FnOnce(&ReconcilerConfig) -> Result<(D, bool), ReconcilerError> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let (rej_tx, rej_rx) = watch::channel(Arc::new(Vec::new()));
        let metrics = Arc::new(Metrics::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("felix".into())
            .spawn(move || {
                let setup = || -> Result<_, ReconcilerError> {
                    if let Some(ns) = &cfg.netns {
                        crate::netns::enter(&crate::netns::netns_path(ns))?;
                    }
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(ReconcilerError::Thread)?;
                    let (dp, with_monitor) = make(&cfg)?;
                    let monitor = if with_monitor {
                        let _guard = rt.enter();
                        Some(LinkMonitor::open()?)
                    } else {
                        None
                    };
                    Ok((rt, dp, monitor))
                };
                let (rt, dp, monitor) = match setup() {
                    Ok(v) => {
                        let _ = ready_tx.send(Ok(()));
                        v
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let core = ReconcilerCore::new(dp, cfg, thread_metrics, Instant::now());
                rt.block_on(drive(core, rx, monitor, rej_tx));
            })
            .map_err(ReconcilerError::Thread)?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(ReconcilerError::Startup);
            }
        }
        Ok(ReconcilerHandle {
            tx: Some(tx),
            thread: Some(thread),
            metrics,
            rejected: rej_rx,
        })
    }

    fn send(&self, c: Command) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(c);
        }
    }

    /// Replaces the whole desired state.
    pub fn set_desired(&self, desired: DesiredState) {
        self.send(Command::Replace(desired));
    }

    /// Applies deltas; bursts are coalesced into one plan and one netlink batch.
    pub fn update(&self, changes: Vec<DesiredChange>) {
        self.send(Command::Changes(changes));
    }

    /// Forces a full resync now.
    pub fn resync(&self) {
        self.send(Command::Resync);
    }

    /// What is programmed, after all queued work is done. `None` if the thread is gone.
    pub async fn snapshot(&self) -> Option<FibSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Snapshot(tx));
        rx.await.ok()
    }

    /// `snapshot` for callers outside a runtime.
    pub fn snapshot_blocking(&self) -> Option<FibSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Snapshot(tx));
        rx.blocking_recv().ok()
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Desired routes kept out of the kernel, with reasons; changes are announced.
    pub fn rejected(&self) -> watch::Receiver<Arc<Vec<Rejected>>> {
        self.rejected.clone()
    }

    /// Stops the reconciler thread and waits for it. The kernel is left as it is.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ReconcilerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn drive<D: Dataplane>(
    mut core: ReconcilerCore<D>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    mut monitor: Option<LinkMonitor>,
    rejected_tx: watch::Sender<Arc<Vec<Rejected>>>,
) {
    let mut wake = core.step(Instant::now());
    let mut waiting: Vec<oneshot::Sender<FibSnapshot>> = Vec::new();
    loop {
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(wake));
        let events = async {
            match monitor.as_mut() {
                Some(m) => m.next_events().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => break,
                Some(c) => handle(&mut core, c, &mut waiting),
            },
            evs = events => match evs {
                Ok(evs) => evs.into_iter().for_each(|e| core.on_link_event(e)),
                Err(e) => {
                    // Reopen once rather than spin on a broken socket; without a monitor the
                    // periodic resync still repairs everything.
                    warn!(error = %e, "link monitor failed; reopening it and resyncing");
                    monitor = LinkMonitor::open()
                        .inspect_err(|e| warn!(error = %e, "link monitor unavailable"))
                        .ok();
                    core.request_full_resync();
                }
            },
            _ = sleep => {}
        }
        // Coalesce: everything already queued joins this batch.
        while let Ok(c) = rx.try_recv() {
            handle(&mut core, c, &mut waiting);
        }
        // Link events the kernel has already queued come first, so a command (a new endpoint)
        // is not planned against an older picture of its link. Errors surface in the select.
        if let Some(m) = monitor.as_mut() {
            for _ in 0..MAX_QUEUED_EVENT_READS {
                match tokio::time::timeout(Duration::ZERO, m.next_events()).await {
                    Ok(Ok(evs)) => evs.into_iter().for_each(|e| core.on_link_event(e)),
                    _ => break,
                }
            }
        }
        wake = core.step(Instant::now());
        let rejected = core.rejected();
        if rejected_tx.borrow().as_slice() != rejected {
            rejected_tx.send_replace(Arc::new(rejected.to_vec()));
        }
        if !waiting.is_empty() {
            let snap = core.snapshot();
            for w in waiting.drain(..) {
                let _ = w.send(snap.clone());
            }
        }
    }
    debug!("reconciler stopped; kernel state left in place");
}

fn handle<D: Dataplane>(
    core: &mut ReconcilerCore<D>,
    c: Command,
    waiting: &mut Vec<oneshot::Sender<FibSnapshot>>,
) {
    match c {
        Command::Replace(d) => core.set_desired(d),
        Command::Changes(ch) => core.apply_changes(ch),
        Command::Resync => core.request_full_resync(),
        Command::Snapshot(tx) => waiting.push(tx),
    }
}
