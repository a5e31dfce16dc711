//! Pod fabrics for the "pods talk across nodes" scenarios (issue 4): nodes running
//! `ginger-node` with pods made by the real `ginger` plugin, on one or two L2 segments, with
//! BIRD or FRR as top-of-rack routers, and the checks those scenarios share (who reaches whom,
//! which next hops a node's kernel uses, a continuous ping).
//!
//! Owns: building a `Fabric` from a cluster file and a list of hosts, and the probes. Must not:
//! start anything outside its namespaces (every node, pod, ToR and segment is a lab namespace;
//! nodes get a gateway-less default route on their own segment only, so proxy ARP can answer
//! the pods' 169.254.1.1, and pod traffic follows only the routes BGP put in the kernel).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::thread;
use std::time::Duration;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::link::{Link, Segment};
use crate::netns::Netns;
use crate::pods::{Pod, PodBinaries, PodNode, routes_v4};
use crate::proc::Proc;
use crate::router::BgpDaemon;
use crate::scenarios::DaemonKind;
use crate::wait::wait_until;
use crate::{Neighbor, RouterConfig};

/// One node of a fabric: its agent and its pods.
pub struct FabricNode {
    /// The node's agent in its namespace.
    pub node: PodNode,
    /// Its address on its segment.
    pub address: Ipv4Addr,
    /// Its uplink (to cut it).
    pub uplink: Link,
    /// Pods created on it, in order.
    pub pods: Vec<Pod>,
}

/// A top-of-rack router.
pub struct Tor {
    /// Its namespace.
    pub ns: Netns,
    /// Its address on its rack's segment.
    pub address: Ipv4Addr,
    /// The daemon.
    pub daemon: Box<dyn BgpDaemon>,
}

/// A host to put on a segment.
#[derive(Clone, Debug)]
pub struct HostSpec {
    /// Node name (as in the cluster file).
    pub name: String,
    /// Segment index.
    pub segment: usize,
    /// `A.B.C.D/len`.
    pub cidr: String,
}

/// A fabric under test. Dropping it stops every process and removes every namespace.
pub struct Fabric {
    /// Nodes in the order given.
    pub nodes: Vec<FabricNode>,
    /// ToRs.
    pub tors: Vec<Tor>,
    /// The segments (kept for their namespaces).
    segments: Vec<Segment>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: "fabric",
        value: String::new(),
        reason: reason.into(),
    }
}

fn v4(cidr: &str) -> Result<Ipv4Addr> {
    cidr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| invalid(format!("not an IPv4 CIDR: {cidr}")))
}

impl Fabric {
    /// `segments` L2 segments; every host in `hosts` attached to its segment as `eth0` with a
    /// gateway-less default route there; `ginger-node` started on each with `cluster` and one
    /// shared IPAM state directory (plus `extra` flags).
    pub fn start(
        dir: &Path,
        segments: usize,
        hosts: &[HostSpec],
        cluster: &Path,
        extra: &[&str],
    ) -> Result<Fabric> {
        let segments: Vec<Segment> = (0..segments)
            .map(|i| Segment::new(&format!("seg{i}")))
            .collect::<Result<_>>()?;
        let shared = dir.join("shared-state");
        std::fs::create_dir_all(&shared)
            .map_err(|e| Error::io(format!("creating {}", shared.display()), e))?;
        let shared = shared.to_string_lossy().into_owned();
        let mut flags: Vec<&str> = vec!["--state-dir", &shared];
        flags.extend_from_slice(extra);
        let bins = PodBinaries::built()?;
        let mut nodes = Vec::new();
        for h in hosts {
            let seg = segments
                .get(h.segment)
                .ok_or_else(|| invalid(format!("{}: no segment {}", h.name, h.segment)))?;
            let ns = Netns::new(&h.name)?;
            let uplink = seg.attach(&ns, "eth0", &[&h.cidr])?;
            ns.ip(&["route", "add", "default", "dev", "eth0"])?;
            let node = PodNode::start(ns, dir, bins.clone(), cluster, &h.name, &flags)?;
            nodes.push(FabricNode {
                node,
                address: v4(&h.cidr)?,
                uplink,
                pods: Vec::new(),
            });
        }
        Ok(Fabric {
            nodes,
            tors: Vec::new(),
            segments,
        })
    }

