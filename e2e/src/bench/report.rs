//! From runs to what a reader compares: per scenario and target the median convergence time and
//! peak memory, a Markdown table, and Ginger's ratios to BIRD against the targets (time ≤ 1.0,
//! peak RSS ≤ 2.0). Runs in FIB mode add an "in FIB" column, and the time ratio is then the
//! FIB's.
//!
//! Owns: `Summary` (medians; a timed-out run counts as slower than any finished one), `Verdict`,
//! and the text of the table. Must not: run anything or read the clock.

use std::fmt::Write;
use std::time::Duration;

use super::run::{FibFigures, RunResult};
use super::scenario::Scenario;
use super::target::TargetKind;

/// Ginger's convergence time may be at most this multiple of BIRD's.
pub const TIME_RATIO_TARGET: f64 = 1.0;
/// Ginger's peak RSS may be at most this multiple of BIRD's.
pub const RSS_RATIO_TARGET: f64 = 2.0;

/// A median convergence figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Figure {
    /// Converged in this time.
    Time(Duration),
    /// The median run did not converge within this limit.
    TimedOut(Duration),
    /// No run produced a figure.
    Failed,
}

/// One target's runs of one scenario, condensed.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The scenario.
    pub scenario: Scenario,
    /// The target.
    pub target: TargetKind,
    /// Runs attempted.
    pub runs: usize,
    /// Runs that converged.
    pub converged: usize,
    /// Runs that hit the timeout.
    pub timed_out: usize,
    /// Why the other runs failed.
    pub errors: Vec<String>,
    /// Median convergence.
    pub time: Figure,
    /// Median time until the target's FIB held every route (FIB mode only).
    pub fib_time: Option<Figure>,
    /// Runs whose FIB held every route in time.
    pub fib_converged: usize,
    /// Median time until every injector held the others' routes (converged runs only).
    pub settle: Option<Duration>,
    /// Median peak RSS (`VmHWM`), KiB.
    pub peak_kib: Option<u64>,
    /// Median RSS at the end of the run, KiB.
    pub rss_kib: Option<u64>,
    /// Routes per UPDATE the monitor received (mean over runs).
    pub nlri_per_update: Option<f64>,
    /// Anomalies seen in any run, once each.
    pub anomalies: Vec<String>,
}

/// Condense the runs (`Err` = the run failed with that message) of one target.
pub fn summarize(
    scenario: Scenario,
    target: TargetKind,
    runs: &[Result<RunResult, String>],
) -> Summary {
    let ok: Vec<&RunResult> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let mut errors: Vec<String> = runs.iter().filter_map(|r| r.clone().err()).collect();
    errors.dedup();
    let mut anomalies: Vec<String> = ok.iter().flat_map(|r| r.anomalies.clone()).collect();
    anomalies.sort();
    anomalies.dedup();
    let timeout = ok.iter().map(|r| r.timeout).max().unwrap_or_default();
    let time = median_figure(ok.iter().map(|r| r.convergence).collect(), timeout);
    let fib_runs: Vec<&FibFigures> = ok.iter().filter_map(|r| r.fib.as_ref()).collect();
    let fib_time = (!fib_runs.is_empty())
        .then(|| median_figure(fib_runs.iter().map(|f| f.convergence).collect(), timeout));
    let settles: Vec<Duration> = ok.iter().filter_map(|r| r.settle).collect();
    let nlri: Vec<f64> = ok
        .iter()
        .filter(|r| r.monitor_updates > 0)
        .map(|r| r.monitor_announcements as f64 / r.monitor_updates as f64)
        .collect();
    Summary {
        scenario,
        target,
        runs: runs.len(),
        converged: ok.iter().filter(|r| r.convergence.is_some()).count(),
        timed_out: ok.iter().filter(|r| r.convergence.is_none()).count(),
        errors,
        time,
        fib_time,
        fib_converged: fib_runs.iter().filter(|f| f.convergence.is_some()).count(),
        settle: median_value(settles, |a, b| (a + b) / 2),
        peak_kib: median_value(
            ok.iter()
                .filter_map(|r| r.memory.map(|m| m.peak_kib))
                .collect(),
            |a, b| (a + b) / 2,
        ),
        rss_kib: median_value(
            ok.iter()
                .filter_map(|r| r.memory.map(|m| m.now_kib))
                .collect(),
            |a, b| (a + b) / 2,
        ),
        nlri_per_update: (!nlri.is_empty()).then(|| nlri.iter().sum::<f64>() / nlri.len() as f64),
        anomalies,
    }
}

