//! `NetlinkDataplane`: the real kernel of the calling thread's network namespace. Ops become
//! `RTM_NEWROUTE`/`RTM_DELROUTE`/`RTM_NEWNEIGH`/`RTM_DELNEIGH` requests sent many per `sendmsg`
//! (`NlSocket::batch`), each ACK or error matched to its op by sequence number. "Already gone" on
//! delete and "already there, identical" on add count as success. The far end of a workload veth
//! is found with two `RTM_GETLINK`s: the near link's `IFLA_LINK`/`IFLA_LINK_NETNSID`, then that
//! ifindex inside the other namespace via `IFLA_TARGET_NETNSID`. Sysctls are files under
//! `/proc/sys`, which the kernel resolves in the calling thread's namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::codec;
use super::{Dataplane, DataplaneError, OpError, interpret_lookup};
use crate::model::{Link, LinkPeer, Neighbour, RT_TABLE_MAIN, Resolution, Route};
use crate::nlsock::{AckMode, NetlinkError, NlSocket, Reply};
use crate::plan::Op;

const FAMILIES: [AddressFamily; 2] = [AddressFamily::Inet, AddressFamily::Inet6];

/// The kernel dataplane (see the module doc).
pub struct NetlinkDataplane {
    sock: NlSocket,
    sysctl_writes: u64,
}

impl NetlinkDataplane {
    /// Opens the netlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        Ok(NetlinkDataplane {
            sock: NlSocket::open()?,
            sysctl_writes: 0,
        })
    }

    /// Chooses how batch successes are confirmed (default: errors plus a barrier ACK).
    pub fn set_ack_mode(&mut self, mode: AckMode) {
        self.sock.ack_mode = mode;
    }

    /// The route/neighbour messages for `ops`, with their netlink flags.
    fn messages(ops: &[Op]) -> Vec<(RouteNetlinkMessage, u16)> {
        ops.iter()
            .map(|op| match op {
                Op::AddRoute(r) => (
                    RouteNetlinkMessage::NewRoute(codec::route_message(r)),
                    NLM_F_CREATE | NLM_F_EXCL,
                ),
                Op::ReplaceRoute(r) => (
                    RouteNetlinkMessage::NewRoute(codec::route_message(r)),
                    NLM_F_CREATE | NLM_F_REPLACE,
                ),
                Op::DeleteRoute(r) => (
                    RouteNetlinkMessage::DelRoute(codec::route_delete_message(r)),
                    0,
                ),
                Op::SetNeighbour(n) => (
                    RouteNetlinkMessage::NewNeighbour(codec::neighbour_message(n)),
                    NLM_F_CREATE | NLM_F_REPLACE,
                ),
                Op::DeleteNeighbour(n) => (
                    RouteNetlinkMessage::DelNeighbour(codec::neighbour_message(n)),
                    0,
                ),
            })
            .collect()
    }

    fn dump_routes(
        &mut self,
        family: AddressFamily,
        oif: Option<u32>,
    ) -> Result<Vec<Route>, NetlinkError> {
        let req = RouteNetlinkMessage::GetRoute(codec::route_dump_request(family, oif));
        let msgs = match self.sock.dump(req, "route dump") {
            Err(e) if oif.is_some() && e.errno() == Some(libc::ENODEV) => return Ok(Vec::new()),
            other => other?,
        };
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => codec::route_from_message(r),
                _ => None,
            })
            .filter(|r| r.table == RT_TABLE_MAIN && oif.is_none_or(|i| r.uses_link(i)))
            .collect())
    }
}

