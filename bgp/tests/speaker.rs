//! Speakers talking to each other over loopback: route exchange, eBGP/iBGP attribute rules,
//! mesh, route reflection, collisions, configuration diffs, multipath and hold timers.
//!
//! Every speaker listens on its own 127.<test>.0.<n> address (the whole 127/8 is local), so the
//! tests run in parallel without namespaces and without leaving the machine.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bgp::config::{OriginatedRoute, PeerConfig, PeerKind, SpeakerConfig};
use bgp::speaker::{Speaker, SpeakerHandle};
use bgp::status::{PeerStatus, RouteChange, RouteStatus, SessionState};
use ipnet::IpNet;

const PORT: u16 = 1790;

fn ip(test: u8, n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 100 + test, 0, n)
}

fn speaker_config(test: u8, n: u8, asn: u32) -> SpeakerConfig {
    let me = ip(test, n);
    let mut c = SpeakerConfig::new(Ipv4Addr::new(10, test, 0, n), asn);
    c.listen_port = Some(PORT);
    c.listen_address = Some(IpAddr::V4(me));
    c.local_ipv4 = Some(me);
    c
}

fn peer(test: u8, n: u8, asn: u32) -> PeerConfig {
    let mut p = PeerConfig::new(
        format!("p{n}"),
        PeerKind::Global,
        IpAddr::V4(ip(test, n)),
        asn,
    );
    p.port = PORT;
    p.hold_time = 9;
    p.connect_retry = 1;
    p
}

fn with_source(mut p: PeerConfig, test: u8, me: u8) -> PeerConfig {
    p.source_address = Some(IpAddr::V4(ip(test, me)));
    p
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn originate(prefixes: &[&str]) -> BTreeSet<OriginatedRoute> {
    prefixes
        .iter()
        .map(|p| OriginatedRoute::new(net(p)))
        .collect()
}

async fn eventually<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn established(s: &SpeakerHandle, name: &str) -> PeerStatus {
    eventually(
        &format!("{name} Established"),
        Duration::from_secs(15),
        async || {
            s.peers()
                .await
                .unwrap()
                .into_iter()
                .find(|p| p.name == name && p.state == SessionState::Established)
        },
    )
    .await
}

async fn route(s: &SpeakerHandle, prefix: &str) -> RouteStatus {
    eventually(
        &format!("route {prefix}"),
        Duration::from_secs(15),
        async || {
            s.routes(Some(net(prefix)))
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.prefix == net(prefix))
        },
    )
    .await
}

async fn gone(s: &SpeakerHandle, prefix: &str) {
    eventually(
        &format!("{prefix} withdrawn"),
        Duration::from_secs(15),
        async || {
            let routes = s.routes(Some(net(prefix))).await.unwrap();
            routes.iter().all(|r| r.prefix != net(prefix)).then_some(())
        },
    )
    .await
}

