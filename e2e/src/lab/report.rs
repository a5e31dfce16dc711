//! What `ginger-lab` prints: what `up` built (hosts, who peers with whom) and the status
//! (each node's `gingerctl node status`, each ToR's sessions and FIB, which blocks live where,
//! the pods, the reachability matrix and its one-line verdict).
//!
//! Owns: the text, from plain data (`LabView` and the plan), and `Table`: the bordered layout
//! `gingerctl` prints, without its 30-column cell wrapping (a lab row stays one line, which
//! reads and greps better). Must not: query anything (`probe` does) or decide what the lab
//! should do.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use agent::ctl::IpamReport;
use bgp::status::{PeerStatus, SessionState};
use ipnet::IpNet;

use super::journal::Phase;
use super::plan::{Plan, SessionKind};
use super::probe::{FibRoute, Matrix};

/// One node as the status shows it.
#[derive(Clone, Debug)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Whether its `ginger-node` runs.
    pub running: bool,
    /// `gingerctl node status` output (or its error).
    pub status_text: String,
    /// Its sessions, if the control socket answered.
    pub peers: Option<Vec<PeerStatus>>,
    /// Routes in its namespace's kernel through another host (a next hop), if readable.
    pub remote_routes: Option<Vec<FibRoute>>,
}

/// One ToR as the status shows it.
#[derive(Clone, Debug)]
pub struct TorView {
    /// ToR name.
    pub name: String,
    /// Whether its daemons run.
    pub running: bool,
    /// The command that showed its sessions, as typed.
    pub summary_command: String,
    /// Its output.
    pub summary: String,
    /// Routes its daemon installed into its namespace's FIB (or why they could not be read).
    pub fib: Result<Vec<FibRoute>, String>,
}

/// Everything `status` shows.
#[derive(Clone, Debug)]
pub struct LabView {
    /// How far `up` got.
    pub phase: Phase,
    /// The nodes.
    pub nodes: Vec<NodeView>,
    /// The ToRs.
    pub tors: Vec<TorView>,
    /// `gingerctl ipam show --show-blocks` output.
    pub ipam_text: String,
    /// IPAM, structured (blocks and their nodes), if a node answered.
    pub ipam: Option<IpamReport>,
    /// Reachability.
    pub matrix: Matrix,
}

/// A bordered table: upper-cased centred headers, left-aligned cells, no wrapping.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new<S: AsRef<str>>(header: &[S]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.as_ref().to_uppercase()).collect()],
        }
    }

    /// Append a row (as many cells as the header).
    pub fn push_row<S: AsRef<str>>(&mut self, cells: &[S]) {
        self.rows
            .push(cells.iter().map(|c| c.as_ref().to_string()).collect());
    }

    /// The table, each line ending in `\n`.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let border: String = widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+");
        let border = format!("+{border}+\n");
        let mut out = border.clone();
        for (i, row) in self.rows.iter().enumerate() {
            out.push('|');
            for (c, w) in widths.iter().enumerate() {
                let cell = row.get(c).map(String::as_str).unwrap_or("");
                let gap = w - cell.chars().count();
                let (left, right) = if i == 0 {
                    (gap / 2, gap - gap / 2)
                } else {
                    (0, gap)
                };
                out.push_str(&format!(
                    " {}{cell}{} |",
                    " ".repeat(left),
                    " ".repeat(right)
                ));
            }
            out.push('\n');
            if i == 0 {
                out.push_str(&border);
            }
        }
        out.push_str(&border);
        out
    }
}

