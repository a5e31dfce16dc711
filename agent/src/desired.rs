//! What one node's BGP speaker should do: its sessions, the routes it originates and its export
//! policy, computed from the cluster configuration with Calico's confd rules (`bgp_processor.go`,
//! `client.go` `updatePeersV1`, the `bird*.cfg` templates).
//!
//! Owns: the mesh / global / node-specific / reverse peering rules, session naming and
//! de-duplication, passive and route-reflector-client decisions, service-address origination,
//! prefix-advertisement communities and the learned-route export rule; also the rows
//! `gingerctl get bgppeers|nodes` prints. Must not: open sessions or touch the kernel (the
//! speaker and felix do). A `ClusterConfig` and a node name enter; a `DesiredBgp` (one
//! declarative `SpeakerConfig` plus the originated set) leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use bgp::config::{
    DEFAULT_HOLD_TIME, DEFAULT_PORT, ExportPolicy, NextHopMode, OriginatedRoute, PeerConfig,
    PeerKind, SpeakerConfig,
};
use bgp::types::{Asn, Community, Family, LargeCommunity};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::ctl::{BgpPeerRow, NodeAsn, NodeRow};
use crate::datastore::model::{
    BgpPeer, BindMode, CommunityValue, EXCLUDE_SERVICE_LABEL, Node, PeerScope, PeerTarget,
    PrefixAdvertisement, ReversePeering, SourceAddress,
};
use crate::datastore::{ClusterConfig, ConfigError, tree};

/// Everything one node's speaker should be doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredBgp {
    /// The speaker's whole configuration (hand it to the speaker in one piece).
    pub speaker: SpeakerConfig,
    /// Routes the node originates besides its pod blocks (service address ranges), with their
    /// communities.
    pub originated: BTreeSet<OriginatedRoute>,
    /// The prefix advertisements in force on this node (`communities_for` applies them).
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    /// Sessions that were computed but not configured, and why (log them).
    pub skipped: Vec<SkippedPeer>,
}

impl DesiredBgp {
    /// The communities `prefixAdvertisements` attach to a route for `prefix`: the union over
    /// every advertisement whose CIDR contains it (BIRD `net ~ cidr`: the CIDR itself and
    /// anything more specific), sorted and without repeats. Pod blocks use this too.
    pub fn communities_for(&self, prefix: &IpNet) -> (Vec<Community>, Vec<LargeCommunity>) {
        communities_for(&self.prefix_advertisements, prefix)
    }

    /// An originated route for `prefix` carrying its communities.
    pub fn originate(&self, prefix: IpNet) -> OriginatedRoute {
        let (communities, large_communities) = self.communities_for(&prefix);
        OriginatedRoute {
            prefix,
            communities,
            large_communities,
        }
    }
}

/// A session that was not configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedPeer {
    /// The session name it would have had.
    pub name: String,
    /// What asked for it (`node-to-node mesh`, `BGPPeer "tor"`, …).
    pub source: String,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// Why a session was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Another source already configures a session to the same address and port (Global_ over
    /// Node_ over Mesh_, first BGPPeer by name first; confd keeps one the same way).
    Duplicate {
        /// The session that was kept.
        kept: String,
        /// What asked for the kept one.
        kept_source: String,
    },
    /// This node has no address of the peer's family to speak from.
    NoLocalAddress(Family),
}

impl fmt::Display for SkippedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            SkipReason::Duplicate { kept, kept_source } => write!(
                f,
                "{} (from {}) not configured: {kept} (from {kept_source}) already peers \
                    with the same address and port",
                self.name, self.source
            ),
            SkipReason::NoLocalAddress(family) => write!(
                f,
                "{} (from {}) not configured: this node has no {family} address",
                self.name, self.source
            ),
        }
    }
}

/// The union of the communities of every advertisement whose CIDR contains `prefix`.
pub fn communities_for(
    advertisements: &[PrefixAdvertisement],
    prefix: &IpNet,
) -> (Vec<Community>, Vec<LargeCommunity>) {
    let mut standard = BTreeSet::new();
    let mut large = BTreeSet::new();
    for adv in advertisements {
        if adv.cidr.contains(prefix) {
            for c in &adv.communities {
                match c {
                    CommunityValue::Standard(s) => {
                        standard.insert(*s);
                    }
                    CommunityValue::Large(l) => {
                        large.insert(*l);
                    }
                }
            }
        }
    }
    (standard.into_iter().collect(), large.into_iter().collect())
}

