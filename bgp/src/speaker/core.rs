//! The core task: the one owner of the RIB, the peer table, export and best-path publication.
//!
//! Owns: `Core` and its loop. Must not: touch sockets (sessions and the listener do) or block:
//! everything it sends goes over unbounded channels whose growth it bounds itself (pending sets
//! and at most `MAX_IN_FLIGHT` batches per peer).
//!
//! The loop takes one message, then everything already queued (up to a limit), then flushes:
//! best-path changes are published and queued for every established peer, and each peer with
//! room gets its next batch. Bursts are therefore coalesced without any timer.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::listener::{self, Listeners};
use super::{ApiCmd, CoreMsg, SessionCmd, SessionEvent, SpeakerError};
use crate::config::{ConfigDiff, OriginatedRoute, PeerConfig, SpeakerConfig};
use crate::intern::Interner;
use crate::negotiate::Negotiated;
use crate::packet::Notification;
use crate::packet::notification::cease;
use crate::policy::{self, ExportSource, ExportTarget, ImportSession, LocalIdentity};
use crate::rib::adj_out::{Advertised, Out, OutQueue};
use crate::rib::decision::{self, DecisionCtx};
use crate::rib::{Dest, OutChange, Path, Prefix, RandomState, Rib, SourceId, SourceInfo, Table};
use crate::session;
use crate::status::{PathStatus, PeerCounters, PeerStatus, RouteChange, RouteStatus, SessionState};
use crate::types::{Family, PathAttrs, community_to_string};

/// Prefixes per batch handed to a session (a few dozen UPDATEs' worth).
const BATCH_PREFIXES: usize = 8192;
/// Batches a session may hold unwritten; more waits in the pending set, coalescing.
const MAX_IN_FLIGHT: usize = 2;
/// Messages handled before flushing, so a flood still produces output steadily.
const MAX_DRAIN: usize = 512;
/// How long stale paths may wait for the restarted peer's End-of-RIB (FRR's stalepath-time).
const STALE_PATH_TIME: Duration = Duration::from_secs(360);

/// UPDATE content for one session, encoded by the session task.
#[derive(Debug, Default)]
pub(crate) struct OutBatch {
    /// Prefixes to withdraw.
    pub withdraw: Vec<IpNet>,
    /// Prefixes to announce, grouped by attributes (one family per group).
    pub announce: Vec<(Arc<PathAttrs>, Vec<IpNet>)>,
    /// End-of-RIB markers to send after the rest.
    pub end_of_rib: Vec<Family>,
}

impl OutBatch {
    fn is_empty(&self) -> bool {
        self.withdraw.is_empty() && self.announce.is_empty() && self.end_of_rib.is_empty()
    }
}

/// An established session's export state.
struct Up {
    negotiated: Negotiated,
    target: ExportTarget,
    /// Decided announcements and withdrawals not yet handed to the session.
    queue: OutQueue,
    /// What is advertised, for slots without an inline bit in the table entries.
    overflow: Advertised,
    /// Prefixes currently advertised.
    advertised: u64,
    in_flight: usize,
    /// Families still owed an End-of-RIB after the initial table (RFC 4724 §4).
    eor_due: Vec<Family>,
}

/// One configured peer.
struct Slot {
    cfg: PeerConfig,
    generation: u64,
    cmd: mpsc::UnboundedSender<SessionCmd>,
    task: JoinHandle<()>,
    state: SessionState,
    since: SystemTime,
    last_error: Option<String>,
    peer_router_id: Option<Ipv4Addr>,
    counters: PeerCounters,
    up: Option<Up>,
    /// Families whose End-of-RIB arrived on the current session.
    eor_received: Vec<Family>,
    /// Graceful restart helper state while the peer's paths are stale.
    gr: Option<GrHelper>,
}

/// We keep a restarting peer's paths as stale (RFC 4724 §4.2).
struct GrHelper {
    /// Families whose paths are retained.
    families: Vec<Family>,
    /// While the session is down: when to give up on the peer (its advertised restart time).
    restart_deadline: Option<Instant>,
    /// Once it is back: when to give up waiting for its End-of-RIB.
    stale_deadline: Option<Instant>,
}

pub(crate) struct Core {
    tx: mpsc::Sender<CoreMsg>,
    config: SpeakerConfig,
    listeners: Option<Listeners>,
    slots: Vec<Option<Slot>>,
    /// Decision-process view of each slot's peer, indexed like `slots`.
    sources: Vec<Option<SourceInfo>>,
    generation: u64,
    rib: Rib,
    interner: Interner,
    originated: BTreeMap<IpNet, OriginatedRoute>,
    local: LocalIdentity,
    subscribers: Vec<mpsc::UnboundedSender<Vec<RouteChange>>>,
    stopping: bool,
}

fn decision_ctx<'a>(config: &SpeakerConfig, sources: &'a [Option<SourceInfo>]) -> DecisionCtx<'a> {
    DecisionCtx {
        sources,
        local_asn: config.local_asn,
        multipath: config.multipath,
        router_id: config.router_id,
    }
}

