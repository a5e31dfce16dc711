//! The speaker's desired configuration, as the agent hands it over in one piece, and the diff that
//! tells the speaker what a new configuration changes.
//!
//! Owns: `SpeakerConfig`, `PeerConfig`, `OriginatedRoute`, their defaults, `validate()`, and
//! `diff()` (RFC-neutral: which changes restart everything, which reset one peer, which are live).
//! Must not: read files or Kubernetes objects (the agent does), or start sessions (the speaker does).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::types::{Asn, Community, Family, LargeCommunity};

/// The default BGP port.
pub const DEFAULT_PORT: u16 = 179;
/// BIRD's default hold time, which Calico keeps (seconds).
pub const DEFAULT_HOLD_TIME: u16 = 240;
/// Calico's `connect retry time 5` (seconds).
pub const DEFAULT_CONNECT_RETRY: u16 = 5;
/// RFC 4724 restart time Calico/BIRD advertise by default (seconds).
pub const DEFAULT_RESTART_TIME: u16 = 120;

/// Whether a peer is part of the node mesh, a global BGPPeer, or a node-specific one. Used for
/// display (`gingerctl node status` PEER TYPE) and the session name prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PeerKind {
    /// `Mesh_…`: node-to-node mesh.
    Mesh,
    /// `Global_…`: a BGPPeer without `node`/`nodeSelector`.
    Global,
    /// `Node_…`: a BGPPeer for specific nodes.
    NodeSpecific,
}

impl PeerKind {
    /// The session name prefix Calico uses (`Mesh`, `Global`, `Node`).
    pub fn prefix(self) -> &'static str {
        match self {
            PeerKind::Mesh => "Mesh",
            PeerKind::Global => "Global",
            PeerKind::NodeSpecific => "Node",
        }
    }

    /// The PEER TYPE column of `calicoctl node status`.
    pub fn display(self) -> &'static str {
        match self {
            PeerKind::Mesh => "node-to-node mesh",
            PeerKind::Global => "global",
            PeerKind::NodeSpecific => "node specific",
        }
    }
}

/// Calico's BGPPeer `nextHopMode` (BIRD `next hop self` / `next hop keep`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NextHopMode {
    /// BIRD's default: the received next hop kept towards iBGP peers (and by route reflection)
    /// and towards an eBGP peer on the same segment as that next hop; our address otherwise.
    #[default]
    Auto,
    /// Always our own address (`next hop self`).
    #[serde(rename = "Self")]
    SelfAddr,
    /// Always the received next hop, also towards eBGP (`next hop keep`).
    Keep,
}

/// One BGP neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// Session name, Calico style: `Mesh_10_0_0_2`, `Global_192_0_2_1`, `Node_10_0_0_9_port_1179`.
    /// Unique within a speaker; also the peer's identity across `apply()` calls.
    pub name: String,
    /// Where the peer came from (display only).
    pub kind: PeerKind,
    /// The neighbour's address.
    pub address: IpAddr,
    /// The neighbour's TCP port (default 179).
    pub port: u16,
    /// The neighbour's AS.
    pub remote_asn: Asn,
    /// Our AS on this session, if it differs from the speaker's (`localASNumber`).
    pub local_asn: Option<Asn>,
    /// Never open a connection; wait for the peer (Calico's mesh rule: the greater IP connects).
    pub passive: bool,
    /// Bind outgoing connections to this address (`sourceAddress: UseNodeIP`).
    pub source_address: Option<IpAddr>,
    /// Hold time we propose, seconds; 0 disables hold and keepalive timers.
    pub hold_time: u16,
    /// Keepalive interval, seconds; `None` means a third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    /// Seconds between connection attempts (doubled per failure up to 8× with jitter).
    pub connect_retry: u16,
    /// Next-hop handling on export.
    pub next_hop_mode: NextHopMode,
    /// This peer is a route-reflector client of ours (RFC 4456); needs `cluster_id` on the
    /// speaker and an iBGP peer.
    pub rr_client: bool,
    /// Families to negotiate on this session.
    pub families: Vec<Family>,
    /// Graceful restart time we ask this peer to keep our routes (`maxRestartTime`); `None`
    /// uses the speaker's.
    pub restart_time: Option<u16>,
    /// How many times our AS may appear in a path received from this peer before it is an AS
    /// loop (BIRD `allow local as <n>`, Calico `numAllowedLocalASNumbers`); 0 is RFC 4271's
    /// check. A change resets this peer's session only, as BIRD restarts the protocol.
    #[serde(default)]
    pub allow_local_as: u8,
}

