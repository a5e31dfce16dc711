//! The robustness lab: one `ginger-node` (namespace `node`), BIRD (`bird`) and a raw peer
//! (`raw`) on one bridge, with the addresses, cluster file and messages the scenarios use.
//!
//! Owns: building and tearing down the lab (`RawLab`, guards drop in order), the raw peer's
//! OPEN and announcements, and whole-file replacement for reload tests. Must not: judge what it
//! sees (the scenarios and `witness` do). Data leaves as the node's control-socket views, HTTP
//! answers and raw connections.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bgp::status::PeerStatus;
use ipnet::Ipv4Net;

use super::http::{HttpReply, MetricSamples, http_get};
use super::witness::{MemoryBudget, SessionMark};
use crate::bird::Bird;
use crate::error::{Error, Result};
use crate::ginger::{GingerNode, write_cluster};
use crate::link::Segment;
use crate::netns::Netns;
use crate::rawpeer::RawPeer;
use crate::rawpeer::msg::{self, UpdateBuilder};
use crate::router::{BgpDaemon, Neighbor, RouteAttrs, RouterConfig};
use crate::wait::wait_for;

/// Our AS (Calico's default), also the raw peer's: the raw session is iBGP.
pub const LAB_ASN: u32 = 64512;
/// BIRD's AS: its session is eBGP.
pub const BIRD_ASN: u32 = 65000;
/// The node's address on the lab segment (also its router id).
pub const NODE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 1);
/// BIRD's address.
pub const BIRD_ADDR: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 2);
/// The raw peer's address.
pub const RAW_ADDR: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 3);
/// The raw peer's BGP identifier.
pub const RAW_ROUTER_ID: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 3);
/// Where `ginger-node` serves `/liveness` and `/readiness` inside its namespace.
pub const HEALTH_ADDR: &str = "127.0.0.1:9099";
/// Where it serves `/metrics` inside its namespace.
pub const METRICS_ADDR: &str = "127.0.0.1:9091";
/// Prefixes BIRD originates in the lab.
pub const BIRD_PREFIXES: [&str; 2] = ["192.0.2.0/24", "198.51.100.0/24"];
/// The service range the node originates.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
/// Hold time the raw peer proposes (long enough for any scenario step; it sends no KEEPALIVEs).
pub const RAW_HOLD_TIME: u16 = 180;

/// Generous per-step deadline; steps normally take well under a second.
const STEP: Duration = Duration::from_secs(20);

/// Pools whose prefixes the node re-exports (Calico's export filter passes learned routes only
/// inside enabled pools): the raw peer announces from them.
pub const LAB_POOLS: [&str; 2] = ["198.18.0.0/15", "100.64.0.0/10"];

/// The lab's cluster file: one node, BIRD as a global eBGP peer, the raw peer as a global
/// iBGP peer, and the pools the raw peer's prefixes come from.
pub fn lab_cluster() -> String {
    format!(
        r#"apiVersion: ginger.dev/v1
kind: BGPConfiguration
metadata: {{name: default}}
spec:
  asNumber: {LAB_ASN}
  serviceClusterIPs: [{{cidr: {SERVICE_CIDR}}}]
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {{name: n1}}
spec: {{bgp: {{ipv4Address: {NODE_ADDR}/24}}}}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {{name: bird}}
spec: {{peerIP: {BIRD_ADDR}, asNumber: {BIRD_ASN}}}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {{name: raw}}
spec: {{peerIP: {RAW_ADDR}, asNumber: {LAB_ASN}}}
---
apiVersion: ginger.dev/v1
kind: IPPool
metadata: {{name: raw-a}}
spec: {{cidr: {}}}
---
apiVersion: ginger.dev/v1
kind: IPPool
metadata: {{name: raw-b}}
spec: {{cidr: {}}}
"#,
        LAB_POOLS[0], LAB_POOLS[1]
    )
}

/// One `ginger-node` (namespace `node`), BIRD (`bird`) and a raw peer (`raw`) on one bridge.
/// Fields drop in order: processes first, then namespaces, the segment last.
pub struct RawLab {
    /// The node under test.
    pub ginger: GingerNode,
    bird: Option<Bird>,
    dir: PathBuf,
    /// The node's namespace.
    pub node_ns: Netns,
    /// BIRD's namespace.
    pub bird_ns: Netns,
    /// The raw peer's namespace.
    pub raw_ns: Netns,
    _segment: Segment,
}

impl RawLab {
    /// Build the lab, start BIRD and the node, and wait until their session is Established.
    pub fn start(dir: &Path) -> Result<RawLab> {
        let mut lab = RawLab::without_bird(dir)?;
        lab.start_bird()?;
        lab.wait_bird_up(STEP)?;
        Ok(lab)
    }

    /// Build the lab and start only the node (BIRD comes with `start_bird`).
    pub fn without_bird(dir: &Path) -> Result<RawLab> {
        let segment = Segment::new("lan")?;
        let (node_ns, bird_ns, raw_ns) =
            (Netns::new("node")?, Netns::new("bird")?, Netns::new("raw")?);
        segment.attach(&node_ns, "eth0", &[&format!("{NODE_ADDR}/24")])?;
        segment.attach(&bird_ns, "eth0", &[&format!("{BIRD_ADDR}/24")])?;
        segment.attach(&raw_ns, "eth0", &[&format!("{RAW_ADDR}/24")])?;
        let cluster = write_cluster(dir, "cluster.yaml", &lab_cluster())?;
        let ginger = GingerNode::start(
            &node_ns,
            dir,
            &cluster,
            "n1",
            &[
                "--health-listen",
                HEALTH_ADDR,
                "--metrics-listen",
                METRICS_ADDR,
            ],
        )?;
        Ok(RawLab {
            ginger,
            bird: None,
            dir: dir.to_path_buf(),
            node_ns,
            bird_ns,
            raw_ns,
            _segment: segment,
        })
    }