impl Dataplane for NetlinkDataplane {
    fn list_links(&mut self) -> Result<Vec<Link>, DataplaneError> {
        let msgs = self.sock.dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            "link dump",
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => codec::link_from_message(l),
                _ => None,
            })
            .collect())
    }

    fn list_routes(&mut self, oif: Option<u32>) -> Result<Vec<Route>, DataplaneError> {
        let mut out = Vec::new();
        for f in FAMILIES {
            out.extend(self.dump_routes(f, oif)?);
        }
        Ok(out)
    }

    fn list_neighbours(&mut self, ifindex: Option<u32>) -> Result<Vec<Neighbour>, DataplaneError> {
        let mut out = Vec::new();
        for f in FAMILIES {
            let req = RouteNetlinkMessage::GetNeighbour(codec::neighbour_dump_request(f, ifindex));
            let msgs = match self.sock.dump(req, "neighbour dump") {
                Err(e) if ifindex.is_some() && e.errno() == Some(libc::ENODEV) => continue,
                other => other?,
            };
            out.extend(msgs.iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => codec::neighbour_from_message(n),
                _ => None,
            }));
        }
        if let Some(i) = ifindex {
            out.retain(|n| n.ifindex == i);
        }
        Ok(out)
    }

    fn read_peers(&mut self, links: &[u32]) -> Result<BTreeMap<u32, LinkPeer>, DataplaneError> {
        let mut out = BTreeMap::new();
        for &index in links {
            let req = RouteNetlinkMessage::GetLink(codec::link_get_request(index));
            let near = match self.sock.get(req, "link lookup") {
                Ok(RouteNetlinkMessage::NewLink(m)) => m,
                Ok(_) => continue,
                // The link vanished since the dump; its event follows.
                Err(e) if e.errno() == Some(libc::ENODEV) => continue,
                Err(e) => return Err(e.into()),
            };
            let Some((nsid, ifindex)) = codec::link_peer_of(&near) else {
                continue;
            };
            let req =
                RouteNetlinkMessage::GetLink(codec::link_get_in_namespace_request(nsid, ifindex));
            let mac = match self.sock.get(req, "far-end link lookup") {
                Ok(RouteNetlinkMessage::NewLink(m)) => {
                    codec::link_from_message(&m).and_then(|l| l.mac)
                }
                Ok(_) => None,
                // Gone (ENODEV) or its namespace lost its id (EINVAL): the reported MAC stays.
                Err(NetlinkError::Kernel { errno, .. }) => {
                    tracing::debug!(link = index, nsid, ifindex, errno, "far end unreadable");
                    None
                }
                Err(e) => return Err(e.into()),
            };
            out.insert(index, LinkPeer { nsid, ifindex, mac });
        }
        Ok(out)
    }

    fn resolve(
        &mut self,
        next_hop: IpAddr,
        own_protocol: u8,
    ) -> Result<Resolution, DataplaneError> {
        if let IpAddr::V6(v6) = next_hop
            && v6.is_unicast_link_local()
        {
            let reason = "a link-local next hop needs an interface".to_string();
            return Ok(Resolution::Unresolvable { reason });
        }
        let req = RouteNetlinkMessage::GetRoute(codec::route_lookup_request(next_hop));
        match self.sock.get(req, "next-hop lookup") {
            Ok(RouteNetlinkMessage::NewRoute(m)) => Ok(interpret_lookup(
                next_hop,
                codec::route_from_message(&m).as_ref(),
                own_protocol,
            )),
            Ok(_) => Ok(interpret_lookup(next_hop, None, own_protocol)),
            Err(NetlinkError::Kernel { errno, .. }) => Ok(Resolution::Unresolvable {
                reason: format!(
                    "no route to the next hop ({})",
                    std::io::Error::from_raw_os_error(errno)
                ),
            }),
            Err(e) => Err(e.into()),
        }
    }

    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), OpError>> {
        if ops.is_empty() {
            return Vec::new();
        }
        let replies = match self.sock.batch(Self::messages(ops)) {
            Ok(r) => r,
            Err(e) => {
                let errno = e.errno().unwrap_or(libc::EIO);
                let msg = e.to_string();
                return ops
                    .iter()
                    .map(|op| Err(OpError::new(op, errno, msg.clone())))
                    .collect();
            }
        };
        let mut results = Vec::with_capacity(ops.len());
        let mut exists = Vec::new();
        for (i, (op, reply)) in ops.iter().zip(replies).enumerate() {
            let r = match (op, reply) {
                (_, Reply::Ack) => Ok(()),
                (Op::DeleteRoute(_), Reply::Error { errno, .. })
                    if errno == libc::ESRCH || errno == libc::ENOENT =>
                {
                    Ok(())
                }
                (Op::DeleteNeighbour(_), Reply::Error { errno, .. }) if errno == libc::ENOENT => {
                    Ok(())
                }
                (Op::AddRoute(_), Reply::Error { errno, message }) if errno == libc::EEXIST => {
                    exists.push(i);
                    Err(OpError::new(op, errno, message))
                }
                (_, Reply::Error { errno, message }) => Err(OpError::new(op, errno, message)),
                (_, Reply::Lost) => Err(OpError::new(
                    op,
                    libc::ENOBUFS,
                    "reply lost in a receive-buffer overrun",
                )),
            };
            results.push(r);
        }
        // EEXIST on add: success when the route in the kernel is exactly the one we wanted.
        if !exists.is_empty() {
            let families: BTreeSet<bool> = exists
                .iter()
                .filter_map(|&i| match &ops[i] {
                    Op::AddRoute(r) => Some(r.dst.addr().is_ipv4()),
                    _ => None,
                })
                .collect();
            let mut current = Vec::new();
            for v4 in families {
                let f = if v4 {
                    AddressFamily::Inet
                } else {
                    AddressFamily::Inet6
                };
                if let Ok(routes) = self.dump_routes(f, None) {
                    current.extend(routes);
                }
            }
            for i in exists {
                if let Op::AddRoute(want) = &ops[i]
                    && current.iter().any(|r| r.same_content(want))
                {
                    results[i] = Ok(());
                }
            }
        }
        results
    }

    fn read_sysctl(&mut self, key: &str) -> Result<String, DataplaneError> {
        let path = format!("/proc/sys/{key}");
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|source| DataplaneError::Sysctl { path, source })
    }

    fn write_sysctl(&mut self, key: &str, value: &str) -> Result<(), DataplaneError> {
        let path = format!("/proc/sys/{key}");
        self.sysctl_writes += 1;
        std::fs::write(&path, value).map_err(|source| DataplaneError::Sysctl { path, source })
    }

    fn writes(&self) -> u64 {
        self.sock.writes + self.sysctl_writes
    }
}
