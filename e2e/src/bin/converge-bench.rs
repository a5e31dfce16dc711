//! `converge-bench`: route convergence after a pod ADD (issue 4, "Convergence"). Two nodes A and
//! B (namespaces on one veth, node-to-node mesh, one shared IPAM store) run `ginger-node`; pods
//! are added on A through the real `ginger` plugin. Case 1: each timed ADD makes A claim a
//! fresh /31 block, and the clock stops when `<block> via A` is in B's FIB. Case 2: the pool's
//! only block is B's, each ADD on A borrows an address, and the clock stops when `<ip>/32 via
//! A` is in B's FIB. Routes are seen by our own netlink listener inside B. Prints p50/p99/max
//! per case against the p99 ≤ 100 ms target, with the machine it ran on.
//!
//! Runs as root. Ctrl-C (or SIGTERM) stops after the current sample and tears the lab down.
//! See `docs/benchmarks.md` (## Convergence).

use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use e2e::TestDir;
use e2e::bench::{self, describe_machine, load_average};
use e2e::converge::{self, Case, MAX_SAMPLES, RunOptions, Sample, case_dir, ms, render_table};
use e2e::pods::PodBinaries;

#[derive(Parser, Debug)]
#[command(
    name = "converge-bench",
    about = "Route convergence: a pod ADD on node A until its block or borrowed /32 is in node B's FIB (run as root)"
)]
struct Cli {
    /// Timed ADDs per case (each after one untimed warm-up).
    #[arg(long, default_value_t = 60)]
    samples: usize,
    /// How long a route may take to appear before the run fails, in seconds.
    #[arg(long, default_value_t = 10)]
    route_timeout: u64,
    /// Directory holding `ginger` and `ginger-node` (default: this program's own directory,
    /// `target/release` for a release build).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Also write the report to this Markdown file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Keep the run's directory (cluster file, agent and plugin logs).
    #[arg(long)]
    keep: bool,
    /// Print every sample (prefix, ADD, A's FIB, B's FIB) to stderr.
    #[arg(long)]
    verbose: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("converge-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command's first output line, or "unknown".
fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if !bench::is_root() {
        bail!("run as root: the run creates network namespaces");
    }
    if cli.samples == 0 || cli.samples > MAX_SAMPLES {
        bail!("--samples must be between 1 and {MAX_SAMPLES}");
    }
    let binaries = PodBinaries::for_bench(cli.bin_dir.as_deref()).map_err(anyhow::Error::msg)?;
    bench::stop_on_signals("converge-bench").context("handling SIGINT/SIGTERM")?;
    let mut work = TestDir::new("converge-bench")?;
    if cli.keep {
        work.keep();
    }
    let repo = env!("CARGO_MANIFEST_DIR");
    let commit = first_line("git", &["-C", repo, "describe", "--always", "--dirty"]);
    let date = first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let mut report = format!(
        "`converge-bench --samples {}`\n\nMachine:\n\n{}- commit: `{commit}`\n- date: {date}\n\n\
         Binaries: `{}`, `{}`.\n\n",
        cli.samples,
        describe_machine(),
        binaries.plugin.display(),
        binaries.node.display()
    );
    print!("{report}");
    let opts = RunOptions {
        samples: cli.samples,
        route_timeout: Duration::from_secs(cli.route_timeout),
        binaries,
    };
    let mut results: Vec<(Case, Vec<Sample>)> = Vec::new();
    for case in [Case::NewBlock, Case::Borrowed] {
        let dir = case_dir(&work, case)?;
        let verbose = cli.verbose;
        let mut progress = |i: usize, s: &Sample| {
            if verbose {
                eprintln!(
                    "{case} {i}/{}{}: {} ({}) ADD {}, A's FIB {}, B's FIB {}, start {:.6}",
                    opts.samples,
                    if i == 0 { " (warm-up)" } else { "" },
                    s.prefix,
                    s.ip,
                    ms(s.add),
                    ms(s.local),
                    ms(s.remote),
                    s.wall_start.as_secs_f64()
                );
            }
        };
        let samples =
            match converge::run_case(case, &dir, &opts, &mut progress, &bench::stop_requested) {
                Ok(s) => s,
                Err(e) => {
                    work.keep();
                    return Err(anyhow::Error::from(e)
                        .context(format!("{case} (files in {})", dir.display())));
                }
            };
        eprintln!("{case}: {} routes observed in node-b's FIB", samples.len());
        results.push((case, samples));
    }
    let table = render_table(&results);
    let end = format!("\nLoad average at the end: {}\n", load_average());
    print!("{table}{end}");
    report.push_str(&table);
    report.push_str(&end);
    if let Some(path) = &cli.markdown {
        fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
