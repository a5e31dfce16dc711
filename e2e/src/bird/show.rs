//! Parsers for BIRD 2's text output: `show route all` and `show protocols all NAME`.
//!
//! Owns: turning birdc's text into `ShownRoute`s (a `Route` plus the protocol it came from) and a
//! session state. BIRD has no structured output, so this follows the format BIRD 2.0 prints
//! (tested on captured output): a route line starts at column 0 with the prefix, further paths
//! to the same prefix start with spaces, attribute lines start with a tab.
//! Must not: run birdc or know the harness's protocol naming (the launcher maps names).

use std::net::{IpAddr, Ipv4Addr};

use bgp::status::SessionState;
use bgp::types::{AsSegment, Origin};
use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::router::Route;

const TOOL: &str = "birdc";

/// One path from `show route all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShownRoute {
    /// The protocol that imported it (`static4`, `peer_10_0_12_2`, `direct1`).
    pub proto: String,
    /// `from` address BIRD printed in the brackets, if any.
    pub from: Option<IpAddr>,
    /// The route (its `from` is left for the launcher to fill).
    pub route: Route,
    /// The gateway from a `via` line (used when there is no BGP.next_hop).
    pub gateway: Option<IpAddr>,
}

/// Parse the whole output of `show route all` (any number of tables).
pub(crate) fn parse_show_route_all(text: &str) -> Result<Vec<ShownRoute>> {
    let mut out: Vec<ShownRoute> = Vec::new();
    let mut prefix: Option<IpNet> = None;
    for (n, line) in text.lines().enumerate() {
        let err =
            |detail: String| Error::parse(TOOL, format!("show route all, line {}", n + 1), detail);
        if line.trim().is_empty() || line.starts_with("Table ") || is_banner(line) {
            continue;
        }
        if let Some(attr) = line.strip_prefix('\t') {
            let cur = out
                .last_mut()
                .ok_or_else(|| err(format!("attribute before any route: {line:?}")))?;
            parse_attr(cur, attr.trim()).map_err(err)?;
        } else if line.starts_with(' ') {
            let p = prefix.ok_or_else(|| err(format!("path before any prefix: {line:?}")))?;
            out.push(parse_head(p, line.trim()).map_err(err)?);
        } else {
            let (first, rest) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| err(format!("route line without a path: {line:?}")))?;
            let p: IpNet = first
                .parse()
                .map_err(|e| err(format!("prefix {first:?}: {e}")))?;
            prefix = Some(p);
            out.push(parse_head(p, rest.trim()).map_err(err)?);
        }
    }
    for r in &mut out {
        if r.route.next_hop.is_none() {
            r.route.next_hop = r.gateway;
        }
    }
    Ok(out)
}

fn is_banner(line: &str) -> bool {
    line.starts_with("BIRD ") && line.trim_end().ends_with("ready.")
}

