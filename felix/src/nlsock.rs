//! `NlSocket`: a blocking NETLINK_ROUTE request socket in the calling thread's network namespace.
//! It frames `netlink-packet-route` messages, sends many requests per `sendmsg` and matches every
//! ACK or error to its request by sequence number, runs dumps (refusing interrupted ones), and
//! does single request/reply exchanges. It knows nothing about routes' meaning: callers build
//! and interpret the messages. Because the kernel handles a NETLINK_ROUTE `sendmsg`
//! synchronously, every reply to a batch is queued once `send` returns, so replies are drained
//! without blocking.

use std::io;
use std::os::fd::AsFd;

use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{Socket, protocols::NETLINK_ROUTE};

/// Receive buffer we ask for (forced past `rmem_max` when we may): room for a batch's ACKs.
const RECEIVE_BUFFER: usize = 8 << 20;
/// Most requests per `sendmsg`; bounded by the send buffer and by how many ACKs fit.
const MAX_BATCH: usize = 1024;
/// Most bytes per `sendmsg` (the default `wmem` is about 208 KiB).
const MAX_BATCH_BYTES: usize = 96 << 10;
/// A kernel dump datagram is at most 32 KiB; leave headroom.
const RECV_CHUNK: usize = 64 << 10;
/// `NLM_F_CAPPED`: the error payload carries only the request's header.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS`: extended-ACK attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the kernel's human-readable error string.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A netlink failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {context}: {source}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
    #[error("{request}: {}", kernel_message(*errno, message))]
    Kernel {
        request: String,
        errno: i32,
        message: String,
    },
    #[error("netlink dump of {what} was interrupted by a concurrent change")]
    DumpInterrupted { what: String },
    #[error("netlink receive buffer overrun (ENOBUFS) while waiting for {what}: replies were lost")]
    Overrun { what: String },
    #[error("cannot decode netlink reply to {what}: {detail}")]
    Decode { what: String, detail: String },
}

impl NetlinkError {
    /// The kernel's errno for a refused request, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

fn kernel_message(errno: i32, extack: &str) -> String {
    let base = io::Error::from_raw_os_error(errno).to_string();
    if extack.is_empty() {
        base
    } else {
        format!("{base}: {extack}")
    }
}

/// The kernel's answer to one request of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ack,
    /// Refused: positive errno and the extended-ACK message, if any.
    Error {
        errno: i32,
        message: String,
    },
    /// No answer arrived because the receive buffer overflowed.
    Lost,
}

/// How a batch learns that its requests succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// `NLM_F_ACK` on every request: one ACK (one `recvmsg`) per request.
    EveryRequest,
    /// The kernel reports only failures (each matched by sequence number); an ACKed
    /// `NLMSG_NOOP` closes each `sendmsg`, so its ACK proves every earlier request was handled.
    /// Half the system calls of `EveryRequest`.
    ErrorsAndBarrier,
}

/// A blocking NETLINK_ROUTE socket.
pub struct NlSocket {
    sock: Socket,
    seq: u32,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// Requests that change kernel state (batch entries and `request`s) sent so far.
    pub writes: u64,
    /// How `batch` collects answers.
    pub ack_mode: AckMode,
}

