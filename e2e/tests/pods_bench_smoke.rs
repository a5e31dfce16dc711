//! The CNI benchmark's own path, small enough for the normal suite: `cni-bench` (the build
//! under test, with this profile's `ginger` and `ginger-node`) runs 3 pods × 2 runs through
//! Ginger and through Debian's ptp + host-local, prints a table with every sample counted and
//! the two p50 ratios, and leaves no namespace behind. The figures themselves are not judged:
//! the benchmark is documented in docs/benchmarks.md, not timed here. Run as root.

use std::fs;
use std::process::Command;

use e2e::{bin_path, list_namespaces};

/// Namespaces whose harness marker names `pid` as their creator.
fn namespaces_of(pid: u32) -> Vec<String> {
    list_namespaces()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            fs::read_to_string(format!("/run/gng-e2e/{n}"))
                .ok()
                .and_then(|m| m.split_whitespace().next()?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

#[test]
fn cni_bench_runs_both_plugins_and_cleans_up() {
    let bench = bin_path("cni-bench").expect("cargo build --bins first");
    let child = Command::new(&bench)
        .args(["--pods", "3", "--runs", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cni-bench");
    let pid = child.id();
    let out = child.wait_with_output().expect("cni-bench output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("`cni-bench --pods 3 --runs 2`"),
        "{stdout}"
    );
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"))
            .to_string()
    };
    // Six samples per operation (3 pods × 2 runs), four timings each, all non-zero.
    for name in ["ginger", "ptp + host-local"] {
        let r = row(name);
        assert!(r.ends_with("| 6 |"), "{r}");
        assert_eq!(r.matches(" ms |").count(), 4, "{r}");
        assert!(!r.contains("| 0.00 ms"), "{r}");
    }
    let ratio = row("**ginger / ptp (p50)**");
    let ratios: Vec<f64> = ratio
        .split("**")
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    assert_eq!(ratios.len(), 2, "{ratio}");
    assert!(ratios.iter().all(|r| *r > 0.0), "{ratio}");
    // Both plugins ran twice, in turns.
    assert_eq!(stderr.matches(": ginger: ADD p50").count(), 2, "{stderr}");
    assert_eq!(
        stderr.matches(": ptp + host-local: ADD p50").count(),
        2,
        "{stderr}"
    );
    assert!(namespaces_of(pid).is_empty(), "{:?}", namespaces_of(pid));

    // Nonsense arguments are refused before anything is created.
    let out = Command::new(&bench)
        .args(["--pods", "0"])
        .output()
        .expect("cni-bench");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--runs and --pods must be at least 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
