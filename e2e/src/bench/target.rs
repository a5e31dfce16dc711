//! The BGP implementations under test, configured the same way: pure BGP (nothing programmed
//! into any FIB), everything imported and exported, no advertisement-interval delay, eBGP to
//! the monitor (AS 65100) and every injector (AS 65001+i) from AS 64512. In FIB mode
//! (`ginger-bench --fib`) each also programs what it learns into its namespace's main table:
//! `ginger-node` with its default learned-route programming, BIRD with the harness's
//! `protocol kernel` (`merge paths on`, BGP routes exported, nothing imported; like Calico's
//! but without `learn`/`scan time 2`, which only matter for routes other programs write), FRR
//! with bgpd handing routes to its own zebra. GoBGP (its FIB path is zebra too) and `direct`
//! have no FIB mode.
//!
//! Owns: `TargetKind` (names on the command line), the `ginger-node` cluster file for a
//! topology, starting a target in its namespace (`RunningTarget`), its process (for memory
//! figures) and the wait until the target itself reports every session Established.
//! Per daemon: BIRD, FRR and GoBGP come from the harness launchers with passive neighbours (the
//! benchmark's speakers connect); the FRR launcher sets `advertisement-interval 0` (its eBGP
//! MRAI is 30 s by default) and runs bgpd `--no_kernel`; BIRD has no MRAI; GoBGP 3.10 reads
//! `minimum-advertisement-interval` but never applies it, so it has no delay to turn off.
//! Must not: open BGP sessions (`session` does) or time anything (`run` does).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::BenchError;
use super::memory::{MemoryUse, memory_of};
use super::scenario::Topology;
use crate::ginger::{GingerNode, write_cluster};
use crate::netns::Netns;
use crate::proc::Proc;
use crate::router::{BgpDaemon, Neighbor, RouterConfig};
use crate::{Bird, Frr, Gobgp};

/// Which implementation plays the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKind {
    /// No target: the injectors talk to the monitor directly (the harness's own overhead).
    Direct,
    /// `ginger-node` (release build).
    Ginger,
    /// BIRD 2.
    Bird,
    /// FRR bgpd.
    Frr,
    /// GoBGP.
    Gobgp,
}

impl TargetKind {
    /// Every kind, in report order.
    pub const ALL: [TargetKind; 5] = [
        TargetKind::Direct,
        TargetKind::Ginger,
        TargetKind::Bird,
        TargetKind::Frr,
        TargetKind::Gobgp,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Direct => "direct",
            TargetKind::Ginger => "ginger",
            TargetKind::Bird => "bird",
            TargetKind::Frr => "frr",
            TargetKind::Gobgp => "gobgp",
        }
    }
}

impl TargetKind {
    /// Why the target has no FIB mode in this benchmark (`ginger-bench --fib`); `None`: it has.
    pub fn why_no_fib_mode(self) -> Option<&'static str> {
        match self {
            TargetKind::Ginger | TargetKind::Bird | TargetKind::Frr => None,
            TargetKind::Gobgp => Some("gobgpd programs a FIB only through FRR's zebra"),
            TargetKind::Direct => Some("no target, no FIB"),
        }
    }

    /// Whether the target can program a FIB in this benchmark.
    pub fn has_fib_mode(self) -> bool {
        self.why_no_fib_mode().is_none()
    }
}

