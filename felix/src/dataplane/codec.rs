//! Conversions between felix's kernel objects (`Route`, `Neighbour`, `Link`) and
//! `netlink-packet-route` messages, plus the dump/lookup request messages. Pure: no sockets.
//! Decoding returns `None` for objects felix does not model (other families, MPLS, RTA_VIA…),
//! never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteNextHopFlags, RouteProtocol, RouteScope, RouteType,
};

use crate::model::{Link, MacAddr, Neighbour, NextHop, RT_TABLE_MAIN, Route, RouteKind};

fn family_of(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    RouteAddress::from(ip)
}

fn ip_of(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn header_for(route: &Route) -> RouteHeader {
    let mut h = RouteHeader {
        address_family: family_of(&route.dst.addr()),
        destination_prefix_length: route.dst.prefix_len(),
        tos: route.tos,
        table: if route.table < 256 {
            route.table as u8
        } else {
            RouteHeader::RT_TABLE_UNSPEC
        },
        protocol: RouteProtocol::from(route.protocol),
        scope: RouteScope::from(route.scope),
        kind: RouteType::from(route.kind.to_raw()),
        ..Default::default()
    };
    if route.next_hops.len() == 1 && route.next_hops[0].onlink {
        h.flags |= RouteFlags::Onlink;
    }
    h
}

/// The full message for adding or replacing `route`.
pub fn route_message(route: &Route) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header = header_for(route);
    m.attributes
        .push(RouteAttribute::Destination(route_addr(route.dst.addr())));
    if route.table >= 256 {
        m.attributes.push(RouteAttribute::Table(route.table));
    }
    if route.priority != 0 {
        m.attributes.push(RouteAttribute::Priority(route.priority));
    }
    match route.next_hops.as_slice() {
        [] => {}
        [hop] => {
            m.attributes.push(RouteAttribute::Oif(hop.ifindex));
            if let Some(gw) = hop.gateway {
                m.attributes.push(RouteAttribute::Gateway(route_addr(gw)));
            }
        }
        hops => {
            let nhs = hops
                .iter()
                .map(|h| {
                    let mut nh = RouteNextHop::default();
                    nh.interface_index = h.ifindex;
                    if h.onlink {
                        nh.flags |= RouteNextHopFlags::Onlink;
                    }
                    if let Some(gw) = h.gateway {
                        nh.attributes.push(RouteAttribute::Gateway(route_addr(gw)));
                    }
                    nh
                })
                .collect();
            m.attributes.push(RouteAttribute::MultiPath(nhs));
        }
    }
    m
}

/// The message deleting exactly `route` (an ECMP route is deleted whole, by key).
pub fn route_delete_message(route: &Route) -> RouteMessage {
    let mut m = route_message(route);
    if route.next_hops.len() > 1 {
        m.attributes
            .retain(|a| !matches!(a, RouteAttribute::MultiPath(_)));
    }
    m
}

/// Decodes a dumped route; `None` for families and shapes felix does not model.
pub fn route_from_message(m: &RouteMessage) -> Option<Route> {
    let h = &m.header;
    let unspecified = match h.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut dst_addr = unspecified;
    let mut table = u32::from(h.table);
    let mut priority = 0;
    let mut oif = None;
    let mut gateway = None;
    let mut multipath = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst_addr = ip_of(d)?,
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => priority = *p,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(g) => gateway = Some(ip_of(g)?),
            RouteAttribute::MultiPath(hops) => multipath = Some(hops),
            // Shapes felix never writes: model them as unknown so they are never "equal".
            RouteAttribute::Via(_) | RouteAttribute::NhId(_) | RouteAttribute::Encap(_) => {
                return None;
            }
            _ => {}
        }
    }
    let dst = IpNet::new(dst_addr, h.destination_prefix_length)
        .ok()?
        .trunc();
    let onlink = h.flags.contains(RouteFlags::Onlink);
    let next_hops = match multipath {
        Some(hops) => {
            let mut out = Vec::with_capacity(hops.len());
            for nh in hops {
                let mut gw = None;
                for a in &nh.attributes {
                    if let RouteAttribute::Gateway(g) = a {
                        gw = Some(ip_of(g)?);
                    }
                }
                let onlink = nh.flags.contains(RouteNextHopFlags::Onlink);
                out.push(NextHop {
                    gateway: gw,
                    ifindex: nh.interface_index,
                    onlink,
                });
            }
            out
        }
        None => match oif {
            Some(ifindex) => vec![NextHop {
                gateway,
                ifindex,
                onlink,
            }],
            None => Vec::new(),
        },
    };
    Some(Route {
        dst,
        table,
        priority,
        protocol: u8::from(h.protocol),
        scope: u8::from(h.scope),
        kind: RouteKind::from_raw(u8::from(h.kind)),
        next_hops,
        tos: h.tos,
    })
}

