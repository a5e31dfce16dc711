//! `cni-bench`: the CNI benchmark. In fresh network namespaces, N sequential pod ADDs then N
//! DELs through Ginger (the `ginger` plugin against a running `ginger-node`) and through
//! Debian's `ptp` + `host-local` in the same invocation; each plugin is executed as containerd
//! executes it (a cleared environment plus the `CNI_*` variables, the configuration on stdin,
//! from a thread inside the node namespace, no `ip netns exec` in between) and timed from the
//! fork to the exit. Prints p50/p99 per operation and Ginger's p50 ratio to ptp's.
//!
//! Runs as root. Ctrl-C (or SIGTERM) stops after the current plugin execution and tears the
//! run's namespaces and processes down. See `docs/benchmarks.md` (## CNI).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use e2e::TestDir;
use e2e::bench::{self, describe_machine, load_average};
use e2e::pods::{
    CniRunner, DEBIAN_CNI_DIR, Pod, PodBinaries, PodNode, link_names, pod_cluster, uplinked_node,
};
use e2e::write_cluster;
use serde_json::{Value, json};

/// How long the bench waits, after the last DEL, for ginger-node to finish removing veths.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Parser, Debug)]
#[command(
    name = "cni-bench",
    about = "CNI benchmark: N sequential pod ADDs then DELs through Ginger and through Debian's ptp + host-local (run as root)"
)]
struct Cli {
    /// Pods per run (ADDs, then as many DELs).
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Runs; Ginger and ptp take turns (odd runs Ginger first), samples are pooled.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Directory holding `ginger` and `ginger-node` (default: this program's own directory,
    /// `target/release` for a release build).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Also write the report to this Markdown file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Keep every run's directory (configs, logs, host-local's data).
    #[arg(long)]
    keep: bool,
}

/// The two plugins compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plugin {
    Ginger,
    Ptp,
}

impl Plugin {
    fn name(self) -> &'static str {
        match self {
            Plugin::Ginger => "ginger",
            Plugin::Ptp => "ptp + host-local",
        }
    }
}

/// Wall times of one plugin's ADDs and DELs.
#[derive(Clone, Debug, Default)]
struct Samples {
    add: Vec<Duration>,
    del: Vec<Duration>,
    /// Ginger only, one per run: from the last DEL's exit until ginger-node had removed every
    /// veth and released every address (the teardown DEL hands over; not part of DEL's time).
    drain: Vec<Duration>,
}

/// p50 and p99 (nearest rank) of a sample set.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Percentiles {
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn percentiles(samples: &[Duration]) -> Percentiles {
    let mut sorted = samples.to_vec();
    sorted.sort();
    Percentiles {
        p50: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        "n/a".into()
    } else {
        format!("{:.2}", a.as_secs_f64() / b.as_secs_f64())
    }
}

/// How long ginger-node took after the last DEL to remove the remaining veths.
fn drain_line(drains: &[Duration], pods: usize) -> String {
    if drains.is_empty() {
        return String::new();
    }
    let p = percentiles(drains);
    format!(
        "Ginger's DEL hands the veth removal to ginger-node; after the last of {pods} DELs, \
         ginger-node had removed every veth and released every address within {} (median of \
         {} runs; max {}).\n",
        ms(p.p50),
        drains.len(),
        ms(*drains.iter().max().unwrap_or(&Duration::ZERO))
    )
}

