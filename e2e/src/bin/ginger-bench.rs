//! `ginger-bench`: the BGP benchmark. For each scenario (M injectors × N unique /32s) and target
//! (`ginger-node`, BIRD, FRR, GoBGP, and `direct` for the harness's own cost), in fresh network
//! namespaces, time from the first injected byte until a monitor peer holds every route, and read
//! the target's peak RSS; print a Markdown table per scenario with Ginger's ratios to BIRD.
//! With `--fib` the targets also program what they learn into their namespace's main table, and
//! the headline figure is the time until that table holds every route (GoBGP and `direct`
//! have no FIB mode and are skipped).
//!
//! Runs as root. Ctrl-C (or SIGTERM) stops the run in progress, which tears down its namespaces
//! and processes before the program exits. See `e2e::bench` and `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use e2e::TestDir;
use e2e::bench::{
    self, BenchError, RunOptions, RunResult, Scenario, TargetKind, describe_machine,
    describe_versions, render_table, summarize,
};

#[derive(Parser, Debug)]
#[command(
    name = "ginger-bench",
    about = "BGP benchmark: ginger-node against BIRD, FRR and GoBGP (run as root)"
)]
struct Cli {
    /// Scenarios, INJECTORSxPREFIXES (k = thousand, m = million).
    #[arg(long, value_delimiter = ',', default_value = "2x100k,2x500k,10x10k")]
    scenario: Vec<Scenario>,
    /// Targets: direct (harness only, no target), ginger, bird, frr, gobgp.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,ginger,bird,frr,gobgp"
    )]
    targets: Vec<TargetKind>,
    /// Runs per scenario and target (the table shows medians); targets take turns run by run.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Longest wait for convergence, per run, from the first injected byte (seconds).
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Longest wait for a target to start and establish every session (seconds).
    #[arg(long, default_value_t = 60)]
    setup_timeout: u64,
    /// The ginger-node binary (default: target/release/ginger-node of this build).
    #[arg(long, value_name = "PATH")]
    ginger_bin: Option<PathBuf>,
    /// Also write the report (machine, versions, tables) to this Markdown file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Keep every run's directory (configs, daemon logs); failed runs keep theirs anyway.
    #[arg(long)]
    keep: bool,
    /// Targets program learned routes into the kernel; time until the FIB holds every route
    /// (ginger, bird and frr only; the others are skipped).
    #[arg(long)]
    fib: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ginger-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if !bench::is_root() {
        bail!("run as root: every run creates network namespaces");
    }
    if cli.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut targets = cli.targets.clone();
    targets.sort();
    targets.dedup();
    let mut skipped = Vec::new();
    if cli.fib {
        targets.retain(|t| match t.why_no_fib_mode() {
            None => true,
            Some(why) => {
                skipped.push(format!("{t} is skipped in FIB mode: {why}"));
                false
            }
        });
        if targets.is_empty() {
            bail!("--fib: none of the targets has a FIB mode (ginger, bird, frr)");
        }
    }
    let ginger_bin = cli
        .ginger_bin
        .clone()
        .unwrap_or_else(bench::default_ginger_binary);
    if targets.contains(&TargetKind::Ginger) && !ginger_bin.is_file() {
        return Err(BenchError::GingerMissing { path: ginger_bin }.into());
    }
    bench::stop_on_signals("ginger-bench").context("handling SIGINT/SIGTERM")?;
    let mut work = TestDir::new("bench")?;
    if cli.keep {
        work.keep();
    }
    let opts = RunOptions {
        timeout: Duration::from_secs(cli.timeout),
        setup_timeout: Duration::from_secs(cli.setup_timeout),
        ginger_bin: ginger_bin.clone(),
        progress: Some(|p| {
            let fib = p
                .fib_held
                .map(|n| format!(", the FIB {n}"))
                .unwrap_or_default();
            eprintln!(
                "  … {:.0} s: the monitor holds {}/{} routes{fib}",
                p.elapsed.as_secs_f64(),
                p.held,
                p.expected
            )
        }),
        fib: cli.fib,
    };
    let scenarios: Vec<String> = cli.scenario.iter().map(|s| s.to_string()).collect();
    let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
    let mut report = format!(
        "## Run\n\n`ginger-bench{} --scenario {} --targets {} --runs {} --timeout {}`\n\n",
        if cli.fib { " --fib" } else { "" },
        scenarios.join(","),
        names.join(","),
        cli.runs,
        cli.timeout,
    );
    for s in &skipped {
        report.push_str(&format!("{s}.\n\n"));
    }
    report.push_str(&format!(
        "### Machine\n\n{}\n### Versions\n\n{}\n",
        describe_machine(),
        describe_versions(&targets, &ginger_bin)
    ));
    print!("{report}");
    let mut failures = 0;
    'scenarios: for &scenario in &cli.scenario {
        let mut results: BTreeMap<TargetKind, Vec<Result<RunResult, String>>> = BTreeMap::new();
        for run in 1..=cli.runs {
            for &target in &targets {
                let label = format!("{scenario} {target} run {run}/{}", cli.runs);
                eprintln!("{label}: starting");
                let dir = work.subdir(&format!("{scenario}-{target}-{run}"))?;
                let outcome = bench::run_once(target, scenario, &opts, &dir);
                match &outcome {
                    Ok(r) => eprintln!("{label}: {}", describe_run(r)),
                    Err(BenchError::Interrupted) => {
                        eprintln!("{label}: interrupted");
                        failures += 1;
                        break 'scenarios;
                    }
                    Err(e) => {
                        failures += 1;
                        eprintln!("{label}: FAILED: {e} (files in {})", dir.display());
                    }
                }
                results
                    .entry(target)
                    .or_default()
                    .push(outcome.map_err(|e| e.to_string()));
            }
        }
        let summaries: Vec<_> = results
            .iter()
            .map(|(t, runs)| summarize(scenario, *t, runs))
            .collect();
        let table = render_table(scenario, &summaries);
        println!("{table}");
        report.push_str(&table);
        report.push('\n');
        std::io::stdout().flush().ok();
    }
    let end = format!("Load average at the end: {}\n", bench::load_average());
    print!("{end}");
    report.push_str(&end);
    if let Some(path) = &cli.markdown {
        fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if failures > 0 {
        work.keep();
    }
    Ok(if bench::stop_requested() {
        ExitCode::from(130)
    } else if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One progress line for a finished run.
fn describe_run(r: &RunResult) -> String {
    let mut s = match r.convergence {
        Some(t) => format!("converged in {:.3} s", t.as_secs_f64()),
        None => format!(
            "TIMED OUT after {} s holding {}/{} routes",
            r.timeout.as_secs(),
            r.held,
            r.expected
        ),
    };
    if let Some(f) = r.fib {
        match f.convergence {
            Some(t) => s.push_str(&format!(", in the FIB in {:.3} s", t.as_secs_f64())),
            None => s.push_str(&format!(
                ", the FIB held only {}/{} routes",
                f.held, r.expected
            )),
        }
        if f.next_hops_checked > 0 {
            s.push_str(&format!(" ({} next hops checked)", f.next_hops_checked));
        }
    }
    if let Some(t) = r.settle {
        s.push_str(&format!(", settled {:.3} s", t.as_secs_f64()));
    }
    if let Some(t) = r.injection {
        s.push_str(&format!(", injected in {:.3} s", t.as_secs_f64()));
    }
    if let Some(m) = r.memory {
        s.push_str(&format!(
            ", peak RSS {:.1} MiB (now {:.1} MiB)",
            m.peak_kib as f64 / 1024.0,
            m.now_kib as f64 / 1024.0
        ));
    }
    if r.monitor_updates > 0 {
        s.push_str(&format!(
            ", {} UPDATEs to the monitor ({:.0} routes each)",
            r.monitor_updates,
            r.monitor_announcements as f64 / r.monitor_updates as f64
        ));
    }
    for a in &r.anomalies {
        s.push_str(&format!("; {a}"));
    }
    s
}
