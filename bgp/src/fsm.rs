//! The session state machine of one configured BGP peer (RFC 4271 §8) with up to two TCP
//! connections and their collision resolution (RFC 4271 §6.8, RFC 6286 §2.3).
//!
//! Owns: the per-peer state (started or stopped, outgoing connect attempt, idle-hold back-off,
//! last error) and the state of each connection ([`ConnId::Out`], which we opened, and
//! [`ConnId::In`], which the peer opened). Must not: do I/O, read a clock, decode bytes or touch
//! routes. It is pure: the session driver feeds every event in as an [`Input`] to
//! [`PeerFsm::process`] and carries out the returned [`Output`]s in order (connect, send, close,
//! arm and stop timers); timers are outputs (`StartTimer`) and come back as inputs
//! (`TimerExpired`). UPDATE contents never pass through here.
//!
//! Choices worth knowing (BIRD's behaviour unless the RFC says otherwise): no DelayOpen, the OPEN
//! is sent as soon as a connection exists; a collision is resolved as soon as one connection
//! receives an OPEN while the other exists (the peer's identifier is then known), keeping the
//! connection opened by the dominant side; an incoming connection is accepted while Idle between
//! retries (not while stopped) and refused while another incoming one exists or a session is
//! Established; outgoing attempts stop once the incoming connection has received an OPEN; after
//! an error the peer waits an idle-hold time that doubles per consecutive error up to 8× and is
//! forgotten once a session has stayed Established for [`BACKOFF_RESET_AFTER`].

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use crate::negotiate::{LocalOpen, Negotiated, negotiate};
use crate::packet::notification::{cease, fsm};
use crate::packet::{Message, Notification, OpenMsg, RouteRefreshMsg};
use crate::status::SessionState;
use crate::types::Asn;

/// Hold time armed in OpenSent, before the peer's hold time is known (RFC 4271 §8.2.2: "large").
pub const OPEN_SENT_HOLD_TIME: Duration = Duration::from_secs(240);
/// How long a session must stay Established before the idle-hold back-off is forgotten.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
/// The idle-hold back-off doubles per consecutive error up to this multiple of the base.
pub const MAX_BACKOFF_FACTOR: u32 = 8;

/// Configuration of one peer's state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsmConfig {
    /// Our OPEN.
    pub local: LocalOpen,
    /// The AS the peer must announce.
    pub peer_asn: Asn,
    /// Never connect; only accept the peer's connection.
    pub passive: bool,
    /// ConnectRetry time: between outgoing attempts, and the limit for one attempt.
    pub connect_retry: Duration,
    /// Configured keepalive interval (seconds); `None` is a third of the hold time.
    pub keepalive: Option<u16>,
    /// Base idle-hold time after an error (e.g. 5 s); doubles per consecutive error up to
    /// [`MAX_BACKOFF_FACTOR`]×, reset after a session stayed Established
    /// [`BACKOFF_RESET_AFTER`].
    pub idle_hold: Duration,
}

/// Which of the peer's two possible TCP connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnId {
    /// We connected to the peer.
    Out,
    /// The peer connected to us.
    In,
}

impl ConnId {
    /// Both connections, outgoing first.
    pub const BOTH: [ConnId; 2] = [ConnId::Out, ConnId::In];

    /// The other connection.
    pub fn other(self) -> ConnId {
        match self {
            ConnId::Out => ConnId::In,
            ConnId::In => ConnId::Out,
        }
    }

    fn index(self) -> usize {
        match self {
            ConnId::Out => 0,
            ConnId::In => 1,
        }
    }
}

/// Timers the driver runs for the FSM. `StartTimer` (re)arms one, replacing an armed instance;
/// after `StopTimer` the driver must not deliver that timer's expiry. Expiries of timers that
/// are not armed are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// RFC 4271 ConnectRetryTimer: the next outgoing attempt, or the end of a slow one.
    ConnectRetry,
    /// Idle-hold back-off after an error; its expiry restarts the peer automatically.
    IdleHold,
    /// Armed on Established; its expiry forgets the idle-hold back-off.
    BackoffReset,
    /// RFC 4271 HoldTimer of one connection.
    Hold(ConnId),
    /// RFC 4271 KeepaliveTimer of one connection.
    Keepalive(ConnId),
}

