//! Pieces the interop and topology scenarios share: cluster files built from typed documents
//! and replaced atomically (so a reload never reads half a file), a BGP daemon chosen by kind,
//! Ginger's paths picked out by session, `gingerctl node status` read back as rows, and the BGP
//! TCP connections of a namespace counted with `ss`.
//!
//! Owns: those helpers only. Must not: start anything by itself or wait by sleeping; every
//! check here reads state (files, the control socket, `ss` inside a lab namespace) and waits go
//! through `wait_for`/`wait_until`, or `hold_for` when a state must stay true for a while.

use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use bgp::status::{PathStatus, RouteStatus};
use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::router::{BgpDaemon, RouterConfig};
use crate::{Bird, Frr, Gobgp};

/// Parse an address literal written in a test (panics on a typo: test code writes these).
pub fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|e| panic!("address {text:?}: {e}"))
}

/// Parse a prefix literal written in a test (panics on a typo).
pub fn net(text: &str) -> IpNet {
    text.parse()
        .unwrap_or_else(|e| panic!("prefix {text:?}: {e}"))
}

/// A cluster file: Kubernetes-style documents under `apiVersion: ginger.dev/v1`. Specs are
/// YAML flow mappings written by the test (`{peerIP: 10.0.0.1, asNumber: 65001}`), so a test
/// reads like the file an operator would write.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    docs: Vec<String>,
}

impl Cluster {
    /// No documents.
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// Add a document of `kind` named `name` with `labels` and the flow-mapping `spec`.
    pub fn doc(mut self, kind: &str, name: &str, labels: &[(&str, &str)], spec: &str) -> Self {
        let mut d = format!("apiVersion: ginger.dev/v1\nkind: {kind}\nmetadata:\n  name: {name}\n");
        if !labels.is_empty() {
            d.push_str("  labels:\n");
            for (k, v) in labels {
                // Quoted: label values such as "true" must stay strings.
                let _ = writeln!(d, "    {k}: {v:?}");
            }
        }
        let _ = writeln!(d, "spec: {spec}");
        self.docs.push(d);
        self
    }

    /// A `BGPConfiguration` (`default`, or `node.<name>` for one node).
    pub fn bgp_configuration(self, name: &str, spec: &str) -> Self {
        self.doc("BGPConfiguration", name, &[], spec)
    }

    /// A `Node` with `spec.bgp.ipv4Address` and `labels`; `extra_bgp` is appended inside
    /// `spec.bgp` (`routeReflectorClusterID: 244.0.0.1`), or empty.
    pub fn node(
        self,
        name: &str,
        ipv4_cidr: &str,
        labels: &[(&str, &str)],
        extra_bgp: &str,
    ) -> Self {
        let extra = if extra_bgp.is_empty() {
            String::new()
        } else {
            format!(", {extra_bgp}")
        };
        let spec = format!("{{bgp: {{ipv4Address: {ipv4_cidr}{extra}}}}}");
        self.doc("Node", name, labels, &spec)
    }

    /// A `BGPPeer`.
    pub fn bgp_peer(self, name: &str, spec: &str) -> Self {
        self.doc("BGPPeer", name, &[], spec)
    }

    /// An `IPPool` with `cidr`.
    pub fn ip_pool(self, name: &str, cidr: &str) -> Self {
        self.doc("IPPool", name, &[], &format!("{{cidr: {cidr}}}"))
    }

    /// The file's text.
    pub fn render(&self) -> String {
        self.docs.join("---\n")
    }

    /// Write the file to `path`, replacing an existing one atomically (write a sibling, then
    /// rename): `ginger-node` polls the file and must never read it half written.
    pub fn write(&self, path: &Path) -> Result<PathBuf> {
        let tmp = path.with_extension("yaml.tmp");
        fs::write(&tmp, self.render()).map_err(|e| Error::Io {
            context: format!("writing {}", tmp.display()),
            source: e,
        })?;
        fs::rename(&tmp, path).map_err(|e| Error::Io {
            context: format!("renaming {} to {}", tmp.display(), path.display()),
            source: e,
        })?;
        Ok(path.to_path_buf())
    }
}

/// Which real BGP daemon plays a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonKind {
    /// BIRD 2.
    Bird,
    /// FRR 8 (zebra + bgpd).
    Frr,
    /// GoBGP 3.
    Gobgp,
}

