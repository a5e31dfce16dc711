//! Reading the running lab: each node through its control socket (the client `gingerctl`
//! uses) and the real `gingerctl` binary, each ToR through its daemon's CLI and its
//! namespace's FIB, and the pods through pings run inside the pods' namespaces.
//!
//! Owns: those queries and the reachability matrix (one ping per ordered pair of pods, from
//! the source pod's namespace, one second's timeout, many at once). Must not: change anything,
//! or send a packet from outside a lab namespace (every ping runs under `ip netns exec <pod>`;
//! control sockets are unix sockets).

use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use agent::ctl::client;
use agent::ctl::{Reply, Request};
use ipnet::IpNet;
use serde_json::Value;

use super::error::{LabError, LabResult};
use super::host;
use crate::cmd;

/// How long one control-socket query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a ping waits for its answer (`ping -W`).
const PING_WAIT_SECS: &str = "1";
/// Pings in flight at once.
const PING_PARALLELISM: usize = 64;

/// Ask the agent whose run directory is `run_dir`.
pub fn ctl(run_dir: &Path, request: Request) -> Result<Reply, String> {
    let socket = agent::ctl::socket_path(run_dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime: {e}"))?;
    runtime
        .block_on(client::request(&socket, &request, QUERY_TIMEOUT))
        .map_err(|e| e.to_string())
}

/// Run `gingerctl --run-dir <run_dir> args…`: (exit code, stdout, stderr).
pub fn gingerctl(bin: &Path, run_dir: &Path, args: &[&str]) -> LabResult<(i32, String, String)> {
    let out = cmd::output_with_timeout(
        Command::new(bin).arg("--run-dir").arg(run_dir).args(args),
        Duration::from_secs(15),
    )
    .map_err(|e| LabError::step("running gingerctl", e))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Run a daemon's CLI (`birdc`, `vtysh`) and return what it printed (or why it could not).
pub fn daemon_cli(argv: &[String]) -> String {
    let Some((prog, args)) = argv.split_first() else {
        return String::new();
    };
    match cmd::output_with_timeout(Command::new(prog).args(args), Duration::from_secs(10)) {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            // birdc's banner says nothing about the lab.
            .filter(|l| !(l.starts_with("BIRD ") && l.ends_with("ready.")))
            .collect::<Vec<_>>()
            .join("\n"),
        Ok(out) => format!(
            "({} failed: {})",
            prog,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("({prog} failed: {})", e.chain()),
    }
}

/// A route in a ToR's FIB that a routing daemon installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibRoute {
    /// Destination.
    pub dst: IpNet,
    /// Next hops (several for an equal-cost route).
    pub via: Vec<IpAddr>,
    /// Who installed it (`bird`, `bgp`).
    pub protocol: String,
}

/// The IPv4 routes in namespace `ns`'s main table that are not the kernel's own.
pub fn fib_routes(ns: &str) -> LabResult<Vec<FibRoute>> {
    let out = host::ip(ns, &["-j", "-4", "route", "show", "table", "main"])?;
    Ok(parse_fib(&out))
}

/// Parse `ip -j route` output, keeping routes some protocol other than the kernel installed.
pub fn parse_fib(json: &str) -> Vec<FibRoute> {
    let Ok(Value::Array(routes)) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    routes
        .iter()
        .filter_map(|r| {
            let protocol = r["protocol"].as_str().unwrap_or("boot").to_string();
            if protocol == "kernel" {
                return None;
            }
            let dst = r["dst"].as_str()?;
            let dst: IpNet = if dst == "default" {
                "0.0.0.0/0".parse().ok()?
            } else if dst.contains('/') {
                dst.parse().ok()?
            } else {
                IpNet::from(dst.parse::<IpAddr>().ok()?)
            };
            let mut via: Vec<IpAddr> = r["gateway"]
                .as_str()
                .and_then(|g| g.parse().ok())
                .into_iter()
                .collect();
            if let Some(hops) = r["nexthops"].as_array() {
                via.extend(
                    hops.iter()
                        .filter_map(|h| h["gateway"].as_str()?.parse::<IpAddr>().ok()),
                );
            }
            Some(FibRoute { dst, via, protocol })
        })
        .collect()
}

/// One pod as the matrix sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodTarget {
    /// Pod name.
    pub name: String,
    /// Its node.
    pub node: String,
    /// Its sandbox namespace.
    pub netns: String,
    /// Its address (none if its ADD never answered).
    pub ip: Option<IpAddr>,
}

/// Who reaches whom: `reach[i][j]` for pod i pinging pod j (`None` on the diagonal and for
/// pods without an address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix {
    /// The pods, in order.
    pub pods: Vec<PodTarget>,
    /// Results.
    pub reach: Vec<Vec<Option<bool>>>,
    /// How long the whole matrix took.
    pub took: Duration,
}