fn local_identity(config: &SpeakerConfig) -> LocalIdentity {
    let mut addresses = vec![IpAddr::V4(config.router_id)];
    addresses.extend(config.local_ipv4.map(IpAddr::V4));
    addresses.extend(config.local_ipv6.map(IpAddr::V6));
    addresses.extend(config.listen_address);
    addresses.sort();
    addresses.dedup();
    LocalIdentity {
        router_id: config.router_id,
        cluster_id: config.cluster_id,
        addresses,
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Core {
    pub(crate) async fn new(
        tx: mpsc::Sender<CoreMsg>,
        config: SpeakerConfig,
    ) -> Result<Core, SpeakerError> {
        let listeners = match config.listen_port {
            Some(port) => Some(listener::start(config.listen_address, port, tx.clone())?),
            None => None,
        };
        let mut core = Core {
            tx,
            local: local_identity(&config),
            config: config.clone(),
            listeners,
            slots: Vec::new(),
            sources: Vec::new(),
            generation: 0,
            rib: Rib::default(),
            interner: Interner::default(),
            originated: BTreeMap::new(),
            subscribers: Vec::new(),
            stopping: false,
        };
        for peer in config.peers.values() {
            core.add_peer(peer.clone());
        }
        Ok(core)
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<CoreMsg>) {
        loop {
            let deadline = self.next_deadline();
            let msg = tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => Some(msg),
                    None => break,
                },
                () = sleep_until(deadline) => None,
            };
            if let Some(msg) = msg {
                self.handle(msg);
                let mut drained = 0;
                while drained < MAX_DRAIN {
                    match rx.try_recv() {
                        Ok(msg) => self.handle(msg),
                        Err(_) => break,
                    }
                    drained += 1;
                }
            }
            self.expire_graceful_restarts(Instant::now());
            self.flush();
            if self.stopping {
                break;
            }
        }
        tracing::info!("BGP speaker stopped");
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|s| s.gr.as_ref())
            .flat_map(|g| [g.restart_deadline, g.stale_deadline])
            .flatten()
            .min()
    }

    fn handle(&mut self, msg: CoreMsg) {
        match msg {
            CoreMsg::Api(cmd) => self.handle_api(cmd),
            CoreMsg::Session {
                slot,
                generation,
                event,
            } => {
                let current = self.slot(slot).is_some_and(|s| s.generation == generation);
                if current {
                    self.handle_session(slot, event);
                }
            }
            CoreMsg::Accepted { stream, remote } => self.handle_accepted(stream, remote),
        }
    }

    fn slot(&self, id: SourceId) -> Option<&Slot> {
        self.slots.get(id.0 as usize).and_then(|s| s.as_ref())
    }

    fn slot_mut(&mut self, id: SourceId) -> Option<&mut Slot> {
        self.slots.get_mut(id.0 as usize).and_then(|s| s.as_mut())
    }

    fn slot_by_name(&self, name: &str) -> Option<SourceId> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.cfg.name == name))
            .map(|i| SourceId(i as u32))
    }

    // ===== peers =====

    fn add_peer(&mut self, cfg: PeerConfig) {
        self.add_peer_after(cfg, None);
    }

    /// Start a peer; with `after`, its session waits for that (replaced) session to finish.
    fn add_peer_after(&mut self, cfg: PeerConfig, after: Option<JoinHandle<()>>) {
        let index = self
            .slots
            .iter()
            .position(Option::is_none)
            .unwrap_or_else(|| {
                self.slots.push(None);
                self.sources.push(None);
                self.slots.len() - 1
            });
        let id = SourceId(index as u32);
        self.generation += 1;
        let (cmd, task) = session::spawn(session::SessionSetup {
            slot: id,
            generation: self.generation,
            peer: cfg.clone(),
            speaker: self.config.clone(),
            core: self.tx.clone(),
            after,
        });
        self.slots[index] = Some(Slot {
            cfg,
            generation: self.generation,
            cmd,
            task,
            state: SessionState::Idle,
            since: SystemTime::now(),
            last_error: None,
            peer_router_id: None,
            counters: PeerCounters::default(),
            up: None,
            eor_received: Vec::new(),
            gr: None,
        });
    }

    /// Stop a peer's session with `notification` and forget it and its routes. Returns the
    /// session task, which ends once the NOTIFICATION is written.
    fn remove_peer(&mut self, id: SourceId, notification: Notification) -> Option<JoinHandle<()>> {
        let slot = self.slots[id.0 as usize].take()?;
        let _ = slot.cmd.send(SessionCmd::Stop(notification));
        self.withdraw_source(id);
        self.sources[id.0 as usize] = None;
        Some(slot.task)
    }

    fn withdraw_source(&mut self, id: SourceId) {
        let ctx = decision_ctx(&self.config, &self.sources);
        self.rib.remove_source(id, &ctx);
    }

    fn handle_accepted(&mut self, stream: tokio::net::TcpStream, remote: SocketAddr) {
        if self.stopping {
            return;
        }
        let found = self
            .slots
            .iter()
            .flatten()
            .find(|s| s.cfg.address == remote.ip());
        match found {
            Some(slot) => {
                let _ = slot.cmd.send(SessionCmd::Incoming(stream));
            }
            None => tracing::warn!(%remote, "unexpected BGP connection from an unknown address"),
        }
    }

    // ===== API =====

    fn handle_api(&mut self, cmd: ApiCmd) {
        match cmd {
            ApiCmd::Apply(config, reply) => {
                let _ = reply.send(self.apply(*config));
            }
            ApiCmd::Originate(routes, reply) => {
                self.originate(routes);
                let _ = reply.send(());
            }
            ApiCmd::Subscribe(tx) => {
                let all: Vec<RouteChange> = self.all_route_changes();
                if tx.send(all).is_ok() {
                    self.subscribers.push(tx);
                }
            }
            ApiCmd::Peers(reply) => {
                let _ = reply.send(self.peer_statuses());
            }
            ApiCmd::RibSize(reply) => {
                let _ = reply.send((self.rib.v4.len() as u64, self.rib.v6.len() as u64));
            }
            ApiCmd::Routes(filter, reply) => {
                let _ = reply.send(self.route_statuses(filter));
            }
            ApiCmd::Shutdown { for_restart, reply } => self.shutdown(for_restart, reply),
        }
    }

    fn apply(&mut self, new: SpeakerConfig) -> Result<ConfigDiff, SpeakerError> {
        let diff = self.config.diff(&new);
        if diff.is_empty() {
            return Ok(diff);
        }
        if diff.relisten {
            // Bind the new sockets before dropping the old ones: on failure nothing changes.
            let listeners = match new.listen_port {
                Some(port) => {
                    self.listeners = None;
                    match listener::start(new.listen_address, port, self.tx.clone()) {
                        Ok(l) => Some(l),
                        Err(e) => {
                            // Put the old listener back before reporting.
                            if let Some(old_port) = self.config.listen_port {
                                self.listeners = listener::start(
                                    self.config.listen_address,
                                    old_port,
                                    self.tx.clone(),
                                )
                                .ok();
                            }
                            return Err(e);
                        }
                    }
                }
                None => None,
            };
            self.listeners = listeners;
        }
        self.config = new;
        self.local = local_identity(&self.config);
        let change = Notification::cease(cease::OTHER_CONFIGURATION_CHANGE);
        let resets: Vec<String> = if diff.restart_all {
            self.slots
                .iter()
                .flatten()
                .map(|s| s.cfg.name.clone())
                .collect()
        } else {
            diff.changed.iter().cloned().collect()
        };
        for name in &diff.removed {
            if let Some(id) = self.slot_by_name(name) {
                tracing::info!(peer = %name, "peer removed from configuration");
                self.remove_peer(id, Notification::cease(cease::PEER_DECONFIGURED));
            }
        }
        let mut previous: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
        for name in &resets {
            if let Some(id) = self.slot_by_name(name) {
                tracing::info!(peer = %name, "peer configuration changed: resetting its session");
                if let Some(task) = self.remove_peer(id, change.clone()) {
                    previous.insert(name.clone(), task);
                }
            }
        }
        for name in resets.iter().chain(diff.added.iter()) {
            if let Some(cfg) = self.config.peers.get(name) {
                self.add_peer_after(cfg.clone(), previous.remove(name));
            }
        }
        if diff.policy_changed {
            let ctx = decision_ctx(&self.config, &self.sources);
            self.rib.reselect_all(&ctx);
            self.requeue_everything();
        }
        Ok(diff)
    }

    /// Re-evaluate every prefix (tombstones included) for every established peer (export
    /// policy changed).
    fn requeue_everything(&mut self) {
        let Core {
            rib,
            slots,
            sources,
            config,
            local,
            interner,
            ..
        } = self;
        let ctx = ExportCtx {
            sources,
            config,
            local,
        };
        let mut peers = established(slots);
        rib.v4.visit_all(|p, d| {
            peers
                .iter_mut()
                .for_each(|pe| pe.export(p, d, &ctx, interner))
        });
        rib.v6.visit_all(|p, d| {
            peers
                .iter_mut()
                .for_each(|pe| pe.export(p, d, &ctx, interner))
        });
    }

    fn all_prefixes(&self) -> Vec<IpNet> {
        let mut all: Vec<IpNet> = Vec::with_capacity(self.rib.len());
        all.extend(self.rib.v4.iter().map(|(p, _)| IpNet::V4(*p)));
        all.extend(self.rib.v6.iter().map(|(p, _)| IpNet::V6(*p)));
        all
    }

    pub(crate) fn originate(&mut self, routes: BTreeSet<OriginatedRoute>) {
        let new: BTreeMap<IpNet, OriginatedRoute> =
            routes.into_iter().map(|r| (r.prefix.trunc(), r)).collect();
        let removed: Vec<IpNet> = self
            .originated
            .keys()
            .filter(|p| !new.contains_key(p))
            .copied()
            .collect();
        let ctx = decision_ctx(&self.config, &self.sources);
        for p in removed {
            self.rib.remove(p, SourceId::LOCAL, &ctx);
        }
        for (p, r) in &new {
            if self.originated.get(p) == Some(r) {
                continue;
            }
            let attrs = self.interner.intern(PathAttrs::local(
                r.communities.clone(),
                r.large_communities.clone(),
            ));
            self.rib
                .upsert(*p, Path::new(SourceId::LOCAL, attrs, None), &ctx);
        }
        self.originated = new;
    }

    fn shutdown(&mut self, for_restart: bool, reply: oneshot::Sender<()>) {
        self.stopping = true;
        self.listeners = None;
        let quietly = for_restart && self.config.graceful_restart.enabled;
        let mut tasks = Vec::new();
        for slot in self.slots.iter_mut().filter_map(Option::take) {
            let cmd = if quietly {
                SessionCmd::Abandon
            } else {
                SessionCmd::Stop(Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN))
            };
            let _ = slot.cmd.send(cmd);
            tasks.push(slot.task);
        }
        tokio::spawn(async move {
            // Give each session a moment to write its NOTIFICATION.
            let all = futures_join_all(tasks);
            let _ = tokio::time::timeout(Duration::from_secs(3), all).await;
            let _ = reply.send(());
        });
    }

    // ===== sessions =====

    fn handle_session(&mut self, id: SourceId, event: SessionEvent) {
        match event {
            SessionEvent::State { state, last_error } => {
                let slot = self.slot_mut(id).expect("checked by caller");
                if slot.state != state {
                    slot.state = state;
                    slot.since = SystemTime::now();
                }
                slot.last_error = last_error;
            }
            SessionEvent::Transition { from, to } => {
                let slot = self.slot_mut(id).expect("checked by caller");
                *slot
                    .counters
                    .transitions
                    .entry(format!("{}->{}", from.name(), to.name()))
                    .or_default() += 1;
                if to == SessionState::Established {
                    slot.counters.established_count += 1;
                }
            }
            SessionEvent::Established { negotiated, local } => {
                self.on_established(id, *negotiated, local)
            }
            SessionEvent::Updates(updates) => self.on_updates(id, updates),
            SessionEvent::MalformedUpdate => {
                self.slot_mut(id)
                    .expect("checked by caller")
                    .counters
                    .updates_in += 1;
            }
            SessionEvent::RouteRefresh(family) => self.on_route_refresh(id, family),
            SessionEvent::Down { reason, graceful } => self.on_down(id, &reason, graceful),
            SessionEvent::Written { messages } => {
                let slot = self.slot_mut(id).expect("checked by caller");
                slot.counters.updates_out += messages;
                if let Some(up) = slot.up.as_mut() {
                    up.in_flight = up.in_flight.saturating_sub(1);
                }
            }
            SessionEvent::NotificationSent(n) => {
                let slot = self.slot_mut(id).expect("checked by caller");
                *slot
                    .counters
                    .notifications_out
                    .entry(n.label())
                    .or_default() += 1;
            }
            SessionEvent::NotificationReceived(n) => {
                let slot = self.slot_mut(id).expect("checked by caller");
                *slot.counters.notifications_in.entry(n.label()).or_default() += 1;
            }
        }
    }

    fn on_established(&mut self, id: SourceId, negotiated: Negotiated, local: SocketAddr) {
        let config = &self.config;
        let slot = self.slots[id.0 as usize]
            .as_mut()
            .expect("checked by caller");
        let local_asn = slot.cfg.local_asn.unwrap_or(config.local_asn);
        let ebgp = negotiated.peer_asn != local_asn;
        let local_ip = local.ip().to_canonical();
        let target = ExportTarget {
            id,
            ebgp,
            rr_client: slot.cfg.rr_client,
            local_asn,
            next_hop_mode: slot.cfg.next_hop_mode,
            self_v4: match local_ip {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => config.local_ipv4,
            },
            self_v6: match local_ip {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => config.local_ipv6,
            },
            peer_subnet: config
                .local_subnets
                .iter()
                .find(|s| s.contains(&slot.cfg.address))
                .map(|s| s.trunc()),
        };
        self.sources[id.0 as usize] = Some(SourceInfo {
            name: slot.cfg.name.clone(),
            ebgp,
            router_id: negotiated.peer_id,
            address: slot.cfg.address,
            rr_client: slot.cfg.rr_client,
        });
        slot.peer_router_id = Some(negotiated.peer_id);
        slot.eor_received.clear();
        let not_preserved = slot.gr.as_mut().map(|gr| {
            // RFC 4724 §4.2: families the peer no longer preserves (no capability, family
            // missing, F bit clear) lose their stale paths now; the rest wait for End-of-RIB.
            gr.restart_deadline = None;
            let cap = negotiated.peer_graceful_restart.as_ref();
            let (keep, lost): (Vec<Family>, Vec<Family>) = gr.families.iter().partition(|f| {
                negotiated.families.contains(f)
                    && cap.is_some_and(|c| {
                        c.families
                            .iter()
                            .any(|(af, fwd)| af.family() == Some(**f) && *fwd)
                    })
            });
            gr.families = keep;
            gr.stale_deadline = Some(Instant::now() + STALE_PATH_TIME);
            lost
        });
        if slot.gr.as_ref().is_some_and(|g| g.families.is_empty()) {
            slot.gr = None;
        }
        let mut up = Up {
            eor_due: negotiated.families.clone(),
            negotiated,
            target,
            queue: OutQueue::default(),
            overflow: Advertised::default(),
            advertised: 0,
            in_flight: 0,
        };
        // The initial table: one pass over the Loc-RIB in table order.
        let ctx = ExportCtx {
            sources: &self.sources,
            config: &self.config,
            local: &self.local,
        };
        let interner = &mut self.interner;
        let mut pe = PeerExport::new(id, &mut up);
        self.rib
            .v4
            .visit_all(|p, d| pe.export(p, d, &ctx, interner));
        self.rib
            .v6
            .visit_all(|p, d| pe.export(p, d, &ctx, interner));
        tracing::info!(
            peer = %slot.cfg.name,
            peer_as = up.negotiated.peer_asn,
            router_id = %up.negotiated.peer_id,
            hold = up.negotiated.hold_time,
            prefixes = up.queue.len(),
            "session established"
        );
        slot.up = Some(up);
        for family in not_preserved.unwrap_or_default() {
            self.sweep_stale(id, family, "the restarted peer does not preserve it");
        }
    }

    /// A session left Established: keep its paths as stale (graceful restart helper) or remove
    /// them.
    fn on_down(&mut self, id: SourceId, reason: &str, graceful: bool) {
        let slot = self.slots[id.0 as usize]
            .as_mut()
            .expect("checked by caller");
        let up = slot.up.take();
        self.rib.forget_peer(id.0);
        let cap = up
            .as_ref()
            .and_then(|u| u.negotiated.peer_graceful_restart.clone())
            .filter(|c| c.restart_time > 0);
        let name = slot.cfg.name.clone();
        let Some(cap) = cap.filter(|_| graceful) else {
            tracing::info!(peer = %name, %reason, "session down");
            slot.gr = None;
            self.withdraw_source(id);
            self.sources[id.0 as usize] = None;
            return;
        };
        let negotiated = up.map(|u| u.negotiated.families).unwrap_or_default();
        let families: Vec<Family> = cap
            .families
            .iter()
            .filter_map(|(af, _)| af.family())
            .filter(|f| negotiated.contains(f))
            .collect();
        let consecutive = slot.gr.is_some();
        slot.gr = Some(GrHelper {
            families: families.clone(),
            restart_deadline: Some(
                Instant::now() + Duration::from_secs(u64::from(cap.restart_time)),
            ),
            stale_deadline: None,
        });
        let ctx = decision_ctx(&self.config, &self.sources);
        if consecutive {
            // RFC 4724 §4.2: a peer that restarts again before its End-of-RIB loses the routes
            // still stale from the previous restart.
            self.rib.v4.sweep_stale(id, &ctx);
            self.rib.v6.sweep_stale(id, &ctx);
        }
        let v4 = families.contains(&Family::Ipv4Unicast);
        let v6 = families.contains(&Family::Ipv6Unicast);
        if v4 {
            self.rib.v4.mark_stale(id, &ctx);
        } else {
            self.rib.v4.remove_source(id, &ctx);
        }
        if v6 {
            self.rib.v6.mark_stale(id, &ctx);
        } else {
            self.rib.v6.remove_source(id, &ctx);
        }
        tracing::info!(peer = %name, %reason, restart_time = cap.restart_time, consecutive,
            "session down: keeping its routes as stale (graceful restart)");
    }

    /// Remove a peer's stale paths of one family and end helper mode for it.
    fn sweep_stale(&mut self, id: SourceId, family: Family, why: &str) {
        let ctx = decision_ctx(&self.config, &self.sources);
        let swept = match family {
            Family::Ipv4Unicast => self.rib.v4.sweep_stale(id, &ctx).len(),
            Family::Ipv6Unicast => self.rib.v6.sweep_stale(id, &ctx).len(),
        };
        let Some(slot) = self.slots[id.0 as usize].as_mut() else {
            return;
        };
        if let Some(gr) = slot.gr.as_mut() {
            gr.families.retain(|f| *f != family);
            if gr.families.is_empty() {
                slot.gr = None;
            }
        }
        tracing::info!(peer = %slot.cfg.name, %family, swept, why, "stale routes removed");
    }

    /// Give up on peers whose restart or End-of-RIB did not come in time.
    fn expire_graceful_restarts(&mut self, now: Instant) {
        let expired: Vec<(SourceId, Vec<Family>, &'static str)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let gr = s.as_ref()?.gr.as_ref()?;
                let why = if gr.restart_deadline.is_some_and(|d| d <= now) {
                    "the peer did not come back within its restart time"
                } else if gr.stale_deadline.is_some_and(|d| d <= now) {
                    "the peer sent no End-of-RIB in time"
                } else {
                    return None;
                };
                Some((SourceId(i as u32), gr.families.clone(), why))
            })
            .collect();
        for (id, families, why) in expired {
            for family in families {
                self.sweep_stale(id, family, why);
            }
            if let Some(slot) = self.slots[id.0 as usize].as_mut() {
                slot.gr = None;
                if slot.up.is_none() {
                    self.sources[id.0 as usize] = None;
                }
            }
        }
    }

    fn on_updates(&mut self, id: SourceId, updates: Vec<crate::packet::UpdateMsg>) {
        let config = &self.config;
        let slot = self.slots[id.0 as usize]
            .as_mut()
            .expect("checked by caller");
        let Some(up) = slot.up.as_ref() else {
            return;
        };
        let session = ImportSession {
            local_asn: up.target.local_asn,
            ebgp: up.target.ebgp,
            allow_local_as: slot.cfg.allow_local_as,
        };
        let ctx = decision_ctx(config, &self.sources);
        let mut eor_sweeps: Vec<Family> = Vec::new();
        for update in updates {
            slot.counters.updates_in += 1;
            if let Some(why) = &update.treat_as_withdraw {
                slot.counters.treat_as_withdraw += 1;
                tracing::warn!(peer = %slot.cfg.name, reason = %why,
                    withdrawn = update.withdrawn.len(), "malformed UPDATE treated as withdraw (RFC 7606)");
            }
            for d in &update.discarded {
                tracing::warn!(peer = %slot.cfg.name, attribute = %d, "attribute discarded (RFC 7606)");
            }
            for p in update.withdrawn {
                self.rib.remove(p, id, &ctx);
            }
            for group in update.announced {
                let (stored, ineligible) = policy::import(&group.attrs, session, &self.local);
                let stored = self.interner.intern_arc(stored);
                for p in group.prefixes {
                    self.rib
                        .upsert(p, Path::new(id, stored.clone(), ineligible), &ctx);
                }
            }
            if let Some(family) = update.end_of_rib {
                tracing::debug!(peer = %slot.cfg.name, %family, "End-of-RIB received");
                if !slot.eor_received.contains(&family) {
                    slot.eor_received.push(family);
                }
                if slot
                    .gr
                    .as_ref()
                    .is_some_and(|g| g.families.contains(&family))
                {
                    eor_sweeps.push(family);
                }
            }
        }
        for family in eor_sweeps {
            self.sweep_stale(id, family, "End-of-RIB received");
        }
    }

    // ===== output =====

    fn flush(&mut self) {
        let Core {
            rib,
            slots,
            sources,
            config,
            local,
            interner,
            subscribers,
            ..
        } = self;
        let ctx = ExportCtx {
            sources,
            config,
            local,
        };
        let mut peers = established(slots);
        let (n4, n6) = (rib.v4.changes_pending(), rib.v6.changes_pending());
        for pe in &mut peers {
            pe.up.queue.reserve(n4, n6);
        }
        let mut changes: Option<Vec<RouteChange>> = (!subscribers.is_empty()).then(Vec::new);
        // One visit per changed prefix: publish it, and decide it for every peer at once.
        rib.v4.drain_changes(|p, d| {
            if let Some(c) = changes.as_mut() {
                c.push(route_change_of(p.to_ipnet(), d, sources));
            }
            peers
                .iter_mut()
                .for_each(|pe| pe.export(p, d, &ctx, interner));
        });
        rib.v6.drain_changes(|p, d| {
            if let Some(c) = changes.as_mut() {
                c.push(route_change_of(p.to_ipnet(), d, sources));
            }
            peers
                .iter_mut()
                .for_each(|pe| pe.export(p, d, &ctx, interner));
        });
        let (e4, e6) = (rib.v4.entries(), rib.v6.entries());
        for pe in &mut peers {
            pe.up.queue.bound(e4, e6);
        }
        drop(peers);
        if let Some(changes) = changes.filter(|c| !c.is_empty()) {
            subscribers.retain(|s| s.send(changes.clone()).is_ok());
        }
        for index in 0..self.slots.len() {
            self.feed(SourceId(index as u32));
        }
    }

    /// RFC 2918 §4: send again, in its current state, what is advertised to the peer.
    fn on_route_refresh(&mut self, id: SourceId, family: Family) {
        let Core {
            rib,
            slots,
            sources,
            config,
            local,
            interner,
            ..
        } = self;
        let Some(slot) = slots[id.0 as usize].as_mut() else {
            return;
        };
        let name = slot.cfg.name.clone();
        let Some(up) = slot.up.as_mut() else {
            return;
        };
        tracing::info!(peer = %name, %family, "route refresh requested");
        let ctx = ExportCtx {
            sources,
            config,
            local,
        };
        let mut pe = PeerExport::new(id, up);
        match family {
            Family::Ipv4Unicast => rib.v4.visit_all(|p, d| {
                if pe.advertises(p, d) {
                    pe.export(p, d, &ctx, interner);
                }
            }),
            Family::Ipv6Unicast => rib.v6.visit_all(|p, d| {
                if pe.advertises(p, d) {
                    pe.export(p, d, &ctx, interner);
                }
            }),
        }
    }

    /// Give a session batches while it has room.
    fn feed(&mut self, id: SourceId) {
        loop {
            let Some(slot) = self.slots[id.0 as usize].as_mut() else {
                return;
            };
            let Some(up) = slot.up.as_mut() else {
                return;
            };
            if up.in_flight >= MAX_IN_FLIGHT {
                return;
            }
            let batch = build_batch(up);
            if batch.is_empty() {
                return;
            }
            up.in_flight += 1;
            if slot.cmd.send(SessionCmd::Send(batch)).is_err() {
                return;
            }
        }
    }

    fn route_change(&self, prefix: IpNet) -> RouteChange {
        match self.rib.get(&prefix) {
            Some(d) => route_change_of(prefix, d, &self.sources),
            None => route_change_of(prefix, &Dest::default(), &self.sources),
        }
    }

    fn all_route_changes(&self) -> Vec<RouteChange> {
        self.all_prefixes()
            .into_iter()
            .map(|p| self.route_change(p))
            .filter(|c| !c.next_hops.is_empty())
            .collect()
    }

    fn source_name(&self, id: SourceId) -> Option<String> {
        if id.is_local() {
            return Some("local".to_string());
        }
        self.sources
            .get(id.0 as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.name.clone())
    }

    // ===== snapshots =====

    fn peer_statuses(&self) -> Vec<PeerStatus> {
        let mut counts: HashMap<SourceId, PathCounts> = HashMap::new();
        for (_, dest) in self.rib.v4.iter() {
            count_paths(dest, &mut counts);
        }
        for (_, dest) in self.rib.v6.iter() {
            count_paths(dest, &mut counts);
        }
        let mut out: Vec<PeerStatus> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (SourceId(i as u32), s)))
            .map(|(id, s)| {
                let c = counts.get(&id).copied().unwrap_or_default();
                PeerStatus {
                    name: s.cfg.name.clone(),
                    kind: s.cfg.kind,
                    address: s.cfg.address,
                    port: s.cfg.port,
                    remote_asn: s.cfg.remote_asn,
                    local_asn: s.cfg.local_asn.unwrap_or(self.config.local_asn),
                    state: s.state,
                    since_unix: unix_secs(s.since),
                    last_error: s.last_error.clone(),
                    peer_router_id: s.peer_router_id,
                    hold_time: s.up.as_ref().map(|u| u.negotiated.hold_time),
                    families: s
                        .up
                        .as_ref()
                        .map(|u| u.negotiated.families.clone())
                        .unwrap_or_default(),
                    prefixes_received: c.received,
                    prefixes_accepted: c.accepted,
                    prefixes_advertised: s.up.as_ref().map_or(0, |u| u.advertised),
                    counters: s.counters.clone(),
                    end_of_rib_received: s.eor_received.clone(),
                    peer_graceful_restart: s
                        .up
                        .as_ref()
                        .is_some_and(|u| u.negotiated.peer_graceful_restart.is_some()),
                    stale_paths: c.stale,
                }
            })
            .collect();
        out.sort_by(|a, b| a.address.cmp(&b.address).then(a.name.cmp(&b.name)));
        out
    }

    fn route_statuses(&self, filter: Option<IpNet>) -> Vec<RouteStatus> {
        let ctx = decision_ctx(&self.config, &self.sources);
        let mut prefixes: Vec<IpNet> = match filter {
            None => self.all_prefixes(),
            Some(f) if f.prefix_len() == f.max_prefix_len() => {
                // An address: longest-prefix match.
                (0..=f.max_prefix_len())
                    .rev()
                    .filter_map(|len| {
                        let candidate = IpNet::new(f.addr(), len).ok()?.trunc();
                        self.rib.get(&candidate).map(|_| candidate)
                    })
                    .take(1)
                    .collect()
            }
            Some(f) => {
                let f = f.trunc();
                self.rib.get(&f).map(|_| f).into_iter().collect()
            }
        };
        prefixes.sort();
        prefixes
            .into_iter()
            .filter_map(|p| self.rib.get(&p).map(|d| (p, d)))
            .map(|(p, d)| self.route_status(p, d, &ctx))
            .collect()
    }

    fn route_status(&self, prefix: IpNet, dest: &Dest, ctx: &DecisionCtx<'_>) -> RouteStatus {
        let reasons = decision::explain(dest.paths(), ctx);
        let selected = dest.selected().len();
        let paths = dest
            .paths()
            .iter()
            .zip(reasons)
            .enumerate()
            .map(|(i, (p, reason))| {
                let a = &p.attrs;
                let mut communities: Vec<String> = a
                    .communities
                    .iter()
                    .map(|c| community_to_string(*c))
                    .collect();
                communities.extend(a.large_communities.iter().map(|c| c.to_string()));
                PathStatus {
                    from: self
                        .source_name(p.source)
                        .unwrap_or_else(|| format!("slot {}", p.source.0)),
                    peer_address: self
                        .sources
                        .get(p.source.0 as usize)
                        .and_then(|s| s.as_ref())
                        .map(|s| s.address),
                    next_hop: a.next_hop,
                    as_path: a.as_path.to_string(),
                    origin: a.origin.to_string(),
                    med: a.med,
                    local_pref: a.local_pref,
                    communities,
                    originator_id: a.originator_id,
                    cluster_list: a.cluster_list.clone(),
                    best: i == 0 && selected > 0,
                    multipath: i < selected,
                    stale: p.stale,
                    reason,
                }
            })
            .collect();
        RouteStatus { prefix, paths }
    }
}