impl PeerConfig {
    /// A peer with Calico/BIRD defaults: port 179, hold 240 s, retry 5 s, families of the address.
    pub fn new(name: impl Into<String>, kind: PeerKind, address: IpAddr, remote_asn: Asn) -> Self {
        PeerConfig {
            name: name.into(),
            kind,
            address,
            port: DEFAULT_PORT,
            remote_asn,
            local_asn: None,
            passive: false,
            source_address: None,
            hold_time: DEFAULT_HOLD_TIME,
            keepalive_time: None,
            connect_retry: DEFAULT_CONNECT_RETRY,
            next_hop_mode: NextHopMode::Auto,
            rr_client: false,
            families: vec![Family::of_addr(&address)],
            restart_time: None,
            allow_local_as: 0,
        }
    }

    /// Calico's session name for a peer: `<Kind>_<ip with . or : as _>[_port_<p>]`.
    pub fn calico_name(kind: PeerKind, address: IpAddr, port: u16) -> String {
        let ip = address.to_string().replace(['.', ':'], "_");
        if port == DEFAULT_PORT {
            format!("{}_{}", kind.prefix(), ip)
        } else {
            format!("{}_{}_port_{}", kind.prefix(), ip, port)
        }
    }
}

/// Graceful restart settings (RFC 4724). Full behaviour comes with the dataplane; the capability
/// is advertised from these values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GracefulRestartConfig {
    /// Advertise the capability at all.
    pub enabled: bool,
    /// Restart time we advertise (seconds).
    pub restart_time: u16,
    /// We restarted and are in restart state (R bit) until our peers' End-of-RIBs arrive.
    pub restarting: bool,
    /// We preserved forwarding state across the restart (F bit).
    pub forwarding_preserved: bool,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            enabled: true,
            restart_time: DEFAULT_RESTART_TIME,
            restarting: false,
            forwarding_preserved: true,
        }
    }
}

/// Which learned routes may be exported (Calico's `calico_export_to_bgp_peers`). Originated
/// routes are always exported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportPolicy {
    /// Learned routes inside one of these prefixes (enabled IP pools) are exported; `None`
    /// exports every learned route (a plain BGP router).
    pub allow_learned_within: Option<Vec<IpNet>>,
    /// Nothing inside these prefixes is exported, originated or learned (`disableBGPExport`).
    pub deny_within: Vec<IpNet>,
}

/// The whole desired configuration of the speaker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeakerConfig {
    /// BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Our AS.
    pub local_asn: Asn,
    /// TCP port to listen on; `None` does not listen (every peer must then be active).
    pub listen_port: Option<u16>,
    /// Listen only on this address (Calico `bindMode: NodeIP`); `None` listens on all.
    pub listen_address: Option<IpAddr>,
    /// Our route-reflector cluster id; `Some` makes us a route reflector for `rr_client` peers.
    pub cluster_id: Option<Ipv4Addr>,
    /// Our IPv4 address, used as next hop for IPv4 routes sent over IPv6 sessions.
    pub local_ipv4: Option<Ipv4Addr>,
    /// Our IPv6 address, used as next hop for IPv6 routes sent over IPv4 sessions.
    pub local_ipv6: Option<Ipv6Addr>,
    /// Our connected subnets (the node's address CIDRs): towards an eBGP peer in one of them,
    /// a next hop in the same one is passed on unchanged (RFC 4271 §5.1.3).
    #[serde(default)]
    pub local_subnets: Vec<IpNet>,
    /// Graceful restart.
    pub graceful_restart: GracefulRestartConfig,
    /// Install equal-cost paths as a multipath set (BIRD `merge paths on`).
    pub multipath: bool,
    /// Export filter for learned routes.
    pub export: ExportPolicy,
    /// Neighbours by name.
    pub peers: BTreeMap<String, PeerConfig>,
}

