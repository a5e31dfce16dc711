//! The ToR routers' configuration, as an operator would write it for the lab's plan: BIRD 2
//! (`bird.conf`) or FRR 8 (`bgpd.conf`, `zebra.conf`).
//!
//! Owns: the configuration text, the daemon command lines, and the daemons' status commands
//! (BIRD `show protocols`, FRR `show bgp summary`). Every ToR waits for its nodes to connect
//! (passive; the nodes' `BGPPeer` makes them dial), connects to the other ToRs, and installs
//! what it learns into its namespace's FIB (BIRD's kernel protocol with `merge paths on`, FRR
//! through zebra with `maximum-paths`). With several racks it overrides its rack's AS towards
//! its nodes (BIRD: `bgp_path.delete(<rack AS>)` in the export filter; FRR: `as-override`).
//! Timers are the test launchers' (connect at once, retry every 2 s, no 30 s MRAI), so the lab
//! converges in seconds. Must not: start anything (`ops` does, through `host`).

use std::fmt::Write as _;
use std::path::Path;

use super::plan::{Plan, TorKind, TorPlan};

/// Seconds between connection attempts.
const CONNECT_RETRY: u16 = 2;
/// Most equal-cost paths installed for one prefix.
const MAX_PATHS: u8 = 8;

/// The BGP neighbours of one ToR.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TorNeighbor {
    /// Node or ToR name (BIRD protocol names are derived from it).
    name: String,
    /// Its address.
    addr: std::net::Ipv4Addr,
    /// Its AS.
    asn: u32,
    /// Our address on the session.
    local: std::net::Ipv4Addr,
    /// Whether it is one of our rack's nodes (passive, AS override) or a ToR.
    node: bool,
}

fn neighbors(plan: &Plan, tor: &TorPlan) -> Vec<TorNeighbor> {
    let mut out: Vec<TorNeighbor> = plan
        .nodes_in_rack(tor.rack)
        .map(|n| TorNeighbor {
            name: n.name.clone(),
            addr: n.addr,
            asn: n.asn,
            local: tor.addr,
            node: true,
        })
        .collect();
    for l in &plan.tor_links {
        let (me, other, local, addr) = if l.a == tor.rack {
            (l.a, l.b, l.a_addr, l.b_addr)
        } else if l.b == tor.rack {
            (l.b, l.a, l.b_addr, l.a_addr)
        } else {
            continue;
        };
        debug_assert_eq!(plan.tors[me].name, tor.name);
        out.push(TorNeighbor {
            name: plan.tors[other].name.clone(),
            addr,
            asn: plan.tors[other].asn,
            local,
            node: false,
        });
    }
    out
}

/// The rack AS to override towards the nodes (several racks only).
fn override_asn(plan: &Plan, tor: &TorPlan) -> Option<u32> {
    if plan.mesh() {
        None
    } else {
        plan.nodes_in_rack(tor.rack).next().map(|n| n.asn)
    }
}

/// BIRD's protocol name for a neighbour (`node_1`, `tor_b`).
pub fn bird_protocol(name: &str) -> String {
    name.replace('-', "_")
}

/// The whole `bird.conf` of a BIRD ToR.
pub fn bird_conf(plan: &Plan, tor: &TorPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# ginger-lab: {} (rack {}), AS {}.",
        tor.name, plan.racks[tor.rack].name, tor.asn
    );
    let _ = writeln!(s, "log stderr all;");
    let _ = writeln!(s, "router id {};", tor.addr);
    let _ = writeln!(s, "protocol device {{ scan time 2; }}");
    let _ = writeln!(
        s,
        "# What BGP learns is forwarded by this namespace's kernel (equal-cost paths merged)."
    );
    let _ = writeln!(
        s,
        "protocol kernel {{ merge paths on limit {MAX_PATHS}; ipv4 {{ import none; export where source = RTS_BGP; }}; }}"
    );
    let export_to_nodes = match override_asn(plan, tor) {
        Some(asn) => {
            let _ = writeln!(
                s,
                "# The rack's nodes share AS {asn}: take it out of the path so they accept each other's routes."
            );
            let _ = writeln!(s, "filter to_rack_nodes {{");
            let _ = writeln!(s, "  if source != RTS_BGP then reject;");
            let _ = writeln!(s, "  bgp_path.delete({asn});");
            let _ = writeln!(s, "  accept;");
            let _ = writeln!(s, "}}");
            "filter to_rack_nodes".to_string()
        }
        None => "where source = RTS_BGP".to_string(),
    };
    let _ = writeln!(s, "template bgp rack_node {{");
    let _ = writeln!(s, "  local {} as {};", tor.addr, tor.asn);
    let _ = writeln!(s, "  passive on;");
    let _ = writeln!(s, "  error wait time 1, 5;");
    let _ = writeln!(s, "  ipv4 {{ import all; export {export_to_nodes}; }};");
    let _ = writeln!(s, "}}");
    for n in neighbors(plan, tor) {
        let proto = bird_protocol(&n.name);
        if n.node {
            let _ = writeln!(
                s,
                "protocol bgp {proto} from rack_node {{ neighbor {} as {}; description \"{}\"; }}",
                n.addr, n.asn, n.name
            );
        } else {
            let _ = writeln!(s, "protocol bgp {proto} {{");
            let _ = writeln!(s, "  description \"{}\";", n.name);
            let _ = writeln!(s, "  local {} as {};", n.local, tor.asn);
            let _ = writeln!(s, "  neighbor {} as {};", n.addr, n.asn);
            let _ = writeln!(s, "  connect delay time 0;");
            let _ = writeln!(s, "  connect retry time {CONNECT_RETRY};");
            let _ = writeln!(s, "  error wait time 1, 5;");
            let _ = writeln!(
                s,
                "  ipv4 {{ import all; export where source = RTS_BGP; }};"
            );
            let _ = writeln!(s, "}}");
        }
    }
    s
}