/// The refusal of a FIB run for a target without a FIB mode.
pub fn no_fib_mode(kind: TargetKind) -> BenchError {
    BenchError::Invalid {
        what: "target for --fib",
        value: kind.to_string(),
        reason: kind.why_no_fib_mode().unwrap_or("it has one").into(),
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TargetKind {
    type Err = BenchError;

    fn from_str(text: &str) -> Result<TargetKind, BenchError> {
        let t = text.trim().to_ascii_lowercase();
        TargetKind::ALL
            .into_iter()
            .find(|k| k.name() == t || (t == "ginger-node" && *k == TargetKind::Ginger))
            .ok_or_else(|| BenchError::Invalid {
                what: "target",
                value: text.to_string(),
                reason: "one of direct, ginger, bird, frr, gobgp".into(),
            })
    }
}

/// The release `ginger-node` of the target directory this program was built in
/// (`target/<profile>/[deps/]…` → `target/release/ginger-node`).
pub fn default_ginger_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut profile = exe.parent().unwrap_or(Path::new(".")).to_path_buf();
    if matches!(
        profile.file_name().and_then(|n| n.to_str()),
        Some("deps") | Some("examples")
    ) {
        profile.pop();
    }
    let target_dir = profile.parent().unwrap_or(&profile);
    target_dir.join("release").join("ginger-node")
}

/// The cluster file that makes `ginger-node` the target: one Node, a global BGPPeer per
/// injector and for the monitor, no node mesh, and an IPPool holding every injected route
/// (Calico's export rule re-exports learned routes only inside pools).
pub fn ginger_cluster(topo: &Topology) -> String {
    let mut y = format!(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
         spec: {{asNumber: {}, nodeToNodeMeshEnabled: false}}\n",
        Topology::TARGET_AS
    );
    y.push_str(&format!(
        "---\napiVersion: ginger.dev/v1\nkind: Node\nmetadata: {{name: {GINGER_NODE}}}\n\
         spec: {{bgp: {{ipv4Address: {}/{}}}}}\n",
        Topology::TARGET,
        Topology::SUBNET_LEN
    ));
    let peer = |name: String, ip: std::net::Ipv4Addr, asn: u32| {
        format!(
            "---\napiVersion: ginger.dev/v1\nkind: BGPPeer\nmetadata: {{name: {name}}}\n\
             spec: {{peerIP: {ip}, asNumber: {asn}}}\n"
        )
    };
    y.push_str(&peer(
        "monitor".into(),
        Topology::MONITOR,
        Topology::MONITOR_AS,
    ));
    for i in 0..topo.scenario.injectors {
        y.push_str(&peer(
            format!("injector-{i}"),
            topo.injector_address(i),
            topo.injector_as(i),
        ));
    }
    y.push_str(&format!(
        "---\napiVersion: ginger.dev/v1\nkind: IPPool\nmetadata: {{name: bench-routes}}\n\
         spec: {{cidr: {}}}\n",
        topo.pool()
    ));
    y
}

/// The Node name `ginger-node` runs as.
const GINGER_NODE: &str = "bench-target";

/// The router configuration BIRD, FRR and GoBGP get: passive eBGP neighbours for the monitor
/// and every injector, nothing originated, learned routes into the FIB only when `fib`.
pub fn daemon_config(topo: &Topology, fib: bool) -> RouterConfig {
    let mut c = RouterConfig::new(Topology::TARGET, Topology::TARGET_AS).install_fib(fib);
    c = c.neighbor(Neighbor::new(IpAddr::V4(Topology::MONITOR), Topology::MONITOR_AS).passive());
    for i in 0..topo.scenario.injectors {
        c = c.neighbor(
            Neighbor::new(IpAddr::V4(topo.injector_address(i)), topo.injector_as(i)).passive(),
        );
    }
    c
}

/// A target running in its namespace; dropping it stops it.
pub enum RunningTarget {
    /// `ginger-node`.
    Ginger(GingerNode),
    /// BIRD.
    Bird(Bird),
    /// FRR (zebra + bgpd).
    Frr(Frr),
    /// GoBGP.
    Gobgp(Gobgp),
}

impl RunningTarget {
    /// Start `kind` inside `ns` with its files under `dir`, programming its FIB when `fib`.
    /// `Direct` has no process: `None`.
    pub fn start(
        kind: TargetKind,
        ns: &Netns,
        dir: &Path,
        topo: &Topology,
        ginger_bin: &Path,
        fib: bool,
    ) -> Result<Option<RunningTarget>, BenchError> {
        if fib && !kind.has_fib_mode() {
            return Err(no_fib_mode(kind));
        }
        Ok(Some(match kind {
            TargetKind::Direct => return Ok(None),
            TargetKind::Ginger => {
                if !ginger_bin.is_file() {
                    return Err(BenchError::GingerMissing {
                        path: ginger_bin.to_path_buf(),
                    });
                }
                let cluster = write_cluster(dir, "cluster.yaml", &ginger_cluster(topo))?;
                // Without the FIB like the other targets: BGP only, nothing into the kernel.
                let args: &[&str] = if fib {
                    &[]
                } else {
                    &["--program-learned-routes", "false"]
                };
                RunningTarget::Ginger(GingerNode::start_binary(
                    ns,
                    dir,
                    ginger_bin,
                    &cluster,
                    GINGER_NODE,
                    args,
                )?)
            }
            TargetKind::Bird => {
                RunningTarget::Bird(Bird::start(ns, dir, daemon_config(topo, fib))?)
            }
            TargetKind::Frr => RunningTarget::Frr(Frr::start(ns, dir, daemon_config(topo, fib))?),
            TargetKind::Gobgp => {
                RunningTarget::Gobgp(Gobgp::start(ns, dir, daemon_config(topo, fib))?)
            }
        }))
    }

    /// The BGP process (for FRR: bgpd, not zebra).
    pub fn process(&self) -> &Proc {
        match self {
            RunningTarget::Ginger(g) => g.process(),
            RunningTarget::Bird(d) => d.process(),
            RunningTarget::Frr(d) => d.process(),
            RunningTarget::Gobgp(d) => d.process(),
        }
    }

    /// The memory of the processes doing the target's work: the BGP process, and in FIB mode
    /// FRR's zebra too (the sum of both peaks: an upper bound of their joint peak).
    pub fn memory(&self, fib: bool) -> Result<MemoryUse, BenchError> {
        let mut m = memory_of(self.process().pid())?;
        if let (true, RunningTarget::Frr(d)) = (fib, self) {
            let z = memory_of(d.zebra().pid())?;
            m.peak_kib += z.peak_kib;
            m.now_kib += z.now_kib;
        }
        Ok(m)
    }

    /// Wait until the target reports its session with `peer` Established.
    pub fn wait_established(&self, peer: IpAddr, timeout: Duration) -> Result<(), BenchError> {
        match self {
            RunningTarget::Ginger(g) => g.wait_established(peer, timeout).map(|_| ()),
            RunningTarget::Bird(d) => d.wait_established(peer, timeout),
            RunningTarget::Frr(d) => d.wait_established(peer, timeout),
            RunningTarget::Gobgp(d) => d.wait_established(peer, timeout),
        }
        .map_err(BenchError::from)
    }

    /// The last lines of the target's output (for a failure message).
    pub fn log_tail(&self) -> String {
        let logs = self.process().logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    #[test]
    fn target_names_round_trip() {
        for k in TargetKind::ALL {
            assert_eq!(k.name().parse::<TargetKind>().unwrap(), k);
        }
        assert_eq!(
            "Ginger-Node".parse::<TargetKind>().unwrap(),
            TargetKind::Ginger
        );
        assert!("quagga".parse::<TargetKind>().is_err());
    }

    #[test]
    fn the_cluster_file_gives_ginger_one_ebgp_session_per_speaker_and_exports_the_pool() {
        let topo = Topology::new("3x1000".parse().unwrap());
        let yaml = ginger_cluster(&topo);
        let cluster = agent::datastore::parse(&yaml, "bench cluster").expect("valid cluster");
        let desired = agent::desired::desired_bgp(&cluster, GINGER_NODE).expect("desired");
        let s = &desired.speaker;
        assert_eq!(s.local_asn, Topology::TARGET_AS);
        let mut peers: Vec<(IpAddr, u32)> = s
            .peers
            .values()
            .map(|p| (p.address, p.remote_asn))
            .collect();
        peers.sort();
        assert_eq!(
            peers,
            vec![
                ("10.0.0.2".parse().unwrap(), 65100),
                ("10.0.0.10".parse().unwrap(), 65001),
                ("10.0.0.11".parse().unwrap(), 65002),
                ("10.0.0.12".parse().unwrap(), 65003),
            ]
        );
        let pool: IpNet = "10.128.0.0/9".parse().unwrap();
        assert!(cluster.ip_pools().values().any(|p| p.cidr == pool));
        assert!(desired.originated.is_empty(), "{:?}", desired.originated);
    }

    #[test]
    fn daemons_get_passive_neighbours_and_a_fib_only_in_fib_mode() {
        let topo = Topology::new("2x10".parse().unwrap());
        let c = daemon_config(&topo, false);
        assert_eq!(c.asn, 64512);
        assert!(!c.install_fib);
        assert_eq!(c.neighbors.len(), 3);
        assert!(c.neighbors.iter().all(|n| n.passive));
        assert_eq!(c.neighbors[2].remote_as, 65002);
        assert!(daemon_config(&topo, true).install_fib);
    }

    #[test]
    fn only_ginger_bird_and_frr_have_a_fib_mode() {
        let with: Vec<TargetKind> = TargetKind::ALL
            .into_iter()
            .filter(|k| k.has_fib_mode())
            .collect();
        assert_eq!(
            with,
            [TargetKind::Ginger, TargetKind::Bird, TargetKind::Frr]
        );
        let refusal = no_fib_mode(TargetKind::Gobgp).to_string();
        assert!(refusal.contains("zebra"), "{refusal}");
    }

    #[test]
    fn the_release_binary_is_looked_for_in_target_release() {
        let p = default_ginger_binary();
        assert!(p.ends_with("release/ginger-node"), "{}", p.display());
    }
}
