//! What `gingerctl` prints: pure functions from snapshots to text.
//!
//! Owns: the layouts of `node status` (calicoctl's released table, BIRD's state and time
//! columns), `route show`, `get bgppeers` and `get nodes` (calicoctl's `get` columns). Must
//! not: do I/O or read the clock; the caller passes the current time and time zone, so every
//! output is reproducible in tests.

use std::net::IpAddr;

use bgp::config::DEFAULT_PORT;
use bgp::status::{PathStatus, PeerStatus, RouteStatus, SessionState};
use ipnet::IpNet;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::protocol::{BgpPeerRow, NodeAsn, NodeRow};
use super::table::{BoxTable, TabTable};

/// BIRD's `timeformat protocol` default (`"%T" 72000 "%F"`): times for the last 20 hours.
const SINCE_TIME_LIMIT_SECS: i64 = 20 * 3600;

/// `gingerctl node status`: calicoctl's layout, IPv4 sessions then IPv6 sessions.
pub fn node_status(peers: &[PeerStatus], now_unix: u64, tz: &TimeZone) -> String {
    let mut out = String::from("Ginger process is running.\n");
    for (version, is_v6) in [("4", false), ("6", true)] {
        out.push_str(&format!("\nIPv{version} BGP status\n"));
        let mut family: Vec<&PeerStatus> = peers
            .iter()
            .filter(|p| p.address.is_ipv6() == is_v6)
            .collect();
        if family.is_empty() {
            out.push_str(&format!("No IPv{version} peers found.\n"));
            continue;
        }
        family.sort_by_key(|p| (p.address, p.port));
        let mut table = BoxTable::new(&["Peer address", "Peer type", "State", "Since", "Info"]);
        for p in family {
            table.push_row(&[
                peer_address(p.address, p.port),
                p.kind.display().to_string(),
                bird_state(p).to_string(),
                since(p.since_unix, now_unix, tz),
                info(p),
            ]);
        }
        out.push_str(&table.render());
    }
    // calicoctl ends with an empty line after the last table.
    out.push('\n');
    out
}

/// The address column: `:port` only when the port is not 179 (IPv6 in brackets then).
pub fn peer_address(address: IpAddr, port: u16) -> String {
    match (port, address) {
        (DEFAULT_PORT, _) => address.to_string(),
        (_, IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        (_, IpAddr::V4(v4)) => format!("{v4}:{port}"),
    }
}

/// BIRD's protocol state: `up` when Established, `down` when stopped, `start` while trying.
/// A session in Idle with no error is not trying (stopped); Idle after an error is waiting
/// to retry, which BIRD shows as `start`.
pub fn bird_state(peer: &PeerStatus) -> &'static str {
    match (peer.state, &peer.last_error) {
        (SessionState::Established, _) => "up",
        (SessionState::Idle, None) => "down",
        _ => "start",
    }
}

/// The INFO column: `Established`, or the FSM state and the last error (`Active Socket:
/// Connection refused`).
pub fn info(peer: &PeerStatus) -> String {
    match (&peer.state, peer.last_error.as_deref()) {
        (SessionState::Established, _) | (_, None | Some("")) => peer.state.name().to_string(),
        (state, Some(error)) => format!("{} {}", state.name(), error),
    }
}

/// The SINCE column as BIRD prints it: `HH:MM:SS` local time within the last 20 hours, else
/// `YYYY-MM-DD`.
pub fn since(since_unix: u64, now_unix: u64, tz: &TimeZone) -> String {
    let Some(at) = i64::try_from(since_unix)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
    else {
        return since_unix.to_string();
    };
    let age = i64::try_from(now_unix).unwrap_or(i64::MAX) - at.as_second();
    let format = if age < SINCE_TIME_LIMIT_SECS {
        "%H:%M:%S"
    } else {
        "%Y-%m-%d"
    };
    at.to_zoned(tz.clone()).strftime(format).to_string()
}