    /// Add a ToR on `segment` at `cidr` running `kind` with `config` (installing what it learns
    /// into its namespace's FIB and forwarding between its links).
    pub fn add_tor(
        &mut self,
        dir: &Path,
        segment: usize,
        cidr: &str,
        kind: DaemonKind,
        config: RouterConfig,
    ) -> Result<&Tor> {
        let seg = self
            .segments
            .get(segment)
            .ok_or_else(|| invalid(format!("no segment {segment}")))?;
        let ns = Netns::new(&format!("tor{}", self.tors.len()))?;
        seg.attach(&ns, "eth0", &[cidr])?;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        let daemon = kind.start(&ns, dir, config.install_fib(true))?;
        self.tors.push(Tor {
            ns,
            address: v4(cidr)?,
            daemon,
        });
        Ok(self.tors.last().expect("just pushed"))
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Result<&FabricNode> {
        self.nodes
            .iter()
            .find(|n| n.node.name() == name)
            .ok_or_else(|| invalid(format!("no node {name}")))
    }

    /// ADD `per_node` pods on every node (`<node>-p<i>`), one node after the other.
    pub fn add_pods(&mut self, per_node: usize) -> Result<()> {
        for n in &mut self.nodes {
            for _ in 0..per_node {
                let name = format!("{}-p{}", n.node.name(), n.pods.len());
                n.add_pod(&name)?;
            }
        }
        Ok(())
    }

    /// Every pod with its node's name and its first address.
    pub fn pods(&self) -> Vec<(&str, &Pod, IpAddr)> {
        self.nodes
            .iter()
            .flat_map(|n| n.pods.iter().map(move |p| (n.node.name(), p)))
            .filter_map(|(n, p)| p.addresses().first().map(|ip| (n, p, *ip)))
            .collect()
    }

    /// Ping every pod from every other pod once (in parallel); the pairs that failed as
    /// `(source address, destination address)`.
    pub fn unreachable_pairs(&self) -> Vec<(IpAddr, IpAddr)> {
        let pods = self.pods();
        let pairs: Vec<(&Pod, IpAddr, IpAddr)> = pods
            .iter()
            .flat_map(|(_, src, s)| {
                pods.iter()
                    .filter(move |(_, _, d)| d != s)
                    .map(move |(_, _, d)| (*src, *s, *d))
            })
            .collect();
        thread::scope(|scope| {
            let handles: Vec<_> = pairs
                .iter()
                .map(|(pod, s, d)| scope.spawn(move || (*s, *d, ping_once(pod.netns(), *d))))
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok())
                .filter(|(_, _, ok)| !ok)
                .map(|(s, d, _)| (s, d))
                .collect()
        })
    }

    /// Wait until every pod reaches every other pod.
    pub fn wait_full_reachability(&self, timeout: Duration) -> Result<()> {
        wait_until(timeout, "every pod to reach every other pod", || {
            let failed = self.unreachable_pairs();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} pairs fail, e.g. {:?}",
                    failed.len(),
                    &failed[..1]
                ))
            }
        })
    }
}

impl FabricNode {
    /// ADD one pod named `name` (namespace `default`) through the real plugin.
    pub fn add_pod(&mut self, name: &str) -> Result<&Pod> {
        let mut pod = Pod::create("default", name)?;
        self.node.add(&mut pod)?.result()?;
        self.pods.push(pod);
        Ok(self.pods.last().expect("just pushed"))
    }

    /// The IPAM blocks with this node's affinity.
    pub fn blocks(&self) -> Result<Vec<IpNet>> {
        let report = self.node.ipam()?;
        Ok(report
            .pools
            .into_iter()
            .flat_map(|p| p.blocks)
            .filter(|b| b.affinity.as_deref() == Some(self.node.name()))
            .map(|b| b.cidr)
            .collect())
    }
}