/// The Markdown table of both plugins and the p50 ratios.
fn render_table(ginger: &Samples, ptp: &Samples) -> String {
    let (ga, gd) = (percentiles(&ginger.add), percentiles(&ginger.del));
    let (pa, pd) = (percentiles(&ptp.add), percentiles(&ptp.del));
    let mut out = String::from(
        "| plugin | ADD p50 | ADD p99 | DEL p50 | DEL p99 | samples per op |\n\
         |---|---|---|---|---|---|\n",
    );
    for (name, add, del, n) in [
        (Plugin::Ginger.name(), ga, gd, ginger.add.len()),
        (Plugin::Ptp.name(), pa, pd, ptp.add.len()),
    ] {
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {n} |\n",
            ms(add.p50),
            ms(add.p99),
            ms(del.p50),
            ms(del.p99)
        ));
    }
    out.push_str(&format!(
        "| **ginger / ptp (p50)** | **{}** | | **{}** | | |\n",
        ratio(ga.p50, pa.p50),
        ratio(gd.p50, pd.p50)
    ));
    out
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cni-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if !bench::is_root() {
        bail!("run as root: every run creates network namespaces");
    }
    if cli.runs == 0 || cli.pods == 0 {
        bail!("--runs and --pods must be at least 1");
    }
    let binaries = PodBinaries::for_bench(cli.bin_dir.as_deref()).map_err(anyhow::Error::msg)?;
    for plugin in ["ptp", "host-local"] {
        let path = Path::new(DEBIAN_CNI_DIR).join(plugin);
        if !path.is_file() {
            bail!(
                "{} is missing: apt-get install containernetworking-plugins",
                path.display()
            );
        }
    }
    bench::stop_on_signals("cni-bench").context("handling SIGINT/SIGTERM")?;
    let mut work = TestDir::new("cni-bench")?;
    if cli.keep {
        work.keep();
    }
    let mut report = format!(
        "`cni-bench --pods {} --runs {}`\n\nMachine:\n\n{}\nBinaries: `{}`, `{}`; Debian's `{DEBIAN_CNI_DIR}/ptp` and \
         `host-local`.\n\n",
        cli.pods,
        cli.runs,
        describe_machine(),
        binaries.plugin.display(),
        binaries.node.display()
    );
    print!("{report}");
    let (mut ginger, mut ptp) = (Samples::default(), Samples::default());
    for run in 1..=cli.runs {
        let order = if run % 2 == 1 {
            [Plugin::Ginger, Plugin::Ptp]
        } else {
            [Plugin::Ptp, Plugin::Ginger]
        };
        for plugin in order {
            let dir = work.subdir(&format!(
                "{}-{run}",
                plugin.name().split(' ').next().unwrap_or("x")
            ))?;
            let samples = match plugin {
                Plugin::Ginger => bench_ginger(&binaries, &dir, cli.pods),
                Plugin::Ptp => bench_ptp(&dir, cli.pods),
            };
            let samples = match samples {
                Ok(s) => s,
                Err(e) => {
                    work.keep();
                    return Err(e.context(format!(
                        "{} run {run} (files in {})",
                        plugin.name(),
                        dir.display()
                    )));
                }
            };
            let (a, d) = (percentiles(&samples.add), percentiles(&samples.del));
            eprintln!(
                "run {run}/{}: {}: ADD p50 {} p99 {}, DEL p50 {} p99 {}",
                cli.runs,
                plugin.name(),
                ms(a.p50),
                ms(a.p99),
                ms(d.p50),
                ms(d.p99)
            );
            let into = if plugin == Plugin::Ginger {
                &mut ginger
            } else {
                &mut ptp
            };
            into.add.extend(samples.add);
            into.del.extend(samples.del);
            into.drain.extend(samples.drain);
            if bench::stop_requested() {
                bail!("interrupted");
            }
        }
    }
    let table = render_table(&ginger, &ptp);
    let end = format!(
        "\n{}\nLoad average at the end: {}\n",
        drain_line(&ginger.drain, cli.pods),
        load_average()
    );
    print!("{table}{end}");
    report.push_str(&table);
    report.push_str(&end);
    if let Some(path) = &cli.markdown {
        fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn stop_check() -> anyhow::Result<()> {
    if bench::stop_requested() {
        bail!("interrupted");
    }
    Ok(())
}

/// `pods` sandboxes, created before the clock runs.
fn sandboxes(pods: usize) -> anyhow::Result<Vec<Pod>> {
    (0..pods)
        .map(|i| Pod::create("bench", &format!("pod-{i}")).map_err(anyhow::Error::from))
        .collect()
}

/// Time one plugin execution; a failure ends the run with the plugin's own words.
fn timed(
    cni: &CniRunner<'_>,
    binary: &Path,
    command: &str,
    pod: &Pod,
    conf: &Value,
) -> anyhow::Result<(Duration, Value)> {
    let out = cni.plugin(binary, command, pod.reference(), conf)?;
    let result = out
        .result()
        .with_context(|| format!("{command} of {}", pod.reference().name))?;
    Ok((out.elapsed, result))
}

fn bench_ginger(binaries: &PodBinaries, dir: &Path, pods: usize) -> anyhow::Result<Samples> {
    let yaml = pod_cluster(
        &[("bench-node", "10.99.0.1/24")],
        &[("default-ipv4-ippool", "10.244.0.0/16", 26)],
        false,
    );
    let cluster = write_cluster(dir, "cluster.yaml", &yaml)?;
    let node = PodNode::start(
        uplinked_node("bench", "10.99.0.1/24")?,
        dir,
        binaries.clone(),
        &cluster,
        "bench-node",
        &[],
    )?;
    let mut sandboxes = sandboxes(pods)?;
    let list = node.ginger_only()?;
    let entry = list.plugins()[0].clone();
    let cni = node.cni();
    let mut samples = Samples::default();
    let conf = list.plugin_config(&entry, None);
    for pod in &mut sandboxes {
        stop_check()?;
        let (t, result) = timed(&cni, &binaries.plugin, "ADD", pod, &conf)?;
        samples.add.push(t);
        pod.set_result(Some(result));
    }
    let cali = link_names(node.netns())?
        .iter()
        .filter(|l| l.starts_with("cali"))
        .count();
    if cali != pods || node.addresses_in_use()? != pods as u64 {
        bail!("after {pods} ADDs the node has {cali} pod links");
    }
    for pod in &sandboxes {
        stop_check()?;
        let conf = list.plugin_config(&entry, pod.result());
        samples
            .del
            .push(timed(&cni, &binaries.plugin, "DEL", pod, &conf)?.0);
    }
    // Untimed for DEL, but measured: the agent's removal of the veths DEL handed it. The next
    // run starts only once it is over, so it never overlaps the other plugin's run.
    let after_last = Instant::now();
    loop {
        let cali = link_names(node.netns())?
            .iter()
            .filter(|l| l.starts_with("cali"))
            .count();
        let left = node.addresses_in_use()?;
        if cali == 0 && left == 0 {
            break;
        }
        if after_last.elapsed() > DRAIN_TIMEOUT {
            bail!("{cali} pod links and {left} addresses left {DRAIN_TIMEOUT:?} after the DELs");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    samples.drain.push(after_last.elapsed());
    Ok(samples)
}

/// Debian's `ptp` with `host-local` IPAM keeping its data in the run's directory; no IP
/// masquerade (Ginger installs no NAT rule either).
fn ptp_conf(dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "bench-ptp",
        "type": "ptp",
        "ipMasq": false,
        "mtu": 1500,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.66.0.0/16"}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": dir.join("host-local"),
        }
    })
}