/// Dump request for the main table of one family, optionally only routes using `oif`.
pub fn route_dump_request(family: AddressFamily, oif: Option<u32>) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.attributes.push(RouteAttribute::Table(RT_TABLE_MAIN));
    if let Some(i) = oif {
        m.attributes.push(RouteAttribute::Oif(i));
    }
    m
}

/// A FIB lookup of `addr` that returns the matching FIB entry (`RTM_F_FIB_MATCH`).
pub fn route_lookup_request(addr: IpAddr) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family_of(&addr);
    m.header.destination_prefix_length = if addr.is_ipv4() { 32 } else { 128 };
    m.header.flags = RouteFlags::FibMatch;
    m.attributes
        .push(RouteAttribute::Destination(route_addr(addr)));
    m
}

/// The message setting (or, for delete, naming) a neighbour entry.
pub fn neighbour_message(n: &Neighbour) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = family_of(&n.ip);
    m.header.ifindex = n.ifindex;
    m.header.state = if n.permanent {
        NeighbourState::Permanent
    } else {
        NeighbourState::Reachable
    };
    let dst = match n.ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    };
    m.attributes.push(NeighbourAttribute::Destination(dst));
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(n.mac.0.to_vec()));
    m
}

/// Decodes a dumped neighbour; entries without an Ethernet address are skipped.
pub fn neighbour_from_message(m: &NeighbourMessage) -> Option<Neighbour> {
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(*v6))
            }
            NeighbourAttribute::LinkLayerAddress(b) => {
                mac = <[u8; 6]>::try_from(b.as_slice()).ok().map(MacAddr)
            }
            _ => {}
        }
    }
    Some(Neighbour {
        ifindex: m.header.ifindex,
        ip: ip?,
        mac: mac?,
        permanent: m.header.state == NeighbourState::Permanent,
    })
}

/// Neighbour dump request for one family, optionally one link.
pub fn neighbour_dump_request(family: AddressFamily, ifindex: Option<u32>) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = family;
    // Strict dump checking wants the filter as NDA_IFINDEX, with a zero header ifindex.
    if let Some(i) = ifindex {
        m.attributes.push(NeighbourAttribute::IfIndex(i));
    }
    m
}

/// The far end of a veth-like link whose far end is in another namespace: that namespace's id
/// here (`IFLA_LINK_NETNSID`) and the far end's ifindex there (`IFLA_LINK`).
pub fn link_peer_of(m: &LinkMessage) -> Option<(i32, u32)> {
    let mut nsid = None;
    let mut peer = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::LinkNetNsId(id) => nsid = Some(*id),
            LinkAttribute::Link(index) => peer = Some(*index),
            _ => {}
        }
    }
    // A negative id is NETNSA_NSID_NOT_ASSIGNED; ifindex 0 is no link.
    Some((nsid.filter(|id| *id >= 0)?, peer.filter(|i| *i != 0)?))
}

/// `RTM_GETLINK` of link `index` in the calling namespace.
pub fn link_get_request(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m
}

/// `RTM_GETLINK` of link `index` in the namespace that has id `nsid` here
/// (`IFLA_TARGET_NETNSID`, Linux 4.20+).
pub fn link_get_in_namespace_request(nsid: i32, index: u32) -> LinkMessage {
    let mut m = link_get_request(index);
    m.attributes.push(LinkAttribute::IfNetnsId(nsid));
    m
}

