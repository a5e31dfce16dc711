//! One raw BGP session of the benchmark (an injector's or the monitor's): connect from a chosen
//! address inside a lab namespace (or take an accepted connection), complete the OPEN/KEEPALIVE
//! handshake, then read everything the other side sends on a thread of its own.
//!
//! Owns: the socket, the reader thread (frames messages, feeds every announced and withdrawn
//! IPv4 route into a `PrefixTracker`, checks the leftmost AS of announcements, notes KEEPALIVEs,
//! NOTIFICATIONs and the end of the connection), writes (serialised by a mutex so a KEEPALIVE
//! never lands inside an UPDATE), and keepalives at a third of the negotiated hold time.
//! Closing: `Drop` shuts the socket down and joins the reader. Must not: decide what to announce
//! (`run` hands it the bytes) or judge a run.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::BenchError;
use super::tracker::PrefixTracker;
use super::wire::{self, UpdateView, WireError};
use crate::netns::Netns;
use crate::rawpeer::msg::{self, HEADER_LEN, Open, msg_type};
use crate::setns::thread_in_netns;

/// Hold time the benchmark's speakers propose (seconds, BIRD's and Calico's default).
pub const HOLD_TIME: u16 = 240;
/// Capability code of 4-octet AS numbers (RFC 6793).
const CAP_FOUR_OCTET_AS: u8 = 65;
/// Size of the reader's buffer: many full messages per `read`.
const READ_BUFFER: usize = 256 * 1024;

/// Who we are on a session.
#[derive(Clone, Copy, Debug)]
pub struct Speaker {
    /// Our AS.
    pub asn: u32,
    /// Our address (also the BGP identifier and the next hop we announce).
    pub address: Ipv4Addr,
}

/// What the reader thread saw, shared with the run.
#[derive(Debug, Default)]
pub struct SessionStats {
    /// Octets received after the handshake.
    pub bytes_in: AtomicU64,
    /// UPDATEs received that announce routes (End-of-RIB and pure withdrawals not counted).
    pub announcing_updates: AtomicU64,
    /// UPDATEs that announced routes with an AS_PATH not starting with the expected AS.
    pub wrong_first_as: AtomicU64,
    ended: Mutex<Option<String>>,
}

impl SessionStats {
    /// Why the session ended, if it did (NOTIFICATION, closed connection, malformed bytes).
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn end(&self, why: String) {
        let mut e = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        e.get_or_insert(why);
    }
}

/// An established benchmark session.
#[derive(Debug)]
pub struct Session {
    label: String,
    remote: SocketAddr,
    writer: Mutex<WriteHalf>,
    // A second handle on the socket, so `close` never waits for a blocked writer.
    control: TcpStream,
    keepalive_every: Option<Duration>,
    four_octet: bool,
    stats: Arc<SessionStats>,
    closing: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct WriteHalf {
    stream: TcpStream,
    last_sent: Instant,
}

impl Session {
    /// Connect from `me.address` inside `ns` to `remote`, retrying refused connections until
    /// `deadline` (a daemon may still be opening its port), then complete the handshake.
    /// `peer_as` (when known) is checked against the peer's OPEN and the leftmost AS of every
    /// announcement; what the peer announces and withdraws goes into `tracker`.
    pub fn connect(
        ns: &Netns,
        label: &str,
        me: Speaker,
        remote: SocketAddrV4,
        deadline: Instant,
        tracker: Arc<PrefixTracker>,
        peer_as: Option<u32>,
    ) -> Result<Session, BenchError> {
        let local = SocketAddrV4::new(me.address, 0);
        let mut pause = Duration::from_millis(20);
        let stream = loop {
            let attempt = thread_in_netns(ns, || connect_from(local, remote))?;
            match attempt {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    if !matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::TimedOut | ErrorKind::WouldBlock
                    ) {
                        return Err(BenchError::session(label, format!("connect: {e}")));
                    }
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
                Err(e) => {
                    return Err(BenchError::session(
                        label,
                        format!("connect to {remote} from {local}: {e} (gave up at the deadline)"),
                    ));
                }
            }
        };
        Session::establish(label, stream, me, deadline, tracker, peer_as)
    }

