//! The real `ginger-lab` binary, each test with its own lab directory and namespace prefix (so
//! they run in parallel with each other and with a real lab): `up` builds a lab whose `status`
//! has the node, ToR, IPAM, block, pod and reachability tables; a second `up` touches nothing;
//! `down` leaves no namespace, process, host link or file behind — also after an `up` that
//! failed (an agent that dies at start, leaving a process behind in its namespace) and after
//! an `up` killed half way. Pods on one node reach each other (no BGP needed); pods on other
//! nodes over the routes BGP learned and felix installed (3 nodes and a BIRD ToR; two racks
//! with BIRD and FRR ToRs, AS per rack, same-rack pods directly, other-rack pods through the
//! ToRs); a blackholed pod shows as exactly its failing pairs. Run as root after
//! `cargo build --bins`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use e2e::lab::journal::{Journal, Phase};
use e2e::netns::is_alive;
use e2e::scenarios::status_rows;
use e2e::{bin_path, list_namespaces};

const LAB: &str = env!("CARGO_BIN_EXE_ginger-lab");
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One lab of this test process: its directory and prefix; `down` when dropped, so a failing
/// test leaves nothing behind either.
struct Lab {
    dir: PathBuf,
    prefix: String,
    bin_dir: PathBuf,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("glt{:x}{n}{tag}", std::process::id());
        let bin_dir = bin_path("ginger-node")
            .unwrap_or_else(|e| panic!("{e}"))
            .parent()
            .unwrap()
            .to_path_buf();
        Lab {
            dir: std::env::temp_dir().join(format!("ginger-lab-test-{prefix}")),
            prefix,
            bin_dir,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_bins(&self.bin_dir, args)
    }

    fn run_with_bins(&self, bin_dir: &Path, args: &[&str]) -> Output {
        Command::new(LAB)
            .arg("--dir")
            .arg(&self.dir)
            .args(["--prefix", &self.prefix])
            .arg("--bin-dir")
            .arg(bin_dir)
            .args(args)
            .output()
            .expect("ginger-lab runs")
    }

