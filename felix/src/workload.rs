//! Pod plumbing for the CNI plugin (calico.md §1.2): `setup_workload` creates the veth pair from
//! inside the pod namespace with the peer placed straight into the host namespace, gives the
//! host side MAC ee:ee:ee:ee:ee:ee and its sysctls, puts the pod's addresses on the container
//! side as /32 (/128) with a link route to 169.254.1.1 and the default route via it, brings both
//! ends up and adds the host route `<ip>/32 dev caliX scope link` with Ginger's protocol. Any
//! failure undoes everything done so far (deleting the veth removes both ends and their routes).
//! `teardown_workload` is idempotent; `remove_host_links` removes pods' veths from the host
//! side by link index, several in one kernel unregistration (ginger-node's teardown after DEL); `inspect_workload` reads what exists
//! (for CNI CHECK) and changes nothing. The caller's thread must be in the host namespace; this module never touches
//! any other link.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use tracing::warn;

use crate::dataplane::codec;
use crate::model::{Link, MacAddr, Route};
use crate::netns::{NetnsError, netns_path, run_in_netns};
use crate::nlsock::{NetlinkError, NlSocket, Reply};
use crate::ownership::{DEFAULT_IFACE_PREFIX, DEFAULT_ROUTE_PROTOCOL};
use crate::sysctl;

/// The pod's gateway: never configured anywhere, answered by proxy ARP on the host side.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The IPv6 gateway: the host side's link-local address derived from ee:ee:ee:ee:ee:ee.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// Linux's IFNAMSIZ - 1.
const MAX_IFNAME: usize = 15;

/// What to build for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// The pod's network namespace (`CNI_NETNS`: a path, or a name under /var/run/netns).
    pub netns_path: String,
    /// The pod-side link name (`CNI_IFNAME`, usually `eth0`).
    pub container_ifname: String,
    /// The host-side link name (see `host_ifname`).
    pub host_ifname: String,
    /// The pod's addresses; each gets a /32 or /128.
    pub ips: Vec<IpAddr>,
    /// MTU of both ends; 0 keeps the kernel default.
    pub mtu: u32,
    pub host_mac: MacAddr,
    /// Protocol number of the host routes (Ginger's, so felix adopts them).
    pub route_protocol: u8,
}

impl WorkloadSpec {
    /// A spec with Calico's defaults: host MAC ee:ee:ee:ee:ee:ee, Ginger's route protocol.
    pub fn new(
        netns_path: &str,
        container_ifname: &str,
        host_ifname: &str,
        ips: Vec<IpAddr>,
        mtu: u32,
    ) -> Self {
        WorkloadSpec {
            netns_path: netns_path.to_string(),
            container_ifname: container_ifname.to_string(),
            host_ifname: host_ifname.to_string(),
            ips,
            mtu,
            host_mac: MacAddr::HOST_SIDE,
            route_protocol: DEFAULT_ROUTE_PROTOCOL,
        }
    }
}

/// What was built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadInfo {
    pub host_ifname: String,
    pub host_ifindex: u32,
    pub host_mac: MacAddr,
    pub container_ifname: String,
    pub container_ifindex: u32,
    pub container_mac: MacAddr,
}

/// A pod could not be plumbed (everything done so far has been undone).
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("workload has no IP address")]
    NoAddress,
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{step} failed: {source}")]
    Netlink { step: String, source: NetlinkError },
    #[error("cannot set sysctl {key}: {source}")]
    Sysctl { key: String, source: std::io::Error },
    #[error("link {name} was created but cannot be found")]
    LinkMissing { name: String },
    #[error("host MAC of {name} reads back as {got}, expected {want}")]
    MacMismatch {
        name: String,
        got: String,
        want: MacAddr,
    },
    #[error(
        "route to {ip} already exists for an interface other than {host_ifname} (ifindex {other_ifindex})"
    )]
    RouteConflict {
        ip: IpAddr,
        host_ifname: String,
        other_ifindex: u32,
    },
}

fn nl(step: impl Into<String>) -> impl FnOnce(NetlinkError) -> WorkloadError {
    let step = step.into();
    move |source| WorkloadError::Netlink { step, source }
}

