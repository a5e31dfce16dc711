//! The lab's topology as pure data: from `LabOptions` (nodes, pods per node, ToR daemon, racks)
//! and a name prefix to every namespace name, address, AS number, BGP session, pod and the
//! cluster file the nodes read.
//!
//! Owns: the address and AS plan (documented in `docs/lab.md`), `Plan` and the derived views
//! (`sessions`, `cluster_yaml`, `namespaces`, `who_has`). Must not: touch the system; `up`
//! builds exactly what the plan says, `status` and `down` read the same plan back from the
//! options recorded in the lab directory.
//!
//! One rack (the default): every node and the ToR on one segment `10.0.0.0/24` (ToR `.1`, node
//! N at `.10+N`), the node-to-node mesh in AS 64512, the ToR (AS 65000) peered by a global
//! `BGPPeer`. `R` racks (2–4): rack r (a, b, …) on `10.0.r.0/24`; its nodes in AS `65000+r`, its
//! ToR in AS `65100+r` (BIRD in racks a and c, FRR in b and d); the mesh off; each node peers
//! eBGP with its own ToR through a `BGPPeer` with `nodeSelector: rack == '<r>'`; the ToRs peer
//! eBGP with each other over point-to-point links in `10.0.254.0/24`, and override the rack's
//! AS towards its nodes (AS-per-rack fabrics do: the nodes of one rack share an AS and would
//! otherwise drop each other's routes as loops). Each node's default route points at its
//! uplink without a gateway: proxy ARP needs a route to the pods' gateway, but pod traffic to
//! another node only goes where BGP-learned routes send it.

use std::fmt;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::error::LabError;
use crate::scenarios::Cluster;

/// The nodes' AS with one rack (Calico's default).
pub const CLUSTER_ASN: u32 = 64512;
/// The ToR's AS with one rack.
pub const SINGLE_TOR_ASN: u32 = 65000;
/// The nodes of rack r (1-based) are in AS `RACK_NODE_ASN_BASE + r`.
pub const RACK_NODE_ASN_BASE: u32 = 65000;
/// The ToR of rack r (1-based) is in AS `RACK_TOR_ASN_BASE + r`.
pub const RACK_TOR_ASN_BASE: u32 = 65100;
/// The pod IP pool.
pub const POOL: &str = "10.244.0.0/16";
/// The pool's block size (Calico's default).
pub const BLOCK_SIZE: u8 = 26;
/// Kubernetes namespace of every lab pod.
pub const POD_NAMESPACE: &str = "default";
/// Most nodes a lab may have (addresses `.11`–`.110` of a rack's /24, and one machine's patience).
pub const MAX_NODES: usize = 50;
/// Most pods per node.
pub const MAX_PODS_PER_NODE: usize = 20;
/// Most racks.
pub const MAX_RACKS: usize = 4;
/// Longest name prefix (namespace names stay readable).
pub const MAX_PREFIX: usize = 24;

/// Which daemon plays a top-of-rack router.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TorKind {
    /// BIRD 2.
    Bird,
    /// FRR 8 (zebra + bgpd).
    Frr,
}

impl TorKind {
    /// "BIRD" or "FRR".
    pub fn title(self) -> &'static str {
        match self {
            TorKind::Bird => "BIRD",
            TorKind::Frr => "FRR",
        }
    }
}

impl fmt::Display for TorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TorKind::Bird => "bird",
            TorKind::Frr => "frr",
        })
    }
}

/// What `ginger-lab up` is asked to build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// Pods created on each node.
    pub pods_per_node: usize,
    /// The ToR daemon with one rack (with several racks they alternate BIRD, FRR).
    pub tor: TorKind,
    /// Number of racks.
    pub racks: usize,
}

impl Default for LabOptions {
    fn default() -> LabOptions {
        LabOptions {
            nodes: 3,
            pods_per_node: 2,
            tor: TorKind::Bird,
            racks: 1,
        }
    }
}

