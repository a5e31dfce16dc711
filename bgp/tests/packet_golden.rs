//! Golden byte vectors, both directions, from messages BIRD 2.0.12, FRR 8.4.4 and GoBGP 3 really
//! sent (captured by `tests/fixtures/capture/capture.sh` inside network namespaces).
//!
//! Decode: every captured message frames and decodes, and selected ones decode to exactly the
//! values written out here. Encode: where Ginger's canonical layout matches the sender's (BIRD:
//! attributes in type order, MP_REACH first with a two-octet length), Ginger's encoder must
//! reproduce the captured bytes; for every announcement of every daemon, decode(encode(x)) == x.

mod packet_support;

use std::net::Ipv4Addr;

use bgp::packet::{
    AddPathEntry, AfiSafi, Capability, CodecParams, GracefulRestartCap, Message, Notification,
    OpenMsg, UpdateMsg, encode_announce, encode_end_of_rib, encode_keepalive, encode_notification,
    encode_open, encode_withdraw,
};
use bgp::types::{AsPath, Family, LargeCommunity, Origin, PathAttrs};
use ipnet::IpNet;
use packet_support::*;

const BIRD: &str = include_str!("fixtures/bird.hex");
const BIRD_2OCTET: &str = include_str!("fixtures/bird-2octet.hex");
const FRR: &str = include_str!("fixtures/frr.hex");
const GOBGP: &str = include_str!("fixtures/gobgp.hex");

fn all() -> Vec<(&'static str, bool, Vec<Fixture>)> {
    vec![
        ("bird", true, fixtures(BIRD)),
        ("bird-2octet", false, fixtures(BIRD_2OCTET)),
        ("frr", true, fixtures(FRR)),
        ("gobgp", true, fixtures(GOBGP)),
    ]
}

fn decoded(four_octet: bool, bytes: &[u8]) -> Message {
    frame_and_decode(&params(four_octet), bytes).expect("captured message decodes")
}

