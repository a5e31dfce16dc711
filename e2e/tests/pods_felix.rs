//! Issue 3, "How it must be shown", fifth point: felix inside `ginger-node`, with pods made by
//! the real `ginger` binary. A pod route (and neighbour entry) deleted by hand comes back, and a
//! foreign route on a `cali*` link is removed, after a link event on that link (felix resyncs a
//! link on its events; the periodic full resync is 90 s and `ginger-node` has no flag to shorten
//! it, so the tests trigger the event with `ip link set … alias`, which changes nothing else);
//! routes of other protocols on other links are untouched by those resyncs and by a restart's
//! full resync. `ginger-node` killed with SIGKILL and restarted removes or re-adds no live pod's
//! route or neighbour entry (watched with `ip monitor`, bracketed by marker routes that prove the
//! monitor saw the whole window), and a ping to a pod every 10 ms loses nothing across it. Run as root.

use std::net::IpAddr;
use std::time::Duration;

use e2e::pods::{
    Pod, PodBinaries, PodNode, ROUTE_PROTOCOL, neighbours, pod_cluster, route_to, routes_v4,
    uplinked_node,
};
use e2e::{Error, Proc, Result, Signal, TestDir, scenario, wait_until, write_cluster};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// Routes the operator (or another daemon) owns: other protocols, not on pod links.
const FOREIGN: [&[&str]; 3] = [
    &["10.123.0.0/24", "dev", "eth0", "proto", "static"],
    &[
        "10.124.0.0/24",
        "via",
        "10.99.0.254",
        "dev",
        "eth0",
        "proto",
        "boot",
    ],
    &["10.125.0.0/24", "dev", "up0", "proto", "bird"],
];

fn fail(what: impl Into<String>) -> Error {
    Error::Invalid {
        what: "state",
        value: String::new(),
        reason: what.into(),
    }
}

fn start_node(dir: &TestDir) -> Result<PodNode> {
    let yaml = pod_cluster(
        &[("node-1", "10.99.0.1/24")],
        &[("default-ipv4-ippool", "10.244.0.0/16", 26)],
        false,
    );
    let cluster = write_cluster(dir.path(), "cluster.yaml", &yaml)?;
    PodNode::start(
        uplinked_node("node", "10.99.0.1/24")?,
        dir.path(),
        PodBinaries::built()?,
        &cluster,
        "node-1",
        &[],
    )
}

fn add_pods(node: &PodNode, names: &[&str]) -> Result<Vec<Pod>> {
    let mut pods = Vec::new();
    for name in names {
        let mut pod = Pod::create("default", name)?;
        node.add(&mut pod)?.result()?;
        pods.push(pod);
    }
    // felix has written each pod's permanent neighbour entry.
    node.wait_converged(T)?;
    wait_until(T, "a neighbour entry per pod", || {
        let n = permanent_on_cali(node)?;
        if n.len() == pods.len() {
            Ok(())
        } else {
            Err(fail(format!("{n:?}")))
        }
    })?;
    Ok(pods)
}

fn permanent_on_cali(node: &PodNode) -> Result<Vec<Value>> {
    Ok(neighbours(node.netns())?
        .into_iter()
        .filter(|n| n["dev"].as_str().is_some_and(|d| d.starts_with("cali")))
        .filter(|n| {
            n["state"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s == "PERMANENT"))
        })
        .collect())
}

/// The routes of `node` that are not Ginger's (not proto 97, not on a pod link), sorted.
fn others(node: &PodNode) -> Result<Vec<String>> {
    let mut r: Vec<String> = routes_v4(node.netns())?
        .into_iter()
        .filter(|r| r["protocol"] != ROUTE_PROTOCOL)
        .filter(|r| !r["dev"].as_str().is_some_and(|d| d.starts_with("cali")))
        .map(|r| r.to_string())
        .collect();
    r.sort();
    Ok(r)
}

/// Make felix resync `link`: an alias change is an RTM_NEWLINK event that changes nothing else.
fn poke(node: &PodNode, link: &str, n: usize) -> Result<()> {
    node.netns()
        .ip(&["link", "set", "dev", link, "alias", &format!("poked-{n}")])?;
    Ok(())
}

