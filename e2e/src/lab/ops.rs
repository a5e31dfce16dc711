//! `up`, `status` and `down`: the lab's three verbs.
//!
//! Owns: the order of the steps and the waits between them. `up` refuses to start over a lab
//! that is there (same options: it checks everything is in place and says so; other options
//! or a half-built lab: `down` first), records each namespace, process and pod in the journal
//! before (or, for a pid, as soon as) it exists, and leaves everything in place when a step
//! fails, marked failed, for `down` and for the logs. `status` reads without the lock, so it
//! works from another shell at any time. `down` stops the recorded processes, deletes the
//! recorded namespaces (killing whatever still runs inside), removes the lab directory, and
//! checks that nothing is left. Must not: create anything outside the lab's namespaces and
//! directory.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use agent::ctl::{Reply, Request};
use bgp::status::SessionState;
use ipnet::IpNet;

use super::cni::{self, PodAttachment};
use super::error::{LabError, LabResult};
use super::host;
use super::journal::{Journal, LabDir, Phase, PodRecord, ProcRecord};
use super::plan::{LabOptions, POD_NAMESPACE, Plan, TorKind, TorPlan};
use super::probe::{self, Matrix, PodTarget};
use super::report::{self, LabView, NodeView, TorView};
use super::tor;

/// Default lab directory.
pub const DEFAULT_DIR: &str = "/run/ginger-lab";
/// Default namespace name prefix.
pub const DEFAULT_PREFIX: &str = "ginger-lab";
/// The bridge in each segment namespace.
const BRIDGE: &str = "br0";
/// Each host's interface on its rack segment.
const UPLINK: &str = "eth0";
/// How long a daemon may take to answer its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long every BGP session may take to come up.
const SESSIONS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the ToRs may take to hold every block.
const TOR_ROUTES_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `up` waits for every pod to reach every other before showing the status anyway.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);
/// SIGTERM to SIGKILL when `down` stops a process.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Where a lab lives and what it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabConfig {
    /// The lab directory (journal, configs, logs, sockets, IPAM state).
    pub dir: PathBuf,
    /// Prefix of every namespace name.
    pub prefix: String,
    /// Where `ginger-node`, `gingerctl` and the `ginger` plugin are.
    pub bin_dir: PathBuf,
}

impl LabConfig {
    fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// `CNI_PATH`: our plugin first, then Debian's (`portmap`).
    fn cni_path(&self) -> Vec<PathBuf> {
        vec![self.bin_dir.clone(), PathBuf::from(cni::DEBIAN_CNI_DIR)]
    }
}

/// What `up` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpOutcome {
    /// It built the lab.
    Built,
    /// The same lab was already up and whole; nothing was touched.
    AlreadyUp,
}

/// Build the lab `options` describe, printing progress to `out`.
pub fn up(cfg: &LabConfig, options: &LabOptions, out: &mut dyn Write) -> LabResult<UpOutcome> {
    let plan = Plan::new(&cfg.prefix, options)?;
    check_root()?;
    check_tools(cfg, &plan)?;
    let dir = LabDir::create(&cfg.dir)?;
    if let Some(j) = dir.load()? {
        return already_there(&dir, &j, cfg, options, out);
    }
    if let Some(taken) = plan
        .namespaces()
        .into_iter()
        .find(|n| host::netns_exists(n))
    {
        return Err(LabError::Occupied(format!(
            "namespace {taken} already exists but no lab in {} made it; \
             choose another --prefix (or --dir, if a lab with this prefix lives elsewhere)",
            cfg.dir.display()
        )));
    }
    let mut j = Journal::new(&cfg.prefix, options);
    dir.save(&j)?;
    say(
        out,
        &format!("ginger-lab: building {}", report::headline(&plan)),
    );
    say(
        out,
        &format!(
            "lab directory {} (configs, logs, sockets)",
            cfg.dir.display()
        ),
    );
    say(out, &report::hosts(&plan));
    say(out, "BGP sessions to come up:");
    say(out, &report::peerings(&plan, None));
    match build(cfg, &dir, &plan, &mut j, out) {
        Ok(()) => {
            j.phase = Phase::Up;
            dir.save(&j)?;
            Ok(UpOutcome::Built)
        }
        Err(e) => {
            j.phase = Phase::Failed(e.to_string());
            // The journal is what `down` needs; if even this fails, say both.
            if let Err(save) = dir.save(&j) {
                return Err(LabError::NotConverged(format!(
                    "{e}; and recording the failure failed too: {save}"
                )));
            }
            Err(e)
        }
    }
}