impl LabOptions {
    /// The options as `up` flags (for messages: "a lab with --nodes 3 … is up").
    pub fn flags(&self) -> String {
        let mut s = format!(
            "--nodes {} --pods-per-node {}",
            self.nodes, self.pods_per_node
        );
        if self.racks == 1 {
            let _ = write!(s, " --tor {}", self.tor);
        } else {
            let _ = write!(s, " --racks {}", self.racks);
        }
        s
    }

    /// Refuse what the lab cannot build, naming the flag.
    pub fn validate(&self) -> Result<(), LabError> {
        let bad = |flag: &'static str, reason: String| Err(LabError::Options { flag, reason });
        if !(1..=MAX_NODES).contains(&self.nodes) {
            return bad(
                "--nodes",
                format!("must be 1 to {MAX_NODES}, not {}", self.nodes),
            );
        }
        if self.pods_per_node > MAX_PODS_PER_NODE {
            return bad(
                "--pods-per-node",
                format!(
                    "must be 0 to {MAX_PODS_PER_NODE}, not {}",
                    self.pods_per_node
                ),
            );
        }
        if !(1..=MAX_RACKS).contains(&self.racks) {
            return bad(
                "--racks",
                format!("must be 1 to {MAX_RACKS}, not {}", self.racks),
            );
        }
        if self.racks > self.nodes {
            return bad(
                "--racks",
                format!(
                    "{} racks need at least {} nodes (one per rack), not {}",
                    self.racks, self.racks, self.nodes
                ),
            );
        }
        Ok(())
    }
}

/// One rack: a segment (a bridge in its own namespace) and its subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RackPlan {
    /// `a`, `b`, … (the nodes' `rack` label).
    pub name: String,
    /// Namespace of the segment's bridge.
    pub switch_netns: String,
    /// The rack's subnet.
    pub subnet: Ipv4Net,
}

/// One node: a namespace running `ginger-node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlan {
    /// `node-1`, … (the Node resource's name).
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// Index into `Plan::racks`.
    pub rack: usize,
    /// Its address on the rack segment (`eth0`).
    pub addr: Ipv4Addr,
    /// Its AS.
    pub asn: u32,
}

/// One top-of-rack router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorPlan {
    /// `tor` (one rack) or `tor-a`, `tor-b`, ….
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// The daemon playing it.
    pub kind: TorKind,
    /// Index into `Plan::racks`.
    pub rack: usize,
    /// Its address on the rack segment (also its router id).
    pub addr: Ipv4Addr,
    /// Its AS.
    pub asn: u32,
}

/// A point-to-point link between two ToRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorLink {
    /// Index into `Plan::tors` of end A.
    pub a: usize,
    /// Index into `Plan::tors` of end B.
    pub b: usize,
    /// Interface name in A (`to-tor-b`).
    pub a_if: String,
    /// Interface name in B.
    pub b_if: String,
    /// A's address on the link (a /30).
    pub a_addr: Ipv4Addr,
    /// B's address on the link.
    pub b_addr: Ipv4Addr,
}

/// Length of the ToR-to-ToR link prefixes.
pub const TOR_LINK_PREFIX_LEN: u8 = 30;

/// One pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlan {
    /// `web-<k>-<node>` (the pod's name in Kubernetes namespace `default`).
    pub name: String,
    /// Index into `Plan::nodes`.
    pub node: usize,
    /// The pod sandbox's namespace.
    pub netns: String,
}

/// How a BGP session came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// iBGP node-to-node mesh.
    Mesh,
    /// A node and its ToR, through a `BGPPeer`.
    NodeTor,
    /// Two ToRs.
    TorTor,
}

/// One BGP session of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Name of one end (node or ToR).
    pub a: String,
    /// Its address on the session.
    pub a_addr: Ipv4Addr,
    /// Its AS.
    pub a_asn: u32,
    /// Name of the other end.
    pub b: String,
    /// Its address.
    pub b_addr: Ipv4Addr,
    /// Its AS.
    pub b_asn: u32,
    /// Why the session exists.
    pub kind: SessionKind,
    /// The resource that configures it on the node side (`BGPPeer tor-a`), or the daemon.
    pub source: String,
}

