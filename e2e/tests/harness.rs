//! The harness against the real thing: BIRD, FRR and GoBGP in namespaces, a raw BGP peer, and
//! the guards' cleanup (also when a test panics). Run as root: `cargo nextest run -p e2e`.
//! Every test uses its own namespaces and directories, so they run in parallel.

use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use e2e::rawpeer::msg::{self, UpdateBuilder, msg_type};
use e2e::{
    BgpDaemon, Bird, Frr, Gobgp, Neighbor, Netns, RawListener, RawPeer, RouteAttrs, RouterConfig,
    Segment, Veth, list_namespaces, scenario, wait_for,
};
use ipnet::IpNet;

/// Generous per-step deadline; steps normally take well under a second.
const T: Duration = Duration::from_secs(20);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn bird_frr_gobgp_exchange_routes() {
    scenario("chain", |dir| {
        let (nb, nf, ng) = (
            Netns::new("bird")?,
            Netns::new("frr")?,
            Netns::new("gobgp")?,
        );
        Veth::new(&nb, "to-frr", &nf, "to-bird")
            .addr_a("10.0.12.1/24")
            .addr_b("10.0.12.2/24")
            .create()?;
        Veth::new(&nf, "to-gobgp", &ng, "to-frr")
            .addr_a("10.0.23.2/24")
            .addr_b("10.0.23.3/24")
            .create()?;
        let bird = Bird::start(
            &nb,
            dir.path(),
            RouterConfig::parse("10.0.12.1", 65001)
                .neighbor(Neighbor::parse("10.0.12.2", 65002).timers(9, 3))
                .originate(
                    "192.0.2.0/24",
                    RouteAttrs::new()
                        .med(50)
                        .community(65001, 100)
                        .community(65001, 200)
                        .large_community(65001, 1, 2),
                )
                .originate("198.51.100.0/24", RouteAttrs::new()),
        )?;
        let frr = Frr::start(
            &nf,
            dir.path(),
            RouterConfig::parse("10.0.12.2", 65002)
                .neighbor(Neighbor::parse("10.0.12.1", 65001).timers(9, 3))
                .neighbor(Neighbor::parse("10.0.23.3", 65003).timers(9, 3))
                .install_fib(true),
        )?;
        let gobgp = Gobgp::start(
            &ng,
            dir.path(),
            RouterConfig::parse("10.0.23.3", 65003)
                .neighbor(Neighbor::parse("10.0.23.2", 65002).timers(9, 3)),
        )?;

        bird.wait_established(ip("10.0.12.2"), T)?;
        frr.wait_established(ip("10.0.12.1"), T)?;
        frr.wait_established(ip("10.0.23.3"), T)?;
        gobgp.wait_established(ip("10.0.23.2"), T)?;
        // Asking about a neighbour nobody configured fails at once, not after the timeout.
        assert!(matches!(
            frr.wait_established(ip("10.9.9.9"), T),
            Err(e2e::Error::UnknownPeer { daemon: "frr", .. })
        ));
        // A command FRR refuses is an error naming the command.
        let refused = frr.configure(&["router bgp 65002", "neighbor 10.0.12.1 no-such-knob"]);
        assert!(
            matches!(refused, Err(e2e::Error::Rejected { daemon: "frr", .. })),
            "{refused:?}"
        );

        // FRR, BIRD's eBGP neighbour, holds BIRD's MED and communities.
        let at_frr = frr.wait_any_route(net("192.0.2.0/24"), T)?;
        assert_eq!(at_frr.as_path, vec![65001]);
        assert_eq!(at_frr.med, Some(50));
        assert!(at_frr.has_community(65001, 100) && at_frr.has_community(65001, 200));
        assert_eq!(at_frr.large_communities.len(), 1);
        assert_eq!(at_frr.next_hop, Some(ip("10.0.12.1")));
        assert_eq!(at_frr.from, Some(ip("10.0.12.1")));
        // install_fib: FRR's zebra programs it into FRR's namespace.
        wait_for(
            T,
            "FRR's FIB route to 192.0.2.0/24",
            || nf.ip(&["route", "show", "192.0.2.0/24"]),
            |out| out.contains("via 10.0.12.1") && out.contains("proto bgp"),
        )?;

        // GoBGP, two ASes away, holds it with FRR's AS prepended (RFC 4271 §5.1.2), FRR's
        // address as next hop (§5.1.3), communities kept (RFC 1997) and no MED: a MED received
        // from a neighbouring AS is not passed on to another AS (§5.1.4).
        let at_gobgp = gobgp.wait_any_route(net("192.0.2.0/24"), T)?;
        assert_eq!(at_gobgp.as_path, vec![65002, 65001]);
        assert_eq!(at_gobgp.next_hop, Some(ip("10.0.23.2")));
        assert_eq!(at_gobgp.from, Some(ip("10.0.23.2")));
        assert!(at_gobgp.has_community(65001, 100));
        assert_eq!(at_gobgp.med, None);

        // Runtime origination on each daemon reaches the far end.
        gobgp.announce(net("100.64.0.0/24"), &RouteAttrs::new().community(65003, 7))?;
        let at_bird = bird.wait_any_route(net("100.64.0.0/24"), T)?;
        assert_eq!(at_bird.as_path, vec![65002, 65003]);
        assert!(at_bird.has_community(65003, 7));
        frr.announce(
            net("203.0.113.0/24"),
            &RouteAttrs::new().med(5).large_community(65002, 9, 9),
        )?;
        let r = bird.wait_route(net("203.0.113.0/24"), T, &|r| r.med == Some(5))?;
        assert_eq!(r.as_path, vec![65002]);
        assert_eq!(r.large_communities[0].to_string(), "65002:9:9");
        // Re-announcing replaces the attributes.
        frr.announce(net("203.0.113.0/24"), &RouteAttrs::new().med(6))?;
        bird.wait_route(net("203.0.113.0/24"), T, &|r| r.med == Some(6))?;

        // A withdraw at BIRD disappears from GoBGP; BIRD's other prefix stays.
        bird.withdraw(net("192.0.2.0/24"))?;
        gobgp.wait_no_route(net("192.0.2.0/24"), T)?;
        assert!(gobgp.route(net("198.51.100.0/24"))?.is_some());
        gobgp.withdraw(net("100.64.0.0/24"))?;
        bird.wait_no_route(net("100.64.0.0/24"), T)?;
        frr.withdraw(net("203.0.113.0/24"))?;
        gobgp.wait_no_route(net("203.0.113.0/24"), T)?;
        // Locally originated routes show as local.
        let own = bird
            .route(net("198.51.100.0/24"))?
            .expect("BIRD's own route");
        assert_eq!((own.from, own.next_hop), (None, None));
        Ok(())
    });
}