/// Calico's `CALICO_ROUTER_ID=hash` (confd `HashToIPv4`): the first four bytes of SHA-256 of the
/// node name, with a first octet above 223 moved down by 32 so it is not multicast/reserved.
/// Used for nodes without an IPv4 address.
pub fn hashed_router_id(node_name: &str) -> Ipv4Addr {
    let digest = Sha256::digest(node_name.as_bytes());
    let first = if digest[0] > 223 {
        digest[0] - 32
    } else {
        digest[0]
    };
    Ipv4Addr::new(first, digest[1], digest[2], digest[3])
}

/// One session as a source asks for it, before de-duplication.
struct Candidate {
    peer: PeerConfig,
    /// Described for users.
    source: String,
    /// The BGPPeer (or the mesh) it comes from: a forward and a reverse session from the same
    /// BGPPeer to the same endpoint are one session, not a conflict.
    origin: String,
}

/// The sessions of one node, one per (address, port), first come first kept.
#[derive(Default)]
struct Sessions {
    by_endpoint: BTreeMap<(IpAddr, u16), Candidate>,
    skipped: Vec<SkippedPeer>,
}

impl Sessions {
    fn offer(&mut self, candidate: Candidate) {
        let key = (candidate.peer.address, candidate.peer.port);
        if let Some(kept) = self.by_endpoint.get(&key) {
            // One BGPPeer can reach an endpoint twice (forward, and reverse when both ends match
            // its selectors); only a different session is worth a report.
            if kept.peer.name != candidate.peer.name || kept.origin != candidate.origin {
                self.skipped.push(SkippedPeer {
                    name: candidate.peer.name,
                    source: candidate.source,
                    reason: SkipReason::Duplicate {
                        kept: kept.peer.name.clone(),
                        kept_source: kept.source.clone(),
                    },
                });
            }
            return;
        }
        self.by_endpoint.insert(key, candidate);
    }
}

/// What the node computing its configuration knows about itself.
struct Me<'a> {
    node: &'a Node,
    asn: Asn,
    cluster_id: Option<Ipv4Addr>,
}

impl Me<'_> {
    fn address_like(&self, addr: &IpAddr) -> Option<IpAddr> {
        self.node.address_like(addr)
    }
}