impl SpeakerConfig {
    /// A speaker with no peers and Calico's defaults.
    pub fn new(router_id: Ipv4Addr, local_asn: Asn) -> SpeakerConfig {
        SpeakerConfig {
            router_id,
            local_asn,
            listen_port: Some(DEFAULT_PORT),
            listen_address: None,
            cluster_id: None,
            local_ipv4: Some(router_id),
            local_ipv6: None,
            local_subnets: Vec::new(),
            graceful_restart: GracefulRestartConfig::default(),
            multipath: true,
            export: ExportPolicy::default(),
            peers: BTreeMap::new(),
        }
    }

    /// Add a peer (builder style, for tests and the agent).
    pub fn with_peer(mut self, peer: PeerConfig) -> SpeakerConfig {
        self.peers.insert(peer.name.clone(), peer);
        self
    }

    /// Check what the types cannot: every problem found, each naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.local_asn == 0 {
            problems.push("local_asn: 0 is not a valid AS number".to_string());
        }
        if self.router_id.is_unspecified() {
            problems.push("router_id: 0.0.0.0 is not a valid BGP identifier".to_string());
        }
        for (key, p) in &self.peers {
            if key != &p.name {
                problems.push(format!("peer {key}: name field is {:?}", p.name));
            }
            if p.remote_asn == 0 {
                problems.push(format!("peer {key}: remote_asn 0 is not a valid AS number"));
            }
            if p.hold_time == 1 || p.hold_time == 2 {
                problems.push(format!(
                    "peer {key}: hold_time {} is not allowed (0 or at least 3, RFC 4271 §4.2)",
                    p.hold_time
                ));
            }
            if let Some(k) = p.keepalive_time
                && p.hold_time != 0
                && k >= p.hold_time
            {
                problems.push(format!(
                    "peer {key}: keepalive_time {k} must be below hold_time {}",
                    p.hold_time
                ));
            }
            if p.port == 0 {
                problems.push(format!("peer {key}: port 0 is not valid"));
            }
            if p.families.is_empty() {
                problems.push(format!("peer {key}: no address family"));
            }
            if p.rr_client && self.cluster_id.is_none() {
                problems.push(format!(
                    "peer {key}: rr_client needs a route-reflector cluster_id on this speaker"
                ));
            }
            if p.rr_client && p.remote_asn != p.local_asn.unwrap_or(self.local_asn) {
                problems.push(format!(
                    "peer {key}: rr_client is only valid for iBGP peers"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// What changes from `self` (running) to `new` (desired).
    pub fn diff(&self, new: &SpeakerConfig) -> ConfigDiff {
        // Router id and AS are in every OPEN: a change restarts every session (Cilium preflight).
        let restart_all = self.router_id != new.router_id
            || self.local_asn != new.local_asn
            || self.cluster_id != new.cluster_id
            || self.graceful_restart.enabled != new.graceful_restart.enabled
            || self.graceful_restart.restart_time != new.graceful_restart.restart_time;
        let relisten =
            self.listen_port != new.listen_port || self.listen_address != new.listen_address;
        let mut removed = BTreeSet::new();
        let mut added = BTreeSet::new();
        let mut changed = BTreeSet::new();
        for name in self.peers.keys() {
            if !new.peers.contains_key(name) {
                removed.insert(name.clone());
            }
        }
        for (name, p) in &new.peers {
            match self.peers.get(name) {
                None => {
                    added.insert(name.clone());
                }
                Some(old) if old != p => {
                    changed.insert(name.clone());
                }
                Some(_) => {}
            }
        }
        let policy_changed = self.export != new.export
            || self.multipath != new.multipath
            || self.local_ipv4 != new.local_ipv4
            || self.local_ipv6 != new.local_ipv6
            || self.local_subnets != new.local_subnets;
        ConfigDiff {
            restart_all,
            relisten,
            removed,
            added,
            changed,
            policy_changed,
        }
    }
}

/// The effect of a configuration change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Every session must restart (router id, AS, cluster id or GR parameters changed).
    pub restart_all: bool,
    /// The listening socket must be re-bound.
    pub relisten: bool,
    /// Peers to stop and forget.
    pub removed: BTreeSet<String>,
    /// Peers to start.
    pub added: BTreeSet<String>,
    /// Peers whose settings changed: reset that session only.
    pub changed: BTreeSet<String>,
    /// Export policy or next-hop addresses changed: re-evaluate Adj-RIB-Out, no reset.
    pub policy_changed: bool,
}

impl ConfigDiff {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == ConfigDiff::default()
    }
}

/// A configuration the speaker refuses, with every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// One line per problem, each naming the field.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid BGP configuration: {}", self.problems.join("; "))
    }
}