#[tokio::test]
async fn ibgp_pair_exchanges_and_withdraws_routes() {
    let t = 1;
    let a =
        Speaker::start(speaker_config(t, 1, 64512).with_peer(with_source(peer(t, 2, 64512), t, 1)))
            .await
            .unwrap();
    let b =
        Speaker::start(speaker_config(t, 2, 64512).with_peer(with_source(peer(t, 1, 64512), t, 2)))
            .await
            .unwrap();
    let mut changes = b.subscribe().await.unwrap();
    let mut r = OriginatedRoute::new(net("10.244.1.0/26"));
    r.communities = vec![(65000 << 16) | 100];
    a.set_originated(BTreeSet::from([r])).await.unwrap();
    established(&a, "p2").await;

    let got = route(&b, "10.244.1.0/26").await;
    let p = &got.paths[0];
    assert!(p.best);
    assert_eq!(p.next_hop, Some(IpAddr::V4(ip(t, 1))));
    assert_eq!(p.as_path, "", "iBGP: no AS prepended");
    assert_eq!(p.local_pref, Some(100));
    assert_eq!(p.communities, vec!["65000:100".to_string()]);

    // The subscriber saw it with the right next hop.
    let mut seen: Vec<RouteChange> = Vec::new();
    eventually(
        "route change published",
        Duration::from_secs(5),
        async || {
            while let Ok(batch) = changes.try_recv() {
                seen.extend(batch);
            }
            seen.iter()
                .any(|c| {
                    c.prefix == net("10.244.1.0/26") && c.next_hops == vec![IpAddr::V4(ip(t, 1))]
                })
                .then_some(())
        },
    )
    .await;

    a.set_originated(BTreeSet::new()).await.unwrap();
    gone(&b, "10.244.1.0/26").await;
    eventually("withdrawal published", Duration::from_secs(5), async || {
        while let Ok(batch) = changes.try_recv() {
            seen.extend(batch);
        }
        seen.last()
            .is_some_and(|c| c.prefix == net("10.244.1.0/26") && c.next_hops.is_empty())
            .then_some(())
    })
    .await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn ebgp_transit_prepends_our_as_and_sets_next_hop_self() {
    // 1 (AS 65001) — 2 (AS 64512) — 3 (AS 65003): 1's route reaches 3 as "64512 65001".
    let t = 2;
    let s1 =
        Speaker::start(speaker_config(t, 1, 65001).with_peer(with_source(peer(t, 2, 64512), t, 1)))
            .await
            .unwrap();
    let s2 = Speaker::start(
        speaker_config(t, 2, 64512)
            .with_peer(with_source(peer(t, 1, 65001), t, 2))
            .with_peer(with_source(peer(t, 3, 65003), t, 2)),
    )
    .await
    .unwrap();
    let s3 =
        Speaker::start(speaker_config(t, 3, 65003).with_peer(with_source(peer(t, 2, 64512), t, 3)))
            .await
            .unwrap();
    s1.set_originated(originate(&["192.0.2.0/24"]))
        .await
        .unwrap();
    let at3 = route(&s3, "192.0.2.0/24").await;
    assert_eq!(at3.paths[0].as_path, "64512 65001");
    assert_eq!(at3.paths[0].next_hop, Some(IpAddr::V4(ip(t, 2))));
    assert_eq!(
        at3.paths[0].local_pref, None,
        "LOCAL_PREF is not sent over eBGP"
    );
    let at2 = route(&s2, "192.0.2.0/24").await;
    assert_eq!(at2.paths[0].as_path, "65001");
    // An eBGP route comes back to its origin AS only to be dropped by the loop check: 1 never
    // selects a path through itself.
    let at1 = s1.routes(Some(net("192.0.2.0/24"))).await.unwrap();
    assert!(
        at1[0]
            .paths
            .iter()
            .all(|p| p.from == "local" || p.reason.is_some())
    );
    for s in [s1, s2, s3] {
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn three_node_mesh_learns_each_block_once_without_ibgp_transit() {
    let t = 3;
    let mut nodes = Vec::new();
    for n in 1..=3u8 {
        let mut c = speaker_config(t, n, 64512);
        for m in (1..=3u8).filter(|m| *m != n) {
            let mut p = with_source(peer(t, m, 64512), t, n);
            p.kind = PeerKind::Mesh;
            // Calico's rule: the side with the greater address string connects.
            p.passive = ip(t, m).to_string() > ip(t, n).to_string();
            c = c.with_peer(p);
        }
        nodes.push(Speaker::start(c).await.unwrap());
    }
    for (i, s) in nodes.iter().enumerate() {
        s.set_originated(originate(&[&format!("10.244.{}.0/26", i + 1)]))
            .await
            .unwrap();
    }
    for (i, s) in nodes.iter().enumerate() {
        for j in 0..3 {
            let r = route(s, &format!("10.244.{}.0/26", j + 1)).await;
            if i == j {
                assert_eq!(r.paths[0].from, "local");
            } else {
                // Exactly one path: the origin node's, never relayed by the third node.
                assert_eq!(r.paths.len(), 1, "{r:?}");
                assert_eq!(r.paths[0].next_hop, Some(IpAddr::V4(ip(t, j as u8 + 1))));
            }
        }
    }
    for s in nodes {
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn route_reflector_reflects_client_routes_with_originator_and_cluster_list() {
    let t = 4;
    let cluster: Ipv4Addr = "244.0.0.1".parse().unwrap();
    let mut rr_cfg = speaker_config(t, 1, 64512);
    rr_cfg.cluster_id = Some(cluster);
    for m in [2u8, 3] {
        let mut p = with_source(peer(t, m, 64512), t, 1);
        p.rr_client = true;
        rr_cfg = rr_cfg.with_peer(p);
    }
    let rr = Speaker::start(rr_cfg).await.unwrap();
    let c2 =
        Speaker::start(speaker_config(t, 2, 64512).with_peer(with_source(peer(t, 1, 64512), t, 2)))
            .await
            .unwrap();
    let c3 =
        Speaker::start(speaker_config(t, 3, 64512).with_peer(with_source(peer(t, 1, 64512), t, 3)))
            .await
            .unwrap();
    c2.set_originated(originate(&["10.244.2.0/26"]))
        .await
        .unwrap();
    let at3 = route(&c3, "10.244.2.0/26").await;
    let p = &at3.paths[0];
    assert_eq!(
        p.next_hop,
        Some(IpAddr::V4(ip(t, 2))),
        "reflection keeps the next hop"
    );
    assert_eq!(p.originator_id, Some(Ipv4Addr::new(10, t, 0, 2)));
    assert_eq!(p.cluster_list, vec![cluster]);
    // The originating client gets its own route back and ignores it (ORIGINATOR_ID check).
    let back = c2.routes(Some(net("10.244.2.0/26"))).await.unwrap();
    assert!(
        back[0]
            .paths
            .iter()
            .all(|p| p.from == "local" || p.reason.is_some())
    );
    for s in [rr, c2, c3] {
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn simultaneous_connects_resolve_to_one_session() {
    // Both sides active (Calico's Node_ peers): collision resolution (RFC 4271 §6.8) leaves one
    // session, and it stays up.
    let t = 5;
    let a =
        Speaker::start(speaker_config(t, 1, 64512).with_peer(with_source(peer(t, 2, 64512), t, 1)))
            .await
            .unwrap();
    let b =
        Speaker::start(speaker_config(t, 2, 64512).with_peer(with_source(peer(t, 1, 64512), t, 2)))
            .await
            .unwrap();
    established(&a, "p2").await;
    established(&b, "p1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for s in [&a, &b] {
        let p = s.peers().await.unwrap().remove(0);
        assert_eq!(p.state, SessionState::Established);
        assert_eq!(p.counters.established_count, 1, "{p:?}");
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn adding_a_peer_leaves_other_sessions_alone() {
    let t = 6;
    let base = speaker_config(t, 1, 64512).with_peer(with_source(peer(t, 2, 64512), t, 1));
    let a = Speaker::start(base.clone()).await.unwrap();
    let b =
        Speaker::start(speaker_config(t, 2, 64512).with_peer(with_source(peer(t, 1, 64512), t, 2)))
            .await
            .unwrap();
    let before = established(&a, "p2").await;

    let c =
        Speaker::start(speaker_config(t, 3, 64512).with_peer(with_source(peer(t, 1, 64512), t, 3)))
            .await
            .unwrap();
    let diff = a
        .apply(base.clone().with_peer(with_source(peer(t, 3, 64512), t, 1)))
        .await
        .unwrap();
    assert_eq!(diff.added.len(), 1);
    assert!(diff.changed.is_empty() && !diff.restart_all);
    established(&a, "p3").await;
    let after = established(&a, "p2").await;
    assert_eq!(after.since_unix, before.since_unix);
    assert_eq!(after.counters.established_count, 1);

    // Changing one peer resets that one only.
    let mut changed = base.clone().with_peer(with_source(peer(t, 3, 64512), t, 1));
    changed.peers.get_mut("p3").unwrap().hold_time = 12;
    let diff = a.apply(changed).await.unwrap();
    assert_eq!(diff.changed.len(), 1);
    established(&a, "p3").await;
    assert_eq!(established(&a, "p2").await.counters.established_count, 1);

    // An invalid configuration is refused and the running one stays.
    let mut bad = base.clone();
    bad.local_asn = 0;
    assert!(a.apply(bad).await.is_err());
    assert_eq!(a.peers().await.unwrap().len(), 2);
    for s in [a, b, c] {
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn equal_paths_from_two_nodes_form_a_multipath_route() {
    // Two nodes originate the same service CIDR; a third sees both next hops (Calico ECMP).
    let t = 7;
    let mut c = speaker_config(t, 3, 64512);
    for m in [1u8, 2] {
        c = c.with_peer(with_source(peer(t, m, 64512), t, 3));
    }
    let s3 = Speaker::start(c).await.unwrap();
    let mut changes = s3.subscribe().await.unwrap();
    let s1 =
        Speaker::start(speaker_config(t, 1, 64512).with_peer(with_source(peer(t, 3, 64512), t, 1)))
            .await
            .unwrap();
    let s2 =
        Speaker::start(speaker_config(t, 2, 64512).with_peer(with_source(peer(t, 3, 64512), t, 2)))
            .await
            .unwrap();
    for s in [&s1, &s2] {
        s.set_originated(originate(&["10.96.0.0/12"]))
            .await
            .unwrap();
    }
    let want = vec![IpAddr::V4(ip(t, 1)), IpAddr::V4(ip(t, 2))];
    let mut last: Option<RouteChange> = None;
    eventually(
        "a two-way multipath route",
        Duration::from_secs(15),
        async || {
            while let Ok(batch) = changes.try_recv() {
                for c in batch {
                    if c.prefix == net("10.96.0.0/12") {
                        last = Some(c);
                    }
                }
            }
            last.as_ref().and_then(|c| {
                let mut hops = c.next_hops.clone();
                hops.sort();
                (hops == want).then_some(())
            })
        },
    )
    .await;
    let r = route(&s3, "10.96.0.0/12").await;
    assert!(r.paths.iter().all(|p| p.multipath));
    for s in [s1, s2, s3] {
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn learned_routes_outside_the_allowed_pools_are_not_exported() {
    let t = 8;
    let s1 =
        Speaker::start(speaker_config(t, 1, 65001).with_peer(with_source(peer(t, 2, 64512), t, 1)))
            .await
            .unwrap();
    let mut c2 = speaker_config(t, 2, 64512)
        .with_peer(with_source(peer(t, 1, 65001), t, 2))
        .with_peer(with_source(peer(t, 3, 65003), t, 2));
    c2.export.allow_learned_within = Some(vec![net("10.244.0.0/16")]);
    let s2 = Speaker::start(c2).await.unwrap();
    let s3 =
        Speaker::start(speaker_config(t, 3, 65003).with_peer(with_source(peer(t, 2, 64512), t, 3)))
            .await
            .unwrap();
    s1.set_originated(originate(&["10.244.7.0/26", "0.0.0.0/0", "192.168.1.0/24"]))
        .await
        .unwrap();
    route(&s3, "10.244.7.0/26").await;
    route(&s2, "192.168.1.0/24").await;
    route(&s2, "0.0.0.0/0").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at3: Vec<IpNet> = s3
        .routes(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.prefix)
        .collect();
    assert_eq!(at3, vec![net("10.244.7.0/26")]);
    for s in [s1, s2, s3] {
        s.shutdown().await.unwrap();
    }
}

/// A minimal hand-driven peer: completes the handshake, then can go silent.
struct RawPeer {
    stream: TcpStream,
}

impl RawPeer {
    /// Connect from `from` to a speaker at `to` (bind before connect, so the speaker recognises
    /// the peer by its address).
    async fn connect(from: Ipv4Addr, to: Ipv4Addr) -> RawPeer {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
        let stream = socket
            .connect(SocketAddr::new(IpAddr::V4(to), PORT))
            .await
            .unwrap()
            .into_std()
            .unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RawPeer { stream }
    }

    fn send(&mut self, kind: u8, body: &[u8]) {
        let mut msg = vec![0xff; 16];
        let len = (19 + body.len()) as u16;
        msg.extend(len.to_be_bytes());
        msg.push(kind);
        msg.extend(body);
        self.stream.write_all(&msg).unwrap();
    }

    /// Read one message: (type, body); None on EOF or error.
    fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut hdr = [0u8; 19];
        self.stream.read_exact(&mut hdr).ok()?;
        let len = u16::from_be_bytes([hdr[16], hdr[17]]) as usize;
        let mut body = vec![0u8; len.checked_sub(19)?];
        self.stream.read_exact(&mut body).ok()?;
        Some((hdr[18], body))
    }

    /// OPEN (MP IPv4 unicast, 4-octet AS) both ways, then KEEPALIVE both ways.
    fn handshake(&mut self, asn: u16, id: Ipv4Addr, hold: u16) {
        self.handshake_with(asn, id, hold, &[]);
    }

    /// `handshake` with extra capability TLVs (code, length, value) in the OPEN.
    fn handshake_with(&mut self, asn: u16, id: Ipv4Addr, hold: u16, extra: &[u8]) {
        #[rustfmt::skip]
        let mut caps: Vec<u8> = vec![
            2, 6, 1, 4, 0, 1, 0, 1, // MP IPv4 unicast
            2, 6, 65, 4, 0, 0, (asn >> 8) as u8, asn as u8, // 4-octet AS
        ];
        if !extra.is_empty() {
            caps.push(2);
            caps.push(extra.len() as u8);
            caps.extend(extra);
        }
        let mut body = vec![4];
        body.extend(asn.to_be_bytes());
        body.extend(hold.to_be_bytes());
        body.extend(id.octets());
        body.push(caps.len() as u8);
        body.extend(caps);
        self.send(1, &body);
        let (kind, _) = self.read().expect("the speaker's OPEN");
        assert_eq!(kind, 1);
        self.send(4, &[]);
        let (kind, _) = self.read().expect("the speaker's KEEPALIVE");
        assert_eq!(kind, 4);
    }
}

#[tokio::test]
async fn silent_peer_is_dropped_at_hold_time_expiry() {
    let t = 9;
    let mut p = peer(t, 2, 64512);
    p.hold_time = 3;
    p.passive = true;
    let s = Speaker::start(speaker_config(t, 1, 64512).with_peer(p))
        .await
        .unwrap();
    let mut raw = RawPeer::connect(ip(t, 2), ip(t, 1)).await;
    let (code, subcode, after) = tokio::task::spawn_blocking(move || {
        raw.handshake(64512, Ipv4Addr::new(10, t, 0, 2), 3);
        // Now stay silent: keepalives arrive, then Hold Timer Expired (RFC 4271 §6.5).
        let start = Instant::now();
        loop {
            match raw.read() {
                Some((3, body)) => return (body[0], body[1], start.elapsed()),
                Some(_) => continue,
                None => panic!("connection closed without a NOTIFICATION"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!((code, subcode), (4, 0), "Hold Timer Expired");
    assert!(
        after >= Duration::from_secs(2) && after < Duration::from_secs(6),
        "{after:?}"
    );
    let st = eventually(
        "the session to leave Established",
        Duration::from_secs(5),
        async || {
            let st = s.peers().await.unwrap().remove(0);
            (st.state != SessionState::Established).then_some(st)
        },
    )
    .await;
    assert!(
        st.counters.notifications_out.contains_key("4/0"),
        "{:?}",
        st.counters
    );
    s.shutdown().await.unwrap();
}

/// Restarting speaker `b` (GR restart time `restart`) and helper `a`.
fn gr_pair(t: u8, restart: u16) -> (SpeakerConfig, SpeakerConfig) {
    let a = speaker_config(t, 1, 64512).with_peer(with_source(peer(t, 2, 64512), t, 1));
    let mut b = speaker_config(t, 2, 64512).with_peer(with_source(peer(t, 1, 64512), t, 2));
    b.graceful_restart.restart_time = restart;
    (a, b)
}

async fn stale_of(s: &SpeakerHandle, prefix: &str) -> Option<bool> {
    s.routes(Some(net(prefix)))
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.prefix == net(prefix))
        .map(|r| r.paths[0].stale)
}

#[tokio::test]
async fn helper_keeps_a_restarting_peers_routes_until_its_end_of_rib() {
    // RFC 4724 §4.2: the connection drops without a NOTIFICATION; the helper keeps the routes
    // (stale, still used) and swaps them for fresh ones when the peer is back.
    let t = 10;
    let (ca, cb) = gr_pair(t, 30);
    let a = Speaker::start(ca).await.unwrap();
    let b = Speaker::start(cb.clone()).await.unwrap();
    let mut changes = a.subscribe().await.unwrap();
    b.set_originated(originate(&["10.244.9.0/26"]))
        .await
        .unwrap();
    route(&a, "10.244.9.0/26").await;
    b.shutdown_for_restart().await.unwrap();
    eventually(
        "the route to turn stale",
        Duration::from_secs(10),
        async || (stale_of(&a, "10.244.9.0/26").await == Some(true)).then_some(()),
    )
    .await;
    let st = a.peers().await.unwrap().remove(0);
    assert_ne!(st.state, SessionState::Established);
    assert_eq!(st.stale_paths, 1);
    let mut stale_published = false;
    while let Ok(batch) = changes.try_recv() {
        stale_published |= batch.iter().any(|c| c.stale && !c.next_hops.is_empty());
    }
    assert!(
        stale_published,
        "the FIB keeps forwarding: stale routes are published as such"
    );

    let b = Speaker::start(cb).await.unwrap();
    b.set_originated(originate(&["10.244.9.0/26"]))
        .await
        .unwrap();
    eventually(
        "fresh routes after End-of-RIB",
        Duration::from_secs(15),
        async || {
            let st = a.peers().await.unwrap().remove(0);
            (stale_of(&a, "10.244.9.0/26").await == Some(false)
                && st.stale_paths == 0
                && st
                    .end_of_rib_received
                    .contains(&bgp::types::Family::Ipv4Unicast))
            .then_some(())
        },
    )
    .await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn stale_routes_go_when_the_peer_does_not_return_in_its_restart_time() {
    let t = 11;
    let (ca, cb) = gr_pair(t, 2);
    let a = Speaker::start(ca).await.unwrap();
    let b = Speaker::start(cb).await.unwrap();
    b.set_originated(originate(&["10.244.10.0/26"]))
        .await
        .unwrap();
    route(&a, "10.244.10.0/26").await;
    b.shutdown_for_restart().await.unwrap();
    eventually(
        "the route to turn stale",
        Duration::from_secs(10),
        async || (stale_of(&a, "10.244.10.0/26").await == Some(true)).then_some(()),
    )
    .await;
    let start = Instant::now();
    gone(&a, "10.244.10.0/26").await;
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_cease_or_a_return_without_graceful_restart_removes_routes_at_once() {
    let t = 12;
    let (ca, cb) = gr_pair(t, 60);
    let a = Speaker::start(ca).await.unwrap();
    // A NOTIFICATION (administrative shutdown) is a deliberate reset: no helper mode.
    let b = Speaker::start(cb.clone()).await.unwrap();
    b.set_originated(originate(&["10.244.11.0/26"]))
        .await
        .unwrap();
    route(&a, "10.244.11.0/26").await;
    b.shutdown().await.unwrap();
    gone(&a, "10.244.11.0/26").await;

    // Restart quietly (stale), then come back without the capability.
    let b = Speaker::start(cb.clone()).await.unwrap();
    b.set_originated(originate(&["10.244.11.0/26"]))
        .await
        .unwrap();
    route(&a, "10.244.11.0/26").await;
    b.shutdown_for_restart().await.unwrap();
    eventually("stale", Duration::from_secs(10), async || {
        (stale_of(&a, "10.244.11.0/26").await == Some(true)).then_some(())
    })
    .await;
    // The peer comes back with GR disabled: stale routes are flushed at once (F bit absent).
    let mut no_gr = cb.clone();
    no_gr.graceful_restart.enabled = false;
    let b = Speaker::start(no_gr).await.unwrap();
    established(&a, "p2").await;
    gone(&a, "10.244.11.0/26").await;
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_peer_restarting_again_before_its_end_of_rib_loses_its_stale_routes() {
    // RFC 4724 §4.2 consecutive restarts (Calico's felix#1592): restart once (routes stale),
    // reconnect without sending End-of-RIB, drop again: the routes still stale are removed.
    let t = 13;
    let mut p = peer(t, 2, 64512);
    p.passive = true;
    let a = Speaker::start(speaker_config(t, 1, 64512).with_peer(p))
        .await
        .unwrap();
    // Graceful restart capability: restart time 30 s, IPv4 unicast with forwarding preserved.
    let gr_cap: Vec<u8> = vec![64, 6, 0, 30, 0, 1, 1, 0x80];
    let id = Ipv4Addr::new(10, t, 0, 2);
    let mut raw = RawPeer::connect(ip(t, 2), ip(t, 1)).await;
    let cap = gr_cap.clone();
    let raw = tokio::task::spawn_blocking(move || {
        raw.handshake_with(64512, id, 90, &cap);
        let mut attrs = bgp::types::PathAttrs::local(vec![], vec![]);
        attrs.next_hop = Some(IpAddr::V4(ip(t, 2)));
        let params = bgp::packet::CodecParams {
            four_octet_as: true,
            local_asn: 64512,
            ..Default::default()
        };
        let mut update = Vec::new();
        bgp::packet::encode_announce(&params, &attrs, &[net("10.244.12.0/26")], &mut update);
        raw.stream.write_all(&update).unwrap();
        raw
    })
    .await
    .unwrap();
    route(&a, "10.244.12.0/26").await;
    drop(raw); // connection lost, no NOTIFICATION
    eventually(
        "stale after the first restart",
        Duration::from_secs(10),
        async || (stale_of(&a, "10.244.12.0/26").await == Some(true)).then_some(()),
    )
    .await;
    let mut raw = RawPeer::connect(ip(t, 2), ip(t, 1)).await;
    let raw = tokio::task::spawn_blocking(move || {
        raw.handshake_with(64512, id, 90, &gr_cap);
        raw
    })
    .await
    .unwrap();
    established(&a, "p2").await;
    assert_eq!(
        stale_of(&a, "10.244.12.0/26").await,
        Some(true),
        "kept until End-of-RIB"
    );
    drop(raw);
    gone(&a, "10.244.12.0/26").await;
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn allow_local_as_on_one_peer_accepts_our_as_back_and_resets_that_peer_alone() {
    // Calico's AS-per-rack model: 1 and 3 share AS 65001, 2 is their ToR (AS 65100) and does
    // no AS override, so 1's block reaches 3 as "65100 65001". 4 (AS 65200) is another peer
    // of 3 that the change must not touch.
    let t = 14;
    let s1 =
        Speaker::start(speaker_config(t, 1, 65001).with_peer(with_source(peer(t, 2, 65100), t, 1)))
            .await
            .unwrap();
    let s2 = Speaker::start(
        speaker_config(t, 2, 65100)
            .with_peer(with_source(peer(t, 1, 65001), t, 2))
            .with_peer(with_source(peer(t, 3, 65001), t, 2)),
    )
    .await
    .unwrap();
    let base3 = speaker_config(t, 3, 65001)
        .with_peer(with_source(peer(t, 2, 65100), t, 3))
        .with_peer(with_source(peer(t, 4, 65200), t, 3));
    let s3 = Speaker::start(base3.clone()).await.unwrap();
    let s4 =
        Speaker::start(speaker_config(t, 4, 65200).with_peer(with_source(peer(t, 3, 65001), t, 4)))
            .await
            .unwrap();
    s1.set_originated(originate(&["10.244.1.0/26"]))
        .await
        .unwrap();
    let other_before = established(&s3, "p4").await;

    // Default: an AS loop (RFC 4271 §9.1.2), kept with its reason, never best.
    let looped = route(&s3, "10.244.1.0/26").await;
    assert_eq!(looped.paths.len(), 1);
    assert_eq!(looped.paths[0].as_path, "65100 65001");
    assert!(!looped.paths[0].best);
    assert!(
        looped.paths[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("AS loop")),
        "{looped:?}"
    );

    let mut allow = base3.clone();
    allow.peers.get_mut("p2").unwrap().allow_local_as = 1;
    let diff = s3.apply(allow).await.unwrap();
    assert_eq!(diff.changed, BTreeSet::from(["p2".to_string()]));
    assert!(!diff.restart_all && !diff.policy_changed);
    let accepted = eventually(
        "the block accepted as best",
        Duration::from_secs(15),
        async || {
            let r = route(&s3, "10.244.1.0/26").await;
            r.paths[0].best.then_some(r)
        },
    )
    .await;
    assert_eq!(accepted.paths[0].next_hop, Some(IpAddr::V4(ip(t, 2))));
    assert_eq!(accepted.paths[0].reason, None);
    // The session was reset (as BIRD restarts the protocol): the ToR saw it come up twice.
    established(&s3, "p2").await;
    assert_eq!(established(&s2, "p3").await.counters.established_count, 2);
    // The other peer kept its session.
    let other_after = established(&s3, "p4").await;
    assert_eq!(other_after.since_unix, other_before.since_unix);
    assert_eq!(other_after.counters.established_count, 1);
    for s in [s1, s2, s3, s4] {
        s.shutdown().await.unwrap();
    }
}
