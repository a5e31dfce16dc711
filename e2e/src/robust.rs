//! What the robustness scenarios (`tests/robust_*.rs`) share: a lab of one `ginger-node`, a
//! well-behaved BIRD peer and a raw peer on one segment (`RawLab`), the witnesses that a bad
//! input disturbed nothing else (`SessionMark`, `MemoryBudget`), plain HTTP and Prometheus
//! readers for the health and metrics endpoints, `gingerctl` runs with a chosen user and
//! environment, and a seeded message mutator for the randomized abuse test.
//!
//! Owns: those helpers and the lab's addresses. Must not: use Ginger's codec or reach into the
//! agent (everything is read through its control socket, HTTP endpoints, logs and `/proc`), or
//! touch the machine's own namespace: HTTP requests are made from a thread inside the node's
//! namespace, `gingerctl` only opens a unix socket. The `assert_*` functions panic with the
//! evidence, as test assertions do; everything else returns `Result`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bgp::status::{PeerStatus, SessionState};
use ipnet::Ipv4Net;

use crate::bins::bin_path;
use crate::bird::Bird;
use crate::error::{Error, Result};
use crate::ginger::{GingerNode, write_cluster};
use crate::link::Segment;
use crate::netns::Netns;
use crate::rawpeer::RawPeer;
use crate::rawpeer::msg::{self, UpdateBuilder};
use crate::router::{BgpDaemon, Neighbor, RouteAttrs, RouterConfig};
use crate::setns::thread_in_netns;
use crate::wait::{wait_for, wait_until};

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

/// One BGP session as both ends see it: the node's state, `since` and established count, and
/// the remote BIRD's state and `since` (millisecond resolution).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionMark {
    /// The node's state.
    pub state: SessionState,
    /// The node's last state change (Unix seconds).
    pub since_unix: u64,
    /// Times the node saw the session reach Established.
    pub established_count: u64,
    /// BIRD's protocol row for the session.
    pub bird: BirdProtocol,
}

impl SessionMark {
    /// Read the session between the node and the BIRD at `bird_addr` from both ends;
    /// `node_addr` is the node's address as BIRD knows it.
    pub fn take(
        ginger: &GingerNode,
        bird: &Bird,
        bird_addr: IpAddr,
        node_addr: IpAddr,
    ) -> Result<SessionMark> {
        let p = ginger.peer(bird_addr)?;
        Ok(SessionMark {
            state: p.state,
            since_unix: p.since_unix,
            established_count: p.counters.established_count,
            bird: bird_protocol(bird, node_addr)?,
        })
    }

    /// Panic unless `now` is the same Established session.
    #[track_caller]
    pub fn assert_same(&self, now: &SessionMark, context: &str) {
        assert_eq!(
            now.state,
            SessionState::Established,
            "{context}: the BIRD session is down: {now:?}"
        );
        assert_eq!(
            now, self,
            "{context}: the BIRD session was reset (before vs now)"
        );
    }
}

/// A protocol row of `birdc show protocols`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdProtocol {
    /// `up`, `start`, `down`.
    pub state: String,
    /// The Since column (`19:31:48.612`).
    pub since: String,
    /// The Info column (`Established`, `Active Socket: Connection refused`).
    pub info: String,
}

/// The BGP protocol row BIRD shows for neighbour `peer` (the launcher names it `peer_<ip>`).
pub fn bird_protocol(bird: &Bird, peer: IpAddr) -> Result<BirdProtocol> {
    let name = format!("peer_{}", peer.to_string().replace(['.', ':'], "_"));
    let out = bird.birdc("show protocols")?;
    parse_bird_protocol(&out, &name)
}

fn parse_bird_protocol(out: &str, name: &str) -> Result<BirdProtocol> {
    let row = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .ok_or_else(|| Error::parse("bird", format!("protocol {name}"), out.to_string()))?;
    let cols: Vec<&str> = row.split_whitespace().collect();
    match cols.as_slice() {
        [_, _, _, state, since, info @ ..] => Ok(BirdProtocol {
            state: state.to_string(),
            since: since.to_string(),
            info: info.join(" "),
        }),
        _ => Err(Error::parse("bird", format!("protocol {name}"), row)),
    }
}

/// BIRD's route counts for its session with `peer` (`Routes: N imported, M exported` of
/// `show protocols all`): what the node sent BIRD, and what BIRD sent the node.
pub fn bird_route_counts(bird: &Bird, peer: IpAddr) -> Result<(u64, u64)> {
    let name = format!("peer_{}", peer.to_string().replace(['.', ':'], "_"));
    let out = bird.birdc(&format!("show protocols all {name}"))?;
    parse_route_counts(&out)
        .ok_or_else(|| Error::parse("bird", format!("route counts of {name}"), out))
}

