//! What `gingerctl` prints about the pod side of the node: pure functions from snapshots to
//! text.
//!
//! Owns: the layouts of `ipam show [--show-blocks]` (calicoctl's tablewriter table: GROUPING,
//! CIDR, IPS TOTAL, IPS IN USE, IPS FREE, with Go's `%.5g` numbers and `N (P%)` cells), `ipam
//! show --ip` (calicoctl's "in use" / "not assigned" text), `get endpoints` (calicoctl's `get`
//! columns) and `route show --fib` (`ip route` / `ip neigh` style lines). Must not: do I/O.

use super::protocol::{BlockUsage, EndpointRow, FibReport, IpLookup, IpamReport};
use super::table::{BoxTable, TabTable};
use ipnet::IpNet;

/// `gingerctl ipam show [--show-blocks]`: one `IP Pool` row per pool and, with blocks, one
/// `Block` row per block after its pool; blocks outside every pool come last (calicoctl shows
/// no pool row for them).
pub fn ipam_show(report: &IpamReport, show_blocks: bool) -> String {
    let mut table = BoxTable::new(&["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"]);
    let block_row = |table: &mut BoxTable, b: &BlockUsage| {
        table.push_row(&usage_row("Block", &b.cidr, b.in_use));
    };
    for pool in &report.pools {
        table.push_row(&usage_row("IP Pool", &pool.cidr, pool.in_use));
        if show_blocks {
            pool.blocks.iter().for_each(|b| block_row(&mut table, b));
        }
    }
    if show_blocks {
        report
            .orphan_blocks
            .iter()
            .for_each(|b| block_row(&mut table, b));
    }
    table.render()
}

/// calicoctl's `genRow`: capacity, in use and free as `%.5g`, the last two with `(%.f%%)`.
fn usage_row(kind: &str, cidr: &IpNet, in_use: u64) -> [String; 5] {
    let capacity = 2f64.powi(i32::from(cidr.max_prefix_len() - cidr.prefix_len()));
    let in_use = in_use as f64;
    let free = capacity - in_use;
    let with_percent = |n: f64| format!("{} ({}%)", go_g5(n), go_percent(100.0 * n / capacity));
    [
        kind.to_string(),
        cidr.to_string(),
        go_g5(capacity),
        with_percent(in_use),
        with_percent(free),
    ]
}

/// Go's `%.5g`: five significant digits, trailing zeros dropped, exponent form (`1.8447e+19`)
/// when the exponent is below -4 or at least 5.
pub fn go_g5(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 {
            "0".to_string()
        } else {
            x.to_string()
        };
    }
    // Rust's `{:.4e}` rounds to five significant digits: `1.3107e5`.
    let sci = format!("{:.4e}", x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    if !(-4..5).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{point}{rest}e{exp_sign}{:02}", exp.abs());
    }
    // Fixed notation: the decimal point goes after digit `exp + 1`.
    let point_at = exp + 1;
    let text = if point_at <= 0 {
        format!("0.{}{digits}", "0".repeat(point_at.unsigned_abs() as usize))
    } else {
        let point_at = point_at as usize;
        if digits.len() <= point_at {
            format!("{digits}{}", "0".repeat(point_at - digits.len()))
        } else {
            format!("{}.{}", &digits[..point_at], &digits[point_at..])
        }
    };
    format!("{sign}{text}")
}

/// Go's `%.f`: no decimals, halves to even.
pub fn go_percent(x: f64) -> String {
    let rounded = x.round_ties_even();
    // `-0` prints as `0`.
    format!("{}", if rounded == 0.0 { 0.0 } else { rounded })
}

/// `gingerctl ipam show --ip IP`: calicoctl's text (handle, then the owner attributes
/// sorted by name), or `<ip> is not assigned`.
pub fn ipam_ip(lookup: &IpLookup) -> String {
    let Some(alloc) = &lookup.allocation else {
        return format!("{} is not assigned\n", lookup.ip);
    };
    let mut out = format!("IP {} is in use\nHandle ID: {}\n", lookup.ip, alloc.handle);
    if alloc.attributes.is_empty() {
        out.push_str("No Active Owner attributes defined\n");
    } else {
        out.push_str("Active Owner Attributes:\n");
        for (k, v) in &alloc.attributes {
            out.push_str(&format!("  {k}: {v}\n"));
        }
    }
    out
}

/// `gingerctl get endpoints`: calicoctl's `get workloadendpoints` columns (all namespaces:
/// NAMESPACE first; NETWORKS as host prefixes) plus the pod's MAC, then a blank line.
pub fn endpoints(rows: &[EndpointRow]) -> String {
    let mut table = TabTable::new(&[
        "NAMESPACE",
        "WORKLOAD",
        "NODE",
        "NETWORKS",
        "INTERFACE",
        "MAC",
    ]);
    let mut sorted: Vec<&EndpointRow> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.namespace, &a.pod, &a.container_id).cmp(&(&b.namespace, &b.pod, &b.container_id))
    });
    for row in sorted {
        let mut workload = if row.pod.is_empty() {
            row.container_id.clone()
        } else {
            row.pod.clone()
        };
        if row.terminating {
            workload.push_str(" (terminating)");
        }
        let networks: Vec<String> = row
            .ips
            .iter()
            .map(|ip| IpNet::from(*ip).to_string())
            .collect();
        table.push_row(&[
            row.namespace.clone(),
            workload,
            row.node.clone(),
            networks.join(","),
            row.host_ifname.clone(),
            row.mac.clone(),
        ]);
    }
    table.render() + "\n"
}