impl DaemonKind {
    /// "bird", "frr" or "gobgp" (also a namespace label).
    pub fn name(self) -> &'static str {
        match self {
            DaemonKind::Bird => "bird",
            DaemonKind::Frr => "frr",
            DaemonKind::Gobgp => "gobgp",
        }
    }

    /// Start this daemon inside `ns` with `config` (files under `dir`).
    pub fn start(self, ns: &Netns, dir: &Path, config: RouterConfig) -> Result<Box<dyn BgpDaemon>> {
        Ok(match self {
            DaemonKind::Bird => Box::new(Bird::start(ns, dir, config)?),
            DaemonKind::Frr => Box::new(Frr::start(ns, dir, config)?),
            DaemonKind::Gobgp => Box::new(Gobgp::start(ns, dir, config)?),
        })
    }
}

/// The path to `route`'s prefix that came over session `from` (`Global_10_0_0_1`, `local`).
pub fn path_from<'a>(route: &'a RouteStatus, from: &str) -> Option<&'a PathStatus> {
    route.paths.iter().find(|p| p.from == from)
}

/// The best path, if the prefix has one.
pub fn best_path(route: &RouteStatus) -> Option<&PathStatus> {
    route.paths.iter().find(|p| p.best)
}

/// One row of a `gingerctl node status` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRow {
    /// PEER ADDRESS.
    pub address: String,
    /// PEER TYPE (`node-to-node mesh`, `global`, `node specific`).
    pub peer_type: String,
    /// STATE (BIRD's protocol state: `up`, `start`, …).
    pub state: String,
    /// SINCE.
    pub since: String,
    /// INFO (`Established`, `Active Socket: …`).
    pub info: String,
}

/// The data rows of every table in `gingerctl node status` output (header rows skipped), in
/// the order printed. Fails on a table row that does not have five cells.
pub fn status_rows(output: &str) -> Result<Vec<StatusRow>> {
    let mut rows = Vec::new();
    for line in output.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [address, peer_type, state, since, info] = cells[..] else {
            return Err(Error::Parse {
                tool: "gingerctl",
                what: "node status row".into(),
                detail: format!("{line:?} does not have 5 cells"),
            });
        };
        if address == "PEER ADDRESS" {
            continue;
        }
        rows.push(StatusRow {
            address: address.into(),
            peer_type: peer_type.into(),
            state: state.into(),
            since: since.into(),
            info: info.into(),
        });
    }
    Ok(rows)
}

/// Established TCP connections in `ns` with port 179 at either end, as (local, remote)
/// `addr:port` pairs (`ss` run inside the namespace).
pub fn bgp_connections(ns: &Netns) -> Result<Vec<(String, String)>> {
    let out = ns.run(&["ss", "-Htn", "state", "established"])?;
    Ok(out
        .lines()
        .filter_map(|l| {
            // Recv-Q Send-Q Local:Port Peer:Port
            let mut cols = l.split_whitespace().skip(2);
            Some((cols.next()?.to_string(), cols.next()?.to_string()))
        })
        .filter(|(l, r)| l.ends_with(":179") || r.ends_with(":179"))
        .collect())
}

/// BGP messages through one interface of a lab namespace held back: TCP segments to or from
/// port 179 that carry data (PSH) are dropped in both directions by an nftables table inside
/// the namespace, so TCP connections still open but no OPEN gets through until `release`; TCP
/// then retransmits what was held. Holding until both ends have a connection up makes their
/// OPENs cross on two connections at once: a connection collision (RFC 4271 §6.8) on demand.
/// Dropping the guard releases too (and the namespace's deletion removes the table anyway).
#[derive(Debug)]
pub struct HeldOpens<'a> {
    ns: &'a Netns,
    held: bool,
}

/// The nftables table `HeldOpens` uses.
const HOLD_TABLE: &str = "gng_hold_opens";

