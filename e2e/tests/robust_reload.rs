//! Reloading the cluster file on a live `ginger-node` (the file is watched, SIGHUP reloads it):
//! the speaker applies each new file as a diff. Adding a BGPPeer brings up its session and
//! touches no other (their `since` and established count unchanged at the node, BIRD's `since`
//! unchanged and no NOTIFICATION logged by BIRD); removing one closes only that session with
//! Cease/Peer De-configured (RFC 4486 §4, subcode 3), which the BIRD peer logs; changing a
//! peer's keepalive resets only it, and the peer is told why (Cease/Other Configuration Change,
//! subcode 6) before the node reconnects. A bad file (a
//! YAML typo, an unknown field, an invalid AS number) is rejected with a log line naming the
//! document and field, the running sessions stay, and `ginger_config_last_reload_success` is 0
//! until a good file comes back. At start-up a bad file makes `ginger-node` exit non-zero with
//! the message on stderr.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use e2e::robust::{
    MemoryBudget, MetricSamples, SessionMark, http_get, log_lines, replace_file, wait_log_lines,
};
use e2e::{
    BgpDaemon, Bird, GingerNode, Neighbor, Netns, RouterConfig, Segment, SessionState, Signal,
    scenario, wait_for, write_cluster,
};

/// Per-step deadline.
const T: Duration = Duration::from_secs(20);
/// The node's address.
const NODE: Ipv4Addr = Ipv4Addr::new(10, 84, 0, 1);
/// Where the node serves metrics inside its namespace.
const METRICS: &str = "127.0.0.1:9091";

/// The three BIRD peers: name, address, AS.
const A: (&str, Ipv4Addr, u32) = ("a", Ipv4Addr::new(10, 84, 0, 2), 65010);
const B: (&str, Ipv4Addr, u32) = ("b", Ipv4Addr::new(10, 84, 0, 3), 65011);
const C: (&str, Ipv4Addr, u32) = ("c", Ipv4Addr::new(10, 84, 0, 4), 65012);

fn node_doc() -> String {
    format!(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
         spec: {{asNumber: 64512}}\n---\n\
         apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {{name: n1}}\n\
         spec: {{bgp: {{ipv4Address: {NODE}/24}}}}\n"
    )
}

fn global_peer((name, ip, asn): (&str, Ipv4Addr, u32)) -> String {
    format!(
        "---\napiVersion: ginger.dev/v1\nkind: BGPPeer\nmetadata: {{name: {name}}}\n\
         spec: {{peerIP: {ip}, asNumber: {asn}}}\n"
    )
}

/// Peer C is node-specific and carries a keepalive time.
fn peer_c(keepalive: &str) -> String {
    let (name, ip, asn) = C;
    format!(
        "---\napiVersion: ginger.dev/v1\nkind: BGPPeer\nmetadata: {{name: {name}}}\n\
         spec: {{node: n1, peerIP: {ip}, asNumber: {asn}, keepaliveTime: {keepalive}}}\n"
    )
}