/// Events the driver feeds to [`PeerFsm::process`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// ManualStart / AutomaticStart (RFC 4271 events 1, 3). Ignored when already started.
    Start,
    /// ManualStop (event 2) with the Cease to send on every open connection; the peer stays
    /// Idle until the next `Start`.
    Stop(Notification),
    /// Our outgoing TCP connection completed (Tcp_CR_Acked, event 16).
    ConnectSucceeded,
    /// Our outgoing TCP connection failed (TcpConnectionFails, event 18); the text (e.g.
    /// `Connection refused`) becomes the last error.
    ConnectFailed(String),
    /// A TCP connection from the peer arrived (TcpConnectionConfirmed, event 17). The FSM
    /// answers `Reject`, or adopts it as [`ConnId::In`] and sends an OPEN on it.
    Accepted,
    /// The connection was closed or reset by the peer, or a read/write failed (event 18); the
    /// text (e.g. `Connection closed`, `Connection reset by peer`) becomes the last error. The
    /// driver has already dropped the socket: no `Close` follows.
    Closed(ConnId, String),
    /// A decoded message. For UPDATE, pass `Message::Update(UpdateMsg::default())`: the FSM only
    /// restarts the hold timer with it (or refuses it before Established); the driver hands the
    /// real content to the RIB only when `established_conn() == Some(conn)` after this call.
    Message(ConnId, Message),
    /// The codec refused a message (header, OPEN or UPDATE error): the NOTIFICATION to send
    /// before closing that connection.
    DecodeError(ConnId, Notification),
    /// A timer armed with `StartTimer` expired.
    TimerExpired(Timer),
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Start an outgoing TCP connection (answer with `ConnectSucceeded` or `ConnectFailed`).
    Connect,
    /// Close that connection after writing any `Send` queued before it; for `Out` while a
    /// connect is in flight, abandon the attempt.
    Close(ConnId),
    /// Refuse the incoming connection just reported by `Accepted` (close it).
    Reject,
    /// Write this OPEN, KEEPALIVE or NOTIFICATION on that connection.
    Send(ConnId, Message),
    /// Arm (or re-arm) a timer.
    StartTimer(Timer, Duration),
    /// Cancel a timer.
    StopTimer(Timer),
    /// The peer's displayed state (the most advanced of its connections) changed.
    StateChanged {
        /// Previous state.
        from: SessionState,
        /// New state.
        to: SessionState,
    },
    /// The session is up on `conn`: encode and decode with `negotiated.codec` from now on.
    Established {
        /// The connection carrying the session.
        conn: ConnId,
        /// What the two sides agreed on.
        negotiated: Negotiated,
    },
    /// The Established session went down (only ever after `Established`).
    SessionDown {
        /// Why, as shown to the user.
        reason: DownReason,
    },
    /// The peer asked for a re-advertisement (RFC 2918) or marks a refresh (RFC 7313 BoRR/EoRR).
    RouteRefresh(RouteRefreshMsg),
}

/// Why a connection or session ended, displayed the way BIRD shows its last error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION (hold timer expiry, decode error, FSM or OPEN error).
    Sent(Notification),
    /// The peer sent this NOTIFICATION.
    Received(Notification),
    /// The TCP connection failed or was closed (the driver's text).
    Socket(String),
    /// Stopped locally; this Cease was sent.
    Stopped(Notification),
}

impl fmt::Display for DownReason {
    /// `Received: Cease/Administrative Shutdown (6/2)`, `Socket: Connection refused`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Sent(n) => write!(f, "Sent: {n}"),
            DownReason::Received(n) => write!(f, "Received: {n}"),
            DownReason::Socket(text) => write!(f, "Socket: {text}"),
            DownReason::Stopped(n) => write!(f, "Stopped: {n}"),
        }
    }
}

/// The state of one open TCP connection; what was agreed travels with it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ConnState {
    /// Our OPEN sent, the peer's not yet received.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm(Negotiated),
    /// Up.
    Established(Negotiated),
}

impl ConnState {
    fn session_state(&self) -> SessionState {
        match self {
            ConnState::OpenSent => SessionState::OpenSent,
            ConnState::OpenConfirm(_) => SessionState::OpenConfirm,
            ConnState::Established(_) => SessionState::Established,
        }
    }

    fn negotiated(&self) -> Option<&Negotiated> {
        match self {
            ConnState::OpenSent => None,
            ConnState::OpenConfirm(n) | ConnState::Established(n) => Some(n),
        }
    }
}

