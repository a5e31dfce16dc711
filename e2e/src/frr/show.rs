//! Parsers for FRR's JSON output: the prefix list of `show bgp <afi> json`, the per-prefix
//! detail of `show bgp <afi> <prefix> json`, and `show bgp neighbors <ip> json`.
//!
//! Owns: mapping FRR's JSON fields (`aspath.segments`, `metric`, `locPrf`, `community.list`,
//! `largeCommunity.list`, `originatorId`, `clusterList`, `bestpath.overall`, `nexthops`,
//! `peer.peerId`) to `Route`, and `bgpState` to a session state. Several JSON documents printed
//! back to back (one vtysh call with many `-c`) are read as a stream.
//! Must not: run vtysh.

use std::net::{IpAddr, Ipv4Addr};

use bgp::status::SessionState;
use bgp::types::{AsSegment, Community, Origin};
use ipnet::IpNet;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::router::{Route, parse_community, parse_large_community};

const TOOL: &str = "vtysh";

/// Every JSON document in `text`, in order.
pub(crate) fn json_stream(text: &str, what: &str) -> Result<Vec<Value>> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::parse(TOOL, what, format!("{e} in {}", excerpt(text))))
}

fn excerpt(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    format!("{t:?}")
}

/// The prefixes in the table output of `show bgp <afi> json`.
pub(crate) fn table_prefixes(doc: &Value) -> Result<Vec<IpNet>> {
    let Some(routes) = doc.get("routes").and_then(Value::as_object) else {
        // An address family with no configuration answers `{}`.
        return Ok(Vec::new());
    };
    routes
        .keys()
        .map(|k| {
            k.parse()
                .map_err(|e| Error::parse(TOOL, "table prefix", format!("{k:?}: {e}")))
        })
        .collect()
}

/// Every path in one `show bgp <afi> <prefix> json` document (empty if the prefix is gone).
pub(crate) fn prefix_paths(doc: &Value) -> Result<Vec<Route>> {
    let Some(prefix) = doc.get("prefix").and_then(Value::as_str) else {
        // `{}` or `{"warning": "Network not in table"}`: it went away between the two calls.
        return Ok(Vec::new());
    };
    let prefix: IpNet = prefix
        .parse()
        .map_err(|e| Error::parse(TOOL, "prefix", format!("{prefix:?}: {e}")))?;
    let paths = doc
        .get("paths")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    paths
        .iter()
        .map(|p| {
            path(prefix, p)
                .map_err(|detail| Error::parse(TOOL, format!("path of {prefix}"), detail))
        })
        .collect()
}

fn path(prefix: IpNet, p: &Value) -> std::result::Result<Route, String> {
    let mut r = Route::empty(prefix);
    if let Some(segments) = p.pointer("/aspath/segments").and_then(Value::as_array) {
        r.set_as_path(
            segments
                .iter()
                .map(segment)
                .collect::<std::result::Result<_, _>>()?,
        );
    }
    r.origin = match p.get("origin").and_then(Value::as_str) {
        Some("IGP") | None => Origin::Igp,
        Some("EGP") => Origin::Egp,
        Some("incomplete") | Some("Incomplete") | Some("?") => Origin::Incomplete,
        Some(o) => return Err(format!("origin {o:?}")),
    };
    r.med = opt_u32(p, "metric")?;
    r.local_pref = opt_u32(p, "locPrf")?;
    for c in string_list(p, "community") {
        r.communities
            .push(community(&c).ok_or_else(|| format!("community {c:?}"))?);
    }
    for c in string_list(p, "largeCommunity") {
        r.large_communities
            .push(parse_large_community(&c).ok_or_else(|| format!("large community {c:?}"))?);
    }
    if let Some(o) = p.get("originatorId").and_then(Value::as_str) {
        r.originator_id = Some(o.parse().map_err(|e| format!("originatorId {o:?}: {e}"))?);
    }
    for c in string_list(p, "clusterList") {
        r.cluster_list.push(
            c.parse::<Ipv4Addr>()
                .map_err(|e| format!("cluster id {c:?}: {e}"))?,
        );
    }
    r.best = p
        .pointer("/bestpath/overall")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    r.next_hop = next_hop(p)?;
    let local = p.get("local").and_then(Value::as_bool).unwrap_or(false)
        || p.get("sourced").and_then(Value::as_bool).unwrap_or(false);
    r.from = match p.pointer("/peer/peerId").and_then(Value::as_str) {
        _ if local => None,
        Some(id) => id.parse::<IpAddr>().ok().filter(|a| !a.is_unspecified()),
        None => None,
    };
    if local {
        r.next_hop = None;
    }
    Ok(r)
}