impl Session {
    /// `iBGP` or `eBGP`.
    pub fn flavour(&self) -> &'static str {
        if self.a_asn == self.b_asn {
            "iBGP"
        } else {
            "eBGP"
        }
    }
}

/// The whole lab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Prefix of every namespace name.
    pub prefix: String,
    /// The options it was made from.
    pub options: LabOptions,
    /// Racks (one or more).
    pub racks: Vec<RackPlan>,
    /// Nodes, in order.
    pub nodes: Vec<NodePlan>,
    /// ToRs, one per rack.
    pub tors: Vec<TorPlan>,
    /// ToR-to-ToR links (a full mesh of them).
    pub tor_links: Vec<TorLink>,
    /// Pods, node by node.
    pub pods: Vec<PodPlan>,
    /// The IP pool.
    pub pool: Ipv4Net,
}

/// Whether `prefix` is usable as the start of namespace names.
pub fn check_prefix(prefix: &str) -> Result<(), LabError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(LabError::Options {
            flag: "--prefix",
            reason: format!(
                "{prefix:?} must be 1 to {MAX_PREFIX} characters of a-z, 0-9 and '-', starting with a letter"
            ),
        })
    }
}

impl Plan {
    /// The plan for `options` with namespace names starting `<prefix>-`.
    pub fn new(prefix: &str, options: &LabOptions) -> Result<Plan, LabError> {
        check_prefix(prefix)?;
        options.validate()?;
        let multi = options.racks > 1;
        let rack_name = |r: usize| char::from(b'a' + r as u8).to_string();
        let racks: Vec<RackPlan> = (0..options.racks)
            .map(|r| RackPlan {
                name: rack_name(r),
                switch_netns: if multi {
                    format!("{prefix}-sw-{}", rack_name(r))
                } else {
                    format!("{prefix}-sw")
                },
                subnet: Ipv4Net::new(Ipv4Addr::new(10, 0, rack_octet(multi, r), 0), 24)
                    .expect("24 is a valid prefix length"),
            })
            .collect();
        let nodes: Vec<NodePlan> = (0..options.nodes)
            .map(|i| {
                // Contiguous split: the first racks get the extra nodes.
                let rack = i * options.racks / options.nodes;
                NodePlan {
                    name: format!("node-{}", i + 1),
                    netns: format!("{prefix}-node-{}", i + 1),
                    rack,
                    addr: Ipv4Addr::new(10, 0, rack_octet(multi, rack), 11 + i as u8),
                    asn: if multi {
                        RACK_NODE_ASN_BASE + rack as u32 + 1
                    } else {
                        CLUSTER_ASN
                    },
                }
            })
            .collect();
        let tors: Vec<TorPlan> = racks
            .iter()
            .enumerate()
            .map(|(r, rack)| TorPlan {
                name: if multi {
                    format!("tor-{}", rack.name)
                } else {
                    "tor".into()
                },
                netns: if multi {
                    format!("{prefix}-tor-{}", rack.name)
                } else {
                    format!("{prefix}-tor")
                },
                kind: if !multi {
                    options.tor
                } else if r % 2 == 0 {
                    TorKind::Bird
                } else {
                    TorKind::Frr
                },
                rack: r,
                addr: Ipv4Addr::new(10, 0, rack_octet(multi, r), 1),
                asn: if multi {
                    RACK_TOR_ASN_BASE + r as u32 + 1
                } else {
                    SINGLE_TOR_ASN
                },
            })
            .collect();
        let mut tor_links = Vec::new();
        for a in 0..tors.len() {
            for b in a + 1..tors.len() {
                let base = 4 * tor_links.len() as u8;
                tor_links.push(TorLink {
                    a,
                    b,
                    a_if: format!("to-{}", tors[b].name),
                    b_if: format!("to-{}", tors[a].name),
                    a_addr: Ipv4Addr::new(10, 0, 254, base + 1),
                    b_addr: Ipv4Addr::new(10, 0, 254, base + 2),
                });
            }
        }
        let pods = nodes
            .iter()
            .enumerate()
            .flat_map(|(n, node)| {
                (1..=options.pods_per_node).map(move |k| {
                    let name = format!("web-{k}-{}", node.name);
                    PodPlan {
                        netns: format!("{prefix}-pod-{name}"),
                        name,
                        node: n,
                    }
                })
            })
            .collect();
        Ok(Plan {
            prefix: prefix.to_string(),
            options: options.clone(),
            racks,
            nodes,
            tors,
            tor_links,
            pods,
            pool: POOL.parse().expect("the pool literal is valid"),
        })
    }