fn parse_route_counts(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().find_map(|l| l.trim().strip_prefix("Routes:"))?;
    let mut imported = None;
    let mut exported = None;
    for part in line.split(',') {
        let mut words = part.split_whitespace();
        let n: u64 = words.next()?.parse().ok()?;
        match words.next()? {
            "imported" => imported = Some(n),
            "exported" => exported = Some(n),
            _ => {}
        }
    }
    Some((imported?, exported?))
}

/// Resident memory of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| Error::parse("kernel", format!("VmRSS in {path}"), text.clone()))
}

/// CPU time `pid` has used so far (user + system), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    // Fields after the parenthesised command name (which may hold spaces): state is field 3,
    // utime and stime are fields 14 and 15.
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| Error::parse("kernel", path.clone(), text.clone()))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(|| {
            Error::parse("kernel", format!("field {} of {path}", i + 3), text.clone())
        })
    };
    // Field 14 is at index 11 after the name (field 3 is index 0).
    let total = ticks(11)? + ticks(12)?;
    // USER_HZ is 100 on every Linux architecture Ginger targets.
    Ok(Duration::from_millis(total * 10))
}

/// How busy `pid` is over `window`: CPU time used divided by wall time.
pub fn cpu_load(pid: u32, window: Duration) -> Result<f64> {
    let before = cpu_time(pid)?;
    std::thread::sleep(window);
    let after = cpu_time(pid)?;
    Ok((after.saturating_sub(before)).as_secs_f64() / window.as_secs_f64())
}

/// A process's resident memory at a baseline, and how much it may grow.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    pid: u32,
    /// RSS when the budget was taken (KiB).
    pub baseline_kib: u64,
    /// Allowed growth over the baseline (KiB).
    pub allowance_kib: u64,
}

impl MemoryBudget {
    /// Measure `pid` now; it may grow by `allowance_mib` MiB.
    pub fn new(pid: u32, allowance_mib: u64) -> Result<MemoryBudget> {
        Ok(MemoryBudget {
            pid,
            baseline_kib: rss_kib(pid)?,
            allowance_kib: allowance_mib * 1024,
        })
    }

    /// Panic if the process has grown beyond the allowance; returns the RSS now (KiB).
    #[track_caller]
    pub fn assert_within(&self, context: &str) -> u64 {
        let now = rss_kib(self.pid)
            .unwrap_or_else(|e| panic!("{context}: reading RSS of {}: {}", self.pid, e.chain()));
        assert!(
            now <= self.baseline_kib + self.allowance_kib,
            "{context}: RSS {now} KiB exceeds baseline {} KiB + {} KiB",
            self.baseline_kib,
            self.allowance_kib
        );
        now
    }
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Header lines as received (`Content-Type: text/plain; charset=utf-8`).
    pub headers: Vec<String>,
    /// Body.
    pub body: String,
}

/// `GET path` on `addr` over a plain TCP connection made inside `ns`.
pub fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> Result<HttpReply> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let raw = thread_in_netns(ns, move || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.write_all(request.as_bytes())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    })?
    .map_err(|e| Error::io(format!("GET http://{addr}{path} in {}", ns.name()), e))?;
    parse_http(&String::from_utf8_lossy(&raw)).ok_or_else(|| {
        Error::parse(
            "ginger-node",
            format!("HTTP answer to GET {path}"),
            raw_text(&raw),
        )
    })
}

fn raw_text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn parse_http(text: &str) -> Option<HttpReply> {
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(HttpReply {
        status,
        headers: lines.map(str::to_string).collect(),
        body: body.to_string(),
    })
}

/// One sample of a Prometheus text exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Every sample of one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricSamples {
    /// Samples in exposition order.
    pub samples: Vec<Sample>,
}