/// Calico's host link name: `cali` + the first 11 hex chars of SHA-1("<namespace>.<pod>").
pub fn host_ifname(namespace: &str, pod: &str) -> String {
    host_ifname_with_prefix(DEFAULT_IFACE_PREFIX, namespace, pod)
}

/// `host_ifname` with another prefix (Calico's `FELIX_INTERFACEPREFIX`), kept within 15 chars.
pub fn host_ifname_with_prefix(prefix: &str, namespace: &str, pod: &str) -> String {
    let hex = crate::sha1::sha1_hex(format!("{namespace}.{pod}").as_bytes());
    let take = MAX_IFNAME.saturating_sub(prefix.len());
    format!("{prefix}{}", &hex[..take.min(hex.len())])
}

fn check_name(name: &str) -> Result<(), WorkloadError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_IFNAME {
        "longer than 15 characters"
    } else if name.contains(['/', ':'])
        || name.chars().any(char::is_whitespace)
        || name == "."
        || name == ".."
    {
        "contains '/', ':' or whitespace"
    } else {
        return Ok(());
    };
    Err(WorkloadError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// Looks a link up by name; `None` if it does not exist.
fn link_by_name(sock: &mut NlSocket, name: &str) -> Result<Option<Link>, NetlinkError> {
    let mut req = LinkMessage::default();
    req.attributes.push(LinkAttribute::IfName(name.to_string()));
    match sock.get(RouteNetlinkMessage::GetLink(req), "link lookup") {
        Ok(RouteNetlinkMessage::NewLink(m)) => Ok(codec::link_from_message(&m)),
        Ok(_) => Ok(None),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

fn delete_link(sock: &mut NlSocket, index: u32) -> Result<(), NetlinkError> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    match sock.request(RouteNetlinkMessage::DelLink(m), 0, "delete link") {
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
        other => other,
    }
}

fn set_up(sock: &mut NlSocket, index: u32) -> Result<(), NetlinkError> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    sock.request(RouteNetlinkMessage::SetLink(m), 0, "set link up")
}

fn add_address(sock: &mut NlSocket, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
    let mut m = AddressMessage::default();
    m.header.index = index;
    match ip {
        IpAddr::V4(_) => {
            m.header.family = AddressFamily::Inet;
            m.header.prefix_len = 32;
            m.attributes.push(AddressAttribute::Local(ip));
        }
        IpAddr::V6(_) => {
            m.header.family = AddressFamily::Inet6;
            m.header.prefix_len = 128;
            m.header.flags = AddressHeaderFlags::Nodad;
        }
    }
    m.attributes.push(AddressAttribute::Address(ip));
    sock.request(
        RouteNetlinkMessage::NewAddress(m),
        NLM_F_CREATE | NLM_F_EXCL,
        "add address",
    )
}

/// A route inside the pod: `dst dev index [via gw]`, scope link when there is no gateway.
fn pod_route(dst: IpAddr, prefix_len: u8, gateway: Option<IpAddr>, index: u32) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.destination_prefix_length = prefix_len;
    m.header.table = rtnetlink::packet_route::route::RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = rtnetlink::packet_route::route::RouteProtocol::Boot;
    m.header.kind = rtnetlink::packet_route::route::RouteType::Unicast;
    m.header.scope = if gateway.is_none() {
        RouteScope::Link
    } else {
        RouteScope::Universe
    };
    if prefix_len > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
    }
    m.attributes.push(RouteAttribute::Oif(index));
    if let Some(gw) = gateway {
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    m
}

fn write_sysctl(key: &str, value: &str, required: bool) -> Result<(), WorkloadError> {
    match sysctl::ensure(key, value) {
        Ok(_) => Ok(()),
        Err(e) if !required => {
            warn!(key, error = %e, "optional sysctl not set");
            Ok(())
        }
        Err(source) => Err(WorkloadError::Sysctl {
            key: key.to_string(),
            source,
        }),
    }
}