fn decoded_update(four_octet: bool, bytes: &[u8]) -> UpdateMsg {
    match decoded(four_octet, bytes) {
        Message::Update(u) => u,
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn decoded_open(bytes: &[u8]) -> OpenMsg {
    match decoded(true, bytes) {
        Message::Open(o) => o,
        other => panic!("not an OPEN: {other:?}"),
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn every_captured_message_frames_and_decodes_cleanly() {
    let mut count = 0;
    for (daemon, four, fx) in all() {
        for f in &fx {
            let m = decoded(four, &f.bytes);
            if let Message::Update(u) = &m {
                assert_eq!(u.treat_as_withdraw, None, "{}", f.name);
                assert!(u.discarded.is_empty(), "{}: {:?}", f.name, u.discarded);
            }
            count += 1;
        }
        assert!(
            fx.len() >= 7,
            "{daemon}: only {} messages captured",
            fx.len()
        );
    }
    assert!(count >= 37);
}

#[test]
fn bird_open_decodes_to_its_capabilities() {
    let o = decoded_open(fixture(&fixtures(BIRD), "bird-01-open"));
    assert_eq!(
        o,
        OpenMsg {
            version: 4,
            my_as: 65001,
            hold_time: 240,
            bgp_id: Ipv4Addr::new(10, 99, 0, 1),
            capabilities: vec![
                Capability::MultiProtocol(AfiSafi { afi: 1, safi: 1 }),
                Capability::MultiProtocol(AfiSafi { afi: 2, safi: 1 }),
                Capability::RouteRefresh,
                Capability::GracefulRestart(GracefulRestartCap {
                    restarting: false,
                    notification: false,
                    restart_time: 120,
                    families: vec![],
                }),
                Capability::FourOctetAs(65001),
                Capability::EnhancedRouteRefresh,
                Capability::LongLivedGracefulRestart(vec![]),
            ],
        }
    );
}

#[test]
fn frr_open_with_fqdn_and_one_parameter_per_capability_decodes() {
    // zettabgp rejects this whole OPEN because of the FQDN capability (trap 7).
    let o = decoded_open(fixture(&fixtures(FRR), "frr-01-open"));
    assert_eq!((o.my_as, o.hold_time, o.asn()), (65002, 180, 65002));
    let want = [
        Capability::MultiProtocol(AfiSafi { afi: 2, safi: 1 }),
        Capability::Unknown {
            code: 128,
            value: vec![],
        },
        Capability::ExtendedMessage,
        Capability::AddPath(vec![
            AddPathEntry {
                afi_safi: AfiSafi { afi: 1, safi: 1 },
                send_receive: 1,
            },
            AddPathEntry {
                afi_safi: AfiSafi { afi: 2, safi: 1 },
                send_receive: 1,
            },
        ]),
        Capability::Fqdn {
            hostname: "frr-cap".into(),
            domain: String::new(),
        },
        Capability::GracefulRestart(GracefulRestartCap {
            restarting: true,
            notification: true,
            restart_time: 120,
            families: vec![],
        }),
    ];
    for c in want {
        assert!(
            o.capabilities.contains(&c),
            "missing {c:?} in {:?}",
            o.capabilities
        );
    }
    assert_eq!(o.capabilities.len(), 11);
}

#[test]
fn gobgp_open_decodes_fqdn_and_extended_next_hop() {
    let o = decoded_open(fixture(&fixtures(GOBGP), "gobgp-01-open"));
    assert_eq!(o.capabilities[0], Capability::RouteRefresh);
    assert!(matches!(&o.capabilities[1], Capability::Fqdn { domain, .. } if domain.is_empty()));
    assert_eq!(o.capabilities[4], Capability::FourOctetAs(65003));
    assert_eq!(
        o.capabilities[5],
        Capability::ExtendedNextHop(vec![(1, 1, 2)])
    );
}

#[test]
fn opens_reencode_to_the_captured_bytes() {
    for (file, name) in [
        (BIRD, "bird-01-open"),
        (BIRD_2OCTET, "bird-2octet-01-open"),
        (GOBGP, "gobgp-01-open"),
    ] {
        let fx = fixtures(file);
        let want = fixture(&fx, name);
        let mut out = Vec::new();
        encode_open(&decoded_open(want), &mut out);
        assert_bytes_eq(name, &out, want);
    }
    // FRR puts each capability in its own parameter; Ginger uses one: compare decoded values.
    let frr = decoded_open(fixture(&fixtures(FRR), "frr-01-open"));
    let mut out = Vec::new();
    encode_open(&frr, &mut out);
    assert_eq!(decoded_open(&out), frr);
}

#[test]
fn bird_ipv4_update_decodes_communities_in_order() {
    let u = decoded_update(true, fixture(&fixtures(BIRD), "bird-04-update"));
    let mut want = PathAttrs::local(
        vec![(65001 << 16) | 100, (65001 << 16) | 200],
        vec![LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2,
        }],
    );
    want.as_path = AsPath::sequence(vec![65001]);
    want.next_hop = Some("10.99.0.1".parse().unwrap());
    want.med = Some(50);
    assert_eq!(u.announced.len(), 1);
    assert_eq!(*u.announced[0].attrs, want);
    assert_eq!(u.announced[0].prefixes, vec![net("192.0.2.0/24")]);
}

#[test]
fn bird_ipv6_update_keeps_the_link_local_next_hop() {
    // RFC 2545 §3: a 32-byte next hop is global + link-local; zettabgp drops the second half.
    let u = decoded_update(true, fixture(&fixtures(BIRD), "bird-06-update"));
    let a = &u.announced[0].attrs;
    assert_eq!(a.next_hop, Some("2001:db8:99::1".parse().unwrap()));
    assert!(
        a.link_local_next_hop
            .expect("link-local")
            .is_unicast_link_local()
    );
    assert_eq!(a.communities, vec![(65001 << 16) | 600]);
    assert_eq!(u.announced[0].prefixes, vec![net("2001:db8:1::/48")]);
}

#[test]
fn two_octet_session_merges_as4_path_rfc6793_4_2_3() {
    // BIRD as AS 4200000001 towards a 2-octet peer: AS_PATH [23456] plus AS4_PATH [4200000001].
    let fx = fixtures(BIRD_2OCTET);
    let bytes = fixture(&fx, "bird-2octet-03-update");
    assert!(
        hex(bytes).contains("40020402015ba0"),
        "AS_PATH carries AS_TRANS"
    );
    let u = decoded_update(false, bytes);
    assert_eq!(
        u.announced[0].attrs.as_path,
        AsPath::sequence(vec![4_200_000_001])
    );
    assert_eq!(u.announced[0].attrs.origin, Origin::Igp);
}

#[test]
fn end_of_rib_and_withdrawals_decode() {
    let fx = fixtures(BIRD);
    assert_eq!(
        decoded_update(true, fixture(&fx, "bird-05-update")).end_of_rib,
        Some(Family::Ipv4Unicast)
    );
    assert_eq!(
        decoded_update(true, fixture(&fx, "bird-08-update")).end_of_rib,
        Some(Family::Ipv6Unicast)
    );
    let w = decoded_update(true, fixture(&fx, "bird-10-update"));
    assert_eq!(
        w.withdrawn,
        vec![
            net("198.51.100.0/25"),
            net("192.0.2.0/24"),
            net("203.0.113.7/32")
        ]
    );
    let w6 = decoded_update(true, fixture(&fx, "bird-09-update"));
    assert_eq!(
        w6.withdrawn,
        vec![net("2001:db8:1::/48"), net("2001:db8:1:ff::/64")]
    );
    match decoded(true, fixture(&fx, "bird-11-notification")) {
        Message::Notification(n) => assert_eq!(n, Notification::new(1, 2, vec![0x13, 0x88])),
        other => panic!("{other:?}"),
    }
}

/// Re-encode one captured single-group announcement with Ginger's encoder.
fn reencode(p: &CodecParams, u: &UpdateMsg) -> Vec<u8> {
    assert_eq!(u.announced.len(), 1);
    let mut out = Vec::new();
    let n = encode_announce(p, &u.announced[0].attrs, &u.announced[0].prefixes, &mut out);
    assert_eq!(n, 1);
    out
}

#[test]
fn bird_announcements_reencode_byte_for_byte() {
    for (file, four, names) in [
        (
            BIRD,
            true,
            &[
                "bird-03-update",
                "bird-04-update",
                "bird-06-update",
                "bird-07-update",
            ][..],
        ),
        (
            BIRD_2OCTET,
            false,
            &[
                "bird-2octet-03-update",
                "bird-2octet-04-update",
                "bird-2octet-06-update",
            ][..],
        ),
    ] {
        let fx = fixtures(file);
        for name in names {
            let want = fixture(&fx, name);
            let p = params(four);
            let got = reencode(&p, &decoded_update(four, want));
            assert_bytes_eq(name, &got, want);
        }
    }
}

#[test]
fn every_announcement_survives_encode_then_decode() {
    for (daemon, four, fx) in all() {
        let p = params(four);
        for f in &fx {
            let Message::Update(u) = decoded(four, &f.bytes) else {
                continue;
            };
            for a in &u.announced {
                let mut out = Vec::new();
                encode_announce(&p, &a.attrs, &a.prefixes, &mut out);
                let back = decoded_update(four, &out);
                assert_eq!(back.announced, vec![a.clone()], "{daemon} {}", f.name);
            }
        }
    }
}

#[test]
fn withdrawals_end_of_rib_keepalive_and_notification_encode_like_the_daemons() {
    let bird = fixtures(BIRD);
    let frr = fixtures(FRR);
    let p = params(true);
    let mut out = Vec::new();
    encode_withdraw(
        &p,
        &[
            net("198.51.100.0/25"),
            net("192.0.2.0/24"),
            net("203.0.113.7/32"),
        ],
        &mut out,
    );
    assert_bytes_eq("IPv4 withdraw", &out, fixture(&bird, "bird-10-update"));
    out.clear();
    encode_withdraw(
        &p,
        &[net("2001:db8:1::/48"), net("2001:db8:1:ff::/64")],
        &mut out,
    );
    assert_bytes_eq("IPv6 withdraw", &out, fixture(&bird, "bird-09-update"));
    out.clear();
    encode_withdraw(&p, &[net("198.51.100.0/25")], &mut out);
    assert_bytes_eq("FRR IPv4 withdraw", &out, fixture(&frr, "frr-06-update"));
    out.clear();
    encode_withdraw(&p, &[net("2001:db8:2::/48")], &mut out);
    assert_bytes_eq("FRR IPv6 withdraw", &out, fixture(&frr, "frr-07-update"));
    out.clear();
    encode_end_of_rib(&p, Family::Ipv4Unicast, &mut out);
    assert_bytes_eq("IPv4 EoR", &out, fixture(&bird, "bird-05-update"));
    out.clear();
    encode_end_of_rib(&p, Family::Ipv6Unicast, &mut out);
    assert_bytes_eq("IPv6 EoR", &out, fixture(&bird, "bird-08-update"));
    out.clear();
    encode_keepalive(&mut out);
    assert_bytes_eq("KEEPALIVE", &out, fixture(&bird, "bird-02-keepalive"));
    out.clear();
    encode_notification(&Notification::new(1, 2, vec![0x13, 0x88]), &mut out);
    assert_bytes_eq("NOTIFICATION", &out, fixture(&bird, "bird-11-notification"));
}