/// The outgoing side before a connection exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// Not connecting (passive, stopped, backing off, or the peer's connection is preferred).
    None,
    /// A connect is in flight (RFC state Connect); ConnectRetry bounds it.
    Connecting,
    /// The last connect failed; ConnectRetry starts the next (RFC state Active).
    Retrying,
}

/// One configured peer: its session state and its (at most two) connections.
#[derive(Clone, Debug)]
pub struct PeerFsm {
    cfg: FsmConfig,
    /// Our OPEN, built once.
    open: OpenMsg,
    /// Started (ManualStart) and not stopped since.
    running: bool,
    attempt: Attempt,
    /// Indexed by [`ConnId::index`].
    conns: [Option<ConnState>; 2],
    /// The current idle-hold back-off; zero after a start or a stable session.
    backoff: Duration,
    /// Timers armed and not yet expired or stopped.
    armed: BTreeSet<Timer>,
    /// The state last reported with `StateChanged`.
    shown: SessionState,
    last_error: Option<String>,
}

impl PeerFsm {
    /// A stopped peer (Idle); feed it `Input::Start`.
    pub fn new(cfg: FsmConfig) -> Self {
        let open = cfg.local.to_open();
        PeerFsm {
            cfg,
            open,
            running: false,
            attempt: Attempt::None,
            conns: [None, None],
            backoff: Duration::ZERO,
            armed: BTreeSet::new(),
            shown: SessionState::Idle,
            last_error: None,
        }
    }