/// The median of run times (`None`: timed out, slower than any finished run).
fn median_figure(mut times: Vec<Option<Duration>>, timeout: Duration) -> Figure {
    times.sort_by_key(|t| (t.is_none(), *t));
    match median_of(&times) {
        None => Figure::Failed,
        Some((Some(a), Some(b))) => Figure::Time((a + b) / 2),
        Some(_) => Figure::TimedOut(timeout),
    }
}

/// The middle pair of a sorted slice (the same element twice for an odd length).
fn median_of<T: Copy>(sorted: &[T]) -> Option<(T, T)> {
    let n = sorted.len();
    (n > 0).then(|| (sorted[(n - 1) / 2], sorted[n / 2]))
}

fn median_value<T: Copy + Ord>(mut v: Vec<T>, mean: impl Fn(T, T) -> T) -> Option<T> {
    v.sort();
    median_of(&v).map(|(a, b)| mean(a, b))
}

/// Ginger against BIRD on one scenario.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// Ginger's time / BIRD's (`INFINITY` when only Ginger timed out); `None` without both.
    pub time_ratio: Option<f64>,
    /// Ginger's peak RSS / BIRD's; `None` without both.
    pub rss_ratio: Option<f64>,
    /// The time ratio compares the FIB times.
    pub on_fib: bool,
}

impl Verdict {
    /// Compare Ginger's summary with BIRD's (the FIB times when both have one).
    pub fn of(ginger: &Summary, bird: &Summary) -> Verdict {
        let (times, on_fib) = match (ginger.fib_time, bird.fib_time) {
            (Some(g), Some(b)) => ((g, b), true),
            _ => ((ginger.time, bird.time), false),
        };
        let time_ratio = time_ratio(times.0, times.1);
        let rss_ratio = match (ginger.peak_kib, bird.peak_kib) {
            (Some(g), Some(b)) if b > 0 => Some(g as f64 / b as f64),
            _ => None,
        };
        Verdict {
            time_ratio,
            rss_ratio,
            on_fib,
        }
    }

    /// Whether the time target is met (`None`: cannot tell).
    pub fn time_met(&self) -> Option<bool> {
        self.time_ratio.map(|r| r <= TIME_RATIO_TARGET)
    }

    /// Whether the memory target is met (`None`: cannot tell).
    pub fn rss_met(&self) -> Option<bool> {
        self.rss_ratio.map(|r| r <= RSS_RATIO_TARGET)
    }

    /// One line for under the table.
    pub fn line(&self) -> String {
        let part = |name: &str, ratio: Option<f64>, target: f64, met: Option<bool>| match ratio {
            Some(r) => format!(
                "{name} ×{} (target ≤ {target:.1}: {})",
                ratio_text(r),
                if met == Some(true) { "met" } else { "MISSED" }
            ),
            None => format!("{name} n/a (Ginger or BIRD has no figure)"),
        };
        format!(
            "Ginger / BIRD: {}; {}",
            part(
                if self.on_fib { "time in FIB" } else { "time" },
                self.time_ratio,
                TIME_RATIO_TARGET,
                self.time_met()
            ),
            part("peak RSS", self.rss_ratio, RSS_RATIO_TARGET, self.rss_met())
        )
    }
}

/// One target's time over another's (`INFINITY` when only the first timed out).
fn time_ratio(a: Figure, b: Figure) -> Option<f64> {
    match (a, b) {
        (Figure::Time(a), Figure::Time(b)) if !b.is_zero() => {
            Some(a.as_secs_f64() / b.as_secs_f64())
        }
        (Figure::TimedOut(_), Figure::Time(_)) => Some(f64::INFINITY),
        _ => None,
    }
}

fn ratio_text(r: f64) -> String {
    if r.is_infinite() {
        "∞".into()
    } else {
        format!("{r:.2}")
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1}", k as f64 / 1024.0))
        .unwrap_or_else(|| "–".into())
}