fn ip(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

struct Lab {
    node: GingerNode,
    birds: Vec<Bird>,
    node_ns: Netns,
    _bird_ns: Vec<Netns>,
    _seg: Segment,
}

impl Lab {
    fn bird(&self, peer: (&str, Ipv4Addr, u32)) -> &Bird {
        let i = [A, B, C].iter().position(|p| p.0 == peer.0).expect("known");
        &self.birds[i]
    }

    fn mark(&self, peer: (&str, Ipv4Addr, u32)) -> e2e::Result<SessionMark> {
        SessionMark::take(&self.node, self.bird(peer), ip(peer.1), ip(NODE))
    }

    fn metrics(&self) -> e2e::Result<MetricSamples> {
        let addr: SocketAddr = METRICS.parse().expect("literal");
        let reply = http_get(&self.node_ns, addr, "/metrics")?;
        MetricSamples::parse(&reply.body)
    }

    /// `ginger_config_last_reload_success` and the ok/failed reload counters.
    fn reloads(&self) -> e2e::Result<(f64, f64, f64)> {
        let m = self.metrics()?;
        let get = |name: &str, labels: &[(&str, &str)]| m.value(name, labels).unwrap_or(f64::NAN);
        Ok((
            get("ginger_config_last_reload_success", &[]),
            get("ginger_config_reloads_total", &[("result", "ok")]),
            get("ginger_config_reloads_total", &[("result", "failed")]),
        ))
    }

    fn wait_reloads(&self, want: (f64, f64, f64)) -> e2e::Result<()> {
        wait_for(
            T,
            "ginger_config_* metrics (last success, ok, failed)",
            || self.reloads(),
            |got| *got == want,
        )
        .map(|_| ())
    }

    /// BIRD's log lines for its session with the node that report a NOTIFICATION received.
    fn bird_received(&self, peer: (&str, Ipv4Addr, u32)) -> Vec<String> {
        log_lines(&self.bird(peer).logs(), &["Received:"])
    }
}

/// Node plus three BIRDs on one segment; every BIRD is configured for the node from the start.
fn build(dir: &Path, cluster: &Path) -> e2e::Result<Lab> {
    let seg = Segment::new("lan")?;
    let node_ns = Netns::new("node")?;
    seg.attach(&node_ns, "eth0", &[&format!("{NODE}/24")])?;
    let mut birds = Vec::new();
    let mut bird_ns = Vec::new();
    for (name, addr, asn) in [A, B, C] {
        let ns = Netns::new(&format!("bird-{name}"))?;
        seg.attach(&ns, "eth0", &[&format!("{addr}/24")])?;
        birds.push(Bird::start(
            &ns,
            dir,
            RouterConfig::new(addr, asn).neighbor(Neighbor::new(ip(NODE), 64512)),
        )?);
        bird_ns.push(ns);
    }
    let node = GingerNode::start(&node_ns, dir, cluster, "n1", &["--metrics-listen", METRICS])?;
    Ok(Lab {
        node,
        birds,
        node_ns,
        _bird_ns: bird_ns,
        _seg: seg,
    })
}

fn wait_up(lab: &Lab, peer: (&str, Ipv4Addr, u32)) -> e2e::Result<()> {
    lab.node.wait_established(ip(peer.1), T)?;
    lab.bird(peer).wait_established(ip(NODE), T)
}

#[test]
fn reload_applies_changes_as_a_diff_and_rejects_bad_files() {
    scenario("reload", |dir| {
        let path = write_cluster(
            dir.path(),
            "cluster.yaml",
            &(node_doc() + &global_peer(A) + &peer_c("10s")),
        )?;
        let lab = build(dir.path(), &path)?;
        wait_up(&lab, A)?;
        wait_up(&lab, C)?;
        lab.wait_reloads((1.0, 1.0, 0.0))?;
        let budget = MemoryBudget::new(lab.node.process().pid(), 64)?;
        let logs = || lab.node.logs();
        let (mark_a, mark_c) = (lab.mark(A)?, lab.mark(C)?);

        // Add B: its session comes up; A and C are untouched at both ends.
        replace_file(
            &path,
            &(node_doc() + &global_peer(A) + &global_peer(B) + &peer_c("10s")),
        )?;
        wait_up(&lab, B)?;
        let applied = wait_log_lines(
            logs,
            &["configuration applied", "trigger=\"file changed\""],
            1,
            T,
        )?;
        assert!(applied.contains("Global_10_84_0_3"), "{applied}");
        lab.wait_reloads((1.0, 2.0, 0.0))?;
        mark_a.assert_same(&lab.mark(A)?, "after adding B: A");
        mark_c.assert_same(&lab.mark(C)?, "after adding B: C");
        let mark_b = lab.mark(B)?;

        // SIGHUP with nothing changed: a reload that changes nothing.
        lab.node.process().signal(Signal::SIGHUP)?;
        wait_log_lines(logs, &["configuration applied", "trigger=\"SIGHUP\""], 1, T)?;
        lab.wait_reloads((1.0, 3.0, 0.0))?;
        for (peer, mark) in [(A, &mark_a), (B, &mark_b), (C, &mark_c)] {
            mark.assert_same(&lab.mark(peer)?, &format!("after SIGHUP: {}", peer.0));
        }

        // C's keepalive changes: only C is reset (that BIRD is told why is checked below).
        std::thread::sleep(Duration::from_millis(1100));
        replace_file(
            &path,
            &(node_doc() + &global_peer(A) + &global_peer(B) + &peer_c("20s")),
        )?;
        // A reset peer is a new session at the node (its counters restart), so tell it by
        // its since (whole seconds: the change comes at least a second after the mark).
        wait_for(
            T,
            "C re-established after its reset",
            || lab.node.peer(ip(C.1)),
            |p| p.state == SessionState::Established && p.since_unix > mark_c.since_unix,
        )?;
        lab.bird(C).wait_established(ip(NODE), T)?;
        let new_c = lab.mark(C)?;
        assert!(
            !new_c.bird.same_since(&mark_c.bird),
            "BIRD C saw no reset: {new_c:?}"
        );
        mark_a.assert_same(&lab.mark(A)?, "after C's change: A");
        mark_b.assert_same(&lab.mark(B)?, "after C's change: B");
        let mark_c = new_c;

        // Remove B: only B closes, with Cease/Peer De-configured seen by BIRD B.
        let good = node_doc() + &global_peer(A) + &peer_c("20s");
        replace_file(&path, &good)?;
        wait_until_gone(&lab, ip(B.1))?;
        wait_for(
            T,
            "BIRD B to log the Cease",
            || Ok(lab.bird_received(B)),
            |l| l.iter().any(|l| l.contains("Peer de-configured")),
        )?;
        assert_ne!(lab.bird(B).peer_state(ip(NODE))?, SessionState::Established);
        lab.wait_reloads((1.0, 5.0, 0.0))?;
        mark_a.assert_same(&lab.mark(A)?, "after removing B: A");
        mark_c.assert_same(&lab.mark(C)?, "after removing B: C");

        // Bad files: each rejected with the document and field, the sessions stay, the gauge
        // says 0 until a good file comes back.
        let bad = [
            (
                "a YAML typo",
                good.replace(
                    "spec: {peerIP: 10.84.0.2, asNumber: 65010}",
                    "spec: {peerIP: 10.84.0.2, asNumber: 65010",
                ),
                vec!["not valid YAML", "line"],
            ),
            (
                "an unknown field",
                good.replace("spec: {peerIP: 10.84.0.2", "spec: {peerIp: 10.84.0.2"),
                vec!["document 3 (BGPPeer \"a\")", "spec.peerIp: unknown field"],
            ),
            (
                "an invalid AS number",
                good.replace("asNumber: 65010", "asNumber: 4294967296"),
                vec![
                    "document 3 (BGPPeer \"a\")",
                    "spec.asNumber: expected an AS number",
                ],
            ),
        ];
        let mut failed = 0.0;
        for (i, (what, text, needles)) in bad.iter().enumerate() {
            replace_file(&path, text)?;
            let mut all = vec!["configuration rejected, keeping the running one"];
            all.extend(needles.iter());
            let line = wait_log_lines(logs, &all, 1, T)
                .unwrap_or_else(|e| panic!("{what}: {}", e.chain()));
            assert!(line.contains("ERROR"), "{what}: {line}");
            failed += 1.0;
            lab.wait_reloads((0.0, 5.0, failed))?;
            assert_eq!(
                log_lines(&logs(), &["configuration rejected"]).len(),
                i + 1,
                "{what}: one rejection per bad file"
            );
            mark_a.assert_same(&lab.mark(A)?, &format!("{what}: A"));
            mark_c.assert_same(&lab.mark(C)?, &format!("{what}: C"));
        }
        // Still 0 a while later, and after a SIGHUP that re-reads the same bad file.
        std::thread::sleep(Duration::from_millis(2500));
        lab.node.process().signal(Signal::SIGHUP)?;
        failed += 1.0;
        lab.wait_reloads((0.0, 5.0, failed))?;
        // The good file back: 1 again, nothing reset (it is the running configuration).
        replace_file(&path, &good)?;
        lab.wait_reloads((1.0, 6.0, failed))?;
        mark_a.assert_same(&lab.mark(A)?, "good file back: A");
        mark_c.assert_same(&lab.mark(C)?, "good file back: C");
        // Neither untouched peer ever logged a NOTIFICATION from the node.
        assert_eq!(lab.bird_received(A), Vec::<String>::new());
        budget.assert_within("after the reloads");
        Ok(())
    });
}

/// Wait until the node no longer lists `peer` among its sessions.
fn wait_until_gone(lab: &Lab, peer: IpAddr) -> e2e::Result<()> {
    wait_for(
        T,
        &format!("{peer} to be removed from the node's sessions"),
        || {
            Ok(lab
                .node
                .peers()?
                .into_iter()
                .map(|p| p.address)
                .collect::<Vec<_>>())
        },
        |addrs| !addrs.contains(&peer),
    )
    .map(|_| ())
}

#[test]
fn a_bad_file_at_start_up_exits_non_zero_with_the_reason() {
    scenario("bad-start", |dir| {
        let ns = Netns::new("node")?;
        let text = node_doc() + &global_peer(A).replace("asNumber: 65010", "asNumbr: 65010");
        let path = write_cluster(dir.path(), "cluster.yaml", &text)?;
        let node = GingerNode::start(&ns, dir.path(), &path, "n1", &[])?;
        let status = node.process().wait_exit(T)?;
        assert_eq!(status.code(), Some(1), "{}", node.logs());
        let stderr = std::fs::read_to_string(node.process().stderr_path()).unwrap_or_default();
        let want = format!(
            "ginger-node: {}: document 3 (BGPPeer \"a\"): spec.asNumbr: unknown field; did you mean \"asNumber\"?",
            path.display()
        );
        assert!(
            stderr.lines().any(|l| l.starts_with(&want)),
            "want a line starting {want:?} in:\n{stderr}"
        );
        Ok(())
    });
}

/// Resetting a peer for a configuration change must close the old session with
/// Cease/Other Configuration Change (RFC 4486 §4) before the new connection starts: otherwise a
/// BIRD with graceful restart takes the new connection for a restart of the old session
/// (RFC 4724 §4.2), keeps the routes as stale and never learns why.
#[test]
fn a_reset_peer_is_told_why_before_the_node_reconnects() {
    scenario("reset-why", |dir| {
        let path = write_cluster(dir.path(), "cluster.yaml", &(node_doc() + &peer_c("10s")))?;
        let lab = build(dir.path(), &path)?;
        wait_up(&lab, C)?;
        replace_file(&path, &(node_doc() + &peer_c("20s")))?;
        wait_log_lines(
            || lab.node.logs(),
            &["configuration applied", "Node_10_84_0_4"],
            1,
            T,
        )?;
        wait_up(&lab, C)?;
        // The node's own log: the Cease is queued before the new session's first connect.
        let logs = lab.node.logs();
        let cease = log_lines(&logs, &["Node_10_84_0_4", "sent NOTIFICATION", "(6/6)"]);
        let reconnect = log_lines(&logs, &["Node_10_84_0_4", "from=\"Idle\" to=\"Connect\""]);
        assert_eq!(cease.len(), 1, "{logs}");
        let lines: Vec<String> = e2e::robust::strip_ansi(&logs)
            .lines()
            .map(str::to_string)
            .collect();
        let at = |l: &String| {
            lines
                .iter()
                .position(|x| x == l)
                .expect("a line of the log")
        };
        let last_connect = reconnect
            .iter()
            .map(at)
            .max()
            .expect("the node reconnected");
        assert!(
            at(&cease[0]) < last_connect,
            "the new session started before the Cease was sent:\n{}",
            lines.join("\n")
        );
        wait_for(
            Duration::from_secs(5),
            "BIRD C to log the Cease",
            || Ok(lab.bird_received(C)),
            |l| l.iter().any(|l| l.contains("Other configuration change")),
        )?;
        Ok(())
    });
}