/// `ping -c 1 -W 1` from inside `ns`.
pub fn ping_once(ns: &Netns, dst: IpAddr) -> bool {
    ns.exec(&["ping", "-n", "-q", "-c", "1", "-W", "1", &dst.to_string()])
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The gateways of `ns`'s IPv4 main-table route to exactly `dst`, with its protocol; `None`
/// when there is no such route. A blackhole or a link route has no gateways.
pub fn kernel_route(ns: &Netns, dst: IpNet) -> Result<Option<(Vec<IpAddr>, String)>> {
    let text = if dst.prefix_len() == 32 {
        dst.addr().to_string()
    } else {
        dst.to_string()
    };
    let Some(r) = routes_v4(ns)?
        .into_iter()
        .find(|r| r["dst"] == text.as_str())
    else {
        return Ok(None);
    };
    let mut gateways: Vec<IpAddr> = Vec::new();
    if let Some(g) = r["gateway"].as_str().and_then(|g| g.parse().ok()) {
        gateways.push(g);
    }
    for hop in r["nexthops"].as_array().into_iter().flatten() {
        if let Some(g) = hop["gateway"].as_str().and_then(|g| g.parse().ok()) {
            gateways.push(g);
        }
    }
    gateways.sort();
    let protocol = match &r["protocol"] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(Some((gateways, protocol)))
}

/// A continuous ping (`ping -i interval`) from `src` to `dst`, read when stopped.
pub struct ContinuousPing {
    proc: Proc,
}

/// What a continuous ping saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingSummary {
    pub transmitted: u64,
    pub received: u64,
}

impl ContinuousPing {
    /// Start pinging `dst` from inside `src` every `interval` (as root, ping allows 10 ms).
    pub fn start(src: &Netns, dst: IpAddr, interval: Duration, dir: &Path) -> Result<Self> {
        let secs = format!("{:.3}", interval.as_secs_f64());
        let args = ["ping", "-n", "-q", "-i", &secs, "-W", "1", &dst.to_string()];
        let proc = src.spawn("ping", &args, dir)?;
        Ok(ContinuousPing { proc })
    }

    /// Stop it (SIGINT: ping prints its statistics) and read them.
    pub fn stop(self) -> Result<PingSummary> {
        self.proc.signal(crate::proc::Signal::SIGINT)?;
        self.proc.wait_exit(Duration::from_secs(5))?;
        let out = std::fs::read_to_string(self.proc.stdout_path())
            .map_err(|e| Error::io("reading ping's output", e))?;
        parse_ping_summary(&out).ok_or_else(|| invalid(format!("no ping statistics in: {out}")))
    }
}

/// `N packets transmitted, M received` from ping's statistics.
pub fn parse_ping_summary(out: &str) -> Option<PingSummary> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().ok());
    let transmitted = numbers.next()??;
    let received = numbers.next()??;
    Some(PingSummary {
        transmitted,
        received,
    })
}

/// BIRD/FRR as a ToR in `asn` at `address`, peering eBGP with every `(address, asn)` in
/// `nodes`, with short timers so failures show quickly.
pub fn tor_config(address: &str, asn: u32, nodes: &[(Ipv4Addr, u32)]) -> RouterConfig {
    let mut c = RouterConfig::parse(address, asn);
    for (a, node_asn) in nodes {
        c = c.neighbor(Neighbor::new(IpAddr::V4(*a), *node_asn).connect_retry(1));
    }
    c
}

/// Group pods' addresses by node, for messages.
pub fn pods_by_node(f: &Fabric) -> BTreeMap<String, Vec<IpAddr>> {
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for (n, _, ip) in f.pods() {
        out.entry(n.to_string()).or_default().push(ip);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_statistics_are_read() {
        let out = "PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.\n\n--- 10.0.0.1 ping statistics ---\n\
                   1503 packets transmitted, 1501 received, 0.133% packet loss, time 15130ms\n";
        assert_eq!(
            parse_ping_summary(out),
            Some(PingSummary {
                transmitted: 1503,
                received: 1501
            })
        );
        assert_eq!(parse_ping_summary("nothing"), None);
    }
}