#[test]
fn felix_repairs_pod_routes_and_touches_nothing_else() {
    scenario("pods-felix", |dir| {
        let mut node = start_node(dir)?;
        for route in FOREIGN {
            let mut args = vec!["route", "add"];
            args.extend_from_slice(route);
            node.netns().ip(&args)?;
        }
        let pods = add_pods(&node, &["web-0", "web-1"])?;
        let before = others(&node)?;
        for route in FOREIGN {
            assert!(
                before
                    .iter()
                    .any(|r| r.contains(&format!("\"dst\":\"{}\"", route[0]))),
                "{before:?}"
            );
        }
        let (a, b) = (&pods[0], &pods[1]);
        let (ip_a, link_a) = (a.addresses()[0].to_string(), a.host_link().unwrap());
        let link_b = b.host_link().unwrap();
        let original = route_to(node.netns(), &ip_a)?.expect("pod route");

        // A pod route and its neighbour entry deleted by hand come back after a link event.
        node.netns()
            .ip(&["route", "del", &format!("{ip_a}/32"), "dev", &link_a])?;
        node.netns().ip(&["neigh", "del", &ip_a, "dev", &link_a])?;
        assert!(route_to(node.netns(), &ip_a)?.is_none());
        poke(&node, &link_a, 1)?;
        let back = wait_until(T, "the deleted pod route to come back", || {
            route_to(node.netns(), &ip_a)?.ok_or_else(|| fail("not back"))
        })?;
        assert_eq!(back, original);
        wait_until(T, "the deleted neighbour entry to come back", || {
            let n = permanent_on_cali(&node)?;
            if n.iter()
                .any(|n| n["dst"] == ip_a.as_str() && n["dev"] == link_a.as_str())
            {
                Ok(())
            } else {
                Err(fail(format!("{n:?}")))
            }
        })?;

        // A foreign route on a pod link (any protocol) is Ginger's to remove.
        node.netns().ip(&[
            "route",
            "add",
            "10.200.0.1/32",
            "dev",
            &link_b,
            "proto",
            "static",
        ])?;
        poke(&node, &link_b, 2)?;
        wait_until(
            T,
            "the foreign route on a cali link to go",
            || match route_to(node.netns(), "10.200.0.1")? {
                None => Ok(()),
                Some(r) => Err(fail(format!("still there: {r}"))),
            },
        )?;
        assert!(route_to(node.netns(), &b.addresses()[0].to_string())?.is_some());

        // Routes of other protocols on other links: untouched by the link resyncs, and by the
        // full resync of a restarted agent.
        node.wait_converged(T)?;
        assert_eq!(others(&node)?, before);
        node.restart()?;
        node.wait_converged(T)?;
        assert_eq!(others(&node)?, before);
        for pod in &pods {
            assert!(route_to(node.netns(), &pod.addresses()[0].to_string())?.is_some());
        }
        Ok(())
    });
}

/// `ip monitor route neigh` in the node, its output line-buffered in a file.
struct Monitor {
    proc: Proc,
}

impl Monitor {
    fn start(node: &PodNode, dir: &TestDir) -> Result<Monitor> {
        let proc = node.netns().spawn(
            "monitor",
            &["stdbuf", "-oL", "ip", "monitor", "route", "neigh"],
            dir.path(),
        )?;
        Ok(Monitor { proc })
    }

    fn text(&self) -> String {
        std::fs::read_to_string(self.proc.stdout_path()).unwrap_or_default()
    }