fn already_there(
    dir: &LabDir,
    j: &Journal,
    cfg: &LabConfig,
    options: &LabOptions,
    out: &mut dyn Write,
) -> LabResult<UpOutcome> {
    let down = "run `ginger-lab down` first";
    if j.prefix != cfg.prefix {
        return Err(LabError::Occupied(format!(
            "a lab with prefix {:?} lives in {}; {down}",
            j.prefix,
            dir.path().display()
        )));
    }
    match &j.phase {
        Phase::Up if j.options == *options => {
            let missing = missing_parts(j);
            if missing.is_empty() {
                say(
                    out,
                    &format!(
                        "ginger-lab: the lab in {} is already up with these options ({}); \
                         everything is in place, nothing to do",
                        dir.path().display(),
                        options.flags()
                    ),
                );
                Ok(UpOutcome::AlreadyUp)
            } else {
                Err(LabError::Occupied(format!(
                    "the lab in {} is up with these options but damaged ({}); \
                     run `ginger-lab down` and `ginger-lab up` again",
                    dir.path().display(),
                    missing.join("; ")
                )))
            }
        }
        Phase::Up => Err(LabError::Occupied(format!(
            "a lab with other options ({}) is up in {}; {down}",
            j.options.flags(),
            dir.path().display()
        ))),
        Phase::Building => Err(LabError::Occupied(format!(
            "an earlier `up` in {} did not finish (interrupted, or still running); {down}",
            dir.path().display()
        ))),
        Phase::Failed(e) => Err(LabError::Occupied(format!(
            "an earlier `up` in {} failed ({e}); {down}",
            dir.path().display()
        ))),
    }
}

/// What of a finished lab is gone: namespaces, processes, pod addresses.
fn missing_parts(j: &Journal) -> Vec<String> {
    let mut missing: Vec<String> = j
        .namespaces
        .iter()
        .filter(|n| !host::netns_exists(n))
        .map(|n| format!("namespace {n} is gone"))
        .collect();
    missing.extend(
        j.processes
            .iter()
            .filter(|p| !host::is_running(p))
            .map(|p| format!("{} (pid {}) is not running", p.label, p.pid)),
    );
    missing.extend(
        j.pods
            .iter()
            .filter(|p| p.ip.is_none())
            .map(|p| format!("pod {} has no address", p.name)),
    );
    missing
}