impl Matrix {
    /// Ordered pairs tried, and how many answered.
    pub fn counts(&self) -> (usize, usize) {
        let tried = self.reach.iter().flatten().filter(|c| c.is_some()).count();
        let ok = self
            .reach
            .iter()
            .flatten()
            .filter(|c| **c == Some(true))
            .count();
        (tried, ok)
    }

    /// The pairs that failed, as (source, destination) indices.
    pub fn failures(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (i, row) in self.reach.iter().enumerate() {
            for (j, cell) in row.iter().enumerate() {
                if *cell == Some(false) {
                    out.push((i, j));
                }
            }
        }
        out
    }

    /// Whether every pod has an address and reaches every other.
    pub fn all_reach(&self) -> bool {
        self.pods.iter().all(|p| p.ip.is_some()) && self.failures().is_empty()
    }
}

/// Ping every pod from every other, in parallel (one packet each).
pub fn ping_matrix(pods: &[PodTarget]) -> Matrix {
    let start = Instant::now();
    let n = pods.len();
    let mut reach = vec![vec![None; n]; n];
    let pairs: Vec<(usize, usize, IpAddr)> = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .filter(|(i, j)| i != j && pods[*i].ip.is_some())
        .filter_map(|(i, j)| pods[j].ip.map(|ip| (i, j, ip)))
        .collect();
    for batch in pairs.chunks(PING_PARALLELISM) {
        let running: Vec<(usize, usize, Option<Child>)> = batch
            .iter()
            .map(|&(i, j, ip)| {
                let child = Command::new("ip")
                    .args(["netns", "exec", &pods[i].netns, "ping", "-c", "1", "-W"])
                    .arg(PING_WAIT_SECS)
                    .args(["-n", "-q"])
                    .arg(ip.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok();
                (i, j, child)
            })
            .collect();
        for (i, j, child) in running {
            reach[i][j] = Some(child.is_some_and(finished_ok));
        }
    }
    Matrix {
        pods: pods.to_vec(),
        reach,
        took: start.elapsed(),
    }
}

/// Wait (at most a few seconds more than ping's own timeout) for a ping to exit 0.
fn finished_ok(mut child: Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_keeps_daemon_routes_and_their_next_hops() {
        let json = r#"[
 {"dst":"10.0.0.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.0.0.1","flags":[]},
 {"dst":"10.244.12.0/26","gateway":"10.0.0.11","dev":"eth0","protocol":"bird","metric":32,"flags":[]},
 {"dst":"10.244.7.0/26","protocol":"bgp","metric":20,"flags":[],"nexthops":[
   {"gateway":"10.0.254.2","dev":"to-tor-b","weight":1,"flags":[]},
   {"gateway":"10.0.254.6","dev":"to-tor-c","weight":1,"flags":[]}]}
]"#;
        let routes = parse_fib(json);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].dst.to_string(), "10.244.12.0/26");
        assert_eq!(routes[0].via, ["10.0.0.11".parse::<IpAddr>().unwrap()]);
        assert_eq!(routes[0].protocol, "bird");
        assert_eq!(routes[1].via.len(), 2);
        assert_eq!(routes[1].protocol, "bgp");
        assert!(parse_fib("").is_empty());
    }

    #[test]
    fn matrix_counts_and_failures() {
        let pod = |n: &str, ip: Option<&str>| PodTarget {
            name: n.into(),
            node: "node-1".into(),
            netns: String::new(),
            ip: ip.map(|i| i.parse().unwrap()),
        };
        let m = Matrix {
            pods: vec![pod("a", Some("10.0.0.1")), pod("b", Some("10.0.0.2"))],
            reach: vec![vec![None, Some(true)], vec![Some(false), None]],
            took: Duration::ZERO,
        };
        assert_eq!(m.counts(), (2, 1));
        assert_eq!(m.failures(), [(1, 0)]);
        assert!(!m.all_reach());
        let good = Matrix {
            reach: vec![vec![None, Some(true)], vec![Some(true), None]],
            ..m.clone()
        };
        assert!(good.all_reach());
        let missing = Matrix {
            pods: vec![pod("a", Some("10.0.0.1")), pod("b", None)],
            reach: vec![vec![None, None], vec![None, None]],
            ..m
        };
        assert!(
            !missing.all_reach(),
            "a pod without an address reaches nobody"
        );
    }
}