/// The pod-namespace half: veth (peer into the host namespace), addresses, routes.
fn setup_container_side(
    spec: &WorkloadSpec,
    host_ns_fd: i32,
) -> Result<(u32, MacAddr), WorkloadError> {
    let mut sock = NlSocket::open().map_err(nl("open netlink in the pod namespace"))?;
    let mut peer = LinkMessage::default();
    peer.attributes
        .push(LinkAttribute::IfName(spec.host_ifname.clone()));
    peer.attributes
        .push(LinkAttribute::Address(spec.host_mac.0.to_vec()));
    peer.attributes.push(LinkAttribute::NetNsFd(host_ns_fd));
    let mut veth = LinkMessage::default();
    veth.attributes
        .push(LinkAttribute::IfName(spec.container_ifname.clone()));
    if spec.mtu > 0 {
        peer.attributes.push(LinkAttribute::Mtu(spec.mtu));
        veth.attributes.push(LinkAttribute::Mtu(spec.mtu));
    }
    veth.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    sock.request(
        RouteNetlinkMessage::NewLink(veth),
        NLM_F_CREATE | NLM_F_EXCL,
        "create veth pair",
    )
    .map_err(nl(format!(
        "create veth {}/{}",
        spec.container_ifname, spec.host_ifname
    )))?;
    let built = (|| {
        let link = link_by_name(&mut sock, &spec.container_ifname)
            .map_err(nl("look up the container link"))?
            .ok_or_else(|| WorkloadError::LinkMissing {
                name: spec.container_ifname.clone(),
            })?;
        let mac = link.mac.ok_or_else(|| WorkloadError::LinkMissing {
            name: spec.container_ifname.clone(),
        })?;
        let has_v6 = spec.ips.iter().any(IpAddr::is_ipv6);
        if has_v6 {
            let ifname = &spec.container_ifname;
            write_sysctl(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "0", false)?;
            write_sysctl(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0", false)?;
        }
        set_up(&mut sock, link.index).map_err(nl("bring the container link up"))?;
        for ip in &spec.ips {
            add_address(&mut sock, link.index, *ip).map_err(nl(format!("add address {ip}")))?;
        }
        let flags = NLM_F_CREATE | NLM_F_EXCL;
        if spec.ips.iter().any(IpAddr::is_ipv4) {
            let gw = IpAddr::V4(GATEWAY_V4);
            let link_route = pod_route(gw, 32, None, link.index);
            sock.request(
                RouteNetlinkMessage::NewRoute(link_route),
                flags,
                "add gateway route",
            )
            .map_err(nl("add route 169.254.1.1/32"))?;
            let default = pod_route(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, Some(gw), link.index);
            sock.request(
                RouteNetlinkMessage::NewRoute(default),
                flags,
                "add default route",
            )
            .map_err(nl("add default route via 169.254.1.1"))?;
        }
        if has_v6 {
            let default = pod_route(
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                0,
                Some(IpAddr::V6(GATEWAY_V6)),
                link.index,
            );
            sock.request(
                RouteNetlinkMessage::NewRoute(default),
                flags,
                "add IPv6 default route",
            )
            .map_err(nl("add IPv6 default route"))?;
        }
        Ok((link.index, mac))
    })();
    if built.is_err()
        && let Ok(Some(link)) = link_by_name(&mut sock, &spec.container_ifname)
    {
        let _ = delete_link(&mut sock, link.index);
    }
    built
}

/// The host half: find the peer, sysctls, up, host routes.
fn setup_host_side(sock: &mut NlSocket, spec: &WorkloadSpec) -> Result<Link, WorkloadError> {
    let host = link_by_name(sock, &spec.host_ifname)
        .map_err(nl("look up the host link"))?
        .ok_or_else(|| WorkloadError::LinkMissing {
            name: spec.host_ifname.clone(),
        })?;
    if host.mac != Some(spec.host_mac) {
        let got = host
            .mac
            .map_or_else(|| "none".to_string(), |m| m.to_string());
        return Err(WorkloadError::MacMismatch {
            name: spec.host_ifname.clone(),
            got,
            want: spec.host_mac,
        });
    }
    // calico.md §1.2: set before the link goes up; proxy_delay and IPv6 are warning-only.
    for (key, value) in sysctl::workload_link_sysctls(&spec.host_ifname) {
        let required = !sysctl::is_ipv6_key(&key) && !key.contains("/neigh/");
        write_sysctl(&key, value, required)?;
    }
    set_up(sock, host.index).map_err(nl("bring the host link up"))?;
    for ip in &spec.ips {
        let route = Route::workload(*ip, host.index, spec.route_protocol);
        let msg = RouteNetlinkMessage::NewRoute(codec::route_message(&route));
        match sock.request(msg, NLM_F_CREATE | NLM_F_EXCL, "add host route") {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => {
                // Fine if felix got there first on this very link (same destination and metric).
                let family = if ip.is_ipv4() {
                    AddressFamily::Inet
                } else {
                    AddressFamily::Inet6
                };
                let req = RouteNetlinkMessage::GetRoute(codec::route_dump_request(family, None));
                let existing = sock
                    .dump(req, "route dump")
                    .map_err(nl("read existing routes"))?;
                let holder = existing
                    .iter()
                    .filter_map(|m| match m {
                        RouteNetlinkMessage::NewRoute(r) => codec::route_from_message(r),
                        _ => None,
                    })
                    .find(|r| r.same_key(&route));
                match holder {
                    Some(r) if r.uses_link(host.index) => {}
                    other => {
                        let other_ifindex = other
                            .and_then(|r| r.next_hops.first().map(|h| h.ifindex))
                            .unwrap_or(0);
                        return Err(WorkloadError::RouteConflict {
                            ip: *ip,
                            host_ifname: spec.host_ifname.clone(),
                            other_ifindex,
                        });
                    }
                }
            }
            Err(e) => return Err(nl(format!("add host route {ip}"))(e)),
        }
    }
    Ok(host)
}

/// Plumbs one pod (see the module doc). Call from a thread in the host namespace.
pub fn setup_workload(spec: &WorkloadSpec) -> Result<WorkloadInfo, WorkloadError> {
    check_name(&spec.container_ifname)?;
    check_name(&spec.host_ifname)?;
    if spec.ips.is_empty() {
        return Err(WorkloadError::NoAddress);
    }
    let mut sock = NlSocket::open().map_err(nl("open netlink in the host namespace"))?;
    // Calico deletes a leftover host link of the same name first (a previous sandbox's).
    if let Some(stale) =
        link_by_name(&mut sock, &spec.host_ifname).map_err(nl("look up the host link"))?
    {
        delete_link(&mut sock, stale.index)
            .map_err(nl(format!("delete stale link {}", spec.host_ifname)))?;
    }
    let host_ns = File::open("/proc/thread-self/ns/net").map_err(|source| NetnsError::Open {
        path: "/proc/thread-self/ns/net".into(),
        source,
    })?;
    let host_fd = host_ns.as_raw_fd();
    let (container_ifindex, container_mac) =
        run_in_netns(&spec.netns_path, || setup_container_side(spec, host_fd))??;
    match setup_host_side(&mut sock, spec) {
        Ok(host) => Ok(WorkloadInfo {
            host_ifname: spec.host_ifname.clone(),
            host_ifindex: host.index,
            host_mac: spec.host_mac,
            container_ifname: spec.container_ifname.clone(),
            container_ifindex,
            container_mac,
        }),
        Err(e) => {
            // Deleting either end removes the pair, its addresses and its routes.
            let _ = run_in_netns(&spec.netns_path, || {
                NlSocket::open().and_then(|mut s| {
                    match link_by_name(&mut s, &spec.container_ifname)? {
                        Some(l) => delete_link(&mut s, l.index),
                        None => Ok(()),
                    }
                })
            });
            if let Ok(Some(l)) = link_by_name(&mut sock, &spec.host_ifname) {
                let _ = delete_link(&mut sock, l.index);
            }
            Err(e)
        }
    }
}

/// Removes a pod's veth (and with it the host side and its routes). A missing namespace or link
/// is success, so CNI DEL can be repeated.
pub fn teardown_workload(netns: &str, container_ifname: &str) -> Result<(), WorkloadError> {
    check_name(container_ifname)?;
    if !netns_path(netns).exists() {
        return Ok(());
    }
    let result = run_in_netns(netns, || -> Result<(), WorkloadError> {
        let mut sock = NlSocket::open().map_err(nl("open netlink in the pod namespace"))?;
        if let Some(l) =
            link_by_name(&mut sock, container_ifname).map_err(nl("look up the container link"))?
        {
            delete_link(&mut sock, l.index).map_err(nl(format!("delete {container_ifname}")))?;
        }
        Ok(())
    });
    match result {
        Ok(r) => r,
        Err(NetnsError::Open { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The link group a batch of pods' host links is moved into just before one group
/// `RTM_DELLINK` removes them together (`remove_host_links`).
pub const TEARDOWN_LINK_GROUP: u32 = 0x6769_6e67;

/// Removes the veths of pods from the host side, in the calling thread's namespace (ginger-node's
/// teardown after DEL). Each `(name, index)` is removed only if that index still carries that
/// name, so a newer pod that reuses the name is never touched; one that is gone is skipped.
/// Two or more are moved into `TEARDOWN_LINK_GROUP` and deleted by one `RTM_DELLINK` for the
/// group: the kernel then unregisters them together and waits for its RCU grace periods (~18 ms)
/// once instead of once per link. If any other link is in that group, or moving fails, they are
/// deleted one by one instead. Returns how many links this call removed.
pub fn remove_host_links(links: &[(String, u32)]) -> Result<usize, WorkloadError> {
    let mut sock = NlSocket::open().map_err(nl("open netlink in the host namespace"))?;
    let mut mine = Vec::new();
    let mut group_taken = false;
    let dump = sock
        .dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            "link dump",
        )
        .map_err(nl("list links"))?;
    for m in dump {
        let RouteNetlinkMessage::NewLink(l) = m else {
            continue;
        };
        let index = l.header.index;
        let mut name = None;
        let mut in_group = false;
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => name = Some(n.as_str()),
                LinkAttribute::Group(TEARDOWN_LINK_GROUP) => in_group = true,
                _ => {}
            }
        }
        if links
            .iter()
            .any(|(n, i)| *i == index && Some(n.as_str()) == name)
        {
            mine.push(index);
        } else if in_group {
            group_taken = true;
        }
    }
    if mine.len() >= 2 && !group_taken && delete_as_group(&mut sock, &mine)? {
        return Ok(mine.len());
    }
    for index in &mine {
        delete_link(&mut sock, *index).map_err(nl(format!("delete link {index}")))?;
    }
    Ok(mine.len())
}

/// Moves `indexes` into `TEARDOWN_LINK_GROUP` and deletes the group; false (nothing deleted)
/// when a move was refused, so the caller deletes one by one.
fn delete_as_group(sock: &mut NlSocket, indexes: &[u32]) -> Result<bool, WorkloadError> {
    let moves = indexes
        .iter()
        .map(|&index| {
            let mut m = LinkMessage::default();
            m.header.index = index;
            m.attributes.push(LinkAttribute::Group(TEARDOWN_LINK_GROUP));
            (RouteNetlinkMessage::SetLink(m), 0)
        })
        .collect();
    let replies = sock
        .batch(moves)
        .map_err(nl("move links into the teardown group"))?;
    let moved = replies.iter().all(|r| match r {
        Reply::Ack => true,
        Reply::Error { errno, .. } => *errno == libc::ENODEV,
        Reply::Lost => false,
    });
    if !moved {
        warn!("moving links into the teardown group failed; deleting them one by one");
        return Ok(false);
    }
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::Group(TEARDOWN_LINK_GROUP));
    match sock.request(
        RouteNetlinkMessage::DelLink(m),
        0,
        "delete the teardown group",
    ) {
        Ok(()) => Ok(true),
        // Every one of them vanished meanwhile.
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(true),
        Err(e) => Err(nl("delete the teardown group")(e)),
    }
}

/// The pod-side link as CHECK sees it: the link, its global addresses and its main-table routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerLinkState {
    pub link: Link,
    /// Addresses on the link with their prefix lengths (link-local IPv6 left out).
    pub addresses: Vec<ipnet::IpNet>,
    /// Main-table routes (both families) that leave through the link.
    pub routes: Vec<Route>,
}

