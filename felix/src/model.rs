//! Felix's vocabulary, as plain data: what the agent wants (`DesiredState`, `DesiredChange`) and
//! what the kernel holds (`Route`, `NextHop`, `Neighbour`, `Link`, and `LinkPeer`, the pod's end of
//! a workload veth as seen from the node). No I/O and no policy here:
//! `plan` turns desired state into kernel objects, `dataplane` moves kernel objects in and out of
//! the kernel. Routes are keyed the way the kernel keys them in one table: destination + priority.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use smallvec::SmallVec;

/// The kernel's main routing table, the only one felix programs.
pub const RT_TABLE_MAIN: u32 = 254;
/// `RTPROT_KERNEL`: routes the kernel creates itself (connected subnets, IPv6 link-local).
pub const RTPROT_KERNEL: u8 = 2;
/// `RT_SCOPE_UNIVERSE`: gateway and blackhole routes.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_LINK`: routes to directly attached workloads (`dev caliX scope link`).
pub const RT_SCOPE_LINK: u8 = 253;
/// The default metric the kernel gives IPv6 routes that carry none (IPv4's default is 0).
pub const IPV6_DEFAULT_PRIORITY: u32 = 1024;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The MAC Calico (and Ginger) gives every host-side workload veth.
    pub const HOST_SIDE: MacAddr = MacAddr([0xee; 6]);
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text was not six colon-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hex octets such as ee:ee:ee:ee:ee:ee)")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(|| MacParseError(s.to_string()))?;
            if part.is_empty() || part.len() > 2 {
                return Err(MacParseError(s.to_string()));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| MacParseError(s.to_string()))?;
        }
        if parts.next().is_some() {
            return Err(MacParseError(s.to_string()));
        }
        Ok(MacAddr(out))
    }
}

/// One pod's endpoint on this node: its host-side link and its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadEndpoint {
    /// Host-side link name (`cali` + 11 hex), the endpoint's key.
    pub ifname: String,
    /// The pod-side MAC the plugin reported; when known, IPv4 addresses get a permanent
    /// neighbour entry. Its lladdr is the MAC felix reads from the pod's end of the veth
    /// (`LinkPeer`) whenever that can be read, since a later plugin (e.g. `tuning`) may change
    /// it; this one only when it cannot.
    pub mac: Option<MacAddr>,
    /// The pod's addresses; each becomes a `/32` or `/128` route on `ifname`.
    pub ips: Vec<IpAddr>,
}

/// A route to a prefix that lives elsewhere (another node's block, a borrowed /32, a ToR route).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRoute {
    pub dst: IpNet,
    /// BGP next hops; several make one ECMP route. Each is resolved through the FIB.
    pub next_hops: NextHopSet,
}

/// A remote route's next hops: sorted and without duplicates, like a `BTreeSet`, but one or two
/// are held inline. The agent and felix each keep every learned route, and a `BTreeSet` node per
/// route cost ~200 bytes of heap each (measured: 100k routes, docs/benchmarks.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHopSet(SmallVec<[IpAddr; 2]>);

impl NextHopSet {
    /// The next hops in order.
    pub fn iter(&self) -> std::slice::Iter<'_, IpAddr> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of them.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.binary_search(ip).is_ok()
    }

    /// The lowest.
    pub fn first(&self) -> Option<&IpAddr> {
        self.0.first()
    }
}

impl FromIterator<IpAddr> for NextHopSet {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(iter: I) -> Self {
        let mut hops: SmallVec<[IpAddr; 2]> = iter.into_iter().collect();
        hops.sort_unstable();
        hops.dedup();
        NextHopSet(hops)
    }
}

