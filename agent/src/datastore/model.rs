//! The cluster's resources after validation: Calico's `projectcalico.org/v3` kinds (also served
//! as `ginger.dev/v1`) with every field parsed into the type it means.
//!
//! Owns: plain data types (`Node`, `BgpPeer`, `IpPool`, `BgpConfiguration` and their parts) and
//! Calico's defaults for them. Must not: parse text (that is `decode`) or compute a node's peers
//! (that is `desired`). Values are built only by the decoders, so holding one means it passed
//! validation; the CLI prints rows from them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use bgp::config::NextHopMode;
use bgp::types::{Asn, Community, LargeCommunity, community_to_string};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::selector::Selector;

/// Calico's default AS number.
pub const DEFAULT_AS_NUMBER: Asn = 64512;
/// Calico's default IPv4 block size.
pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
/// Calico's default IPv6 block size.
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;
/// The node label that keeps a node from advertising service addresses (Calico's
/// `ExcludeServiceAdvertisement`, value `"true"`).
pub const EXCLUDE_SERVICE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The resource kinds a cluster file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `BGPConfiguration`.
    BgpConfiguration,
    /// `Node`.
    Node,
    /// `BGPPeer`.
    BgpPeer,
    /// `IPPool`.
    IpPool,
}

impl Kind {
    /// Every kind, in the order their spelling is listed to users.
    pub const ALL: [Kind; 4] = [
        Kind::BgpConfiguration,
        Kind::BgpPeer,
        Kind::IpPool,
        Kind::Node,
    ];

    /// The `kind:` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Kind::BgpConfiguration => "BGPConfiguration",
            Kind::Node => "Node",
            Kind::BgpPeer => "BGPPeer",
            Kind::IpPool => "IPPool",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `metadata` of any resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels` (selectors match these on Nodes).
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations` (kept, not interpreted).
    pub annotations: BTreeMap<String, String>,
}

/// A node's BGP settings (`spec.bgp` of Calico's Node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeBgp {
    /// `ipv4Address`: the node's address with its subnet length (`10.0.0.5/24`).
    pub ipv4_address: Option<Ipv4Net>,
    /// `ipv6Address`, same form.
    pub ipv6_address: Option<Ipv6Net>,
    /// `asNumber`: overrides the global AS for this node.
    pub as_number: Option<Asn>,
    /// `routeReflectorClusterID`: makes the node a route reflector for this cluster id.
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
}

/// A `Node` resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Name and labels.
    pub metadata: Metadata,
    /// `spec.bgp`; `None` for a node that takes no part in BGP.
    pub bgp: Option<NodeBgp>,
}

impl Node {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The node's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.metadata.labels
    }

    /// The node's IPv4 address (without the subnet length).
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.bgp.as_ref()?.ipv4_address.map(|n| n.addr())
    }

    /// The node's subnets: its address CIDRs, truncated to their networks.
    pub fn subnets(&self) -> Vec<IpNet> {
        let Some(bgp) = self.bgp.as_ref() else {
            return Vec::new();
        };
        let v4 = bgp.ipv4_address.map(|n| IpNet::V4(n.trunc()));
        let v6 = bgp.ipv6_address.map(|n| IpNet::V6(n.trunc()));
        v4.into_iter().chain(v6).collect()
    }

    /// The node's IPv6 address (without the subnet length).
    pub fn ipv6(&self) -> Option<std::net::Ipv6Addr> {
        self.bgp.as_ref()?.ipv6_address.map(|n| n.addr())
    }

    /// The node's address of the same family as `like`.
    pub fn address_like(&self, like: &IpAddr) -> Option<IpAddr> {
        match like {
            IpAddr::V4(_) => self.ipv4().map(IpAddr::V4),
            IpAddr::V6(_) => self.ipv6().map(IpAddr::V6),
        }
    }

    /// The node's addresses, IPv4 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        if let Some(a) = self.ipv4() {
            out.push(IpAddr::V4(a));
        }
        if let Some(a) = self.ipv6() {
            out.push(IpAddr::V6(a));
        }
        out
    }

    /// The node's own `asNumber`, if it overrides the global one.
    pub fn as_number(&self) -> Option<Asn> {
        self.bgp.as_ref()?.as_number
    }

    /// The node's route-reflector cluster id.
    pub fn route_reflector_cluster_id(&self) -> Option<Ipv4Addr> {
        self.bgp.as_ref()?.route_reflector_cluster_id
    }
}

/// Where a BGPPeer's remote end is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerTarget {
    /// `peerIP` (with an optional port) and `asNumber`.
    Address {
        /// The peer's address.
        ip: IpAddr,
        /// The port written in `peerIP` (`ip:port`, `[v6]:port`).
        port: Option<u16>,
        /// `asNumber`.
        as_number: Asn,
        /// `peerIP` as written (the `PEERIP` column).
        text: String,
    },
    /// `peerSelector`: every node it selects, at that node's address and AS.
    Nodes(Selector),
}

/// `sourceAddress`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SourceAddress {
    /// Bind to the node's own address of the peer's family (Calico's default).
    #[default]
    UseNodeIP,
    /// Let the kernel choose.
    None,
}

