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
//! is sent as soon as a connection exists. Collisions keep the connection opened by the side with
//! the higher BGP Identifier (the larger AS on a tie); an Established session always wins. The
//! dominant side resolves as soon as an OPEN tells it the peer's identifier while its own
//! connection exists; the other side resolves only when both of its connections have received an
//! OPEN, because the dominant side abandons an outgoing connect still in flight once its incoming
//! connection has received an OPEN (as BIRD does) — the back-to-back simulation in the tests shows
//! this ends in one session without a flap where the other combinations do not. An incoming
//! connection is accepted while Idle between retries (not while stopped) and refused while
//! another incoming one exists or a session is Established. With a zero hold time, OpenConfirm
//! keeps the 4-minute OpenSent hold timer so a peer that never sends its KEEPALIVE cannot hold a
//! connection forever. After an error the peer waits an idle-hold time that doubles per
//! consecutive error up to 8× and is forgotten once a session has stayed Established for
//! [`BACKOFF_RESET_AFTER`].

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
        if self.conns.iter().all(Option::is_none) {
            self.last_error = Some(DownReason::Socket(text).to_string());
        }
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
                // Not required by RFC 4271, but the peer is evidently alive.
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
        // §6.8: the connection opened by the dominant side is the one both sides keep.
        let keep = if self.locally_dominant(&negotiated) {
            ConnId::Out
        } else {
            ConnId::In
        };
        match self.conn(other) {
            None => {}
            // §6.8: a collision with an Established session closes the new connection.
            Some(ConnState::Established(_)) => return self.close_collision(c, out),
            // Only the dominant side resolves before the second OPEN: the peer may still
            // abandon a connect we already accepted, so we must not bet on it yet.
            Some(ConnState::OpenSent) if keep == ConnId::In => {}
            Some(_) => {
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
        // RFC 4271 §4.2: a zero hold time means no hold and no keepalive timers once up; until
        // the KEEPALIVE arrives the OpenSent hold timer stays, so a silent peer cannot wedge us.
        if hold > 0 {
            self.arm(Timer::Hold(c), secs(hold), out);
            self.arm(Timer::Keepalive(c), secs(keepalive), out);
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

    /// Connection `c` is lost through an error: report a lost session, and record the error and
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
        let alive = self.conns.iter().any(Option::is_some) || self.attempt != Attempt::None;
        // Only what leaves the peer down is its last error, not a spare connection's end.
        if was_established || !alive {
            self.last_error = Some(reason.to_string());
        }
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

    /// Restart the hold timer of `c`; with a zero hold time, make sure none runs.
    fn restart_hold(&mut self, c: ConnId, out: &mut Vec<Output>) {
        match self
            .conn(c)
            .and_then(ConnState::negotiated)
            .map(|n| n.hold_time)
        {
            Some(0) => self.disarm(Timer::Hold(c), out),
            Some(hold) => self.arm(Timer::Hold(c), secs(hold), out),
            None => {}
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::packet::notification::{code, update};
    use crate::packet::{AfiSafi, Capability, UpdateMsg};
    use crate::types::Family;

    const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const LOCAL_AS: Asn = 64512;
    const PEER_AS: Asn = 65001;
    /// Higher than ours: the peer is dominant, its connection (In) wins collisions.
    const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    /// Lower than ours: we are dominant, our connection (Out) wins collisions.
    const LOW_PEER_ID: Ipv4Addr = Ipv4Addr::new(9, 0, 0, 1);

    use ConnId::{In, Out};
    use SessionState::{Active, Connect, Established, Idle, OpenConfirm, OpenSent};

    fn cfg(passive: bool) -> FsmConfig {
        FsmConfig {
            local: LocalOpen::new(LOCAL_AS, LOCAL_ID, 90, vec![Family::Ipv4Unicast]),
            peer_asn: PEER_AS,
            passive,
            connect_retry: Duration::from_secs(5),
            keepalive: None,
            idle_hold: Duration::from_secs(5),
        }
    }

    fn peer_open_with(id: Ipv4Addr, hold: u16) -> OpenMsg {
        OpenMsg {
            version: 4,
            my_as: PEER_AS as u16,
            hold_time: hold,
            bgp_id: id,
            capabilities: vec![
                Capability::MultiProtocol(AfiSafi::of(Family::Ipv4Unicast)),
                Capability::RouteRefresh,
                Capability::FourOctetAs(PEER_AS),
            ],
        }
    }

    fn peer_open(id: Ipv4Addr) -> Message {
        Message::Open(peer_open_with(id, 90))
    }

    fn negotiated(id: Ipv4Addr) -> Negotiated {
        negotiate(&cfg(false).local, PEER_AS, None, &peer_open_with(id, 90)).unwrap()
    }

    fn our_open() -> Message {
        Message::Open(cfg(false).local.to_open())
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn start(t: Timer, d: Duration) -> Output {
        Output::StartTimer(t, d)
    }

    fn stop(t: Timer) -> Output {
        Output::StopTimer(t)
    }

    fn send(c: ConnId, m: Message) -> Output {
        Output::Send(c, m)
    }

    fn notify(c: ConnId, n: Notification) -> Output {
        Output::Send(c, Message::Notification(n))
    }

    fn changed(from: SessionState, to: SessionState) -> Output {
        Output::StateChanged { from, to }
    }

    fn down(reason: DownReason) -> Output {
        Output::SessionDown { reason }
    }

    fn collision() -> Notification {
        Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION)
    }

    fn admin_shutdown() -> Notification {
        Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN)
    }

    fn update() -> Message {
        Message::Update(UpdateMsg::default())
    }

    fn rr(family: Family, subtype: u8) -> RouteRefreshMsg {
        RouteRefreshMsg {
            afi_safi: AfiSafi::of(family),
            subtype,
        }
    }

    /// Canned starting points, each reached through real inputs.
    #[derive(Clone, Copy, Debug)]
    enum Setup {
        Stopped,
        StoppedPassive,
        Connect,
        Active,
        Passive,
        OpenSentOut,
        OpenConfirmOut,
        EstablishedOut,
        OpenSentIn,
        ConnectWithIn,
        Backoff,
        BackoffPassive,
    }

    fn fsm_in(setup: Setup) -> PeerFsm {
        use Input::*;
        let (passive, inputs, expect) = match setup {
            Setup::Stopped => (false, vec![], Idle),
            Setup::StoppedPassive => (true, vec![], Idle),
            Setup::Connect => (false, vec![Start], Connect),
            Setup::Active => (
                false,
                vec![Start, ConnectFailed("Connection refused".into())],
                Active,
            ),
            Setup::Passive => (true, vec![Start], Active),
            Setup::OpenSentOut => (false, vec![Start, ConnectSucceeded], OpenSent),
            Setup::OpenConfirmOut => (
                false,
                vec![Start, ConnectSucceeded, Message(Out, peer_open(PEER_ID))],
                OpenConfirm,
            ),
            Setup::EstablishedOut => (
                false,
                vec![
                    Start,
                    ConnectSucceeded,
                    Message(Out, peer_open(PEER_ID)),
                    Message(Out, crate::packet::Message::Keepalive),
                ],
                Established,
            ),
            Setup::OpenSentIn => (true, vec![Start, Accepted], OpenSent),
            Setup::ConnectWithIn => (false, vec![Start, Accepted], OpenSent),
            Setup::Backoff => (
                false,
                vec![
                    Start,
                    ConnectSucceeded,
                    Closed(Out, "Connection reset by peer".into()),
                ],
                Idle,
            ),
            Setup::BackoffPassive => (
                true,
                vec![
                    Start,
                    Accepted,
                    Closed(In, "Connection reset by peer".into()),
                ],
                Idle,
            ),
        };
        let mut f = PeerFsm::new(cfg(passive));
        for i in inputs {
            f.process(i);
        }
        assert_eq!(f.state(), expect, "setup {setup:?}");
        f
    }

    struct Row {
        arm: &'static str,
        setup: Setup,
        input: Input,
        state: SessionState,
        outputs: Vec<Output>,
    }

    fn row(
        arm: &'static str,
        setup: Setup,
        input: Input,
        state: SessionState,
        outputs: Vec<Output>,
    ) -> Row {
        Row {
            arm,
            setup,
            input,
            state,
            outputs,
        }
    }

    fn run_table(rows: Vec<Row>) {
        for r in rows {
            let mut f = fsm_in(r.setup);
            let got = f.process(r.input.clone());
            assert_eq!(got, r.outputs, "{}: {:?} + {:?}", r.arm, r.setup, r.input);
            assert_eq!(f.state(), r.state, "{}: state", r.arm);
        }
    }

    #[test]
    fn idle_table() {
        use Input::*;
        run_table(vec![
            row(
                "§8.2.2 Idle, ManualStart (1): connect, arm ConnectRetry, Connect",
                Setup::Stopped,
                Start,
                Connect,
                vec![
                    Output::Connect,
                    start(Timer::ConnectRetry, s(5)),
                    changed(Idle, Connect),
                ],
            ),
            row(
                "§8.2.2 Idle, ManualStart_with_PassiveTcpEstablishment (4): Active",
                Setup::StoppedPassive,
                Start,
                Active,
                vec![changed(Idle, Active)],
            ),
            row(
                "§8.2.2 Idle (stopped): incoming connections are refused",
                Setup::Stopped,
                Accepted,
                Idle,
                vec![Output::Reject],
            ),
            row(
                "Idle (stopped): a stray outgoing connection is closed",
                Setup::Stopped,
                ConnectSucceeded,
                Idle,
                vec![Output::Close(Out)],
            ),
            row(
                "§8.2.2 Idle, ManualStop (2): ignored",
                Setup::Stopped,
                Stop(admin_shutdown()),
                Idle,
                vec![],
            ),
            row(
                "§8.2.2 Idle, other events: ignored (timer)",
                Setup::Stopped,
                TimerExpired(Timer::Hold(Out)),
                Idle,
                vec![],
            ),
            row(
                "§8.2.2 Idle, other events: ignored (message)",
                Setup::Stopped,
                Message(In, crate::packet::Message::Keepalive),
                Idle,
                vec![],
            ),
            row(
                "Idle after an error, IdleHold expiry (AutomaticStart, 3): connect",
                Setup::Backoff,
                TimerExpired(Timer::IdleHold),
                Connect,
                vec![
                    Output::Connect,
                    start(Timer::ConnectRetry, s(5)),
                    changed(Idle, Connect),
                ],
            ),
            row(
                "Idle after an error, passive: IdleHold expiry → Active",
                Setup::BackoffPassive,
                TimerExpired(Timer::IdleHold),
                Active,
                vec![changed(Idle, Active)],
            ),
            row(
                "Idle after an error (not stopped): an incoming connection is accepted",
                Setup::Backoff,
                Accepted,
                OpenSent,
                vec![
                    send(In, our_open()),
                    start(Timer::Hold(In), OPEN_SENT_HOLD_TIME),
                    changed(Idle, OpenSent),
                ],
            ),
            row(
                "Idle after an error: Start does not cut the back-off short",
                Setup::Backoff,
                Start,
                Idle,
                vec![],
            ),
            row(
                "Idle after an error: Stop cancels the back-off",
                Setup::Backoff,
                Stop(admin_shutdown()),
                Idle,
                vec![stop(Timer::IdleHold)],
            ),
        ]);
    }

    #[test]
    fn connect_and_active_table() {
        use Input::*;
        run_table(vec![
            row(
                "§8.2.2 Connect, Tcp_CR_Acked (16): stop ConnectRetry, send OPEN, hold 4 min",
                Setup::Connect,
                ConnectSucceeded,
                OpenSent,
                vec![
                    stop(Timer::ConnectRetry),
                    send(Out, our_open()),
                    start(Timer::Hold(Out), OPEN_SENT_HOLD_TIME),
                    changed(Connect, OpenSent),
                ],
            ),
            row(
                "§8.2.2 Connect, TcpConnectionFails (18): restart ConnectRetry, Active",
                Setup::Connect,
                ConnectFailed("Connection refused".into()),
                Active,
                vec![start(Timer::ConnectRetry, s(5)), changed(Connect, Active)],
            ),
            row(
                "Connect: a close of the attempt counts as a failed connect",
                Setup::Connect,
                Closed(Out, "Connection refused".into()),
                Active,
                vec![start(Timer::ConnectRetry, s(5)), changed(Connect, Active)],
            ),
            row(
                "§8.2.2 Connect, ConnectRetryTimer_Expires (9): drop and reconnect",
                Setup::Connect,
                TimerExpired(Timer::ConnectRetry),
                Connect,
                vec![
                    Output::Close(Out),
                    Output::Connect,
                    start(Timer::ConnectRetry, s(5)),
                ],
            ),
            row(
                "§8.2.2 Connect, TcpConnectionConfirmed (17): accept, send OPEN",
                Setup::Connect,
                Accepted,
                OpenSent,
                vec![
                    send(In, our_open()),
                    start(Timer::Hold(In), OPEN_SENT_HOLD_TIME),
                    changed(Connect, OpenSent),
                ],
            ),
            row(
                "§8.2.2 Connect, ManualStop (2): drop the attempt, Idle",
                Setup::Connect,
                Stop(admin_shutdown()),
                Idle,
                vec![
                    Output::Close(Out),
                    stop(Timer::ConnectRetry),
                    changed(Connect, Idle),
                ],
            ),
            row(
                "§8.2.2 Connect, ManualStart (1): ignored",
                Setup::Connect,
                Start,
                Connect,
                vec![],
            ),
            row(
                "§8.2.2 Active, ConnectRetryTimer_Expires (9): connect, Connect",
                Setup::Active,
                TimerExpired(Timer::ConnectRetry),
                Connect,
                vec![
                    Output::Connect,
                    start(Timer::ConnectRetry, s(5)),
                    changed(Active, Connect),
                ],
            ),
            row(
                "§8.2.2 Active, TcpConnectionConfirmed (17): accept, send OPEN",
                Setup::Active,
                Accepted,
                OpenSent,
                vec![
                    send(In, our_open()),
                    start(Timer::Hold(In), OPEN_SENT_HOLD_TIME),
                    changed(Active, OpenSent),
                ],
            ),
            row(
                "§8.2.2 Active, ManualStop (2): Idle",
                Setup::Active,
                Stop(admin_shutdown()),
                Idle,
                vec![stop(Timer::ConnectRetry), changed(Active, Idle)],
            ),
            row(
                "Active: a late ConnectFailed of an abandoned attempt is ignored",
                Setup::Active,
                ConnectFailed("Connection refused".into()),
                Active,
                vec![],
            ),
            row(
                "Active (passive peer), TcpConnectionConfirmed (17): accept",
                Setup::Passive,
                Accepted,
                OpenSent,
                vec![
                    send(In, our_open()),
                    start(Timer::Hold(In), OPEN_SENT_HOLD_TIME),
                    changed(Active, OpenSent),
                ],
            ),
            row(
                "Active (passive peer): a timer that is not armed is ignored",
                Setup::Passive,
                TimerExpired(Timer::ConnectRetry),
                Active,
                vec![],
            ),
        ]);
    }

    #[test]
    fn open_sent_table() {
        use Input::*;
        let bad_as = OpenMsg {
            my_as: 65002,
            capabilities: vec![Capability::FourOctetAs(65002)],
            ..peer_open_with(PEER_ID, 90)
        };
        let n_bad_as = Notification::new(code::OPEN_MESSAGE, 2, 65002u32.to_be_bytes().to_vec());
        let n_open_sent = Notification::fsm_error(fsm::UNEXPECTED_IN_OPEN_SENT);
        // The common tail of an error that leaves the peer with nothing: back off 5 s, Idle.
        let fail_tail = |mut v: Vec<Output>| {
            v.push(start(Timer::IdleHold, s(5)));
            v.push(changed(OpenSent, Idle));
            v
        };
        run_table(vec![
            row(
                "§8.2.2 OpenSent, BGPOpen (19): KEEPALIVE, negotiated hold, OpenConfirm",
                Setup::OpenSentOut,
                Message(Out, peer_open(PEER_ID)),
                OpenConfirm,
                vec![
                    send(Out, crate::packet::Message::Keepalive),
                    start(Timer::Hold(Out), s(90)),
                    start(Timer::Keepalive(Out), s(30)),
                    changed(OpenSent, OpenConfirm),
                ],
            ),
            row(
                "§8.2.2 OpenSent, BGPOpen with hold time 0: no keepalive timer; the OpenSent \
                 hold timer bounds the wait for KEEPALIVE",
                Setup::OpenSentOut,
                Message(
                    Out,
                    crate::packet::Message::Open(peer_open_with(PEER_ID, 0)),
                ),
                OpenConfirm,
                vec![
                    send(Out, crate::packet::Message::Keepalive),
                    changed(OpenSent, OpenConfirm),
                ],
            ),
            row(
                "§8.2.2 OpenSent, BGPOpen on In (passive): OpenConfirm",
                Setup::OpenSentIn,
                Message(In, peer_open(PEER_ID)),
                OpenConfirm,
                vec![
                    send(In, crate::packet::Message::Keepalive),
                    start(Timer::Hold(In), s(90)),
                    start(Timer::Keepalive(In), s(30)),
                    changed(OpenSent, OpenConfirm),
                ],
            ),
            row(
                "OpenSent, BGPOpen on In while our connect is in flight: stop connecting",
                Setup::ConnectWithIn,
                Message(In, peer_open(PEER_ID)),
                OpenConfirm,
                vec![
                    send(In, crate::packet::Message::Keepalive),
                    start(Timer::Hold(In), s(90)),
                    start(Timer::Keepalive(In), s(30)),
                    Output::Close(Out),
                    stop(Timer::ConnectRetry),
                    changed(OpenSent, OpenConfirm),
                ],
            ),
            row(
                "§8.2.2 OpenSent, BGPOpen fails checks (§6.2, event 22): NOTIFICATION, Idle",
                Setup::OpenSentOut,
                Message(Out, crate::packet::Message::Open(bad_as)),
                Idle,
                fail_tail(vec![
                    notify(Out, n_bad_as),
                    stop(Timer::Hold(Out)),
                    Output::Close(Out),
                ]),
            ),
            row(
                "§8.2.2 OpenSent, KeepAliveMsg (26): FSM error 5/1 (RFC 6608)",
                Setup::OpenSentOut,
                Message(Out, crate::packet::Message::Keepalive),
                Idle,
                fail_tail(vec![
                    notify(Out, n_open_sent.clone()),
                    stop(Timer::Hold(Out)),
                    Output::Close(Out),
                ]),
            ),
            row(
                "§8.2.2 OpenSent, UpdateMsg (27): FSM error 5/1 (RFC 6608)",
                Setup::OpenSentOut,
                Message(Out, update()),
                Idle,
                fail_tail(vec![
                    notify(Out, n_open_sent.clone()),
                    stop(Timer::Hold(Out)),
                    Output::Close(Out),
                ]),
            ),
            row(
                "§8.2.2 OpenSent, ROUTE-REFRESH: FSM error 5/1 (RFC 6608)",
                Setup::OpenSentOut,
                Message(
                    Out,
                    crate::packet::Message::RouteRefresh(rr(Family::Ipv4Unicast, 0)),
                ),
                Idle,
                fail_tail(vec![
                    notify(Out, n_open_sent),
                    stop(Timer::Hold(Out)),
                    Output::Close(Out),
                ]),
            ),
            row(
                "§8.2.2 OpenSent, NotifMsg (25): close, Idle",
                Setup::OpenSentOut,
                Message(Out, crate::packet::Message::Notification(admin_shutdown())),
                Idle,
                fail_tail(vec![stop(Timer::Hold(Out)), Output::Close(Out)]),
            ),
            row(
                "§8.2.2 OpenSent, HoldTimer_Expires (10): NOTIFICATION 4/0, Idle",
                Setup::OpenSentOut,
                TimerExpired(Timer::Hold(Out)),
                Idle,
                fail_tail(vec![
                    notify(Out, Notification::hold_timer_expired()),
                    Output::Close(Out),
                ]),
            ),
            row(
                "§8.2.2 OpenSent, TcpConnectionFails (18): Idle (RFC: Active; we back off)",
                Setup::OpenSentOut,
                Closed(Out, "Connection closed".into()),
                Idle,
                fail_tail(vec![stop(Timer::Hold(Out))]),
            ),
            row(
                "§8.2.2 OpenSent, BGPHeaderErr (21): NOTIFICATION, Idle",
                Setup::OpenSentOut,
                DecodeError(Out, Notification::new(1, 2, vec![0, 5])),
                Idle,
                fail_tail(vec![
                    notify(Out, Notification::new(1, 2, vec![0, 5])),
                    stop(Timer::Hold(Out)),
                    Output::Close(Out),
                ]),
            ),
            row(
                "§8.2.2 OpenSent, ManualStop (2): Cease, Idle, no back-off",
                Setup::OpenSentOut,
                Stop(admin_shutdown()),
                Idle,
                vec![
                    notify(Out, admin_shutdown()),
                    stop(Timer::Hold(Out)),
                    Output::Close(Out),
                    changed(OpenSent, Idle),
                ],
            ),
            row(
                "OpenSent: a keepalive timer that is not armed is ignored",
                Setup::OpenSentOut,
                TimerExpired(Timer::Keepalive(Out)),
                OpenSent,
                vec![],
            ),
            row(
                "§8.2.2 OpenSent, TcpConnectionConfirmed (17): track a second connection",
                Setup::OpenSentOut,
                Accepted,
                OpenSent,
                vec![
                    send(In, our_open()),
                    start(Timer::Hold(In), OPEN_SENT_HOLD_TIME),
                ],
            ),
            row(
                "OpenSent with an incoming connection: a second one is rejected (BIRD)",
                Setup::OpenSentIn,
                Accepted,
                OpenSent,
                vec![Output::Reject],
            ),
        ]);
    }

    #[test]
    fn open_confirm_table() {
        use Input::*;
        let n_open_confirm = Notification::fsm_error(fsm::UNEXPECTED_IN_OPEN_CONFIRM);
        let fail_tail = |mut v: Vec<Output>| {
            v.push(start(Timer::IdleHold, s(5)));
            v.push(changed(OpenConfirm, Idle));
            v
        };
        run_table(vec![
            row(
                "§8.2.2 OpenConfirm, KeepAliveMsg (26): restart hold, Established",
                Setup::OpenConfirmOut,
                Message(Out, crate::packet::Message::Keepalive),
                Established,
                vec![
                    start(Timer::Hold(Out), s(90)),
                    start(Timer::BackoffReset, BACKOFF_RESET_AFTER),
                    Output::Established {
                        conn: Out,
                        negotiated: negotiated(PEER_ID),
                    },
                    changed(OpenConfirm, Established),
                ],
            ),
            row(
                "§8.2.2 OpenConfirm, KeepaliveTimer_Expires (11): KEEPALIVE, re-arm",
                Setup::OpenConfirmOut,
                TimerExpired(Timer::Keepalive(Out)),
                OpenConfirm,
                vec![
                    send(Out, crate::packet::Message::Keepalive),
                    start(Timer::Keepalive(Out), s(30)),
                ],
            ),
            row(
                "§8.2.2 OpenConfirm, HoldTimer_Expires (10): NOTIFICATION 4/0, Idle",
                Setup::OpenConfirmOut,
                TimerExpired(Timer::Hold(Out)),
                Idle,
                fail_tail(vec![
                    notify(Out, Notification::hold_timer_expired()),
                    stop(Timer::Keepalive(Out)),
                    Output::Close(Out),
                ]),
            ),
            row(
                "§8.2.2 OpenConfirm, BGPOpen on the same connection: FSM error 5/2",
                Setup::OpenConfirmOut,
                Message(Out, peer_open(PEER_ID)),
                Idle,
                fail_tail(vec![
                    notify(Out, n_open_confirm.clone()),
                    stop(Timer::Hold(Out)),
                    stop(Timer::Keepalive(Out)),
                    Output::Close(Out),
                ]),
            ),
            row(
                "§8.2.2 OpenConfirm, UpdateMsg (27): FSM error 5/2 (RFC 6608)",
                Setup::OpenConfirmOut,
                Message(Out, update()),
                Idle,
                fail_tail(vec![
                    notify(Out, n_open_confirm),
                    stop(Timer::Hold(Out)),
                    stop(Timer::Keepalive(Out)),
                    Output::Close(Out),
                ]),
            ),
            row(
                "§8.2.2 OpenConfirm, NotifMsg (25): close, Idle",
                Setup::OpenConfirmOut,
                Message(Out, crate::packet::Message::Notification(admin_shutdown())),
                Idle,
                fail_tail(vec![
                    stop(Timer::Hold(Out)),
                    stop(Timer::Keepalive(Out)),
                    Output::Close(Out),
                ]),
            ),
            row(
                "§8.2.2 OpenConfirm, TcpConnectionFails (18): Idle",
                Setup::OpenConfirmOut,
                Closed(Out, "Connection closed".into()),
                Idle,
                fail_tail(vec![stop(Timer::Hold(Out)), stop(Timer::Keepalive(Out))]),
            ),
            row(
                "§8.2.2 OpenConfirm, ManualStop (2): Cease, Idle",
                Setup::OpenConfirmOut,
                Stop(admin_shutdown()),
                Idle,
                vec![
                    notify(Out, admin_shutdown()),
                    stop(Timer::Hold(Out)),
                    stop(Timer::Keepalive(Out)),
                    Output::Close(Out),
                    changed(OpenConfirm, Idle),
                ],
            ),
            row(
                "§8.2.2 OpenConfirm, TcpConnectionConfirmed (17): track it for collision",
                Setup::OpenConfirmOut,
                Accepted,
                OpenConfirm,
                vec![
                    send(In, our_open()),
                    start(Timer::Hold(In), OPEN_SENT_HOLD_TIME),
                ],
            ),
        ]);
    }

    #[test]
    fn established_table() {
        use Input::*;
        let n_est = Notification::fsm_error(fsm::UNEXPECTED_IN_ESTABLISHED);
        let n_upd = Notification::new(
            code::UPDATE_MESSAGE,
            update::MALFORMED_ATTRIBUTE_LIST,
            vec![],
        );
        // Leaving Established through an error: timers, SessionDown, back-off, Idle.
        let down_tail = |mut v: Vec<Output>, reason: DownReason| {
            v.push(stop(Timer::BackoffReset));
            v.push(down(reason));
            v.push(start(Timer::IdleHold, s(5)));
            v.push(changed(Established, Idle));
            v
        };
        run_table(vec![
            row(
                "§8.2.2 Established, KeepAliveMsg (26): restart hold",
                Setup::EstablishedOut,
                Message(Out, crate::packet::Message::Keepalive),
                Established,
                vec![start(Timer::Hold(Out), s(90))],
            ),
            row(
                "§8.2.2 Established, UpdateMsg (27): restart hold",
                Setup::EstablishedOut,
                Message(Out, update()),
                Established,
                vec![start(Timer::Hold(Out), s(90))],
            ),
            row(
                "§8.2.2 Established, KeepaliveTimer_Expires (11): KEEPALIVE, re-arm",
                Setup::EstablishedOut,
                TimerExpired(Timer::Keepalive(Out)),
                Established,
                vec![
                    send(Out, crate::packet::Message::Keepalive),
                    start(Timer::Keepalive(Out), s(30)),
                ],
            ),
            row(
                "§8.2.2 Established, HoldTimer_Expires (10): 4/0, close, down, Idle",
                Setup::EstablishedOut,
                TimerExpired(Timer::Hold(Out)),
                Idle,
                down_tail(
                    vec![
                        notify(Out, Notification::hold_timer_expired()),
                        stop(Timer::Keepalive(Out)),
                        Output::Close(Out),
                    ],
                    DownReason::Sent(Notification::hold_timer_expired()),
                ),
            ),
            row(
                "§8.2.2 Established, NotifMsg (25): close, down, Idle",
                Setup::EstablishedOut,
                Message(Out, crate::packet::Message::Notification(admin_shutdown())),
                Idle,
                down_tail(
                    vec![
                        stop(Timer::Hold(Out)),
                        stop(Timer::Keepalive(Out)),
                        Output::Close(Out),
                    ],
                    DownReason::Received(admin_shutdown()),
                ),
            ),
            row(
                "§8.2.2 Established, BGPOpen (19/20): FSM error 5/3 (RFC 6608)",
                Setup::EstablishedOut,
                Message(Out, peer_open(PEER_ID)),
                Idle,
                down_tail(
                    vec![
                        notify(Out, n_est.clone()),
                        stop(Timer::Hold(Out)),
                        stop(Timer::Keepalive(Out)),
                        Output::Close(Out),
                    ],
                    DownReason::Sent(n_est),
                ),
            ),
            row(
                "§8.2.2 Established, UpdateMsgErr (28): NOTIFICATION, down, Idle",
                Setup::EstablishedOut,
                DecodeError(Out, n_upd.clone()),
                Idle,
                down_tail(
                    vec![
                        notify(Out, n_upd.clone()),
                        stop(Timer::Hold(Out)),
                        stop(Timer::Keepalive(Out)),
                        Output::Close(Out),
                    ],
                    DownReason::Sent(n_upd),
                ),
            ),
            row(
                "§8.2.2 Established, TcpConnectionFails (18): down, Idle",
                Setup::EstablishedOut,
                Closed(Out, "Connection reset by peer".into()),
                Idle,
                down_tail(
                    vec![stop(Timer::Hold(Out)), stop(Timer::Keepalive(Out))],
                    DownReason::Socket("Connection reset by peer".into()),
                ),
            ),
            row(
                "§8.2.2 Established, ManualStop (2): Cease, close, down, stay Idle",
                Setup::EstablishedOut,
                Stop(admin_shutdown()),
                Idle,
                vec![
                    notify(Out, admin_shutdown()),
                    stop(Timer::Hold(Out)),
                    stop(Timer::Keepalive(Out)),
                    Output::Close(Out),
                    stop(Timer::BackoffReset),
                    down(DownReason::Stopped(admin_shutdown())),
                    changed(Established, Idle),
                ],
            ),
            row(
                "RFC 2918 Established, ROUTE-REFRESH for a negotiated family: passed on",
                Setup::EstablishedOut,
                Message(
                    Out,
                    crate::packet::Message::RouteRefresh(rr(Family::Ipv4Unicast, 0)),
                ),
                Established,
                vec![
                    start(Timer::Hold(Out), s(90)),
                    Output::RouteRefresh(rr(Family::Ipv4Unicast, 0)),
                ],
            ),
            row(
                "RFC 2918 §4: ROUTE-REFRESH for a family not negotiated is ignored",
                Setup::EstablishedOut,
                Message(
                    Out,
                    crate::packet::Message::RouteRefresh(rr(Family::Ipv6Unicast, 0)),
                ),
                Established,
                vec![start(Timer::Hold(Out), s(90))],
            ),
            row(
                "RFC 7313 §5: BoRR without Enhanced Route Refresh is ignored",
                Setup::EstablishedOut,
                Message(
                    Out,
                    crate::packet::Message::RouteRefresh(rr(Family::Ipv4Unicast, 1)),
                ),
                Established,
                vec![start(Timer::Hold(Out), s(90))],
            ),
            row(
                "§6.8 Established, TcpConnectionConfirmed (17): the new connection is refused",
                Setup::EstablishedOut,
                Accepted,
                Established,
                vec![Output::Reject],
            ),
            row(
                "Established: a stray ConnectSucceeded does not touch the live Out",
                Setup::EstablishedOut,
                ConnectSucceeded,
                Established,
                vec![],
            ),
            row(
                "Established: BackoffReset expiry changes nothing visible",
                Setup::EstablishedOut,
                TimerExpired(Timer::BackoffReset),
                Established,
                vec![],
            ),
            row(
                "§8.2.2 Established, ManualStart (1): ignored",
                Setup::EstablishedOut,
                Start,
                Established,
                vec![],
            ),
        ]);
    }

    /// Drive `f` through the inputs and return the last input's outputs.
    fn feed(f: &mut PeerFsm, inputs: Vec<Input>) -> Vec<Output> {
        let mut last = Vec::new();
        for i in inputs {
            last = f.process(i);
        }
        last
    }

    /// (name, setup inputs, input, expected state, expected outputs)
    type CollisionRow = (&'static str, Vec<Input>, Input, SessionState, Vec<Output>);

    #[test]
    fn collision_table() {
        use Input::*;
        let both_open_sent = vec![Start, ConnectSucceeded, Accepted];
        let out_confirm_in_sent = vec![
            Start,
            ConnectSucceeded,
            Message(Out, peer_open(PEER_ID)),
            Accepted,
        ];
        let out_confirm_in_sent_equal = vec![
            Start,
            ConnectSucceeded,
            Message(Out, peer_open(LOCAL_ID)),
            Accepted,
        ];
        let in_confirm_out_sent = vec![
            Start,
            ConnectSucceeded,
            Accepted,
            Message(In, peer_open(PEER_ID)),
        ];
        let out_confirm_in_sent_low = vec![
            Start,
            ConnectSucceeded,
            Message(Out, peer_open(LOW_PEER_ID)),
            Accepted,
        ];
        let ka = crate::packet::Message::Keepalive;
        let rows: Vec<CollisionRow> = vec![
            (
                "§6.8 peer dominant, OPEN on Out while In is OpenSent: wait for In's OPEN",
                both_open_sent.clone(),
                Message(Out, peer_open(PEER_ID)),
                OpenConfirm,
                vec![
                    send(Out, ka.clone()),
                    start(Timer::Hold(Out), s(90)),
                    start(Timer::Keepalive(Out), s(30)),
                    changed(OpenSent, OpenConfirm),
                ],
            ),
            (
                "§6.8 peer dominant, OPEN on In while Out is OpenSent: wait for Out's OPEN",
                both_open_sent.clone(),
                Message(In, peer_open(PEER_ID)),
                OpenConfirm,
                vec![
                    send(In, ka.clone()),
                    start(Timer::Hold(In), s(90)),
                    start(Timer::Keepalive(In), s(30)),
                    changed(OpenSent, OpenConfirm),
                ],
            ),
            (
                "§6.8 peer dominant, OPEN on Out while In is OpenConfirm: close Out",
                in_confirm_out_sent,
                Message(Out, peer_open(PEER_ID)),
                OpenConfirm,
                vec![
                    notify(Out, collision()),
                    stop(Timer::Hold(Out)),
                    Output::Close(Out),
                ],
            ),
            (
                "§6.8 we are dominant, OPEN on Out while In is OpenSent: keep Out",
                both_open_sent.clone(),
                Message(Out, peer_open(LOW_PEER_ID)),
                OpenConfirm,
                vec![
                    notify(In, collision()),
                    stop(Timer::Hold(In)),
                    Output::Close(In),
                    send(Out, ka.clone()),
                    start(Timer::Hold(Out), s(90)),
                    start(Timer::Keepalive(Out), s(30)),
                    changed(OpenSent, OpenConfirm),
                ],
            ),
            (
                "§6.8 we are dominant, OPEN on In while Out is OpenSent: close In",
                both_open_sent.clone(),
                Message(In, peer_open(LOW_PEER_ID)),
                OpenSent,
                vec![
                    notify(In, collision()),
                    stop(Timer::Hold(In)),
                    Output::Close(In),
                ],
            ),
            (
                "RFC 6286 §2.3 equal identifiers: the larger AS (the peer's) is dominant",
                out_confirm_in_sent_equal,
                Message(In, peer_open(LOCAL_ID)),
                OpenConfirm,
                vec![
                    notify(Out, collision()),
                    stop(Timer::Hold(Out)),
                    stop(Timer::Keepalive(Out)),
                    Output::Close(Out),
                    send(In, ka.clone()),
                    start(Timer::Hold(In), s(90)),
                    start(Timer::Keepalive(In), s(30)),
                ],
            ),
            (
                "§6.8 peer dominant, OPEN on In while Out is OpenConfirm: keep In",
                out_confirm_in_sent,
                Message(In, peer_open(PEER_ID)),
                OpenConfirm,
                vec![
                    notify(Out, collision()),
                    stop(Timer::Hold(Out)),
                    stop(Timer::Keepalive(Out)),
                    Output::Close(Out),
                    send(In, ka.clone()),
                    start(Timer::Hold(In), s(90)),
                    start(Timer::Keepalive(In), s(30)),
                ],
            ),
            (
                "§6.8 we are dominant, OPEN on In while Out is OpenConfirm: close In",
                out_confirm_in_sent_low.clone(),
                Message(In, peer_open(LOW_PEER_ID)),
                OpenConfirm,
                vec![
                    notify(In, collision()),
                    stop(Timer::Hold(In)),
                    Output::Close(In),
                ],
            ),
            (
                "§6.8 Established wins: reaching Established closes the OpenSent In",
                out_confirm_in_sent_low,
                Message(Out, ka.clone()),
                Established,
                vec![
                    start(Timer::Hold(Out), s(90)),
                    start(Timer::BackoffReset, BACKOFF_RESET_AFTER),
                    notify(In, collision()),
                    stop(Timer::Hold(In)),
                    Output::Close(In),
                    Output::Established {
                        conn: Out,
                        negotiated: negotiated(LOW_PEER_ID),
                    },
                    changed(OpenConfirm, Established),
                ],
            ),
            (
                "A collision loser that closes by itself leaves the winner alone (no back-off)",
                both_open_sent,
                Closed(In, "Connection closed".into()),
                OpenSent,
                vec![stop(Timer::Hold(In))],
            ),
        ];
        for (name, setup, input, state, outputs) in rows {
            let mut f = PeerFsm::new(cfg(false));
            feed(&mut f, setup);
            let got = f.process(input);
            assert_eq!(got, outputs, "{name}");
            assert_eq!(f.state(), state, "{name}: state");
            assert!(
                f.last_error().is_none(),
                "{name}: a collision is not an error"
            );
        }
    }

    #[test]
    fn backoff_doubles_to_eight_times_and_resets() {
        use Input::*;
        let mut f = PeerFsm::new(cfg(false));
        let fail = |f: &mut PeerFsm| -> Duration {
            let outs = feed(
                f,
                vec![
                    ConnectSucceeded,
                    Closed(Out, "Connection reset by peer".into()),
                ],
            );
            assert_eq!(f.state(), Idle);
            let d = outs
                .iter()
                .find_map(|o| match o {
                    Output::StartTimer(Timer::IdleHold, d) => Some(*d),
                    _ => None,
                })
                .expect("IdleHold armed");
            let restart = f.process(TimerExpired(Timer::IdleHold));
            assert!(restart.contains(&Output::Connect));
            d
        };
        f.process(Start);
        let seen: Vec<u64> = (0..6).map(|_| fail(&mut f).as_secs()).collect();
        assert_eq!(seen, vec![5, 10, 20, 40, 40, 40]);

        // A session that stayed up BACKOFF_RESET_AFTER forgets the back-off: its end is
        // the first error again.
        let outs = feed(
            &mut f,
            vec![
                ConnectSucceeded,
                Message(Out, peer_open(PEER_ID)),
                Message(Out, crate::packet::Message::Keepalive),
                TimerExpired(Timer::BackoffReset),
                Closed(Out, "Connection closed".into()),
            ],
        );
        assert!(outs.contains(&start(Timer::IdleHold, s(5))));
        f.process(TimerExpired(Timer::IdleHold));
        assert_eq!(fail(&mut f).as_secs(), 10);

        // A session that went down before that keeps doubling.
        let outs = feed(
            &mut f,
            vec![
                ConnectSucceeded,
                Message(Out, peer_open(PEER_ID)),
                Message(Out, crate::packet::Message::Keepalive),
                TimerExpired(Timer::Hold(Out)),
            ],
        );
        assert!(outs.contains(&start(Timer::IdleHold, s(20))));

        // Stop and Start begin afresh: immediate connect, base back-off.
        feed(&mut f, vec![Stop(admin_shutdown())]);
        let outs = f.process(Start);
        assert_eq!(outs[0], Output::Connect);
        assert_eq!(fail(&mut f).as_secs(), 5);
    }

    #[test]
    fn connect_failure_retries_on_connect_retry_without_back_off() {
        // §8.2.2: Connect → Active on failure, ConnectRetry expiry → Connect again.
        use Input::*;
        let mut f = PeerFsm::new(cfg(false));
        f.process(Start);
        for _ in 0..3 {
            let outs = f.process(ConnectFailed("Connection refused".into()));
            assert_eq!(f.state(), Active);
            assert!(
                !outs
                    .iter()
                    .any(|o| matches!(o, Output::StartTimer(Timer::IdleHold, _)))
            );
            let outs = f.process(TimerExpired(Timer::ConnectRetry));
            assert_eq!(outs[0], Output::Connect);
            assert_eq!(f.state(), Connect);
        }
        assert_eq!(f.last_error(), Some("Socket: Connection refused"));
    }

    #[test]
    fn last_error_reads_like_bird() {
        use Input::*;
        let mut f = fsm_in(Setup::EstablishedOut);
        f.process(TimerExpired(Timer::Hold(Out)));
        let expected = format!("Sent: {}", Notification::hold_timer_expired());
        assert_eq!(f.last_error(), Some(expected.as_str()));
        assert!(expected.starts_with("Sent: Hold Timer Expired"));

        let mut f = fsm_in(Setup::EstablishedOut);
        f.process(Message(
            Out,
            crate::packet::Message::Notification(admin_shutdown()),
        ));
        assert_eq!(
            f.last_error(),
            Some("Received: Cease/Administrative Shutdown (6/2)")
        );

        let mut f = fsm_in(Setup::OpenSentOut);
        f.process(Closed(Out, "Connection closed".into()));
        assert_eq!(f.last_error(), Some("Socket: Connection closed"));

        // A manual stop is not an error.
        let mut f = fsm_in(Setup::EstablishedOut);
        f.process(Stop(admin_shutdown()));
        assert_eq!(f.last_error(), None);
        assert_eq!(
            DownReason::Stopped(admin_shutdown()).to_string(),
            "Stopped: Cease/Administrative Shutdown (6/2)"
        );
    }

    #[test]
    fn accessors_follow_the_session() {
        use Input::*;
        let mut f = fsm_in(Setup::OpenConfirmOut);
        assert_eq!(f.negotiated(), None);
        assert_eq!(f.established_conn(), None);
        assert_eq!(f.connection_state(Out), Some(OpenConfirm));
        assert_eq!(f.connection_state(In), None);
        f.process(Message(Out, crate::packet::Message::Keepalive));
        assert_eq!(f.established_conn(), Some(Out));
        assert_eq!(f.negotiated(), Some(&negotiated(PEER_ID)));
        f.process(Closed(Out, "Connection closed".into()));
        assert_eq!(f.negotiated(), None);
        assert_eq!(f.established_conn(), None);
    }

    #[test]
    fn zero_hold_time_runs_no_timers_once_established() {
        // RFC 4271 §4.2, §10: hold time 0 disables the hold and keepalive timers.
        use Input::*;
        let mut f = PeerFsm::new(cfg(false));
        feed(
            &mut f,
            vec![
                Start,
                ConnectSucceeded,
                Message(
                    Out,
                    crate::packet::Message::Open(peer_open_with(PEER_ID, 0)),
                ),
            ],
        );
        let outs = f.process(Message(Out, crate::packet::Message::Keepalive));
        assert_eq!(
            outs[..2],
            [
                stop(Timer::Hold(Out)),
                start(Timer::BackoffReset, BACKOFF_RESET_AFTER)
            ]
        );
        assert_eq!(f.state(), Established);
        assert_eq!(f.process(Message(Out, update())), vec![]);
        assert_eq!(f.process(TimerExpired(Timer::Keepalive(Out))), vec![]);
        assert_eq!(f.process(TimerExpired(Timer::Hold(Out))), vec![]);
        assert_eq!(f.state(), Established);
    }

    #[test]
    fn zero_hold_time_open_confirm_still_times_out() {
        // A peer that never sends its KEEPALIVE must not keep the connection forever.
        use Input::*;
        let mut f = PeerFsm::new(cfg(false));
        feed(
            &mut f,
            vec![
                Start,
                ConnectSucceeded,
                Message(
                    Out,
                    crate::packet::Message::Open(peer_open_with(PEER_ID, 0)),
                ),
            ],
        );
        let outs = f.process(TimerExpired(Timer::Hold(Out)));
        assert_eq!(outs[0], notify(Out, Notification::hold_timer_expired()));
        assert_eq!(f.state(), Idle);
    }

    #[test]
    fn a_configured_keepalive_is_used() {
        use Input::*;
        let mut c = cfg(false);
        c.keepalive = Some(10);
        let mut f = PeerFsm::new(c);
        let outs = feed(
            &mut f,
            vec![Start, ConnectSucceeded, Message(Out, peer_open(PEER_ID))],
        );
        assert!(outs.contains(&start(Timer::Keepalive(Out), s(10))));
    }

    // ===== randomized tests =====

    /// xorshift64*: deterministic, so a failure replays from its seed.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }

        fn pick<T: Clone>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize].clone()
        }
    }

    const ALL_TIMERS: [Timer; 7] = [
        Timer::ConnectRetry,
        Timer::IdleHold,
        Timer::BackoffReset,
        Timer::Hold(Out),
        Timer::Hold(In),
        Timer::Keepalive(Out),
        Timer::Keepalive(In),
    ];

    /// Any message, well-formed or not for the state it arrives in.
    fn random_message(rng: &mut Rng, peer_ids: &[Ipv4Addr], peer_asns: &[Asn]) -> Message {
        match rng.below(7) {
            0 | 1 => Message::Keepalive,
            2 => update(),
            3 => {
                let id = rng.pick(peer_ids);
                let asn = rng.pick(peer_asns);
                Message::Open(OpenMsg {
                    version: rng.pick(&[4, 4, 4, 3]),
                    my_as: u16::try_from(asn).unwrap_or(23456),
                    hold_time: rng.pick(&[0, 1, 3, 9, 90]),
                    bgp_id: id,
                    capabilities: vec![
                        Capability::MultiProtocol(AfiSafi::of(rng.pick(&Family::ALL))),
                        Capability::FourOctetAs(asn),
                    ],
                })
            }
            4 => Message::Notification(Notification::new(
                rng.pick(&[1, 2, 3, 4, 5, 6, 99]),
                rng.below(12) as u8,
                vec![],
            )),
            5 => Message::RouteRefresh(rr(rng.pick(&Family::ALL), rng.below(4) as u8)),
            _ => peer_open(rng.pick(peer_ids)),
        }
    }

    fn random_input(rng: &mut Rng) -> Input {
        let c = rng.pick(&ConnId::BOTH);
        match rng.below(12) {
            0 => Input::Start,
            1 => Input::Stop(admin_shutdown()),
            2 => Input::ConnectSucceeded,
            3 => Input::ConnectFailed("Connection refused".into()),
            4 => Input::Accepted,
            5 => Input::Closed(c, "Connection reset by peer".into()),
            6 => Input::DecodeError(c, Notification::new(1, 2, vec![0, 3])),
            7 | 8 => Input::TimerExpired(rng.pick(&ALL_TIMERS)),
            _ => Input::Message(
                c,
                random_message(rng, &[PEER_ID, LOW_PEER_ID, LOCAL_ID], &[PEER_AS, LOCAL_AS]),
            ),
        }
    }

    /// Arbitrary input sequences, including ones no driver would produce: `process` must not
    /// panic and what it reports must stay consistent with what it says about itself.
    #[test]
    fn random_inputs_keep_the_fsm_consistent() {
        let mut established_seen = 0;
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            let mut f = PeerFsm::new(cfg(rng.chance(30)));
            let mut shown = Idle;
            let mut armed: BTreeSet<Timer> = BTreeSet::new();
            for step in 0..2_000 {
                let input = random_input(&mut rng);
                let was_up = f.established_conn();
                if let Input::TimerExpired(t) = &input {
                    armed.remove(t);
                }
                let outs = f.process(input.clone());
                let ctx = || format!("seed {seed} step {step}: {input:?} -> {outs:?}");
                for o in &outs {
                    match o {
                        Output::StartTimer(t, _) => {
                            armed.insert(*t);
                        }
                        Output::StopTimer(t) => assert!(armed.remove(t), "{}", ctx()),
                        Output::StateChanged { from, to } => {
                            assert_eq!(*from, shown, "{}", ctx());
                            assert_ne!(from, to, "{}", ctx());
                            shown = *to;
                        }
                        Output::Established { conn, negotiated } => {
                            established_seen += 1;
                            assert_eq!(f.established_conn(), Some(*conn), "{}", ctx());
                            assert_eq!(f.negotiated(), Some(negotiated), "{}", ctx());
                        }
                        Output::SessionDown { .. } => {
                            assert!(was_up.is_some(), "{}", ctx());
                            assert_ne!(f.established_conn(), was_up, "{}", ctx());
                        }
                        Output::Reject => {
                            assert_eq!(input, Input::Accepted, "{}", ctx())
                        }
                        Output::Send(c, _) => {
                            assert!(
                                f.connection_state(*c).is_some() || is_closed_after(&outs, *c),
                                "{}",
                                ctx()
                            )
                        }
                        _ => {}
                    }
                }
                assert_eq!(shown, f.state(), "{}", ctx());
                for t in &armed {
                    if let Timer::Hold(c) | Timer::Keepalive(c) = t {
                        assert!(f.connection_state(*c).is_some(), "{} armed {t:?}", ctx());
                    }
                }
                let up = ConnId::BOTH
                    .iter()
                    .filter(|&&c| f.connection_state(c) == Some(Established))
                    .count();
                assert!(up <= 1, "{}", ctx());
                assert_eq!(f.negotiated().is_some(), up == 1, "{}", ctx());
            }
        }
        assert!(
            established_seen > 50,
            "the fuzz must reach Established: {established_seen}"
        );
    }

    /// A Send on a connection the same batch then closes (NOTIFICATION before Close).
    fn is_closed_after(outs: &[Output], c: ConnId) -> bool {
        outs.contains(&Output::Close(c))
    }

    /// What travels between the two simulated speakers.
    #[derive(Debug)]
    enum Ev {
        /// The SYN of this wire reaches the acceptor.
        Syn(usize),
        /// The initiator's connect on this wire completes.
        SynAck(usize),
        /// The initiator's connect on this wire is refused.
        Refused(usize),
        /// A message on a wire, to a node.
        Data(usize, usize, Message),
        /// The far end closed the wire, seen by a node.
        Fin(usize, usize),
        /// A timer of a node, with the generation it was armed with.
        Timer(usize, Timer, u64),
    }

    /// One TCP connection between the two nodes.
    struct Wire {
        /// The node that connected.
        from: usize,
        /// Each node's end is still open.
        open: [bool; 2],
        /// Last delivery time towards each node (TCP keeps order).
        last: [u64; 2],
    }

    /// One speaker: its FSM and what a driver would keep around it.
    struct Node {
        fsm: PeerFsm,
        timers: BTreeMap<Timer, u64>,
        /// The wire behind each ConnId (indexed like the FSM).
        slots: [Option<usize>; 2],
        /// The wire of a connect in flight.
        attempt: Option<usize>,
        shown: SessionState,
        /// The wire of the Established session.
        session: Option<usize>,
        last_change_ms: u64,
        /// Sessions established so far.
        ups: u32,
    }

    /// Two FSMs back to back over simulated TCP with latency, on a virtual clock (ms).
    struct Sim {
        now: u64,
        seq: u64,
        generation: u64,
        rng: Rng,
        nodes: Vec<Node>,
        wires: Vec<Wire>,
        queue: BTreeMap<(u64, u64), Ev>,
        min_latency: u64,
        latency_spread: u64,
        refuse_percent: u64,
        /// Check that both sides never hold sessions on different wires.
        strict: bool,
        /// Cease/Connection Collision Resolution sent, by both nodes.
        collisions: u32,
        log: Vec<String>,
    }

    impl Sim {
        fn new(seed: u64, cfgs: [FsmConfig; 2]) -> Sim {
            let nodes = cfgs
                .into_iter()
                .map(|c| Node {
                    fsm: PeerFsm::new(c),
                    timers: BTreeMap::new(),
                    slots: [None, None],
                    attempt: None,
                    shown: Idle,
                    session: None,
                    last_change_ms: 0,
                    ups: 0,
                })
                .collect();
            Sim {
                now: 0,
                seq: 0,
                generation: 0,
                rng: Rng::new(seed),
                nodes,
                wires: Vec::new(),
                queue: BTreeMap::new(),
                min_latency: 1,
                latency_spread: 200,
                refuse_percent: 0,
                strict: true,
                collisions: 0,
                log: Vec::new(),
            }
        }

        fn schedule(&mut self, at: u64, ev: Ev) {
            self.seq += 1;
            self.queue.insert((at, self.seq), ev);
        }

        /// Delivery time on a wire towards `to`, never before an earlier one (TCP order).
        fn ordered(&mut self, w: usize, to: usize) -> u64 {
            let lat = self.min_latency + self.rng.below(self.latency_spread + 1);
            let t = (self.now + lat).max(self.wires[w].last[to]);
            self.wires[w].last[to] = t;
            t
        }

        fn slot_of(&self, n: usize, w: usize) -> Option<ConnId> {
            ConnId::BOTH
                .into_iter()
                .find(|c| self.nodes[n].slots[c.index()] == Some(w))
        }

        fn live_conns(&self, n: usize) -> Vec<ConnId> {
            ConnId::BOTH
                .into_iter()
                .filter(|c| self.nodes[n].slots[c.index()].is_some())
                .collect()
        }

        fn input(&mut self, n: usize, input: Input) {
            let outs = self.nodes[n].fsm.process(input.clone());
            self.apply(n, &input, outs);
        }

        fn close_end(&mut self, w: usize, n: usize) {
            self.wires[w].open[n] = false;
            let other = 1 - n;
            if self.wires[w].open[other] {
                let t = self.ordered(w, other);
                self.schedule(t, Ev::Fin(w, other));
            }
        }

        /// Carry out a node's outputs as a driver would, checking them on the way.
        fn apply(&mut self, n: usize, input: &Input, outs: Vec<Output>) {
            let ctx = format!("t={} node {n}: {input:?} -> {outs:?}", self.now);
            self.log.push(ctx.clone());
            for o in outs {
                match o {
                    Output::Connect => {
                        let node = &self.nodes[n];
                        assert!(
                            node.attempt.is_none() && node.slots[0].is_none(),
                            "{ctx}: Connect while an outgoing connection exists"
                        );
                        let w = self.wires.len();
                        self.wires.push(Wire {
                            from: n,
                            open: [true, true],
                            last: [0, 0],
                        });
                        self.nodes[n].attempt = Some(w);
                        if self.rng.chance(self.refuse_percent) {
                            let t = self.now + self.min_latency;
                            self.schedule(t, Ev::Refused(w));
                        } else {
                            let t = self.ordered(w, 1 - n);
                            self.schedule(t, Ev::Syn(w));
                        }
                    }
                    Output::Close(c) => {
                        if c == Out && self.nodes[n].attempt.is_some() {
                            let w = self.nodes[n].attempt.take().unwrap_or_default();
                            self.close_end(w, n);
                        } else if let Some(w) = self.nodes[n].slots[c.index()].take() {
                            self.close_end(w, n);
                        } else {
                            panic!("{ctx}: Close({c:?}) with no such connection");
                        }
                    }
                    Output::Reject => {
                        assert_eq!(*input, Input::Accepted, "{ctx}: Reject out of place")
                    }
                    Output::Send(c, m) => {
                        if m == Message::Notification(collision()) {
                            self.collisions += 1;
                        }
                        let w = self.nodes[n].slots[c.index()]
                            .unwrap_or_else(|| panic!("{ctx}: Send on closed {c:?}"));
                        let t = self.ordered(w, 1 - n);
                        self.schedule(t, Ev::Data(w, 1 - n, m));
                    }
                    Output::StartTimer(t, d) => {
                        self.generation += 1;
                        self.nodes[n].timers.insert(t, self.generation);
                        let at = self.now + d.as_millis() as u64;
                        self.schedule(at, Ev::Timer(n, t, self.generation));
                    }
                    Output::StopTimer(t) => {
                        assert!(
                            self.nodes[n].timers.remove(&t).is_some(),
                            "{ctx}: StopTimer({t:?}) not armed"
                        )
                    }
                    Output::StateChanged { from, to } => {
                        assert_eq!(from, self.nodes[n].shown, "{ctx}");
                        assert_ne!(from, to, "{ctx}");
                        self.nodes[n].shown = to;
                    }
                    Output::Established { conn, .. } => {
                        let w = self.nodes[n].slots[conn.index()];
                        assert!(w.is_some(), "{ctx}: Established on a closed connection");
                        assert!(self.nodes[n].session.is_none(), "{ctx}: second session");
                        self.nodes[n].session = w;
                        self.nodes[n].last_change_ms = self.now;
                        self.nodes[n].ups += 1;
                    }
                    Output::SessionDown { .. } => {
                        assert!(self.nodes[n].session.is_some(), "{ctx}: down without up");
                        self.nodes[n].session = None;
                        self.nodes[n].last_change_ms = self.now;
                    }
                    Output::RouteRefresh(_) => {}
                }
            }
            self.check(n, &ctx);
        }

        /// Invariants between a node's FSM and its driver, and between the two nodes.
        fn check(&self, n: usize, ctx: &str) {
            let node = &self.nodes[n];
            assert_eq!(
                node.shown,
                node.fsm.state(),
                "{ctx}: state without StateChanged"
            );
            for c in ConnId::BOTH {
                assert_eq!(
                    node.fsm.connection_state(c).is_some(),
                    node.slots[c.index()].is_some(),
                    "{ctx}: FSM and driver disagree on {c:?}"
                );
            }
            for t in node.timers.keys() {
                if let Timer::Hold(c) | Timer::Keepalive(c) = t {
                    assert!(
                        node.slots[c.index()].is_some(),
                        "{ctx}: {t:?} for a dead conn"
                    );
                }
            }
            let up = node.fsm.established_conn();
            assert_eq!(
                up.and_then(|c| node.slots[c.index()]),
                node.session,
                "{ctx}"
            );
            if let (true, Some(a), Some(b)) =
                (self.strict, self.nodes[0].session, self.nodes[1].session)
            {
                assert_eq!(a, b, "{ctx}: sessions on different connections");
            }
        }

        fn handle(&mut self, ev: Ev) {
            match ev {
                Ev::Syn(w) => {
                    let from = self.wires[w].from;
                    let to = 1 - from;
                    let outs = self.nodes[to].fsm.process(Input::Accepted);
                    let t = self.ordered(w, from);
                    self.schedule(t, Ev::SynAck(w));
                    if outs.contains(&Output::Reject) {
                        self.wires[w].open[to] = false;
                        let t = self.ordered(w, from);
                        self.schedule(t, Ev::Fin(w, from));
                    } else {
                        assert!(self.nodes[to].slots[1].is_none(), "accepted a second In");
                        self.nodes[to].slots[1] = Some(w);
                    }
                    self.apply(to, &Input::Accepted, outs);
                }
                Ev::SynAck(w) => {
                    let n = self.wires[w].from;
                    if self.nodes[n].attempt == Some(w) {
                        self.nodes[n].attempt = None;
                        self.nodes[n].slots[0] = Some(w);
                        self.input(n, Input::ConnectSucceeded);
                    }
                }
                Ev::Refused(w) => {
                    let n = self.wires[w].from;
                    if self.nodes[n].attempt == Some(w) {
                        self.nodes[n].attempt = None;
                        self.wires[w].open = [false, false];
                        self.input(n, Input::ConnectFailed("Connection refused".into()));
                    }
                }
                Ev::Data(w, to, m) => {
                    if let Some(c) = self.slot_of(to, w) {
                        self.input(to, Input::Message(c, m));
                    }
                }
                Ev::Fin(w, to) => {
                    if let Some(c) = self.slot_of(to, w) {
                        self.nodes[to].slots[c.index()] = None;
                        self.wires[w].open[to] = false;
                        self.input(to, Input::Closed(c, "Connection closed".into()));
                    }
                }
                Ev::Timer(n, t, g) => {
                    if self.nodes[n].timers.get(&t) == Some(&g) {
                        self.nodes[n].timers.remove(&t);
                        self.input(n, Input::TimerExpired(t));
                    }
                }
            }
        }

        /// One injected fault: a reset wire, a stop or start, a decode error, a bogus message,
        /// or a timer firing early.
        fn fault(&mut self) {
            let n = self.rng.below(2) as usize;
            let live = self.live_conns(n);
            match self.rng.below(6) {
                0 if !live.is_empty() => {
                    let c = self.rng.pick(&live);
                    let w = self.nodes[n].slots[c.index()].unwrap_or_default();
                    for m in 0..2 {
                        if let Some(cm) = self.slot_of(m, w) {
                            self.nodes[m].slots[cm.index()] = None;
                            self.wires[w].open[m] = false;
                            self.input(m, Input::Closed(cm, "Connection reset by peer".into()));
                        } else if self.nodes[m].attempt == Some(w) {
                            // The RST beats the SYN-ACK: the connect fails.
                            self.nodes[m].attempt = None;
                            let reset = "Connection reset by peer".to_string();
                            self.input(m, Input::ConnectFailed(reset));
                        }
                    }
                    self.wires[w].open = [false, false];
                }
                1 => self.input(n, Input::Stop(admin_shutdown())),
                2 => self.input(n, Input::Start),
                3 if !live.is_empty() => {
                    let c = self.rng.pick(&live);
                    let err = Notification::new(code::UPDATE_MESSAGE, 1, vec![]);
                    self.input(n, Input::DecodeError(c, err));
                }
                4 if !live.is_empty() => {
                    let c = self.rng.pick(&live);
                    let ids = [self.nodes[1 - n].fsm.config().local.router_id, LOW_PEER_ID];
                    let asns = [self.nodes[n].fsm.config().peer_asn, 1];
                    let m = random_message(&mut self.rng, &ids, &asns);
                    self.input(n, Input::Message(c, m));
                }
                5 => {
                    let t = self.rng.pick(&ALL_TIMERS);
                    self.nodes[n].timers.remove(&t);
                    self.input(n, Input::TimerExpired(t));
                }
                _ => {}
            }
        }

        /// Run events until `until` (ms), injecting a fault before an event with the given
        /// probability.
        fn run(&mut self, until: u64, fault_percent: u64) {
            while let Some((&(t, _), _)) = self.queue.first_key_value() {
                if t > until {
                    break;
                }
                if fault_percent > 0 && self.rng.chance(fault_percent) {
                    self.fault();
                    continue;
                }
                let Some(((t, _), ev)) = self.queue.pop_first() else {
                    break;
                };
                self.now = t;
                self.handle(ev);
            }
            self.now = self.now.max(until);
        }

        /// The last interesting lines of the log (routine keepalive traffic left out).
        fn dump(&self) -> String {
            let routine = |l: &&String| {
                l.contains("TimerExpired(Keepalive(")
                    || (l.contains(", Keepalive) -> [StartTimer(Hold(")
                        && !l.contains("Established"))
            };
            let lines: Vec<&String> = self.log.iter().filter(|l| !routine(l)).collect();
            let from = lines.len().saturating_sub(60);
            let mut text = lines[from..]
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            for (n, node) in self.nodes.iter().enumerate() {
                let conns: Vec<_> = ConnId::BOTH
                    .iter()
                    .map(|&c| (c, node.slots[c.index()], node.fsm.connection_state(c)))
                    .collect();
                text.push_str(&format!(
                    "\nnode {n}: {:?} conns {conns:?} attempt {:?} timers {:?}",
                    node.fsm.state(),
                    node.attempt,
                    node.timers.keys().collect::<Vec<_>>()
                ));
            }
            text
        }
    }

    const MIN: u64 = 60_000;

    /// Two speakers configured for each other: node 0 is us (10.0.0.1, AS 64512), node 1 the
    /// peer (`peer_id`, AS 65001).
    fn pair(peer_id: Ipv4Addr, hold: u16, passive: [bool; 2]) -> [FsmConfig; 2] {
        let mut a = cfg(passive[0]);
        a.local.hold_time = hold;
        let mut b = cfg(passive[1]);
        b.local = LocalOpen::new(PEER_AS, peer_id, hold, vec![Family::Ipv4Unicast]);
        b.peer_asn = LOCAL_AS;
        [a, b]
    }

    /// Both ends hold one session, on the same connection, and nothing else is open.
    fn assert_one_session(sim: &Sim, what: &str) -> usize {
        let (a, b) = (sim.nodes[0].session, sim.nodes[1].session);
        assert!(
            a.is_some() && a == b,
            "{what}: sessions {a:?} / {b:?}\n{}",
            sim.dump()
        );
        for (n, node) in sim.nodes.iter().enumerate() {
            assert_eq!(node.fsm.state(), Established, "{what}: node {n}");
            assert_eq!(
                sim.live_conns(n).len(),
                1,
                "{what}: node {n} has a spare connection"
            );
        }
        a.unwrap_or_default()
    }

    #[test]
    fn simultaneous_open_keeps_the_dominant_sides_connection() {
        // RFC 4271 §6.8: both connect at once; both keep the connection the higher BGP
        // Identifier opened, whichever side is ours.
        for (peer_id, dominant) in [(PEER_ID, 1), (LOW_PEER_ID, 0)] {
            let mut sim = Sim::new(1, pair(peer_id, 90, [false, false]));
            sim.latency_spread = 0;
            sim.min_latency = 10;
            sim.input(0, Input::Start);
            sim.input(1, Input::Start);
            sim.run(MIN, 0);
            let w = assert_one_session(&sim, "simultaneous open");
            assert_eq!(
                sim.wires[w].from,
                dominant,
                "peer id {peer_id}\n{}",
                sim.dump()
            );
            assert_eq!(sim.wires.len(), 2, "one connection each way");
            assert!(sim.nodes.iter().all(|n| n.fsm.last_error().is_none()));
        }
    }

    #[test]
    fn back_to_back_sessions_converge_with_random_latency() {
        // Many orderings of the two OPEN exchanges: always exactly one session, reached
        // without any error and without ever losing it (a wrong collision choice on one side
        // shows up as an error or a second session).
        let mut collisions = 0;
        for seed in 0..1_000 {
            let peer_id = [PEER_ID, LOW_PEER_ID, LOCAL_ID][(seed % 3) as usize];
            let passive = match seed % 5 {
                0 => [true, false],
                1 => [false, true],
                _ => [false, false],
            };
            let mut sim = Sim::new(seed, pair(peer_id, 9, passive));
            sim.latency_spread = 1 + seed % 300;
            sim.input(0, Input::Start);
            let head_start_given = seed % 4 == 0;
            if head_start_given {
                let head_start = sim.rng.below(3_000);
                sim.run(head_start, 0);
            }
            sim.input(1, Input::Start);
            sim.run(5 * MIN, 0);
            assert_one_session(&sim, &format!("seed {seed}"));
            for (n, node) in sim.nodes.iter().enumerate() {
                let what = format!("seed {seed} node {n}");
                assert_eq!(node.ups, 1, "{what}: sessions came up {} times", node.ups);
                if !head_start_given {
                    // A peer that is not started yet refuses us; otherwise nothing fails.
                    assert_eq!(node.fsm.last_error(), None, "{what}\n{}", sim.dump());
                }
            }
            collisions += sim.collisions;
        }
        assert!(
            collisions > 100,
            "collisions must be exercised: {collisions}"
        );
    }

    #[test]
    fn back_to_back_sessions_survive_random_faults() {
        // Resets, stops, decode errors, bogus messages, early timers and refused connects;
        // afterwards the two must settle on exactly one stable session.
        for seed in 0..150 {
            let peer_id = match seed % 3 {
                0 => PEER_ID,
                1 => LOW_PEER_ID,
                _ => LOCAL_ID, // equal identifiers on eBGP: RFC 6286 §2.3
            };
            let hold = [0, 3, 9, 90][(seed % 4) as usize];
            let passive = if seed % 7 == 0 {
                [false, true]
            } else {
                [false, false]
            };
            let mut sim = Sim::new(seed, pair(peer_id, hold, passive));
            sim.strict = false;
            sim.refuse_percent = 10;
            sim.input(0, Input::Start);
            sim.input(1, Input::Start);
            sim.run(10 * MIN, 3);

            sim.strict = true;
            sim.refuse_percent = 0;
            sim.input(0, Input::Start);
            sim.input(1, Input::Start);
            let calm = sim.now;
            sim.run(calm + 15 * MIN, 0);
            assert_one_session(&sim, &format!("seed {seed}"));
            for (n, node) in sim.nodes.iter().enumerate() {
                assert!(
                    node.last_change_ms < calm + 5 * MIN,
                    "seed {seed}: node {n} still flapping at {}\n{}",
                    node.last_change_ms,
                    sim.dump()
                );
            }
        }
    }
}