fn segment(s: &Value) -> std::result::Result<AsSegment, String> {
    let asns = s
        .get("list")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("segment without list: {s}"))?
        .iter()
        .map(|a| {
            a.as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| format!("AS number {a}"))
        })
        .collect::<std::result::Result<Vec<u32>, _>>()?;
    Ok(match s.get("type").and_then(Value::as_str) {
        Some("as-sequence") => AsSegment::Sequence(asns),
        Some("as-set") => AsSegment::Set(asns),
        Some("as-confed-sequence") => AsSegment::ConfedSequence(asns),
        Some("as-confed-set") => AsSegment::ConfedSet(asns),
        other => return Err(format!("segment type {other:?}")),
    })
}

fn opt_u32(p: &Value, key: &str) -> std::result::Result<Option<u32>, String> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| format!("{key} {v}")),
    }
}

/// `{"list": [...]}`, a bare array, or `{"string": "a b"}`.
fn string_list(p: &Value, key: &str) -> Vec<String> {
    let Some(v) = p.get(key) else {
        return Vec::new();
    };
    let list = v.get("list").unwrap_or(v);
    if let Some(items) = list.as_array() {
        return items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect();
    }
    v.get("string")
        .and_then(Value::as_str)
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// A community as FRR prints it: `65001:100` or a well-known name.
fn community(text: &str) -> Option<Community> {
    Some(match text {
        "internet" => 0,
        "graceful-shutdown" => 0xFFFF_0000,
        "accept-own" => 0xFFFF_0001,
        "llgr-stale" => 0xFFFF_0006,
        "no-llgr" => 0xFFFF_0007,
        "blackhole" => 0xFFFF_029A,
        "no-export" => bgp::types::NO_EXPORT,
        "no-advertise" => bgp::types::NO_ADVERTISE,
        "local-AS" => bgp::types::NO_EXPORT_SUBCONFED,
        "no-peer" => 0xFFFF_FF04,
        other => return parse_community(other),
    })
}

/// The global next hop (FRR lists the link-local one too for IPv6); unspecified is none.
fn next_hop(p: &Value) -> std::result::Result<Option<IpAddr>, String> {
    let Some(hops) = p.get("nexthops").and_then(Value::as_array) else {
        return Ok(None);
    };
    let global = hops
        .iter()
        .find(|h| h.get("scope").and_then(Value::as_str) != Some("link-local"))
        .or(hops.first());
    let Some(ip) = global.and_then(|h| h.get("ip")).and_then(Value::as_str) else {
        return Ok(None);
    };
    let ip: IpAddr = ip.parse().map_err(|e| format!("next hop {ip:?}: {e}"))?;
    Ok((!ip.is_unspecified()).then_some(ip))
}

/// The state in `show bgp neighbors <ip> json`; `None` when FRR has no such neighbour.
pub(crate) fn neighbor_state(doc: &Value, peer: IpAddr) -> Result<Option<SessionState>> {
    if doc.get("bgpNoSuchNeighbor").is_some() {
        return Ok(None);
    }
    let state = doc
        .get(peer.to_string())
        .and_then(|n| n.get("bgpState"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::parse(
                TOOL,
                "bgpState",
                format!("not in {}", excerpt(&doc.to_string())),
            )
        })?;
    Ok(Some(match state {
        "Established" => SessionState::Established,
        "OpenConfirm" => SessionState::OpenConfirm,
        "OpenSent" => SessionState::OpenSent,
        "Active" => SessionState::Active,
        "Connect" => SessionState::Connect,
        "Idle" | "Clearing" | "Deleted" => SessionState::Idle,
        other => {
            return Err(Error::parse(
                TOOL,
                "bgpState",
                format!("unknown state {other:?}"),
            ));
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIXES: &str = include_str!("../../testdata/frr_show_bgp_prefixes.json");
    const TABLE: &str = include_str!("../../testdata/frr_show_bgp_table.json");

    #[test]
    fn captured_table_lists_prefixes() {
        let docs = json_stream(TABLE, "table").unwrap();
        let mut p = table_prefixes(&docs[0]).unwrap();
        p.sort();
        assert_eq!(p.len(), 4);
        assert!(p.contains(&"203.0.113.0/24".parse().unwrap()));
        assert!(table_prefixes(&serde_json::json!({})).unwrap().is_empty());
    }

    #[test]
    fn captured_prefix_details_parse() {
        let docs = json_stream(PREFIXES, "prefixes").unwrap();
        assert_eq!(docs.len(), 2);
        let learned = prefix_paths(&docs[0]).unwrap();
        assert_eq!(learned.len(), 1);
        let r = &learned[0];
        assert_eq!(r.prefix.to_string(), "192.0.2.0/24");
        assert_eq!(r.as_path, vec![65001]);
        assert_eq!(
            r.communities,
            vec![(65001 << 16) | 100, (65001 << 16) | 200]
        );
        assert_eq!(r.large_communities[0].to_string(), "65001:1:2");
        assert_eq!(r.next_hop, Some("10.0.12.1".parse().unwrap()));
        assert_eq!(r.from, Some("10.0.12.1".parse().unwrap()));
        assert!(r.best);
        let local = &prefix_paths(&docs[1]).unwrap()[0];
        assert_eq!(local.from, None);
        assert_eq!(local.next_hop, None);
        assert_eq!(local.med, Some(77));
        assert!(local.as_path.is_empty());
    }

    #[test]
    fn captured_reflected_paths() {
        let text = include_str!("../../testdata/frr_show_bgp_prefixes_rr.json");
        let docs = json_stream(text, "rr").unwrap();
        assert_eq!(docs.len(), 2);
        let r = &prefix_paths(&docs[0]).unwrap()[0];
        assert_eq!(r.prefix.to_string(), "10.20.4.0/24");
        assert_eq!(r.originator_id, Some("10.0.7.4".parse().unwrap()));
        assert_eq!(
            r.cluster_list,
            vec!["10.255.0.1".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(r.local_pref, Some(120));
        assert_eq!(r.next_hop, Some("10.0.7.4".parse().unwrap()));
        assert_eq!(r.from, Some("10.0.7.1".parse().unwrap()));
        assert!(r.as_path_segments.is_empty());
    }

    #[test]
    fn reflected_ipv6_path_with_every_attribute() {
        let doc = serde_json::json!({
            "prefix": "2001:db8:1::/48",
            "paths": [{
                "aspath": {"segments": [
                    {"type": "as-sequence", "list": [65001]},
                    {"type": "as-set", "list": [65003, 65004]}
                ]},
                "origin": "incomplete", "metric": 5, "locPrf": 250,
                "community": {"list": ["no-export", "65001:7"]},
                "originatorId": "10.0.0.1",
                "clusterList": {"list": ["10.255.0.1"]},
                "bestpath": {"overall": true},
                "nexthops": [
                    {"ip": "fe80::1", "scope": "link-local"},
                    {"ip": "fd00:12::1", "scope": "global"}
                ],
                "peer": {"peerId": "fd00:12::9"}
            }, {
                "aspath": {"segments": []}, "origin": "IGP",
                "nexthops": [{"ip": "fd00:12::2"}], "peer": {"peerId": "fd00:12::2"}
            }]
        });
        let paths = prefix_paths(&doc).unwrap();
        let r = &paths[0];
        assert_eq!(r.as_path, vec![65001, 65003, 65004]);
        assert_eq!(r.origin, Origin::Incomplete);
        assert_eq!((r.med, r.local_pref), (Some(5), Some(250)));
        assert_eq!(
            r.communities,
            vec![bgp::types::NO_EXPORT, (65001 << 16) | 7]
        );
        assert_eq!(r.originator_id, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(
            r.cluster_list,
            vec!["10.255.0.1".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(r.next_hop, Some("fd00:12::1".parse().unwrap()));
        assert_eq!(r.from, Some("fd00:12::9".parse().unwrap()));
        assert!(!paths[1].best);
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            serde_json::json!({"prefix": "10.0.0.0/33", "paths": []}),
            serde_json::json!({"prefix": "10.0.0.0/8", "paths": [{"metric": -1}]}),
            serde_json::json!({"prefix": "10.0.0.0/8", "paths": [{"community": {"list": ["x:y"]}}]}),
            serde_json::json!({"prefix": "10.0.0.0/8", "paths": [{"aspath": {"segments": [{"type": "as-odd", "list": [1]}]}}]}),
            serde_json::json!({"prefix": "10.0.0.0/8", "paths": [{"origin": "BGP"}]}),
        ] {
            assert!(prefix_paths(&bad).is_err(), "accepted {bad}");
        }
        assert!(
            prefix_paths(&serde_json::json!({"warning": "Network not in table"}))
                .unwrap()
                .is_empty()
        );
        assert!(json_stream("{\"a\": 1} {", "x").is_err());
    }

    #[test]
    fn neighbor_states() {
        let ip: IpAddr = "10.0.12.1".parse().unwrap();
        let doc = serde_json::json!({"10.0.12.1": {"bgpState": "Established"}});
        assert_eq!(
            neighbor_state(&doc, ip).unwrap(),
            Some(SessionState::Established)
        );
        let none = serde_json::json!({"bgpNoSuchNeighbor": true});
        assert_eq!(neighbor_state(&none, ip).unwrap(), None);
        let odd = serde_json::json!({"10.0.12.1": {"bgpState": "Sleeping"}});
        assert!(neighbor_state(&odd, ip).is_err());
    }
}
