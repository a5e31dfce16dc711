//! Helpers shared by the real-kernel tests: polling and `ip -j` parsing inside a test namespace.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use felix::netns::Netns;
use serde_json::Value;

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ip -j <args>` inside the namespace, parsed.
pub fn ip_json(ns: &Netns, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = ns.ip(&full).expect("ip -j");
    if out.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&out)
        .expect("ip -j output is JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The main-table route to `dst` (as `ip` prints it, e.g. `10.0.0.1` or `10.1.0.0/26`).
pub fn route(ns: &Netns, family: &str, dst: &str) -> Option<Value> {
    ip_json(ns, &[family, "route", "show", "table", "main"])
        .into_iter()
        .find(|r| r["dst"] == dst)
}

/// Runs a shell-free `ip` command inside the namespace, panicking with its stderr on failure.
pub fn ip(ns: &Netns, args: &str) {
    let argv: Vec<&str> = args.split_whitespace().collect();
    if let Err(e) = ns.ip(&argv) {
        panic!("ip {args}: {e}");
    }
}

/// Reads a sysctl inside the namespace.
pub fn sysctl(ns: &Netns, key: &str) -> String {
    ns.exec("cat", &[&format!("/proc/sys/{key}")])
        .expect("read sysctl")
        .trim()
        .to_string()
}
