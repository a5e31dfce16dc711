//! `/liveness`, `/readiness` and `/metrics` of a live `ginger-node`, fetched over plain HTTP
//! from inside its namespace while its sessions come up, carry routes and break.
//!
//! Readiness follows Calico's BIRD rule (calico.md §6.1): during the first 30 s every peer must
//! be Established, so it is 503 with `ginger-node is not ready: BGP not established with …`
//! until BIRD and the raw peer are up, then 200. The per-peer metrics (docs/metrics.md) are
//! checked against independent witnesses: what the raw peer sent and received byte by byte,
//! and BIRD's own route counters; the NOTIFICATION and treat-as-withdraw counters against the
//! bad input the raw peer sent.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use e2e::rawpeer::msg::{self, UpdateBuilder, msg_type};
use e2e::robust::{
    BIRD_ADDR, BIRD_PREFIXES, MetricSamples, NODE_ADDR, RAW_ADDR, RawLab, bird_route_counts,
    raw_announce, unhex,
};
use e2e::{RawPeer, SessionState, scenario, wait_for};
use ipnet::{IpNet, Ipv4Net};

/// Per-step deadline.
const T: Duration = Duration::from_secs(20);
const BIRD_LABELS: [(&str, &str); 3] = [
    ("peer", "Global_10_81_0_2"),
    ("address", "10.81.0.2"),
    ("type", "global"),
];
const RAW_LABELS: [(&str, &str); 3] = [
    ("peer", "Global_10_81_0_3"),
    ("address", "10.81.0.3"),
    ("type", "global"),
];
/// `UPDATE: NLRI prefix length 33` from zettabgp-cases.tsv: UPDATE Message Error / Invalid
/// Network Field (RFC 4271 §6.3, RFC 7606 §5.3).
const BAD_NLRI: &str = "ffffffffffffffffffffffffffffffff001c0200000000210a000001";

