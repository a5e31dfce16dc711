//! One measured run: fresh namespaces, the target, the monitor and the injectors' sessions, the
//! timed blast, the figures, and teardown (guards: namespaces, processes, sockets, also on error
//! and on a stop request).
//!
//! Owns: the run's sequence and its clock. Two namespaces joined by one veth: the target's
//! (10.0.0.1) and the speakers' (monitor 10.0.0.2, injector i 10.0.0.(10+i)). Setup: start the
//! target, connect the monitor, then each injector, and wait until the target itself reports every
//! session Established. Timed phase: the UPDATEs are encoded beforehand; all injectors are released
//! at once; the clock starts at the first injected byte and convergence is the instant the monitor
//! first holds all M×N routes. The run then waits (same deadline) until every injector holds the
//! other injectors' routes too ("settled": the target has done all its work) and reads the
//! target's `VmHWM` (peak) and `VmRSS`. In `Direct` mode the monitor itself listens at 10.0.0.1 and
//! the injectors talk to it: the harness's own cost. In FIB mode (`RunOptions::fib`) the target
//! also programs its namespace's main table; our route listener there subscribes before the
//! blast, the run also waits until the table holds all M×N routes (the FIB figure), and reads a
//! sample back to check its next hops while the sessions are still up (a closed session would
//! withdraw them). Must not: print (the caller reports), or leave anything running.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::fib::{FibWatch, check_next_hops};
use super::memory::MemoryUse;
use super::scenario::{Scenario, Topology};
use super::session::{Session, Speaker};
use super::target::{RunningTarget, TargetKind, no_fib_mode};
use super::tracker::PrefixTracker;
use super::wire::{self, Blast};
use super::{BenchError, stop_requested};
use crate::link::Veth;
use crate::netns::Netns;
use crate::setns::thread_in_netns;

/// The BGP port every target listens on.
const BGP_PORT: u16 = 179;
/// How often the run looks at its sessions and the target.
const POLL: Duration = Duration::from_millis(5);
/// How often a slow run reports how far the monitor got.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// How far a run that is still waiting got.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Since the first injected byte.
    pub elapsed: Duration,
    /// Routes the monitor holds.
    pub held: u64,
    /// Routes it must hold.
    pub expected: u64,
    /// Routes the target's FIB holds (FIB mode only).
    pub fib_held: Option<u64>,
}

/// Limits and paths of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Longest wait for convergence (and settling), from the first injected byte.
    pub timeout: Duration,
    /// Longest wait for the target to start and every session to be Established.
    pub setup_timeout: Duration,
    /// The `ginger-node` binary to run.
    pub ginger_bin: PathBuf,
    /// Called every 30 s while the monitor is still missing routes.
    pub progress: Option<fn(&Progress)>,
    /// The target programs its FIB and the run times the routes' arrival there too.
    pub fib: bool,
}

/// The FIB figures of one run in FIB mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FibFigures {
    /// First injected byte → the target's main table holds every route; `None`: not within
    /// the timeout.
    pub convergence: Option<Duration>,
    /// Injected routes the table held at the end.
    pub held: u64,
    /// Routes read back after the run to check their next hop (0: the run did not get there).
    pub next_hops_checked: usize,
}

/// The figures of one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// What was injected.
    pub scenario: Scenario,
    /// Who was measured.
    pub target: TargetKind,
    /// First injected byte → the monitor holds every route; `None`: not within `timeout`.
    pub convergence: Option<Duration>,
    /// The limit the run had.
    pub timeout: Duration,
    /// Routes the monitor held at the end.
    pub held: u64,
    /// Routes it had to hold (M×N).
    pub expected: u64,
    /// First injected byte → the last injector's last byte accepted by the target's socket.
    pub injection: Option<Duration>,
    /// First injected byte → every injector holds all the other injectors' routes.
    pub settle: Option<Duration>,
    /// The target's memory when the run ended (after settling); `None` for `Direct`. For FRR
    /// in FIB mode bgpd's and zebra's figures added up.
    pub memory: Option<MemoryUse>,
    /// The FIB figures (`RunOptions::fib` only).
    pub fib: Option<FibFigures>,
    /// UPDATE messages announcing routes the monitor received.
    pub monitor_updates: u64,
    /// Route announcements (NLRI entries) the monitor received, repeats included.
    pub monitor_announcements: u64,
    /// Anything that did not look right but did not stop the run (wrong AS_PATH, routes nobody
    /// injected, withdrawals).
    pub anomalies: Vec<String>,
}

/// Everyone's sessions once set up.
struct Sessions {
    /// The monitor's: one to the target, or (`Direct`) one per injector.
    monitor: Vec<Session>,
    /// Injector i's session.
    injectors: Vec<Session>,
}