/// One line about the lab: size, racks, ToR daemons.
pub fn headline(plan: &Plan) -> String {
    let o = &plan.options;
    let tors: Vec<String> = plan
        .tors
        .iter()
        .map(|t| format!("{} ({})", t.name, t.kind.title()))
        .collect();
    format!(
        "{} node{}, {} pod{} per node, {} rack{} (ToR: {}), mesh {}",
        o.nodes,
        plural(o.nodes),
        o.pods_per_node,
        plural(o.pods_per_node),
        o.racks,
        plural(o.racks),
        tors.join(", "),
        if plan.mesh() { "on" } else { "off" }
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The hosts `up` built: names, roles, addresses, AS numbers, namespaces.
pub fn hosts(plan: &Plan) -> String {
    let mut t = Table::new(&["host", "role", "address", "AS", "namespace"]);
    for tor in &plan.tors {
        let rack = &plan.racks[tor.rack];
        let mut addrs = vec![format!("{}/{}", tor.addr, rack.subnet.prefix_len())];
        for l in &plan.tor_links {
            if plan.tors[l.a].name == tor.name {
                addrs.push(format!("{}/30", l.a_addr));
            } else if plan.tors[l.b].name == tor.name {
                addrs.push(format!("{}/30", l.b_addr));
            }
        }
        t.push_row(&[
            tor.name.clone(),
            format!("ToR rack {} ({})", rack.name, tor.kind.title()),
            addrs.join(" "),
            tor.asn.to_string(),
            tor.netns.clone(),
        ]);
    }
    for n in &plan.nodes {
        let rack = &plan.racks[n.rack];
        t.push_row(&[
            n.name.clone(),
            format!("node rack {}", rack.name),
            format!("{}/{}", n.addr, rack.subnet.prefix_len()),
            n.asn.to_string(),
            n.netns.clone(),
        ]);
    }
    t.render()
}

/// Who peers with whom; with `nodes`, each session's state as the node end sees it.
pub fn peerings(plan: &Plan, nodes: Option<&[NodeView]>) -> String {
    let mut header = vec!["peer a", "peer b", "session", "configured by"];
    if nodes.is_some() {
        header.push("state");
    }
    let mut t = Table::new(&header);
    for s in plan.sessions() {
        let mut row = vec![
            format!("{} {} AS {}", s.a, s.a_addr, s.a_asn),
            format!("{} {} AS {}", s.b, s.b_addr, s.b_asn),
            match s.kind {
                SessionKind::Mesh => "iBGP mesh".to_string(),
                SessionKind::NodeTor | SessionKind::TorTor => s.flavour().to_string(),
            },
            s.source.clone(),
        ];
        if let Some(nodes) = nodes {
            let state = match s.kind {
                // Both ends are routers: their summaries below show it.
                SessionKind::TorTor => "see ToR view".to_string(),
                _ => session_state(nodes, &s.a, IpAddr::V4(s.b_addr)),
            };
            row.push(state);
        }
        t.push_row(&row);
    }
    t.render()
}

fn session_state(nodes: &[NodeView], node: &str, peer: IpAddr) -> String {
    let Some(v) = nodes.iter().find(|n| n.name == node) else {
        return "?".into();
    };
    match &v.peers {
        None => "agent down".into(),
        Some(peers) => match peers.iter().find(|p| p.address == peer) {
            Some(p) => p.state.name().to_string(),
            None => "not configured".into(),
        },
    }
}

/// Sessions the nodes see that are not Established: (node, peer address, state).
pub fn sessions_down(nodes: &[NodeView]) -> Vec<(String, IpAddr, SessionState)> {
    let mut out = Vec::new();
    for n in nodes {
        for p in n.peers.iter().flatten() {
            if p.state != SessionState::Established {
                out.push((n.name.clone(), p.address, p.state));
            }
        }
    }
    out
}

/// Which blocks live where: each block's node and pods, and the next hop each ToR's FIB has
/// for it.
pub fn blocks(plan: &Plan, ipam: &IpamReport, tors: &[TorView]) -> String {
    let mut header = vec!["block".to_string(), "node".into(), "in use".into()];
    header.extend(tors.iter().map(|t| format!("{} fib", t.name)));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(&header);
    for b in ipam
        .pools
        .iter()
        .flat_map(|p| &p.blocks)
        .chain(&ipam.orphan_blocks)
    {
        let mut row = vec![
            b.cidr.to_string(),
            b.affinity.clone().unwrap_or_else(|| "(none)".into()),
            b.in_use.to_string(),
        ];
        for tor in tors {
            row.push(match &tor.fib {
                Err(_) => "?".into(),
                Ok(fib) => fib_cell(plan, fib, b.cidr),
            });
        }
        t.push_row(&row);
    }
    t.render()
}

/// How a FIB reaches `dst`: `via 10.0.0.11 (node-1)`, or `-` when it has no route.
fn fib_cell(plan: &Plan, fib: &[FibRoute], dst: IpNet) -> String {
    match fib.iter().find(|r| r.dst == dst) {
        None => "-".into(),
        Some(r) => {
            let hops: Vec<String> = r.via.iter().map(|h| hop_name(plan, *h)).collect();
            format!("via {}", hops.join(", "))
        }
    }
}

fn hop_name(plan: &Plan, hop: IpAddr) -> String {
    match hop {
        IpAddr::V4(v4) => match plan.who_has(v4) {
            Some(name) => format!("{hop} ({name})"),
            None => hop.to_string(),
        },
        IpAddr::V6(_) => hop.to_string(),
    }
}

/// The pods: node, address and the block it came from.
pub fn pods(matrix: &Matrix, ipam: Option<&IpamReport>) -> String {
    let blocks: Vec<IpNet> = ipam
        .map(|r| {
            r.pools
                .iter()
                .flat_map(|p| &p.blocks)
                .chain(&r.orphan_blocks)
                .map(|b| b.cidr)
                .collect()
        })
        .unwrap_or_default();
    let mut t = Table::new(&["#", "pod", "node", "ip", "block"]);
    for (i, p) in matrix.pods.iter().enumerate() {
        let block =
            p.ip.and_then(|ip| blocks.iter().find(|b| b.contains(&ip)))
                .map(|b| b.to_string())
                .unwrap_or_else(|| "-".into());
        t.push_row(&[
            (i + 1).to_string(),
            p.name.clone(),
            p.node.clone(),
            p.ip.map(|ip| ip.to_string())
                .unwrap_or_else(|| "(no address)".into()),
            block,
        ]);
    }
    t.render()
}

/// The reachability matrix: row = source pod, column = destination pod (by number).
pub fn matrix(m: &Matrix) -> String {
    let numbers: Vec<String> = (1..=m.pods.len()).map(|i| i.to_string()).collect();
    let mut header = vec!["from \\ to"];
    header.extend(numbers.iter().map(String::as_str));
    let mut t = Table::new(&header);
    for (i, p) in m.pods.iter().enumerate() {
        let mut row = vec![format!("{} {}", i + 1, p.name)];
        row.extend(m.reach[i].iter().map(|c| match c {
            None => "-".to_string(),
            Some(true) => "ok".to_string(),
            Some(false) => "FAIL".to_string(),
        }));
        t.push_row(&row);
    }
    t.render()
}

/// The one-line verdict: "all 6 pods reach each other …" or which pairs fail.
/// Who installed a route, from `ip -j route`'s protocol field: felix's own protocol number
/// (ginger-node's default `--route-protocol`) is named, others are shown as the kernel says.
fn installer(protocol: &str) -> String {
    if protocol == felix::ownership::DEFAULT_ROUTE_PROTOCOL.to_string() {
        format!("felix, proto {protocol}")
    } else {
        format!("proto {protocol}")
    }
}

pub fn verdict(m: &Matrix) -> String {
    let n = m.pods.len();
    if n == 0 {
        return "no pods (--pods-per-node 0): nothing to ping".into();
    }
    let (tried, ok) = m.counts();
    let missing: Vec<&str> = m
        .pods
        .iter()
        .filter(|p| p.ip.is_none())
        .map(|p| p.name.as_str())
        .collect();
    if n == 1 && missing.is_empty() {
        return "1 pod: nobody to ping".into();
    }
    if m.all_reach() {
        return format!("all {n} pods reach each other ({ok} of {tried} pings answered)");
    }
    let failures = m.failures();
    // Group by (source node, destination node): that is where an operator looks first.
    let mut by_nodes: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    for (i, row) in m.reach.iter().enumerate() {
        for (j, c) in row.iter().enumerate() {
            if let Some(answered) = c {
                let e = by_nodes
                    .entry((m.pods[i].node.as_str(), m.pods[j].node.as_str()))
                    .or_default();
                e.1 += 1;
                if !answered {
                    e.0 += 1;
                }
            }
        }
    }
    // The usual picture while nodes lack routes to each other's blocks: say it in words.
    let cross = by_nodes.iter().filter(|((a, b), _)| a != b);
    let cross_all_fail = cross.clone().count() > 0 && cross.clone().all(|(_, (f, of))| f == of);
    let same_all_ok = by_nodes
        .iter()
        .all(|((a, b), (failed, _))| a != b || *failed == 0);
    if cross_all_fail && same_all_ok && missing.is_empty() {
        let own = if by_nodes.keys().any(|(a, b)| a == b) {
            "every pod reaches the pods on its own node, "
        } else {
            ""
        };
        return format!(
            "{} of {tried} pod pairs fail: {own}no pod reaches a pod on another node \
             (does each node have routes to the other nodes' blocks?)",
            failures.len()
        );
    }
    let mut parts: Vec<String> = by_nodes
        .iter()
        .filter(|(_, (failed, _))| *failed > 0)
        .map(|((a, b), (failed, of))| {
            if a == b {
                format!("within {a} {failed} of {of}")
            } else {
                format!("{a} -> {b} {failed} of {of}")
            }
        })
        .collect();
    const SHOWN: usize = 12;
    if parts.len() > SHOWN {
        let more = parts.len() - SHOWN;
        parts.truncate(SHOWN);
        parts.push(format!("and {more} more node pairs"));
    }
    let mut line = if ok == 0 {
        format!(
            "no pod reaches any other: all {tried} pod pairs fail ({})",
            parts.join("; ")
        )
    } else {
        format!(
            "{} of {tried} pod pairs fail ({})",
            failures.len(),
            parts.join("; ")
        )
    };
    if !missing.is_empty() {
        let _ = write!(line, "; without an address: {}", missing.join(", "));
    }
    line
}

/// The whole status text.
pub fn status(plan: &Plan, dir: &str, view: &LabView) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ginger-lab {} in {dir}: {}",
        phase_word(&view.phase),
        headline(plan)
    );
    if let Phase::Failed(e) = &view.phase {
        let _ = writeln!(s, "`up` failed: {e}");
        let _ = writeln!(s, "run `ginger-lab down` to remove what it built");
    }
    for n in &view.nodes {
        let _ = writeln!(
            s,
            "\n== {} == gingerctl node status{}",
            n.name,
            if n.running {
                ""
            } else {
                "  (ginger-node is NOT running)"
            }
        );
        s.push_str(n.status_text.trim_end());
        s.push('\n');
        match &n.remote_routes {
            Some(r) if r.is_empty() => {
                let _ = writeln!(s, "kernel routes through other hosts: none");
            }
            Some(r) => {
                let _ = writeln!(s, "kernel routes through other hosts:");
                for route in r {
                    let hops: Vec<String> = route.via.iter().map(|h| hop_name(plan, *h)).collect();
                    let _ = writeln!(
                        s,
                        "  {} via {} ({})",
                        route.dst,
                        hops.join(", "),
                        installer(&route.protocol)
                    );
                }
            }
            None => {}
        }
    }
    for t in &view.tors {
        let _ = writeln!(
            s,
            "\n== {} == {}{}",
            t.name,
            t.summary_command,
            if t.running {
                ""
            } else {
                "  (its daemon is NOT running)"
            }
        );
        s.push_str(t.summary.trim_end());
        s.push('\n');
    }
    let _ = writeln!(s, "\n== BGP sessions ==");
    s.push_str(&peerings(plan, Some(&view.nodes)));
    let _ = writeln!(s, "\n== IPAM == gingerctl ipam show --show-blocks");
    s.push_str(view.ipam_text.trim_end());
    s.push('\n');
    if let Some(ipam) = &view.ipam {
        let _ = writeln!(
            s,
            "\n== Blocks: which node owns each, and how each ToR forwards to it =="
        );
        s.push_str(&blocks(plan, ipam, &view.tors));
    }
    let _ = writeln!(s, "\n== Pods ==");
    s.push_str(&pods(&view.matrix, view.ipam.as_ref()));
    if view.matrix.pods.len() > 1 {
        let (tried, _) = view.matrix.counts();
        let _ = writeln!(
            s,
            "\n== Reachability == {tried} pings, one per pair, each from inside the source pod ({:.1} s)",
            view.matrix.took.as_secs_f64()
        );
        s.push_str(&matrix(&view.matrix));
    }
    let down = sessions_down(&view.nodes);
    if !down.is_empty() {
        let list: Vec<String> = down
            .iter()
            .map(|(n, a, st)| format!("{n} -> {a} {}", st.name()))
            .collect();
        let _ = writeln!(s, "\nBGP sessions not Established: {}", list.join(", "));
    }
    let _ = writeln!(s, "\nverdict: {}", verdict(&view.matrix));
    s
}