/// `gingerctl route show`: one line per path, best path first within a prefix.
pub fn routes(routes: &[RouteStatus], query: Option<IpNet>) -> String {
    if routes.iter().all(|r| r.paths.is_empty()) {
        return match query {
            Some(q) => format!("No route matches {q}.\n"),
            None => "No routes in the Loc-RIB.\n".to_string(),
        };
    }
    let mut table = TabTable::new(&[
        "PREFIX",
        "NEXT HOP",
        "FROM",
        "AS PATH",
        "LOCAL_PREF",
        "MED",
        "STATUS",
    ]);
    for route in routes {
        for path in &route.paths {
            table.push_row(&[
                route.prefix.to_string(),
                optional(path.next_hop),
                path.from.clone(),
                if path.as_path.is_empty() {
                    "-".to_string()
                } else {
                    path.as_path.clone()
                },
                optional(path.local_pref),
                optional(path.med),
                path_status(path),
            ]);
        }
    }
    table.render()
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `best` (with why it is not in the FIB, if it is not), `multipath` or `lost: <reason>`, with
/// `(stale)` for graceful-restart leftovers.
pub fn path_status(path: &PathStatus) -> String {
    let status = if path.best {
        match path.reason.as_deref() {
            Some(note) if !note.is_empty() => format!("best, {note}"),
            _ => "best".to_string(),
        }
    } else if path.multipath {
        "multipath".to_string()
    } else {
        match path.reason.as_deref() {
            Some(reason) if !reason.is_empty() => format!("lost: {reason}"),
            _ => "lost".to_string(),
        }
    };
    if path.stale {
        format!("{status} (stale)")
    } else {
        status
    }
}

/// `gingerctl get bgppeers`: calicoctl's `NAME PEERIP NODE ASN` columns, then a blank line.
pub fn bgp_peers(rows: &[BgpPeerRow]) -> String {
    let mut table = TabTable::new(&["NAME", "PEERIP", "NODE", "ASN"]);
    for row in rows {
        let peer_ip = row
            .peer_ip
            .map(|ip| peer_address(ip, row.port.unwrap_or(DEFAULT_PORT)))
            .unwrap_or_default();
        // calicoctl: the node name, else the node selector, else `(global)`.
        let node = row
            .node
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| row.node_selector.clone().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "(global)".to_string());
        let asn = row.asn.map(|a| a.to_string()).unwrap_or_default();
        table.push_row(&[row.name.clone(), peer_ip, node, asn]);
    }
    table.render() + "\n"
}

/// `gingerctl get nodes [-o wide]`: `NAME`, or `NAME ASN IPV4 IPV6` when wide (an inherited
/// AS number in parentheses), then a blank line.
pub fn nodes(rows: &[NodeRow], wide: bool) -> String {
    let header: &[&str] = if wide {
        &["NAME", "ASN", "IPV4", "IPV6"]
    } else {
        &["NAME"]
    };
    let mut table = TabTable::new(header);
    for row in rows {
        if !wide {
            table.push_row(&[&row.name]);
            continue;
        }
        let asn = match row.asn {
            Some(NodeAsn::Explicit(a)) => a.to_string(),
            Some(NodeAsn::Inherited(a)) => format!("({a})"),
            None => String::new(),
        };
        table.push_row(&[
            row.name.clone(),
            asn,
            row.ipv4.map(|n| n.to_string()).unwrap_or_default(),
            row.ipv6.map(|n| n.to_string()).unwrap_or_default(),
        ]);
    }
    table.render() + "\n"
}

#[cfg(test)]
mod tests {
    use bgp::config::PeerKind;
    use bgp::status::PeerCounters;

    use super::*;

    /// 2016-11-21 23:30:04 UTC.
    const SINCE: u64 = 1_479_771_004;

    fn peer(address: &str, kind: PeerKind, state: SessionState, error: Option<&str>) -> PeerStatus {
        let address: IpAddr = address.parse().unwrap();
        PeerStatus {
            name: bgp::config::PeerConfig::calico_name(kind, address, 179),
            kind,
            address,
            port: 179,
            remote_asn: 64512,
            local_asn: 64512,
            state,
            since_unix: SINCE,
            last_error: error.map(str::to_string),
            peer_router_id: None,
            hold_time: None,
            families: vec![],
            prefixes_received: 0,
            prefixes_accepted: 0,
            prefixes_advertised: 0,
            counters: PeerCounters::default(),
            end_of_rib_received: Vec::new(),
            peer_graceful_restart: false,
            stale_paths: 0,
        }
    }

    /// calico.md §5.1, the released calicoctl (tablewriter) output, plus the final empty line
    /// `Status()` prints after the tables.
    #[test]
    fn node_status_matches_calicoctl_byte_for_byte() {
        let peers = [peer(
            "172.17.8.102",
            PeerKind::Mesh,
            SessionState::Established,
            None,
        )];
        let out = node_status(&peers, SINCE + 600, &TimeZone::UTC);
        let expected = "\
Ginger process is running.

IPv4 BGP status
+--------------+-------------------+-------+----------+-------------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+--------------+-------------------+-------+----------+-------------+
| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established |
+--------------+-------------------+-------+----------+-------------+

IPv6 BGP status
No IPv6 peers found.

";
        assert_eq!(out, expected);
    }

