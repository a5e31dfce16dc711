//! The convergence benchmark behind `converge-bench`: how long after a CNI ADD on node A the
//! route it causes is in node B's kernel FIB (issue 4, "Convergence").
//!
//! Owns: `RouteWatch` (our own netlink listener for IPv4 route events, on a thread that
//! `setns`'d into a lab namespace, with a large receive buffer; `ip monitor` drops events under
//! bursts, and a lost event here fails the run instead of skewing it; `ginger-bench --fib`
//! counts its FIB with it too), `ConvergeLab` (two nodes
//! on one veth, node-to-node mesh, one shared IPAM state directory, a watcher in each), the two
//! cases (`Case::NewBlock`: the ADD that makes A claim a fresh block → `<block> via A` in B;
//! `Case::Borrowed`: every block is B's, so A's ADD borrows an address → `<ip>/32 via A` in
//! B), one timed `Sample` per ADD with its checks, and the statistics and table
//! (`Stats`, `render_table`). Data enters as `PodBinaries`, a directory and a sample count; it
//! leaves as `Sample`s. Must not: touch the machine's own namespace (the listener thread and
//! every plugin run inside lab namespaces), or time anything but the ADD and the route's
//! arrival (IPAM checks run after the route was seen).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::{IpNet, Ipv4Net};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::ginger::write_cluster;
use crate::link::Veth;
use crate::netns::Netns;
use crate::pods::{Pod, PodBinaries, PodNode, pod_cluster};
use crate::setns::spawn_in_netns;
use crate::testdir::TestDir;

/// `RTNLGRP_IPV4_ROUTE`: the multicast group of IPv4 route changes.
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
/// Receive buffer of `RouteWatch::start` (the kernel doubles it for its bookkeeping).
pub const WATCH_BUFFER: usize = 16 << 20;
/// How often the listener thread looks at its stop flag.
const WATCH_POLL: Duration = Duration::from_millis(50);
/// How long the lab may take to start (agents serving, sessions Established).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Node A's and node B's addresses on their shared link.
pub const NODE_A: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);
/// Node B's address.
pub const NODE_B: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 2);
const NODE_A_NAME: &str = "node-a";
const NODE_B_NAME: &str = "node-b";
/// The block size of the new-block case: two addresses, so every other ADD claims a block.
const NEW_BLOCK_SIZE: u8 = 31;
/// The most samples per case (the borrowed case's one block must stay at /20 or smaller).
pub const MAX_SAMPLES: usize = 4000;

/// Why a convergence run could not produce a figure.
#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    /// The lab harness failed (namespace, link, agent start, plugin execution, control query).
    #[error(transparent)]
    Harness(#[from] crate::Error),
    /// The netlink listener could not be set up or read.
    #[error("route listener in {ns}: {context}: {source}")]
    Netlink {
        /// The namespace it listens in.
        ns: String,
        /// What it was doing.
        context: &'static str,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The kernel dropped route events (receive buffer overrun): the timings cannot be trusted.
    #[error("route listener in {ns}: the kernel dropped route events (receive buffer overrun)")]
    EventsLost {
        /// The namespace it listens in.
        ns: String,
    },
    /// The awaited route never showed up.
    #[error("{what} not in {ns}'s FIB after {waited:?}")]
    NotObserved {
        /// The route awaited.
        what: String,
        /// The namespace.
        ns: String,
        /// How long it waited.
        waited: Duration,
    },
    /// A sample did not do what the case needs (e.g. the ADD did not claim a fresh block).
    #[error("{case} sample {sample}: {detail}")]
    Invalid {
        /// Which case.
        case: Case,
        /// Which sample (0 = the untimed warm-up).
        sample: usize,
        /// What was wrong.
        detail: String,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

type Result<T> = std::result::Result<T, ConvergeError>;

/// One IPv4 route change as the kernel announced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEvent {
    /// When our listener received it.
    pub at: Instant,
    /// `RTM_NEWROUTE` (true) or `RTM_DELROUTE`.
    pub new: bool,
    /// Destination prefix.
    pub dst: IpNet,
    /// Gateways (one, or each multipath hop's), empty for a device or blackhole route.
    pub gateways: Vec<IpAddr>,
    /// Route type (`RTN_UNICAST` 1, `RTN_BLACKHOLE` 6, …).
    pub kind: u8,
    /// Routing table.
    pub table: u32,
    /// Route protocol (`ginger-node` writes 97).
    pub protocol: u8,
}

impl RouteEvent {
    /// A blackhole route.
    pub fn is_blackhole(&self) -> bool {
        self.kind == u8::from(RouteType::BlackHole)
    }
}

/// The route events in one netlink datagram received at `at`; other messages and undecodable
/// ones are skipped.
pub fn parse_route_events(datagram: &[u8], at: Instant) -> Vec<RouteEvent> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        if len < 16 || len > rest.len() {
            break;
        }
        if kind == RTM_NEWROUTE || kind == RTM_DELROUTE {
            let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len]);
            if let Ok(NetlinkMessage {
                payload: NetlinkPayload::InnerMessage(msg),
                ..
            }) = parsed
            {
                match msg {
                    RouteNetlinkMessage::NewRoute(r) => out.extend(route_event(&r, true, at)),
                    RouteNetlinkMessage::DelRoute(r) => out.extend(route_event(&r, false, at)),
                    _ => {}
                }
            }
        }
        // Messages are 4-octet aligned inside a datagram.
        let step = (len + 3) & !3;
        rest = rest.get(step..).unwrap_or(&[]);
    }
    out
}