/// `unicast [peer_10_0_12_2 19:32:02.833 from 10.0.0.1] * (100) [AS65003e]`
fn parse_head(prefix: IpNet, head: &str) -> Result<ShownRoute, String> {
    let open = head
        .find('[')
        .ok_or_else(|| format!("no [protocol …] in {head:?}"))?;
    let close = head[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(|| format!("unclosed [ in {head:?}"))?;
    let inside: Vec<&str> = head[open + 1..close].split_whitespace().collect();
    let proto = inside
        .first()
        .ok_or_else(|| format!("empty [] in {head:?}"))?
        .to_string();
    let from = match inside.iter().position(|t| *t == "from") {
        Some(i) => {
            let a = inside
                .get(i + 1)
                .ok_or_else(|| format!("`from` without address in {head:?}"))?;
            Some(a.parse().map_err(|e| format!("from address {a:?}: {e}"))?)
        }
        None => None,
    };
    let mut route = Route::empty(prefix);
    route.best = head[close + 1..].trim_start().starts_with('*');
    Ok(ShownRoute {
        proto,
        from,
        route,
        gateway: None,
    })
}

fn parse_attr(cur: &mut ShownRoute, attr: &str) -> Result<(), String> {
    let r = &mut cur.route;
    if let Some(rest) = attr.strip_prefix("via ") {
        if cur.gateway.is_none() {
            let a = rest.split_whitespace().next().unwrap_or_default();
            cur.gateway = Some(a.parse().map_err(|e| format!("via {a:?}: {e}"))?);
        }
        return Ok(());
    }
    let Some((key, value)) = attr.split_once(':') else {
        return Ok(());
    };
    let value = value.trim();
    match key {
        "BGP.origin" => {
            r.origin = match value {
                "IGP" => Origin::Igp,
                "EGP" => Origin::Egp,
                "Incomplete" | "incomplete" => Origin::Incomplete,
                other => return Err(format!("origin {other:?}")),
            }
        }
        "BGP.as_path" => r.set_as_path(parse_as_path(value)?),
        "BGP.next_hop" => {
            // IPv6 routes may carry "global link-local"; the global one comes first.
            let a = value.split_whitespace().next().unwrap_or_default();
            r.next_hop = Some(a.parse().map_err(|e| format!("next hop {a:?}: {e}"))?);
        }
        "BGP.med" => r.med = Some(number(value, "med")?),
        "BGP.local_pref" => r.local_pref = Some(number(value, "local_pref")?),
        "BGP.community" => {
            for group in paren_groups(value)? {
                let parts = numbers(&group)?;
                match parts.as_slice() {
                    [h, l] if *h <= 0xFFFF && *l <= 0xFFFF => r.communities.push((h << 16) | l),
                    _ => return Err(format!("community ({group})")),
                }
            }
        }
        "BGP.large_community" => {
            for group in paren_groups(value)? {
                match numbers(&group)?.as_slice() {
                    [g, l1, l2] => r.large_communities.push(bgp::types::LargeCommunity {
                        global: *g,
                        local1: *l1,
                        local2: *l2,
                    }),
                    _ => return Err(format!("large community ({group})")),
                }
            }
        }
        "BGP.originator_id" => {
            r.originator_id = Some(
                value
                    .parse()
                    .map_err(|e| format!("originator {value:?}: {e}"))?,
            )
        }
        "BGP.cluster_list" => {
            r.cluster_list = value
                .split_whitespace()
                .map(|a| {
                    a.parse::<Ipv4Addr>()
                        .map_err(|e| format!("cluster id {a:?}: {e}"))
                })
                .collect::<Result<_, _>>()?
        }
        _ => {}
    }
    Ok(())
}

fn number(v: &str, what: &str) -> Result<u32, String> {
    v.parse().map_err(|e| format!("{what} {v:?}: {e}"))
}

fn numbers(group: &str) -> Result<Vec<u32>, String> {
    group
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .map_err(|e| format!("({group}): {e}"))
        })
        .collect()
}

/// The contents of each `( … )` group.
fn paren_groups(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(open) = rest.find('(') {
        let close = rest[open..]
            .find(')')
            .map(|i| open + i)
            .ok_or_else(|| format!("unclosed ( in {v:?}"))?;
        out.push(rest[open + 1..close].to_string());
        rest = &rest[close + 1..];
    }
    Ok(out)
}

/// BIRD's AS path text: `65002 {65003 65004} (65010 65011) [65012]` (set in braces,
/// confederation sequence in parentheses, confederation set in brackets).
pub(crate) fn parse_as_path(v: &str) -> Result<Vec<AsSegment>, String> {
    let spaced = v
        .replace('{', " { ")
        .replace('}', " } ")
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace('[', " [ ")
        .replace(']', " ] ");
    let mut segments = Vec::new();
    let mut seq: Vec<u32> = Vec::new();
    let mut group: Option<(char, Vec<u32>)> = None;
    for tok in spaced.split_whitespace() {
        match tok {
            "{" | "(" | "[" => {
                if group.is_some() {
                    return Err(format!("nested segment in AS path {v:?}"));
                }
                if !seq.is_empty() {
                    segments.push(AsSegment::Sequence(std::mem::take(&mut seq)));
                }
                group = Some((tok.chars().next().unwrap_or('{'), Vec::new()));
            }
            "}" | ")" | "]" => {
                let (kind, asns) = group
                    .take()
                    .ok_or_else(|| format!("unbalanced {tok} in AS path {v:?}"))?;
                segments.push(match (kind, tok) {
                    ('{', "}") => AsSegment::Set(asns),
                    ('(', ")") => AsSegment::ConfedSequence(asns),
                    ('[', "]") => AsSegment::ConfedSet(asns),
                    _ => return Err(format!("mismatched {kind}…{tok} in AS path {v:?}")),
                });
            }
            n => {
                let asn: u32 = n.parse().map_err(|e| format!("AS {n:?} in {v:?}: {e}"))?;
                match &mut group {
                    Some((_, asns)) => asns.push(asn),
                    None => seq.push(asn),
                }
            }
        }
    }
    if group.is_some() {
        return Err(format!("unclosed segment in AS path {v:?}"));
    }
    if !seq.is_empty() {
        segments.push(AsSegment::Sequence(seq));
    }
    Ok(segments)
}