    #[test]
    fn node_status_without_peers() {
        let out = node_status(&[], SINCE, &TimeZone::UTC);
        assert_eq!(
            out,
            "Ginger process is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n\n\
             IPv6 BGP status\nNo IPv6 peers found.\n\n"
        );
    }

    #[test]
    fn node_status_rows_in_every_session_state() {
        let now = SINCE + 60;
        let peers = [
            peer(
                "10.0.0.6",
                PeerKind::Global,
                SessionState::Established,
                Some("Received: Hold timer expired"),
            ),
            peer(
                "10.0.0.2",
                PeerKind::Mesh,
                SessionState::Idle,
                Some("Received: Hold timer expired"),
            ),
            peer("10.0.0.3", PeerKind::Mesh, SessionState::Connect, None),
            peer(
                "10.0.0.4",
                PeerKind::NodeSpecific,
                SessionState::Active,
                Some("Socket: Connection refused"),
            ),
            peer("10.0.0.5", PeerKind::Global, SessionState::OpenSent, None),
            peer(
                "10.0.0.7",
                PeerKind::Global,
                SessionState::OpenConfirm,
                None,
            ),
            peer("10.0.0.8", PeerKind::Mesh, SessionState::Idle, None),
            peer("fd00::2", PeerKind::Mesh, SessionState::Established, None),
        ];
        let out = node_status(&peers, now, &TimeZone::UTC);
        let expected = "\
Ginger process is running.

IPv4 BGP status
+--------------+-------------------+-------+----------+--------------------------------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |              INFO              |
+--------------+-------------------+-------+----------+--------------------------------+
| 10.0.0.2     | node-to-node mesh | start | 23:30:04 | Idle Received: Hold timer      |
|              |                   |       |          | expired                        |
| 10.0.0.3     | node-to-node mesh | start | 23:30:04 | Connect                        |
| 10.0.0.4     | node specific     | start | 23:30:04 | Active Socket: Connection      |
|              |                   |       |          | refused                        |
| 10.0.0.5     | global            | start | 23:30:04 | OpenSent                       |
| 10.0.0.6     | global            | up    | 23:30:04 | Established                    |
| 10.0.0.7     | global            | start | 23:30:04 | OpenConfirm                    |
| 10.0.0.8     | node-to-node mesh | down  | 23:30:04 | Idle                           |
+--------------+-------------------+-------+----------+--------------------------------+

IPv6 BGP status
+--------------+-------------------+-------+----------+-------------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+--------------+-------------------+-------+----------+-------------+
| fd00::2      | node-to-node mesh | up    | 23:30:04 | Established |
+--------------+-------------------+-------+----------+-------------+

";
        assert_eq!(out, expected);
    }

    #[test]
    fn since_follows_bird_timeformat() {
        let utc = TimeZone::UTC;
        assert_eq!(since(SINCE, SINCE, &utc), "23:30:04");
        assert_eq!(since(SINCE, SINCE + 20 * 3600 - 1, &utc), "23:30:04");
        assert_eq!(since(SINCE, SINCE + 20 * 3600, &utc), "2016-11-21");
        // Local time: the same instant two hours east of UTC is past midnight.
        let east = TimeZone::fixed(jiff::tz::offset(2));
        assert_eq!(since(SINCE, SINCE + 5, &east), "01:30:04");
        assert_eq!(since(SINCE, SINCE + 30 * 86400, &east), "2016-11-22");
        // A clock that went backwards still shows the time.
        assert_eq!(since(SINCE, SINCE - 100, &utc), "23:30:04");
    }

    #[test]
    fn peer_address_shows_non_default_ports() {
        assert_eq!(peer_address("10.0.0.2".parse().unwrap(), 179), "10.0.0.2");
        assert_eq!(
            peer_address("10.0.0.2".parse().unwrap(), 1179),
            "10.0.0.2:1179"
        );
        assert_eq!(
            peer_address("fd00::2".parse().unwrap(), 1179),
            "[fd00::2]:1179"
        );
    }