impl MetricSamples {
    /// Parse Prometheus text format 0.0.4 (comments skipped, label values unescaped).
    pub fn parse(text: &str) -> Result<MetricSamples> {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(
                parse_sample(line)
                    .ok_or_else(|| Error::parse("ginger-node", "a metrics line", line))?,
            );
        }
        Ok(MetricSamples { samples })
    }

    /// Samples named `name` whose labels include every `(key, value)` of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The one sample named `name` with `labels` (None if none; panics if several match,
    /// which means the test's labels are not specific enough).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches several samples: {found:?}"
        );
        found.first().map(|s| s.value)
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end;
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    end = i + 1;
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        rest = &inner[end..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// What a `gingerctl` run printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlRun {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

/// Run `gingerctl --run-dir <run_dir> args…` with extra environment `env`, as user `uid` (via
/// `setpriv`) when given. It only opens the unix socket, so it needs no namespace.
pub fn gingerctl(
    run_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    uid: Option<u32>,
) -> Result<CtlRun> {
    let bin = bin_path("gingerctl")?;
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.arg("--run-dir").arg(run_dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| Error::io(format!("running {}", bin.display()), e))?;
    Ok(CtlRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `text` without ANSI colour sequences (`ESC [ … m`), as a terminal would show it.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of `logs` (colours stripped) that contain every one of `needles`.
pub fn log_lines(logs: &str, needles: &[&str]) -> Vec<String> {
    strip_ansi(logs)
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Wait until `logs()` has at least `count` lines containing every one of `needles`; returns
/// the last of them.
pub fn wait_log_lines(
    logs: impl Fn() -> String,
    needles: &[&str],
    count: usize,
    timeout: Duration,
) -> Result<String> {
    wait_until(
        timeout,
        &format!("{count} log line(s) with {needles:?}"),
        || {
            let text = logs();
            let found = log_lines(&text, needles);
            if found.len() >= count {
                Ok(found.last().cloned().unwrap_or_default())
            } else {
                let plain = strip_ansi(&text);
                let tail: Vec<&str> = plain.lines().rev().take(3).collect();
                Err(format!("{} found; last lines: {tail:?}", found.len()))
            }
        },
    )
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

/// The column titles of `calicoctl node status` as tablewriter prints them.
pub const STATUS_TITLES: [&str; 5] = ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"];
/// tablewriter's wrap width: longer cells are broken into lines of at most this many columns.
pub const STATUS_WRAP: usize = 30;

/// One peer row of `gingerctl node status`, its wrapped cells joined with single spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRow {
    /// PEER ADDRESS.
    pub address: String,
    /// PEER TYPE.
    pub peer_type: String,
    /// STATE.
    pub state: String,
    /// SINCE.
    pub since: String,
    /// INFO.
    pub info: String,
}

/// `gingerctl node status` read back: the IPv4 and IPv6 sections (`None`: "No IPvN peers
/// found.").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatusText {
    /// IPv4 rows.
    pub v4: Option<Vec<StatusRow>>,
    /// IPv6 rows.
    pub v6: Option<Vec<StatusRow>>,
}

/// Parse `gingerctl node status` output and check it against calicoctl's released layout
/// (calico.md §5.1): the banner, `IPv4 BGP status` / `IPv6 BGP status` sections separated by
/// blank lines and a final blank line, and per section either `No IPvN peers found.` or a
/// tablewriter box: identical `+---+` borders as wide as each column's widest line, centred
/// upper-case titles (odd space right), left-aligned cells, INFO wrapped at 30 columns with
/// the other cells blank on continuation lines. Returns the rows, or the first deviation.
pub fn parse_node_status(text: &str) -> std::result::Result<NodeStatusText, String> {
    let mut lines = text.split('\n').peekable();
    let expect =
        |want: &str, lines: &mut std::iter::Peekable<std::str::Split<'_, char>>| match lines.next()
        {
            Some(l) if l == want => Ok(()),
            other => Err(format!("expected {want:?}, found {other:?}")),
        };
    expect("Ginger process is running.", &mut lines)?;
    expect("", &mut lines)?;
    expect("IPv4 BGP status", &mut lines)?;
    let v4 = parse_section(&mut lines, 4)?;
    expect("", &mut lines)?;
    expect("IPv6 BGP status", &mut lines)?;
    let v6 = parse_section(&mut lines, 6)?;
    // calicoctl ends with an empty line after the last table; the text ends with a newline.
    expect("", &mut lines)?;
    expect("", &mut lines)?;
    match lines.next() {
        None => Ok(NodeStatusText { v4, v6 }),
        Some(l) => Err(format!("unexpected trailing line {l:?}")),
    }
}

fn parse_section<'a>(
    lines: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    version: u8,
) -> std::result::Result<Option<Vec<StatusRow>>, String> {
    let first = lines.next().ok_or("missing section body")?;
    if first == format!("No IPv{version} peers found.") {
        return Ok(None);
    }
    // Column widths from the top border; every other border must equal it.
    let widths: Vec<usize> = first
        .strip_prefix('+')
        .and_then(|b| b.strip_suffix('+'))
        .ok_or_else(|| format!("IPv{version}: not a border: {first:?}"))?
        .split('+')
        .map(|dashes| {
            if dashes.len() >= 2 && dashes.bytes().all(|b| b == b'-') {
                Ok(dashes.len() - 2)
            } else {
                Err(format!("IPv{version}: not a border: {first:?}"))
            }
        })
        .collect::<std::result::Result<_, _>>()?;
    if widths.len() != STATUS_TITLES.len() {
        return Err(format!(
            "IPv{version}: {} columns in {first:?}",
            widths.len()
        ));
    }
    let border = first.to_string();
    let header = lines.next().ok_or("missing header")?;
    let cells = split_cells(header, &widths)
        .ok_or_else(|| format!("IPv{version}: header {header:?} does not fit the border"))?;
    for ((cell, title), w) in cells.iter().zip(STATUS_TITLES).zip(&widths) {
        let gap = w - title.len().min(*w);
        let centred = format!(
            "{}{title}{}",
            " ".repeat(gap / 2),
            " ".repeat(gap - gap / 2)
        );
        if *cell != centred {
            return Err(format!(
                "IPv{version}: header cell {cell:?}, want {centred:?}"
            ));
        }
    }
    if lines.next() != Some(border.as_str()) {
        return Err(format!("IPv{version}: no border under the header"));
    }
    let mut rows: Vec<Vec<Vec<String>>> = Vec::new();
    loop {
        let line = lines.next().ok_or("table not closed")?;
        if line == border {
            break;
        }
        let cells = split_cells(line, &widths)
            .ok_or_else(|| format!("IPv{version}: row {line:?} does not fit the border"))?;
        let mut content = Vec::new();
        for cell in &cells {
            let text = cell.trim_end();
            if text.starts_with(' ') {
                return Err(format!(
                    "IPv{version}: cell {cell:?} is not left-aligned in {line:?}"
                ));
            }
            content.push(text.to_string());
        }
        let continuation = content[0].is_empty();
        match rows.last_mut() {
            Some(row) if continuation => {
                for (col, text) in content.into_iter().enumerate() {
                    if !text.is_empty() {
                        if col != 4 {
                            return Err(format!(
                                "IPv{version}: only INFO may wrap, column {col} did in {line:?}"
                            ));
                        }
                        row[col].push(text);
                    }
                }
            }
            None if continuation => {
                return Err(format!("IPv{version}: first row has no address: {line:?}"));
            }
            _ => rows.push(content.into_iter().map(|t| vec![t]).collect()),
        }
    }
    // Each column is exactly as wide as its widest line (or the wrap width once INFO wrapped).
    for (col, w) in widths.iter().enumerate() {
        let widest = rows
            .iter()
            .flat_map(|r| r[col].iter())
            .map(|l| l.chars().count())
            .chain([STATUS_TITLES[col].len()])
            .max()
            .unwrap_or(0);
        let wrapped = rows.iter().any(|r| r[col].len() > 1);
        let want = if wrapped {
            widest.max(STATUS_WRAP)
        } else {
            widest
        };
        if *w != want {
            return Err(format!(
                "IPv{version}: column {col} is {w} wide, want {want}"
            ));
        }
        if wrapped && widest > STATUS_WRAP {
            return Err(format!(
                "IPv{version}: a wrapped line of column {col} exceeds {STATUS_WRAP}"
            ));
        }
    }
    Ok(Some(
        rows.into_iter()
            .map(|r| {
                let mut joined = r.into_iter().map(|lines| lines.join(" "));
                let mut next = || joined.next().unwrap_or_default();
                StatusRow {
                    address: next(),
                    peer_type: next(),
                    state: next(),
                    since: next(),
                    info: next(),
                }
            })
            .collect(),
    ))
}

/// The cells of `| a | b |` for columns `widths` (each ` text ` padded to the width), or
/// `None` when the line does not fit them exactly.
fn split_cells(line: &str, widths: &[usize]) -> Option<Vec<String>> {
    let chars: Vec<char> = line.chars().collect();
    let mut at = 0;
    if chars.first() != Some(&'|') {
        return None;
    }
    at += 1;
    let mut cells = Vec::new();
    for w in widths {
        let cell: String = chars.get(at..at + w + 2)?.iter().collect();
        let inner = cell.strip_prefix(' ')?.strip_suffix(' ')?;
        cells.push(inner.to_string());
        at += w + 2;
        if chars.get(at) != Some(&'|') {
            return None;
        }
        at += 1;
    }
    (at == chars.len()).then_some(cells)
}

/// `HH:MM:SS` of a Unix time in UTC (what `gingerctl` prints with `TZ=UTC` within 20 hours).
pub fn utc_clock(unix: u64) -> String {
    let day = unix % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

/// Hex text (whitespace ignored) to bytes.
pub fn unhex(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let invalid = |reason: &str| Error::Invalid {
        what: "hex string",
        value: text.to_string(),
        reason: reason.to_string(),
    };
    if !digits.len().is_multiple_of(2) {
        return Err(invalid("odd number of digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| invalid("not a hex digit"))
        })
        .collect()
}

/// Bytes to lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One row of `zettabgp-cases.tsv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZettaCase {
    /// The case name (first column).
    pub name: String,
    /// The whole message.
    pub bytes: Vec<u8>,
}

/// The rows of `zettabgp-cases.tsv` (title row and `#` comments skipped).
pub fn zettabgp_cases(tsv: &str) -> Result<Vec<ZettaCase>> {
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .skip(1)
        .map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next().unwrap_or_default().to_string();
            let bytes = unhex(cols.next().unwrap_or_default())?;
            Ok(ZettaCase { name, bytes })
        })
        .collect()
}

/// The path attribute bytes of an UPDATE message (header included), clipped to the message.
pub fn update_attr_bytes(message: &[u8]) -> &[u8] {
    let body = message.get(msg::HEADER_LEN..).unwrap_or(&[]);
    let withdrawn_len = body
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) as usize);
    let attrs_at = 2 + withdrawn_len;
    let Some(len) = body.get(attrs_at..attrs_at + 2) else {
        return &[];
    };
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    let start = (attrs_at + 2).min(body.len());
    &body[start..(start + len).min(body.len())]
}

