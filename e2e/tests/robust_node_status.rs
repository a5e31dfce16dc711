//! `gingerctl node status` against a live `ginger-node` whose peers sit in every session state
//! (RFC 4271 §8.2.2), each row checked against calicoctl's released layout (calico.md §5.1):
//! exact borders, centred headers, PEER TYPE, STATE `up`/`start`, SINCE as `HH:MM:SS`, INFO as
//! BIRD writes it, and the IPv6 section. Also the error paths: agent not running (no socket,
//! or a stale one left by a killed agent) and a socket the user may not open.
//!
//! How each state is produced: BIRD on IPv4 and IPv6 → Established; a mesh node whose address
//! refuses → Active with `Socket: Connection refused`; a mesh node with the greater address
//! (it connects to us, confd's rule) → Active; a raw listener that accepts and never sends an
//! OPEN → OpenSent; one that sends an OPEN but no KEEPALIVE → OpenConfirm; one that answers
//! with the wrong AS → Idle (back-off) after our Bad Peer AS; an address routed into a
//! namespace that does not forward → Connect (the SYN vanishes).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2e::rawpeer::msg::{self, msg_type};
use e2e::robust::{CtlRun, StatusRow, gingerctl, parse_node_status, utc_clock};
use e2e::{
    Bird, Family, GingerNode, Neighbor, Netns, RawListener, RawPeer, RouterConfig, Segment,
    SessionState, Signal, scenario, write_cluster,
};

/// Per-step deadline.
const T: Duration = Duration::from_secs(20);
/// The unprivileged user `gingerctl` is tried as.
const NOBODY: u32 = 65534;

const CLUSTER: &str = r#"
apiVersion: ginger.dev/v1
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512}
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: n1}
spec: {bgp: {ipv4Address: 10.82.0.5/24, ipv6Address: "fd00:82::5/64"}}
---
# Mesh: the smaller address string, so we connect, and nothing listens: refused.
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: n2}
spec: {bgp: {ipv4Address: 10.82.0.3/24}}
---
# Mesh: the greater address string connects to us (confd's rule); it never does.
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: n3}
spec: {bgp: {ipv4Address: 10.82.0.7/24}}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {name: bird-v4}
spec: {peerIP: 10.82.0.2, asNumber: 65000}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {name: bird-v6}
spec: {peerIP: "fd00:82::2", asNumber: 65000}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {name: silent}
spec: {node: n1, peerIP: 10.82.9.9, asNumber: 65001}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {name: no-open}
spec: {peerIP: "10.82.0.11:1790", asNumber: 65002}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {name: no-keepalive}
spec: {node: n1, peerIP: 10.82.0.12, asNumber: 65003}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {name: wrong-as}
spec: {peerIP: 10.82.0.13, asNumber: 65004}
---
apiVersion: ginger.dev/v1
kind: BGPPeer
metadata: {name: refused-v6}
spec: {node: n1, peerIP: "fd00:82::3", asNumber: 65005}
"#;

/// The AS the `wrong-as` listener claims (65099 = 0x0000fe4b).
const WRONG_AS: u32 = 65099;

/// One expected row: where, PEER TYPE, FSM state, STATE column, INFO column.
struct Want {
    address: &'static str,
    port: u16,
    display: &'static str,
    peer_type: &'static str,
    state: SessionState,
    bird_state: &'static str,
    info: &'static str,
}

const V4: [Want; 7] = [
    Want {
        address: "10.82.0.2",
        port: 179,
        display: "10.82.0.2",
        peer_type: "global",
        state: SessionState::Established,
        bird_state: "up",
        info: "Established",
    },
    Want {
        address: "10.82.0.3",
        port: 179,
        display: "10.82.0.3",
        peer_type: "node-to-node mesh",
        state: SessionState::Active,
        bird_state: "start",
        info: "Active Socket: Connection refused",
    },
    Want {
        address: "10.82.0.7",
        port: 179,
        display: "10.82.0.7",
        peer_type: "node-to-node mesh",
        state: SessionState::Active,
        bird_state: "start",
        info: "Active",
    },
    Want {
        address: "10.82.0.11",
        port: 1790,
        display: "10.82.0.11:1790",
        peer_type: "global",
        state: SessionState::OpenSent,
        bird_state: "start",
        info: "OpenSent",
    },
    Want {
        address: "10.82.0.12",
        port: 179,
        display: "10.82.0.12",
        peer_type: "node specific",
        state: SessionState::OpenConfirm,
        bird_state: "start",
        info: "OpenConfirm",
    },
    Want {
        address: "10.82.0.13",
        port: 179,
        display: "10.82.0.13",
        peer_type: "global",
        state: SessionState::Idle,
        bird_state: "start",
        info: "Idle Sent: OPEN Message Error/Bad Peer AS (2/2) data 0000fe4b",
    },
    Want {
        address: "10.82.9.9",
        port: 179,
        display: "10.82.9.9",
        peer_type: "node specific",
        state: SessionState::Connect,
        bird_state: "start",
        info: "Connect",
    },
];