    /// Whether the node-to-node mesh is on (one rack only).
    pub fn mesh(&self) -> bool {
        self.racks.len() == 1
    }

    /// Every namespace of the lab, in the order `up` creates them (switches, ToRs, nodes, pods).
    pub fn namespaces(&self) -> Vec<String> {
        self.racks
            .iter()
            .map(|r| r.switch_netns.clone())
            .chain(self.tors.iter().map(|t| t.netns.clone()))
            .chain(self.nodes.iter().map(|n| n.netns.clone()))
            .chain(self.pods.iter().map(|p| p.netns.clone()))
            .collect()
    }

    /// The ToR of `rack`.
    pub fn tor_of_rack(&self, rack: usize) -> &TorPlan {
        &self.tors[rack]
    }

    /// The nodes of `rack`.
    pub fn nodes_in_rack(&self, rack: usize) -> impl Iterator<Item = &NodePlan> {
        self.nodes.iter().filter(move |n| n.rack == rack)
    }

    /// The name of whoever has `addr` (a node, or a ToR on its segment or a ToR link).
    pub fn who_has(&self, addr: Ipv4Addr) -> Option<&str> {
        if let Some(n) = self.nodes.iter().find(|n| n.addr == addr) {
            return Some(&n.name);
        }
        if let Some(t) = self.tors.iter().find(|t| t.addr == addr) {
            return Some(&t.name);
        }
        self.tor_links.iter().find_map(|l| {
            if l.a_addr == addr {
                Some(self.tors[l.a].name.as_str())
            } else if l.b_addr == addr {
                Some(self.tors[l.b].name.as_str())
            } else {
                None
            }
        })
    }

    /// The name of the `BGPPeer` resource pointing at the ToR of `rack`.
    pub fn peer_resource(&self, rack: usize) -> String {
        self.tors[rack].name.clone()
    }

    /// Every BGP session the lab should have: the mesh (one rack), each node with its ToR, and
    /// the ToRs with each other.
    pub fn sessions(&self) -> Vec<Session> {
        let mut out = Vec::new();
        if self.mesh() {
            for (i, a) in self.nodes.iter().enumerate() {
                for b in &self.nodes[i + 1..] {
                    out.push(Session {
                        a: a.name.clone(),
                        a_addr: a.addr,
                        a_asn: a.asn,
                        b: b.name.clone(),
                        b_addr: b.addr,
                        b_asn: b.asn,
                        kind: SessionKind::Mesh,
                        source: "node-to-node mesh".into(),
                    });
                }
            }
        }
        for n in &self.nodes {
            let t = &self.tors[n.rack];
            let source = if self.mesh() {
                format!("global BGPPeer {}", self.peer_resource(n.rack))
            } else {
                format!(
                    "BGPPeer {} (rack == '{}')",
                    self.peer_resource(n.rack),
                    self.racks[n.rack].name
                )
            };
            out.push(Session {
                a: n.name.clone(),
                a_addr: n.addr,
                a_asn: n.asn,
                b: t.name.clone(),
                b_addr: t.addr,
                b_asn: t.asn,
                kind: SessionKind::NodeTor,
                source,
            });
        }
        for l in &self.tor_links {
            let (a, b) = (&self.tors[l.a], &self.tors[l.b]);
            out.push(Session {
                a: a.name.clone(),
                a_addr: l.a_addr,
                a_asn: a.asn,
                b: b.name.clone(),
                b_addr: l.b_addr,
                b_asn: b.asn,
                kind: SessionKind::TorTor,
                source: format!("{} and {} configuration", a.kind.title(), b.kind.title()),
            });
        }
        out
    }