/// Seeded xorshift64* generator: the abuse test is reproducible from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced, xorshift has no zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u8) -> bool {
        self.below(100) < percent as usize
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

/// Rewrite the header's length field to the message's real length (saturating).
pub fn fix_length(message: &mut [u8]) {
    if message.len() >= msg::HEADER_LEN {
        let len = message.len().min(u16::MAX as usize) as u16;
        message[16..18].copy_from_slice(&len.to_be_bytes());
    }
}

/// Whether mutants may break the 19-octet header framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Every mutant is at least a header long and its length field tells its real size, so a
    /// receiver always sees whole messages (and whatever follows stays in step).
    Keep,
    /// Length fields may lie and messages may be shorter than a header three times in four.
    MayBreak,
}

/// One to four random edits of `message`, mostly in the body: bit flips, byte overwrites
/// (lengths and flags are favoured: they steer decoders), insertions, deletions, truncation,
/// duplication. With
/// `Framing::MayBreak` the header length is still corrected three times in four, so most
/// mutants reach the body decoders instead of stopping at the framing check.
pub fn mutate(rng: &mut Rng, message: &[u8], framing: Framing) -> Vec<u8> {
    let mut m = message.to_vec();
    for _ in 0..=rng.below(4) {
        if m.is_empty() {
            m.push(rng.byte());
        }
        // Mostly the body: a damaged marker or type ends the message at the header check.
        let at = if m.len() > msg::HEADER_LEN && rng.chance(85) {
            msg::HEADER_LEN + rng.below(m.len() - msg::HEADER_LEN)
        } else {
            rng.below(m.len())
        };
        match rng.below(8) {
            0 => m[at] ^= 1 << rng.below(8),
            1 => m[at] = rng.byte(),
            // Small values in the body: lengths and counts that almost fit.
            2 => {
                let body = m.len().saturating_sub(msg::HEADER_LEN);
                let at = (msg::HEADER_LEN + rng.below(body.max(1))).min(m.len() - 1);
                m[at] = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xff][rng.below(8)];
            }
            3 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                m.splice(at..at, bytes);
            }
            4 => {
                let end = (at + 1 + rng.below(8)).min(m.len());
                m.drain(at..end);
            }
            5 => m.truncate(at.max(1)),
            6 => {
                let end = (at + 1 + rng.below(16)).min(m.len());
                let chunk = m[at..end].to_vec();
                m.splice(at..at, chunk);
            }
            // Attribute flags: optional/transitive/partial/extended-length bits.
            _ => m[at] ^= [0x80, 0x40, 0x20, 0x10][rng.below(4)],
        }
    }
    match framing {
        Framing::Keep => {
            while m.len() < msg::HEADER_LEN {
                m.push(rng.byte());
            }
            fix_length(&mut m);
        }
        Framing::MayBreak => {
            if rng.below(4) != 0 {
                fix_length(&mut m);
            }
        }
    }
    m
}