/// Compute what node `node_name` should do (Calico confd's rules, `calico.md` §4.3).
pub fn desired_bgp(cluster: &ClusterConfig, node_name: &str) -> Result<DesiredBgp, ConfigError> {
    let node_error = |message: String| ConfigError::Node {
        file: cluster.source().to_string(),
        node: node_name.to_string(),
        message,
    };
    let Some(node) = cluster.node(node_name) else {
        let names: Vec<&str> = cluster.nodes().keys().map(String::as_str).collect();
        let hint = match tree::closest(node_name, &names) {
            Some(close) => format!("; did you mean {close:?}?"),
            None if names.is_empty() => "; the file defines no Node".to_string(),
            None if names.len() <= 10 => format!("; nodes defined: {}", names.join(", ")),
            None => format!(
                "; nodes defined: {}, … ({} in all)",
                names[..10].join(", "),
                names.len()
            ),
        };
        return Err(node_error(format!("is not defined{hint}")));
    };
    if node.addresses().is_empty() {
        return Err(node_error(
            "has no spec.bgp.ipv4Address or spec.bgp.ipv6Address, so it cannot run BGP".into(),
        ));
    }
    let me = Me {
        node,
        asn: cluster.node_as_number(node),
        cluster_id: node.route_reflector_cluster_id(),
    };

    let router_id = node.ipv4().unwrap_or_else(|| hashed_router_id(node.name()));
    let mut speaker = SpeakerConfig::new(router_id, me.asn);
    speaker.local_ipv4 = node.ipv4();
    speaker.local_ipv6 = node.ipv6();
    speaker.local_subnets = node.subnets();
    speaker.listen_port = Some(cluster.listen_port(node_name));
    if cluster.bind_mode() == BindMode::NodeIP {
        // SpeakerConfig holds one listening address: the IPv4 one when the node has both.
        speaker.listen_address = node.addresses().first().copied();
    }
    speaker.cluster_id = me.cluster_id;
    speaker.export = export_policy(cluster, node);

    let mut sessions = Sessions::default();
    // confd's order: every global peering first, then node-specific ones, then reverse
    // peerings; the first session to an endpoint wins. The mesh comes last: an explicit
    // BGPPeer to a mesh node carries the user's settings.
    for bgp_peer in cluster.bgp_peers().values() {
        if bgp_peer.scope == PeerScope::Global {
            forward_sessions(cluster, &me, bgp_peer, PeerKind::Global, &mut sessions);
        }
    }
    for bgp_peer in cluster.bgp_peers().values() {
        let applies = match &bgp_peer.scope {
            PeerScope::Global => false,
            PeerScope::Node(n) => n == node_name,
            PeerScope::Selector(s) => s.matches(node.labels()),
        };
        if applies {
            forward_sessions(
                cluster,
                &me,
                bgp_peer,
                PeerKind::NodeSpecific,
                &mut sessions,
            );
        }
    }
    for bgp_peer in cluster.bgp_peers().values() {
        reverse_sessions(cluster, &me, bgp_peer, &mut sessions);
    }
    if cluster.mesh_enabled() && me.cluster_id.is_none() {
        mesh_sessions(cluster, &me, &mut sessions);
    }

    for (_, candidate) in sessions.by_endpoint {
        speaker
            .peers
            .insert(candidate.peer.name.clone(), candidate.peer);
    }
    speaker
        .validate()
        .map_err(|e| node_error(format!("the computed BGP configuration is invalid: {e}")))?;

    let prefix_advertisements = cluster.prefix_advertisements(node_name).to_vec();
    let originated = service_routes(cluster, node)
        .into_iter()
        .map(|prefix| {
            let (communities, large_communities) = communities_for(&prefix_advertisements, &prefix);
            OriginatedRoute {
                prefix,
                communities,
                large_communities,
            }
        })
        .collect();

    Ok(DesiredBgp {
        speaker,
        originated,
        prefix_advertisements,
        skipped: sessions.skipped,
    })
}

/// A peering with another Calico node at its address of `like`'s family: (address, port, AS).
fn node_endpoint(
    cluster: &ClusterConfig,
    other: &Node,
    like: &IpAddr,
) -> Option<(IpAddr, u16, Asn)> {
    let addr = other.address_like(like)?;
    Some((
        addr,
        cluster.listen_port(other.name()),
        cluster.node_as_number(other),
    ))
}

/// Is `addr` the address of some node (the peer "is a Calico node")?
fn is_node_address(cluster: &ClusterConfig, addr: &IpAddr) -> bool {
    cluster
        .nodes()
        .values()
        .any(|n| n.addresses().contains(addr))
}

/// Apply a BGPPeer's per-session settings.
fn apply_settings(peer: &mut PeerConfig, bgp_peer: &BgpPeer, my_addr: IpAddr, my_asn: Asn) {
    peer.hold_time = bgp_peer.hold_time.unwrap_or(DEFAULT_HOLD_TIME);
    peer.keepalive_time = bgp_peer.keepalive_time;
    peer.restart_time = bgp_peer.max_restart_time;
    peer.allow_local_as = bgp_peer.allowed_local_as;
    peer.source_address = match bgp_peer.source_address {
        SourceAddress::UseNodeIP => Some(my_addr),
        SourceAddress::None => None,
    };
    let ebgp = peer.remote_asn != peer.local_asn.unwrap_or(my_asn);
    peer.next_hop_mode = match bgp_peer.next_hop_mode {
        Some(mode) => mode,
        // confd applies the deprecated flag to eBGP peers only.
        None if bgp_peer.keep_original_next_hop && ebgp => NextHopMode::Keep,
        None => NextHopMode::Auto,
    };
}