fn metric(m: &MetricSamples, name: &str, peer: &[(&str, &str)], extra: &[(&str, &str)]) -> f64 {
    let labels: Vec<(&str, &str)> = peer.iter().chain(extra).copied().collect();
    m.value(name, &labels)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// Read everything the node sends until it is quiet for 500 ms: (UPDATE messages, prefixes
/// announced and not withdrawn since).
fn read_updates(raw: &mut RawPeer, seen: &mut BTreeSet<Ipv4Net>) -> e2e::Result<u64> {
    let mut updates = 0;
    loop {
        match raw.recv(Duration::from_millis(500)) {
            Ok(m) if m.msg_type() == msg_type::UPDATE => {
                updates += 1;
                let u = m.update()?;
                for p in u.withdrawn {
                    seen.remove(&p);
                }
                seen.extend(u.nlri);
            }
            Ok(_) => {}
            Err(e2e::Error::Timeout { .. }) => return Ok(updates),
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn health_and_metrics_follow_the_sessions() {
    scenario("health", |dir| {
        let started = Instant::now();
        let mut lab = RawLab::without_bird(dir.path())?;
        let not_ready =
            |body: &str| format!("ginger-node is not ready: BGP not established with {body}\n");

        // Nothing is up yet: live, not ready, naming both peers.
        let live = wait_for(
            T,
            "/liveness to answer",
            || lab.health("/liveness"),
            |_| true,
        )?;
        assert_eq!((live.status, live.body.as_str()), (200, "live\n"));
        assert!(
            live.headers
                .iter()
                .any(|h| h == "Content-Type: text/plain; charset=utf-8"),
            "{live:?}"
        );
        let r = lab.health("/readiness")?;
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.body, not_ready("10.81.0.2,10.81.0.3"));
        assert_eq!(lab.health("/nope")?.status, 404);
        let m = lab.metrics()?;
        assert_eq!(metric(&m, "ginger_bgp_peers_configured", &[], &[]), 2.0);
        assert_eq!(
            metric(&m, "ginger_bgp_peer_established", &BIRD_LABELS, &[]),
            0.0
        );
        assert_eq!(metric(&m, "ginger_bgp_speaker_responsive", &[], &[]), 1.0);
        assert_eq!(metric(&m, "ginger_build_info", &[], &[]), 1.0);

        // BIRD comes up: still not ready, the raw peer is missing.
        lab.start_bird()?;
        lab.wait_bird_up(T)?;
        let r = lab.health("/readiness")?;
        assert_eq!((r.status, r.body.clone()), (503, not_ready("10.81.0.3")));

        // The raw peer comes up: ready.
        let mut raw = lab.raw_session()?;
        let r = wait_for(
            T,
            "/readiness 200",
            || lab.health("/readiness"),
            |r| r.status == 200,
        )?;
        assert_eq!(r.body, "ready\n");

        // Traffic with exactly known counts. The node's initial table to the raw peer:
        let mut to_raw = BTreeSet::new();
        let mut updates_to_raw = read_updates(&mut raw, &mut to_raw)?;
        // Two announcements and one withdrawal from the raw peer (in a re-exported pool).
        let (p1, p2): (Ipv4Net, Ipv4Net) = (
            "198.18.1.0/24".parse().unwrap(),
            "198.18.2.0/24".parse().unwrap(),
        );
        raw.send(&raw_announce(p1))?;
        raw.send(&raw_announce(p2))?;
        raw.send(&UpdateBuilder::new().withdraw(p2).build())?;
        // And one malformed: COMMUNITIES of one octet announcing p2, treat-as-withdraw
        // (RFC 7606 §7.8).
        raw.send(
            &UpdateBuilder::new()
                .origin(0)
                .as_path(&[])
                .next_hop(RAW_ADDR)
                .local_pref(100)
                .raw_attr(0xC0, msg::attr_type::COMMUNITIES, &[1])
                .nlri(p2)
                .build(),
        )?;
        lab.ginger.wait_route(IpNet::V4(p1), T, &|_| true)?;
        let raw_ip = IpAddr::V4(RAW_ADDR);
        wait_for(
            T,
            "4 UPDATEs counted",
            || lab.raw_status(),
            |p| p.counters.updates_in == 4,
        )?;
        updates_to_raw += read_updates(&mut raw, &mut to_raw)?;
        // BIRD's view of the session (independent counters): it imported what we advertised.
        let (bird_imported, bird_exported) = wait_for(
            T,
            "BIRD to import the node's routes (service range and p1)",
            || bird_route_counts(lab.bird(), IpAddr::V4(NODE_ADDR)),
            |(imported, _)| *imported == 2,
        )?;

        let m = lab.metrics()?;
        let bird = |name: &str| metric(&m, name, &BIRD_LABELS, &[]);
        let rawm = |name: &str| metric(&m, name, &RAW_LABELS, &[]);
        assert_eq!(bird("ginger_bgp_peer_state"), 6.0);
        assert_eq!(bird("ginger_bgp_peer_established"), 1.0);
        assert!(bird("ginger_bgp_peer_uptime_seconds") <= started.elapsed().as_secs_f64() + 1.0);
        assert_eq!(
            bird("ginger_bgp_peer_prefixes_received"),
            bird_exported as f64
        );
        assert_eq!(
            bird("ginger_bgp_peer_prefixes_received"),
            BIRD_PREFIXES.len() as f64
        );
        assert_eq!(
            bird("ginger_bgp_peer_prefixes_accepted"),
            BIRD_PREFIXES.len() as f64
        );
        assert_eq!(
            bird("ginger_bgp_peer_prefixes_advertised"),
            bird_imported as f64
        );
        assert_eq!(bird("ginger_bgp_peer_sessions_established_total"), 1.0);
        assert_eq!(
            metric(
                &m,
                "ginger_bgp_peer_fsm_transitions_total",
                &BIRD_LABELS,
                &[("from", "OpenConfirm"), ("to", "Established")]
            ),
            1.0
        );
        assert_eq!(rawm("ginger_bgp_peer_updates_received_total"), 4.0);
        assert_eq!(
            rawm("ginger_bgp_peer_updates_sent_total"),
            updates_to_raw as f64
        );
        assert_eq!(rawm("ginger_bgp_peer_prefixes_received"), 1.0);
        assert_eq!(
            rawm("ginger_bgp_peer_prefixes_advertised"),
            to_raw.len() as f64
        );
        // Only the service range: BIRD's prefixes lie outside every pool (Calico's export
        // filter) and p1 came from the raw peer itself (iBGP split horizon).
        assert_eq!(
            to_raw.into_iter().collect::<Vec<_>>(),
            vec!["10.96.0.0/16".parse::<Ipv4Net>().unwrap()]
        );
        assert_eq!(rawm("ginger_bgp_peer_treat_as_withdraw_total"), 1.0);
        assert_eq!(rawm("ginger_bgp_peer_sessions_established_total"), 1.0);
        assert!(
            m.matching("ginger_bgp_peer_notifications_sent_total", &RAW_LABELS)
                .next()
                .is_none()
        );
        // Documented as present when the speaker reports it: then it is the Loc-RIB's size.
        let loc_rib = lab.ginger.routes(None)?.len() as f64;
        if let Some(v) = m.value("ginger_bgp_loc_rib_prefixes", &[("family", "ipv4")]) {
            assert_eq!(v, loc_rib);
        }

        // Bad input: Invalid Network Field. The counter carries code, subcode and name.
        raw.send(&unhex(BAD_NLRI)?)?;
        raw.wait_closed(T)?;
        lab.ginger.wait_not_established(raw_ip, T)?;
        lab.ginger.wait_no_route(IpNet::V4(p1), T)?;
        let m = wait_for(
            T,
            "the NOTIFICATION counted",
            || lab.metrics(),
            |m| {
                m.value(
                    "ginger_bgp_peer_notifications_sent_total",
                    &[RAW_LABELS[0], ("code", "3"), ("subcode", "10")],
                )
                .is_some()
            },
        )?;
        assert_eq!(
            metric(
                &m,
                "ginger_bgp_peer_notifications_sent_total",
                &RAW_LABELS,
                &[
                    ("code", "3"),
                    ("subcode", "10"),
                    ("name", "UPDATE Message Error/Invalid Network Field")
                ]
            ),
            1.0
        );
        let rawm = |name: &str| metric(&m, name, &RAW_LABELS, &[]);
        assert_ne!(rawm("ginger_bgp_peer_state"), 6.0);
        assert_eq!(rawm("ginger_bgp_peer_established"), 0.0);
        assert_eq!(rawm("ginger_bgp_peer_uptime_seconds"), 0.0);
        assert_eq!(rawm("ginger_bgp_peer_prefixes_received"), 0.0);
        // (Whether the malformed UPDATE counts as received: see the test below.)
        assert_eq!(
            metric(
                &m,
                "ginger_bgp_peer_fsm_transitions_total",
                &RAW_LABELS,
                &[("from", "Established"), ("to", "Idle")]
            ),
            1.0
        );
        // Within the 30 s start-up threshold every peer must be up again; after it, BIRD alone
        // suffices (Calico's rule). Judge only away from the edge.
        let r = lab.health("/readiness")?;
        let elapsed = started.elapsed();
        if elapsed < Duration::from_secs(25) {
            assert_eq!((r.status, r.body), (503, not_ready("10.81.0.3")));
        } else if elapsed > Duration::from_secs(35) {
            assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
        }

        // The raw peer comes back and leaves with a Cease: counted as received, by name.
        let mut raw = lab.raw_session()?;
        raw.send(&msg::notification(6, 2, &[]))?;
        raw.wait_closed(T)?;
        let m = wait_for(
            T,
            "the Cease counted",
            || lab.metrics(),
            |m| {
                m.value(
                    "ginger_bgp_peer_notifications_received_total",
                    &[RAW_LABELS[0], ("code", "6"), ("subcode", "2")],
                )
                .is_some()
            },
        )?;
        assert_eq!(
            metric(
                &m,
                "ginger_bgp_peer_notifications_received_total",
                &RAW_LABELS,
                &[
                    ("code", "6"),
                    ("subcode", "2"),
                    ("name", "Cease/Administrative Shutdown")
                ]
            ),
            1.0
        );
        assert_eq!(
            metric(
                &m,
                "ginger_bgp_peer_sessions_established_total",
                &RAW_LABELS,
                &[]
            ),
            2.0
        );
        // BIRD was never disturbed by any of it.
        assert_eq!(
            metric(
                &m,
                "ginger_bgp_peer_sessions_established_total",
                &BIRD_LABELS,
                &[]
            ),
            1.0
        );
        assert_eq!(
            lab.ginger.peer(IpAddr::V4(BIRD_ADDR))?.state,
            SessionState::Established
        );
        assert!(
            m.matching("ginger_bgp_peer_notifications_sent_total", &BIRD_LABELS)
                .next()
                .is_none()
        );
        Ok(())
    });
}

/// The UPDATE that got the session reset arrived too: `ginger_bgp_peer_updates_received_total`
/// counts UPDATE messages received (docs/metrics.md), as FRR's `UpdRcvd` does.
#[test]
fn a_malformed_update_counts_as_received() {
    scenario("upd-count", |dir| {
        let lab = RawLab::start(dir.path())?;
        let mut raw = lab.raw_session()?;
        raw.send(&raw_announce("198.18.3.0/24".parse().unwrap()))?;
        wait_for(
            T,
            "1 UPDATE counted",
            || lab.raw_status(),
            |p| p.counters.updates_in == 1,
        )?;
        raw.send(&unhex(BAD_NLRI)?)?;
        raw.wait_closed(T)?;
        lab.ginger.wait_not_established(IpAddr::V4(RAW_ADDR), T)?;
        let m = lab.metrics()?;
        assert_eq!(
            metric(
                &m,
                "ginger_bgp_peer_notifications_sent_total",
                &RAW_LABELS,
                &[("code", "3"), ("subcode", "10")]
            ),
            1.0
        );
        assert_eq!(
            metric(
                &m,
                "ginger_bgp_peer_updates_received_total",
                &RAW_LABELS,
                &[]
            ),
            2.0
        );
        Ok(())
    });
}