const V6: [Want; 2] = [
    Want {
        address: "fd00:82::2",
        port: 179,
        display: "fd00:82::2",
        peer_type: "global",
        state: SessionState::Established,
        bird_state: "up",
        info: "Established",
    },
    Want {
        address: "fd00:82::3",
        port: 179,
        display: "fd00:82::3",
        peer_type: "node specific",
        state: SessionState::Active,
        bird_state: "start",
        info: "Active Socket: Connection refused",
    },
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The fields of a peer that the status line shows.
type Shown = Vec<(IpAddr, u16, SessionState, u64, Option<String>)>;

fn shown(node: &GingerNode) -> e2e::Result<Shown> {
    Ok(node
        .peers()?
        .into_iter()
        .map(|p| (p.address, p.port, p.state, p.since_unix, p.last_error))
        .collect())
}

/// Accept the node's connections on `listener` until `stop`, answering each with an OPEN
/// that claims `WRONG_AS`.
fn answer_with_wrong_as(listener: RawListener, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut raw) = listener.accept(Duration::from_millis(200)) else {
            continue;
        };
        let _ = raw.send(&msg::open(WRONG_AS, 240, "10.82.0.13".parse().unwrap()));
        let _ = raw.wait_closed(Duration::from_secs(5));
    }
}