/// `reversePeering`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReversePeering {
    /// The nodes selected as peers get the reverse session automatically (default).
    #[default]
    Auto,
    /// The reverse session needs its own BGPPeer.
    Manual,
}

/// Which nodes a BGPPeer applies to (`node` / `nodeSelector` / neither).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerScope {
    /// Neither `node` nor `nodeSelector`: every node (`Global_` sessions).
    Global,
    /// `node`: that node only.
    Node(String),
    /// `nodeSelector`: the nodes it matches.
    Selector(Selector),
}

/// A `BGPPeer` resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpPeer {
    /// Name (labels are not used).
    pub metadata: Metadata,
    /// Which nodes have this peering.
    pub scope: PeerScope,
    /// The remote end.
    pub target: PeerTarget,
    /// `localASNumber`: our AS on these sessions instead of the node's.
    pub local_as_number: Option<Asn>,
    /// `keepaliveTime`, seconds.
    pub keepalive_time: Option<u16>,
    /// `holdTime`, seconds (a Ginger addition; BIRD's 240 s when absent).
    pub hold_time: Option<u16>,
    /// `nextHopMode`.
    pub next_hop_mode: Option<NextHopMode>,
    /// `keepOriginalNextHop` (deprecated): `next hop keep` towards eBGP peers only, as confd does.
    pub keep_original_next_hop: bool,
    /// `sourceAddress`.
    pub source_address: SourceAddress,
    /// `maxRestartTime`, seconds (graceful restart time we ask the peer to keep our routes).
    pub max_restart_time: Option<u16>,
    /// `numAllowedLocalASNumbers`: how many times our AS may appear in a path received on these
    /// sessions (BIRD `allow local as <n>`); 0 when absent.
    pub allowed_local_as: u8,
    /// `reversePeering`.
    pub reverse_peering: ReversePeering,
}

impl BgpPeer {
    /// The BGPPeer's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

/// `allowedUses` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AllowedUse {
    /// Pod addresses.
    Workload,
    /// Tunnel addresses.
    Tunnel,
    /// Service LoadBalancer addresses.
    LoadBalancer,
}

/// `assignmentMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AssignmentMode {
    /// IPAM may pick from this pool on its own.
    #[default]
    Automatic,
    /// Only explicit requests (annotations) use this pool.
    Manual,
}

/// An `IPPool` resource. Pools are never encapsulated in Ginger (`ipipMode`/`vxlanMode` are
/// `Never`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpPool {
    /// Name.
    pub metadata: Metadata,
    /// `cidr`.
    pub cidr: IpNet,
    /// `blockSize` (26 / 122 when absent).
    pub block_size: u8,
    /// `disabled`: IPAM does not allocate from it (its routes are still exported).
    pub disabled: bool,
    /// `disableBGPExport`: nothing inside it is exported over BGP.
    pub disable_bgp_export: bool,
    /// `nodeSelector` (`all()` when absent): nodes that may take blocks from it.
    pub node_selector: Selector,
    /// `natOutgoing`.
    pub nat_outgoing: bool,
    /// `allowedUses` (`[Workload, Tunnel]` when absent).
    pub allowed_uses: Vec<AllowedUse>,
    /// `assignmentMode`.
    pub assignment_mode: AssignmentMode,
}

impl IpPool {
    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

/// A community value as Calico writes it: `aa:nn` (RFC 1997) or `aa:nn:mm` (RFC 8092).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommunityValue {
    /// `aa:nn`, two 16-bit numbers.
    Standard(Community),
    /// `aa:nn:mm`, three 32-bit numbers.
    Large(LargeCommunity),
}

impl CommunityValue {
    /// Parse `aa:nn` or `aa:nn:mm`; `None` when it is neither (then it may be a name).
    pub fn parse(text: &str) -> Result<CommunityValue, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let nums: Option<Vec<u64>> = parts.iter().map(|p| number(p)).collect();
        match (parts.len(), nums) {
            (2, Some(n)) => {
                if n.iter().all(|v| *v <= u64::from(u16::MAX)) {
                    Ok(CommunityValue::Standard(
                        ((n[0] as u32) << 16) | n[1] as u32,
                    ))
                } else {
                    Err(format!(
                        "{text:?}: each part of a standard community aa:nn must be 0-65535"
                    ))
                }
            }
            (3, Some(n)) => {
                let parts: Option<Vec<u32>> = n.iter().map(|v| u32::try_from(*v).ok()).collect();
                match parts {
                    Some(p) => Ok(CommunityValue::Large(LargeCommunity {
                        global: p[0],
                        local1: p[1],
                        local2: p[2],
                    })),
                    None => Err(format!(
                        "{text:?}: each part of a large community aa:nn:mm must be 0-4294967295"
                    )),
                }
            }
            _ => Err(format!(
                "{text:?} is not a community value (aa:nn or aa:nn:mm)"
            )),
        }
    }

    /// Does `text` have the shape of a community value (digits separated by 2 or 3 colons)? A
    /// string of that shape is always read as a value, never as a name (Calico's rule).
    pub fn looks_like_value(text: &str) -> bool {
        let parts: Vec<&str> = text.split(':').collect();
        (parts.len() == 2 || parts.len() == 3)
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    }
}