    fn journal(&self) -> Journal {
        let text = fs::read_to_string(self.dir.join("lab.json")).expect("lab.json");
        serde_json::from_str(&text).expect("lab.json parses")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.dir.exists() {
            let out = self.run(&["down"]);
            if !out.status.success() {
                eprintln!("cleanup down failed: {}", text(&out.stderr));
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// stdout, asserting success.
#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// What follows `== <title> ==` in `status` (the rest of its line, then its lines) up to the
/// next section.
fn section<'a>(status: &'a str, title: &str) -> &'a str {
    let start = status
        .find(&format!("== {title} =="))
        .unwrap_or_else(|| panic!("no section {title:?} in\n{status}"));
    // The rest of the heading line names the command whose output follows.
    let body = status[start + title.len() + 6..].trim_start_matches(' ');
    match body.find("\n== ") {
        Some(end) => &body[..end],
        None => body,
    }
}

/// The data rows of the bordered tables in `text`, as trimmed cells.
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn host_links() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// Live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if text(&cmdline).replace('\0', " ").contains(needle) && is_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Nothing of the lab is left: namespaces, their handles, processes, its directory.
#[track_caller]
fn assert_nothing_left(lab: &Lab, journal: &Journal, links_before: &BTreeSet<String>) {
    let namespaces: BTreeSet<String> = list_namespaces().unwrap().into_iter().collect();
    for ns in &journal.namespaces {
        assert!(!namespaces.contains(ns), "namespace {ns} survived down");
        assert!(
            !Path::new("/run/netns").join(ns).exists(),
            "/run/netns/{ns}"
        );
    }
    assert!(
        !namespaces
            .iter()
            .any(|n| n.starts_with(&format!("{}-", lab.prefix))),
        "{namespaces:?}"
    );
    for p in &journal.processes {
        assert!(
            !is_alive(p.pid),
            "{} (pid {}) survived down",
            p.label,
            p.pid
        );
    }
    let dir = lab.dir.display().to_string();
    assert_eq!(
        processes_mentioning(&dir),
        Vec::<i32>::new(),
        "processes using {dir}"
    );
    assert!(!lab.dir.exists(), "{dir} survived down");
    assert_eq!(
        &host_links(),
        links_before,
        "the machine's own links changed"
    );
}

#[test]
fn up_shows_the_lab_a_second_up_is_a_no_op_and_down_leaves_nothing() {
    let links_before = host_links();
    let lab = Lab::new("a");
    let out = lab.run(&["up", "--nodes", "2", "--pods-per-node", "1"]);
    let up = ok(&out);
    // What it built: hosts, planned sessions, progress, then the status.
    for want in [
        "| tor    | ToR rack a (BIRD) | 10.0.0.1/24  | 65000 |",
        "| node-2 | node rack a       | 10.0.0.12/24 | 64512 |",
        "| node-1 10.0.0.11 AS 64512 | node-2 10.0.0.12 AS 64512 | iBGP mesh | node-to-node mesh  |",
        "| node-1 10.0.0.11 AS 64512 | tor 10.0.0.1 AS 65000     | eBGP      | global BGPPeer tor |",
        "BGP: every node session is Established",
        "pod web-1-node-1 on node-1: 10.244.",
        "every ToR holds all 2 pod blocks in its FIB",
        "verdict: ",
    ] {
        assert!(up.contains(want), "missing {want:?} in\n{up}");
    }
    let journal = lab.journal();
    assert_eq!(journal.phase, Phase::Up);
    assert_eq!(journal.namespaces.len(), 1 + 1 + 2 + 2, "{journal:?}");
    assert_eq!(journal.processes.len(), 3, "BIRD and two agents");
    assert!(journal.pods.iter().all(|p| p.ip.is_some()), "{journal:?}");
    let exists: BTreeSet<String> = list_namespaces().unwrap().into_iter().collect();
    for ns in &journal.namespaces {
        assert!(exists.contains(ns), "{ns} missing");
    }

    let status = ok(&lab.run(&["status"]));
    for node in ["node-1", "node-2"] {
        let rows = status_rows(section(&status, node)).unwrap();
        let mut peers: Vec<(String, String, String)> = rows
            .iter()
            .map(|r| (r.address.clone(), r.peer_type.clone(), r.info.clone()))
            .collect();
        peers.sort();
        let other = if node == "node-1" {
            "10.0.0.12"
        } else {
            "10.0.0.11"
        };
        assert_eq!(
            peers,
            [
                ("10.0.0.1".into(), "global".into(), "Established".into()),
                (
                    other.into(),
                    "node-to-node mesh".into(),
                    "Established".into()
                ),
            ],
            "{status}"
        );
    }
    let tor = section(&status, "tor");
    assert!(tor.starts_with("birdc show protocols"), "{tor}");
    for proto in ["node_1", "node_2"] {
        let line = tor.lines().find(|l| l.starts_with(proto)).unwrap_or("");
        assert!(line.contains("Established"), "{proto}: {tor}");
    }
    let ipam = section(&status, "IPAM");
    assert!(ipam.contains("| IP Pool  | 10.244.0.0/16"), "{ipam}");
    assert_eq!(ipam.matches("| Block ").count(), 2, "{ipam}");
    // Each node's block, and the ToR's FIB reaching it through that node.
    let blocks = table_rows(section(
        &status,
        "Blocks: which node owns each, and how each ToR forwards to it",
    ));
    assert_eq!(blocks[0], ["BLOCK", "NODE", "IN USE", "TOR FIB"]);
    assert_eq!(blocks.len(), 3, "{blocks:?}");
    for row in &blocks[1..] {
        let owner_addr = if row[1] == "node-1" {
            "10.0.0.11"
        } else {
            "10.0.0.12"
        };
        assert!(row[0].ends_with("/26") && row[2] == "1", "{row:?}");
        assert!(
            row[3].contains(&format!("{owner_addr} ({})", row[1])),
            "the ToR has no route to {} through its node: {row:?}",
            row[0]
        );
    }
    let pods = table_rows(section(&status, "Pods"));
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert_eq!(pods[1][1..3], ["web-1-node-1".to_string(), "node-1".into()]);
    assert!(pods[2][3].starts_with("10.244."), "{pods:?}");
    let reach = section(&status, "Reachability");
    assert!(reach.starts_with("2 pings, one per pair"), "{reach}");
    assert!(reach.contains("| 1 web-1-node-1 | -"), "{reach}");
    assert_eq!(
        status.lines().last().unwrap_or(""),
        "verdict: all 2 pods reach each other (2 of 2 pings answered)",
        "{status}"
    );

    // A second `up` with the same options finds everything in place and changes nothing.
    let again = ok(&lab.run(&["up", "--nodes", "2", "--pods-per-node", "1"]));
    assert!(
        again.starts_with("ginger-lab: the lab in ")
            && again.contains("already up with these options"),
        "{again}"
    );
    assert_eq!(lab.journal(), journal, "a second up changed the journal");
    // Other options: `down` first, and nothing is touched.
    let other = lab.run(&["up", "--nodes", "3"]);
    assert!(!other.status.success());
    let err = text(&other.stderr);
    assert!(
        err.contains("a lab with other options (--nodes 2 --pods-per-node 1 --tor bird) is up")
            && err.contains("run `ginger-lab down` first"),
        "{err}"
    );
    assert!(!err.contains("stays for its logs"), "{err}");
    assert_eq!(lab.journal(), journal);

    let down = ok(&lab.run(&["down"]));
    assert!(
        down.contains("stopped 3 processes, deleted 6 namespaces"),
        "{down}"
    );
    assert_nothing_left(&lab, &journal, &links_before);
    // Safe to run twice; status says there is no lab.
    assert!(ok(&lab.run(&["down"])).contains("nothing to do"));
    let status = lab.run(&["status"]);
    assert!(!status.status.success());
    assert!(
        text(&status.stderr).contains("no lab in"),
        "{}",
        text(&status.stderr)
    );
}

/// A bin directory whose `ginger-node` starts a helper inside the node's namespace and dies,
/// as an agent crashing at start-up would; `gingerctl` and `ginger` are the real ones.
fn dying_agent_bins(real: &Path, dir: &Path) -> PathBuf {
    let bins = dir.join("bins");
    fs::create_dir_all(&bins).unwrap();
    for b in ["gingerctl", "ginger"] {
        std::os::unix::fs::symlink(real.join(b), bins.join(b)).unwrap();
    }
    let agent = bins.join("ginger-node");
    fs::write(
        &agent,
        "#!/bin/sh\nsleep 300 &\necho 'ginger-node (test double): cannot start, exiting' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o755)).unwrap();
    bins
}

#[test]
fn down_after_a_failed_up_removes_everything() {
    let links_before = host_links();
    let lab = Lab::new("f");
    let tmp = tempfile::tempdir().unwrap();
    let bins = dying_agent_bins(&lab.bin_dir, tmp.path());
    let out = lab.run_with_bins(&bins, &["up", "--nodes", "2", "--pods-per-node", "1"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("ginger-node on node-1 exited during start-up")
            && err.contains("cannot start, exiting")
            && err.contains("`ginger-lab down` removes it"),
        "{err}"
    );
    let journal = lab.journal();
    assert!(matches!(journal.phase, Phase::Failed(_)), "{journal:?}");
    // The segment, the ToR and the nodes were built; the helper still runs in node-1.
    assert!(journal.namespaces.len() >= 4, "{journal:?}");
    let node1 = format!("{}-node-1", lab.prefix);
    let pids = Command::new("ip")
        .args(["netns", "pids", &node1])
        .output()
        .unwrap();
    let leftover: Vec<i32> = text(&pids.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(
        !leftover.is_empty(),
        "the test double's helper should run in {node1}"
    );

    // Nothing is rebuilt over a failed lab, and status says what happened.
    let again = lab.run(&["up", "--nodes", "2", "--pods-per-node", "1"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("failed"),
        "{}",
        text(&again.stderr)
    );
    let status = ok(&lab.run(&["status"]));
    assert!(status.contains("(its `up` FAILED)"), "{status}");
    assert!(status.contains("(ginger-node is NOT running)"), "{status}");

    let down = ok(&lab.run(&["down"]));
    assert!(
        down.contains("also killed"),
        "the helper was found and killed: {down}"
    );
    for pid in leftover {
        assert!(!is_alive(pid), "pid {pid} survived down");
    }
    assert_nothing_left(&lab, &journal, &links_before);
}

#[test]
fn down_after_an_up_killed_half_way_removes_everything() {
    let links_before = host_links();
    let lab = Lab::new("k");
    let mut up = Command::new(LAB)
        .arg("--dir")
        .arg(&lab.dir)
        .args(["--prefix", &lab.prefix])
        .arg("--bin-dir")
        .arg(&lab.bin_dir)
        .args(["up", "--nodes", "2", "--pods-per-node", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once an agent runs: namespaces and processes exist, the lab is unfinished.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = fs::read_to_string(lab.dir.join("lab.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Journal>(&t).ok())
            .is_some_and(|j| {
                j.processes
                    .iter()
                    .any(|p| p.label.starts_with("ginger-node"))
            });
        if started {
            break;
        }
        assert!(Instant::now() < deadline, "up never started an agent");
        assert!(
            up.try_wait().unwrap().is_none(),
            "up finished before it was killed"
        );
        thread::sleep(Duration::from_millis(20));
    }
    up.kill().unwrap();
    up.wait().unwrap();
    let journal = lab.journal();
    assert_eq!(journal.phase, Phase::Building);
    let again = lab.run(&["up", "--nodes", "2", "--pods-per-node", "1"]);
    assert!(
        text(&again.stderr).contains("did not finish"),
        "{}",
        text(&again.stderr)
    );
    ok(&lab.run(&["down"]));
    assert_nothing_left(&lab, &journal, &links_before);
}

#[test]
fn two_racks_peer_through_bird_and_frr_tors() {
    let links_before = host_links();
    let lab = Lab::new("r");
    let up = ok(&lab.run(&["up", "--racks", "2", "--nodes", "2", "--pods-per-node", "1"]));
    for want in [
        "| tor-a  | ToR rack a (BIRD) | 10.0.1.1/24 10.0.254.1/30 | 65101 |",
        "| tor-b  | ToR rack b (FRR)  | 10.0.2.1/24 10.0.254.2/30 | 65102 |",
        "| node-2 | node rack b       | 10.0.2.12/24",
        "BGPPeer tor-a (rack == 'a')",
        "BGP: every node session is Established",
        "every ToR holds all 2 pod blocks in its FIB",
    ] {
        assert!(up.contains(want), "missing {want:?} in\n{up}");
    }
    let status = ok(&lab.run(&["status"]));
    // No mesh: each node has exactly its ToR.
    let r1 = status_rows(section(&status, "node-1")).unwrap();
    assert_eq!(r1.len(), 1, "{r1:?}");
    assert_eq!(
        (r1[0].address.as_str(), r1[0].info.as_str()),
        ("10.0.1.1", "Established")
    );
    let r2 = status_rows(section(&status, "node-2")).unwrap();
    assert_eq!(
        (r2[0].address.as_str(), r2[0].info.as_str()),
        ("10.0.2.1", "Established")
    );
    // The ToRs are up with each other.
    let a = section(&status, "tor-a");
    assert!(
        a.lines()
            .any(|l| l.starts_with("tor_b") && l.contains("Established")),
        "{a}"
    );
    let b = section(&status, "tor-b");
    assert!(b.contains("local AS number 65102"), "{b}");
    let tor_a_line = b
        .lines()
        .find(|l| l.starts_with("10.0.254.1"))
        .unwrap_or("");
    assert!(
        tor_a_line.contains("65101") && tor_a_line.contains("tor-a"),
        "{b}"
    );
    // Each ToR reaches the other rack's block through the other ToR.
    let blocks = table_rows(section(
        &status,
        "Blocks: which node owns each, and how each ToR forwards to it",
    ));
    assert_eq!(
        blocks[0],
        ["BLOCK", "NODE", "IN USE", "TOR-A FIB", "TOR-B FIB"]
    );
    for row in &blocks[1..] {
        match row[1].as_str() {
            "node-1" => {
                assert_eq!(row[3], "via 10.0.1.11 (node-1)", "{row:?}");
                assert_eq!(row[4], "via 10.0.254.1 (tor-a)", "{row:?}");
            }
            "node-2" => {
                assert_eq!(row[3], "via 10.0.254.2 (tor-b)", "{row:?}");
                assert_eq!(row[4], "via 10.0.2.12 (node-2)", "{row:?}");
            }
            other => panic!("block of {other}: {row:?}"),
        }
    }
    let journal = lab.journal();
    assert_eq!(
        journal
            .processes
            .iter()
            .map(|p| p.label.as_str())
            .collect::<Vec<_>>(),
        [
            "bird-tor-a",
            "zebra-tor-b",
            "bgpd-tor-b",
            "ginger-node-node-1",
            "ginger-node-node-2"
        ]
    );
    ok(&lab.run(&["down"]));
    assert_nothing_left(&lab, &journal, &links_before);
}

#[test]
fn pods_on_one_node_reach_each_other() {
    // Same-node traffic needs no BGP: the host's /32 routes and proxy ARP carry it.
    let lab = Lab::new("p");
    let up = ok(&lab.run(&["up", "--nodes", "1", "--pods-per-node", "2"]));
    assert!(up.contains("every pod reaches every other ("), "{up}");
    let last = up.lines().last().unwrap_or("");
    assert_eq!(
        last, "verdict: all 2 pods reach each other (2 of 2 pings answered)",
        "{up}"
    );
    let reach = table_rows(section(&up, "Reachability"));
    assert_eq!(reach[1][1..], ["-".to_string(), "ok".into()], "{reach:?}");
    assert_eq!(reach[2][1..], ["ok".to_string(), "-".into()], "{reach:?}");
    ok(&lab.run(&["down"]));
}

#[test]
fn the_matrix_names_the_pairs_a_blackhole_breaks() {
    // Two nodes, two pods each, over the routes BGP installed; then one node blackholes one pod
    // of the other (a more specific static route beside felix's block route): the matrix marks
    // exactly the pairs through that hole, both ways (the replies die there too), and the
    // verdict names the node pairs; with the hole gone, every pod reaches every other again.
    let lab = Lab::new("s");
    ok(&lab.run(&["up", "--nodes", "2", "--pods-per-node", "2"]));
    let status = wait_all_reach(&lab, 4);
    let blocks = table_rows(section(
        &status,
        "Blocks: which node owns each, and how each ToR forwards to it",
    ));
    for (node, other, via) in [
        ("node-1", "node-2", "10.0.0.12"),
        ("node-2", "node-1", "10.0.0.11"),
    ] {
        let block = &blocks
            .iter()
            .find(|r| r[1] == other)
            .unwrap_or_else(|| panic!("no block of {other}: {blocks:?}"))[0];
        let want = format!("  {block} via {via} ({other}) (felix, proto 97)");
        assert!(
            section(&status, node).lines().any(|l| l == want),
            "{node}: no {want:?} in\n{status}"
        );
    }
    let pods = table_rows(section(&status, "Pods"));
    assert_eq!(pods[3][1], "web-1-node-2", "{pods:?}");
    let hole = format!("{}/32", pods[3][3]);
    let node1 = format!("{}-node-1", lab.prefix);
    let route = |verb: &str| {
        let out = Command::new("ip")
            .args([
                "-n",
                &node1,
                "route",
                verb,
                "blackhole",
                &hole,
                "proto",
                "static",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    route("add");
    let broken = ok(&lab.run(&["status"]));
    let reach = table_rows(section(&broken, "Reachability"));
    // Rows and columns: web-1-node-1, web-2-node-1, web-1-node-2, web-2-node-2.
    let want = [
        ["-", "ok", "FAIL", "ok"],
        ["ok", "-", "FAIL", "ok"],
        ["FAIL", "FAIL", "-", "ok"],
        ["ok", "ok", "ok", "-"],
    ];
    for (row, want) in reach[1..].iter().zip(want) {
        assert_eq!(row[1..], want, "{broken}");
    }
    assert_eq!(
        broken.lines().last().unwrap_or(""),
        "verdict: 4 of 12 pod pairs fail (node-1 -> node-2 2 of 4; node-2 -> node-1 2 of 4)",
        "{broken}"
    );
    route("del");
    wait_all_reach(&lab, 4);
    ok(&lab.run(&["down"]));
}

/// `status` until its verdict is the all-reach line (nodes program the routes BGP learned).
fn wait_all_reach(lab: &Lab, pods: usize) -> String {
    let want = format!("verdict: all {pods} pods reach each other");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = ok(&lab.run(&["status"]));
        if status.lines().last().is_some_and(|l| l.starts_with(&want)) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "not every pod reaches every other:\n{status}"
        );
        thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn three_nodes_and_a_bird_tor_every_pod_reaches_every_other() {
    let lab = Lab::new("m");
    ok(&lab.run(&["up"]));
    let status = wait_all_reach(&lab, 6);
    // Each node's kernel reaches the other nodes' blocks through those nodes.
    for node in ["node-1", "node-2", "node-3"] {
        let s = section(&status, node);
        let routes: Vec<&str> = s
            .lines()
            .skip_while(|l| !l.starts_with("kernel routes through other hosts:"))
            .skip(1)
            .collect();
        assert_eq!(routes.len(), 2, "{node}: {s}");
        for other in ["node-1", "node-2", "node-3"]
            .iter()
            .filter(|n| **n != node)
        {
            assert!(
                routes.iter().any(|r| r.contains(&format!("({other})"))),
                "{node} has no route through {other}: {s}"
            );
        }
    }
    ok(&lab.run(&["down"]));
}

#[test]
fn two_racks_pods_reach_each_other_through_the_tors() {
    // Rack a: node-1 and node-2 (AS 65001), rack b: node-3 (AS 65002). Within a rack the
    // ToR passes the block on with its owner as next hop (same segment, RFC 4271 §5.1.3) and
    // the rack's AS taken out of the path, so node-1 forwards to node-2 directly; the other
    // rack's blocks go through the node's own ToR.
    let lab = Lab::new("x");
    ok(&lab.run(&["up", "--racks", "2", "--nodes", "3", "--pods-per-node", "1"]));
    let status = wait_all_reach(&lab, 3);
    let blocks = table_rows(section(
        &status,
        "Blocks: which node owns each, and how each ToR forwards to it",
    ));
    let block_of = |node: &str| -> String {
        blocks
            .iter()
            .find(|r| r[1] == node)
            .unwrap_or_else(|| panic!("no block of {node}: {blocks:?}"))[0]
            .clone()
    };
    for (node, other, via) in [
        ("node-1", "node-2", "10.0.1.12 (node-2)"),
        ("node-2", "node-1", "10.0.1.11 (node-1)"),
        ("node-1", "node-3", "10.0.1.1 (tor-a)"),
        ("node-3", "node-1", "10.0.2.1 (tor-b)"),
        ("node-3", "node-2", "10.0.2.1 (tor-b)"),
    ] {
        let want = format!("  {} via {via} (felix, proto 97)", block_of(other));
        assert!(
            section(&status, node).lines().any(|l| l == want),
            "{node}: no {want:?} in\n{status}"
        );
    }
    ok(&lab.run(&["down"]));
}