impl Sessions {
    fn all(&self) -> impl Iterator<Item = &Session> {
        self.monitor.iter().chain(&self.injectors)
    }

    /// The first session that ended, and why.
    fn failure(&self) -> Option<BenchError> {
        self.all().find_map(|s| {
            s.stats()
                .ended()
                .map(|why| BenchError::session(s.label(), why))
        })
    }

    fn keepalives(&self) -> Result<(), BenchError> {
        self.all().try_for_each(Session::keepalive_if_due)
    }

    fn close(&self) {
        self.all().for_each(Session::close);
    }
}

/// Run `scenario` against `kind` once, with its files under `dir`.
pub fn run_once(
    kind: TargetKind,
    scenario: Scenario,
    opts: &RunOptions,
    dir: &Path,
) -> Result<RunResult, BenchError> {
    if opts.fib && !kind.has_fib_mode() {
        return Err(no_fib_mode(kind));
    }
    let topo = Topology::new(scenario);
    let m = scenario.injectors;
    let target_ns = Netns::new(&format!("bt-{kind}"))?;
    let peers_ns = Netns::new("bench-peer")?;
    let cidr = |a: Ipv4Addr| format!("{a}/{}", Topology::SUBNET_LEN);
    let mut veth = Veth::new(&target_ns, "eth0", &peers_ns, "eth0")
        .addr_a(&cidr(Topology::TARGET))
        .addr_b(&cidr(Topology::MONITOR));
    for i in 0..m {
        veth = veth.addr_b(&cidr(topo.injector_address(i)));
    }
    veth.create()?;

    let setup_deadline = Instant::now() + opts.setup_timeout;
    let target = RunningTarget::start(kind, &target_ns, dir, &topo, &opts.ginger_bin, opts.fib)?;
    let total = scenario.total();
    let monitor_tracker = Arc::new(PrefixTracker::new(Topology::PREFIX_BASE, total, 0..0));
    let direct = target.is_none();
    let injector_trackers: Vec<Arc<PrefixTracker>> = (0..m)
        .map(|i| {
            // Nobody sends an injector anything in direct mode.
            let own = if direct {
                0..total
            } else {
                topo.injector_range(i)
            };
            Arc::new(PrefixTracker::new(Topology::PREFIX_BASE, total, own))
        })
        .collect();
    let sessions = connect_all(
        &topo,
        &target_ns,
        &peers_ns,
        &monitor_tracker,
        &injector_trackers,
        direct,
        setup_deadline,
    )?;
    if let Some(t) = &target {
        let mut peers = vec![Topology::MONITOR];
        peers.extend((0..m).map(|i| topo.injector_address(i)));
        for p in peers {
            check_stop()?;
            let left = setup_deadline.saturating_duration_since(Instant::now());
            t.wait_established(IpAddr::V4(p), left.max(Duration::from_secs(1)))?;
        }
    }
    let blasts: Vec<Blast> = sessions
        .injectors
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let i = i as u32;
            let attrs = wire::injector_attributes(
                topo.injector_as(i),
                s.four_octet(),
                topo.injector_address(i),
            );
            wire::encode_announcements(topo.injector_first_prefix(i), scenario.prefixes, &attrs)
        })
        .collect();

    let mut fib = if opts.fib {
        Some(FibWatch::start(&target_ns, topo)?)
    } else {
        None
    };
    let first_byte: OnceLock<Instant> = OnceLock::new();
    let barrier = Barrier::new(sessions.injectors.len() + 1);
    let timed = thread::scope(|scope| {
        let senders: Vec<_> = sessions
            .injectors
            .iter()
            .zip(&blasts)
            .map(|(s, blast)| {
                let (barrier, first_byte) = (&barrier, &first_byte);
                scope.spawn(move || {
                    barrier.wait();
                    first_byte.get_or_init(Instant::now);
                    s.send(&blast.bytes).map(|()| Instant::now())
                })
            })
            .collect();
        barrier.wait();
        let t0 = loop {
            if let Some(t) = first_byte.get() {
                break *t;
            }
            thread::yield_now();
        };
        let watched = watch(
            &sessions,
            &monitor_tracker,
            &injector_trackers,
            fib.as_mut(),
            target.as_ref(),
            kind,
            t0,
            opts,
        );
        let memory = match (&watched, &target) {
            (Ok(_), Some(t)) => Some(t.memory(opts.fib)),
            _ => None,
        };
        // While the sessions are up: closing them withdraws the routes.
        let next_hops = match (&watched, &fib) {
            (Ok(w), Some(_)) if w.fib.is_some() => Some(check_next_hops(&target_ns, &topo, dir)),
            _ => None,
        };
        // Unblocks any injector still writing to a target that stopped reading.
        sessions.close();
        let done: Vec<_> = senders.into_iter().map(|h| h.join()).collect();
        let injection = done
            .iter()
            .map(|d| match d {
                Ok(Ok(end)) => Some(end.saturating_duration_since(t0)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max());
        (
            watched,
            memory.transpose(),
            injection,
            next_hops.transpose(),
        )
    });
    let (watched, memory, injection, next_hops) = timed;
    let Watched {
        convergence,
        fib: fib_convergence,
        settle,
    } = watched?;
    let memory = memory?;
    let next_hops = next_hops?;
    let monitor_stats = sessions.monitor.iter().map(Session::stats);
    let monitor_updates = monitor_stats
        .clone()
        .map(|s| {
            s.announcing_updates
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    let wrong_as: u64 = monitor_stats
        .map(|s| s.wrong_first_as.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let mut anomalies = Vec::new();
    let fib = fib.map(|w| {
        anomalies.extend(w.count().anomalies());
        let (checked, mismatches) = next_hops.unwrap_or_default();
        if !mismatches.is_empty() {
            anomalies.push(format!(
                "{} of {checked} routes read back from the FIB had the wrong next hop: {}",
                mismatches.len(),
                mismatches.join("; ")
            ));
        }
        FibFigures {
            convergence: fib_convergence,
            held: w.count().held(),
            next_hops_checked: checked,
        }
    });
    if wrong_as > 0 {
        anomalies.push(format!(
            "{wrong_as} UPDATEs to the monitor had an AS_PATH not starting with AS {}",
            Topology::TARGET_AS
        ));
    }
    if monitor_tracker.unexpected() > 0 {
        anomalies.push(format!(
            "the monitor received {} announcements of routes nobody injected",
            monitor_tracker.unexpected()
        ));
    }
    if monitor_tracker.withdrawals() > 0 {
        anomalies.push(format!(
            "the monitor received {} withdrawals",
            monitor_tracker.withdrawals()
        ));
    }
    Ok(RunResult {
        scenario,
        target: kind,
        convergence,
        timeout: opts.timeout,
        held: monitor_tracker.held(),
        expected: monitor_tracker.expected(),
        injection,
        settle,
        memory,
        fib,
        monitor_updates,
        monitor_announcements: monitor_tracker.announcements(),
        anomalies,
    })
}

fn check_stop() -> Result<(), BenchError> {
    if stop_requested() {
        Err(BenchError::Interrupted)
    } else {
        Ok(())
    }
}

/// What `watch` saw, each `None` when the deadline came first.
struct Watched {
    /// The monitor held every route.
    convergence: Option<Duration>,
    /// The target's FIB held every route (FIB mode only).
    fib: Option<Duration>,
    /// Every injector held the others' routes.
    settle: Option<Duration>,
}

/// Wait for convergence (the monitor's and, in FIB mode, the FIB's), then for every injector
/// to settle, until the deadline `t0 + timeout`.
#[allow(clippy::too_many_arguments)]
fn watch(
    sessions: &Sessions,
    monitor: &PrefixTracker,
    injectors: &[Arc<PrefixTracker>],
    mut fib: Option<&mut FibWatch>,
    target: Option<&RunningTarget>,
    kind: TargetKind,
    t0: Instant,
    opts: &RunOptions,
) -> Result<Watched, BenchError> {
    let deadline = t0 + opts.timeout;
    let mut next_progress = t0 + PROGRESS_EVERY;
    let healthy = || -> Result<(), BenchError> {
        check_stop()?;
        if let Some(e) = sessions.failure() {
            return Err(e);
        }
        if let Some(t) = target
            && !t.process().is_running()
        {
            return Err(BenchError::TargetExited {
                target: kind,
                logs: t.log_tail(),
            });
        }
        sessions.keepalives()
    };
    let since = |at: Instant| at.saturating_duration_since(t0);
    let (convergence, fib_done) = loop {
        let fib_done = match fib.as_deref_mut() {
            Some(w) => w.poll()?.complete_at().map(since),
            None => Some(Duration::ZERO),
        };
        let converged = monitor.complete_at().map(since);
        if let (Some(c), Some(f)) = (converged, fib_done) {
            break (c, f);
        }
        healthy()?;
        let now = Instant::now();
        if now >= deadline {
            return Ok(Watched {
                convergence: converged,
                fib: fib.is_some().then_some(fib_done).flatten(),
                settle: None,
            });
        }
        if let Some(report) = opts.progress
            && now >= next_progress
        {
            next_progress += PROGRESS_EVERY;
            report(&Progress {
                elapsed: now - t0,
                held: monitor.held(),
                expected: monitor.expected(),
                fib_held: fib.as_deref().map(|w| w.count().held()),
            });
        }
        thread::sleep(POLL);
    };
    let settle = loop {
        let done: Option<Vec<Instant>> = injectors.iter().map(|t| t.complete_at()).collect();
        if let Some(done) = done {
            // Settled is never earlier than converged (in direct mode injectors expect nothing).
            let last = done.into_iter().max().unwrap_or(t0);
            break Some(last.saturating_duration_since(t0).max(convergence));
        }
        healthy()?;
        if Instant::now() >= deadline {
            break None;
        }
        thread::sleep(POLL);
    };
    Ok(Watched {
        convergence: Some(convergence),
        fib: fib.is_some().then_some(fib_done),
        settle,
    })
}

/// Set up the monitor's and every injector's session.
fn connect_all(
    topo: &Topology,
    target_ns: &Netns,
    peers_ns: &Netns,
    monitor_tracker: &Arc<PrefixTracker>,
    injector_trackers: &[Arc<PrefixTracker>],
    direct: bool,
    deadline: Instant,
) -> Result<Sessions, BenchError> {
    let target = SocketAddrV4::new(Topology::TARGET, BGP_PORT);
    let m = topo.scenario.injectors;
    // In direct mode the monitor stands where the target would, and accepts every injector.
    let acceptor = if direct {
        let listener = thread_in_netns(target_ns, || TcpListener::bind(target))?
            .map_err(|e| BenchError::session("monitor", format!("listening on {target}: {e}")))?;
        let tracker = monitor_tracker.clone();
        Some(thread::spawn(move || {
            accept_all(listener, m, tracker, deadline)
        }))
    } else {
        None
    };
    let (peer_as, monitor) = if direct {
        (Topology::MONITOR_AS, Vec::new())
    } else {
        let me = Speaker {
            asn: Topology::MONITOR_AS,
            address: Topology::MONITOR,
        };
        let s = Session::connect(
            peers_ns,
            "monitor",
            me,
            target,
            deadline,
            monitor_tracker.clone(),
            Some(Topology::TARGET_AS),
        )?;
        (Topology::TARGET_AS, vec![s])
    };
    let mut injectors = Vec::new();
    let mut failed = None;
    for i in 0..m {
        if let Err(e) = check_stop() {
            failed = Some(e);
            break;
        }
        let me = Speaker {
            asn: topo.injector_as(i),
            address: topo.injector_address(i),
        };
        match Session::connect(
            peers_ns,
            &format!("injector-{i}"),
            me,
            target,
            deadline,
            injector_trackers[i as usize].clone(),
            Some(peer_as),
        ) {
            Ok(s) => injectors.push(s),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let monitor = match acceptor {
        Some(handle) => {
            // Accepting stops at the deadline if an injector never came.
            let accepted = handle.join().unwrap_or_else(|_| {
                Err(BenchError::session(
                    "monitor",
                    "the accepting thread panicked",
                ))
            });
            match (accepted, failed) {
                (_, Some(e)) => return Err(e),
                (Err(e), None) => return Err(e),
                (Ok(s), None) => s,
            }
        }
        None => match failed {
            Some(e) => return Err(e),
            None => monitor,
        },
    };
    Ok(Sessions { monitor, injectors })
}

/// The direct-mode monitor: accept `count` injectors and establish each.
fn accept_all(
    listener: TcpListener,
    count: u32,
    tracker: Arc<PrefixTracker>,
    deadline: Instant,
) -> Result<Vec<Session>, BenchError> {
    let me = Speaker {
        asn: Topology::MONITOR_AS,
        address: Topology::TARGET,
    };
    listener
        .set_nonblocking(true)
        .map_err(|e| BenchError::session("monitor", format!("non-blocking listener: {e}")))?;
    let mut out = Vec::new();
    while out.len() < count as usize {
        match listener.accept() {
            Ok((stream, from)) => {
                stream.set_nonblocking(false).map_err(|e| {
                    BenchError::session("monitor", format!("blocking mode for {from}: {e}"))
                })?;
                let label = format!("monitor<-{}", from.ip());
                out.push(Session::accept(
                    &label,
                    stream,
                    me,
                    deadline,
                    tracker.clone(),
                    None,
                )?);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline || stop_requested() {
                    return Err(BenchError::session(
                        "monitor",
                        format!("only {} of {count} injectors connected", out.len()),
                    ));
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(BenchError::session("monitor", format!("accepting: {e}"))),
        }
    }
    Ok(out)
}