impl NlSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        let io = |context| move |source| NetlinkError::Io { context, source };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(io("socket(NETLINK_ROUTE)"))?;
        sock.bind_auto().map_err(io("bind"))?;
        sock.set_cap_ack(true).map_err(io("NETLINK_CAP_ACK"))?;
        sock.set_ext_ack(true).map_err(io("NETLINK_EXT_ACK"))?;
        sock.set_netlink_get_strict_chk(true)
            .map_err(io("NETLINK_GET_STRICT_CHK"))?;
        if crate::sys::force_receive_buffer(sock.as_fd(), RECEIVE_BUFFER).is_err() {
            // Without CAP_NET_ADMIN the buffer stays at rmem_max; batches still work, smaller.
            sock.set_rx_buf_sz(RECEIVE_BUFFER as i32)
                .map_err(io("SO_RCVBUF"))?;
        }
        Ok(NlSocket {
            sock,
            seq: 1,
            rbuf: Vec::with_capacity(RECV_CHUNK),
            wbuf: Vec::with_capacity(MAX_BATCH_BYTES + 4096),
            writes: 0,
            ack_mode: AckMode::ErrorsAndBarrier,
        })
    }

    fn next_seq(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n).max(1);
        s
    }

    fn encode(buf: &mut Vec<u8>, msg: RouteNetlinkMessage, flags: u16, seq: u32) {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let start = buf.len();
        let len = nl.buffer_len();
        // Each message starts 4-byte aligned (NLMSG_ALIGN).
        buf.resize(start + len.next_multiple_of(4), 0);
        nl.serialize(&mut buf[start..start + len]);
    }

    fn send_buf(&mut self) -> Result<(), NetlinkError> {
        let sent = self
            .sock
            .send(&self.wbuf, 0)
            .map_err(|source| NetlinkError::Io {
                context: "sendmsg",
                source,
            })?;
        if sent != self.wbuf.len() {
            let source =
                io::Error::other(format!("short send: {sent} of {} bytes", self.wbuf.len()));
            return Err(NetlinkError::Io {
                context: "sendmsg",
                source,
            });
        }
        Ok(())
    }

    /// Receives one datagram into `rbuf`; `Ok(false)` when nothing is queued (non-blocking).
    fn recv_datagram(&mut self, nonblocking: bool) -> Result<bool, NetlinkError> {
        self.rbuf.clear();
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        loop {
            match self.sock.recv(&mut self.rbuf, flags) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(NetlinkError::Io {
                        context: "recvmsg",
                        source,
                    });
                }
            }
        }
    }

    /// Sends the messages several per `sendmsg` and returns one reply per message, in order.
    /// Errors are attributed to their request by sequence number; successes are known from
    /// per-request ACKs or from the batch's closing barrier ACK (see `AckMode`).
    pub fn batch(
        &mut self,
        msgs: Vec<(RouteNetlinkMessage, u16)>,
    ) -> Result<Vec<Reply>, NetlinkError> {
        let mut replies = Vec::with_capacity(msgs.len());
        let mut iter = msgs.into_iter().peekable();
        while iter.peek().is_some() {
            self.wbuf.clear();
            let base = self.next_seq(MAX_BATCH as u32 + 1);
            let ack = match self.ack_mode {
                AckMode::EveryRequest => NLM_F_ACK,
                AckMode::ErrorsAndBarrier => 0,
            };
            let mut n = 0usize;
            while n < MAX_BATCH && self.wbuf.len() < MAX_BATCH_BYTES {
                let Some((msg, flags)) = iter.next() else {
                    break;
                };
                let seq = base.wrapping_add(n as u32);
                Self::encode(&mut self.wbuf, msg, flags | NLM_F_REQUEST | ack, seq);
                n += 1;
            }
            let barrier_seq = base.wrapping_add(n as u32);
            if self.ack_mode == AckMode::ErrorsAndBarrier {
                // NLMSG_NOOP with ACK: the kernel acknowledges it after every request before it.
                self.wbuf.extend_from_slice(&16u32.to_ne_bytes());
                self.wbuf.extend_from_slice(&NLMSG_NOOP.to_ne_bytes());
                self.wbuf
                    .extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
                self.wbuf.extend_from_slice(&barrier_seq.to_ne_bytes());
                self.wbuf.extend_from_slice(&0u32.to_ne_bytes());
            }
            self.send_buf()?;
            self.writes += n as u64;
            let mut chunk: Vec<Option<Reply>> = vec![None; n];
            let mut barrier_acked = false;
            loop {
                match self.recv_datagram(true) {
                    Ok(true) => {}
                    Ok(false) => break,
                    // Some answers were dropped; they stay `Lost` below.
                    Err(e) if e.errno() == Some(libc::ENOBUFS) => continue,
                    Err(e) => return Err(e),
                }
                for (hdr, payload) in frames(&self.rbuf) {
                    if hdr.kind != NLMSG_ERROR {
                        continue;
                    }
                    let idx = hdr.seq.wrapping_sub(base) as usize;
                    if idx < n {
                        chunk[idx] = Some(parse_error_payload(hdr.flags, payload));
                    } else if hdr.seq == barrier_seq {
                        barrier_acked = true;
                    }
                }
            }
            // Every answer is queued before `send` returns; a missing one was dropped. Without
            // per-request ACKs, silence means success only if the barrier's ACK arrived.
            let silent = match self.ack_mode {
                AckMode::ErrorsAndBarrier if barrier_acked => Reply::Ack,
                _ => Reply::Lost,
            };
            replies.extend(
                chunk
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| silent.clone())),
            );
        }
        Ok(replies)
    }

    /// Sends one state-changing request and waits for its ACK.
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<(), NetlinkError> {
        match self.batch(vec![(msg, flags)])?.pop() {
            Some(Reply::Ack) => Ok(()),
            Some(Reply::Error { errno, message }) => Err(NetlinkError::Kernel {
                request: what.to_string(),
                errno,
                message,
            }),
            _ => Err(NetlinkError::Overrun {
                what: what.to_string(),
            }),
        }
    }

    /// Sends a GET request (no dump) and returns the kernel's one reply.
    pub fn get(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<RouteNetlinkMessage, NetlinkError> {
        self.wbuf.clear();
        let seq = self.next_seq(1);
        Self::encode(&mut self.wbuf, msg, NLM_F_REQUEST, seq);
        self.send_buf()?;
        loop {
            self.recv_datagram(false)?;
            for (hdr, payload) in frames(&self.rbuf) {
                if hdr.seq != seq {
                    continue;
                }
                if hdr.kind == NLMSG_ERROR {
                    return match parse_error_payload(hdr.flags, payload) {
                        Reply::Error { errno, message } => Err(NetlinkError::Kernel {
                            request: what.to_string(),
                            errno,
                            message,
                        }),
                        _ => Err(NetlinkError::Decode {
                            what: what.to_string(),
                            detail: "ACK without a reply".into(),
                        }),
                    };
                }
                return decode(hdr.whole, what);
            }
        }
    }

    /// Runs a dump and returns every message of it; fails if the kernel flagged the dump as
    /// interrupted (`NLM_F_DUMP_INTR`), so callers never act on an inconsistent view.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.wbuf.clear();
        let seq = self.next_seq(1);
        Self::encode(&mut self.wbuf, msg, NLM_F_REQUEST | NLM_F_DUMP, seq);
        self.send_buf()?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            match self.recv_datagram(false) {
                Ok(_) => {}
                Err(e) if e.errno() == Some(libc::ENOBUFS) => {
                    return Err(NetlinkError::Overrun {
                        what: what.to_string(),
                    });
                }
                Err(e) => return Err(e),
            }
            let mut done = false;
            for (hdr, payload) in frames(&self.rbuf) {
                if hdr.seq != seq {
                    continue;
                }
                interrupted |= hdr.flags & NLM_F_DUMP_INTR != 0;
                match hdr.kind {
                    NLMSG_DONE => {
                        let code = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if let Some(code) = code.filter(|c| *c < 0) {
                            let request = what.to_string();
                            return Err(NetlinkError::Kernel {
                                request,
                                errno: -code,
                                message: String::new(),
                            });
                        }
                        done = true;
                    }
                    NLMSG_ERROR => {
                        if let Reply::Error { errno, message } =
                            parse_error_payload(hdr.flags, payload)
                        {
                            return Err(NetlinkError::Kernel {
                                request: what.to_string(),
                                errno,
                                message,
                            });
                        }
                    }
                    _ => match decode(hdr.whole, what) {
                        Ok(m) => out.push(m),
                        // One object the codec cannot read must not blind felix to the rest.
                        Err(e) => tracing::warn!(error = %e, "skipping an undecodable dump entry"),
                    },
                }
            }
            if done {
                break;
            }
        }
        if interrupted {
            return Err(NetlinkError::DumpInterrupted {
                what: what.to_string(),
            });
        }
        Ok(out)
    }
}