/// A route this speaker originates (pod blocks, borrowed /32s, service CIDRs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OriginatedRoute {
    /// The prefix.
    pub prefix: IpNet,
    /// Standard communities to attach (`communities` / `prefixAdvertisements`).
    pub communities: Vec<Community>,
    /// Large communities to attach.
    pub large_communities: Vec<LargeCommunity>,
}

impl OriginatedRoute {
    /// A route with no communities.
    pub fn new(prefix: IpNet) -> OriginatedRoute {
        OriginatedRoute {
            prefix,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, ip: &str) -> PeerConfig {
        PeerConfig::new(name, PeerKind::Global, ip.parse().unwrap(), 65001)
    }

    #[test]
    fn calico_names() {
        let v4: IpAddr = "10.0.0.2".parse().unwrap();
        let v6: IpAddr = "fd80:24e2::2".parse().unwrap();
        assert_eq!(
            PeerConfig::calico_name(PeerKind::Mesh, v4, 179),
            "Mesh_10_0_0_2"
        );
        assert_eq!(
            PeerConfig::calico_name(PeerKind::NodeSpecific, v4, 1179),
            "Node_10_0_0_2_port_1179"
        );
        assert_eq!(
            PeerConfig::calico_name(PeerKind::Mesh, v6, 179),
            "Mesh_fd80_24e2__2"
        );
    }

    #[test]
    fn diff_classifies_changes() {
        let base = SpeakerConfig::new("10.0.0.1".parse().unwrap(), 64512)
            .with_peer(peer("a", "10.0.0.2"))
            .with_peer(peer("b", "10.0.0.3"));
        assert!(base.diff(&base).is_empty());

        let mut new = base.clone();
        new.peers.remove("a");
        new.peers.insert("c".into(), peer("c", "10.0.0.4"));
        new.peers.get_mut("b").unwrap().hold_time = 9;
        let d = base.diff(&new);
        assert!(!d.restart_all);
        assert_eq!(d.removed, BTreeSet::from(["a".to_string()]));
        assert_eq!(d.added, BTreeSet::from(["c".to_string()]));
        assert_eq!(d.changed, BTreeSet::from(["b".to_string()]));

        let mut new = base.clone();
        new.local_asn = 64513;
        assert!(base.diff(&new).restart_all);

        // An import-policy change of one peer (allow local as) resets that peer alone, as
        // BIRD's bgp_reconfigure restarts the protocol whose options differ.
        let mut new = base.clone();
        new.peers.get_mut("a").unwrap().allow_local_as = 1;
        let d = base.diff(&new);
        assert_eq!(
            d,
            ConfigDiff {
                changed: BTreeSet::from(["a".to_string()]),
                ..ConfigDiff::default()
            }
        );
    }

    #[test]
    fn validate_names_each_bad_field() {
        let mut c =
            SpeakerConfig::new("10.0.0.1".parse().unwrap(), 64512).with_peer(peer("a", "10.0.0.2"));
        c.peers.get_mut("a").unwrap().hold_time = 2;
        c.peers.get_mut("a").unwrap().rr_client = true;
        let e = c.validate().unwrap_err();
        assert_eq!(e.problems.len(), 3, "{e}");
        assert!(e.to_string().contains("hold_time 2"));
        assert!(e.to_string().contains("cluster_id"));
        assert!(e.to_string().contains("iBGP"));
    }
}