#[test]
fn ibgp_between_birds_on_a_segment_carries_local_pref() {
    scenario("ibgp", |dir| {
        let (na, nb) = (Netns::new("bird-a")?, Netns::new("bird-b")?);
        let lan = Segment::new("ibgp")?;
        lan.attach(&na, "eth0", &["10.0.0.1/24", "fd00:10::1/64"])?;
        lan.attach(&nb, "eth0", &["10.0.0.2/24", "fd00:10::2/64"])?;
        // The segment carries traffic at once, also IPv6 (no DAD wait).
        nb.run(&["ping", "-c1", "-W2", "10.0.0.1"])?;
        nb.run(&["ping", "-c1", "-W2", "fd00:10::1"])?;
        let attrs = RouteAttrs::new().local_pref(250).med(10);
        let a = Bird::start(
            &na,
            dir.path(),
            RouterConfig::parse("10.0.0.1", 65010)
                .neighbor(Neighbor::parse("10.0.0.2", 65010))
                .neighbor(Neighbor::parse("fd00:10::2", 65010))
                .originate("10.10.0.0/16", attrs.clone())
                .originate("2001:db8:10::/48", attrs),
        )?;
        let b = Bird::start(
            &nb,
            dir.path(),
            RouterConfig::parse("10.0.0.2", 65010)
                .neighbor(Neighbor::parse("10.0.0.1", 65010))
                .neighbor(Neighbor::parse("fd00:10::1", 65010))
                .install_fib(true),
        )?;
        b.wait_established(ip("10.0.0.1"), T)?;
        b.wait_established(ip("fd00:10::1"), T)?;
        a.wait_established(ip("10.0.0.2"), T)?;
        // RFC 4271 §5.1.5: LOCAL_PREF goes to internal peers; no AS is prepended inside the AS.
        for (prefix, nh) in [
            ("10.10.0.0/16", "10.0.0.1"),
            ("2001:db8:10::/48", "fd00:10::1"),
        ] {
            let r = b.wait_any_route(net(prefix), T)?;
            assert_eq!(r.local_pref, Some(250), "{r}");
            assert_eq!(r.med, Some(10), "{r}");
            assert!(r.as_path.is_empty(), "{r}");
            assert_eq!(r.next_hop, Some(ip(nh)), "{r}");
            assert_eq!(r.from, Some(ip(nh)), "{r}");
        }
        // install_fib: B's kernel routes towards A; A (FIB off) has no BIRD routes at all.
        let fib = wait_for(
            T,
            "B's FIB route to 10.10.0.0/16",
            || nb.ip(&["route", "show", "10.10.0.0/16"]),
            |out| out.contains("via 10.0.0.1"),
        )?;
        assert!(fib.contains("proto bird"), "{fib}");
        wait_for(
            T,
            "B's FIB route to 2001:db8:10::/48",
            || nb.ip(&["-6", "route", "show", "2001:db8:10::/48"]),
            |out| out.contains("via fd00:10::1"),
        )?;
        assert!(!na.ip(&["route", "show"])?.contains("proto bird"));
        Ok(())
    });
}

