//! The BGP benchmark's own path, small enough for the normal suite: injectors straight to the
//! monitor, one tiny scenario through BIRD and through `ginger-node` (the build under test, not
//! necessarily release), and a run that hits its timeout. Run as root.

use std::time::Duration;

use e2e::bench::{RunOptions, RunResult, Scenario, TargetKind, run_once};
use e2e::{Netns, TestDir, bin_path, list_namespaces};

fn options(timeout: Duration) -> RunOptions {
    RunOptions {
        timeout,
        setup_timeout: Duration::from_secs(30),
        // The debug build is enough to keep the Ginger target's plumbing honest.
        ginger_bin: bin_path("ginger-node").unwrap_or_default(),
        progress: None,
    }
}

fn run(target: TargetKind, scenario: &str, timeout: Duration) -> RunResult {
    let dir = TestDir::new(&format!("bench-{target}")).unwrap();
    let scenario: Scenario = scenario.parse().unwrap();
    match run_once(target, scenario, &options(timeout), dir.path()) {
        Ok(r) => r,
        Err(e) => panic!(
            "{target} {scenario}: {e} (files in {})",
            dir.path().display()
        ),
    }
}

/// Namespaces this test process still has (names carry the creating process's id).
fn my_namespaces() -> Vec<String> {
    let probe = Netns::new("probe").unwrap();
    let mut parts = probe.name().splitn(3, '-');
    let prefix = format!(
        "{}-{}-",
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("")
    );
    list_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&prefix) && n != probe.name())
        .collect()
}

#[test]
fn injectors_reach_the_monitor_directly_and_every_route_is_counted_once() {
    let r = run(TargetKind::Direct, "2x5000", Duration::from_secs(30));
    assert!(r.convergence.is_some(), "{r:?}");
    assert_eq!((r.held, r.expected), (10_000, 10_000));
    // 810 host routes per 4096-octet UPDATE: 6 full and 1 partial per injector.
    assert_eq!(r.monitor_updates, 14);
    assert_eq!(r.monitor_announcements, 10_000);
    assert!(r.memory.is_none());
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert!(r.settle >= r.convergence);
    assert!(my_namespaces().is_empty(), "{:?}", my_namespaces());
}

#[test]
fn one_injector_through_bird() {
    let r = run(TargetKind::Bird, "1x1000", Duration::from_secs(30));
    assert!(r.convergence.is_some(), "{r:?}");
    assert_eq!((r.held, r.expected), (1000, 1000));
    // BIRD passes the routes on with its own AS first (checked per UPDATE by the monitor).
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    let m = r.memory.expect("BIRD's memory");
    assert!(m.peak_kib >= m.now_kib && m.now_kib > 0, "{m:?}");
    assert!(my_namespaces().is_empty(), "{:?}", my_namespaces());
}

#[test]
fn two_injectors_through_ginger_node_see_each_others_routes() {
    let r = run(TargetKind::Ginger, "2x1000", Duration::from_secs(30));
    assert!(r.convergence.is_some(), "{r:?}");
    assert_eq!((r.held, r.expected), (2000, 2000));
    // Settled: each injector also holds the other's 1000 routes.
    assert!(r.settle.is_some(), "{r:?}");
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert!(r.memory.is_some_and(|m| m.peak_kib > 0));
}

#[test]
fn a_run_past_its_timeout_is_reported_as_such_and_cleaned_up() {
    // No target could pass 300k routes on within 0 s: the first check is already too late.
    let r = run(TargetKind::Bird, "1x300k", Duration::ZERO);
    assert_eq!(r.convergence, None);
    assert!(r.held < r.expected, "{r:?}");
    assert_eq!(r.settle, None);
    assert!(my_namespaces().is_empty(), "{:?}", my_namespaces());
}