/// The sessions a BGPPeer gives a node it applies to (`Global_` or `Node_`).
fn forward_sessions(
    cluster: &ClusterConfig,
    me: &Me<'_>,
    bgp_peer: &BgpPeer,
    kind: PeerKind,
    sessions: &mut Sessions,
) {
    let source = format!("BGPPeer {:?}", bgp_peer.name());
    // (address, port, AS, rr cluster id of the peer if it is a node of ours)
    let mut endpoints: Vec<(IpAddr, u16, Asn, Option<Option<Ipv4Addr>>)> = Vec::new();
    match &bgp_peer.target {
        PeerTarget::Address {
            ip,
            port,
            as_number,
            ..
        } => {
            // Without a port, a peer that is one of our nodes (same address and AS) is reached
            // on that node's listen port.
            let port = port.unwrap_or_else(|| {
                cluster
                    .nodes()
                    .values()
                    .find(|n| n.addresses().contains(ip) && cluster.node_as_number(n) == *as_number)
                    .map_or(DEFAULT_PORT, |n| cluster.listen_port(n.name()))
            });
            // confd does not look up the cluster id of a plain peerIP peer.
            endpoints.push((*ip, port, *as_number, None));
        }
        PeerTarget::Nodes(selector) => {
            for other in cluster.nodes_matching(selector) {
                if other.name() == me.node.name() {
                    continue;
                }
                for like in me.node.addresses() {
                    if let Some((addr, port, asn)) = node_endpoint(cluster, other, &like) {
                        endpoints.push((addr, port, asn, Some(other.route_reflector_cluster_id())));
                    }
                }
            }
        }
    }
    for (addr, port, remote_asn, peer_cluster) in endpoints {
        let name = PeerConfig::calico_name(kind, addr, port);
        let Some(my_addr) = me.address_like(&addr) else {
            sessions.skipped.push(SkippedPeer {
                name,
                source: source.clone(),
                reason: SkipReason::NoLocalAddress(Family::of_addr(&addr)),
            });
            continue;
        };
        if my_addr == addr {
            continue; // confd skips a peering with ourselves
        }
        let mut peer = PeerConfig::new(name, kind, addr, remote_asn);
        peer.port = port;
        peer.local_asn = bgp_peer.local_as_number;
        apply_settings(&mut peer, bgp_peer, my_addr, me.asn);
        // Global peerings between our own nodes are one-way: the greater address string
        // connects (confd's `passive on` rule); node-specific ones connect from both sides.
        if kind == PeerKind::Global
            && is_node_address(cluster, &addr)
            && addr.to_string() > my_addr.to_string()
        {
            peer.passive = true;
        }
        peer.rr_client = rr_client(me, &peer, peer_cluster.flatten(), peer_cluster.is_some());
        sessions.offer(Candidate {
            peer,
            source: source.clone(),
            origin: bgp_peer.name().to_string(),
        });
    }
}

/// RFC 4456 client rule as confd writes it: this node is a route reflector, the session is
/// iBGP, and the peer is not a node of the same cluster (a plain peerIP peer always is a client).
fn rr_client(
    me: &Me<'_>,
    peer: &PeerConfig,
    peer_cluster: Option<Ipv4Addr>,
    is_node: bool,
) -> bool {
    let Some(my_cluster) = me.cluster_id else {
        return false;
    };
    let ibgp = peer.remote_asn == peer.local_asn.unwrap_or(me.asn);
    ibgp && (!is_node || peer_cluster != Some(my_cluster))
}

