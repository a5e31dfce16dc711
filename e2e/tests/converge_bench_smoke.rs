//! The convergence benchmark's own path, small enough for the normal suite: `converge-bench`
//! (the build under test, with this profile's `ginger` and `ginger-node`) times 3 ADDs per
//! case; every ADD's route (a fresh /31 block, then a borrowed /32, each `via` node A) must be
//! seen in node B's FIB by the benchmark's netlink listener, the table must count 3 samples
//! per case, and no namespace may be left behind. The figures themselves are not judged: the
//! benchmark is documented in docs/benchmarks.md, not timed here. Run as root.

use std::fs;
use std::process::{Command, Stdio};

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
fn converge_bench_sees_every_route_in_node_b_and_cleans_up() {
    let bench = bin_path("converge-bench").expect("cargo build --bins first");
    let child = Command::new(&bench)
        .args(["--samples", "3", "--verbose"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start converge-bench");
    let pid = child.id();
    let out = child.wait_with_output().expect("converge-bench output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("`converge-bench --samples 3`"),
        "{stdout}"
    );
    assert!(stdout.contains("- commit: `"), "{stdout}");

    // Each case: a warm-up and three timed ADDs, each route seen in B via A.
    for (case, prefix, len) in [
        ("new block", "10.200.0.", "/31"),
        ("borrowed /32", "10.201.0.", "/32"),
    ] {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("{case} ")))
            .collect();
        assert_eq!(lines.len(), 4, "{case}: {stderr}");
        let mut prefixes: Vec<&str> = Vec::new();
        for l in &lines {
            let p = l.split(": ").nth(1).and_then(|r| r.split(' ').next());
            let p = p.unwrap_or_else(|| panic!("no prefix in {l}"));
            assert!(p.starts_with(prefix) && p.ends_with(len), "{l}");
            assert!(
                l.contains("B's FIB") && !l.contains("B's FIB 0.00 ms"),
                "{l}"
            );
            prefixes.push(p);
        }
        prefixes.sort();
        prefixes.dedup();
        assert_eq!(prefixes.len(), 4, "a prefix came twice: {lines:?}");
        assert!(
            stderr.contains(&format!("{case}: 3 routes observed in node-b's FIB")),
            "{stderr}"
        );
    }
    let rows: Vec<&str> = stdout.lines().filter(|l| l.contains(" via A` |")).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for r in rows {
        assert!(r.ends_with("| 3 |"), "{r}");
        assert_eq!(r.matches(" ms").count(), 7, "{r}");
    }
    assert!(namespaces_of(pid).is_empty(), "{:?}", namespaces_of(pid));

    // Nonsense arguments are refused before anything is created.
    let out = Command::new(&bench)
        .args(["--samples", "0"])
        .output()
        .expect("converge-bench");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--samples must be between 1 and"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