#[test]
fn raw_peer_handshakes_with_bird_and_exchanges_updates() {
    scenario("rawpeer", |dir| {
        let (nb, nr) = (Netns::new("bird")?, Netns::new("raw")?);
        Veth::new(&nb, "to-raw", &nr, "to-bird")
            .addr_a("10.0.9.1/24")
            .addr_b("10.0.9.2/24")
            .create()?;
        let bird = Bird::start(
            &nb,
            dir.path(),
            RouterConfig::parse("10.0.9.1", 65001)
                .neighbor(Neighbor::parse("10.0.9.2", 65099).passive())
                .originate(
                    "192.0.2.0/24",
                    RouteAttrs::new().med(50).community(65001, 100),
                ),
        )?;
        let mut raw = RawPeer::connect(&nr, SocketAddr::new(ip("10.0.9.1"), 179), T)?;
        let open = raw.handshake(&msg::open(65099, 90, "10.0.9.2".parse().unwrap()), T)?;
        assert_eq!(open.asn(), 65001);
        assert_eq!(
            open.router_id,
            "10.0.9.1".parse::<std::net::Ipv4Addr>().unwrap()
        );
        assert!(
            open.has_capability(65),
            "BIRD offers 4-octet ASNs (RFC 6793)"
        );
        bird.wait_established(ip("10.0.9.2"), T)?;

        // BIRD's UPDATE, read with the harness's own decoder.
        let u = raw.recv_update_for("192.0.2.0/24".parse().unwrap(), T)?;
        assert_eq!(u.origin(), Some(0));
        assert_eq!(
            u.as_path().map_err(|e| e2e::Error::RawPeer {
                peer: "bird".into(),
                detail: e.to_string(),
            })?,
            vec![65001]
        );
        assert_eq!(u.next_hop(), Some("10.0.9.1".parse().unwrap()));
        assert_eq!(u.med(), Some(50));
        assert_eq!(u.communities(), vec![(65001 << 16) | 100]);

        // Our hand-built UPDATE lands in BIRD's RIB.
        raw.send(
            &UpdateBuilder::new()
                .origin(0)
                .as_path(&[65099, 4_200_000_001])
                .next_hop("10.0.9.2".parse().unwrap())
                .med(42)
                .communities(&[(65099 << 16) | 1])
                .nlri("203.0.113.0/24".parse().unwrap())
                .build(),
        )?;
        let r = bird.wait_any_route(net("203.0.113.0/24"), T)?;
        assert_eq!(r.as_path, vec![65099, 4_200_000_001]);
        assert_eq!(r.med, Some(42));
        assert!(r.has_community(65099, 1));
        assert_eq!(r.from, Some(ip("10.0.9.2")));

        // An invalid ORIGIN is treated as a withdraw, the session stays (RFC 7606 §7.1).
        raw.send(
            &UpdateBuilder::new()
                .origin(7)
                .as_path(&[65099])
                .next_hop("10.0.9.2".parse().unwrap())
                .nlri("203.0.113.0/24".parse().unwrap())
                .build(),
        )?;
        bird.wait_no_route(net("203.0.113.0/24"), T)?;
        assert_eq!(
            bird.peer_state(ip("10.0.9.2"))?,
            e2e::SessionState::Established
        );

        // Garbage: a broken marker makes BIRD send NOTIFICATION 1/1 (Connection Not
        // Synchronized, RFC 4271 §6.1) and close.
        let mut garbage = msg::keepalive();
        garbage[3] = 0;
        raw.send(&garbage)?;
        let before_close = raw.wait_closed(T)?;
        let note = before_close
            .iter()
            .find(|m| m.msg_type() == msg_type::NOTIFICATION)
            .expect("a NOTIFICATION before the close");
        let (code, subcode, _) = note.notification()?;
        assert_eq!((code, subcode), (1, 1));
        Ok(())
    });
}