fn figure_text(f: Figure) -> String {
    match f {
        Figure::Time(d) => secs(d),
        Figure::TimedOut(t) => format!("timeout (> {} s)", t.as_secs()),
        Figure::Failed => "failed".into(),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The Markdown table for one scenario (rows in the order given), then Ginger's verdict against
/// BIRD when both ran.
pub fn render_table(scenario: Scenario, summaries: &[Summary]) -> String {
    let mut s = String::new();
    let runs = summaries.iter().map(|x| x.runs).max().unwrap_or(0);
    let _ = writeln!(
        s,
        "### {scenario}: {} injector(s) × {} routes = {} routes (median of {runs} run(s))\n",
        scenario.injectors,
        scenario.prefixes,
        scenario.total()
    );
    let fib = summaries.iter().any(|x| x.fib_time.is_some());
    let bird_fib = summaries
        .iter()
        .find(|x| x.target == TargetKind::Bird)
        .and_then(|b| b.fib_time);
    if fib {
        let _ = writeln!(
            s,
            "| target | in FIB (s) | × BIRD | monitor (s) | peak RSS (MiB) | RSS after (MiB) | settled (s) | routes/UPDATE | in FIB / runs |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        let _ = writeln!(
            s,
            "| target | convergence (s) | peak RSS (MiB) | RSS after (MiB) | settled (s) | routes/UPDATE | converged runs |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    }
    for x in summaries {
        let time = figure_text(x.time);
        let name = match x.target {
            TargetKind::Direct => "direct (harness only)".to_string(),
            TargetKind::Frr if fib => "frr (bgpd + zebra)".to_string(),
            TargetKind::Frr => "frr (bgpd)".to_string(),
            other => other.to_string(),
        };
        if fib {
            let fib_time = x.fib_time.unwrap_or(Figure::Failed);
            let ratio = bird_fib
                .and_then(|b| time_ratio(fib_time, b))
                .map(ratio_text)
                .unwrap_or_else(|| "–".into());
            let _ = writeln!(
                s,
                "| {name} | {} | {ratio} | {time} | {} | {} | {} | {} | {}/{} |",
                figure_text(fib_time),
                mib(x.peak_kib),
                mib(x.rss_kib),
                x.settle.map(secs).unwrap_or_else(|| "–".into()),
                x.nlri_per_update
                    .map(|n| format!("{n:.0}"))
                    .unwrap_or_else(|| "–".into()),
                x.fib_converged,
                x.runs
            );
            continue;
        }
        let _ = writeln!(
            s,
            "| {name} | {time} | {} | {} | {} | {} | {}/{} |",
            mib(x.peak_kib),
            mib(x.rss_kib),
            x.settle.map(secs).unwrap_or_else(|| "–".into()),
            x.nlri_per_update
                .map(|n| format!("{n:.0}"))
                .unwrap_or_else(|| "–".into()),
            x.converged,
            x.runs
        );
    }
    let find = |k: TargetKind| summaries.iter().find(|x| x.target == k);
    if let (Some(g), Some(b)) = (find(TargetKind::Ginger), find(TargetKind::Bird)) {
        let _ = writeln!(s, "\n{}", Verdict::of(g, b).line());
    }
    for x in summaries {
        for e in &x.errors {
            let _ = writeln!(s, "\n{} failed: {e}", x.target);
        }
        for a in &x.anomalies {
            let _ = writeln!(s, "\n{}: {a}", x.target);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::MemoryUse;

    fn result(target: TargetKind, secs: Option<f64>, peak_mib: u64) -> Result<RunResult, String> {
        Ok(RunResult {
            scenario: "2x100k".parse().unwrap(),
            target,
            convergence: secs.map(Duration::from_secs_f64),
            timeout: Duration::from_secs(60),
            held: 0,
            expected: 200_000,
            injection: None,
            settle: secs.map(Duration::from_secs_f64),
            // No target process (direct mode) has no memory figure.
            memory: (peak_mib > 0).then_some(MemoryUse {
                peak_kib: peak_mib * 1024,
                now_kib: peak_mib * 1024,
            }),
            fib: None,
            monitor_updates: 250,
            monitor_announcements: 200_000,
            anomalies: Vec::new(),
        })
    }

    fn sc() -> Scenario {
        "2x100k".parse().unwrap()
    }

    #[test]
    fn medians_treat_timeouts_as_slowest_and_skip_failures() {
        let g = TargetKind::Ginger;
        let s = summarize(
            sc(),
            g,
            &[
                result(g, Some(3.0), 30),
                result(g, None, 50),
                result(g, Some(1.0), 10),
                Err("boom".into()),
            ],
        );
        assert_eq!(s.time, Figure::Time(Duration::from_secs(3)));
        assert_eq!((s.runs, s.converged, s.timed_out), (4, 2, 1));
        assert_eq!(s.peak_kib, Some(30 * 1024));
        assert_eq!(s.errors, vec!["boom".to_string()]);
        assert_eq!(s.nlri_per_update, Some(800.0));
        let even = summarize(
            sc(),
            g,
            &[result(g, Some(1.0), 10), result(g, Some(2.0), 20)],
        );
        assert_eq!(even.time, Figure::Time(Duration::from_millis(1500)));
        let mostly_late = summarize(
            sc(),
            g,
            &[
                result(g, None, 1),
                result(g, None, 1),
                result(g, Some(1.0), 1),
            ],
        );
        assert_eq!(mostly_late.time, Figure::TimedOut(Duration::from_secs(60)));
        assert_eq!(summarize(sc(), g, &[Err("x".into())]).time, Figure::Failed);
    }

    #[test]
    fn verdict_compares_with_bird_against_the_targets() {
        let (g, b) = (TargetKind::Ginger, TargetKind::Bird);
        let bird = summarize(sc(), b, &[result(b, Some(2.0), 10)]);
        let fast = summarize(sc(), g, &[result(g, Some(1.0), 25)]);
        let v = Verdict::of(&fast, &bird);
        assert_eq!(v.time_ratio, Some(0.5));
        assert_eq!(v.rss_ratio, Some(2.5));
        assert_eq!((v.time_met(), v.rss_met()), (Some(true), Some(false)));
        assert!(
            v.line().contains("time ×0.50 (target ≤ 1.0: met)"),
            "{}",
            v.line()
        );
        assert!(v.line().contains("peak RSS ×2.50 (target ≤ 2.0: MISSED)"));
        let late = summarize(sc(), g, &[result(g, None, 10)]);
        assert_eq!(Verdict::of(&late, &bird).time_met(), Some(false));
        assert!(Verdict::of(&late, &bird).line().contains("×∞"));
    }

    #[test]
    fn the_table_has_a_row_per_target_and_the_verdict() {
        let (g, b, d) = (TargetKind::Ginger, TargetKind::Bird, TargetKind::Direct);
        let rows = [
            summarize(sc(), d, &[result(d, Some(0.05), 0)]),
            summarize(sc(), g, &[result(g, Some(0.5), 40)]),
            summarize(
                sc(),
                b,
                &[
                    result(b, Some(0.4), 20),
                    result(b, None, 20),
                    result(b, Some(0.4), 20),
                ],
            ),
        ];
        let t = render_table(sc(), &rows);
        assert!(
            t.starts_with(
                "### 2x100k: 2 injector(s) × 100000 routes = 200000 routes (median of 3 run(s))"
            ),
            "{t}"
        );
        assert!(
            t.contains("| direct (harness only) | 0.050 | – | – |"),
            "{t}"
        );
        assert!(
            t.contains("| ginger | 0.500 | 40.0 | 40.0 | 0.500 | 800 | 1/1 |"),
            "{t}"
        );
        assert!(t.contains("| bird | 0.400 | 20.0 |"), "{t}");
        assert!(t.contains("| 2/3 |"), "{t}");
        assert!(t.contains("Ginger / BIRD: time ×1.25 (target ≤ 1.0: MISSED); peak RSS ×2.00 (target ≤ 2.0: met)"), "{t}");
    }

    fn fib_result(
        target: TargetKind,
        monitor: f64,
        fib: Option<f64>,
        peak_mib: u64,
    ) -> Result<RunResult, String> {
        let mut r = result(target, Some(monitor), peak_mib)?;
        r.fib = Some(FibFigures {
            convergence: fib.map(Duration::from_secs_f64),
            held: 200_000,
            next_hops_checked: 10,
        });
        Ok(r)
    }

    #[test]
    fn in_fib_mode_the_table_and_the_verdict_use_the_fib_times() {
        let (g, b, f) = (TargetKind::Ginger, TargetKind::Bird, TargetKind::Frr);
        let rows = [
            summarize(sc(), g, &[fib_result(g, 0.5, Some(1.0), 40)]),
            summarize(sc(), b, &[fib_result(b, 0.4, Some(4.0), 20)]),
            summarize(
                sc(),
                f,
                &[
                    fib_result(f, 1.0, Some(6.0), 30),
                    fib_result(f, 1.0, None, 30),
                ],
            ),
        ];
        assert_eq!(rows[0].fib_time, Some(Figure::Time(Duration::from_secs(1))));
        assert_eq!((rows[2].fib_converged, rows[2].runs), (1, 2));
        let t = render_table(sc(), &rows);
        assert!(
            t.contains("| target | in FIB (s) | × BIRD | monitor (s) |"),
            "{t}"
        );
        assert!(
            t.contains("| ginger | 1.000 | 0.25 | 0.500 | 40.0 | 40.0 | 0.500 | 800 | 1/1 |"),
            "{t}"
        );
        assert!(t.contains("| bird | 4.000 | 1.00 | 0.400 |"), "{t}");
        // One of two runs timed out: the median of two is the timeout.
        assert!(
            t.contains("| frr (bgpd + zebra) | timeout (> 60 s) | ∞ | 1.000 |"),
            "{t}"
        );
        assert!(t.contains("| 1/2 |"), "{t}");
        // The monitor alone would give ×1.25; the FIB gives ×0.25.
        assert!(
            t.contains("Ginger / BIRD: time in FIB ×0.25 (target ≤ 1.0: met)"),
            "{t}"
        );
    }
}
