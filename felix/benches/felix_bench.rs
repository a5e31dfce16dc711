//! felix-bench: programs then removes N routes (default 100 000) in a fresh network namespace
//! with felix's batched netlink dataplane, and the same routes with `ip -batch` in another fresh
//! namespace, in the same run; also the full reconciler path (plan + apply) for the same set.
//! Prints routes/s both ways and the ratio. Run: `cargo bench -p felix --bench felix-bench`
//! (`FELIX_BENCH_ROUTES` and `FELIX_BENCH_ROUNDS` override the size and the number of rounds).
//! Every namespace is deleted on exit; nothing runs outside them.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use felix::dataplane::Dataplane;
use felix::dataplane::netlink::NetlinkDataplane;
use felix::netns::Netns;
use felix::nlsock::AckMode;
use felix::{
    DesiredState, NextHop, NextHopSet, Op, ReconcilerConfig, ReconcilerHandle, RemoteRoute, Route,
};
use ipnet::IpNet;

/// One benchmarked method: its name and a round (routes → add and delete rates).
type Method = (&'static str, fn(u32) -> (f64, f64));

const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn dst(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + i)
}

/// A namespace with `eth0` on 192.0.2.0/24, so `via 192.0.2.1` is directly reachable.
fn namespace(prefix: &str) -> Netns {
    let ns = Netns::create(prefix).expect("create namespace");
    for args in [
        "link add eth0 type veth peer name eth0p",
        "addr add 192.0.2.10/24 dev eth0",
        "link set eth0 up",
        "link set eth0p up",
    ] {
        ns.ip(&args.split_whitespace().collect::<Vec<_>>())
            .expect(args);
    }
    ns
}

fn count_routes(ns: &Netns) -> usize {
    ns.ip(&["-4", "route", "show", "proto", "97"])
        .expect("ip route")
        .lines()
        .count()
}

fn rate(n: u32, d: Duration) -> f64 {
    f64::from(n) / d.as_secs_f64()
}

/// felix's dataplane: one `apply` of N adds, then one of N deletes.
fn felix_round(n: u32, mode: AckMode) -> (f64, f64) {
    let ns = namespace("fx-bench-felix");
    let (add, del) = ns
        .run(|| {
            let mut dp = NetlinkDataplane::open().expect("netlink");
            dp.set_ack_mode(mode);
            let eth0 = dp
                .list_links()
                .expect("links")
                .into_iter()
                .find(|l| l.name == "eth0")
                .expect("eth0")
                .index;
            let hop = NextHop {
                gateway: Some(IpAddr::V4(GATEWAY)),
                ifindex: eth0,
                onlink: false,
            };
            let routes: Vec<Route> = (0..n)
                .map(|i| Route::via(IpNet::from(IpAddr::V4(dst(i))), vec![hop], 97))
                .collect();
            let adds: Vec<Op> = routes.iter().cloned().map(Op::AddRoute).collect();
            let dels: Vec<Op> = routes.into_iter().map(Op::DeleteRoute).collect();
            let t = Instant::now();
            let failed = dp.apply(&adds).iter().filter(|r| r.is_err()).count();
            let add = t.elapsed();
            assert_eq!(failed, 0, "adds refused");
            let t = Instant::now();
            let failed = dp.apply(&dels).iter().filter(|r| r.is_err()).count();
            let del = t.elapsed();
            assert_eq!(failed, 0, "deletes refused");
            (add, del)
        })
        .expect("enter namespace");
    assert_eq!(count_routes(&ns), 0, "routes left after delete");
    (rate(n, add), rate(n, del))
}