/// Paths per source, for `PeerStatus`.
#[derive(Clone, Copy, Debug, Default)]
struct PathCounts {
    received: u64,
    accepted: u64,
    stale: u64,
}

fn count_paths(dest: &Dest, counts: &mut HashMap<SourceId, PathCounts>) {
    for p in dest.paths() {
        let c = counts.entry(p.source).or_default();
        c.received += 1;
        if p.ineligible.is_none() {
            c.accepted += 1;
        }
        if p.stale {
            c.stale += 1;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What a best-path change means for the FIB: the next hops of the selected group (none for a
/// withdrawal, or when our own origination wins).
fn route_change_of(prefix: IpNet, dest: &Dest, sources: &[Option<SourceInfo>]) -> RouteChange {
    let name = |id: SourceId| -> Option<String> {
        if id.is_local() {
            return Some("local".to_string());
        }
        sources
            .get(id.0 as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.name.clone())
    };
    match dest.best() {
        Some(best) if !best.source.is_local() => {
            let mut next_hops: Vec<IpAddr> = Vec::new();
            for p in dest.selected() {
                if let Some(nh) = p.attrs.next_hop
                    && !next_hops.contains(&nh)
                {
                    next_hops.push(nh);
                }
            }
            RouteChange {
                prefix,
                next_hops,
                from: name(best.source),
                stale: best.stale,
            }
        }
        _ => RouteChange {
            prefix,
            next_hops: Vec::new(),
            from: None,
            stale: false,
        },
    }
}

/// What export policy needs besides the peer and the path.
struct ExportCtx<'a> {
    sources: &'a [Option<SourceInfo>],
    config: &'a SpeakerConfig,
    local: &'a LocalIdentity,
}

/// Export results depend on the source attribute set (by address), the source and the family,
/// not on the prefix (the prefix-dependent pool filter runs separately): memoised per pass.
type ExportKey = (usize, SourceId, Family);

/// One established peer during an export pass over the table.
struct PeerExport<'a> {
    slot: SourceId,
    up: &'a mut Up,
    cache: HashMap<ExportKey, Option<Arc<PathAttrs>>, RandomState>,
    last: Option<(ExportKey, Option<Arc<PathAttrs>>)>,
}

/// Every established peer, for an export pass.
fn established(slots: &mut [Option<Slot>]) -> Vec<PeerExport<'_>> {
    slots
        .iter_mut()
        .enumerate()
        .filter_map(|(i, s)| {
            let up = s.as_mut()?.up.as_mut()?;
            Some(PeerExport::new(SourceId(i as u32), up))
        })
        .collect()
}

/// The per-family overflow set of a peer without an inline bit.
trait FamilyPrefix: Prefix {
    fn overflow(adv: &mut Advertised) -> &mut HashSet<Self, RandomState>;
}

impl FamilyPrefix for ipnet::Ipv4Net {
    fn overflow(adv: &mut Advertised) -> &mut HashSet<Self, RandomState> {
        &mut adv.v4
    }
}

impl FamilyPrefix for ipnet::Ipv6Net {
    fn overflow(adv: &mut Advertised) -> &mut HashSet<Self, RandomState> {
        &mut adv.v6
    }
}

impl<'a> PeerExport<'a> {
    fn new(slot: SourceId, up: &'a mut Up) -> Self {
        PeerExport {
            slot,
            up,
            cache: HashMap::default(),
            last: None,
        }
    }

    /// Whether `prefix` is advertised to this peer now.
    fn advertises<P: FamilyPrefix>(&mut self, prefix: P, dest: &Dest) -> bool {
        dest.advertised_to(self.slot.0) || P::overflow(&mut self.up.overflow).contains(&prefix)
    }

    /// What this peer should have for `prefix` now (the attributes, or nothing).
    fn decide(
        &mut self,
        prefix: &IpNet,
        best: Option<&Path>,
        ctx: &ExportCtx<'_>,
        interner: &mut Interner,
    ) -> Option<Arc<PathAttrs>> {
        let family = Family::of(prefix);
        if !self.up.negotiated.families.contains(&family) {
            return None;
        }
        let best = best?;
        let source = ExportSource {
            id: best.source,
            peer: ctx
                .sources
                .get(best.source.0 as usize)
                .and_then(|s| s.as_ref()),
        };
        if !best.source.is_local() && source.peer.is_none() {
            return None;
        }
        policy::check_prefix(prefix, source, &ctx.config.export).ok()?;
        let key = (Arc::as_ptr(&best.attrs) as usize, best.source, family);
        if let Some((k, out)) = &self.last
            && *k == key
        {
            return out.clone();
        }
        let out = match self.cache.get(&key) {
            Some(out) => out.clone(),
            None => {
                let out =
                    policy::transform(family, &best.attrs, source, &self.up.target, ctx.local)
                        .ok()
                        .map(|a| interner.intern(a));
                self.cache.insert(key, out.clone());
                out
            }
        };
        self.last = Some((key, out.clone()));
        out
    }

    /// Decide `prefix` for this peer, update what is advertised, queue what must be sent.
    fn export<P: FamilyPrefix>(
        &mut self,
        prefix: P,
        dest: &mut Dest,
        ctx: &ExportCtx<'_>,
        interner: &mut Interner,
    ) {
        let net = prefix.to_ipnet();
        let out = self.decide(&net, dest.best(), ctx, interner);
        let overflow = P::overflow(&mut self.up.overflow);
        let change = Table::<P>::export_entry(prefix, dest, self.slot.0, overflow, out);
        match &change {
            OutChange::Announce {
                replaces: false, ..
            } => self.up.advertised += 1,
            OutChange::Withdraw => self.up.advertised = self.up.advertised.saturating_sub(1),
            _ => {}
        }
        self.up.queue.push(net, change);
    }
}

/// Groups prefixes by the `Arc` of their outgoing attributes, remembering the last group so
/// consecutive prefixes of one UPDATE (the usual case) skip the hash lookup.
#[derive(Default)]
struct Grouper {
    index: HashMap<usize, usize, RandomState>,
    last: Option<(usize, usize)>,
}

impl Grouper {
    fn add(&mut self, batch: &mut OutBatch, prefix: IpNet, attrs: Arc<PathAttrs>) {
        let key = Arc::as_ptr(&attrs) as usize;
        let i = match self.last {
            Some((k, i)) if k == key => i,
            _ => *self.index.entry(key).or_insert_with(|| {
                batch.announce.push((attrs, Vec::new()));
                batch.announce.len() - 1
            }),
        };
        self.last = Some((key, i));
        batch.announce[i].1.push(prefix);
    }
}

/// The next batch for one established peer: queued outcomes in order (a batch ends before a
/// prefix repeats, since the encoder writes withdrawals before announcements), then End-of-RIB
/// once the initial table is out.
fn build_batch(up: &mut Up) -> OutBatch {
    let mut batch = OutBatch::default();
    let mut grouper = Grouper::default();
    let mut seen: HashSet<IpNet, RandomState> = HashSet::default();
    let outs = up.queue.take(BATCH_PREFIXES);
    let mut rest = Vec::new();
    for (i, out) in outs.iter().enumerate() {
        let prefix = match out {
            Out::Announce(p, _) | Out::Withdraw(p) => *p,
        };
        if !seen.insert(prefix) {
            rest = outs[i..].to_vec();
            break;
        }
        match out {
            Out::Announce(p, a) => grouper.add(&mut batch, *p, a.clone()),
            Out::Withdraw(p) => batch.withdraw.push(*p),
        }
    }
    if !rest.is_empty() {
        up.queue.put_back(rest);
    }
    if up.queue.is_empty() && !up.eor_due.is_empty() {
        batch.end_of_rib = std::mem::take(&mut up.eor_due);
    }
    batch
}

/// Wait for every task (what `futures::future::join_all` does, without the dependency).
async fn futures_join_all(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}