fn build(
    cfg: &LabConfig,
    dir: &LabDir,
    plan: &Plan,
    j: &mut Journal,
    out: &mut dyn Write,
) -> LabResult<()> {
    let started = Instant::now();
    // Wires first: segments, ToRs, nodes (no process runs before its links exist).
    for rack in &plan.racks {
        new_netns(dir, j, &rack.switch_netns)?;
        host::add_bridge(&rack.switch_netns, BRIDGE)?;
    }
    for t in &plan.tors {
        new_netns(dir, j, &t.netns)?;
        // The ToR routes between its rack and the other racks.
        host::sysctl(&t.netns, "net.ipv4.ip_forward", "1")?;
        let rack = &plan.racks[t.rack];
        let addr = format!("{}/{}", t.addr, rack.subnet.prefix_len());
        host::add_veth(
            (&rack.switch_netns, &t.name, None, Some(BRIDGE)),
            (&t.netns, UPLINK, Some(&addr)),
        )?;
    }
    for l in &plan.tor_links {
        let (a, b) = (&plan.tors[l.a], &plan.tors[l.b]);
        let a_addr = format!("{}/{}", l.a_addr, super::plan::TOR_LINK_PREFIX_LEN);
        let b_addr = format!("{}/{}", l.b_addr, super::plan::TOR_LINK_PREFIX_LEN);
        host::add_veth(
            (&a.netns, &l.a_if, Some(&a_addr), None),
            (&b.netns, &l.b_if, Some(&b_addr)),
        )?;
    }
    for n in &plan.nodes {
        new_netns(dir, j, &n.netns)?;
        let rack = &plan.racks[n.rack];
        let addr = format!("{}/{}", n.addr, rack.subnet.prefix_len());
        host::add_veth(
            (&rack.switch_netns, &n.name, None, Some(BRIDGE)),
            (&n.netns, UPLINK, Some(&addr)),
        )?;
        // Proxy ARP answers the pods' gateway 169.254.1.1 only when the node has a route to it
        // (any real node's default route). This one has no gateway: it forwards nothing, so
        // every path from a pod to another node's pod is a route BGP put there.
        host::ip(&n.netns, &["route", "add", "default", "dev", UPLINK])?;
    }
    say(
        out,
        &format!(
            "wired {} namespaces: {} segment{}, {} ToR link{} ({:.1} s)",
            j.namespaces.len(),
            plan.racks.len(),
            if plan.racks.len() == 1 { "" } else { "s" },
            plan.tor_links.len(),
            if plan.tor_links.len() == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        ),
    );

    for t in &plan.tors {
        start_tor(dir, j, plan, t)?;
        say(
            out,
            &format!(
                "{}: {} up, AS {} (config in {})",
                t.name,
                t.kind.title(),
                t.asn,
                dir.tor_dir(&t.name).display()
            ),
        );
    }

    let cluster = dir.cluster_path();
    fs::write(&cluster, plan.cluster_yaml())
        .map_err(|e| LabError::io(format!("writing {}", cluster.display()), e))?;
    for n in &plan.nodes {
        let run_dir = dir.node_run_dir(&n.name);
        fs::create_dir_all(&run_dir)
            .map_err(|e| LabError::io(format!("creating {}", run_dir.display()), e))?;
        let argv = vec![
            cfg.bin("ginger-node").display().to_string(),
            "--config".into(),
            cluster.display().to_string(),
            "--node-name".into(),
            n.name.clone(),
            "--run-dir".into(),
            run_dir.display().to_string(),
            "--state-dir".into(),
            dir.state_dir().display().to_string(),
        ];
        let log = dir.node_dir(&n.name).join("ginger-node.log");
        let rec = host::spawn_detached(
            &n.netns,
            &node_label(&n.name),
            &argv,
            &[(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info".into()),
            )],
            &log,
        )?;
        record_process(dir, j, rec)?;
    }
    for n in &plan.nodes {
        let rec = j
            .process(&node_label(&n.name))
            .cloned()
            .expect("recorded above");
        let run_dir = dir.node_run_dir(&n.name);
        wait_started(&rec, &format!("ginger-node on {}", n.name), || {
            probe::ctl(&run_dir, Request::NodeStatus).map(|_| ())
        })?;
    }
    say(
        out,
        &format!(
            "ginger-node running on {} node{} (logs in {}/nodes/<node>/)",
            plan.nodes.len(),
            if plan.nodes.len() == 1 { "" } else { "s" },
            dir.path().display()
        ),
    );

    let t0 = Instant::now();
    wait_sessions(dir, plan)?;
    say(
        out,
        &format!(
            "BGP: every node session is Established ({:.1} s)",
            t0.elapsed().as_secs_f64()
        ),
    );

    let salt = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    for p in &plan.pods {
        let node = &plan.nodes[p.node];
        let container_id = cni::container_id(&plan.prefix, &p.name, salt);
        j.pods.push(PodRecord {
            name: p.name.clone(),
            node: node.name.clone(),
            netns: p.netns.clone(),
            container_id: container_id.clone(),
            ip: None,
        });
        new_netns(dir, j, &p.netns)?;
        let list = cni::node_conflist(
            &dir.node_run_dir(&node.name),
            &dir.node_dir(&node.name).join("cni.log"),
        )?;
        let conflist = dir.node_dir(&node.name).join("10-ginger.conflist");
        fs::write(&conflist, format!("{list:#}\n"))
            .map_err(|e| LabError::io(format!("writing {}", conflist.display()), e))?;
        let attachment = PodAttachment {
            namespace: POD_NAMESPACE.into(),
            name: p.name.clone(),
            container_id,
            netns: host::netns_path(&p.netns),
        };
        let (_, ip) =
            cni::add(&node.netns, &list, &cfg.cni_path(), &attachment).map_err(|detail| {
                LabError::Cni {
                    pod: p.name.clone(),
                    node: node.name.clone(),
                    detail,
                }
            })?;
        if let Some(rec) = j.pods.iter_mut().find(|r| r.name == p.name) {
            rec.ip = Some(ip);
        }
        dir.save(j)?;
        say(
            out,
            &format!(
                "pod {} on {}: {ip} (CNI ADD through the ginger plugin)",
                p.name, node.name
            ),
        );
    }

    if !plan.pods.is_empty() {
        let t0 = Instant::now();
        match wait_tors_hold_blocks(dir, plan) {
            Ok(n) => say(
                out,
                &format!(
                    "every ToR holds all {n} pod block{} in its FIB ({:.1} s)",
                    if n == 1 { "" } else { "s" },
                    t0.elapsed().as_secs_f64()
                ),
            ),
            // Built as asked: the status below shows what is missing.
            Err(e) => say(out, &format!("warning: {e}")),
        }
        let t0 = Instant::now();
        let m = wait_reachability(j);
        if m.all_reach() {
            say(
                out,
                &format!(
                    "every pod reaches every other ({:.1} s)",
                    t0.elapsed().as_secs_f64()
                ),
            );
        } else {
            say(
                out,
                &format!(
                    "after {:.0} s not every pod reaches every other: the status shows which",
                    REACH_TIMEOUT.as_secs_f64()
                ),
            );
        }
    }
    say(
        out,
        &format!("built in {:.1} s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

/// Record namespace `name` in the journal, then create it.
fn new_netns(dir: &LabDir, j: &mut Journal, name: &str) -> LabResult<()> {
    j.namespaces.push(name.to_string());
    dir.save(j)?;
    host::add_netns(name)
}

fn record_process(dir: &LabDir, j: &mut Journal, rec: ProcRecord) -> LabResult<()> {
    j.processes.push(rec);
    dir.save(j)
}

fn node_label(node: &str) -> String {
    format!("ginger-node-{node}")
}

/// Write a ToR's configuration, start its daemons and wait until they answer.
fn start_tor(dir: &LabDir, j: &mut Journal, plan: &Plan, t: &TorPlan) -> LabResult<()> {
    let tdir = dir.tor_dir(&t.name);
    fs::create_dir_all(&tdir)
        .map_err(|e| LabError::io(format!("creating {}", tdir.display()), e))?;
    let write = |name: &str, text: String| {
        let p = tdir.join(name);
        fs::write(&p, text).map_err(|e| LabError::io(format!("writing {}", p.display()), e))
    };
    match t.kind {
        TorKind::Bird => write("bird.conf", tor::bird_conf(plan, t))?,
        TorKind::Frr => {
            write("bgpd.conf", tor::frr_bgpd_conf(plan, t))?;
            write("zebra.conf", tor::frr_zebra_conf(t))?;
            // zebra runs as user frr and creates its socket and pid file here.
            fs::set_permissions(&tdir, fs::Permissions::from_mode(0o777))
                .map_err(|e| LabError::io(format!("chmod {}", tdir.display()), e))?;
        }
    }
    for (label, argv) in tor::daemon_commands(t, &tdir) {
        let log = tdir.join(format!("{label}.log"));
        let rec = host::spawn_detached(&t.netns, &label, &argv, &[], &log)?;
        record_process(dir, j, rec.clone())?;
        let what = format!("{label} on {}", t.name);
        if label.starts_with("zebra") {
            let zserv = tdir.join("zserv.api");
            wait_started(&rec, &what, || {
                if zserv.exists() {
                    Ok(())
                } else {
                    Err("no zserv socket yet".into())
                }
            })?;
        } else {
            let summary = tor::summary_command(t, &tdir);
            wait_started(&rec, &what, || {
                let (prog, args) = summary.split_first().expect("a command");
                crate::cmd::run(std::process::Command::new(prog).args(args))
                    .map(|_| ())
                    .map_err(|e| e.chain())
            })?;
        }
    }
    Ok(())
}

/// Poll `ready` until it succeeds; fail at once with the log if the process exits.
fn wait_started(
    rec: &ProcRecord,
    what: &str,
    mut ready: impl FnMut() -> Result<(), String>,
) -> LabResult<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if !host::is_running(rec) {
            return Err(LabError::Exited {
                label: what.to_string(),
                status: "not running".into(),
                log: rec.log.clone(),
                tail: host::log_tail(&rec.log, 15),
            });
        }
        let last = match ready() {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(LabError::NotConverged(format!(
                "{what} did not answer within {START_TIMEOUT:?} ({last}); its log is {}",
                rec.log.display()
            )));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until every node sees every planned session Established.
fn wait_sessions(dir: &LabDir, plan: &Plan) -> LabResult<()> {
    let deadline = Instant::now() + SESSIONS_TIMEOUT;
    loop {
        let mut waiting = Vec::new();
        for s in plan.sessions() {
            let Some(node) = plan.nodes.iter().find(|n| n.name == s.a) else {
                // ToR-to-ToR: the ToRs' summaries show it; the blocks check proves it.
                continue;
            };
            let state = match probe::ctl(&dir.node_run_dir(&node.name), Request::NodeStatus) {
                Ok(Reply::NodeStatus(peers)) => peers
                    .iter()
                    .find(|p| p.address == IpAddr::V4(s.b_addr))
                    .map(|p| {
                        let err = p
                            .last_error
                            .as_ref()
                            .map(|e| format!(", last error: {e}"))
                            .unwrap_or_default();
                        (p.state, format!("{}{err}", p.state.name()))
                    })
                    .unwrap_or((SessionState::Idle, "not configured".into())),
                Ok(other) => (SessionState::Idle, format!("unexpected reply {other:?}")),
                Err(e) => (SessionState::Idle, e),
            };
            if state.0 != SessionState::Established {
                waiting.push(format!("{} -> {} {} ({})", s.a, s.b, s.b_addr, state.1));
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::NotConverged(format!(
                "BGP sessions not Established after {SESSIONS_TIMEOUT:?}: {}",
                waiting.join("; ")
            )));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// The blocks IPAM gave out, from any node that answers.
fn ipam_blocks(dir: &LabDir, plan: &Plan) -> Option<Vec<IpNet>> {
    plan.nodes.iter().find_map(|n| {
        match probe::ctl(&dir.node_run_dir(&n.name), Request::IpamShow) {
            Ok(Reply::Ipam(r)) => Some(
                r.pools
                    .iter()
                    .flat_map(|p| &p.blocks)
                    .filter(|b| b.in_use > 0)
                    .map(|b| b.cidr)
                    .collect(),
            ),
            _ => None,
        }
    })
}

/// Wait until every ToR's FIB has a route for every block in use; returns how many blocks.
fn wait_tors_hold_blocks(dir: &LabDir, plan: &Plan) -> LabResult<usize> {
    let deadline = Instant::now() + TOR_ROUTES_TIMEOUT;
    loop {
        let blocks = ipam_blocks(dir, plan).unwrap_or_default();
        let mut missing = Vec::new();
        for t in &plan.tors {
            let fib = probe::fib_routes(&t.netns).unwrap_or_default();
            for b in &blocks {
                if !fib.iter().any(|r| r.dst == *b) {
                    missing.push(format!("{} has no route to {b}", t.name));
                }
            }
        }
        if !blocks.is_empty() && missing.is_empty() {
            return Ok(blocks.len());
        }
        if Instant::now() > deadline {
            return Err(LabError::NotConverged(format!(
                "after {TOR_ROUTES_TIMEOUT:?}: {}",
                if blocks.is_empty() {
                    "no node reported its IPAM blocks".to_string()
                } else {
                    missing.join("; ")
                }
            )));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn pod_targets(j: &Journal) -> Vec<PodTarget> {
    j.pods
        .iter()
        .filter(|p| host::netns_exists(&p.netns))
        .map(|p| PodTarget {
            name: p.name.clone(),
            node: p.node.clone(),
            netns: p.netns.clone(),
            ip: p.ip,
        })
        .collect()
}

/// Ping until every pod reaches every other, or `REACH_TIMEOUT`; the last matrix.
fn wait_reachability(j: &Journal) -> Matrix {
    let pods = pod_targets(j);
    let deadline = Instant::now() + REACH_TIMEOUT;
    loop {
        let m = probe::ping_matrix(&pods);
        if m.all_reach() || Instant::now() > deadline {
            return m;
        }
        thread::sleep(Duration::from_millis(300));
    }
}

/// The lab's status as text, and whether every pod reaches every other.
pub fn status(cfg: &LabConfig) -> LabResult<(String, bool)> {
    let dir = LabDir::open_to_read(&cfg.dir).ok_or_else(|| LabError::NoLab(cfg.dir.clone()))?;
    let j = dir
        .load()?
        .ok_or_else(|| LabError::NoLab(cfg.dir.clone()))?;
    let plan = Plan::new(&j.prefix, &j.options)?;
    let gingerctl = cfg.bin("gingerctl");
    let mut nodes = Vec::new();
    for n in &plan.nodes {
        let run_dir = dir.node_run_dir(&n.name);
        let running = j
            .process(&node_label(&n.name))
            .is_some_and(host::is_running);
        let status_text = match probe::gingerctl(&gingerctl, &run_dir, &["node", "status"]) {
            Ok((_, stdout, stderr)) => format!("{stdout}{stderr}"),
            Err(e) => e.to_string(),
        };
        let peers = match probe::ctl(&run_dir, Request::NodeStatus) {
            Ok(Reply::NodeStatus(p)) => Some(p),
            _ => None,
        };
        let remote_routes = host::netns_exists(&n.netns)
            .then(|| probe::fib_routes(&n.netns).ok())
            .flatten()
            .map(|r| r.into_iter().filter(|r| !r.via.is_empty()).collect());
        nodes.push(NodeView {
            name: n.name.clone(),
            running,
            status_text,
            peers,
            remote_routes,
        });
    }
    let mut tors = Vec::new();
    for t in &plan.tors {
        let tdir = dir.tor_dir(&t.name);
        let labels: Vec<String> = tor::daemon_commands(t, &tdir)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        let running = labels
            .iter()
            .all(|l| j.process(l).is_some_and(host::is_running));
        let command = tor::summary_command(t, &tdir);
        let shown = match t.kind {
            TorKind::Bird => "birdc show protocols".to_string(),
            TorKind::Frr => "vtysh -c 'show bgp ipv4 unicast summary'".to_string(),
        };
        tors.push(TorView {
            name: t.name.clone(),
            running,
            summary_command: shown,
            summary: if running {
                probe::daemon_cli(&command)
            } else {
                "(not running)".into()
            },
            fib: if host::netns_exists(&t.netns) {
                probe::fib_routes(&t.netns).map_err(|e| e.to_string())
            } else {
                Err("namespace gone".into())
            },
        });
    }
    let answering = plan
        .nodes
        .iter()
        .map(|n| dir.node_run_dir(&n.name))
        .find(|d| probe::ctl(d, Request::IpamShow).is_ok());
    let (ipam_text, ipam) = match &answering {
        Some(run_dir) => {
            let text =
                match probe::gingerctl(&gingerctl, run_dir, &["ipam", "show", "--show-blocks"]) {
                    Ok((_, stdout, stderr)) => format!("{stdout}{stderr}"),
                    Err(e) => e.to_string(),
                };
            let ipam = match probe::ctl(run_dir, Request::IpamShow) {
                Ok(Reply::Ipam(r)) => Some(r),
                _ => None,
            };
            (text, ipam)
        }
        None => ("(no node agent answers)".to_string(), None),
    };
    let matrix = probe::ping_matrix(&pod_targets(&j));
    let all = matrix.all_reach() && j.pods.len() == plan.pods.len();
    let view = LabView {
        phase: j.phase.clone(),
        nodes,
        tors,
        ipam_text,
        ipam,
        matrix,
    };
    Ok((
        report::status(&plan, &cfg.dir.display().to_string(), &view),
        all,
    ))
}

/// What `down` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Whether there was a lab at all.
    pub found: bool,
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Processes stopped (recorded ones, by label).
    pub stopped: Vec<String>,
    /// Other processes found inside the namespaces and killed (pids).
    pub killed: Vec<i32>,
}

/// Remove the lab: processes, namespaces (and the links in them), the lab directory.
pub fn down(cfg: &LabConfig, out: &mut dyn Write) -> LabResult<DownReport> {
    let Some(dir) = LabDir::open(&cfg.dir)? else {
        say(
            out,
            &format!("ginger-lab: no lab in {}; nothing to do", cfg.dir.display()),
        );
        return Ok(DownReport::default());
    };
    let Some(j) = dir.load()? else {
        // `up` creates the directory, then writes the journal before anything else.
        if fs::read_dir(dir.path())
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
        {
            dir.remove()?;
            say(
                out,
                &format!("ginger-lab: removed the empty {}", cfg.dir.display()),
            );
            return Ok(DownReport::default());
        }
        return Err(LabError::Directory {
            dir: cfg.dir.clone(),
            reason: format!(
                "has no {} : not a ginger-lab directory, left alone",
                super::journal::JOURNAL
            ),
        });
    };
    check_root()?;
    let mut report = DownReport {
        found: true,
        ..DownReport::default()
    };
    // Agents first (they hold the pods' state), then the routers.
    for p in j.processes.iter().rev() {
        if host::stop(p, STOP_GRACE) {
            report.stopped.push(p.label.clone());
        }
    }
    let mut problems = Vec::new();
    for ns in j.namespaces.iter().rev() {
        if !host::netns_exists(ns) {
            continue;
        }
        match host::delete_netns(ns) {
            Ok(killed) => {
                report.killed.extend(killed);
                report.namespaces.push(ns.clone());
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let left: Vec<&String> = j
        .namespaces
        .iter()
        .filter(|n| host::netns_exists(n))
        .collect();
    let running: Vec<&ProcRecord> = j.processes.iter().filter(|p| host::is_running(p)).collect();
    if !left.is_empty() || !running.is_empty() {
        return Err(LabError::NotConverged(format!(
            "down left namespaces {left:?} and processes {:?} ({}); the journal in {} is kept, run `ginger-lab down` again",
            running
                .iter()
                .map(|p| (&p.label, p.pid))
                .collect::<Vec<_>>(),
            problems.join("; "),
            cfg.dir.display()
        )));
    }
    dir.remove()?;
    say(
        out,
        &format!(
            "ginger-lab: down: stopped {} process{}, deleted {} namespace{} (and every link in them), removed {}",
            report.stopped.len(),
            if report.stopped.len() == 1 { "" } else { "es" },
            report.namespaces.len(),
            if report.namespaces.len() == 1 {
                ""
            } else {
                "s"
            },
            cfg.dir.display()
        ),
    );
    if !report.killed.is_empty() {
        say(
            out,
            &format!(
                "  also killed {} process{} still inside the lab's namespaces: {:?}",
                report.killed.len(),
                if report.killed.len() == 1 { "" } else { "es" },
                report.killed
            ),
        );
    }
    Ok(report)
}

fn say(out: &mut dyn Write, line: &str) {
    // Progress is best effort: a closed stdout must not stop `up` half way.
    let _ = writeln!(out, "{}", line.trim_end());
    let _ = out.flush();
}

/// The lab needs root: namespaces, links, daemons.
fn check_root() -> LabResult<()> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| LabError::io("reading /proc/self/status", e))?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse::<u32>().ok());
    if euid == Some(0) {
        Ok(())
    } else {
        Err(LabError::Options {
            flag: "(user)",
            reason: "ginger-lab needs root (network namespaces, links, routing daemons): run it with sudo".into(),
        })
    }
}

/// Every program the plan needs, with how to get it.
fn check_tools(cfg: &LabConfig, plan: &Plan) -> LabResult<()> {
    let mut missing = Vec::new();
    for b in ["ginger-node", "gingerctl", "ginger"] {
        if !cfg.bin(b).is_file() {
            missing.push(format!(
                "{} (build it: cargo build -p agent -p cni --bins; or pass --bin-dir)",
                cfg.bin(b).display()
            ));
        }
    }
    let need = |p: &str, pkg: &str, missing: &mut Vec<String>| {
        let found = if p.starts_with('/') {
            Path::new(p).is_file()
        } else {
            std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
        };
        if !found {
            missing.push(format!("{p} (apt-get install {pkg})"));
        }
    };
    need("ip", "iproute2", &mut missing);
    need("ping", "iputils-ping", &mut missing);
    need("sysctl", "procps", &mut missing);
    need(
        &format!("{}/portmap", cni::DEBIAN_CNI_DIR),
        "containernetworking-plugins",
        &mut missing,
    );
    if plan.tors.iter().any(|t| t.kind == TorKind::Bird) {
        need("bird", "bird2", &mut missing);
        need("birdc", "bird2", &mut missing);
    }
    if plan.tors.iter().any(|t| t.kind == TorKind::Frr) {
        need(tor::FRR_ZEBRA, "frr", &mut missing);
        need(tor::FRR_BGPD, "frr", &mut missing);
        need("vtysh", "frr", &mut missing);
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LabError::Options {
            flag: "(machine)",
            reason: format!(
                "missing: {} — scripts/install-deps.sh installs them",
                missing.join(", ")
            ),
        })
    }
}
