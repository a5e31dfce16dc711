//! Parsers for the GoBGP CLI's JSON: `gobgp -j global rib -a <family>` and
//! `gobgp -j neighbor <ip>`.
//!
//! Owns: mapping GoBGP's path attributes (a list of `{"type": code, …}` objects, one shape per
//! attribute type) to `Route`, and `session_state` (a number, or a name in other versions) to a
//! session state. Must not: run the CLI.

use std::net::{IpAddr, Ipv4Addr};

use bgp::status::SessionState;
use bgp::types::{AsSegment, LargeCommunity, Origin};
use ipnet::IpNet;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::router::Route;

const TOOL: &str = "gobgp";

/// Every path in `gobgp -j global rib` output (`{prefix: [path, …]}`; empty output is no route).
pub(crate) fn parse_rib(text: &str) -> Result<Vec<Route>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: Value =
        serde_json::from_str(text).map_err(|e| Error::parse(TOOL, "global rib", format!("{e}")))?;
    let table = doc
        .as_object()
        .ok_or_else(|| Error::parse(TOOL, "global rib", "not a JSON object".to_string()))?;
    let mut out = Vec::new();
    for (prefix, paths) in table {
        let p: IpNet = prefix
            .parse()
            .map_err(|e| Error::parse(TOOL, "rib prefix", format!("{prefix:?}: {e}")))?;
        for path in paths.as_array().into_iter().flatten() {
            out.push(
                parse_path(p, path).map_err(|d| Error::parse(TOOL, format!("path of {p}"), d))?,
            );
        }
    }
    Ok(out)
}

fn parse_path(prefix: IpNet, p: &Value) -> std::result::Result<Route, String> {
    let mut r = Route::empty(prefix);
    r.best = p.get("best").and_then(Value::as_bool).unwrap_or(false);
    r.from = match p.get("neighbor-ip").and_then(Value::as_str) {
        Some(ip) => Some(ip.parse().map_err(|e| format!("neighbor-ip {ip:?}: {e}"))?),
        None => None,
    };
    for attr in p
        .get("attrs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let code = attr
            .get("type")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("attribute without type: {attr}"))?;
        match code {
            1 => {
                r.origin = match attr.get("value").and_then(Value::as_u64) {
                    Some(0) => Origin::Igp,
                    Some(1) => Origin::Egp,
                    Some(2) => Origin::Incomplete,
                    _ => return Err(format!("origin {attr}")),
                }
            }
            2 => {
                let mut segments = Vec::new();
                for seg in attr
                    .get("as_paths")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    segments.push(segment(seg)?);
                }
                r.set_as_path(segments);
            }
            3 | 14 => {
                if let Some(nh) = attr.get("nexthop").and_then(Value::as_str) {
                    let ip: IpAddr = nh.parse().map_err(|e| format!("nexthop {nh:?}: {e}"))?;
                    r.next_hop = (!ip.is_unspecified()).then_some(ip);
                }
            }
            4 => r.med = Some(u32_field(attr, "metric")?),
            5 => r.local_pref = Some(u32_field(attr, "value")?),
            8 => {
                for c in attr
                    .get("communities")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    r.communities.push(
                        c.as_u64()
                            .and_then(|v| u32::try_from(v).ok())
                            .ok_or_else(|| format!("community {c}"))?,
                    );
                }
            }
            9 => {
                let v = attr
                    .get("value")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("originator {attr}"))?;
                r.originator_id = Some(v.parse().map_err(|e| format!("originator {v:?}: {e}"))?);
            }
            10 => {
                for c in attr
                    .get("value")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let s = c.as_str().ok_or_else(|| format!("cluster id {c}"))?;
                    r.cluster_list.push(
                        s.parse::<Ipv4Addr>()
                            .map_err(|e| format!("cluster id {s:?}: {e}"))?,
                    );
                }
            }
            32 => {
                for l in attr
                    .get("value")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    r.large_communities.push(LargeCommunity {
                        global: u32_field(l, "ASN")?,
                        local1: u32_field(l, "LocalData1")?,
                        local2: u32_field(l, "LocalData2")?,
                    });
                }
            }
            _ => {}
        }
    }
    if r.from.is_none() {
        r.next_hop = None;
    }
    Ok(r)
}

fn segment(seg: &Value) -> std::result::Result<AsSegment, String> {
    let asns = seg
        .get("asns")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| format!("AS {v}"))
                })
                .collect::<std::result::Result<Vec<u32>, String>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(match seg.get("segment_type").and_then(Value::as_u64) {
        Some(1) => AsSegment::Set(asns),
        Some(2) => AsSegment::Sequence(asns),
        Some(3) => AsSegment::ConfedSequence(asns),
        Some(4) => AsSegment::ConfedSet(asns),
        other => return Err(format!("segment type {other:?}")),
    })
}

fn u32_field(v: &Value, key: &str) -> std::result::Result<u32, String> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("{key} in {v}"))
}