impl fmt::Display for CommunityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommunityValue::Standard(c) => f.write_str(&community_to_string(*c)),
            CommunityValue::Large(l) => write!(f, "{l}"),
        }
    }
}

/// `communities[]`: a named community value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedCommunity {
    /// `name`.
    pub name: String,
    /// `value`.
    pub value: CommunityValue,
}

/// `prefixAdvertisements[]`: communities added to every exported route inside `cidr`
/// (BIRD `net ~ cidr`, so the prefix itself and everything more specific).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixAdvertisement {
    /// `cidr`.
    pub cidr: IpNet,
    /// `communities`, with names already resolved to values.
    pub communities: Vec<CommunityValue>,
}

/// `logSeverityScreen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSeverity {
    /// `Trace`.
    Trace,
    /// `Debug`.
    Debug,
    /// `Info` (default).
    Info,
    /// `Warning`.
    Warning,
    /// `Error`.
    Error,
    /// `Fatal`.
    Fatal,
}

/// `bindMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BindMode {
    /// Listen on every address (default).
    #[default]
    None,
    /// Listen only on the node's address.
    NodeIP,
}

/// Which nodes a BGPConfiguration applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigScope {
    /// `default`: the cluster-wide settings.
    Global,
    /// `node.<name>`: overrides for one node (only listenPort, logSeverityScreen, communities,
    /// prefixAdvertisements).
    Node(String),
}

/// A `BGPConfiguration` resource. `None`/empty fields take Calico's defaults (or, for a
/// per-node one, the global value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpConfiguration {
    /// Name (`default` or `node.<name>`).
    pub metadata: Metadata,
    /// Derived from the name.
    pub scope: ConfigScope,
    /// `asNumber` (64512).
    pub as_number: Option<Asn>,
    /// `nodeToNodeMeshEnabled` (true).
    pub node_to_node_mesh_enabled: Option<bool>,
    /// `listenPort` (179).
    pub listen_port: Option<u16>,
    /// `logSeverityScreen` (Info).
    pub log_severity_screen: Option<LogSeverity>,
    /// `bindMode` (None).
    pub bind_mode: Option<BindMode>,
    /// `serviceClusterIPs[].cidr`.
    pub service_cluster_ips: Vec<IpNet>,
    /// `serviceExternalIPs[].cidr`.
    pub service_external_ips: Vec<IpNet>,
    /// `serviceLoadBalancerIPs[].cidr`.
    pub service_load_balancer_ips: Vec<IpNet>,
    /// `communities`.
    pub communities: Vec<NamedCommunity>,
    /// `prefixAdvertisements`; `None` when the field is absent (a per-node configuration then
    /// inherits the global list).
    pub prefix_advertisements: Option<Vec<PrefixAdvertisement>>,
    /// `nodeMeshMaxRestartTime`, seconds.
    pub node_mesh_max_restart_time: Option<u16>,
}

impl BgpConfiguration {
    /// The configuration's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

/// One validated resource of any kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A BGPConfiguration.
    BgpConfiguration(BgpConfiguration),
    /// A Node.
    Node(Node),
    /// A BGPPeer.
    BgpPeer(BgpPeer),
    /// An IPPool.
    IpPool(IpPool),
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::BgpConfiguration(_) => Kind::BgpConfiguration,
            Resource::Node(_) => Kind::Node,
            Resource::BgpPeer(_) => Kind::BgpPeer,
            Resource::IpPool(_) => Kind::IpPool,
        }
    }

    /// The resource's name.
    pub fn name(&self) -> &str {
        match self {
            Resource::BgpConfiguration(r) => r.name(),
            Resource::Node(r) => r.name(),
            Resource::BgpPeer(r) => r.name(),
            Resource::IpPool(r) => r.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_values() {
        assert_eq!(
            CommunityValue::parse("65000:100"),
            Ok(CommunityValue::Standard((65000 << 16) | 100))
        );
        assert_eq!(
            CommunityValue::parse("4200000000:1:2"),
            Ok(CommunityValue::Large(LargeCommunity {
                global: 4_200_000_000,
                local1: 1,
                local2: 2
            }))
        );
        assert!(
            CommunityValue::parse("65536:1")
                .unwrap_err()
                .contains("0-65535")
        );
        assert!(
            CommunityValue::parse("1:2:4294967296")
                .unwrap_err()
                .contains("0-4294967295")
        );
        assert!(CommunityValue::parse("no-export").is_err());
        assert!(CommunityValue::looks_like_value("65536:1"));
        assert!(!CommunityValue::looks_like_value("tor-a"));
        assert!(!CommunityValue::looks_like_value("1:2:3:4"));
        assert_eq!(
            CommunityValue::parse("65000:100").unwrap().to_string(),
            "65000:100"
        );
        assert_eq!(CommunityValue::parse("1:2:3").unwrap().to_string(), "1:2:3");
    }
}