/// The whole `bgpd.conf` of an FRR ToR.
pub fn frr_bgpd_conf(plan: &Plan, tor: &TorPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "! ginger-lab: {} (rack {}), AS {}.",
        tor.name, plan.racks[tor.rack].name, tor.asn
    );
    let _ = writeln!(s, "frr defaults traditional");
    let _ = writeln!(s, "hostname {}", tor.name);
    let _ = writeln!(s, "log stdout informational");
    let _ = writeln!(s, "!");
    let _ = writeln!(s, "router bgp {}", tor.asn);
    let _ = writeln!(s, " bgp router-id {}", tor.addr);
    // FRR sends nothing to eBGP peers without a policy unless told otherwise.
    let _ = writeln!(s, " no bgp ebgp-requires-policy");
    let _ = writeln!(s, " no bgp default ipv4-unicast");
    let ns = neighbors(plan, tor);
    for n in &ns {
        let _ = writeln!(s, " neighbor {} remote-as {}", n.addr, n.asn);
        let _ = writeln!(s, " neighbor {} description {}", n.addr, n.name);
        if n.node {
            let _ = writeln!(s, " neighbor {} passive", n.addr);
        } else {
            let _ = writeln!(s, " neighbor {} update-source {}", n.addr, n.local);
        }
        let _ = writeln!(s, " neighbor {} timers connect {CONNECT_RETRY}", n.addr);
        // Traditional defaults hold eBGP updates back for 30 s (MRAI).
        let _ = writeln!(s, " neighbor {} advertisement-interval 0", n.addr);
    }
    let _ = writeln!(s, " address-family ipv4 unicast");
    let _ = writeln!(s, "  maximum-paths {MAX_PATHS}");
    let over = override_asn(plan, tor).is_some();
    for n in &ns {
        let _ = writeln!(s, "  neighbor {} activate", n.addr);
        if n.node && over {
            let _ = writeln!(s, "  neighbor {} as-override", n.addr);
        }
    }
    let _ = writeln!(s, " exit-address-family");
    let _ = writeln!(s, "exit");
    let _ = writeln!(s, "!");
    s
}

/// `zebra.conf` of an FRR ToR.
pub fn frr_zebra_conf(tor: &TorPlan) -> String {
    format!("hostname {}-zebra\n", tor.name)
}