/// The session state from `show protocols all NAME` (its `BGP state:` line).
pub(crate) fn parse_bgp_state(text: &str) -> Result<SessionState> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("BGP state:"))
        .ok_or_else(|| {
            Error::parse(
                TOOL,
                "show protocols all",
                format!("no `BGP state:` line in {text:?}"),
            )
        })?;
    let word = line.split_whitespace().next().unwrap_or_default();
    Ok(match word {
        "Established" => SessionState::Established,
        "OpenConfirm" => SessionState::OpenConfirm,
        "OpenSent" => SessionState::OpenSent,
        // BIRD shows a passive session waiting for its peer as "Passive".
        "Active" | "Passive" => SessionState::Active,
        "Connect" => SessionState::Connect,
        // "Down", "Idle", "Close" (shutting down) are all not trying right now.
        "Idle" | "Down" | "Close" => SessionState::Idle,
        other => {
            return Err(Error::parse(
                TOOL,
                "BGP state",
                format!("unknown state {other:?}"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str = include_str!("../../testdata/bird_show_route_all.txt");

    fn find<'a>(routes: &'a [ShownRoute], p: &str) -> &'a ShownRoute {
        let p: IpNet = p.parse().unwrap();
        routes.iter().find(|r| r.route.prefix == p).unwrap()
    }

    #[test]
    fn captured_output_parses_every_route() {
        let routes = parse_show_route_all(CAPTURED).unwrap();
        assert_eq!(routes.len(), 5, "{routes:#?}");
        let s = find(&routes, "198.51.100.0/24");
        assert_eq!(s.proto, "static4");
        assert!(s.route.best);
        assert_eq!(s.route.next_hop, None);
        let b = find(&routes, "203.0.113.0/24");
        assert_eq!(b.proto, "peer_10_0_12_2");
        assert_eq!(b.route.as_path, vec![65002]);
        assert_eq!(b.route.med, Some(77));
        assert_eq!(b.route.local_pref, Some(100));
        assert_eq!(b.route.next_hop, Some("10.0.12.2".parse().unwrap()));
        assert_eq!(
            b.route.communities,
            vec![(65002 << 16) | 1, (65002 << 16) | 2]
        );
        assert_eq!(b.route.large_communities.len(), 1);
        assert_eq!(b.route.large_communities[0].local2, 4);
        let e = find(&routes, "100.64.0.0/24");
        assert_eq!(e.route.origin, Origin::Egp);
        assert_eq!(e.route.as_path, vec![65002, 65003]);
        assert_eq!(find(&routes, "2001:db8:1::/48").proto, "static6");
    }

    #[test]
    fn captured_reflected_routes_carry_originator_and_cluster_list() {
        let text = include_str!("../../testdata/bird_show_route_all_rr.txt");
        let routes = parse_show_route_all(text).unwrap();
        let r = &find(&routes, "10.20.3.0/24").route;
        assert_eq!(
            find(&routes, "10.20.3.0/24").from,
            Some("10.0.7.1".parse().unwrap())
        );
        assert_eq!(r.originator_id, Some("10.0.7.3".parse().unwrap()));
        assert_eq!(
            r.cluster_list,
            vec!["10.255.0.1".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!((r.med, r.local_pref), (Some(0), Some(120)));
        assert!(r.as_path.is_empty());
        assert_eq!(r.next_hop, Some("10.0.7.3".parse().unwrap()));
        assert_eq!(find(&routes, "10.0.7.0/24").proto, "direct1");
    }

    #[test]
    fn captured_ipv6_ibgp_route() {
        let text = include_str!("../../testdata/bird_show_route_all_ibgp_v6.txt");
        let routes = parse_show_route_all(text).unwrap();
        assert_eq!(routes.len(), 4);
        let r = find(&routes, "2001:db8:10::/48");
        assert_eq!(r.proto, "peer_fd00_10__1");
        assert_eq!(r.route.next_hop, Some("fd00:10::1".parse().unwrap()));
        assert_eq!(r.route.local_pref, Some(250));
        assert_eq!(find(&routes, "fd00:10::/64").route.next_hop, None);
    }

    #[test]
    fn second_paths_and_rr_attributes() {
        let text = "BIRD 2.0.12 ready.\nTable master4:\n\
            10.9.0.0/16          unicast [peer_a 10:00:00.000 from 10.0.0.9] * (100/?) [i]\n\
            \tvia 10.0.0.1 on eth0\n\
            \tType: BGP univ\n\
            \tBGP.origin: IGP\n\
            \tBGP.as_path: \n\
            \tBGP.next_hop: 10.0.0.1\n\
            \tBGP.local_pref: 250\n\
            \tBGP.originator_id: 10.0.0.1\n\
            \tBGP.cluster_list: 10.255.0.1 10.255.0.2\n\
            \x20                    unicast [peer_b 10:00:01.000] (100) [AS65001i]\n\
            \tvia 10.0.0.2 on eth0\n\
            \tBGP.origin: Incomplete\n\
            \tBGP.as_path: 65001 {65002 65003}\n";
        let routes = parse_show_route_all(text).unwrap();
        assert_eq!(routes.len(), 2);
        let a = &routes[0].route;
        assert!(a.best);
        assert_eq!(routes[0].from, Some("10.0.0.9".parse().unwrap()));
        assert!(a.as_path.is_empty());
        assert_eq!(a.local_pref, Some(250));
        assert_eq!(a.originator_id, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(a.cluster_list.len(), 2);
        let b = &routes[1];
        assert_eq!(b.proto, "peer_b");
        assert!(!b.route.best);
        assert_eq!(b.route.prefix, a.prefix);
        // No BGP.next_hop line: the gateway stands in.
        assert_eq!(b.route.next_hop, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(b.route.origin, Origin::Incomplete);
        assert_eq!(b.route.as_path, vec![65001, 65002, 65003]);
        assert_eq!(
            b.route.as_path_segments,
            vec![
                AsSegment::Sequence(vec![65001]),
                AsSegment::Set(vec![65002, 65003])
            ]
        );
    }

    #[test]
    fn as_path_segments_of_every_kind() {
        assert_eq!(
            parse_as_path("(65010 65011) [65012] 65001 {1 2}").unwrap(),
            vec![
                AsSegment::ConfedSequence(vec![65010, 65011]),
                AsSegment::ConfedSet(vec![65012]),
                AsSegment::Sequence(vec![65001]),
                AsSegment::Set(vec![1, 2]),
            ]
        );
        assert!(parse_as_path("").unwrap().is_empty());
        assert!(parse_as_path("{1 2").is_err());
        assert!(parse_as_path("1 }").is_err());
        assert!(parse_as_path("{1 (2)}").is_err());
        assert!(parse_as_path("65001 x").is_err());
    }

    #[test]
    fn malformed_output_is_an_error_not_a_panic() {
        for bad in [
            "\tBGP.med: 5\n",
            "   unicast [p 1] *\n",
            "10.0.0.0/8 unicast no brackets\n",
            "10.0.0.0/33 unicast [p 1]\n",
            "10.0.0.0/8 unicast [p 1]\n\tBGP.med: many\n",
            "10.0.0.0/8 unicast [p 1]\n\tBGP.community: (1,2\n",
            "10.0.0.0/8 unicast [p 1]\n\tBGP.community: (1,2,3)\n",
            "10.0.0.0/8 unicast [p 1 from]\n",
            "10.0.0.0/8\n",
        ] {
            assert!(parse_show_route_all(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn protocol_states() {
        let captured = include_str!("../../testdata/bird_show_protocols_all.txt");
        assert_eq!(
            parse_bgp_state(captured).unwrap(),
            SessionState::Established
        );
        let active = "peer_x BGP --- start 10:00 Active Socket: Connection refused\n  BGP state:          Active\n";
        assert_eq!(parse_bgp_state(active).unwrap(), SessionState::Active);
        assert_eq!(
            parse_bgp_state("  BGP state: Down\n").unwrap(),
            SessionState::Idle
        );
        assert_eq!(
            parse_bgp_state("  BGP state: Passive\n").unwrap(),
            SessionState::Active
        );
        assert!(parse_bgp_state("syntax error").is_err());
        assert!(parse_bgp_state("  BGP state: Dancing\n").is_err());
    }
}