fn route_event(r: &RouteMessage, new: bool, at: Instant) -> Option<RouteEvent> {
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gateways = Vec::new();
    let mut table = u32::from(r.header.table);
    for attr in &r.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateways.push(IpAddr::V4(*g)),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::MultiPath(hops) => {
                for hop in hops {
                    for a in &hop.attributes {
                        if let RouteAttribute::Gateway(RouteAddress::Inet(g)) = a {
                            gateways.push(IpAddr::V4(*g));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let net = Ipv4Net::new(dst, r.header.destination_prefix_length).ok()?;
    Some(RouteEvent {
        at,
        new,
        dst: IpNet::V4(net),
        gateways,
        kind: u8::from(r.header.kind),
        table,
        protocol: u8::from(r.header.protocol),
    })
}

/// What the listener thread hands over.
enum Watched {
    Events(Vec<RouteEvent>),
    Overrun,
    Failed(io::Error),
}

/// A netlink listener for IPv4 route events inside one namespace (see the module doc). Every
/// event is kept, with the instant it was received, until the watch is dropped.
pub struct RouteWatch {
    ns: String,
    rx: mpsc::Receiver<Watched>,
    log: Vec<RouteEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RouteWatch {
    /// Subscribe to route events in `ns`; returns once the socket is subscribed.
    pub fn start(ns: &Netns) -> Result<RouteWatch> {
        RouteWatch::start_with_buffer(ns, WATCH_BUFFER)
    }

    /// `start` with a receive buffer of `buffer` bytes: a burst of route changes larger than
    /// the buffer can hold while the listener thread is not scheduled is an overrun.
    pub fn start_with_buffer(ns: &Netns, buffer: usize) -> Result<RouteWatch> {
        let name = ns.name().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) =
            mpsc::channel::<std::result::Result<(), (&'static str, io::Error)>>();
        let flag = Arc::clone(&stop);
        let thread = spawn_in_netns(ns, move || {
            let sock = match open_route_socket(buffer) {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            listen(&sock, &flag, &tx);
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(RouteWatch {
                ns: name,
                rx,
                log: Vec::new(),
                stop,
                thread: Some(thread),
            }),
            Ok(Err((context, source))) => {
                let _ = thread.join();
                Err(ConvergeError::Netlink {
                    ns: name,
                    context,
                    source,
                })
            }
            Err(_) => Err(ConvergeError::Netlink {
                ns: name,
                context: "listener thread",
                source: io::Error::other("ended before subscribing"),
            }),
        }
    }

    /// Move what the listener received into the log; an overrun or a socket error is an error.
    fn drain(&mut self) -> Result<()> {
        while let Ok(w) = self.rx.try_recv() {
            self.take(w)?;
        }
        Ok(())
    }

    fn take(&mut self, w: Watched) -> Result<()> {
        match w {
            Watched::Events(e) => {
                self.log.extend(e);
                Ok(())
            }
            Watched::Overrun => Err(ConvergeError::EventsLost {
                ns: self.ns.clone(),
            }),
            Watched::Failed(source) => Err(ConvergeError::Netlink {
                ns: self.ns.clone(),
                context: "recv",
                source,
            }),
        }
    }

    /// Every event so far, oldest first.
    pub fn events(&mut self) -> Result<&[RouteEvent]> {
        self.drain()?;
        Ok(&self.log)
    }

    /// The first event matching `want`, waiting up to `timeout` for it (`what` names it in
    /// the error).
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        want: impl Fn(&RouteEvent) -> bool,
    ) -> Result<RouteEvent> {
        let start = Instant::now();
        self.drain()?;
        let mut checked = 0;
        loop {
            if let Some(e) = self.log[checked..].iter().find(|e| want(e)) {
                return Ok(e.clone());
            }
            checked = self.log.len();
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(ConvergeError::NotObserved {
                    what: what.to_string(),
                    ns: self.ns.clone(),
                    waited: timeout,
                });
            }
            match self.rx.recv_timeout(left) {
                Ok(w) => self.take(w)?,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(ConvergeError::Netlink {
                        ns: self.ns.clone(),
                        context: "listener thread",
                        source: io::Error::other("ended"),
                    });
                }
            }
        }
    }
}

impl Drop for RouteWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open_route_socket(buffer: usize) -> std::result::Result<Socket, (&'static str, io::Error)> {
    let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| ("socket(NETLINK_ROUTE)", e))?;
    sock.bind(&SocketAddr::new(0, 0)).map_err(|e| ("bind", e))?;
    let r = socket2::SockRef::from(&sock);
    // As root, past `net.core.rmem_max` (a machine-wide sysctl we must not raise); otherwise
    // capped by it.
    if nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &buffer).is_err()
    {
        r.set_recv_buffer_size(buffer)
            .map_err(|e| ("SO_RCVBUF", e))?;
    }
    r.set_read_timeout(Some(WATCH_POLL))
        .map_err(|e| ("SO_RCVTIMEO", e))?;
    sock.add_membership(RTNLGRP_IPV4_ROUTE)
        .map_err(|e| ("join RTNLGRP_IPV4_ROUTE", e))?;
    Ok(sock)
}

/// Receive until `stop`; each datagram is stamped the moment `recv` returns.
fn listen(sock: &Socket, stop: &AtomicBool, tx: &mpsc::Sender<Watched>) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    while !stop.load(Ordering::SeqCst) {
        buf.clear();
        let got = sock.recv(&mut buf, 0);
        let at = Instant::now();
        let sent = match got {
            Ok(_) => {
                let events = parse_route_events(&buf, at);
                if events.is_empty() {
                    continue;
                }
                tx.send(Watched::Events(events))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => tx.send(Watched::Overrun),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                let _ = tx.send(Watched::Failed(e));
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// The ADD on A that claims a fresh block → `<block> via A` in B's FIB.
    NewBlock,
    /// An ADD on A that borrows from B's block → `<ip>/32 via A` in B's FIB.
    Borrowed,
}

impl Case {
    /// A short name for logs.
    pub fn label(self) -> &'static str {
        match self {
            Case::NewBlock => "new block",
            Case::Borrowed => "borrowed /32",
        }
    }
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One timed ADD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The route B learned (`<block>` or `<ip>/32`).
    pub prefix: IpNet,
    /// The pod's address.
    pub ip: IpAddr,
    /// The plugin's own run, from the fork to its exit.
    pub add: Duration,
    /// From just before the ADD to the route in A's own FIB (the blackhole of the new block;
    /// the borrowed pod's `/32 dev cali…`).
    pub local: Duration,
    /// From just before the ADD to `<prefix> via A` in B's FIB.
    pub remote: Duration,
    /// The wall clock just before the ADD (since the Unix epoch), to line samples up with the
    /// agents' and the plugin's log timestamps.
    pub wall_start: Duration,
}

/// Two nodes on one link with a mesh session, one shared IPAM store and a route watcher in
/// each. Field order is drop order: watchers, then agents and namespaces.
pub struct ConvergeLab {
    watch_a: RouteWatch,
    watch_b: RouteWatch,
    a: PodNode,
    b: PodNode,
}

impl ConvergeLab {
    /// Start both nodes with one IPPool (`cidr`, `block_size`) and wait until their session is
    /// Established both ways and both felixes have converged.
    pub fn start(
        bins: &PodBinaries,
        dir: &Path,
        cidr: &str,
        block_size: u8,
    ) -> Result<ConvergeLab> {
        let (ns_a, ns_b) = (Netns::new("conv-a")?, Netns::new("conv-b")?);
        Veth::new(&ns_a, "eth0", &ns_b, "eth0")
            .addr_a(&format!("{NODE_A}/24"))
            .addr_b(&format!("{NODE_B}/24"))
            .create()?;
        let yaml = pod_cluster(
            &[
                (NODE_A_NAME, &format!("{NODE_A}/24")),
                (NODE_B_NAME, &format!("{NODE_B}/24")),
            ],
            &[("bench", cidr, block_size)],
            true,
        );
        let cluster = write_cluster(dir, "cluster.yaml", &yaml)?;
        let shared = dir.join("shared-state");
        std::fs::create_dir_all(&shared)
            .map_err(|e| crate::Error::io(format!("creating {}", shared.display()), e))?;
        let shared = shared.display().to_string();
        let extra = ["--state-dir", shared.as_str()];
        // The watchers start before the agents so that nothing they program is missed.
        let watch_a = RouteWatch::start(&ns_a)?;
        let watch_b = RouteWatch::start(&ns_b)?;
        let a = PodNode::start(ns_a, dir, bins.clone(), &cluster, NODE_A_NAME, &extra)?;
        let b = PodNode::start(ns_b, dir, bins.clone(), &cluster, NODE_B_NAME, &extra)?;
        a.agent()?
            .wait_established(IpAddr::V4(NODE_B), SETUP_TIMEOUT)?;
        b.agent()?
            .wait_established(IpAddr::V4(NODE_A), SETUP_TIMEOUT)?;
        a.wait_converged(SETUP_TIMEOUT)?;
        b.wait_converged(SETUP_TIMEOUT)?;
        Ok(ConvergeLab {
            watch_a,
            watch_b,
            a,
            b,
        })
    }

    /// Node A.
    pub fn a(&self) -> &PodNode {
        &self.a
    }

    /// Node B.
    pub fn b(&self) -> &PodNode {
        &self.b
    }

    /// Both agents' logs, for a failed run.
    pub fn logs(&self) -> String {
        format!(
            "--- node-a ---\n{}\n--- node-b ---\n{}",
            self.a.logs(),
            self.b.logs()
        )
    }
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Timed ADDs per case.
    pub samples: usize,
    /// How long a route may take to appear before the run fails.
    pub route_timeout: Duration,
    /// `ginger-node` and `ginger`.
    pub binaries: PodBinaries,
}

/// Smallest `bits` with `2^bits >= n`.
fn bits_for(n: usize) -> u8 {
    let mut bits = 0u8;
    while (1usize << bits) < n {
        bits += 1;
    }
    bits
}

/// The pool of the new-block case: `/31` blocks, one per sample plus the warm-up.
pub fn new_block_pool(samples: usize) -> (String, u8) {
    let len = 32 - bits_for(2 * (samples + 1)).max(2);
    (format!("10.200.0.0/{len}"), NEW_BLOCK_SIZE)
}

/// The pool of the borrowed case: exactly one block, big enough for B's pod, the warm-up and
/// every sample.
pub fn borrowed_pool(samples: usize) -> (String, u8) {
    let len = 32 - bits_for(samples + 2).max(2);
    (format!("10.201.0.0/{len}"), len)
}

/// Run `case` in a fresh lab under `dir` with `opts.samples` timed ADDs (after one untimed
/// warm-up); `progress` is told of each sample (0 = the warm-up) as it completes, and
/// `stop` is asked between samples.
pub fn run_case(
    case: Case,
    dir: &Path,
    opts: &RunOptions,
    progress: &mut dyn FnMut(usize, &Sample),
    stop: &dyn Fn() -> bool,
) -> Result<Vec<Sample>> {
    let (cidr, block_size) = match case {
        Case::NewBlock => new_block_pool(opts.samples),
        Case::Borrowed => borrowed_pool(opts.samples),
    };
    let mut lab = ConvergeLab::start(&opts.binaries, dir, &cidr, block_size)?;
    let out = run_samples(case, &mut lab, block_size, opts, progress, stop);
    if out.is_err() {
        let _ = std::fs::write(dir.join("agents.log"), lab.logs());
    }
    out
}

fn run_samples(
    case: Case,
    lab: &mut ConvergeLab,
    block_size: u8,
    opts: &RunOptions,
    progress: &mut dyn FnMut(usize, &Sample),
    stop: &dyn Fn() -> bool,
) -> Result<Vec<Sample>> {
    // Sandboxes exist before any clock runs: a timed ADD and, for a new block, the untimed
    // ADD that fills the block's second address.
    let per_sample = if case == Case::NewBlock { 2 } else { 1 };
    let mut pods = (0..=opts.samples)
        .flat_map(|i| (0..per_sample).map(move |j| (i, j)))
        .map(|(i, j)| Pod::create("bench", &format!("conv-{i}-{j}")))
        .collect::<std::result::Result<Vec<_>, _>>()?
        .into_iter();
    let (_owner_pod, owner_block) = match case {
        Case::NewBlock => (None, None),
        Case::Borrowed => {
            let (pod, block) = claim_every_block(lab)?;
            (Some(pod), Some(block))
        }
    };
    let mut known: BTreeSet<IpNet> = BTreeSet::new();
    let mut samples = Vec::with_capacity(opts.samples);
    for i in 0..=opts.samples {
        if stop() {
            return Err(ConvergeError::Interrupted);
        }
        let mut pod = pods.next().expect("a sandbox per ADD");
        let sample = timed_add(case, lab, &mut pod, block_size, opts.route_timeout, i)?;
        let fail = |detail: String| ConvergeError::Invalid {
            case,
            sample: i,
            detail,
        };
        // The route came from BGP: B's best path for it is A's announcement.
        let a_addr = IpAddr::V4(NODE_A);
        lab.b()
            .agent()?
            .wait_route(sample.prefix, opts.route_timeout, &|r| {
                r.paths.iter().any(|p| p.best && p.next_hop == Some(a_addr))
            })?;
        match (case, owner_block) {
            (Case::NewBlock, _) => {
                let blocks = ipam_blocks(lab.a())?;
                let block = blocks
                    .iter()
                    .find(|b| b.cidr.contains(&sample.ip))
                    .ok_or_else(|| fail(format!("{} is in no block", sample.ip)))?;
                if block.cidr != sample.prefix
                    || block.affinity.as_deref() != Some(NODE_A_NAME)
                    || block.in_use != 1
                    || known.contains(&block.cidr)
                {
                    return Err(fail(format!(
                        "the ADD did not claim a fresh block for node-a: {block:?}"
                    )));
                }
                known.insert(block.cidr);
                // Fill the block's second address, so that the next ADD claims a new block.
                let mut filler = pods.next().expect("a filler sandbox");
                lab.a().add(&mut filler)?.result()?;
                let ip = filler.addresses().first().copied();
                if !ip.is_some_and(|ip| block.cidr.contains(&ip)) {
                    return Err(fail(format!(
                        "the filler ADD got {ip:?}, not the second address of {}",
                        block.cidr
                    )));
                }
            }
            (Case::Borrowed, Some(owner)) => {
                let lookup = lab.a().ipam_ip(sample.ip)?;
                let alloc = lookup
                    .allocation
                    .ok_or_else(|| fail(format!("{} is not allocated", sample.ip)))?;
                if alloc.block != owner
                    || alloc.attributes.get("node").map(String::as_str) != Some(NODE_A_NAME)
                {
                    return Err(fail(format!(
                        "{} is not node-a's address borrowed from node-b's block {owner}: {alloc:?}",
                        sample.ip
                    )));
                }
            }
            (Case::Borrowed, None) => unreachable!("the borrowed case has an owner block"),
        }
        progress(i, &sample);
        if i > 0 {
            samples.push(sample);
        }
    }
    Ok(samples)
}

/// B ADDs one pod and so claims the pool's only block; returns the pod (kept for the lab's
/// lifetime, so its allocation keeps the block B's) and the block.
fn claim_every_block(lab: &ConvergeLab) -> Result<(Pod, IpNet)> {
    let mut pod = Pod::create("bench", "owner")?;
    lab.b().add(&mut pod)?.result()?;
    let blocks = ipam_blocks(lab.b())?;
    match blocks.as_slice() {
        [only] if only.affinity.as_deref() == Some(NODE_B_NAME) => Ok((pod, only.cidr)),
        other => Err(ConvergeError::Invalid {
            case: Case::Borrowed,
            sample: 0,
            detail: format!("node-b should own the pool's only block: {other:?}"),
        }),
    }
}

fn ipam_blocks(node: &PodNode) -> Result<Vec<agent::ctl::protocol::BlockUsage>> {
    Ok(node
        .ipam()?
        .pools
        .into_iter()
        .flat_map(|p| p.blocks)
        .collect())
}

/// One timed ADD on A and the routes it causes in A and B.
fn timed_add(
    case: Case,
    lab: &mut ConvergeLab,
    pod: &mut Pod,
    block_size: u8,
    timeout: Duration,
    index: usize,
) -> Result<Sample> {
    let invalid = |detail: String| ConvergeError::Invalid {
        case,
        sample: index,
        detail,
    };
    let wall_start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let start = Instant::now();
    let out = lab.a.add(pod)?;
    out.result()?;
    let ip = match pod.addresses().as_slice() {
        [ip @ IpAddr::V4(_)] => *ip,
        other => return Err(invalid(format!("the ADD returned {other:?}"))),
    };
    let prefix = match case {
        Case::NewBlock => IpNet::new(ip, block_size)
            .map_err(|e| invalid(e.to_string()))?
            .trunc(),
        Case::Borrowed => IpNet::from(ip),
    };
    let gateway = IpAddr::V4(NODE_A);
    let remote = lab
        .watch_b
        .wait_for(timeout, &format!("{prefix} via {NODE_A}"), |e| {
            e.new && e.dst == prefix && e.gateways == [gateway]
        })?;
    let local =
        lab.watch_a
            .wait_for(timeout, &format!("node-a's own route for {prefix}"), |e| {
                e.new
                    && e.dst == prefix
                    && match case {
                        Case::NewBlock => e.is_blackhole(),
                        Case::Borrowed => e.gateways.is_empty() && !e.is_blackhole(),
                    }
            })?;
    // A fresh prefix: B had no route for it before this ADD.
    if let Some(old) = lab
        .watch_b
        .events()?
        .iter()
        .find(|e| e.dst == prefix && e.at < start)
    {
        return Err(invalid(format!(
            "node-b had a route for {prefix} before the ADD: {old:?}"
        )));
    }
    Ok(Sample {
        prefix,
        ip,
        add: out.elapsed,
        local: local.at.saturating_duration_since(start),
        remote: remote.at.saturating_duration_since(start),
        wall_start,
    })
}

/// p50, p99 (nearest rank) and max of a sample set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stats {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

impl Stats {
    /// Nearest-rank percentiles of `samples`.
    pub fn of(samples: impl IntoIterator<Item = Duration>) -> Stats {
        let mut sorted: Vec<Duration> = samples.into_iter().collect();
        sorted.sort();
        let rank = |p: f64| -> Duration {
            if sorted.is_empty() {
                return Duration::ZERO;
            }
            let r = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[r.clamp(1, sorted.len()) - 1]
        };
        Stats {
            p50: rank(50.0),
            p99: rank(99.0),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }
}

/// The p99 target of issue 4.
pub const TARGET_P99: Duration = Duration::from_millis(100);

/// `12.34 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The Markdown table: per case, the time to B's FIB (p50/p99/max, against the target), the
/// time to A's own FIB and the ADD's own run.
pub fn render_table(results: &[(Case, Vec<Sample>)]) -> String {
    let mut out = String::from(
        "| ADD on A → route in B's FIB | p50 | p99 | max | p99 ≤ 100 ms | A's own FIB p50 / p99 | \
         ADD p50 / p99 | samples |\n|---|---:|---:|---:|---|---:|---:|---:|\n",
    );
    for (case, samples) in results {
        let remote = Stats::of(samples.iter().map(|s| s.remote));
        let local = Stats::of(samples.iter().map(|s| s.local));
        let add = Stats::of(samples.iter().map(|s| s.add));
        let what = match case {
            Case::NewBlock => "new block: `<block>/31 via A`",
            Case::Borrowed => "borrowed: `<ip>/32 via A`",
        };
        let verdict = if remote.p99 <= TARGET_P99 {
            "met"
        } else {
            "**MISSED**"
        };
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {} | {verdict} | {} / {} | {} / {} | {} |",
            ms(remote.p50),
            ms(remote.p99),
            ms(remote.max),
            ms(local.p50),
            ms(local.p99),
            ms(add.p50),
            ms(add.p99),
            samples.len()
        );
    }
    out
}

/// Where a run keeps its files: `work/<case>`.
pub fn case_dir(work: &TestDir, case: Case) -> crate::Result<PathBuf> {
    work.subdir(match case {
        Case::NewBlock => "new-block",
        Case::Borrowed => "borrowed",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::NetlinkHeader;
    use rtnetlink::packet_route::AddressFamily;
    use rtnetlink::packet_route::route::{RouteHeader, RouteProtocol};

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn datagram(messages: &[RouteNetlinkMessage]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            let mut msg = NetlinkMessage::new(NetlinkHeader::default(), m.clone().into());
            msg.finalize();
            let mut buf = vec![0u8; msg.buffer_len()];
            msg.serialize(&mut buf);
            out.extend_from_slice(&buf);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        out
    }

    fn route(dst: Ipv4Addr, len: u8, gw: Option<Ipv4Addr>, kind: RouteType) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.destination_prefix_length = len;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.header.protocol = RouteProtocol::Other(97);
        r.header.kind = kind;
        r.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        if let Some(g) = gw {
            r.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(g)));
        }
        r
    }

    #[test]
    fn route_events_are_decoded_from_one_datagram() {
        let at = Instant::now();
        let bytes = datagram(&[
            RouteNetlinkMessage::NewRoute(route(
                Ipv4Addr::new(10, 200, 0, 2),
                31,
                Some(NODE_A),
                RouteType::Unicast,
            )),
            RouteNetlinkMessage::DelRoute(route(
                Ipv4Addr::new(10, 200, 0, 4),
                31,
                None,
                RouteType::BlackHole,
            )),
        ]);
        let events = parse_route_events(&bytes, at);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[0].new);
        assert_eq!(events[0].dst, "10.200.0.2/31".parse::<IpNet>().unwrap());
        assert_eq!(events[0].gateways, [IpAddr::V4(NODE_A)]);
        assert_eq!((events[0].table, events[0].protocol), (254, 97));
        assert!(!events[0].is_blackhole());
        assert!(!events[1].new);
        assert!(events[1].is_blackhole());
        assert!(events[1].gateways.is_empty());
        // A truncated datagram yields what is whole and never panics.
        assert_eq!(parse_route_events(&bytes[..bytes.len() - 3], at).len(), 1);
        assert!(parse_route_events(&bytes[..10], at).is_empty());
        assert!(parse_route_events(&[0xff; 40], at).is_empty());
    }

    #[test]
    fn stats_are_nearest_rank_with_max() {
        let samples: Vec<Duration> = (1..=60).rev().map(d).collect();
        assert_eq!(
            Stats::of(samples),
            Stats {
                p50: d(30),
                p99: d(60),
                max: d(60)
            }
        );
        let hundred: Vec<Duration> = (1..=100).map(d).collect();
        assert_eq!(Stats::of(hundred).p99, d(99));
        assert_eq!(Stats::of([]), Stats::default());
    }

    #[test]
    fn pools_fit_the_samples() {
        // 60 samples + warm-up need 61 /31 blocks: a /25 has 64.
        assert_eq!(new_block_pool(60), ("10.200.0.0/25".into(), 31));
        assert_eq!(new_block_pool(63), ("10.200.0.0/25".into(), 31));
        assert_eq!(new_block_pool(64), ("10.200.0.0/24".into(), 31));
        // B's pod + warm-up + 60 samples = 62 addresses in one /26 block.
        assert_eq!(borrowed_pool(60), ("10.201.0.0/26".into(), 26));
        assert_eq!(borrowed_pool(1), ("10.201.0.0/30".into(), 30));
        assert!(borrowed_pool(MAX_SAMPLES).1 >= 20);
    }

    #[test]
    fn table_judges_the_p99() {
        let s = |remote: u64| Sample {
            prefix: "10.200.0.0/31".parse().unwrap(),
            ip: "10.200.0.0".parse().unwrap(),
            add: d(5),
            local: d(6),
            remote: d(remote),
            wall_start: Duration::ZERO,
        };
        let t = render_table(&[
            (Case::NewBlock, vec![s(10), s(20)]),
            (Case::Borrowed, vec![s(150)]),
        ]);
        assert!(
            t.contains("| new block: `<block>/31 via A` | 10.00 ms | 20.00 ms | 20.00 ms | met | 6.00 ms / 6.00 ms | 5.00 ms / 5.00 ms | 2 |"),
            "{t}"
        );
        assert!(t.contains("| 150.00 ms | **MISSED** |"), "{t}");
    }
}