#[test]
fn namespaces_keep_links_sysctls_and_threads_inside() {
    scenario("netns", |_dir| {
        let (a, b) = (Netns::new("a")?, Netns::new("b")?);
        let link = Veth::new(&a, "gng-a0", &b, "gng-b0")
            .addr_a("10.0.4.1/30")
            .addr_a("fd00:4::1/64")
            .addr_b("10.0.4.2/30")
            .mtu(1400)
            .create()?;
        let shown = a.ip(&["-o", "link", "show", "gng-a0"])?;
        assert!(
            shown.contains("mtu 1400") && shown.contains("state UP"),
            "{shown}"
        );
        assert!(
            a.ip(&["-o", "addr", "show", "gng-a0"])?
                .contains("fd00:4::1/64")
        );
        assert_eq!(a.links()?, vec!["lo", "gng-a0"]);
        // A thread that entered A sees A's links; this thread does not.
        let inside =
            e2e::thread_in_netns(&a, || std::fs::read_to_string("/proc/thread-self/net/dev"))?
                .expect("read net/dev inside");
        assert!(inside.contains("gng-a0"), "{inside}");
        let here = std::fs::read_to_string("/proc/thread-self/net/dev").expect("read net/dev");
        assert!(!here.contains("gng-a0") && !here.contains("gng-b0"));
        // Sysctls are per namespace.
        a.sysctl("net.ipv4.ip_forward", "1")?;
        b.sysctl("net.ipv4.ip_forward", "0")?;
        assert_eq!(a.sysctl_get("net.ipv4.ip_forward")?, "1");
        assert_eq!(b.sysctl_get("net.ipv4.ip_forward")?, "0");
        a.sysctl("net/ipv4/conf/gng-a0/proxy_arp", "1")?;
        assert_eq!(a.sysctl_get("net/ipv4/conf/gng-a0/proxy_arp")?, "1");
        assert!(a.sysctl("net.ipv4.no_such_knob", "1").is_err());
        // Commands run inside.
        assert!(a.run(&["ip", "-o", "link"])?.contains("gng-a0"));
        b.run(&["ping", "-c1", "-W2", "10.0.4.1"])?;
        // Link down on one end is carrier loss on the other.
        link.set_up(e2e::End::A, false)?;
        wait_for(
            T,
            "B's end to lose carrier",
            || b.ip(&["-o", "link", "show", "gng-b0"]),
            |s| s.contains("NO-CARRIER"),
        )?;
        link.set_up(e2e::End::A, true)?;
        // Bad names and addresses are refused before reaching the kernel.
        assert!(
            Veth::new(&a, "much-too-long-name", &b, "x")
                .create()
                .is_err()
        );
        assert!(
            Veth::new(&a, "x1", &b, "x2")
                .addr_a("10.0.0.256/24")
                .create()
                .is_err()
        );
        Ok(())
    });
}