impl<'a> HeldOpens<'a> {
    /// Start dropping BGP data segments through `ifname` in `ns`.
    pub fn hold(ns: &'a Netns, ifname: &str) -> Result<HeldOpens<'a>> {
        ns.run(&["nft", "add", "table", "inet", HOLD_TABLE])?;
        for (chain, hook, dir) in [("in", "input", "iifname"), ("out", "output", "oifname")] {
            let spec = format!("{{ type filter hook {hook} priority 0 ; }}");
            ns.run(&["nft", "add", "chain", "inet", HOLD_TABLE, chain, &spec])?;
            for port in ["sport", "dport"] {
                ns.run(&[
                    "nft", "add", "rule", "inet", HOLD_TABLE, chain, dir, ifname, "tcp", port,
                    "179", "tcp", "flags", "&", "psh", "==", "psh", "drop",
                ])?;
            }
        }
        Ok(HeldOpens { ns, held: true })
    }

    /// Let BGP messages through again.
    pub fn release(&mut self) -> Result<()> {
        if self.held {
            self.ns
                .run(&["nft", "delete", "table", "inet", HOLD_TABLE])?;
            self.held = false;
        }
        Ok(())
    }
}

impl Drop for HeldOpens<'_> {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// Whether `connections` (from `bgp_connections`) include one we accepted (local port 179)
/// and one we opened (remote port 179): both ends connected.
pub fn both_directions(connections: &[(String, String)]) -> bool {
    connections.iter().any(|(l, _)| l.ends_with(":179"))
        && connections.iter().any(|(_, r)| r.ends_with(":179"))
}

/// Check `holds` repeatedly for `duration` and panic (a test assertion) the first time it
/// fails, quoting what it returned; for "stays up" checks, which must watch for a while.
#[track_caller]
pub fn hold_for<T: std::fmt::Debug>(
    duration: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T>,
    mut holds: impl FnMut(&T) -> bool,
) -> Result<T> {
    let start = Instant::now();
    loop {
        let v = probe()?;
        assert!(
            holds(&v),
            "{what} stopped holding after {:.1?}: {v:?}",
            start.elapsed()
        );
        if start.elapsed() >= duration {
            return Ok(v);
        }
        thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_renders_documents_an_agent_reads() {
        let cluster = Cluster::new()
            .bgp_configuration("default", "{asNumber: 64512}")
            .node(
                "n1",
                "10.0.0.1/24",
                &[("rack", "a")],
                "routeReflectorClusterID: 244.0.0.1",
            )
            .bgp_peer(
                "tor",
                "{nodeSelector: \"rack == 'a'\", peerIP: 10.0.0.254, asNumber: 65000}",
            )
            .ip_pool("pods", "10.244.0.0/16");
        let dir = tempfile::tempdir().unwrap();
        let path = cluster.write(&dir.path().join("cluster.yaml")).unwrap();
        let text = cluster.render();
        let cluster = agent::datastore::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let n1 = cluster.node("n1").unwrap();
        assert_eq!(n1.labels().get("rack").map(String::as_str), Some("a"));
        assert_eq!(
            n1.route_reflector_cluster_id(),
            Some("244.0.0.1".parse().unwrap())
        );
        assert_eq!(cluster.bgp_peers().len(), 1);
        assert_eq!(cluster.ip_pools().len(), 1);
        assert_eq!(cluster.as_number(), 64512);
    }

    #[test]
    fn write_replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        Cluster::new()
            .ip_pool("a", "10.1.0.0/16")
            .write(&path)
            .unwrap();
        Cluster::new()
            .ip_pool("b", "10.2.0.0/16")
            .write(&path)
            .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("10.2.0.0/16") && !text.contains("10.1.0.0/16"),
            "{text}"
        );
        assert!(!dir.path().join("c.yaml.tmp").exists());
    }

    #[test]
    fn status_rows_skip_headers_and_reject_torn_rows() {
        let out = "Ginger process is running.\n\nIPv4 BGP status\n\
+--------------+-------------------+-------+----------+-------------+\n\
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |\n\
+--------------+-------------------+-------+----------+-------------+\n\
| 10.0.0.2     | node-to-node mesh | up    | 23:30:04 | Established |\n\
| 10.0.0.3     | global            | start | 23:30:05 | Active      |\n\
+--------------+-------------------+-------+----------+-------------+\n\n\
IPv6 BGP status\nNo IPv6 peers found.\n\n";
        let rows = status_rows(out).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].address, "10.0.0.2");
        assert_eq!(rows[0].peer_type, "node-to-node mesh");
        assert_eq!(rows[1].state, "start");
        assert_eq!(rows[1].info, "Active");
        assert!(status_rows("| a | b |\n").is_err());
    }
}