/// Decodes a link message.
pub fn link_from_message(m: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut mtu = 0;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Mtu(v) => mtu = *v,
            LinkAttribute::Address(b) => mac = <[u8; 6]>::try_from(b.as_slice()).ok().map(MacAddr),
            _ => {}
        }
    }
    let flags = m.header.flags;
    Some(Link {
        index: m.header.index,
        name: name?,
        up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running) || flags.contains(LinkFlags::LowerUp),
        mtu,
        mac,
    })
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_core::{Emitable, Parseable};

    use super::*;

    fn roundtrip(r: &Route) -> Route {
        let m = route_message(r);
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        let parsed = RouteMessage::parse(&buf[..]).expect("parse");
        route_from_message(&parsed).expect("modelled")
    }

    #[test]
    fn routes_survive_the_wire() {
        let gw = |s: &str, i| NextHop {
            gateway: Some(s.parse().unwrap()),
            ifindex: i,
            onlink: false,
        };
        let cases = vec![
            Route::workload("10.0.0.1".parse().unwrap(), 7, 97),
            Route::workload("fd00::1".parse().unwrap(), 7, 97),
            Route::blackhole("10.0.0.0/26".parse().unwrap(), 97),
            Route::via("10.1.0.0/26".parse().unwrap(), vec![gw("192.0.2.1", 2)], 97),
            Route::via(
                "10.1.0.0/26".parse().unwrap(),
                vec![gw("192.0.2.1", 2), gw("192.0.2.2", 3)],
                97,
            ),
            Route::via(
                "fd00:1::/64".parse().unwrap(),
                vec![gw("fd00::a", 2), gw("fd00::b", 2)],
                97,
            ),
            Route {
                table: 1000,
                ..Route::blackhole("10.9.0.0/16".parse().unwrap(), 4)
            },
        ];
        for r in cases {
            assert_eq!(roundtrip(&r), r);
        }
    }

    #[test]
    fn delete_of_ecmp_route_is_by_key() {
        let gw = |s: &str| NextHop {
            gateway: Some(s.parse().unwrap()),
            ifindex: 2,
            onlink: false,
        };
        let r = Route::via(
            "10.1.0.0/26".parse().unwrap(),
            vec![gw("192.0.2.1"), gw("192.0.2.2")],
            97,
        );
        let m = route_delete_message(&r);
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::MultiPath(_)))
        );
        assert!(
            m.attributes
                .contains(&RouteAttribute::Destination(RouteAddress::Inet(
                    "10.1.0.0".parse().unwrap()
                )))
        );
    }

    #[test]
    fn far_end_of_a_veth_in_another_namespace() {
        let mut m = link_get_request(9);
        assert_eq!(link_peer_of(&m), None, "no IFLA_LINK");
        m.attributes.push(LinkAttribute::Link(2));
        assert_eq!(link_peer_of(&m), None, "far end in this namespace");
        m.attributes.push(LinkAttribute::LinkNetNsId(-1));
        assert_eq!(link_peer_of(&m), None, "no id assigned");
        m.attributes
            .retain(|a| !matches!(a, LinkAttribute::LinkNetNsId(_)));
        m.attributes.push(LinkAttribute::LinkNetNsId(4));
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        let parsed = LinkMessage::parse(&buf[..]).unwrap();
        assert_eq!(link_peer_of(&parsed), Some((4, 2)));
        let req = link_get_in_namespace_request(4, 2);
        assert_eq!(req.header.index, 2);
        assert_eq!(req.attributes, vec![LinkAttribute::IfNetnsId(4)]);
    }

    #[test]
    fn neighbours_survive_the_wire() {
        let n = Neighbour {
            ifindex: 5,
            ip: "10.0.0.1".parse().unwrap(),
            mac: MacAddr([2, 1, 2, 3, 4, 5]),
            permanent: true,
        };
        let m = neighbour_message(&n);
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        let parsed = NeighbourMessage::parse(&buf[..]).unwrap();
        assert_eq!(neighbour_from_message(&parsed), Some(n));
    }
}