    fn path(from: &str, best: bool, multipath: bool, reason: Option<&str>) -> PathStatus {
        PathStatus {
            from: from.into(),
            peer_address: None,
            next_hop: Some("10.0.0.2".parse().unwrap()),
            as_path: "65001 65002".into(),
            origin: "IGP".into(),
            med: None,
            local_pref: Some(100),
            communities: vec![],
            originator_id: None,
            cluster_list: vec![],
            best,
            multipath,
            stale: false,
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn route_table_lists_every_path_with_its_status() {
        let mut local = path("local", true, false, None);
        local.next_hop = None;
        local.as_path = String::new();
        local.local_pref = None;
        let mut stale = path("Global_192_0_2_1", false, false, Some("higher MED"));
        stale.stale = true;
        stale.med = Some(20);
        let routes = [
            RouteStatus {
                prefix: "10.244.0.0/26".parse().unwrap(),
                paths: vec![local],
            },
            RouteStatus {
                prefix: "10.244.1.0/26".parse().unwrap(),
                paths: vec![
                    path("Mesh_10_0_0_2", true, true, None),
                    path("Mesh_10_0_0_3", false, true, None),
                    stale,
                    path("Mesh_10_0_0_4", false, false, None),
                ],
            },
        ];
        let expected = "\
PREFIX          NEXT HOP   FROM               AS PATH       LOCAL_PREF   MED   STATUS                     
10.244.0.0/26   -          local              -             -            -     best                       
10.244.1.0/26   10.0.0.2   Mesh_10_0_0_2      65001 65002   100          -     best                       
10.244.1.0/26   10.0.0.2   Mesh_10_0_0_3      65001 65002   100          -     multipath                  
10.244.1.0/26   10.0.0.2   Global_192_0_2_1   65001 65002   100          20    lost: higher MED (stale)   
10.244.1.0/26   10.0.0.2   Mesh_10_0_0_4      65001 65002   100          -     lost                       
";
        assert_eq!(super::routes(&routes, None), expected);
    }

    #[test]
    fn empty_route_answers_say_so() {
        assert_eq!(super::routes(&[], None), "No routes in the Loc-RIB.\n");
        let q = "10.9.9.9/32".parse().ok();
        assert_eq!(super::routes(&[], q), "No route matches 10.9.9.9/32.\n");
    }

    #[test]
    fn bgp_peers_like_calicoctl_get() {
        let rows = [
            BgpPeerRow {
                name: "rack1-tor".into(),
                peer_ip: Some("192.0.2.1".parse().unwrap()),
                port: None,
                node: None,
                node_selector: Some("rack == 'rack1'".into()),
                asn: Some(65001),
            },
            BgpPeerRow {
                name: "global-rr".into(),
                peer_ip: Some("fd00::1".parse().unwrap()),
                port: Some(1179),
                node: None,
                node_selector: None,
                asn: Some(64512),
            },
            BgpPeerRow {
                name: "n1-peer".into(),
                peer_ip: Some("10.0.0.9".parse().unwrap()),
                port: Some(179),
                node: Some("node-1".into()),
                node_selector: None,
                asn: Some(64513),
            },
        ];
        let expected = "\
NAME        PEERIP           NODE              ASN     
rack1-tor   192.0.2.1        rack == 'rack1'   65001   
global-rr   [fd00::1]:1179   (global)          64512   
n1-peer     10.0.0.9         node-1            64513   

";
        assert_eq!(bgp_peers(&rows), expected);
        assert_eq!(bgp_peers(&[]), "NAME   PEERIP   NODE   ASN   \n\n");
    }

    #[test]
    fn nodes_like_calicoctl_get() {
        let rows = [
            NodeRow {
                name: "node-1".into(),
                asn: Some(NodeAsn::Inherited(64512)),
                ipv4: Some("10.0.0.1/24".parse().unwrap()),
                ipv6: Some("fd00::1/64".parse().unwrap()),
            },
            NodeRow {
                name: "node-2".into(),
                asn: Some(NodeAsn::Explicit(64513)),
                ipv4: Some("10.0.0.2/24".parse().unwrap()),
                ipv6: None,
            },
            NodeRow {
                name: "master".into(),
                asn: None,
                ipv4: None,
                ipv6: None,
            },
        ];
        assert_eq!(
            nodes(&rows, false),
            "NAME     \nnode-1   \nnode-2   \nmaster   \n\n"
        );
        let expected = "\
NAME     ASN       IPV4          IPV6         
node-1   (64512)   10.0.0.1/24   fd00::1/64   
node-2   64513     10.0.0.2/24                
master                                        

";
        assert_eq!(nodes(&rows, true), expected);
    }
}