fn bench_ptp(dir: &Path, pods: usize) -> anyhow::Result<Samples> {
    let node = uplinked_node("ptpnode", "10.99.0.1/24")?;
    let mut sandboxes = sandboxes(pods)?;
    let cni = CniRunner::new(&node);
    let binary = Path::new(DEBIAN_CNI_DIR).join("ptp");
    let conf = ptp_conf(dir);
    let mut samples = Samples::default();
    for pod in &mut sandboxes {
        stop_check()?;
        let (t, result) = timed(&cni, &binary, "ADD", pod, &conf)?;
        samples.add.push(t);
        pod.set_result(Some(result));
    }
    let veths = link_names(&node)?
        .iter()
        .filter(|l| l.starts_with("veth"))
        .count();
    if veths != pods {
        bail!("after {pods} ADDs the node has {veths} ptp links");
    }
    for pod in &sandboxes {
        stop_check()?;
        let mut conf = conf.clone();
        conf["prevResult"] = pod.result().cloned().unwrap_or(Value::Null);
        samples.del.push(timed(&cni, &binary, "DEL", pod, &conf)?.0);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).rev().map(d).collect();
        assert_eq!(
            percentiles(&samples),
            Percentiles {
                p50: d(50),
                p99: d(99)
            }
        );
        assert_eq!(
            percentiles(&[d(7)]),
            Percentiles {
                p50: d(7),
                p99: d(7)
            }
        );
        assert_eq!(
            percentiles(&[d(1), d(9)]),
            Percentiles {
                p50: d(1),
                p99: d(9)
            }
        );
        assert_eq!(percentiles(&[]).p50, Duration::ZERO);
    }

    #[test]
    fn table_shows_the_p50_ratios() {
        let ginger = Samples {
            add: vec![d(2), d(4)],
            del: vec![d(3)],
            drain: vec![d(40)],
        };
        let ptp = Samples {
            add: vec![d(8)],
            del: vec![d(12)],
            drain: vec![],
        };
        let t = render_table(&ginger, &ptp);
        assert!(
            t.contains("| ginger | 2.00 ms | 4.00 ms | 3.00 ms | 3.00 ms | 2 |"),
            "{t}"
        );
        assert!(t.contains("| ptp + host-local | 8.00 ms |"), "{t}");
        assert!(
            t.contains("| **ginger / ptp (p50)** | **0.25** | | **0.25** | | |"),
            "{t}"
        );
    }
}
