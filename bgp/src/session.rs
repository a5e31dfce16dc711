//! The session driver: one task per configured peer that turns the pure `fsm::PeerFsm` into
//! sockets, timers and messages to the core.
//!
//! Owns: the peer's TCP connections (ours and the peer's, until collision resolution leaves one),
//! connect attempts, timer deadlines, framing and decoding of received bytes, encoding of
//! outgoing batches. Must not: touch the RIB (UPDATE content goes to the core in order, in
//! batches) or decide protocol behaviour (the FSM does; this only carries out its outputs).
//!
//! Each connection's writes go through a writer task fed by a channel, so a peer that stops
//! reading (SIGSTOP, a full TCP window) never blocks this task: its hold timer still fires.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{PeerConfig, SpeakerConfig};
use crate::fsm::{ConnId, DownReason, FsmConfig, Input, Output, PeerFsm, Timer};
use crate::negotiate::LocalOpen;
use crate::packet::notification;
use crate::packet::{
    self, AfiSafi, CodecParams, GracefulRestartCap, Message, MessageType, Notification, UpdateMsg,
};
use crate::rib::SourceId;
use crate::speaker::{CoreMsg, OutBatch, SessionCmd, SessionEvent};
use crate::status::SessionState;

/// How long a closing connection may take to write what was queued before it (e.g. the final
/// NOTIFICATION to a peer that stopped reading).
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// How long a closing connection waits for the peer to close its side.
const PEER_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Give up on a TCP connect after this long (BIRD uses the same order of magnitude).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Base back-off after a session error (BIRD's `error wait time 5,30` as Calico sets it).
const IDLE_HOLD: Duration = Duration::from_secs(5);

/// Everything a session task needs to start.
pub(crate) struct SessionSetup {
    pub slot: SourceId,
    pub generation: u64,
    pub peer: PeerConfig,
    pub speaker: SpeakerConfig,
    pub core: mpsc::Sender<CoreMsg>,
    /// The session this one replaces (a reset): start only once it has said goodbye, so the
    /// peer reads our Cease before our new OPEN.
    pub after: Option<JoinHandle<()>>,
}

/// Start a peer's session task.
pub(crate) fn spawn(setup: SessionSetup) -> (mpsc::UnboundedSender<SessionCmd>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let span = tracing::info_span!("peer", peer = %setup.peer.name, address = %setup.peer.address);
    let after = setup.after;
    let session = Session::new(SessionSetup {
        after: None,
        ..setup
    });
    let task = tokio::spawn(
        async move {
            if let Some(previous) = after {
                let _ = tokio::time::timeout(CLOSE_GRACE * 2, previous).await;
            }
            session.run(rx).await
        }
        .instrument(span),
    );
    (tx, task)
}

/// Build the FSM configuration of a peer from the speaker's and the peer's settings.
pub(crate) fn fsm_config(speaker: &SpeakerConfig, peer: &PeerConfig) -> FsmConfig {
    let gr = &speaker.graceful_restart;
    let graceful_restart = gr.enabled.then(|| GracefulRestartCap {
        restarting: gr.restarting,
        notification: false,
        restart_time: peer.restart_time.unwrap_or(gr.restart_time).min(4095),
        families: peer
            .families
            .iter()
            .map(|f| (AfiSafi::of(*f), gr.forwarding_preserved))
            .collect(),
    });
    FsmConfig {
        local: LocalOpen {
            asn: peer.local_asn.unwrap_or(speaker.local_asn),
            router_id: speaker.router_id,
            hold_time: peer.hold_time,
            families: peer.families.clone(),
            graceful_restart,
            extended_message: false,
            // We answer plain refreshes (RFC 2918) but do not bracket them (RFC 7313).
            enhanced_route_refresh: false,
        },
        peer_asn: peer.remote_asn,
        passive: peer.passive,
        connect_retry: Duration::from_secs(u64::from(peer.connect_retry.max(1))),
        keepalive: peer.keepalive_time,
        idle_hold: IDLE_HOLD,
    }
}

enum WriteJob {
    /// Bytes to write; `Some(n)` acknowledges a batch of n UPDATEs to the core once written.
    Bytes(Vec<u8>, Option<u64>),
    /// Flush what came before, shut our side down, then wait (briefly) for the peer to close
    /// its side on the read half, so it has read our last NOTIFICATION before anything new.
    Close(Option<OwnedReadHalf>),
}

/// One TCP connection.
struct Conn {
    serial: u64,
    read: OwnedReadHalf,
    buf: Vec<u8>,
    start: usize,
    writer: mpsc::UnboundedSender<WriteJob>,
    writer_task: JoinHandle<()>,
    local: SocketAddr,
    codec: CodecParams,
    established: bool,
}

/// A writer task reporting a failure.
struct WriteFailed {
    conn: ConnId,
    serial: u64,
    error: String,
}

struct Session {
    slot: SourceId,
    generation: u64,
    peer: PeerConfig,
    core: mpsc::Sender<CoreMsg>,
    fsm: PeerFsm,
    out: Option<Conn>,
    inc: Option<Conn>,
    connecting: Option<JoinHandle<io::Result<TcpStream>>>,
    timers: HashMap<Timer, Instant>,
    failed_tx: mpsc::UnboundedSender<WriteFailed>,
    failed_rx: mpsc::UnboundedReceiver<WriteFailed>,
    next_serial: u64,
    /// UPDATEs decoded but not yet handed to the core (sent before any other event).
    updates: Vec<UpdateMsg>,
    reported: (SessionState, Option<String>),
    finished: bool,
    /// Writers of closed connections still flushing (the last NOTIFICATION); the task ends
    /// only after them, so a successor session never overtakes our goodbye.
    closing: Vec<JoinHandle<()>>,
}

/// A socket error as BIRD words it (`Connection refused`); the FSM prefixes `Socket: `.
fn socket_error(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

async fn read_some(conn: &mut Option<Conn>) -> io::Result<usize> {
    match conn {
        Some(c) => {
            if c.start > 0 && c.start == c.buf.len() {
                c.buf.clear();
                c.start = 0;
            }
            c.buf.reserve(READ_CHUNK);
            c.read.read_buf(&mut c.buf).await
        }
        None => std::future::pending().await,
    }
}

async fn wait_connect(
    connecting: &mut Option<JoinHandle<io::Result<TcpStream>>>,
) -> io::Result<TcpStream> {
    match connecting {
        Some(handle) => {
            let result = handle.await;
            *connecting = None;
            result.unwrap_or_else(|e| Err(io::Error::other(e)))
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn connect(addr: SocketAddr, source: Option<std::net::IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(src) = source {
        socket.bind(SocketAddr::new(src, 0))?;
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "Connection timed out",
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn writer(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<WriteJob>,
    conn: ConnId,
    serial: u64,
    failed: mpsc::UnboundedSender<WriteFailed>,
    core: mpsc::Sender<CoreMsg>,
    slot: SourceId,
    generation: u64,
) {
    while let Some(job) = rx.recv().await {
        match job {
            WriteJob::Bytes(bytes, ack) => {
                if let Err(e) = w.write_all(&bytes).await {
                    let _ = failed.send(WriteFailed {
                        conn,
                        serial,
                        error: socket_error(&e),
                    });
                    return;
                }
                if let Some(messages) = ack {
                    let event = SessionEvent::Written { messages };
                    let _ = core
                        .send(CoreMsg::Session {
                            slot,
                            generation,
                            event,
                        })
                        .await;
                }
            }
            WriteJob::Close(read) => {
                let _ = w.shutdown().await;
                if let Some(mut read) = read {
                    let mut sink = [0u8; 4096];
                    let until_eof = async {
                        while let Ok(n) = read.read(&mut sink).await {
                            if n == 0 {
                                break;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(PEER_CLOSE_WAIT, until_eof).await;
                }
                return;
            }
        }
    }
}

impl Session {
    fn new(setup: SessionSetup) -> Session {
        let (failed_tx, failed_rx) = mpsc::unbounded_channel();
        let fsm = PeerFsm::new(fsm_config(&setup.speaker, &setup.peer));
        Session {
            slot: setup.slot,
            generation: setup.generation,
            peer: setup.peer,
            core: setup.core,
            fsm,
            out: None,
            inc: None,
            connecting: None,
            timers: HashMap::new(),
            failed_tx,
            failed_rx,
            next_serial: 0,
            updates: Vec::new(),
            reported: (SessionState::Idle, None),
            finished: false,
            closing: Vec::new(),
        }
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<SessionCmd>) {
        self.input(Input::Start).await;
        while !self.finished {
            let deadline = self.timers.values().min().copied();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.on_cmd(cmd).await,
                    None => {
                        let n = Notification::cease(packet::notification::cease::ADMINISTRATIVE_SHUTDOWN);
                        self.input(Input::Stop(n)).await;
                        self.finished = true;
                    }
                },
                Some(f) = self.failed_rx.recv() => {
                    let current = self.conn(f.conn).is_some_and(|c| c.serial == f.serial);
                    if current {
                        self.lost(f.conn, f.error).await;
                    }
                }
                r = read_some(&mut self.out) => self.on_read(ConnId::Out, r).await,
                r = read_some(&mut self.inc) => self.on_read(ConnId::In, r).await,
                r = wait_connect(&mut self.connecting) => match r {
                    Ok(stream) => {
                        self.attach(ConnId::Out, stream);
                        self.input(Input::ConnectSucceeded).await;
                    }
                    Err(e) => self.input(Input::ConnectFailed(socket_error(&e))).await,
                },
                () = sleep_until(deadline) => self.fire_timers().await,
            }
        }
        // Let queued writes (the final NOTIFICATION) go out before the sockets close, and end
        // only then: a successor session waits for this task. Each writer is aborted by its
        // watchdog after `CLOSE_GRACE` at the latest.
        self.close(ConnId::Out);
        self.close(ConnId::In);
        for w in std::mem::take(&mut self.closing) {
            let _ = w.await;
        }
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        match id {
            ConnId::Out => self.out.as_ref(),
            ConnId::In => self.inc.as_ref(),
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        match id {
            ConnId::Out => self.out.as_mut(),
            ConnId::In => self.inc.as_mut(),
        }
    }

    async fn on_cmd(&mut self, cmd: SessionCmd) {
        match cmd {
            SessionCmd::Incoming(stream) => {
                if self.inc.is_some() {
                    // One incoming connection at a time: a second one is refused.
                    tracing::debug!("refusing a second incoming connection");
                    drop(stream);
                    return;
                }
                self.attach(ConnId::In, stream);
                self.input(Input::Accepted).await;
            }
            SessionCmd::Send(batch) => self.send_batch(batch),
            SessionCmd::Stop(n) => {
                self.input(Input::Stop(n)).await;
                self.finished = true;
            }
            SessionCmd::Abandon => {
                // No NOTIFICATION: to the peer this looks like our restart (RFC 4724), so a
                // graceful-restart helper keeps our routes while we are away.
                if let Some(c) = self.connecting.take() {
                    c.abort();
                }
                for c in [self.out.take(), self.inc.take()].into_iter().flatten() {
                    c.writer_task.abort();
                }
                self.finished = true;
            }
        }
    }

    fn attach(&mut self, id: ConnId, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (read, write) = stream.into_split();
        let (wtx, wrx) = mpsc::unbounded_channel();
        self.next_serial += 1;
        let serial = self.next_serial;
        let writer_task = tokio::spawn(
            writer(
                write,
                wrx,
                id,
                serial,
                self.failed_tx.clone(),
                self.core.clone(),
                self.slot,
                self.generation,
            )
            .in_current_span(),
        );
        let conn = Conn {
            serial,
            read,
            buf: Vec::new(),
            start: 0,
            writer: wtx,
            writer_task,
            local,
            codec: CodecParams::default(),
            established: false,
        };
        let old = match id {
            ConnId::Out => self.out.replace(conn),
            ConnId::In => self.inc.replace(conn),
        };
        if let Some(old) = old {
            self.retire(old);
        }
    }

    fn close(&mut self, id: ConnId) {
        let conn = match id {
            ConnId::Out => {
                if let Some(c) = self.connecting.take() {
                    c.abort();
                }
                self.out.take()
            }
            ConnId::In => self.inc.take(),
        };
        if let Some(c) = conn {
            self.retire(c);
        }
    }

    fn retire(&mut self, c: Conn) {
        let writer = close_conn(c);
        self.closing.retain(|w| !w.is_finished());
        self.closing.push(writer);
    }

    async fn on_read(&mut self, id: ConnId, result: io::Result<usize>) {
        match result {
            Ok(0) => self.lost(id, "Connection closed".to_string()).await,
            Err(e) => self.lost(id, socket_error(&e)).await,
            Ok(_) => {
                while let Some(c) = self.conn_mut(id) {
                    let frame = match packet::frame_len(&c.buf[c.start..], c.codec.max_message_len)
                    {
                        Ok(Some(n)) => {
                            let f = c.buf[c.start..c.start + n].to_vec();
                            c.start += n;
                            f
                        }
                        Ok(None) => {
                            if c.start > 0 {
                                c.buf.drain(..c.start);
                                c.start = 0;
                            }
                            break;
                        }
                        Err(n) => {
                            self.input(Input::DecodeError(id, n)).await;
                            break;
                        }
                    };
                    self.on_frame(id, &frame).await;
                }
                self.flush_updates().await;
            }
        }
    }

    /// A connection is gone (EOF, read or write error): drop it, then tell the FSM (which
    /// never answers `Closed` with a `Close`).
    async fn lost(&mut self, id: ConnId, why: String) {
        self.close(id);
        self.input(Input::Closed(id, why)).await;
    }

    async fn on_frame(&mut self, id: ConnId, frame: &[u8]) {
        let Some(c) = self.conn(id) else { return };
        let established = c.established;
        match packet::decode(&c.codec, frame) {
            Ok(Message::Update(update)) if established => {
                self.updates.push(update);
                // The FSM only needs to know an UPDATE arrived (hold timer, RFC 4271 §8.2.2).
                self.input(Input::Message(id, Message::Update(UpdateMsg::default())))
                    .await;
            }
            Ok(Message::Notification(n)) => {
                tracing::warn!(notification = %n, "received NOTIFICATION");
                self.report(SessionEvent::NotificationReceived(n.clone()))
                    .await;
                self.input(Input::Message(id, Message::Notification(n)))
                    .await;
            }
            Ok(m) => self.input(Input::Message(id, m)).await,
            Err(n) if frame.get(18) == Some(&(MessageType::Notification as u8)) => {
                // RFC 4271 §6.4: an error in a NOTIFICATION is not answered with one.
                tracing::warn!(error = %n, "received a malformed NOTIFICATION");
                self.lost(id, "malformed NOTIFICATION received".into())
                    .await;
            }
            Err(n) => {
                if frame.get(18) == Some(&(MessageType::Update as u8)) {
                    // Counted as received, like every other UPDATE (FRR does the same).
                    self.report(SessionEvent::MalformedUpdate).await;
                }
                self.input(Input::DecodeError(id, n)).await
            }
        }
    }

    async fn fire_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            // An earlier timer's outputs may have stopped or re-armed this one.
            if self.timers.get(&t).is_some_and(|at| *at <= now) {
                self.timers.remove(&t);
                self.input(Input::TimerExpired(t)).await;
            }
        }
    }

    /// Feed the FSM and carry out what it asks.
    async fn input(&mut self, input: Input) {
        let outputs = self.fsm.process(input);
        for output in outputs {
            self.apply(output).await;
        }
        let state = self.fsm.state();
        let last_error = self.fsm.last_error().map(str::to_string);
        if self.reported != (state, last_error.clone()) {
            self.reported = (state, last_error.clone());
            self.report(SessionEvent::State { state, last_error }).await;
        }
    }

    async fn apply(&mut self, output: Output) {
        match output {
            Output::Connect => {
                if let Some(c) = self.connecting.take() {
                    c.abort();
                }
                let addr = SocketAddr::new(self.peer.address, self.peer.port);
                let source = self.peer.source_address;
                self.connecting = Some(tokio::spawn(connect(addr, source)));
            }
            Output::Close(id) => self.close(id),
            Output::Reject => self.close(ConnId::In),
            Output::Send(id, msg) => self.send_msg(id, &msg).await,
            Output::StartTimer(t, d) => {
                self.timers.insert(t, Instant::now() + d);
            }
            Output::StopTimer(t) => {
                self.timers.remove(&t);
            }
            Output::StateChanged { from, to } => {
                tracing::info!(from = from.name(), to = to.name(), "session state");
                self.report(SessionEvent::Transition { from, to }).await;
            }
            Output::Established { conn, negotiated } => {
                let Some(c) = self.conn_mut(conn) else { return };
                c.codec = negotiated.codec.clone();
                c.established = true;
                let local = c.local;
                self.report(SessionEvent::Established {
                    negotiated: Box::new(negotiated),
                    local,
                })
                .await;
            }
            Output::SessionDown { reason } => {
                // RFC 4724 §4.2: a lost connection keeps the peer's routes (as stale); so does
                // hold-timer expiry (the peer may be restarting). A NOTIFICATION exchange or a
                // local stop is a deliberate reset.
                let graceful = match &reason {
                    DownReason::Socket(_) => true,
                    DownReason::Sent(n) => n.code == notification::code::HOLD_TIMER_EXPIRED,
                    DownReason::Received(_) | DownReason::Stopped(_) => false,
                };
                self.report(SessionEvent::Down {
                    reason: reason.to_string(),
                    graceful,
                })
                .await;
            }
            Output::RouteRefresh(rr) => {
                // Subtype 0 asks for our routes; BoRR/EoRR (RFC 7313) only bracket theirs.
                if rr.subtype == 0
                    && let Some(family) = rr.afi_safi.family()
                {
                    self.report(SessionEvent::RouteRefresh(family)).await;
                }
            }
        }
    }

    async fn send_msg(&mut self, id: ConnId, msg: &Message) {
        let Some(c) = self.conn(id) else { return };
        let mut buf = Vec::new();
        match msg {
            Message::Open(o) => packet::encode_open(o, &mut buf),
            Message::Keepalive => packet::encode_keepalive(&mut buf),
            Message::Notification(n) => packet::encode_notification(n, &mut buf),
            Message::RouteRefresh(rr) => packet::encode_route_refresh(rr, &mut buf),
            Message::Update(_) => {
                tracing::error!("the FSM asked to send an UPDATE; UPDATEs come from the core");
                return;
            }
        }
        let _ = c.writer.send(WriteJob::Bytes(buf, None));
        if let Message::Notification(n) = msg {
            tracing::warn!(notification = %n, "sent NOTIFICATION");
            self.report(SessionEvent::NotificationSent(n.clone())).await;
        }
    }

    fn send_batch(&mut self, batch: OutBatch) {
        let Some(id) = self.fsm.established_conn() else {
            // The session went down after the core queued this; the core resets on Down.
            return;
        };
        let Some(c) = self.conn(id) else { return };
        let mut buf = Vec::new();
        let mut messages = 0u64;
        if !batch.withdraw.is_empty() {
            messages += packet::encode_withdraw(&c.codec, &batch.withdraw, &mut buf) as u64;
        }
        for (attrs, prefixes) in &batch.announce {
            messages += packet::encode_announce(&c.codec, attrs, prefixes, &mut buf) as u64;
        }
        for family in &batch.end_of_rib {
            packet::encode_end_of_rib(&c.codec, *family, &mut buf);
            messages += 1;
        }
        let _ = c.writer.send(WriteJob::Bytes(buf, Some(messages)));
    }

    /// Hand decoded UPDATEs to the core (awaiting: a busy core slows our reads).
    async fn flush_updates(&mut self) {
        if self.updates.is_empty() {
            return;
        }
        let updates = std::mem::take(&mut self.updates);
        let _ = self
            .core
            .send(CoreMsg::Session {
                slot: self.slot,
                generation: self.generation,
                event: SessionEvent::Updates(updates),
            })
            .await;
    }

    /// Tell the core something, after any UPDATEs that came before it.
    async fn report(&mut self, event: SessionEvent) {
        self.flush_updates().await;
        let _ = self
            .core
            .send(CoreMsg::Session {
                slot: self.slot,
                generation: self.generation,
                event,
            })
            .await;
    }
}

/// Close a connection: its writer flushes what was queued, then shuts the socket down; a
/// writer stuck on a peer that does not read is aborted after `CLOSE_GRACE`. Returns the
/// writer task.
fn close_conn(c: Conn) -> JoinHandle<()> {
    let _ = c.writer.send(WriteJob::Close(Some(c.read)));
    let abort = c.writer_task.abort_handle();
    tokio::spawn(async move {
        tokio::time::sleep(CLOSE_GRACE).await;
        abort.abort();
    });
    c.writer_task
}