/// `gingerctl route show --fib`: Ginger's routes (`ip route` style), its permanent neighbour
/// entries (`ip neigh` style), then what felix keeps out of the kernel and why.
pub fn fib(report: &FibReport) -> String {
    let mut out = String::new();
    if report.routes.is_empty() {
        out.push_str("No Ginger routes in the kernel.\n");
    }
    for line in &report.routes {
        out.push_str(line);
        out.push('\n');
    }
    if !report.neighbours.is_empty() {
        out.push('\n');
        for n in &report.neighbours {
            out.push_str(&format!(
                "{} dev {} lladdr {} PERMANENT\n",
                n.ip, n.ifname, n.mac
            ));
        }
    }
    if !report.rejected.is_empty() {
        out.push_str("\nNot programmed:\n");
        for r in &report.rejected {
            out.push_str(&format!("{} ({}): {}\n", r.dst, r.source, r.reason));
        }
    }
    if !report.converged {
        out.push_str("\nfelix has not converged yet: work is pending or the last attempt failed (it retries).\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ctl::protocol::{IpAllocation, NeighbourRow, PoolUsage, RejectedRow};

    #[test]
    fn go_g5_matches_fmt() {
        // Values checked against Go's fmt.Sprintf("%.5g", float64(n)).
        let cases: [(f64, &str); 12] = [
            (0.0, "0"),
            (3.0, "3"),
            (64.0, "64"),
            (100.0, "100"),
            (4096.0, "4096"),
            (65536.0, "65536"),
            (65531.0, "65531"),
            (100000.0, "1e+05"),
            (131072.0, "1.3107e+05"),
            (16777216.0, "1.6777e+07"),
            (18446744073709551616.0, "1.8447e+19"),
            (0.5, "0.5"),
        ];
        for (x, want) in cases {
            assert_eq!(go_g5(x), want, "{x}");
        }
    }

    #[test]
    fn go_percent_rounds_halves_to_even() {
        assert_eq!(go_percent(0.0), "0");
        assert_eq!(go_percent(0.0076), "0");
        assert_eq!(go_percent(99.99), "100");
        assert_eq!(go_percent(12.5), "12");
        assert_eq!(go_percent(13.5), "14");
        assert_eq!(go_percent(100.0), "100");
    }

    fn report() -> IpamReport {
        IpamReport {
            pools: vec![
                PoolUsage {
                    name: "default-ipv4-ippool".into(),
                    cidr: "192.168.0.0/16".parse().unwrap(),
                    in_use: 5,
                    blocks: vec![
                        BlockUsage {
                            cidr: "192.168.0.0/26".parse().unwrap(),
                            in_use: 4,
                            affinity: Some("node-1".into()),
                        },
                        BlockUsage {
                            cidr: "192.168.0.64/26".parse().unwrap(),
                            in_use: 1,
                            affinity: Some("node-2".into()),
                        },
                    ],
                },
                PoolUsage {
                    name: "default-ipv6-ippool".into(),
                    cidr: "fd80:24e2:f998:72d6::/64".parse().unwrap(),
                    in_use: 0,
                    blocks: vec![],
                },
            ],
            orphan_blocks: vec![BlockUsage {
                cidr: "10.9.0.0/26".parse().unwrap(),
                in_use: 64,
                affinity: None,
            }],
        }
    }

    /// calicoctl v3 `ipam show` (tablewriter v0.0.5 defaults: centred upper-case headers,
    /// numbers right-aligned, other cells left-aligned).
    #[test]
    fn ipam_show_matches_calicoctl() {
        let expected = "\
+----------+--------------------------+------------+------------+-------------------+
| GROUPING |           CIDR           | IPS TOTAL  | IPS IN USE |     IPS FREE      |
+----------+--------------------------+------------+------------+-------------------+
| IP Pool  | 192.168.0.0/16           |      65536 | 5 (0%)     | 65531 (100%)      |
| IP Pool  | fd80:24e2:f998:72d6::/64 | 1.8447e+19 | 0 (0%)     | 1.8447e+19 (100%) |
+----------+--------------------------+------------+------------+-------------------+
";
        assert_eq!(ipam_show(&report(), false), expected);
    }

    #[test]
    fn ipam_show_blocks_matches_calicoctl() {
        let expected = "\
+----------+--------------------------+------------+------------+-------------------+
| GROUPING |           CIDR           | IPS TOTAL  | IPS IN USE |     IPS FREE      |
+----------+--------------------------+------------+------------+-------------------+
| IP Pool  | 192.168.0.0/16           |      65536 | 5 (0%)     | 65531 (100%)      |
| Block    | 192.168.0.0/26           |         64 | 4 (6%)     | 60 (94%)          |
| Block    | 192.168.0.64/26          |         64 | 1 (2%)     | 63 (98%)          |
| IP Pool  | fd80:24e2:f998:72d6::/64 | 1.8447e+19 | 0 (0%)     | 1.8447e+19 (100%) |
| Block    | 10.9.0.0/26              |         64 | 64 (100%)  | 0 (0%)            |
+----------+--------------------------+------------+------------+-------------------+
";
        assert_eq!(ipam_show(&report(), true), expected);
    }

    #[test]
    fn ipam_show_without_pools_prints_the_empty_table() {
        let expected = "\
+----------+------+-----------+------------+----------+
| GROUPING | CIDR | IPS TOTAL | IPS IN USE | IPS FREE |
+----------+------+-----------+------------+----------+
+----------+------+-----------+------------+----------+
";
        assert_eq!(ipam_show(&IpamReport::default(), true), expected);
    }

    #[test]
    fn ipam_ip_in_use_and_not_assigned() {
        let lookup = IpLookup {
            ip: "10.244.0.5".parse().unwrap(),
            allocation: Some(IpAllocation {
                block: "10.244.0.0/26".parse().unwrap(),
                handle: "k8s-pod-network.0123abcd".into(),
                attributes: BTreeMap::from([
                    (
                        "timestamp".to_string(),
                        "2024-05-01 12:34:56 +0000 UTC".to_string(),
                    ),
                    ("pod".to_string(), "web-1".to_string()),
                    ("node".to_string(), "node-1".to_string()),
                    ("namespace".to_string(), "default".to_string()),
                ]),
            }),
        };
        assert_eq!(
            ipam_ip(&lookup),
            "IP 10.244.0.5 is in use\n\
             Handle ID: k8s-pod-network.0123abcd\n\
             Active Owner Attributes:\n\
             \x20 namespace: default\n\
             \x20 node: node-1\n\
             \x20 pod: web-1\n\
             \x20 timestamp: 2024-05-01 12:34:56 +0000 UTC\n"
        );
        let free = IpLookup {
            ip: "10.244.0.9".parse().unwrap(),
            allocation: None,
        };
        assert_eq!(ipam_ip(&free), "10.244.0.9 is not assigned\n");
    }

    #[test]
    fn endpoints_like_calicoctl_get() {
        let row = |ns: &str, pod: &str, ip: &str, link: &str| EndpointRow {
            namespace: ns.into(),
            pod: pod.into(),
            node: "node-1".into(),
            container_id: format!("c-{pod}"),
            ips: ip.split(',').map(|i| i.parse().unwrap()).collect(),
            host_ifname: link.into(),
            mac: "0a:58:0a:f4:00:05".into(),
            terminating: false,
        };
        let rows = [
            row("kube-system", "coredns-1", "10.244.0.2", "cali1a2b3c4d5e6"),
            row("default", "web-1", "10.244.0.5,fd00::5", "cali0123456789a"),
            row("", "", "10.244.0.7", "calic-abc"),
        ];
        let expected = "\
NAMESPACE     WORKLOAD    NODE     NETWORKS                    INTERFACE         MAC                 
              c-          node-1   10.244.0.7/32               calic-abc         0a:58:0a:f4:00:05   
default       web-1       node-1   10.244.0.5/32,fd00::5/128   cali0123456789a   0a:58:0a:f4:00:05   
kube-system   coredns-1   node-1   10.244.0.2/32               cali1a2b3c4d5e6   0a:58:0a:f4:00:05   

";
        assert_eq!(endpoints(&rows), expected);
        assert_eq!(
            endpoints(&[]),
            "NAMESPACE   WORKLOAD   NODE   NETWORKS   INTERFACE   MAC   \n\n"
        );
    }

    #[test]
    fn fib_lists_routes_neighbours_and_refusals() {
        let report = FibReport {
            routes: vec![
                "blackhole 10.244.0.0/26 proto 97".into(),
                "10.244.0.5/32 dev cali0123456789a scope link proto 97".into(),
            ],
            neighbours: vec![NeighbourRow {
                ip: "10.244.0.5".parse().unwrap(),
                mac: "0a:58:0a:f4:00:05".into(),
                ifname: "cali0123456789a".into(),
            }],
            rejected: vec![RejectedRow {
                dst: "10.244.0.9/32".parse().unwrap(),
                source: "workload cali9".into(),
                reason: "link cali9 does not exist".into(),
            }],
            converged: false,
        };
        assert_eq!(
            fib(&report),
            "blackhole 10.244.0.0/26 proto 97\n\
             10.244.0.5/32 dev cali0123456789a scope link proto 97\n\
             \n\
             10.244.0.5 dev cali0123456789a lladdr 0a:58:0a:f4:00:05 PERMANENT\n\
             \n\
             Not programmed:\n\
             10.244.0.9/32 (workload cali9): link cali9 does not exist\n\
             \n\
             felix has not converged yet: work is pending or the last attempt failed (it retries).\n"
        );
        let empty = FibReport {
            converged: true,
            ..FibReport::default()
        };
        assert_eq!(fib(&empty), "No Ginger routes in the kernel.\n");
    }
}