/// `ip -batch` with the same routes.
fn ip_batch_round(n: u32) -> (f64, f64) {
    let ns = namespace("fx-bench-ip");
    let dir = std::env::temp_dir().join(format!("felix-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (add_file, del_file) = (dir.join("add.batch"), dir.join("del.batch"));
    let (mut add, mut del) = (String::new(), String::new());
    for i in 0..n {
        let _ = writeln!(
            add,
            "route add {}/32 via {GATEWAY} dev eth0 proto 97",
            dst(i)
        );
        let _ = writeln!(
            del,
            "route del {}/32 via {GATEWAY} dev eth0 proto 97",
            dst(i)
        );
    }
    std::fs::write(&add_file, add).expect("write batch");
    std::fs::write(&del_file, del).expect("write batch");
    let run = |file: &std::path::Path| {
        let t = Instant::now();
        ns.ip(&["-batch", &file.to_string_lossy()])
            .expect("ip -batch");
        t.elapsed()
    };
    let add_t = run(&add_file);
    assert_eq!(
        count_routes(&ns),
        n as usize,
        "ip -batch did not add every route"
    );
    let del_t = run(&del_file);
    assert_eq!(count_routes(&ns), 0);
    let _ = std::fs::remove_dir_all(&dir);
    (rate(n, add_t), rate(n, del_t))
}

/// The whole reconciler: desired state of N remote routes → converged, then empty → converged.
fn reconciler_round(n: u32) -> (f64, f64) {
    let ns = namespace("fx-bench-rec");
    let cfg = ReconcilerConfig {
        netns: Some(ns.name().to_string()),
        set_sysctls: false,
        ..Default::default()
    };
    let h = ReconcilerHandle::spawn(cfg).expect("reconciler");
    h.set_desired(DesiredState::default());
    assert!(h.snapshot_blocking().is_some());
    let mut desired = DesiredState::default();
    for i in 0..n {
        let dst = IpNet::from(IpAddr::V4(dst(i)));
        desired.remotes.insert(
            dst,
            RemoteRoute {
                dst,
                next_hops: NextHopSet::from([IpAddr::V4(GATEWAY)]),
            },
        );
    }
    let wait = |want: usize| {
        let t = Instant::now();
        while h.snapshot_blocking().map(|s| (s.converged, s.routes.len())) != Some((true, want)) {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "reconciler did not converge"
            );
        }
    };
    let t = Instant::now();
    h.set_desired(desired);
    wait(n as usize);
    let add = t.elapsed();
    let t = Instant::now();
    h.set_desired(DesiredState::default());
    wait(0);
    let del = t.elapsed();
    drop(h);
    assert_eq!(count_routes(&ns), 0);
    (rate(n, add), rate(n, del))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not support.
    let n: u32 = std::env::var("FELIX_BENCH_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rounds: usize = std::env::var("FELIX_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!(
        "felix-bench: {n} IPv4 /32 routes `via 192.0.2.1 dev eth0 proto 97`, {rounds} rounds, median"
    );
    let methods: [Method; 4] = [
        ("felix dataplane, errors + barrier ACK (default)", |n| {
            felix_round(n, AckMode::ErrorsAndBarrier)
        }),
        ("felix dataplane, ACK per request", |n| {
            felix_round(n, AckMode::EveryRequest)
        }),
        ("ip -batch", ip_batch_round),
        (
            "felix reconciler (plan + apply, default mode)",
            reconciler_round,
        ),
    ];
    let mut results: Vec<(&str, Vec<f64>, Vec<f64>)> = methods
        .iter()
        .map(|(name, _)| (*name, vec![], vec![]))
        .collect();
    for _ in 0..rounds {
        for (i, (_, f)) in methods.iter().enumerate() {
            let (a, d) = f(n);
            results[i].1.push(a);
            results[i].2.push(d);
        }
    }
    let med: Vec<(f64, f64)> = results
        .iter()
        .map(|(_, a, d)| (median(a.clone()), median(d.clone())))
        .collect();
    println!("| method | add routes/s | delete routes/s |");
    println!("|---|---:|---:|");
    for ((name, _, _), (a, d)) in results.iter().zip(&med) {
        println!("| {name} | {a:.0} | {d:.0} |");
    }
    let ip = med[2];
    for (i, (name, _, _)) in results.iter().enumerate().filter(|(i, _)| *i != 2) {
        println!(
            "ratio {name} / ip -batch: add {:.2}x, delete {:.2}x",
            med[i].0 / ip.0,
            med[i].1 / ip.1
        );
    }
}
