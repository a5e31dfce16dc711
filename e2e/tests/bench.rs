//! The BGP benchmark's own path, small enough for the normal suite: injectors straight to the
//! monitor, one tiny scenario through BIRD and through `ginger-node` (the build under test, not
//! necessarily release), a run that hits its timeout, and FIB mode (`--fib`) through both
//! (mechanics only: every route counted in the kernel table, next hops read back). Run as root.

use std::time::Duration;

use e2e::bench::{BenchError, RunOptions, RunResult, Scenario, TargetKind, run_once};
use e2e::{Netns, TestDir, bin_path, list_namespaces};

fn options(timeout: Duration, fib: bool) -> RunOptions {
    RunOptions {
        timeout,
        setup_timeout: Duration::from_secs(30),
        // The debug build is enough to keep the Ginger target's plumbing honest.
        ginger_bin: bin_path("ginger-node").unwrap_or_default(),
        progress: None,
        fib,
    }
}

fn run(target: TargetKind, scenario: &str, timeout: Duration) -> RunResult {
    run_mode(target, scenario, timeout, false)
}

fn run_mode(target: TargetKind, scenario: &str, timeout: Duration, fib: bool) -> RunResult {
    let dir = TestDir::new(&format!("bench-{target}")).unwrap();
    let scenario: Scenario = scenario.parse().unwrap();
    match run_once(target, scenario, &options(timeout, fib), dir.path()) {
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

/// FIB mode: the target's main table ends up with every route, each via its injector.
fn fib_run_counts_every_route_in_the_kernel(target: TargetKind) {
    let r = run_mode(target, "1x1000", Duration::from_secs(30), true);
    assert!(r.convergence.is_some(), "{r:?}");
    let fib = r.fib.expect("FIB figures in FIB mode");
    assert!(fib.convergence.is_some(), "{r:?}");
    assert_eq!(fib.held, 1000, "{r:?}");
    // First, last and three between of the one injector's range, read back via 10.0.0.10.
    assert_eq!(fib.next_hops_checked, 5);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert!(r.memory.is_some_and(|m| m.peak_kib > 0));
    assert!(my_namespaces().is_empty(), "{:?}", my_namespaces());
}

#[test]
fn fib_mode_through_bird_programs_every_route_via_its_injector() {
    fib_run_counts_every_route_in_the_kernel(TargetKind::Bird);
}

#[test]
fn fib_mode_through_ginger_node_programs_every_route_via_its_injector() {
    fib_run_counts_every_route_in_the_kernel(TargetKind::Ginger);
}

#[test]
fn fib_mode_refuses_targets_without_a_fib_before_creating_anything() {
    for target in [TargetKind::Gobgp, TargetKind::Direct] {
        let dir = TestDir::new("bench-nofib").unwrap();
        let scenario: Scenario = "1x10".parse().unwrap();
        let err = run_once(
            target,
            scenario,
            &options(Duration::from_secs(5), true),
            dir.path(),
        )
        .map(|r| format!("{r:?}"))
        .expect_err("no FIB mode");
        assert!(matches!(err, BenchError::Invalid { .. }), "{err}");
    }
    assert!(my_namespaces().is_empty(), "{:?}", my_namespaces());
}