    /// Add a marker route and wait until the monitor has printed it: everything the kernel
    /// announced before the marker is in the file by then. The marker is deleted and added
    /// again while it is not seen (the monitor may not have subscribed yet).
    fn mark(&self, node: &PodNode, marker: &str) -> Result<()> {
        let route = format!("{marker}/32");
        let end = std::time::Instant::now() + T;
        loop {
            let _ = node.netns().ip(&["route", "del", &route, "dev", "eth0"]);
            node.netns()
                .ip(&["route", "add", &route, "dev", "eth0", "proto", "static"])?;
            let seen = wait_until(Duration::from_millis(500), "the marker", || {
                if self.text().contains(marker) {
                    Ok(())
                } else {
                    Err(fail("not yet"))
                }
            });
            match seen {
                Ok(()) => return Ok(()),
                Err(_) if std::time::Instant::now() < end => continue,
                Err(_) => {
                    return Err(fail(format!(
                        "the monitor never printed marker {marker}: {:?}",
                        self.text()
                    )));
                }
            }
        }
    }
}

/// `ping … -c N` summary: (transmitted, received).
fn ping_summary(text: &str) -> Option<(u32, u32)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut words = line.split_whitespace();
    let sent = words.next()?.parse().ok()?;
    let received = line
        .split(", ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((sent, received))
}

#[test]
fn sigkill_restart_leaves_live_pods_alone() {
    scenario("pods-kill", |dir| {
        let mut node = start_node(dir)?;
        let pods = add_pods(&node, &["db-0", "db-1", "db-2"])?;
        let ips: Vec<IpAddr> = pods.iter().map(|p| p.addresses()[0]).collect();
        let routes_before = routes_v4(node.netns())?;
        let neigh_before = permanent_on_cali(&node)?;
        let endpoints_before = node.endpoints()?;

        let monitor = Monitor::start(&node, dir)?;
        monitor.mark(&node, "192.0.2.1")?;
        // 500 echoes every 10 ms to the first pod, through its host route and neighbour entry.
        const ECHOES: u32 = 500;
        let pinger = node.netns().spawn(
            "ping",
            &[
                "ping",
                "-n",
                "-q",
                "-i",
                "0.01",
                "-W",
                "1",
                "-c",
                &ECHOES.to_string(),
                &ips[0].to_string(),
            ],
            dir.path(),
        )?;
        std::thread::sleep(Duration::from_millis(500));

        node.stop(Signal::SIGKILL)?;
        node.restart()?;
        let fib = node.wait_converged(T)?;
        for ip in &ips {
            assert!(
                fib.routes
                    .iter()
                    .any(|r| r.starts_with(&format!("{ip}/32 "))),
                "{fib:?}"
            );
        }
        monitor.mark(&node, "192.0.2.2")?;
        assert!(
            pinger.is_running(),
            "the ping ended before the restart was over; the window is too short"
        );

        // Between the markers the kernel announced nothing about any pod.
        let text = monitor.text();
        let window = text
            .split("192.0.2.1")
            .nth(1)
            .and_then(|rest| rest.split("192.0.2.2").next())
            .unwrap_or_default()
            .to_string();
        let touched: Vec<&str> = window
            .lines()
            .filter(|l| ips.iter().any(|ip| l.contains(&ip.to_string())) || l.contains("cali"))
            .collect();
        assert!(
            touched.is_empty(),
            "the restart touched pods:\n{}",
            touched.join("\n")
        );
        assert_eq!(
            node.endpoints()?,
            endpoints_before,
            "the restarted agent knows the pods"
        );
        let mut routes_after = routes_v4(node.netns())?;
        routes_after.retain(|r| !r["dst"].as_str().is_some_and(|d| d.starts_with("192.0.2.")));
        assert_eq!(routes_after, routes_before);
        assert_eq!(permanent_on_cali(&node)?, neigh_before);

        // Not one echo lost.
        pinger.wait_exit(T)?;
        let out = std::fs::read_to_string(pinger.stdout_path()).unwrap_or_default();
        let (sent, received) =
            ping_summary(&out).ok_or_else(|| fail(format!("no ping summary in {out:?}")))?;
        assert_eq!((sent, received), (ECHOES, ECHOES), "{out}");
        Ok(())
    });
}

#[test]
fn ping_summary_is_read() {
    let text = "--- 10.0.0.1 ping statistics ---\n\
                1000 packets transmitted, 998 received, 0.2% packet loss, time 10s\n";
    assert_eq!(ping_summary(text), Some((1000, 998)));
    assert_eq!(ping_summary("nothing"), None);
}