/// Run `gingerctl node status` until one output was taken while every peer sat in its
/// expected state (snapshots before and after agree), then return it with that snapshot.
fn status_in_expected_states(node: &GingerNode) -> e2e::Result<(CtlRun, Shown)> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let before = shown(node)?;
        let run = gingerctl(node.run_dir(), &["node", "status"], &[("TZ", "UTC")], None)?;
        let after = shown(node)?;
        let settled = V4.iter().chain(V6.iter()).all(|w| {
            before
                .iter()
                .any(|(a, p, s, ..)| *a == ip(w.address) && *p == w.port && *s == w.state)
        });
        if before == after && settled && before.len() == V4.len() + V6.len() {
            return Ok((run, before));
        }
        if Instant::now() > deadline {
            return Err(e2e::Error::Timeout {
                what: "every peer in its expected session state".into(),
                waited: Duration::from_secs(40),
                last: format!("{before:?}"),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn expected_rows(wants: &[Want], snapshot: &Shown) -> Vec<StatusRow> {
    wants
        .iter()
        .map(|w| {
            let (.., since, _) = snapshot
                .iter()
                .find(|(a, p, ..)| *a == ip(w.address) && *p == w.port)
                .expect("checked settled");
            StatusRow {
                address: w.display.to_string(),
                peer_type: w.peer_type.to_string(),
                state: w.bird_state.to_string(),
                since: utc_clock(*since),
                info: w.info.to_string(),
            }
        })
        .collect()
}

/// How strictly socket errors in INFO are compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SocketErrors {
    /// Exactly BIRD's text: `Active Socket: Connection refused`.
    Exact,
    /// `Active Socket: …Connection refused`, whatever sits between.
    Loose,
}

/// Loose: take the node's INFO for socket-error rows when it names the same error.
fn loosen(want: &mut [StatusRow], got: &Option<Vec<StatusRow>>) {
    let Some(got) = got else { return };
    for (w, g) in want.iter_mut().zip(got) {
        if w.info == "Active Socket: Connection refused"
            && g.info.starts_with("Active Socket: ")
            && g.info.ends_with("Connection refused")
        {
            w.info = g.info.clone();
        }
    }
}

fn status_in_every_state(label: &str, socket_errors: SocketErrors) {
    scenario(label, |dir| {
        let seg = Segment::new("lan")?;
        let (node_ns, bird_ns, raw_ns) =
            (Netns::new("node")?, Netns::new("bird")?, Netns::new("raw")?);
        seg.attach(&node_ns, "eth0", &["10.82.0.5/24", "fd00:82::5/64"])?;
        seg.attach(&bird_ns, "eth0", &["10.82.0.2/24", "fd00:82::2/64"])?;
        seg.attach(
            &raw_ns,
            "eth0",
            &[
                "10.82.0.3/24",
                "10.82.0.11/24",
                "10.82.0.12/24",
                "10.82.0.13/24",
                "fd00:82::3/64",
            ],
        )?;
        // 10.82.9.9 lies behind the raw namespace, which does not forward: SYNs vanish.
        node_ns.ip(&["route", "add", "10.82.9.0/24", "via", "10.82.0.3"])?;
        assert_eq!(raw_ns.sysctl_get("net.ipv4.ip_forward")?, "0");

        let no_open = RawListener::bind(&raw_ns, "10.82.0.11:1790".parse().unwrap())?;
        let no_keepalive = RawListener::bind(&raw_ns, "10.82.0.12:179".parse().unwrap())?;
        let wrong_as = RawListener::bind(&raw_ns, "10.82.0.13:179".parse().unwrap())?;
        let stop = Arc::new(AtomicBool::new(false));
        let wrong_as_thread = {
            let stop = stop.clone();
            std::thread::spawn(move || answer_with_wrong_as(wrong_as, stop))
        };

        let bird = Bird::start(
            &bird_ns,
            dir.path(),
            RouterConfig::parse("10.82.0.2", 65000)
                .neighbor(Neighbor::parse("10.82.0.5", 64512))
                .neighbor(Neighbor::parse("fd00:82::5", 64512).families(&[Family::Ipv6Unicast])),
        )?;
        let cluster = write_cluster(dir.path(), "cluster.yaml", CLUSTER)?;
        let node = GingerNode::start(&node_ns, dir.path(), &cluster, "n1", &[])?;

        // OpenSent: accept and say nothing.
        let mut silent: RawPeer = no_open.accept(T)?;
        silent.recv_type(msg_type::OPEN, T)?;
        // OpenConfirm: read the node's OPEN, answer with ours, never send a KEEPALIVE.
        let mut confirm = no_keepalive.accept(T)?;
        confirm.recv_type(msg_type::OPEN, T)?;
        confirm.send(&msg::open(65003, 240, "10.82.0.12".parse().unwrap()))?;
        confirm.recv_type(msg_type::KEEPALIVE, T)?;
        node.wait_established(ip("10.82.0.2"), T)?;
        node.wait_established(ip("fd00:82::2"), T)?;

        let (run, snapshot) = status_in_expected_states(&node)?;
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.stderr, "", "{run:?}");
        let parsed = parse_node_status(&run.stdout)
            .unwrap_or_else(|e| panic!("layout: {e}\n{}", run.stdout));
        let (mut want_v4, mut want_v6) =
            (expected_rows(&V4, &snapshot), expected_rows(&V6, &snapshot));
        if socket_errors == SocketErrors::Loose {
            loosen(&mut want_v4, &parsed.v4);
            loosen(&mut want_v6, &parsed.v6);
        }
        assert_eq!(parsed.v4, Some(want_v4), "\n{}", run.stdout);
        assert_eq!(parsed.v6, Some(want_v6), "\n{}", run.stdout);
        // Two rows byte for byte, as calicoctl prints them (column widths from this table).
        assert!(
            run.stdout.contains(&format!(
                "| 10.82.0.2       | global            | up    | {} | Established                    |\n",
                utc_clock(snapshot.iter().find(|s| s.0 == ip("10.82.0.2")).unwrap().3)
            )),
            "{}",
            run.stdout
        );
        if socket_errors == SocketErrors::Exact {
            assert!(
                run.stdout.contains(
                    "|                 |                   |       |          | refused                        |\n"
                ),
                "{}",
                run.stdout
            );
        }

        stop.store(true, Ordering::Relaxed);
        let _ = wrong_as_thread.join();
        drop(bird);
        Ok(())
    });
}

/// Every state, every column, with socket errors compared by their substance.
#[test]
fn node_status_shows_every_session_state_in_calicos_layout() {
    status_in_every_state("status", SocketErrors::Loose);
}

/// The same with BIRD's exact INFO text for a refused connection.
#[test]
fn node_status_socket_errors_read_like_bird() {
    status_in_every_state("status-exact", SocketErrors::Exact);
}

#[test]
fn gingerctl_reports_an_absent_or_forbidden_agent() {
    scenario("ctl-errors", |dir| {
        let ns = Netns::new("node")?;
        ns.ip(&["addr", "add", "10.83.0.1/32", "dev", "lo"])?;
        let cluster = write_cluster(
            dir.path(),
            "cluster.yaml",
            "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {name: n1}\n\
             spec: {bgp: {ipv4Address: 10.83.0.1/32}}\n",
        )?;
        // Before the agent ever ran: no socket.
        let empty = dir.subdir("empty-run")?;
        let run = gingerctl(&empty, &["node", "status"], &[], None)?;
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (1, "", "Ginger process is not running.\n")
        );

        let mut node = GingerNode::start(&ns, dir.path(), &cluster, "n1", &[])?;
        let socket = agent::ctl::socket_path(node.run_dir());
        e2e::wait_until(T, "the control socket", || {
            if socket.exists() {
                Ok(())
            } else {
                Err("absent")
            }
        })?;
        // A node without peers says so in both sections.
        let run = gingerctl(node.run_dir(), &["node", "status"], &[], None)?;
        assert_eq!(run.code, 0, "{run:?}");
        let parsed = parse_node_status(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
        assert_eq!((parsed.v4, parsed.v6), (None, None));

        // Not root: the socket (mode 0600) cannot be opened.
        let run = gingerctl(node.run_dir(), &["node", "status"], &[], Some(NOBODY))?;
        assert_eq!(run.code, 1, "{run:?}");
        assert_eq!(run.stdout, "");
        assert_eq!(
            run.stderr,
            format!(
                "gingerctl: permission denied on the agent socket {}: gingerctl must run as \
                 root (try sudo)\n",
                socket.display()
            )
        );

        // Killed: the socket file stays behind, nobody answers on it.
        node.process_mut().stop(Signal::SIGKILL)?;
        assert!(socket.exists(), "a killed agent cannot remove its socket");
        let run = gingerctl(node.run_dir(), &["node", "status"], &[], None)?;
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (1, "", "Ginger process is not running.\n")
        );
        Ok(())
    });
}