/// The fields of one netlink message header, and the whole message.
pub(crate) struct Frame<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub whole: &'a [u8],
}

/// Splits a datagram into messages; stops at the first malformed length (never panics).
pub(crate) fn frames(buf: &[u8]) -> impl Iterator<Item = (Frame<'_>, &[u8])> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let rest = buf.get(off..)?;
        let h = rest.get(..16)?;
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < 16 || len > rest.len() {
            return None;
        }
        let frame = Frame {
            kind: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            whole: &rest[..len],
        };
        off += len.next_multiple_of(4);
        let payload = &rest[16..len];
        Some((frame, payload))
    })
}

/// Reads an `nlmsgerr` payload: the code, then (capped) the request header, then extack TLVs.
fn parse_error_payload(flags: u16, payload: &[u8]) -> Reply {
    let Some(code) = payload
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return Reply::Error {
            errno: libc::EPROTO,
            message: "truncated netlink error".into(),
        };
    };
    if code == 0 {
        return Reply::Ack;
    }
    let mut message = String::new();
    if flags & NLM_F_ACK_TLVS != 0 {
        let orig_len = if flags & NLM_F_CAPPED != 0 {
            16
        } else {
            payload.get(4..8).map_or(16, |b| {
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize
            })
        };
        let mut off = 4 + orig_len.next_multiple_of(4);
        while let Some(tlv) = payload.get(off..off + 4) {
            let tlen = u16::from_ne_bytes([tlv[0], tlv[1]]) as usize;
            let ttype = u16::from_ne_bytes([tlv[2], tlv[3]]) & 0x3fff;
            if tlen < 4 {
                break;
            }
            if ttype == NLMSGERR_ATTR_MSG
                && let Some(v) = payload.get(off + 4..off + tlen)
            {
                message = String::from_utf8_lossy(v)
                    .trim_end_matches('\0')
                    .to_string();
            }
            off += tlen.next_multiple_of(4);
        }
    }
    Reply::Error {
        errno: -code,
        message,
    }
}