/// What exists of a pod's plumbing (for CNI CHECK); read-only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadState {
    /// The host-side link, looked up in the calling thread's namespace.
    pub host: Option<Link>,
    /// The pod-side link in the pod's namespace.
    pub container: Option<ContainerLinkState>,
}

fn addresses_of(sock: &mut NlSocket, index: u32) -> Result<Vec<ipnet::IpNet>, NetlinkError> {
    let req = RouteNetlinkMessage::GetAddress(AddressMessage::default());
    let mut out = Vec::new();
    for m in sock.dump(req, "address dump")? {
        let RouteNetlinkMessage::NewAddress(a) = m else {
            continue;
        };
        if a.header.index != index {
            continue;
        }
        let mut local = None;
        let mut address = None;
        for attr in &a.attributes {
            match attr {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                _ => {}
            }
        }
        let Some(ip) = local.or(address) else {
            continue;
        };
        if let IpAddr::V6(v6) = ip
            && v6.is_unicast_link_local()
        {
            continue;
        }
        if let Ok(net) = ipnet::IpNet::new(ip, a.header.prefix_len) {
            out.push(net);
        }
    }
    Ok(out)
}

fn routes_of(sock: &mut NlSocket, index: u32) -> Result<Vec<Route>, NetlinkError> {
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let req = RouteNetlinkMessage::GetRoute(codec::route_dump_request(family, Some(index)));
        for m in sock.dump(req, "route dump")? {
            if let RouteNetlinkMessage::NewRoute(r) = m
                && let Some(route) = codec::route_from_message(&r)
                && route.table == crate::model::RT_TABLE_MAIN
                && route.uses_link(index)
            {
                out.push(route);
            }
        }
    }
    Ok(out)
}