impl<const N: usize> From<[IpAddr; N]> for NextHopSet {
    fn from(hops: [IpAddr; N]) -> Self {
        hops.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a NextHopSet {
    type Item = &'a IpAddr;
    type IntoIter = std::slice::Iter<'a, IpAddr>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for NextHopSet {
    type Item = IpAddr;
    type IntoIter = smallvec::IntoIter<[IpAddr; 2]>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Everything felix should have in the kernel. The agent hands over the whole set or deltas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// Workload endpoints by host-side link name.
    pub workloads: BTreeMap<String, WorkloadEndpoint>,
    /// This node's IPAM blocks: one blackhole route each.
    pub blackholes: BTreeSet<IpNet>,
    /// Remote routes by destination.
    pub remotes: BTreeMap<IpNet, RemoteRoute>,
    /// Keep our remote routes that are not in `remotes` instead of deleting them: set by an
    /// agent that has just restarted (graceful restart, RFC 4724) until BGP has relearned
    /// everything, so forwarding continues on what the kernel already holds.
    pub retain_unlisted_remotes: bool,
}

/// One change to the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DesiredChange {
    UpsertWorkload(WorkloadEndpoint),
    RemoveWorkload {
        ifname: String,
    },
    AddBlackhole(IpNet),
    RemoveBlackhole(IpNet),
    UpsertRemote(RemoteRoute),
    RemoveRemote(IpNet),
    /// Set `DesiredState::retain_unlisted_remotes`.
    RetainUnlistedRemotes(bool),
}

impl DesiredState {
    /// Applies one change (prefixes are normalised to their network address).
    pub fn apply(&mut self, change: DesiredChange) {
        match change {
            DesiredChange::UpsertWorkload(w) => {
                self.workloads.insert(w.ifname.clone(), w);
            }
            DesiredChange::RemoveWorkload { ifname } => {
                self.workloads.remove(&ifname);
            }
            DesiredChange::AddBlackhole(block) => {
                self.blackholes.insert(block.trunc());
            }
            DesiredChange::RemoveBlackhole(block) => {
                self.blackholes.remove(&block.trunc());
            }
            DesiredChange::UpsertRemote(mut r) => {
                r.dst = r.dst.trunc();
                self.remotes.insert(r.dst, r);
            }
            DesiredChange::RemoveRemote(dst) => {
                self.remotes.remove(&dst.trunc());
            }
            DesiredChange::RetainUnlistedRemotes(on) => {
                self.retain_unlisted_remotes = on;
            }
        }
    }
}

/// The kernel's route type (`rtm_type`) for the kinds felix distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
    Local,
    /// Any other `rtm_type` value (broadcast, multicast, …).
    Other(u8),
}

impl RouteKind {
    pub fn from_raw(v: u8) -> Self {
        match v {
            1 => Self::Unicast,
            2 => Self::Local,
            6 => Self::Blackhole,
            7 => Self::Unreachable,
            8 => Self::Prohibit,
            other => Self::Other(other),
        }
    }
    pub fn to_raw(self) -> u8 {
        match self {
            Self::Unicast => 1,
            Self::Local => 2,
            Self::Blackhole => 6,
            Self::Unreachable => 7,
            Self::Prohibit => 8,
            Self::Other(v) => v,
        }
    }
}

/// One next hop of a kernel route: a gateway (absent for device routes) and its output link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHop {
    pub gateway: Option<IpAddr>,
    pub ifindex: u32,
    pub onlink: bool,
}

/// A route as the kernel holds it in one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination, normalised to its network address.
    pub dst: IpNet,
    pub table: u32,
    /// Metric (`RTA_PRIORITY`); with `dst` and `table` it identifies the route.
    pub priority: u32,
    pub protocol: u8,
    pub scope: u8,
    pub kind: RouteKind,
    /// Empty for blackhole-like routes, one entry for plain routes, several for ECMP.
    pub next_hops: Vec<NextHop>,
    /// Type-of-service; felix only ever writes 0 and treats other values as foreign.
    pub tos: u8,
}

impl Route {
    /// The metric the kernel assigns when none is given, per family.
    pub fn default_priority(dst: &IpNet) -> u32 {
        match dst {
            IpNet::V4(_) => 0,
            IpNet::V6(_) => IPV6_DEFAULT_PRIORITY,
        }
    }

    /// A route via a gateway (what remote routes become), as opposed to a workload link route
    /// or a blackhole.
    pub fn is_gateway_route(&self) -> bool {
        self.kind == RouteKind::Unicast && self.next_hops.iter().any(|h| h.gateway.is_some())
    }

    /// `<ip>/32 dev <ifindex> scope link proto <protocol>` (or /128; IPv6 keeps no scope, so
    /// the kernel reports universe and so do we).
    pub fn workload(ip: IpAddr, ifindex: u32, protocol: u8) -> Route {
        let dst = IpNet::from(ip);
        Route {
            priority: Self::default_priority(&dst),
            scope: if ip.is_ipv4() {
                RT_SCOPE_LINK
            } else {
                RT_SCOPE_UNIVERSE
            },
            dst,
            table: RT_TABLE_MAIN,
            protocol,
            kind: RouteKind::Unicast,
            next_hops: vec![NextHop {
                gateway: None,
                ifindex,
                onlink: false,
            }],
            tos: 0,
        }
    }

