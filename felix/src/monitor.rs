//! `LinkMonitor`: felix's own netlink multicast listener for link events (RTNLGRP_LINK), with a
//! large receive buffer because `ip monitor`-style listeners drop events under bursts. It turns
//! `RTM_NEWLINK`/`RTM_DELLINK` into `LinkEvent`s and reports a receive-buffer overrun (ENOBUFS)
//! as `LinkEvent::Overrun`, after which the reconciler does a full resync. It must be opened on
//! the thread (namespace) and inside the tokio runtime that will poll it; it never writes.

use std::io;
use std::os::fd::AsFd;

use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::io::unix::AsyncFd;

use crate::dataplane::codec::link_from_message;
use crate::model::Link;
use crate::nlsock::{NetlinkError, frames};

/// `RTMGRP_LINK`: the legacy bitmask for the link multicast group.
const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const MONITOR_BUFFER: usize = 16 << 20;

/// Something happened to a link (or events were lost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link appeared or changed (flags, name, MTU…).
    Changed(Link),
    /// A link was deleted.
    Deleted { index: u32 },
    /// Events were dropped; nothing about links can be trusted until a full resync.
    Overrun,
}

/// The link-event listener (see the module doc).
pub struct LinkMonitor {
    fd: AsyncFd<Socket>,
    buf: Vec<u8>,
}

impl LinkMonitor {
    /// Subscribes to link events in the calling thread's namespace. Needs a tokio runtime with IO.
    pub fn open() -> Result<Self, NetlinkError> {
        let io = |context| move |source| NetlinkError::Io { context, source };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(io("socket(NETLINK_ROUTE)"))?;
        sock.bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(io("bind RTMGRP_LINK"))?;
        if crate::sys::force_receive_buffer(sock.as_fd(), MONITOR_BUFFER).is_err() {
            sock.set_rx_buf_sz(MONITOR_BUFFER as i32)
                .map_err(io("SO_RCVBUF"))?;
        }
        sock.set_non_blocking(true).map_err(io("O_NONBLOCK"))?;
        let fd = crate::sys::register_readable(sock).map_err(io("register with tokio"))?;
        Ok(LinkMonitor {
            fd,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// Waits for at least one event and returns every event already queued.
    pub async fn next_events(&mut self) -> Result<Vec<LinkEvent>, NetlinkError> {
        let mut events = Vec::new();
        while events.is_empty() {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|source| NetlinkError::Io {
                    context: "poll link monitor",
                    source,
                })?;
            loop {
                self.buf.clear();
                let buf = &mut self.buf;
                match guard.try_io(|sock| sock.get_ref().recv(buf, 0)) {
                    Ok(Ok(_)) => events.extend(parse_events(&self.buf)),
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        events.push(LinkEvent::Overrun)
                    }
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(Err(source)) => {
                        return Err(NetlinkError::Io {
                            context: "recv link event",
                            source,
                        });
                    }
                    Err(_would_block) => break,
                }
            }
        }
        Ok(events)
    }
}

/// Decodes the link events in one datagram; undecodable messages are skipped.
pub fn parse_events(datagram: &[u8]) -> Vec<LinkEvent> {
    let mut out = Vec::new();
    for (hdr, _) in frames(datagram) {
        if hdr.kind != RTM_NEWLINK && hdr.kind != RTM_DELLINK {
            continue;
        }
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(hdr.whole) else {
            continue;
        };
        match msg.payload {
            rtnetlink::packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(
                l,
            )) => {
                if let Some(link) = link_from_message(&l) {
                    out.push(LinkEvent::Changed(link));
                }
            }
            rtnetlink::packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(
                l,
            )) => {
                out.push(LinkEvent::Deleted {
                    index: l.header.index,
                });
            }
            _ => {}
        }
    }
    out
}
