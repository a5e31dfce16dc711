//! The BGP benchmark (bgperf-like): M injector speakers each announce N unique /32s to a target
//! (`ginger-node`, BIRD, FRR bgpd or GoBGP), a monitor speaker times how long the target takes
//! to pass every route on, and the target's peak resident memory is read from the kernel.
//!
//! Owns: everything the `ginger-bench` binary runs. `scenario` (M×N and the lab plan), `target`
//! (configuring and starting each implementation the same way), `wire` (pre-encoded UPDATEs and
//! a zero-copy reader), `session` (the injectors' and the monitor's raw BGP sessions),
//! `tracker` (distinct routes held, first completion instant), `fib` (with `--fib`: when the
//! target's kernel table holds every route, via the right next hop), `memory` (`VmHWM`/`VmRSS`),
//! `machine` (CPU, memory, kernel and tool versions for the record),
//! `run` (one measured run in fresh namespaces) and `report` (medians, the table, the ratios to
//! BIRD). Data enters as a `Scenario`, a `TargetKind` and `RunOptions`; it leaves as
//! `RunResult`s and a rendered table. Must not: touch the machine's own namespace (every socket
//! and daemon lives in the run's two namespaces, deleted when the run ends, also on failure), or
//! use Ginger's speaker or codec for the injectors and the monitor.

pub mod fib;
pub mod machine;
pub mod memory;
pub mod report;
pub mod run;
pub mod scenario;
pub mod session;
pub mod target;
pub mod tracker;
pub mod wire;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

pub use fib::FibCount;
pub use machine::{describe_machine, describe_versions, load_average};
pub use memory::{MemoryUse, memory_of};
pub use report::{Summary, Verdict, render_table, summarize};
pub use run::{Progress, RunOptions, RunResult, run_once};
pub use scenario::{Scenario, Topology};
pub use target::{TargetKind, default_ginger_binary};

static STOP: AtomicBool = AtomicBool::new(false);

/// Ask every run in progress to stop at its next check (Ctrl-C); it cleans up and returns
/// `BenchError::Interrupted`.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Block SIGINT and SIGTERM in every thread and turn them into `request_stop` on a thread of
/// their own, so a benchmark binary's runs end through their guards (namespaces deleted,
/// daemons killed). `program` names the binary in the messages.
pub fn stop_on_signals(program: &'static str) -> std::io::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block().map_err(std::io::Error::from)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(sig) = set.wait() {
                if stop_requested() {
                    eprintln!("{program}: {sig} again; still cleaning up");
                } else {
                    eprintln!("{program}: {sig}: stopping after cleaning up the current run");
                    request_stop();
                }
            }
        })?;
    Ok(())
}

/// Whether this process runs with effective uid 0 (benchmarks create namespaces).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// Why a benchmark run could not produce a figure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The lab harness failed (namespace, link, daemon start, control query).
    #[error(transparent)]
    Harness(#[from] crate::Error),
    /// A benchmark session failed (connect, handshake, NOTIFICATION, closed, malformed bytes).
    #[error("session {session}: {detail}")]
    Session {
        /// "monitor", "injector-3", …
        session: String,
        /// What happened.
        detail: String,
    },
    /// Our route listener in the target namespace failed or lost events (`--fib`).
    #[error("FIB listener: {0}")]
    RouteListener(#[from] crate::converge::ConvergeError),
    /// The target process ended during the run.
    #[error("{target} exited during the run; its last output:\n{logs}")]
    TargetExited {
        /// Which target.
        target: TargetKind,
        /// The tail of its stdout/stderr.
        logs: String,
    },
    /// The release `ginger-node` is not built.
    #[error(
        "the release ginger-node is not built (looked for {path}); build it with \
         `cargo build --release -p agent --bins` or pass --ginger-bin"
    )]
    GingerMissing {
        /// Where it was expected.
        path: PathBuf,
    },
    /// A command-line value is not valid.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What kind of value.
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A stop was requested (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

impl BenchError {
    /// A `Session` error.
    pub(crate) fn session(session: &str, detail: impl Into<String>) -> BenchError {
        BenchError::Session {
            session: session.to_string(),
            detail: detail.into(),
        }
    }
}