/// The session state in `gobgp -j neighbor <ip>` output.
pub(crate) fn neighbor_state(text: &str) -> Result<SessionState> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| Error::parse(TOOL, "neighbor", format!("{e} in {text:?}")))?;
    let state = doc.pointer("/state/session_state");
    Ok(match state {
        // Protobuf JSON leaves out zero values: UNKNOWN, i.e. not started.
        None => SessionState::Idle,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0 | 1) => SessionState::Idle,
            Some(2) => SessionState::Connect,
            Some(3) => SessionState::Active,
            Some(4) => SessionState::OpenSent,
            Some(5) => SessionState::OpenConfirm,
            Some(6) => SessionState::Established,
            _ => return Err(Error::parse(TOOL, "session_state", format!("{n}"))),
        },
        Some(Value::String(s)) => {
            match s.to_ascii_uppercase().trim_start_matches("SESSION_STATE_") {
                "UNKNOWN" | "IDLE" => SessionState::Idle,
                "CONNECT" => SessionState::Connect,
                "ACTIVE" => SessionState::Active,
                "OPENSENT" => SessionState::OpenSent,
                "OPENCONFIRM" => SessionState::OpenConfirm,
                "ESTABLISHED" => SessionState::Established,
                other => return Err(Error::parse(TOOL, "session_state", other.to_string())),
            }
        }
        Some(other) => return Err(Error::parse(TOOL, "session_state", other.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RIB: &str = include_str!("../../testdata/gobgp_global_rib.json");
    const NEIGHBOR: &str = include_str!("../../testdata/gobgp_neighbor.json");

    #[test]
    fn captured_rib_parses() {
        let routes = parse_rib(RIB).unwrap();
        assert_eq!(routes.len(), 4);
        let get = |p: &str| routes.iter().find(|r| r.prefix.to_string() == p).unwrap();
        let bird = get("192.0.2.0/24");
        assert_eq!(bird.as_path, vec![65002, 65001]);
        assert_eq!(bird.next_hop, Some("10.0.23.2".parse().unwrap()));
        assert_eq!(bird.from, Some("10.0.23.2".parse().unwrap()));
        assert_eq!(
            bird.communities,
            vec![(65001 << 16) | 100, (65001 << 16) | 200]
        );
        assert_eq!(bird.large_communities[0].to_string(), "65001:1:2");
        let local = get("100.64.0.0/24");
        assert_eq!(local.from, None);
        assert_eq!(local.next_hop, None);
        assert_eq!(local.origin, Origin::Egp);
        assert_eq!((local.med, local.local_pref), (Some(9), Some(300)));
        assert!(local.best);
        assert_eq!(get("203.0.113.0/24").med, Some(77));
    }

    #[test]
    fn captured_reflected_paths() {
        let text = include_str!("../../testdata/gobgp_global_rib_rr.json");
        let routes = parse_rib(text).unwrap();
        assert_eq!(routes.len(), 3);
        let r = routes
            .iter()
            .find(|r| r.prefix.to_string() == "10.20.3.0/24")
            .unwrap();
        assert_eq!(r.originator_id, Some("10.0.7.3".parse().unwrap()));
        assert_eq!(
            r.cluster_list,
            vec!["10.255.0.1".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!((r.med, r.local_pref), (Some(0), Some(120)));
        assert_eq!(r.next_hop, Some("10.0.7.3".parse().unwrap()));
        let own = routes
            .iter()
            .find(|r| r.prefix.to_string() == "10.20.4.0/24")
            .unwrap();
        assert_eq!((own.from, own.next_hop), (None, None));
    }

    #[test]
    fn reflected_ipv6_path() {
        let text = r#"{"2001:db8::/48":[{"nlri":{"prefix":"2001:db8::/48"},"best":false,
            "attrs":[{"type":1,"value":2},
                     {"type":2,"as_paths":[{"segment_type":1,"num":2,"asns":[1,2]}]},
                     {"type":9,"value":"10.0.0.1"},{"type":10,"value":["10.255.0.1","10.255.0.2"]},
                     {"type":14,"nexthop":"fd00::1","afi":2,"safi":1,"value":[{"prefix":"2001:db8::/48"}]}],
            "neighbor-ip":"fd00::9"}]}"#;
        let r = &parse_rib(text).unwrap()[0];
        assert_eq!(r.origin, Origin::Incomplete);
        assert_eq!(r.as_path_segments, vec![AsSegment::Set(vec![1, 2])]);
        assert_eq!(r.originator_id, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r.cluster_list.len(), 2);
        assert_eq!(r.next_hop, Some("fd00::1".parse().unwrap()));
        assert!(!r.best);
    }

    #[test]
    fn malformed_rib_is_an_error() {
        for bad in [
            "[1]",
            "{\"10.0.0.0/33\": []}",
            "{\"10.0.0.0/8\": [{\"attrs\": [{\"value\": 1}]}]}",
            "{\"10.0.0.0/8\": [{\"attrs\": [{\"type\": 1, \"value\": 7}]}]}",
            "{\"10.0.0.0/8\": [{\"attrs\": [{\"type\": 4, \"metric\": \"x\"}]}]}",
            "{\"10.0.0.0/8\": [{\"attrs\": [{\"type\": 2, \"as_paths\": [{\"segment_type\": 9}]}]}]}",
            "{",
        ] {
            assert!(parse_rib(bad).is_err(), "accepted {bad}");
        }
        assert!(parse_rib("").unwrap().is_empty());
        assert!(parse_rib("{}").unwrap().is_empty());
    }

    #[test]
    fn neighbor_states() {
        assert_eq!(neighbor_state(NEIGHBOR).unwrap(), SessionState::Established);
        assert_eq!(
            neighbor_state(r#"{"state":{"session_state":3}}"#).unwrap(),
            SessionState::Active
        );
        assert_eq!(
            neighbor_state(r#"{"state":{}}"#).unwrap(),
            SessionState::Idle
        );
        assert_eq!(
            neighbor_state(r#"{"state":{"session_state":"SESSION_STATE_OPENSENT"}}"#).unwrap(),
            SessionState::OpenSent
        );
        assert!(neighbor_state(r#"{"state":{"session_state":9}}"#).is_err());
        assert!(neighbor_state("not json").is_err());
    }
}