/// A corpus of valid messages for a 4-octet iBGP session with the raw peer: UPDATEs with every
/// attribute Ginger handles (and some it only carries), withdrawals, End-of-RIB, KEEPALIVE and
/// ROUTE-REFRESH. Prefixes come from 100.64.0.0/10 so they cannot shadow the lab's own.
pub fn abuse_corpus(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut prefix = || -> Ipv4Net {
        let len = 16 + rng.below(17) as u8;
        let addr = Ipv4Addr::from(0x6440_0000 | (rng.next_u64() as u32 & 0x003F_FFFF));
        Ipv4Net::new(addr, len).expect("length ≤ 32").trunc()
    };
    let base = || {
        UpdateBuilder::new()
            .origin(0)
            .as_path(&[])
            .next_hop(RAW_ADDR)
            .local_pref(100)
    };
    let (p1, p2, p3, p4) = (prefix(), prefix(), prefix(), prefix());
    let mp_reach_v6 = {
        // AFI 2 SAFI 1, next hop length 16, fd00::3, reserved, 2001:db8::/32.
        let mut v = vec![0, 2, 1, 16];
        v.extend_from_slice(
            &"fd00::3"
                .parse::<std::net::Ipv6Addr>()
                .expect("literal")
                .octets(),
        );
        v.push(0);
        v.extend_from_slice(&[32, 0x20, 0x01, 0x0d, 0xb8]);
        v
    };
    let mp_unreach_v4 = vec![0, 1, 1, 24, 100, 64, 9];
    vec![
        base().nlri(p1).build(),
        base()
            .med(7)
            .communities(&[(65001 << 16) | 1, 0xFFFF_FF01])
            .nlri(p2)
            .nlri(p3)
            .build(),
        base()
            .raw_attr(
                0xC0,
                msg::attr_type::LARGE_COMMUNITY,
                &[0, 0, 0xFD, 0xE9, 0, 0, 0, 1, 0, 0, 0, 2],
            )
            .raw_attr(0x80, msg::attr_type::ORIGINATOR_ID, &RAW_ROUTER_ID.octets())
            .raw_attr(0x80, msg::attr_type::CLUSTER_LIST, &[10, 81, 0, 9])
            .nlri(p4)
            .build(),
        // ATOMIC_AGGREGATE, AGGREGATOR (4-octet), an unknown optional transitive attribute.
        base()
            .raw_attr(0x40, 6, &[])
            .raw_attr(0xC0, 7, &[0, 0, 0xFD, 0xE9, 10, 81, 0, 3])
            .raw_attr(0xC0, 99, &[1, 2, 3, 4, 5])
            .nlri(p1)
            .build(),
        UpdateBuilder::new()
            .origin(0)
            .as_path(&[])
            .local_pref(100)
            .raw_attr(0x80, msg::attr_type::MP_REACH_NLRI, &mp_reach_v6)
            .build(),
        UpdateBuilder::new()
            .raw_attr(0x80, msg::attr_type::MP_UNREACH_NLRI, &mp_unreach_v4)
            .build(),
        UpdateBuilder::new().withdraw(p1).withdraw(p2).build(),
        UpdateBuilder::new().build(),
        msg::keepalive(),
        msg::frame(msg::msg_type::ROUTE_REFRESH, &[0, 1, 0, 1]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_rows_parse_and_missing_ones_are_errors() {
        let out = "Name       Proto      Table      State  Since         Info\n\
                   peer_10_81_0_1 BGP        ---        up     19:31:48.612  Established   \n\
                   peer_10_81_0_9 BGP        ---        start  19:31:40.001  Active        Socket: Connection refused\n";
        let up = parse_bird_protocol(out, "peer_10_81_0_1").unwrap();
        assert_eq!(
            (up.state.as_str(), up.since.as_str(), up.info.as_str()),
            ("up", "19:31:48.612", "Established")
        );
        let down = parse_bird_protocol(out, "peer_10_81_0_9").unwrap();
        assert_eq!(down.info, "Active Socket: Connection refused");
        assert!(parse_bird_protocol(out, "peer_10_81_0_2").is_err());
        assert!(parse_bird_protocol("peer_x BGP\n", "peer_x").is_err());
    }

    #[test]
    fn bird_route_counts_parse() {
        let out = "peer_10_81_0_1 BGP ---  up  19:31:48.612  Established\n  Channel ipv4\n    \
                   State:          UP\n    Routes:         3 imported, 2 exported, 1 preferred\n";
        assert_eq!(parse_route_counts(out), Some((3, 2)));
        assert_eq!(parse_route_counts("    Routes:  x imported\n"), None);
        assert_eq!(parse_route_counts("no such line"), None);
    }

    #[test]
    fn http_answers_parse() {
        let r = parse_http(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nnot ready\n",
        )
        .unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.headers, vec!["Content-Type: text/plain"]);
        assert_eq!(r.body, "not ready\n");
        assert!(parse_http("garbage").is_none());
        assert!(parse_http("SIP/2.0 200 OK\r\n\r\n").is_none());
    }

    #[test]
    fn prometheus_samples_parse_with_escapes() {
        let text = "# HELP x y\n# TYPE x counter\n\
                    ginger_build_info{version=\"0.1.0\"} 1\n\
                    ginger_bgp_peer_notifications_sent_total{address=\"10.0.0.3\",code=\"3\",name=\"UPDATE Message Error/Invalid Network Field\",peer=\"Global_10_0_0_3\",subcode=\"10\",type=\"global\"} 2\n\
                    odd{l=\"a \\\"q\\\" \\\\ b\"} -1.5\n\
                    plain 7\n";
        let m = MetricSamples::parse(text).unwrap();
        assert_eq!(m.samples.len(), 4);
        assert_eq!(
            m.value(
                "ginger_bgp_peer_notifications_sent_total",
                &[("code", "3"), ("subcode", "10")]
            ),
            Some(2.0)
        );
        assert_eq!(m.samples[2].labels["l"], "a \"q\" \\ b");
        assert_eq!(m.value("odd", &[]), Some(-1.5));
        assert_eq!(m.value("plain", &[]), Some(7.0));
        assert_eq!(m.value("plain", &[("x", "y")]), None);
        assert!(MetricSamples::parse("broken{a=\"b\" 1\n").is_err());
        assert!(MetricSamples::parse("name notanumber\n").is_err());
    }

    #[test]
    fn node_status_parses_calicos_own_example() {
        // calico.md §5.1, with Ginger's banner and calicoctl's final empty line.
        let text = "Ginger process is running.\n\nIPv4 BGP status\n\
+--------------+-------------------+-------+----------+-------------+\n\
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |\n\
+--------------+-------------------+-------+----------+-------------+\n\
| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established |\n\
+--------------+-------------------+-------+----------+-------------+\n\
\nIPv6 BGP status\nNo IPv6 peers found.\n\n";
        let parsed = parse_node_status(text).unwrap();
        assert_eq!(parsed.v6, None);
        assert_eq!(
            parsed.v4.unwrap(),
            vec![StatusRow {
                address: "172.17.8.102".into(),
                peer_type: "node-to-node mesh".into(),
                state: "up".into(),
                since: "23:30:04".into(),
                info: "Established".into(),
            }]
        );
        // Layout faults are reported, not glossed over.
        let faults = [
            text.replace("|     PEER TYPE     |", "|    PEER TYPE      |"),
            text.replace("| up    |", "|    up |"),
            text.replace("\n\nIPv6", "\nIPv6"),
            text.replace("found.\n\n", "found.\n"),
            text.replace("Established |", "Established  |"),
            text.replace("-------------+\n|", "------------+\n|"),
        ];
        for bad in faults {
            assert!(parse_node_status(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_status_joins_wrapped_info() {
        let rule = format!(
            "+-----------+-------------------+-------+----------+{}+",
            "-".repeat(32)
        );
        let text = format!(
            "Ginger process is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n\nIPv6 BGP status\n\
{rule}\n\
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   | {:^30} |\n\
{rule}\n\
| fd00::2      | node-to-node mesh | start | 01:02:03 | {:<30} |\n\
|              |                   |       |          | {:<30} |\n\
{rule}\n\n",
            "INFO", "Active Socket: Connection", "refused"
        )
        .replace("+-----------+", "+--------------+");
        let parsed = parse_node_status(&text).unwrap();
        assert_eq!(parsed.v4, None);
        let rows = parsed.v6.unwrap();
        assert_eq!(rows[0].info, "Active Socket: Connection refused");
        assert_eq!(rows[0].peer_type, "node-to-node mesh");
        // Not wrapped, INFO must not be padded to 30.
        let unwrapped = text
            .replace("| Active Socket: Connection      |", "| Active                         |")
            .replace("|              |                   |       |          | refused                        |\n", "");
        assert!(
            parse_node_status(&unwrapped)
                .unwrap_err()
                .contains("column 4")
        );
    }

    #[test]
    fn colours_are_stripped_from_log_lines() {
        let line = "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m configuration applied \
                    \u{1b}[3mtrigger\u{1b}[0m\u{1b}[2m=\u{1b}[0mSIGHUP";
        assert_eq!(
            strip_ansi(line),
            "2026  INFO configuration applied trigger=SIGHUP"
        );
        let logs = format!("{line}\nother\n{line}\n");
        assert_eq!(log_lines(&logs, &["trigger=SIGHUP", "applied"]).len(), 2);
        assert!(log_lines(&logs, &["trigger=file"]).is_empty());
    }

    #[test]
    fn utc_clock_is_time_of_day() {
        assert_eq!(utc_clock(1_479_771_004), "23:30:04");
        assert_eq!(utc_clock(0), "00:00:00");
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(unhex("ff 00\n10").unwrap(), vec![0xff, 0, 0x10]);
        assert_eq!(hex(&[0xff, 0, 0x10]), "ff0010");
        assert!(unhex("f").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn cases_table_reads_rows_after_the_title() {
        let tsv = "case\thex\twhat\n# comment\none\tff00\tx\ntwo\t\ty\n";
        let rows = zettabgp_cases(tsv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].bytes, vec![0xff, 0]);
        assert!(rows[1].bytes.is_empty());
    }

    #[test]
    fn attribute_bytes_are_found_and_clipped() {
        // Attribute block length 1 holding a lone flags octet (a zettabgp case).
        let m = unhex("ffffffffffffffffffffffffffffffff0018020000000140").unwrap();
        assert_eq!(update_attr_bytes(&m), &[0x40]);
        // The block claims more than the message holds.
        let m = unhex("ffffffffffffffffffffffffffffffff00180200000009c0").unwrap();
        assert_eq!(update_attr_bytes(&m), &[0xc0]);
        assert_eq!(update_attr_bytes(&[0xff; 10]), &[] as &[u8]);
        let u = raw_announce("10.1.0.0/16".parse().unwrap());
        let attrs = update_attr_bytes(&u);
        assert_eq!(attrs[..2], [0x40, 1]);
        assert_eq!(u.len(), msg::HEADER_LEN + 4 + attrs.len() + 3);
    }

    #[test]
    fn mutations_are_reproducible_and_change_messages() {
        let base = raw_announce("10.1.0.0/16".parse().unwrap());
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|_| mutate(&mut rng, &base, Framing::MayBreak))
                .collect::<Vec<_>>()
        };
        let (a, b) = (run(7), run(7));
        assert_eq!(a, b);
        assert_ne!(a, run(8));
        let changed = a.iter().filter(|m| **m != base).count();
        assert!(changed > 150, "only {changed} of 200 mutants differ");
        let framed = a
            .iter()
            .filter(|m| m.len() >= 19 && u16::from_be_bytes([m[16], m[17]]) as usize == m.len())
            .count();
        assert!(
            framed > 100,
            "only {framed} of 200 mutants keep their framing"
        );
        let mut rng = Rng::new(9);
        for _ in 0..2000 {
            let m = mutate(&mut rng, &msg::keepalive(), Framing::Keep);
            assert!(m.len() >= msg::HEADER_LEN);
            assert_eq!(u16::from_be_bytes([m[16], m[17]]) as usize, m.len());
        }
    }

    #[test]
    fn corpus_messages_are_well_framed() {
        let corpus = abuse_corpus(&mut Rng::new(1));
        assert!(corpus.len() >= 10);
        for m in &corpus {
            assert_eq!(u16::from_be_bytes([m[16], m[17]]) as usize, m.len());
            assert!(m[..16].iter().all(|b| *b == 0xff));
            if m[18] == msg::msg_type::UPDATE {
                assert!(msg::Update::parse(&m[19..]).is_ok(), "{}", hex(m));
            }
        }
    }

    #[test]
    fn cpu_time_of_a_busy_thread_grows() {
        // The machine is shared: spin until 100 ms of CPU were granted, however long it takes.
        let pid = std::process::id();
        let start = cpu_time(pid).unwrap();
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        while cpu_time(pid).unwrap() - start < Duration::from_millis(100) {
            assert!(std::time::Instant::now() < give_up, "CPU time never grew");
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        assert!(x > 0);
        // Sleeping costs (almost) nothing.
        assert!(cpu_load(pid, Duration::from_millis(300)).unwrap() < 0.5);
    }

    #[test]
    fn rss_of_this_process_is_read() {
        let kib = rss_kib(std::process::id()).unwrap();
        assert!(kib > 100, "{kib}");
        let budget = MemoryBudget::new(std::process::id(), 1024).unwrap();
        assert!(budget.assert_within("self") >= kib / 2);
    }
}