    /// The cluster file every node reads (Calico's resources).
    pub fn cluster_yaml(&self) -> String {
        let mut cluster = Cluster::new().bgp_configuration(
            "default",
            &format!(
                "{{asNumber: {CLUSTER_ASN}, nodeToNodeMeshEnabled: {}}}",
                self.mesh()
            ),
        );
        for n in &self.nodes {
            let rack = &self.racks[n.rack];
            let cidr = format!("{}/{}", n.addr, rack.subnet.prefix_len());
            cluster = if self.mesh() {
                cluster.node(&n.name, &cidr, &[], "")
            } else {
                cluster.node(
                    &n.name,
                    &cidr,
                    &[("rack", &rack.name)],
                    &format!("asNumber: {}", n.asn),
                )
            };
        }
        for (r, t) in self.tors.iter().enumerate() {
            let spec = if self.mesh() {
                format!("{{peerIP: {}, asNumber: {}}}", t.addr, t.asn)
            } else {
                format!(
                    "{{peerIP: {}, asNumber: {}, nodeSelector: \"rack == '{}'\"}}",
                    t.addr, t.asn, self.racks[r].name
                )
            };
            cluster = cluster.bgp_peer(&self.peer_resource(r), &spec);
        }
        cluster
            .doc(
                "IPPool",
                "default-ipv4-ippool",
                &[],
                &format!("{{cidr: {}, blockSize: {BLOCK_SIZE}}}", self.pool),
            )
            .render()
    }
}