#[test]
fn gobgp_refuses_fib_installation_plainly() {
    scenario("gobgpfib", |dir| {
        let ns = Netns::new("gobgp")?;
        let err = Gobgp::start(
            &ns,
            dir.path(),
            RouterConfig::parse("10.0.0.1", 65003).install_fib(true),
        )
        .expect_err("GoBGP cannot install routes here");
        assert!(
            err.to_string()
                .contains("gobgp does not support installing routes"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn raw_peers_frame_split_and_coalesced_messages() {
    scenario("rawframe", |_dir| {
        let (na, nb) = (Netns::new("raw-a")?, Netns::new("raw-b")?);
        Veth::new(&na, "eth0", &nb, "eth0")
            .addr_a("10.0.5.1/30")
            .addr_b("10.0.5.2/30")
            .create()?;
        let listener = RawListener::bind(&na, SocketAddr::new(ip("10.0.5.1"), 1179))?;
        // The listener lives in A only: B's own loopback has nothing on that port.
        assert!(RawPeer::connect(&nb, SocketAddr::new(ip("127.0.0.1"), 1179), T).is_err());
        let mut client = RawPeer::connect(&nb, listener.local(), T)?;
        let mut server = listener.accept(T)?;
        assert_eq!(server.remote().ip(), ip("10.0.5.2"));
        let open = msg::open(65001, 90, "10.0.5.2".parse().unwrap());
        // One message in two writes, then two messages in one write.
        client.send(&open[..10])?;
        std::thread::sleep(Duration::from_millis(50));
        client.send(&open[10..])?;
        let mut two = msg::keepalive();
        two.extend(msg::notification(6, 2, b"bye"));
        client.send(&two)?;
        let got = server.recv(T)?;
        assert_eq!(got.bytes, open);
        assert!(got.marker_ok());
        assert_eq!(got.open()?.asn(), 65001);
        assert_eq!(server.recv(T)?.msg_type(), msg_type::KEEPALIVE);
        assert_eq!(server.recv(T)?.notification()?, (6, 2, b"bye".to_vec()));
        // Nothing more: a short wait times out instead of hanging.
        assert!(matches!(
            server.recv(Duration::from_millis(100)),
            Err(e2e::Error::Timeout { .. })
        ));
        // A length below 19 cannot be framed.
        let mut bad = msg::keepalive();
        bad[17] = 3;
        client.send(&bad)?;
        assert!(matches!(server.recv(T), Err(e2e::Error::RawPeer { .. })));
        Ok(())
    });
}

#[test]
fn route_reflection_attributes_parse_on_every_daemon() {
    scenario("rr", |dir| {
        let lan = Segment::new("rr")?;
        let hosts: Vec<Netns> = ["rr", "client-b", "client-f", "client-g"]
            .iter()
            .map(|l| Netns::new(l))
            .collect::<e2e::Result<_>>()?;
        for (i, h) in hosts.iter().enumerate() {
            lan.attach(h, "eth0", &[&format!("10.0.7.{}/24", i + 1)])?;
        }
        let cluster: std::net::Ipv4Addr = "10.255.0.1".parse().unwrap();
        let clients = ["10.0.7.2", "10.0.7.3", "10.0.7.4"];
        let mut rr_config = RouterConfig::parse("10.0.7.1", 65100).cluster_id(cluster);
        for c in clients {
            rr_config = rr_config.neighbor(Neighbor::parse(c, 65100).rr_client());
        }
        let rr = Bird::start(&hosts[0], dir.path(), rr_config)?;
        let client = |id: &str, prefix: &str| {
            RouterConfig::parse(id, 65100)
                .neighbor(Neighbor::parse("10.0.7.1", 65100))
                .originate(prefix, RouteAttrs::new().local_pref(120))
        };
        let bird = Bird::start(&hosts[1], dir.path(), client("10.0.7.2", "10.20.2.0/24"))?;
        let frr = Frr::start(&hosts[2], dir.path(), client("10.0.7.3", "10.20.3.0/24"))?;
        let gobgp = Gobgp::start(&hosts[3], dir.path(), client("10.0.7.4", "10.20.4.0/24"))?;
        for c in clients {
            rr.wait_established(ip(c), T)?;
        }
        // RFC 4456 §8: the reflector adds ORIGINATOR_ID (the originator's router id) and
        // prepends its CLUSTER_ID to CLUSTER_LIST; the next hop is left alone.
        let daemons: [(&dyn BgpDaemon, &str); 3] = [
            (&bird, "10.0.7.2"),
            (&frr, "10.0.7.3"),
            (&gobgp, "10.0.7.4"),
        ];
        for (daemon, own) in daemons {
            for (other_prefix, other) in [
                ("10.20.2.0/24", "10.0.7.2"),
                ("10.20.3.0/24", "10.0.7.3"),
                ("10.20.4.0/24", "10.0.7.4"),
            ] {
                if other == own {
                    continue;
                }
                let r = daemon.wait_any_route(net(other_prefix), T)?;
                let who = daemon.kind();
                assert_eq!(r.originator_id, Some(other.parse().unwrap()), "{who}: {r}");
                assert_eq!(r.cluster_list, vec![cluster], "{who}: {r}");
                assert_eq!(r.next_hop, Some(ip(other)), "{who}: {r}");
                assert_eq!(r.local_pref, Some(120), "{who}: {r}");
                assert_eq!(r.from, Some(ip("10.0.7.1")), "{who}: {r}");
            }
        }
        Ok(())
    });
}

/// What a test built, to be checked after its guards are gone.
#[derive(Default, Debug)]
struct Built {
    namespaces: Vec<String>,
    pids: Vec<i32>,
}

/// Build namespaces, links (one to a surviving witness), a segment, a BIRD and a stray process
/// that no `Proc` guards, recording their names and pids.
fn build_lab(
    witness: &Netns,
    dir: &Path,
    record: &Mutex<Built>,
) -> e2e::Result<(Bird, Segment, Netns)> {
    let doomed = Netns::new("doomed")?;
    let seg = Segment::new("doomed")?;
    Veth::new(witness, "gngw-veth", &doomed, "gngd-veth")
        .addr_a("10.0.8.1/30")
        .addr_b("10.0.8.2/30")
        .create()?;
    seg.attach(witness, "gngw-seg", &["10.0.6.1/24"])?;
    seg.attach(&doomed, "gngd-seg", &["10.0.6.2/24"])?;
    let bird = Bird::start(
        &doomed,
        dir,
        RouterConfig::parse("10.0.8.2", 65001).neighbor(Neighbor::parse("10.0.8.1", 65002)),
    )?;
    let stray: i32 = doomed
        .run(&["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"])?
        .trim()
        .parse()
        .expect("pid of the stray sleep");
    let mut r = record.lock().unwrap();
    r.namespaces = vec![doomed.name().to_string(), seg.netns().name().to_string()];
    r.pids = vec![bird.process().pid() as i32, stray];
    Ok((bird, seg, doomed))
}

/// Nothing of `built` remains: namespaces, markers, processes, and the veth ends they held.
fn assert_cleaned_up(built: &Built, witness: &Netns) -> e2e::Result<()> {
    assert_eq!(built.namespaces.len(), 2, "{built:?}");
    let listed = list_namespaces()?;
    for ns in &built.namespaces {
        assert!(!listed.contains(ns), "namespace {ns} survived: {listed:?}");
        assert!(
            !Path::new(e2e::netns::MARKER_DIR).join(ns).exists(),
            "marker of {ns}"
        );
    }
    for pid in &built.pids {
        assert!(!e2e::netns::is_alive(*pid), "pid {pid} survived");
    }
    // Deleting a namespace destroys its veths, which takes the peer ends in the witness too
    // (the kernel does it asynchronously).
    wait_for(
        T,
        "the witness's veth ends to vanish",
        || witness.links(),
        |links| !links.iter().any(|l| l.starts_with("gngw-")),
    )?;
    // And none of them ever existed in the machine's own namespace.
    let host = e2e::cmd::run(std::process::Command::new("ip").args(["-o", "link", "show"]))?;
    assert!(!host.contains("gngw-") && !host.contains("gngd-"), "{host}");
    Ok(())
}

#[test]
fn guards_clean_up_at_scope_end() {
    scenario("cleanup", |dir| {
        let witness = Netns::new("witness")?;
        let record = Mutex::new(Built::default());
        {
            let (bird, _seg, _doomed) = build_lab(&witness, dir.path(), &record)?;
            assert!(bird.process().is_running());
            assert!(witness.links()?.contains(&"gngw-veth".to_string()));
        }
        assert_cleaned_up(&record.lock().unwrap(), &witness)
    });
}

#[test]
fn guards_clean_up_when_the_test_body_panics() {
    scenario("panic", |dir| {
        let witness = Netns::new("witness")?;
        let record = Mutex::new(Built::default());
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let _lab = build_lab(&witness, dir.path(), &record).expect("lab");
            panic!("deliberate failure inside the lab");
        }));
        let payload = outcome.expect_err("the body panicked");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"deliberate failure inside the lab")
        );
        assert_cleaned_up(&record.lock().unwrap(), &witness)
    });
}

