//! A raw BGP speaker for tests: a TCP connection inside a lab namespace that sends whatever
//! bytes a test builds and reads back framed messages.
//!
//! Owns: connecting or accepting inside a namespace (the socket is created on a thread that
//! entered it, so it stays there), 19-byte-header framing of what the other side sends (nothing
//! more: the length field alone delimits a message, so a test sees exactly what arrived), reads
//! with a deadline, and the OPEN/KEEPALIVE handshake. Builders and readers of message bodies
//! live in `msg`. Must not: use Ginger's codec (a test must be free to send garbage and to
//! judge Ginger's bytes independently).

pub mod msg;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::setns::thread_in_netns;

pub use msg::{Open, Update, UpdateBuilder};

/// One framed message as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    /// The whole message, header included.
    pub bytes: Vec<u8>,
}

impl RawMessage {
    /// The type octet.
    pub fn msg_type(&self) -> u8 {
        self.bytes.get(18).copied().unwrap_or(0)
    }

    /// Everything after the 19-byte header.
    pub fn body(&self) -> &[u8] {
        self.bytes.get(msg::HEADER_LEN..).unwrap_or(&[])
    }

    /// Whether the marker is all ones (RFC 4271 §4.1).
    pub fn marker_ok(&self) -> bool {
        self.bytes.get(..16) == Some(&msg::MARKER[..])
    }

    /// Read the body as an OPEN.
    pub fn open(&self) -> Result<Open> {
        self.expect(msg::msg_type::OPEN, "OPEN")?;
        Open::parse(self.body()).map_err(|e| raw_err("received", e.to_string()))
    }

    /// Read the body as an UPDATE.
    pub fn update(&self) -> Result<Update> {
        self.expect(msg::msg_type::UPDATE, "UPDATE")?;
        Update::parse(self.body()).map_err(|e| raw_err("received", e.to_string()))
    }

    /// Read the body as a NOTIFICATION: (code, subcode, data).
    pub fn notification(&self) -> Result<(u8, u8, Vec<u8>)> {
        self.expect(msg::msg_type::NOTIFICATION, "NOTIFICATION")?;
        msg::parse_notification(self.body()).map_err(|e| raw_err("received", e.to_string()))
    }

    fn expect(&self, t: u8, name: &str) -> Result<()> {
        if self.msg_type() == t {
            Ok(())
        } else {
            Err(raw_err(
                "received",
                format!(
                    "expected {name}, got type {} ({} bytes)",
                    self.msg_type(),
                    self.bytes.len()
                ),
            ))
        }
    }
}

fn raw_err(peer: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::RawPeer {
        peer: peer.into(),
        detail: detail.into(),
    }
}

/// A BGP connection driven byte by byte by the test.
#[derive(Debug)]
pub struct RawPeer {
    stream: TcpStream,
    remote: SocketAddr,
    buf: Vec<u8>,
}

impl RawPeer {
    /// Connect from inside `ns` to `remote` (source address chosen by the namespace's routes).
    pub fn connect(ns: &Netns, remote: SocketAddr, timeout: Duration) -> Result<RawPeer> {
        let stream = thread_in_netns(ns, || TcpStream::connect_timeout(&remote, timeout))?
            .map_err(|e| Error::io(format!("connecting to {remote} from {}", ns.name()), e))?;
        RawPeer::from_stream(stream)
    }

    /// Wrap an established stream.
    pub fn from_stream(stream: TcpStream) -> Result<RawPeer> {
        let remote = stream
            .peer_addr()
            .map_err(|e| Error::io("reading the peer address", e))?;
        // Small hand-built messages must leave at once.
        stream
            .set_nodelay(true)
            .map_err(|e| Error::io(format!("TCP_NODELAY towards {remote}"), e))?;
        Ok(RawPeer {
            stream,
            remote,
            buf: Vec::new(),
        })
    }

    /// The other side's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Our address.
    pub fn local(&self) -> Result<SocketAddr> {
        self.stream
            .local_addr()
            .map_err(|e| Error::io("reading the local address", e))
    }

