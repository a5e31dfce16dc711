//! `LinkMonitor`: felix's own netlink multicast listener for link events (RTNLGRP_LINK), with a
//! large receive buffer because `ip monitor`-style listeners drop events under bursts. It turns
//! `RTM_NEWLINK`/`RTM_DELLINK` into `LinkEvent`s and reports a receive-buffer overrun (ENOBUFS)
//! as `LinkEvent::Overrun`, after which the reconciler does a full resync. With
//! `NETLINK_LISTEN_ALL_NSID` it also hears links change in every namespace that has an id here
//! (the pods' namespaces, once a workload veth joins them): such a message carries its
//! namespace id as ancillary data and becomes `LinkEvent::ChangedElsewhere`, never confused with
//! a link of this namespace; deletions elsewhere are dropped (the veth's near end reports its own).
//! It must be opened on the thread (namespace) and inside the tokio runtime that will poll it;
//! it never writes.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::io::unix::AsyncFd;
use tracing::warn;

use crate::dataplane::codec::link_from_message;
use crate::model::Link;
use crate::nlsock::{NetlinkError, frames};

/// `RTMGRP_LINK`: the legacy bitmask for the link multicast group.
const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const MONITOR_BUFFER: usize = 16 << 20;
/// A link notification is a few KiB; a datagram holds one.
const DATAGRAM: usize = 64 << 10;

/// Something happened to a link (or events were lost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link of this namespace appeared or changed (flags, name, MTU…).
    Changed(Link),
    /// A link of this namespace was deleted.
    Deleted { index: u32 },
    /// A link appeared or changed in the namespace that has id `nsid` here (its `index` is an
    /// ifindex of that namespace): e.g. a pod's `eth0` whose MAC a later CNI plugin set.
    ChangedElsewhere { nsid: i32, link: Link },
    /// Events were dropped; nothing about links can be trusted until a full resync.
    Overrun,
}

/// The link-event listener (see the module doc).
pub struct LinkMonitor {
    fd: AsyncFd<Socket>,
    buf: Vec<u8>,
    cmsg: Vec<u8>,
}

impl LinkMonitor {
    /// Subscribes to link events in the calling thread's namespace, and in the namespaces that
    /// have an id there. Needs a tokio runtime with IO.
    pub fn open() -> Result<Self, NetlinkError> {
        let io = |context| move |source| NetlinkError::Io { context, source };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(io("socket(NETLINK_ROUTE)"))?;
        sock.bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(io("bind RTMGRP_LINK"))?;
        if let Err(e) = sock.set_listen_all_namespaces(true) {
            // Without it pod-side MAC changes are seen only at the next resync.
            warn!(error = %e, "NETLINK_LISTEN_ALL_NSID refused: pod-side link changes wait for the resync");
        }
        if crate::sys::force_receive_buffer(sock.as_fd(), MONITOR_BUFFER).is_err() {
            sock.set_rx_buf_sz(MONITOR_BUFFER as i32)
                .map_err(io("SO_RCVBUF"))?;
        }
        sock.set_non_blocking(true).map_err(io("O_NONBLOCK"))?;
        let fd = crate::sys::register_readable(sock).map_err(io("register with tokio"))?;
        Ok(LinkMonitor {
            fd,
            buf: vec![0; DATAGRAM],
            cmsg: nix::cmsg_space!(i32, i32),
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
                let (buf, cmsg) = (&mut self.buf, &mut self.cmsg);
                match guard.try_io(|sock| receive(sock.get_ref(), buf, cmsg)) {
                    Ok(Ok(Datagram::Whole { len, nsid })) => {
                        events.extend(parse_events(&self.buf[..len], nsid))
                    }
                    // Part of a datagram (or its namespace id) was cut: as good as lost.
                    Ok(Ok(Datagram::Truncated)) => events.push(LinkEvent::Overrun),
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

/// One received datagram.
enum Datagram {
    /// `len` bytes, from the namespace with id `nsid` here (`None`: this namespace).
    Whole { len: usize, nsid: Option<i32> },
    /// The data or the ancillary data did not fit.
    Truncated,
}

/// `recvmsg` of one datagram with its `NETLINK_LISTEN_ALL_NSID` ancillary data (an `i32` at
/// level `SOL_NETLINK`; absent for this namespace's own messages).
fn receive(sock: &Socket, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_DONTWAIT,
    )?;
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        return Ok(Datagram::Truncated);
    }
    let Ok(cmsgs) = msg.cmsgs() else {
        return Ok(Datagram::Truncated);
    };
    let mut nsid = None;
    for c in cmsgs {
        if let ControlMessageOwned::Unknown(u) = c
            && u.cmsg_header.cmsg_level == libc::SOL_NETLINK
            && u.cmsg_header.cmsg_type == libc::NETLINK_LISTEN_ALL_NSID
        {
            nsid = u
                .data_bytes
                .get(..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        }
    }
    Ok(Datagram::Whole {
        len: msg.bytes,
        nsid,
    })
}

/// Decodes the link events in one datagram from the namespace `nsid` (`None`: this one);
/// undecodable messages are skipped.
pub fn parse_events(datagram: &[u8], nsid: Option<i32>) -> Vec<LinkEvent> {
    let mut out = Vec::new();
    for (hdr, _) in frames(datagram) {
        if hdr.kind != RTM_NEWLINK && hdr.kind != RTM_DELLINK {
            continue;
        }
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(hdr.whole) else {
            continue;
        };
        let rtnetlink::packet_core::NetlinkPayload::InnerMessage(inner) = msg.payload else {
            continue;
        };
        match (inner, nsid) {
            (RouteNetlinkMessage::NewLink(l), None) => {
                out.extend(link_from_message(&l).map(LinkEvent::Changed));
            }
            (RouteNetlinkMessage::NewLink(l), Some(nsid)) => {
                out.extend(
                    link_from_message(&l).map(|link| LinkEvent::ChangedElsewhere { nsid, link }),
                );
            }
            (RouteNetlinkMessage::DelLink(l), None) => out.push(LinkEvent::Deleted {
                index: l.header.index,
            }),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_core::{NetlinkHeader, NetlinkPayload};
    use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};

    use super::*;
    use crate::model::MacAddr;

    fn datagram(msgs: Vec<RouteNetlinkMessage>) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(m));
            nl.finalize();
            let start = out.len();
            out.resize(start + nl.buffer_len().next_multiple_of(4), 0);
            nl.serialize(&mut out[start..start + nl.buffer_len()]);
        }
        out
    }

    fn eth0(index: u32, mac: [u8; 6]) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName("eth0".into()));
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        m
    }

    #[test]
    fn events_from_another_namespace_are_kept_apart() {
        let mac = [0xc2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
        let d = datagram(vec![
            RouteNetlinkMessage::NewLink(eth0(2, mac)),
            RouteNetlinkMessage::DelLink(eth0(3, mac)),
        ]);
        let link = Link {
            index: 2,
            name: "eth0".into(),
            up: false,
            running: false,
            mtu: 0,
            mac: Some(MacAddr(mac)),
        };
        assert_eq!(
            parse_events(&d, None),
            vec![
                LinkEvent::Changed(link.clone()),
                LinkEvent::Deleted { index: 3 }
            ]
        );
        // Ifindex 2 of namespace 5 is not link 2 here, and its deletion is not ours either.
        assert_eq!(
            parse_events(&d, Some(5)),
            vec![LinkEvent::ChangedElsewhere { nsid: 5, link }]
        );
        // A cut datagram yields what is whole in it.
        assert_eq!(parse_events(&d[..d.len() - 8], None).len(), 1);
    }
}