#[test]
fn failing_scenario_keeps_its_logs() {
    let kept = Mutex::new(None);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        scenario("keeplogs", |dir| {
            let ns = Netns::new("fails")?;
            let p = ns.spawn(
                "talker",
                &["sh", "-c", "echo evidence; exec sleep 60"],
                dir.path(),
            )?;
            wait_for(
                T,
                "the talker's output",
                || Ok(p.logs()),
                |l| l.contains("evidence"),
            )?;
            *kept.lock().unwrap() = Some((dir.path().to_path_buf(), ns.name().to_string()));
            Err(e2e::Error::Unsupported {
                daemon: "test",
                what: "success".into(),
            })
        })
    }));
    let msg = *outcome
        .expect_err("scenario fails")
        .downcast::<String>()
        .unwrap();
    let (path, ns) = kept.lock().unwrap().take().unwrap();
    assert!(msg.contains("test does not support success"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    let log = std::fs::read_to_string(path.join("talker.stdout")).unwrap();
    assert_eq!(log, "evidence\n");
    assert!(!list_namespaces().unwrap().contains(&ns));
    std::fs::remove_dir_all(path).unwrap();
}

#[test]
fn stale_namespaces_of_dead_processes_are_swept() {
    scenario("sweep", |_dir| {
        let live = Netns::new("live")?;
        let stale = Netns::new("stale")?;
        let name = stale.name().to_string();
        let stray: i32 = stale
            .run(&["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"])?
            .trim()
            .parse()
            .expect("pid");
        // Pretend the creator died without running its guards: hand the namespace to a process
        // that has exited, and drop the guard without its cleanup.
        let mut gone = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let dead_pid = gone.id();
        gone.wait().expect("reap true");
        std::fs::write(
            Path::new(e2e::netns::MARKER_DIR).join(&name),
            format!("{dead_pid} 1\n"),
        )
        .expect("rewrite marker");
        std::mem::forget(stale);
        // Another test process starting now may sweep it first; either way it must go.
        let swept = e2e::sweep_stale()?;
        assert!(!swept.contains(&live.name().to_string()));
        let listed = list_namespaces()?;
        assert!(!listed.contains(&name), "stale {name} survived: {swept:?}");
        assert!(
            listed.contains(&live.name().to_string()),
            "live namespace swept"
        );
        assert!(
            !e2e::netns::is_alive(stray),
            "the stale namespace's process survived"
        );
        Ok(())
    });
}