    /// `blackhole <block> proto <protocol>`.
    pub fn blackhole(block: IpNet, protocol: u8) -> Route {
        let dst = block.trunc();
        Route {
            priority: Self::default_priority(&dst),
            dst,
            table: RT_TABLE_MAIN,
            protocol,
            scope: RT_SCOPE_UNIVERSE,
            kind: RouteKind::Blackhole,
            next_hops: Vec::new(),
            tos: 0,
        }
    }

    /// `<dst> via <gw> dev <if>` for one hop, an ECMP route for several (sorted, deduplicated).
    pub fn via(dst: IpNet, mut hops: Vec<NextHop>, protocol: u8) -> Route {
        hops.sort();
        hops.dedup();
        let dst = dst.trunc();
        Route {
            priority: Self::default_priority(&dst),
            dst,
            table: RT_TABLE_MAIN,
            protocol,
            scope: RT_SCOPE_UNIVERSE,
            kind: RouteKind::Unicast,
            next_hops: hops,
            tos: 0,
        }
    }

    /// The route in `ip route` style, with link names from `names` (ifindex when unknown).
    pub fn describe(&self, names: &BTreeMap<u32, String>) -> String {
        let dev = |i: u32| names.get(&i).cloned().unwrap_or_else(|| format!("if{i}"));
        let hop = |h: &NextHop| {
            let mut s = String::new();
            if let Some(g) = h.gateway {
                s.push_str(&format!("via {g} "));
            }
            s.push_str(&format!("dev {}", dev(h.ifindex)));
            if h.onlink {
                s.push_str(" onlink");
            }
            s
        };
        let mut out = match self.kind {
            RouteKind::Unicast => self.dst.to_string(),
            RouteKind::Blackhole => format!("blackhole {}", self.dst),
            RouteKind::Unreachable => format!("unreachable {}", self.dst),
            RouteKind::Prohibit => format!("prohibit {}", self.dst),
            RouteKind::Local => format!("local {}", self.dst),
            RouteKind::Other(t) => format!("type {t} {}", self.dst),
        };
        match self.next_hops.as_slice() {
            [] => {}
            [h] => out.push_str(&format!(" {}", hop(h))),
            hops => {
                for h in hops {
                    out.push_str(&format!(" nexthop {}", hop(h)));
                }
            }
        }
        if self.scope == RT_SCOPE_LINK {
            out.push_str(" scope link");
        }
        out.push_str(&format!(" proto {}", self.protocol));
        if self.priority != Self::default_priority(&self.dst) {
            out.push_str(&format!(" metric {}", self.priority));
        }
        out
    }

    /// True when this route goes out of link `ifindex` (any of its next hops).
    pub fn uses_link(&self, ifindex: u32) -> bool {
        self.next_hops.iter().any(|h| h.ifindex == ifindex)
    }

    /// Same destination, table, priority and tos: the kernel holds at most one such route.
    pub fn same_key(&self, other: &Route) -> bool {
        self.dst == other.dst
            && self.table == other.table
            && self.priority == other.priority
            && self.tos == other.tos
    }

    /// Equal in everything felix sets (next-hop order ignored).
    pub fn same_content(&self, other: &Route) -> bool {
        if !self.same_key(other)
            || self.protocol != other.protocol
            || self.scope != other.scope
            || self.kind != other.kind
            || self.next_hops.len() != other.next_hops.len()
        {
            return false;
        }
        let mut a = self.next_hops.clone();
        let mut b = other.next_hops.clone();
        a.sort();
        b.sort();
        a == b
    }
}

/// A neighbour (ARP/NDP) entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Neighbour {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub mac: MacAddr,
    /// `NUD_PERMANENT`; felix writes only permanent entries and owns only those.
    pub permanent: bool,
}

/// How a BGP next hop reaches the kernel: the result of a FIB lookup (BIRD's `gateway recursive`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Install the route `via gateway dev ifindex` (the next hop itself when directly connected).
    Via { gateway: IpAddr, ifindex: u32 },
    /// The next hop cannot be used; the route stays out of the kernel with this reason.
    Unresolvable { reason: String },
}

impl Resolution {
    /// `(gateway, ifindex)` when the next hop resolves.
    pub fn via(&self) -> Option<(IpAddr, u32)> {
        match self {
            Resolution::Via { gateway, ifindex } => Some((*gateway, *ifindex)),
            Resolution::Unresolvable { .. } => None,
        }
    }
}