/// Reads what exists of a pod's plumbing: the host link `host_ifname` (in the calling thread's
/// namespace) and the link `container_ifname` in `netns` with its addresses and routes. A missing
/// namespace or link is `None`, not an error. Changes nothing.
pub fn inspect_workload(
    netns: &str,
    container_ifname: &str,
    host_ifname: &str,
) -> Result<WorkloadState, WorkloadError> {
    check_name(container_ifname)?;
    check_name(host_ifname)?;
    let mut sock = NlSocket::open().map_err(nl("open netlink in the host namespace"))?;
    let host = link_by_name(&mut sock, host_ifname).map_err(nl("look up the host link"))?;
    if !netns_path(netns).exists() {
        return Ok(WorkloadState {
            host,
            container: None,
        });
    }
    let container = run_in_netns(netns, || -> Result<_, WorkloadError> {
        let mut sock = NlSocket::open().map_err(nl("open netlink in the pod namespace"))?;
        let Some(link) =
            link_by_name(&mut sock, container_ifname).map_err(nl("look up the container link"))?
        else {
            return Ok(None);
        };
        let addresses = addresses_of(&mut sock, link.index).map_err(nl("read pod addresses"))?;
        let routes = routes_of(&mut sock, link.index).map_err(nl("read pod routes"))?;
        Ok(Some(ContainerLinkState {
            link,
            addresses,
            routes,
        }))
    })??;
    Ok(WorkloadState { host, container })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ifname_is_calicos() {
        // calico.md §1.2: "cali" + first 11 hex chars of SHA-1("<namespace>.<pod>")
        // (expected values computed with Python's hashlib).
        assert_eq!(host_ifname("default", "nginx"), "calic440f455693");
        assert_eq!(host_ifname("kube-system", "coredns-abc"), "cali3d5d6ab04b5");
        assert_eq!(host_ifname_with_prefix("tap", "a", "b").len(), 15);
        assert_ne!(host_ifname("default", "a"), host_ifname("default", "b"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("eth0").is_ok());
        for bad in ["", "a/b", "has space", "sixteen_chars_xx", ".."] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