/// Third octet of rack `r`'s subnet: 0 with one rack, 1.. with several.
fn rack_octet(multi: bool, r: usize) -> u8 {
    if multi { r as u8 + 1 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(nodes: usize, pods: usize, racks: usize) -> Plan {
        let options = LabOptions {
            nodes,
            pods_per_node: pods,
            racks,
            ..LabOptions::default()
        };
        Plan::new("lab", &options).unwrap()
    }

    #[test]
    fn one_rack_is_a_mesh_with_a_global_tor_peer() {
        let p = plan(3, 2, 1);
        assert!(p.mesh());
        assert_eq!(p.tors.len(), 1);
        assert_eq!(p.tors[0].netns, "lab-tor");
        assert_eq!(p.tors[0].addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.tors[0].asn, 65000);
        let addrs: Vec<String> = p.nodes.iter().map(|n| n.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
        assert!(p.nodes.iter().all(|n| n.asn == 64512));
        let sessions = p.sessions();
        let mesh = sessions
            .iter()
            .filter(|s| s.kind == SessionKind::Mesh)
            .count();
        let tor = sessions
            .iter()
            .filter(|s| s.kind == SessionKind::NodeTor)
            .count();
        assert_eq!((mesh, tor), (3, 3));
        assert!(sessions.iter().all(|s| s.kind != SessionKind::TorTor));
        let pods: Vec<&str> = p.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            pods,
            [
                "web-1-node-1",
                "web-2-node-1",
                "web-1-node-2",
                "web-2-node-2",
                "web-1-node-3",
                "web-2-node-3"
            ]
        );
        assert_eq!(p.pods[0].netns, "lab-pod-web-1-node-1");
        assert_eq!(p.namespaces().len(), 1 + 1 + 3 + 6);
    }

    #[test]
    fn two_racks_follow_the_as_per_rack_plan() {
        let p = plan(3, 1, 2);
        assert!(!p.mesh());
        let racks: Vec<usize> = p.nodes.iter().map(|n| n.rack).collect();
        assert_eq!(racks, [0, 0, 1]);
        let asns: Vec<u32> = p.nodes.iter().map(|n| n.asn).collect();
        assert_eq!(asns, [65001, 65001, 65002]);
        assert_eq!(p.nodes[2].addr, Ipv4Addr::new(10, 0, 2, 13));
        assert_eq!(
            (p.tors[0].kind, p.tors[0].asn, p.tors[0].name.as_str()),
            (TorKind::Bird, 65101, "tor-a")
        );
        assert_eq!(
            (p.tors[1].kind, p.tors[1].asn, p.tors[1].addr),
            (TorKind::Frr, 65102, Ipv4Addr::new(10, 0, 2, 1))
        );
        assert_eq!(p.tor_links.len(), 1);
        let l = &p.tor_links[0];
        assert_eq!((l.a_if.as_str(), l.b_if.as_str()), ("to-tor-b", "to-tor-a"));
        assert_eq!(p.who_has(l.b_addr), Some("tor-b"));
        let sessions = p.sessions();
        assert!(sessions.iter().all(|s| s.kind != SessionKind::Mesh));
        assert_eq!(sessions.len(), 3 + 1);
        assert!(sessions.iter().all(|s| s.flavour() == "eBGP"));
        assert_eq!(p.racks[1].switch_netns, "lab-sw-b");
    }

    #[test]
    fn four_racks_get_a_full_mesh_of_tor_links_with_distinct_subnets() {
        let p = plan(8, 0, 4);
        assert_eq!(p.tor_links.len(), 6);
        let mut addrs: Vec<Ipv4Addr> = p
            .tor_links
            .iter()
            .flat_map(|l| [l.a_addr, l.b_addr])
            .collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), 12);
        let kinds: Vec<TorKind> = p.tors.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [TorKind::Bird, TorKind::Frr, TorKind::Bird, TorKind::Frr]
        );
        for r in 0..4 {
            assert_eq!(p.nodes_in_rack(r).count(), 2);
        }
        assert!(p.pods.is_empty());
    }

    #[test]
    fn the_cluster_file_loads_and_says_what_the_plan_says() {
        for racks in [1, 2] {
            let p = plan(3, 1, racks);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("cluster.yaml");
            std::fs::write(&path, p.cluster_yaml()).unwrap();
            let c = agent::datastore::load(&path)
                .unwrap_or_else(|e| panic!("{e}\n{}", p.cluster_yaml()));
            assert_eq!(c.bgp_peers().len(), racks);
            assert_eq!(c.ip_pools().len(), 1);
            let n3 = c.node("node-3").unwrap();
            if racks == 2 {
                assert_eq!(n3.labels().get("rack").map(String::as_str), Some("b"));
            }
            let yaml = p.cluster_yaml();
            assert!(
                yaml.contains(&format!("nodeToNodeMeshEnabled: {}", racks == 1)),
                "{yaml}"
            );
        }
    }

    #[test]
    fn bad_options_name_their_flag() {
        let err = |o: LabOptions| Plan::new("lab", &o).unwrap_err().to_string();
        let base = LabOptions::default();
        assert!(
            err(LabOptions {
                nodes: 0,
                ..base.clone()
            })
            .contains("--nodes")
        );
        assert!(
            err(LabOptions {
                racks: 3,
                nodes: 2,
                ..base.clone()
            })
            .contains("at least 3 nodes")
        );
        assert!(
            err(LabOptions {
                pods_per_node: 99,
                ..base.clone()
            })
            .contains("--pods-per-node")
        );
        let e = Plan::new("Lab!", &base).unwrap_err().to_string();
        assert!(e.contains("--prefix"), "{e}");
    }

    #[test]
    fn flags_round_trip_the_options_a_user_gave() {
        assert_eq!(
            LabOptions::default().flags(),
            "--nodes 3 --pods-per-node 2 --tor bird"
        );
        let racks = LabOptions {
            racks: 2,
            ..LabOptions::default()
        };
        assert_eq!(racks.flags(), "--nodes 3 --pods-per-node 2 --racks 2");
    }

    #[test]
    fn addresses_have_owners() {
        let p = plan(2, 0, 1);
        assert_eq!(p.who_has(Ipv4Addr::new(10, 0, 0, 12)), Some("node-2"));
        assert_eq!(p.who_has(Ipv4Addr::new(10, 0, 0, 1)), Some("tor"));
        assert_eq!(p.who_has(Ipv4Addr::new(10, 0, 0, 99)), None);
    }
}