fn phase_word(phase: &Phase) -> &'static str {
    match phase {
        Phase::Building => "(still building, or its `up` was interrupted)",
        Phase::Up => "is up",
        Phase::Failed(_) => "(its `up` FAILED)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::LabOptions;
    use crate::lab::probe::PodTarget;
    use agent::ctl::protocol::{BlockUsage, PoolUsage};
    use std::time::Duration;

    fn pod(name: &str, node: &str, ip: &str) -> PodTarget {
        PodTarget {
            name: name.into(),
            node: node.into(),
            netns: String::new(),
            ip: Some(ip.parse().unwrap()),
        }
    }

    fn three_pods(reach: Vec<Vec<Option<bool>>>) -> Matrix {
        Matrix {
            pods: vec![
                pod("web-1-node-1", "node-1", "10.244.1.1"),
                pod("web-2-node-1", "node-1", "10.244.1.2"),
                pod("web-1-node-2", "node-2", "10.244.2.1"),
            ],
            reach,
            took: Duration::from_millis(300),
        }
    }

    #[test]
    fn verdict_says_all_or_which_node_pairs_fail() {
        let all = three_pods(vec![
            vec![None, Some(true), Some(true)],
            vec![Some(true), None, Some(true)],
            vec![Some(true), Some(true), None],
        ]);
        assert_eq!(
            verdict(&all),
            "all 3 pods reach each other (6 of 6 pings answered)"
        );
        let cross = three_pods(vec![
            vec![None, Some(true), Some(false)],
            vec![Some(true), None, Some(false)],
            vec![Some(false), Some(false), None],
        ]);
        assert_eq!(
            verdict(&cross),
            "4 of 6 pod pairs fail: every pod reaches the pods on its own node, no pod reaches a \
             pod on another node (does each node have routes to the other nodes' blocks?)"
        );
        let one_way = three_pods(vec![
            vec![None, Some(true), Some(true)],
            vec![Some(true), None, Some(false)],
            vec![Some(false), Some(false), None],
        ]);
        assert_eq!(
            verdict(&one_way),
            "3 of 6 pod pairs fail (node-1 -> node-2 1 of 2; node-2 -> node-1 2 of 2)"
        );
        let none = three_pods(vec![
            vec![None, Some(false), Some(false)],
            vec![Some(false), None, Some(false)],
            vec![Some(false), Some(false), None],
        ]);
        assert!(
            verdict(&none).starts_with(
                "no pod reaches any other: all 6 pod pairs fail (within node-1 2 of 2; node-1 -> node-2 2 of 2;"
            ),
            "{}",
            verdict(&none)
        );
    }

    #[test]
    fn matrix_marks_every_cell() {
        let m = three_pods(vec![
            vec![None, Some(true), Some(false)],
            vec![Some(true), None, Some(true)],
            vec![Some(true), Some(true), None],
        ]);
        let text = matrix(&m);
        assert!(
            text.contains("|   FROM \\ TO    | 1  | 2  |  3   |"),
            "{text}"
        );
        assert!(
            text.contains("| 1 web-1-node-1 | -  | ok | FAIL |"),
            "{text}"
        );
    }

    #[test]
    fn blocks_show_owner_and_each_tors_next_hop() {
        let plan = Plan::new(
            "lab",
            &LabOptions {
                nodes: 2,
                ..LabOptions::default()
            },
        )
        .unwrap();
        let ipam = IpamReport {
            pools: vec![PoolUsage {
                name: "default-ipv4-ippool".into(),
                cidr: "10.244.0.0/16".parse().unwrap(),
                in_use: 3,
                blocks: vec![
                    BlockUsage {
                        cidr: "10.244.1.0/26".parse().unwrap(),
                        in_use: 2,
                        affinity: Some("node-1".into()),
                    },
                    BlockUsage {
                        cidr: "10.244.2.0/26".parse().unwrap(),
                        in_use: 1,
                        affinity: Some("node-2".into()),
                    },
                ],
            }],
            orphan_blocks: vec![],
        };
        let tor = TorView {
            name: "tor".into(),
            running: true,
            summary_command: "birdc show protocols".into(),
            summary: String::new(),
            fib: Ok(vec![FibRoute {
                dst: "10.244.1.0/26".parse().unwrap(),
                via: vec!["10.0.0.11".parse().unwrap()],
                protocol: "bird".into(),
            }]),
        };
        let text = blocks(&plan, &ipam, &[tor]);
        assert!(
            text.contains("| 10.244.1.0/26 | node-1 | 2      | via 10.0.0.11 (node-1) |"),
            "{text}"
        );
        assert!(
            text.contains("| 10.244.2.0/26 | node-2 | 1      | -                      |"),
            "{text}"
        );
        let pods_text = pods(&three_pods(vec![vec![None; 3]; 3]), Some(&ipam));
        assert!(
            pods_text.contains("| 1 | web-1-node-1 | node-1 | 10.244.1.1 | 10.244.1.0/26 |"),
            "{pods_text}"
        );
    }

    #[test]
    fn peerings_list_every_session_with_its_origin() {
        let plan = Plan::new(
            "lab",
            &LabOptions {
                nodes: 2,
                racks: 2,
                ..LabOptions::default()
            },
        )
        .unwrap();
        let text = peerings(&plan, None);
        assert!(
            text.contains("| node-1 10.0.1.11 AS 65001 | tor-a 10.0.1.1 AS 65101   | eBGP    |"),
            "{text}"
        );
        assert!(text.contains("BGPPeer tor-b (rack == 'b')"), "{text}");
        assert!(text.contains("tor-a 10.0.254.1 AS 65101"), "{text}");
        assert!(!text.contains("mesh"), "{text}");
    }
}