    /// Start BIRD (eBGP to the node, originating `BIRD_PREFIXES`).
    pub fn start_bird(&mut self) -> Result<()> {
        let mut config = RouterConfig::new(BIRD_ADDR, BIRD_ASN)
            .neighbor(Neighbor::new(IpAddr::V4(NODE_ADDR), LAB_ASN));
        for p in BIRD_PREFIXES {
            config = config.originate(p, RouteAttrs::new());
        }
        self.bird = Some(Bird::start(&self.bird_ns, &self.dir, config)?);
        Ok(())
    }

    /// BIRD (panics if `start_bird` was not called: a test bug, not a lab failure).
    pub fn bird(&self) -> &Bird {
        self.bird
            .as_ref()
            .expect("RawLab::start_bird was not called")
    }

    /// Wait until both ends see the BIRD session Established.
    pub fn wait_bird_up(&self, timeout: Duration) -> Result<()> {
        self.ginger
            .wait_established(IpAddr::V4(BIRD_ADDR), timeout)?;
        self.bird().wait_established(IpAddr::V4(NODE_ADDR), timeout)
    }

    /// A TCP connection from the raw peer to the node's BGP port (nothing sent yet).
    pub fn connect_raw(&self) -> Result<RawPeer> {
        RawPeer::connect(
            &self.raw_ns,
            SocketAddr::new(IpAddr::V4(NODE_ADDR), 179),
            STEP,
        )
    }

    /// A raw session the node sees Established (our OPEN: IPv4 unicast, route refresh and
    /// 4-octet AS, so the session is a 4-octet one).
    pub fn raw_session(&self) -> Result<RawPeer> {
        let mut raw = self.connect_raw()?;
        raw.handshake(&raw_open(), STEP)?;
        self.ginger.wait_established(IpAddr::V4(RAW_ADDR), STEP)?;
        Ok(raw)
    }

    /// The node's view of the raw peer.
    pub fn raw_status(&self) -> Result<PeerStatus> {
        self.ginger.peer(IpAddr::V4(RAW_ADDR))
    }

    /// Both ends' view of the BIRD session now.
    pub fn bird_mark(&self) -> Result<SessionMark> {
        SessionMark::take(
            &self.ginger,
            self.bird(),
            IpAddr::V4(BIRD_ADDR),
            IpAddr::V4(NODE_ADDR),
        )
    }

    /// GET `path` from the health endpoint, from inside the node's namespace.
    pub fn health(&self, path: &str) -> Result<HttpReply> {
        http_get(&self.node_ns, parse_addr(HEALTH_ADDR), path)
    }

    /// Scrape `/metrics` from inside the node's namespace.
    pub fn metrics(&self) -> Result<MetricSamples> {
        let reply = http_get(&self.node_ns, parse_addr(METRICS_ADDR), "/metrics")?;
        if reply.status != 200 {
            return Err(Error::parse(
                "ginger-node",
                "/metrics",
                format!("status {}: {}", reply.status, reply.body),
            ));
        }
        MetricSamples::parse(&reply.body)
    }

    /// Panic unless the node still runs, the BIRD session is the one `mark` saw (not reset by
    /// either side) and the node's memory is within `budget`. `context` names the step.
    #[track_caller]
    pub fn assert_undisturbed(&self, mark: &SessionMark, budget: &MemoryBudget, context: &str) {
        assert!(
            self.ginger.process().is_running(),
            "{context}: ginger-node exited: {:?}\n{}",
            self.ginger.process().exit_status(),
            self.ginger.logs()
        );
        let now = self
            .bird_mark()
            .unwrap_or_else(|e| panic!("{context}: reading the BIRD session: {}", e.chain()));
        mark.assert_same(&now, context);
        budget.assert_within(context);
    }
}

fn parse_addr(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|e| panic!("lab address {text:?}: {e}"))
}

/// The raw peer's OPEN in the lab.
pub fn raw_open() -> Vec<u8> {
    msg::open(LAB_ASN, RAW_HOLD_TIME, RAW_ROUTER_ID)
}

/// A valid iBGP UPDATE from the raw peer announcing `prefix` (empty AS_PATH, so it reads the
/// same on 2- and 4-octet sessions).
pub fn raw_announce(prefix: Ipv4Net) -> Vec<u8> {
    UpdateBuilder::new()
        .origin(0)
        .as_path(&[])
        .next_hop(RAW_ADDR)
        .local_pref(100)
        .nlri(prefix)
        .build()
}

/// Replace `path` with `text` at once (write a sibling, then rename), so a watcher never
/// reads half a file.
pub fn replace_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    fs::write(&tmp, text).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming onto {}", path.display()), e))
}

/// Wait until the node's view of `address` satisfies `done`.
pub fn wait_peer(
    ginger: &GingerNode,
    address: IpAddr,
    what: &str,
    timeout: Duration,
    done: impl FnMut(&PeerStatus) -> bool,
) -> Result<PeerStatus> {
    wait_for(timeout, what, || ginger.peer(address), done)
}