    /// Send `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).map_err(|e| {
            Error::io(
                format!("sending {} bytes to {}", bytes.len(), self.remote),
                e,
            )
        })
    }

    /// The next framed message, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<RawMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= msg::HEADER_LEN {
                let len = u16::from_be_bytes([self.buf[16], self.buf[17]]) as usize;
                if len < msg::HEADER_LEN {
                    return Err(raw_err(
                        self.remote.to_string(),
                        format!("length field {len} is below the header size"),
                    ));
                }
                if self.buf.len() >= len {
                    let rest = self.buf.split_off(len);
                    let bytes = std::mem::replace(&mut self.buf, rest);
                    return Ok(RawMessage { bytes });
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: format!("a BGP message from {}", self.remote),
                    waited: timeout,
                    last: format!("{} bytes buffered", self.buf.len()),
                });
            }
            self.fill(deadline - now)?;
        }
    }

    /// The next message of type `t`, skipping KEEPALIVEs (and failing on a NOTIFICATION
    /// unless that is what was asked for).
    pub fn recv_type(&mut self, t: u8, timeout: Duration) -> Result<RawMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.recv(left)?;
            if m.msg_type() == t {
                return Ok(m);
            }
            if m.msg_type() == msg::msg_type::NOTIFICATION {
                let (code, sub, _) = m.notification()?;
                return Err(raw_err(
                    self.remote.to_string(),
                    format!("NOTIFICATION {code}/{sub} while waiting for type {t}"),
                ));
            }
        }
    }

    /// Collect UPDATEs until one announces `prefix` or `timeout` passes.
    pub fn recv_update_for(&mut self, prefix: ipnet::Ipv4Net, timeout: Duration) -> Result<Update> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let u = self.recv_type(msg::msg_type::UPDATE, left)?.update()?;
            if u.nlri.contains(&prefix) {
                return Ok(u);
            }
        }
    }

    /// Send `open`, read the peer's OPEN, send KEEPALIVE, read the peer's KEEPALIVE: the session
    /// is then Established on the other side (RFC 4271 §8.2.2). Returns the peer's OPEN.
    pub fn handshake(&mut self, open: &[u8], timeout: Duration) -> Result<Open> {
        let deadline = Instant::now() + timeout;
        self.send(open)?;
        let theirs = self.recv_type(msg::msg_type::OPEN, timeout)?.open()?;
        self.send(&msg::keepalive())?;
        let left = deadline.saturating_duration_since(Instant::now());
        self.recv_type(msg::msg_type::KEEPALIVE, left)?;
        Ok(theirs)
    }

    /// Wait until the other side closes the connection; returns what it sent before closing.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<Vec<RawMessage>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Ok(m) => got.push(m),
                Err(Error::RawPeer { detail, .. }) if detail.starts_with("connection closed") => {
                    return Ok(got);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Read what is available within `left` into the buffer; EOF is an error.
    fn fill(&mut self, left: Duration) -> Result<()> {
        self.stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| Error::io("setting a read timeout", e))?;
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(raw_err(
                self.remote.to_string(),
                format!("connection closed ({} bytes left unframed)", self.buf.len()),
            )),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset) => Err(raw_err(
                self.remote.to_string(),
                format!(
                    "connection closed by reset ({} bytes left unframed)",
                    self.buf.len()
                ),
            )),
            Err(e) => Err(Error::io(format!("reading from {}", self.remote), e)),
        }
    }
}

/// A listening socket inside a namespace that hands out `RawPeer`s.
#[derive(Debug)]
pub struct RawListener {
    listener: TcpListener,
    local: SocketAddr,
}

impl RawListener {
    /// Listen on `addr` inside `ns` (port 0 picks a free one).
    pub fn bind(ns: &Netns, addr: SocketAddr) -> Result<RawListener> {
        let listener = thread_in_netns(ns, || TcpListener::bind(addr))?
            .map_err(|e| Error::io(format!("listening on {addr} in {}", ns.name()), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io("reading the listening address", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(format!("non-blocking listener on {local}"), e))?;
        Ok(RawListener { listener, local })
    }

    /// The address it listens on.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Accept one connection, waiting at most `timeout`.
    pub fn accept(&self, timeout: Duration) -> Result<RawPeer> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream
                        .set_nonblocking(false)
                        .map_err(|e| Error::io("blocking mode on an accepted socket", e))?;
                    return RawPeer::from_stream(stream);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout {
                            what: format!("a connection on {}", self.local),
                            waited: timeout,
                            last: "none".into(),
                        });
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(Error::io(format!("accepting on {}", self.local), e)),
            }
        }
    }
}