    /// Handle one event; the outputs are to be carried out in order. Never panics.
    pub fn process(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.on_start(&mut out),
            Input::Stop(n) => self.on_stop(n, &mut out),
            Input::ConnectSucceeded => self.on_connect_succeeded(&mut out),
            Input::ConnectFailed(text) => self.on_connect_failed(text, &mut out),
            Input::Accepted => self.on_accepted(&mut out),
            Input::Closed(c, text) => self.on_closed(c, text, &mut out),
            Input::Message(c, msg) => self.on_message(c, msg, &mut out),
            Input::DecodeError(c, n) => {
                if self.conn(c).is_some() {
                    self.fail_with(c, n, &mut out);
                }
            }
            Input::TimerExpired(t) => self.on_timer(t, &mut out),
        }
        let now = self.state();
        if now != self.shown {
            out.push(Output::StateChanged {
                from: self.shown,
                to: now,
            });
            self.shown = now;
        }
        out
    }

    /// The peer's state: the most advanced of its connections, else Connect while a connect is
    /// in flight, Idle while stopped or backing off, Active otherwise.
    pub fn state(&self) -> SessionState {
        let best = self
            .conns
            .iter()
            .flatten()
            .map(ConnState::session_state)
            .max();
        if let Some(s) = best {
            return s;
        }
        if !self.running || self.armed.contains(&Timer::IdleHold) {
            return SessionState::Idle;
        }
        match self.attempt {
            Attempt::Connecting => SessionState::Connect,
            Attempt::Retrying | Attempt::None => SessionState::Active,
        }
    }

    /// The state of one connection, if it is open.
    pub fn connection_state(&self, c: ConnId) -> Option<SessionState> {
        self.conn(c).map(ConnState::session_state)
    }

    /// The last error, BIRD style (`Socket: Connection refused`, `Received: …`, `Sent: …`).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// What the Established session agreed on.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        let c = self.established_conn()?;
        self.conn(c).and_then(ConnState::negotiated)
    }

    /// The connection carrying the Established session.
    pub fn established_conn(&self) -> Option<ConnId> {
        ConnId::BOTH
            .into_iter()
            .find(|&c| matches!(self.conn(c), Some(ConnState::Established(_))))
    }

    /// The configuration.
    pub fn config(&self) -> &FsmConfig {
        &self.cfg
    }

    // ===== events =====

    fn on_start(&mut self, out: &mut Vec<Output>) {
        if self.running {
            return;
        }
        self.running = true;
        self.backoff = Duration::ZERO;
        self.begin(out);
    }

    fn on_stop(&mut self, cease: Notification, out: &mut Vec<Output>) {
        let was_established = self.established_conn().is_some();
        self.running = false;
        self.backoff = Duration::ZERO;
        self.stop_attempts(out);
        for c in ConnId::BOTH {
            if self.conn(c).is_some() {
                out.push(Output::Send(c, Message::Notification(cease.clone())));
                self.drop_conn(c, true, out);
            }
        }
        self.disarm(Timer::IdleHold, out);
        self.disarm(Timer::BackoffReset, out);
        if was_established {
            out.push(Output::SessionDown {
                reason: DownReason::Stopped(cease),
            });
        }
    }

    fn on_connect_succeeded(&mut self, out: &mut Vec<Output>) {
        if self.attempt == Attempt::Connecting {
            self.attempt = Attempt::None;
            self.disarm(Timer::ConnectRetry, out);
            self.open_conn(ConnId::Out, out);
        } else if self.conn(ConnId::Out).is_none() {
            // An attempt we abandoned completed anyway: make sure the driver drops it.
            out.push(Output::Close(ConnId::Out));
        }
    }

    fn on_connect_failed(&mut self, text: String, out: &mut Vec<Output>) {
        if self.attempt != Attempt::Connecting {
            return;
        }
        // RFC 4271 §8.2.2 Connect, event 18: restart ConnectRetry, go to Active.
        self.attempt = Attempt::Retrying;
        self.arm(Timer::ConnectRetry, self.cfg.connect_retry, out);
        self.record_error(&DownReason::Socket(text));
    }

    fn on_accepted(&mut self, out: &mut Vec<Output>) {
        // BIRD keeps a single incoming connection; §6.8: an Established session wins.
        if !self.running || self.conn(ConnId::In).is_some() || self.established_conn().is_some() {
            out.push(Output::Reject);
            return;
        }
        self.open_conn(ConnId::In, out);
    }

    fn on_closed(&mut self, c: ConnId, text: String, out: &mut Vec<Output>) {
        if self.conn(c).is_some() {
            self.conn_failed(c, DownReason::Socket(text), false, out);
        } else if c == ConnId::Out {
            self.on_connect_failed(text, out);
        }
    }

    fn on_message(&mut self, c: ConnId, msg: Message, out: &mut Vec<Output>) {
        let Some(state) = self.conn(c) else {
            return;
        };
        match (state, msg) {
            (_, Message::Notification(n)) => {
                self.conn_failed(c, DownReason::Received(n), true, out)
            }
            (ConnState::OpenSent, Message::Open(open)) => self.on_open(c, &open, out),
            // RFC 6608: unexpected message in OpenSent.
            (ConnState::OpenSent, _) => self.fail_with(
                c,
                Notification::fsm_error(fsm::UNEXPECTED_IN_OPEN_SENT),
                out,
            ),
            (ConnState::OpenConfirm(_), Message::Keepalive) => self.on_established(c, out),
            (ConnState::OpenConfirm(_), _) => self.fail_with(
                c,
                Notification::fsm_error(fsm::UNEXPECTED_IN_OPEN_CONFIRM),
                out,
            ),
            (ConnState::Established(_), Message::Open(_)) => self.fail_with(
                c,
                Notification::fsm_error(fsm::UNEXPECTED_IN_ESTABLISHED),
                out,
            ),
            (ConnState::Established(n), Message::RouteRefresh(rr)) => {
                let wanted = route_refresh_wanted(n, &rr);
                self.restart_hold(c, out);
                if wanted {
                    out.push(Output::RouteRefresh(rr));
                }
            }
            (ConnState::Established(_), Message::Keepalive | Message::Update(_)) => {
                self.restart_hold(c, out)
            }
        }
    }

    /// OPEN in OpenSent (RFC 4271 §8.2.2 event 19), with collision detection (§6.8).
    fn on_open(&mut self, c: ConnId, open: &OpenMsg, out: &mut Vec<Output>) {
        let negotiated =
            match negotiate(&self.cfg.local, self.cfg.peer_asn, self.cfg.keepalive, open) {
                Ok(n) => n,
                Err(n) => return self.fail_with(c, n, out),
            };
        let other = c.other();
        match self.conn(other) {
            None => {}
            // §6.8: a collision with an Established session closes the new connection.
            Some(ConnState::Established(_)) => return self.close_collision(c, out),
            Some(_) => {
                let keep = if self.locally_dominant(&negotiated) {
                    ConnId::Out
                } else {
                    ConnId::In
                };
                if keep != c {
                    return self.close_collision(c, out);
                }
                self.close_collision(other, out);
            }
        }
        let hold = negotiated.hold_time;
        let keepalive = negotiated.keepalive;
        self.set_conn(c, Some(ConnState::OpenConfirm(negotiated)));
        out.push(Output::Send(c, Message::Keepalive));
        if hold > 0 {
            self.arm(Timer::Hold(c), secs(hold), out);
            self.arm(Timer::Keepalive(c), secs(keepalive), out);
        } else {
            // RFC 4271 §4.2: a zero hold time means no hold and no keepalive timers.
            self.disarm(Timer::Hold(c), out);
        }
        if c == ConnId::In {
            // The peer's connection is progressing: stop connecting (as BIRD does).
            self.stop_attempts(out);
        }
    }

    /// KEEPALIVE in OpenConfirm (RFC 4271 §8.2.2 event 26).
    fn on_established(&mut self, c: ConnId, out: &mut Vec<Output>) {
        let Some(ConnState::OpenConfirm(negotiated)) = self.conns[c.index()].take() else {
            return;
        };
        self.set_conn(c, Some(ConnState::Established(negotiated.clone())));
        self.restart_hold(c, out);
        self.arm(Timer::BackoffReset, BACKOFF_RESET_AFTER, out);
        // §6.8: the Established session wins over a connection still in OpenSent.
        if self.conn(c.other()).is_some() {
            self.close_collision(c.other(), out);
        }
        self.stop_attempts(out);
        out.push(Output::Established {
            conn: c,
            negotiated,
        });
    }

    fn on_timer(&mut self, t: Timer, out: &mut Vec<Output>) {
        if !self.armed.remove(&t) {
            return;
        }
        match t {
            Timer::ConnectRetry => match self.attempt {
                // RFC 4271 §8.2.2 Connect, event 9: drop the attempt and connect again.
                Attempt::Connecting => {
                    out.push(Output::Close(ConnId::Out));
                    self.connect(out);
                }
                // Active, event 9: connect again.
                Attempt::Retrying => self.connect(out),
                Attempt::None => {}
            },
            Timer::IdleHold => {
                if self.running {
                    self.begin(out);
                }
            }
            Timer::BackoffReset => self.backoff = Duration::ZERO,
            Timer::Hold(c) => {
                if self.conn(c).is_some() {
                    self.fail_with(c, Notification::hold_timer_expired(), out);
                }
            }
            Timer::Keepalive(c) => {
                if let Some(keepalive) = self
                    .conn(c)
                    .and_then(ConnState::negotiated)
                    .map(|n| n.keepalive)
                {
                    out.push(Output::Send(c, Message::Keepalive));
                    self.arm(Timer::Keepalive(c), secs(keepalive), out);
                }
            }
        }
    }

    // ===== actions =====

    /// (Automatic) start: connect unless passive, already connecting, or a connection has
    /// already received the peer's OPEN.
    fn begin(&mut self, out: &mut Vec<Output>) {
        let progressing = self
            .conns
            .iter()
            .flatten()
            .any(|s| !matches!(s, ConnState::OpenSent));
        if self.cfg.passive
            || progressing
            || self.attempt != Attempt::None
            || self.conn(ConnId::Out).is_some()
        {
            return;
        }
        self.connect(out);
    }

    fn connect(&mut self, out: &mut Vec<Output>) {
        out.push(Output::Connect);
        self.attempt = Attempt::Connecting;
        self.arm(Timer::ConnectRetry, self.cfg.connect_retry, out);
    }

    /// Abandon outgoing attempts (a connect in flight is closed).
    fn stop_attempts(&mut self, out: &mut Vec<Output>) {
        if self.attempt == Attempt::Connecting {
            out.push(Output::Close(ConnId::Out));
        }
        self.attempt = Attempt::None;
        self.disarm(Timer::ConnectRetry, out);
    }

    /// A new TCP connection: send our OPEN and arm the large OpenSent hold timer (§8.2.2).
    fn open_conn(&mut self, c: ConnId, out: &mut Vec<Output>) {
        self.set_conn(c, Some(ConnState::OpenSent));
        out.push(Output::Send(c, Message::Open(self.open.clone())));
        self.arm(Timer::Hold(c), OPEN_SENT_HOLD_TIME, out);
    }

    /// Send a NOTIFICATION for an error on `c`, close it, and handle the loss.
    fn fail_with(&mut self, c: ConnId, n: Notification, out: &mut Vec<Output>) {
        out.push(Output::Send(c, Message::Notification(n.clone())));
        self.conn_failed(c, DownReason::Sent(n), true, out);
    }

    /// Close the losing connection of a collision with Cease/Connection Collision Resolution.
    fn close_collision(&mut self, c: ConnId, out: &mut Vec<Output>) {
        let n = Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION);
        out.push(Output::Send(c, Message::Notification(n)));
        self.drop_conn(c, true, out);
    }

    /// Connection `c` is lost through an error: report a lost session, record the error, and
    /// back off when the peer has nothing else left.
    fn conn_failed(&mut self, c: ConnId, reason: DownReason, close: bool, out: &mut Vec<Output>) {
        let was_established = matches!(self.conn(c), Some(ConnState::Established(_)));
        self.drop_conn(c, close, out);
        if was_established {
            self.disarm(Timer::BackoffReset, out);
            out.push(Output::SessionDown {
                reason: reason.clone(),
            });
        }
        self.record_error(&reason);
        let alive = self.conns.iter().any(Option::is_some) || self.attempt != Attempt::None;
        if self.running && !alive {
            self.back_off(out);
        }
    }

    /// Forget connection `c` and its timers; `close` tells the driver to close it.
    fn drop_conn(&mut self, c: ConnId, close: bool, out: &mut Vec<Output>) {
        self.set_conn(c, None);
        self.disarm(Timer::Hold(c), out);
        self.disarm(Timer::Keepalive(c), out);
        if close {
            out.push(Output::Close(c));
        }
    }

    /// Idle, then restart after the back-off: base, doubling per consecutive error, capped.
    fn back_off(&mut self, out: &mut Vec<Output>) {
        self.stop_attempts(out);
        let base = self.cfg.idle_hold;
        self.backoff = if self.backoff.is_zero() {
            base
        } else {
            (self.backoff * 2).min(base * MAX_BACKOFF_FACTOR)
        };
        self.arm(Timer::IdleHold, self.backoff, out);
    }

    fn restart_hold(&mut self, c: ConnId, out: &mut Vec<Output>) {
        let hold = self
            .conn(c)
            .and_then(ConnState::negotiated)
            .map(|n| n.hold_time);
        if let Some(hold) = hold.filter(|&h| h > 0) {
            self.arm(Timer::Hold(c), secs(hold), out);
        }
    }

    /// Errors on a secondary connection while a session is up do not replace the last error.
    fn record_error(&mut self, reason: &DownReason) {
        if self.established_conn().is_none() {
            self.last_error = Some(reason.to_string());
        }
    }

    /// RFC 4271 §6.8 with RFC 6286 §2.3: the higher BGP Identifier (as a host-order u32) is
    /// dominant; with equal identifiers, the larger AS.
    fn locally_dominant(&self, peer: &Negotiated) -> bool {
        let local = u32::from(self.cfg.local.router_id);
        let remote = u32::from(peer.peer_id);
        local > remote || (local == remote && self.cfg.local.asn > peer.peer_asn)
    }

    fn arm(&mut self, t: Timer, d: Duration, out: &mut Vec<Output>) {
        self.armed.insert(t);
        out.push(Output::StartTimer(t, d));
    }

    fn disarm(&mut self, t: Timer, out: &mut Vec<Output>) {
        if self.armed.remove(&t) {
            out.push(Output::StopTimer(t));
        }
    }

    fn conn(&self, c: ConnId) -> Option<&ConnState> {
        self.conns[c.index()].as_ref()
    }

    fn set_conn(&mut self, c: ConnId, state: Option<ConnState>) {
        self.conns[c.index()] = state;
    }
}

/// Whether a ROUTE-REFRESH is passed on: only for a negotiated family (RFC 2918 §4), and
/// BoRR/EoRR only when Enhanced Route Refresh was negotiated (RFC 7313 §5); others are ignored.
fn route_refresh_wanted(n: &Negotiated, rr: &RouteRefreshMsg) -> bool {
    let family_ok = rr
        .afi_safi
        .family()
        .is_some_and(|f| n.families.contains(&f));
    let subtype_ok = match rr.subtype {
        0 => true,
        1 | 2 => n.enhanced_route_refresh,
        _ => false,
    };
    family_ok && subtype_ok
}

fn secs(s: u16) -> Duration {
    Duration::from_secs(u64::from(s))
}