/// `ip netns exec`-ready command lines for one ToR's daemons, with their log labels, in start
/// order (FRR: zebra before bgpd). Files live in `dir`.
pub fn daemon_commands(tor: &TorPlan, dir: &Path) -> Vec<(String, Vec<String>)> {
    let f = |name: &str| dir.join(name).display().to_string();
    match tor.kind {
        TorKind::Bird => vec![(
            format!("bird-{}", tor.name),
            vec![
                "bird".into(),
                "-f".into(),
                "-c".into(),
                f("bird.conf"),
                "-s".into(),
                f("bird.ctl"),
                "-P".into(),
                f("bird.pid"),
            ],
        )],
        TorKind::Frr => {
            let vty = dir.display().to_string();
            let zserv = f("zserv.api");
            vec![
                (
                    format!("zebra-{}", tor.name),
                    // zebra insists on dropping to the frr user and its frrvty group.
                    [
                        FRR_ZEBRA,
                        "-f",
                        &f("zebra.conf"),
                        "-i",
                        &f("zebra.pid"),
                        "-z",
                        &zserv,
                        "--vty_socket",
                        &vty,
                        "-P",
                        "0",
                        "-u",
                        "frr",
                        "-g",
                        "frr",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
                (
                    format!("bgpd-{}", tor.name),
                    [
                        FRR_BGPD,
                        "-S",
                        "-f",
                        &f("bgpd.conf"),
                        "-i",
                        &f("bgpd.pid"),
                        "-z",
                        &zserv,
                        "--vty_socket",
                        &vty,
                        "-P",
                        "0",
                        "-u",
                        "root",
                        "-g",
                        "root",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
            ]
        }
    }
}

/// FRR's zebra.
pub const FRR_ZEBRA: &str = "/usr/lib/frr/zebra";
/// FRR's bgpd.
pub const FRR_BGPD: &str = "/usr/lib/frr/bgpd";

/// The control command that shows a ToR's sessions, as an operator types it.
pub fn summary_command(tor: &TorPlan, dir: &Path) -> Vec<String> {
    match tor.kind {
        TorKind::Bird => vec![
            "birdc".into(),
            "-s".into(),
            dir.join("bird.ctl").display().to_string(),
            "show protocols".into(),
        ],
        TorKind::Frr => vec![
            "vtysh".into(),
            "--vty_socket".into(),
            dir.display().to_string(),
            "-c".into(),
            "show bgp ipv4 unicast summary".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::LabOptions;
    use std::process::Command;

    fn plan(racks: usize) -> Plan {
        Plan::new(
            "lab",
            &LabOptions {
                nodes: 3,
                racks,
                ..LabOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn single_rack_bird_waits_for_every_node_and_exports_to_the_kernel() {
        let p = plan(1);
        let text = bird_conf(&p, &p.tors[0]);
        for want in [
            "router id 10.0.0.1;",
            "export where source = RTS_BGP; }; }",
            "local 10.0.0.1 as 65000;\n  passive on;",
            "protocol bgp node_1 from rack_node { neighbor 10.0.0.11 as 64512; description \"node-1\"; }",
            "protocol bgp node_3 from rack_node { neighbor 10.0.0.13 as 64512;",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("bgp_path.delete"), "{text}");
        assert!(!text.contains("tor_"), "{text}");
    }

    #[test]
    fn rack_a_bird_overrides_its_rack_as_and_dials_the_other_tor() {
        let p = plan(2);
        let text = bird_conf(&p, &p.tors[0]);
        for want in [
            "bgp_path.delete(65001);",
            "export filter to_rack_nodes;",
            "protocol bgp node_2 from rack_node { neighbor 10.0.1.12 as 65001;",
            "protocol bgp tor_b {",
            "local 10.0.254.1 as 65101;\n  neighbor 10.0.254.2 as 65102;",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("node_3"), "node-3 is in rack b:\n{text}");
    }

    #[test]
    fn rack_b_frr_overrides_as_and_peers_with_rack_a() {
        let p = plan(2);
        let text = frr_bgpd_conf(&p, &p.tors[1]);
        for want in [
            "router bgp 65102",
            " bgp router-id 10.0.2.1",
            " no bgp ebgp-requires-policy",
            " neighbor 10.0.2.13 remote-as 65002",
            " neighbor 10.0.2.13 passive",
            " neighbor 10.0.254.1 remote-as 65101",
            " neighbor 10.0.254.1 update-source 10.0.254.2",
            "  neighbor 10.0.2.13 as-override",
            "  neighbor 10.0.254.1 activate",
            "  maximum-paths 8",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("neighbor 10.0.254.1 as-override"), "{text}");
    }

    #[test]
    fn bird_accepts_the_rendered_configurations() {
        // `bird -p` parses the file and exits: it checks syntax without starting anything.
        for racks in [1, 2] {
            let p = plan(racks);
            let dir = tempfile::tempdir().unwrap();
            let conf = dir.path().join("bird.conf");
            std::fs::write(&conf, bird_conf(&p, &p.tors[0])).unwrap();
            let out = Command::new("bird")
                .arg("-p")
                .arg("-c")
                .arg(&conf)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                bird_conf(&p, &p.tors[0])
            );
        }
    }

    #[test]
    fn frr_runs_zebra_first_and_bgpd_as_root() {
        let p = plan(2);
        let cmds = daemon_commands(&p.tors[1], Path::new("/run/x/tor-b"));
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].0, "zebra-tor-b");
        assert_eq!(cmds[0].1[0], FRR_ZEBRA);
        assert!(cmds[1].1.contains(&"-S".to_string()));
        assert!(cmds[1].1.contains(&"/run/x/tor-b/zserv.api".to_string()));
        let bird = daemon_commands(&p.tors[0], Path::new("/d"));
        assert_eq!(bird[0].1[..2], ["bird".to_string(), "-f".to_string()]);
    }
}