/// The reverse sessions `reversePeering: Auto` gives the nodes a BGPPeer points at: each of
/// them peers back with every node the BGPPeer applies to (confd's third pass; `Node_`).
fn reverse_sessions(
    cluster: &ClusterConfig,
    me: &Me<'_>,
    bgp_peer: &BgpPeer,
    sessions: &mut Sessions,
) {
    if bgp_peer.reverse_peering != ReversePeering::Auto {
        return;
    }
    // Is this node one the BGPPeer points at, and over which families?
    let (selected, families): (bool, Vec<Family>) = match &bgp_peer.target {
        PeerTarget::Nodes(selector) => (
            selector.matches(me.node.labels()),
            vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        ),
        PeerTarget::Address {
            ip,
            port,
            as_number,
            ..
        } => (
            me.node.addresses().contains(ip)
                && me.asn == *as_number
                && port.is_none_or(|p| p == cluster.listen_port(me.node.name())),
            vec![Family::of_addr(ip)],
        ),
    };
    if !selected {
        return;
    }
    let source = format!("BGPPeer {:?} (reverse peering)", bgp_peer.name());
    let peers: Vec<&Node> = match &bgp_peer.scope {
        PeerScope::Node(n) => cluster.node(n).into_iter().collect(),
        PeerScope::Selector(s) => cluster.nodes_matching(s).collect(),
        PeerScope::Global => cluster.nodes().values().collect(),
    };
    for other in peers {
        if other.name() == me.node.name() {
            continue;
        }
        for like in me.node.addresses() {
            if !families.contains(&Family::of_addr(&like)) {
                continue;
            }
            let Some((addr, port, remote_asn)) = node_endpoint(cluster, other, &like) else {
                continue;
            };
            if addr == like {
                continue;
            }
            let name = PeerConfig::calico_name(PeerKind::NodeSpecific, addr, port);
            let mut peer = PeerConfig::new(name, PeerKind::NodeSpecific, addr, remote_asn);
            peer.port = port;
            apply_settings(&mut peer, bgp_peer, like, me.asn);
            peer.rr_client = rr_client(me, &peer, other.route_reflector_cluster_id(), true);
            sessions.offer(Candidate {
                peer,
                source: source.clone(),
                origin: bgp_peer.name().to_string(),
            });
        }
    }
}

/// The node-to-node mesh: one `Mesh_` session per other node and family, except with route
/// reflectors (nodes with a cluster id stay out of the mesh).
fn mesh_sessions(cluster: &ClusterConfig, me: &Me<'_>, sessions: &mut Sessions) {
    for other in cluster.nodes().values() {
        if other.name() == me.node.name() || other.route_reflector_cluster_id().is_some() {
            continue;
        }
        for like in me.node.addresses() {
            let Some((addr, port, remote_asn)) = node_endpoint(cluster, other, &like) else {
                continue;
            };
            if addr == like {
                continue;
            }
            // confd never puts the port in a mesh session's name.
            let name = PeerConfig::calico_name(PeerKind::Mesh, addr, DEFAULT_PORT);
            let mut peer = PeerConfig::new(name, PeerKind::Mesh, addr, remote_asn);
            peer.port = port;
            peer.source_address = Some(like);
            peer.restart_time = cluster.mesh_restart_time();
            // Plain string comparison, as confd: the greater address string connects.
            peer.passive = addr.to_string() > like.to_string();
            sessions.offer(Candidate {
                peer,
                source: "node-to-node mesh".to_string(),
                origin: String::new(),
            });
        }
    }
}