    /// Complete the handshake on an accepted connection (see `connect` for `peer_as`).
    pub fn accept(
        label: &str,
        stream: TcpStream,
        me: Speaker,
        deadline: Instant,
        tracker: Arc<PrefixTracker>,
        peer_as: Option<u32>,
    ) -> Result<Session, BenchError> {
        Session::establish(label, stream, me, deadline, tracker, peer_as)
    }

    /// Send OPEN, read the peer's OPEN, send KEEPALIVE, read its KEEPALIVE (RFC 4271 §8.2.2:
    /// both ends are then Established), then start the reader with whatever arrived behind it.
    fn establish(
        label: &str,
        mut stream: TcpStream,
        me: Speaker,
        deadline: Instant,
        tracker: Arc<PrefixTracker>,
        peer_as: Option<u32>,
    ) -> Result<Session, BenchError> {
        let err = |what: String| BenchError::session(label, what);
        let remote = stream
            .peer_addr()
            .map_err(|e| err(format!("peer address: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| err(format!("TCP_NODELAY: {e}")))?;
        stream
            .write_all(&msg::open(me.asn, HOLD_TIME, me.address))
            .map_err(|e| err(format!("sending OPEN: {e}")))?;
        let mut pending = Vec::new();
        let (t, body) = next_message(&mut stream, &mut pending, deadline, label)?;
        let open = match t {
            msg_type::OPEN => Open::parse(&body).map_err(|e| err(format!("their OPEN: {e}")))?,
            msg_type::NOTIFICATION => return Err(err(describe_notification(&body))),
            other => return Err(err(format!("message type {other} before OPEN"))),
        };
        if let Some(want) = peer_as
            && open.asn() != want
        {
            return Err(err(format!(
                "the peer is AS {}, expected AS {want}",
                open.asn()
            )));
        }
        stream
            .write_all(&msg::keepalive())
            .map_err(|e| err(format!("sending KEEPALIVE: {e}")))?;
        let (t, body) = next_message(&mut stream, &mut pending, deadline, label)?;
        match t {
            msg_type::KEEPALIVE => {}
            msg_type::NOTIFICATION => return Err(err(describe_notification(&body))),
            other => return Err(err(format!("message type {other} before KEEPALIVE"))),
        }
        stream
            .set_read_timeout(None)
            .map_err(|e| err(format!("clearing the read timeout: {e}")))?;
        let hold = open.hold_time.min(HOLD_TIME);
        // RFC 6793 §3: 4-octet AS_PATH only when both sides advertised the capability (we do).
        let four_octet = open.has_capability(CAP_FOUR_OCTET_AS);
        let stats = Arc::new(SessionStats::default());
        let closing = Arc::new(AtomicBool::new(false));
        let read_half = stream
            .try_clone()
            .map_err(|e| err(format!("cloning the socket: {e}")))?;
        let control = stream
            .try_clone()
            .map_err(|e| err(format!("cloning the socket: {e}")))?;
        let reader = {
            let (stats, closing) = (stats.clone(), closing.clone());
            let ctx = ReadContext {
                tracker,
                first_as: peer_as,
                four_octet,
                stats,
                closing,
            };
            thread::Builder::new()
                .name(format!("bench-{label}"))
                .spawn(move || ctx.run(read_half, pending))
                .map_err(|e| err(format!("starting the reader thread: {e}")))?
        };
        Ok(Session {
            label: label.to_string(),
            remote,
            writer: Mutex::new(WriteHalf {
                stream,
                last_sent: Instant::now(),
            }),
            control,
            keepalive_every: (hold > 0).then(|| Duration::from_secs(u64::from(hold / 3).max(1))),
            four_octet,
            stats,
            closing,
            reader: Some(reader),
        })
    }

    /// The session's name in reports.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The other side's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Whether AS_PATHs on this session carry 4-octet ASNs.
    pub fn four_octet(&self) -> bool {
        self.four_octet
    }

    /// What the reader saw.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Write `bytes` (whole messages) to the session; blocks while the peer does not read.
    pub fn send(&self, bytes: &[u8]) -> Result<(), BenchError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        w.stream
            .write_all(bytes)
            .map_err(|e| BenchError::session(&self.label, format!("sending: {e}")))?;
        w.last_sent = Instant::now();
        Ok(())
    }

    /// End the session: the reader stops without reporting an error, a blocked write fails.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        let _ = self.control.shutdown(Shutdown::Both);
    }

    /// Send a KEEPALIVE if a third of the hold time passed since the last write and no other
    /// write is in progress (a long UPDATE burst keeps the peer's hold timer fed by itself).
    pub fn keepalive_if_due(&self) -> Result<(), BenchError> {
        let Some(every) = self.keepalive_every else {
            return Ok(());
        };
        let Ok(mut w) = self.writer.try_lock() else {
            return Ok(());
        };
        if w.last_sent.elapsed() < every {
            return Ok(());
        }
        w.stream
            .write_all(&msg::keepalive())
            .map_err(|e| BenchError::session(&self.label, format!("sending KEEPALIVE: {e}")))?;
        w.last_sent = Instant::now();
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// A TCP connection from `local` (port 0: any) to `remote`, in the calling thread's namespace.
fn connect_from(local: SocketAddrV4, remote: SocketAddrV4) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.bind(&SocketAddr::V4(local).into())?;
    s.connect_timeout(&SocketAddr::V4(remote).into(), Duration::from_secs(5))?;
    Ok(s.into())
}

/// Read until one whole message is buffered in `pending`; return its type and body and keep
/// the rest.
fn next_message(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    deadline: Instant,
    label: &str,
) -> Result<(u8, Vec<u8>), BenchError> {
    let err = |what: String| BenchError::session(label, what);
    loop {
        if let Some((t, body)) = wire::first_message(pending).map_err(|e| err(e.to_string()))? {
            let (t, body) = (t, body.to_vec());
            pending.drain(..HEADER_LEN + body.len());
            return Ok((t, body));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(err("timed out during the handshake".into()));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| err(format!("setting a read timeout: {e}")))?;
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => return Err(err("connection closed during the handshake".into())),
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(err(format!("reading during the handshake: {e}"))),
        }
    }
}

fn describe_notification(body: &[u8]) -> String {
    match msg::parse_notification(body) {
        Ok((code, sub, _)) => format!("NOTIFICATION {code}/{sub} received"),
        Err(e) => format!("malformed NOTIFICATION received: {e}"),
    }
}

/// Everything the reader thread needs.
struct ReadContext {
    tracker: Arc<PrefixTracker>,
    first_as: Option<u32>,
    four_octet: bool,
    stats: Arc<SessionStats>,
    closing: Arc<AtomicBool>,
}

impl ReadContext {
    fn run(self, mut stream: TcpStream, pending: Vec<u8>) {
        let mut buf = vec![0u8; READ_BUFFER];
        let mut filled = pending.len().min(READ_BUFFER);
        buf[..filled].copy_from_slice(&pending[..filled]);
        loop {
            let used =
                match wire::split_messages(&buf[..filled], |t, body| self.on_message(t, body)) {
                    Ok(used) => used,
                    Err(e) => return self.stats.end(e.0),
                };
            buf.copy_within(used..filled, 0);
            filled -= used;
            match stream.read(&mut buf[filled..]) {
                Ok(0) => {
                    if !self.closing.load(Ordering::Acquire) {
                        self.stats.end("connection closed by the peer".into());
                    }
                    return;
                }
                Ok(n) => {
                    filled += n;
                    self.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    if !self.closing.load(Ordering::Acquire) {
                        self.stats.end(format!("reading: {e}"));
                    }
                    return;
                }
            }
        }
    }

    fn on_message(&self, t: u8, body: &[u8]) -> Result<(), WireError> {
        match t {
            msg_type::UPDATE => {
                let u = UpdateView::parse(body)?;
                u.for_each_withdrawn(|p| self.tracker.withdraw(p))?;
                if u.announces() {
                    self.stats
                        .announcing_updates
                        .fetch_add(1, Ordering::Relaxed);
                    if self
                        .first_as
                        .is_some_and(|want| u.first_as(self.four_octet) != Some(want))
                    {
                        self.stats.wrong_first_as.fetch_add(1, Ordering::Relaxed);
                    }
                }
                u.for_each_announced(|p| self.tracker.announce(p))
            }
            msg_type::KEEPALIVE => Ok(()),
            msg_type::NOTIFICATION => Err(WireError(describe_notification(body))),
            other => Err(WireError(format!(
                "unexpected message type {other} on an established session"
            ))),
        }
    }
}