fn decode(whole: &[u8], what: &str) -> Result<RouteNetlinkMessage, NetlinkError> {
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(whole).map_err(|e| {
        NetlinkError::Decode {
            what: what.to_string(),
            detail: e.to_string(),
        }
    })?;
    match msg.payload {
        NetlinkPayload::InnerMessage(inner) => Ok(inner),
        other => Err(NetlinkError::Decode {
            what: what.to_string(),
            detail: format!("unexpected {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = 16 + payload.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        v.resize(len.next_multiple_of(4), 0);
        v
    }

    #[test]
    fn frames_split_and_stop_on_garbage() {
        let mut d = msg(NLMSG_ERROR, 0, 7, &0i32.to_ne_bytes());
        d.extend(msg(NLMSG_ERROR, 0, 8, &(-17i32).to_ne_bytes()));
        let seqs: Vec<u32> = frames(&d).map(|(f, _)| f.seq).collect();
        assert_eq!(seqs, vec![7, 8]);
        // A length field larger than the datagram ends the walk instead of panicking.
        let mut bad = msg(NLMSG_ERROR, 0, 9, &[0; 4]);
        bad[0] = 200;
        assert_eq!(frames(&bad).count(), 0);
        assert_eq!(frames(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn error_payload_with_extack_message() {
        let mut p = Vec::new();
        p.extend_from_slice(&(-libc::ENODEV).to_ne_bytes());
        p.extend_from_slice(&[0u8; 16]); // capped request header
        let text = b"Device not found\0";
        p.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(text);
        let r = parse_error_payload(NLM_F_CAPPED | NLM_F_ACK_TLVS, &p);
        assert_eq!(
            r,
            Reply::Error {
                errno: libc::ENODEV,
                message: "Device not found".into()
            }
        );
        assert_eq!(parse_error_payload(0, &0i32.to_ne_bytes()), Reply::Ack);
        assert!(matches!(
            parse_error_payload(0, &[1]),
            Reply::Error {
                errno: libc::EPROTO,
                ..
            }
        ));
    }
}