/// A network link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operationally up (`IFF_RUNNING` / `IFF_LOWER_UP`).
    pub running: bool,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
}

/// The far end of a veth whose near end is in this namespace and whose far end is in another
/// (a workload link's pod-side `eth0`): that namespace's id as seen from here
/// (`IFLA_LINK_NETNSID`), the far end's ifindex there (`IFLA_LINK`) and its MAC as last read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkPeer {
    pub nsid: i32,
    pub ifindex: u32,
    /// `None` when the far end could not be read (gone, or its namespace has no id any more).
    pub mac: Option<MacAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "ee:ee:ee:ee:ee:ee".parse().unwrap();
        assert_eq!(m, MacAddr::HOST_SIDE);
        assert_eq!(
            "0a:1b:2c:3d:4e:5f".parse::<MacAddr>().unwrap().to_string(),
            "0a:1b:2c:3d:4e:5f"
        );
        for bad in [
            "",
            "ee:ee",
            "ee:ee:ee:ee:ee:ee:ee",
            "zz:ee:ee:ee:ee:ee",
            "eee:e:ee:ee:ee:ee",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn desired_changes_normalise_prefixes() {
        let mut d = DesiredState::default();
        d.apply(DesiredChange::AddBlackhole("10.0.0.5/26".parse().unwrap()));
        assert!(d.blackholes.contains(&"10.0.0.0/26".parse().unwrap()));
        d.apply(DesiredChange::UpsertRemote(RemoteRoute {
            dst: "10.1.0.77/24".parse().unwrap(),
            next_hops: ["192.0.2.1".parse().unwrap()].into(),
        }));
        assert!(d.remotes.contains_key(&"10.1.0.0/24".parse().unwrap()));
        d.apply(DesiredChange::RemoveRemote("10.1.0.1/24".parse().unwrap()));
        assert!(d.remotes.is_empty());
        d.apply(DesiredChange::RemoveBlackhole(
            "10.0.0.0/26".parse().unwrap(),
        ));
        assert!(d.blackholes.is_empty());
    }

    #[test]
    fn routes_describe_like_ip_route() {
        let names: BTreeMap<u32, String> =
            [(2, "eth0".to_string()), (7, "caliA".to_string())].into();
        let hop = |g: &str| NextHop {
            gateway: Some(g.parse().unwrap()),
            ifindex: 2,
            onlink: false,
        };
        let cases = [
            (
                Route::workload("10.0.0.1".parse().unwrap(), 7, 97),
                "10.0.0.1/32 dev caliA scope link proto 97",
            ),
            (
                Route::blackhole("10.0.0.0/26".parse().unwrap(), 97),
                "blackhole 10.0.0.0/26 proto 97",
            ),
            (
                Route::via("10.1.0.0/26".parse().unwrap(), vec![hop("192.0.2.1")], 97),
                "10.1.0.0/26 via 192.0.2.1 dev eth0 proto 97",
            ),
            (
                Route::via(
                    "10.2.0.0/26".parse().unwrap(),
                    vec![hop("192.0.2.2"), hop("192.0.2.1")],
                    97,
                ),
                "10.2.0.0/26 nexthop via 192.0.2.1 dev eth0 nexthop via 192.0.2.2 dev eth0 proto 97",
            ),
            (
                Route::workload("fd00::1".parse().unwrap(), 9, 97),
                "fd00::1/128 dev if9 proto 97",
            ),
        ];
        for (r, want) in cases {
            assert_eq!(r.describe(&names), want);
        }
    }

    #[test]
    fn route_content_ignores_hop_order_but_not_protocol() {
        let h1 = NextHop {
            gateway: Some("192.0.2.1".parse().unwrap()),
            ifindex: 2,
            onlink: false,
        };
        let h2 = NextHop {
            gateway: Some("192.0.2.2".parse().unwrap()),
            ifindex: 3,
            onlink: false,
        };
        let dst: IpNet = "10.2.0.0/26".parse().unwrap();
        let a = Route::via(dst, vec![h1, h2], 97);
        let mut b = a.clone();
        b.next_hops.reverse();
        assert!(a.same_content(&b));
        b.protocol = 12;
        assert!(!a.same_content(&b));
        assert!(a.same_key(&b));
        assert_eq!(
            Route::workload("fd00::1".parse().unwrap(), 4, 97).priority,
            1024
        );
    }
}