/// A single address (/32, /128): Calico advertises those per service, not from every node.
fn is_single_address(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

fn advertises_services(node: &Node) -> bool {
    node.labels().get(EXCLUDE_SERVICE_LABEL).map(String::as_str) != Some("true")
}

/// The service ranges this node originates (confd's static routes): every cluster-IP range and
/// the external/LoadBalancer ranges that are not single addresses, unless the node is labelled
/// out of service advertisement, and only in families the node has an address in.
fn service_routes(cluster: &ClusterConfig, node: &Node) -> BTreeSet<IpNet> {
    let mut out = BTreeSet::new();
    let (Some(global), true) = (cluster.global_bgp(), advertises_services(node)) else {
        return out;
    };
    let has_family = |net: &IpNet| match net {
        IpNet::V4(_) => node.ipv4().is_some(),
        IpNet::V6(_) => node.ipv6().is_some(),
    };
    out.extend(global.service_cluster_ips.iter().copied());
    out.extend(
        global
            .service_external_ips
            .iter()
            .chain(&global.service_load_balancer_ips)
            .filter(|n| !is_single_address(n))
            .copied(),
    );
    out.retain(has_family);
    out
}

/// Calico's `calico_export_to_bgp_peers` for learned routes: nothing inside a pool with
/// `disableBGPExport`; otherwise only routes inside an exporting pool, inside the service ranges
/// this node advertises, or (on a route reflector) inside the external and LoadBalancer ranges.
/// Node subnets and default routes are never inside any of these (pools and service ranges of
/// length 0 are refused by validation).
fn export_policy(cluster: &ClusterConfig, node: &Node) -> ExportPolicy {
    let mut allow = BTreeSet::new();
    let mut deny = BTreeSet::new();
    for pool in cluster.ip_pools().values() {
        if pool.disable_bgp_export {
            deny.insert(pool.cidr);
        } else {
            allow.insert(pool.cidr);
        }
    }
    allow.extend(service_routes(cluster, node));
    if let (Some(global), Some(_)) = (cluster.global_bgp(), node.route_reflector_cluster_id()) {
        allow.extend(global.service_external_ips.iter().copied());
        allow.extend(global.service_load_balancer_ips.iter().copied());
    }
    ExportPolicy {
        allow_learned_within: Some(allow.into_iter().collect()),
        deny_within: deny.into_iter().collect(),
    }
}

/// The rows of `gingerctl get bgppeers` (calicoctl's NAME, PEERIP, NODE, ASN), by name.
pub fn bgp_peer_rows(cluster: &ClusterConfig) -> Vec<BgpPeerRow> {
    cluster
        .bgp_peers()
        .values()
        .map(|p| {
            let (peer_ip, port, asn) = match &p.target {
                PeerTarget::Address {
                    ip,
                    port,
                    as_number,
                    ..
                } => (Some(*ip), *port, Some(*as_number)),
                PeerTarget::Nodes(_) => (None, None, None),
            };
            let (node, node_selector) = match &p.scope {
                PeerScope::Node(n) => (Some(n.clone()), None),
                PeerScope::Selector(s) => (None, Some(s.to_string())),
                PeerScope::Global => (None, None),
            };
            BgpPeerRow {
                name: p.name().to_string(),
                peer_ip,
                port,
                node,
                node_selector,
                asn,
            }
        })
        .collect()
}

/// The rows of `gingerctl get nodes` (calicoctl's NAME, ASN, IPV4, IPV6), by name.
pub fn node_rows(cluster: &ClusterConfig) -> Vec<NodeRow> {
    cluster
        .nodes()
        .values()
        .map(|n| {
            let bgp = n.bgp.as_ref();
            NodeRow {
                name: n.name().to_string(),
                asn: bgp.map(|_| match n.as_number() {
                    Some(a) => NodeAsn::Explicit(a),
                    None => NodeAsn::Inherited(cluster.as_number()),
                }),
                ipv4: bgp.and_then(|b| b.ipv4_address).map(IpNet::V4),
                ipv6: bgp.and_then(|b| b.ipv6_address).map(IpNet::V6),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_router_id_matches_calicos_rule() {
        // Expected values computed independently (Python hashlib) with confd's HashToIPv4 rule.
        // sha256("node-1") starts 35 97 1b e6.
        assert_eq!(hashed_router_id("node-1"), Ipv4Addr::new(53, 151, 27, 230));
        // sha256("n13") starts f4 f5 0d ed: 0xf4 = 244 > 223, so 244 - 32 = 212.
        assert_eq!(hashed_router_id("n13"), Ipv4Addr::new(212, 245, 13, 237));
    }

    #[test]
    fn communities_union_within_prefix() {
        let adv = |cidr: &str, vals: &[&str]| PrefixAdvertisement {
            cidr: cidr.parse().unwrap(),
            communities: vals
                .iter()
                .map(|v| CommunityValue::parse(v).unwrap())
                .collect(),
        };
        let advs = vec![
            adv("10.96.0.0/12", &["65000:100", "65000:1:2"]),
            adv("10.96.0.0/16", &["65000:200", "65000:100"]),
            adv("0.0.0.0/0", &["65000:999"]),
            adv("fd00::/8", &["65000:666"]),
        ];
        let (std, large) = communities_for(&advs, &"10.96.0.0/16".parse().unwrap());
        assert_eq!(
            std,
            vec![
                (65000 << 16) | 100,
                (65000 << 16) | 200,
                (65000 << 16) | 999
            ]
        );
        assert_eq!(
            large,
            vec![LargeCommunity {
                global: 65000,
                local1: 1,
                local2: 2
            }]
        );
        // A wider prefix than the advertisement's CIDR does not match it (`net ~ cidr`).
        let (std, _) = communities_for(&advs, &"10.0.0.0/8".parse().unwrap());
        assert_eq!(std, vec![(65000 << 16) | 999]);
        let (std, _) = communities_for(&advs, &"fd00:1::/64".parse().unwrap());
        assert_eq!(std, vec![(65000 << 16) | 666]);
    }
}
