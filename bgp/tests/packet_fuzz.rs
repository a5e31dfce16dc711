//! Randomized robustness: well over a million mutated messages through `frame_len` + `decode`
//! (bit flips, byte insertions and deletions, length-field tweaks, truncation, splicing of valid
//! messages of every type, 2- and 4-octet sessions). Nothing may panic, hang or take long, and no
//! panic may fire anywhere, not even one that `catch_unwind` would catch inside zettabgp.
//! A second test feeds random attribute sets and size limits to the encoders.

mod packet_support;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bgp::packet::{
    AfiSafi, Capability, CodecParams, GracefulRestartCap, Message, Notification, OpenMsg,
    RouteRefreshMsg, decode, encode_announce, encode_end_of_rib, encode_keepalive,
    encode_notification, encode_open, encode_route_refresh, encode_withdraw, frame_len,
    zettabgp_disagreements, zettabgp_panics_caught,
};
use bgp::types::{AsPath, AsSegment, Family, LargeCommunity, Origin, PathAttrs, RawAttr};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use packet_support::*;

const SEED: u64 = 0x6769_6e67_6572_0001; // "ginger" + 1
const MUTATIONS: usize = 1_200_000;

/// xorshift64*: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn byte(&mut self) -> u8 {
        const INTERESTING: [u8; 8] = [0, 1, 2, 0x7f, 0x80, 0xff, 32, 128];
        if self.chance(30) {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.next() as u8
        }
    }
}

static PANICS_SEEN: AtomicUsize = AtomicUsize::new(0);

/// Valid messages of every type: the captures plus what Ginger's encoders produce.
fn corpus() -> Vec<Vec<u8>> {
    let mut c: Vec<Vec<u8>> = [
        include_str!("fixtures/bird.hex"),
        include_str!("fixtures/bird-2octet.hex"),
        include_str!("fixtures/frr.hex"),
        include_str!("fixtures/gobgp.hex"),
    ]
    .iter()
    .flat_map(|t| fixtures(t))
    .map(|f| f.bytes)
    .collect();
    for line in include_str!("fixtures/zettabgp-cases.tsv").lines().skip(3) {
        c.push(unhex(line.split('\t').nth(1).unwrap()));
    }

    let mut a = PathAttrs::local(
        vec![1, 0xffff_ff01],
        vec![LargeCommunity {
            global: 65000,
            local1: 1,
            local2: 2,
        }],
    );
    a.as_path = AsPath {
        segments: vec![
            AsSegment::ConfedSequence(vec![65100]),
            AsSegment::Sequence(vec![65000, 4_200_000_001]),
            AsSegment::Set(vec![65010, 4_200_000_002]),
        ],
    };
    a.med = Some(5);
    a.local_pref = Some(100);
    a.atomic_aggregate = true;
    a.aggregator = Some((4_200_000_001, Ipv4Addr::new(10, 0, 0, 9)));
    a.originator_id = Some(Ipv4Addr::new(1, 1, 1, 1));
    a.cluster_list = vec![Ipv4Addr::new(2, 2, 2, 2)];
    a.other = vec![
        RawAttr {
            flags: 0xc0,
            type_code: 16,
            value: vec![0, 2, 0, 1, 0, 0, 0, 1],
        },
        RawAttr {
            flags: 0xc0,
            type_code: 99,
            value: vec![1, 2, 3],
        },
    ];
    let v4: Vec<IpNet> = (0..40u32)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()))
        .collect();
    let v6: Vec<IpNet> = (0..20u128)
        .map(|i| {
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 64)), 64).unwrap(),
            )
        })
        .collect();
    for four in [false, true] {
        let p = params(four);
        let mut out = Vec::new();
        a.next_hop = Some("192.0.2.1".parse().unwrap());
        encode_announce(&p, &a, &v4, &mut out);
        a.next_hop = Some("2001:db8::1".parse().unwrap());
        a.link_local_next_hop = Some("fe80::1".parse().unwrap());
        encode_announce(&p, &a, &v6, &mut out);
        a.link_local_next_hop = None;
        encode_withdraw(&p, &[v4.clone(), v6.clone()].concat(), &mut out);
        encode_end_of_rib(&p, Family::Ipv4Unicast, &mut out);
        encode_end_of_rib(&p, Family::Ipv6Unicast, &mut out);
        let mut rest = &out[..];
        while let Ok(Some(n)) = frame_len(rest, 4096) {
            c.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
    }
    // A hand-made UPDATE carrying both families and AS4 attributes for 2-octet sessions.
    c.push(update(
        &[8, 10],
        &[
            attr(
                0x90,
                14,
                &[
                    0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 32,
                    0x20, 1, 0xd, 0xb8,
                ],
            ),
            attr(0x80, 15, &[0, 2, 1, 48, 0x20, 1, 0xd, 0xb8, 0, 1]),
            attr(0x40, 1, &[0]),
            attr(0x40, 2, &[2, 2, 0xfd, 0xe9, 0x5b, 0xa0]),
            attr(0x40, 3, &[10, 0, 0, 1]),
            attr(0xc0, 7, &[0x5b, 0xa0, 10, 0, 0, 9]),
            attr(0xc0, 17, &[2, 1, 0xfa, 0x56, 0xea, 0x01]),
            attr(0xc0, 18, &[0xfa, 0x56, 0xea, 0x01, 10, 0, 0, 9]),
        ]
        .concat(),
        NLRI_10_1,
    ));
    let mut out = Vec::new();
    encode_open(
        &OpenMsg {
            version: 4,
            my_as: 23456,
            hold_time: 90,
            bgp_id: Ipv4Addr::new(10, 0, 0, 1),
            capabilities: vec![
                Capability::MultiProtocol(AfiSafi { afi: 2, safi: 1 }),
                Capability::GracefulRestart(GracefulRestartCap {
                    restarting: true,
                    notification: true,
                    restart_time: 120,
                    families: vec![(AfiSafi { afi: 1, safi: 1 }, true)],
                }),
                Capability::FourOctetAs(4_200_000_001),
                Capability::Fqdn {
                    hostname: "node-1".into(),
                    domain: "cluster.local".into(),
                },
                Capability::Unknown {
                    code: 200,
                    value: vec![9; 4],
                },
            ],
        },
        &mut out,
    );
    encode_notification(&Notification::new(6, 2, b"\x04bye!".to_vec()), &mut out);
    encode_route_refresh(
        &RouteRefreshMsg {
            afi_safi: AfiSafi { afi: 2, safi: 1 },
            subtype: 0,
        },
        &mut out,
    );
    encode_keepalive(&mut out);
    let mut rest = &out[..];
    while let Ok(Some(n)) = frame_len(rest, 4096) {
        c.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    c
}

/// Apply one to four random mutations to a copy of a corpus message.
fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut m = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = m.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                m[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                m[i] = rng.byte();
            }
            2 => {
                let at = rng.below(len + 1);
                for _ in 0..1 + rng.below(4) {
                    let b = rng.byte();
                    m.insert(at.min(m.len()), b);
                }
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = (1 + rng.below(4)).min(len - at);
                m.drain(at..at + n);
            }
            4 if len > 1 => {
                // Nudge a two-octet big-endian field (header or body lengths live at the front).
                let at = if rng.chance(50) {
                    16 + rng.below(8)
                } else {
                    rng.below(len - 1)
                };
                if at + 1 < len {
                    let v = u16::from_be_bytes([m[at], m[at + 1]]);
                    let delta = [1i32, -1, 2, -2, 3, 255, -255, 4096][rng.below(8)];
                    let nv = (i32::from(v) + delta).clamp(0, 65535) as u16;
                    m[at..at + 2].copy_from_slice(&nv.to_be_bytes());
                }
            }
            5 if len > 0 => {
                // Nudge a one-octet field (attribute and prefix lengths).
                let i = rng.below(len);
                m[i] = m[i].wrapping_add([1u8, 255, 2, 254, 8, 248][rng.below(6)]);
            }
            6 => m.truncate(rng.below(len + 1)),
            7 => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                m.truncate(cut);
                m.extend_from_slice(&other[from..]);
            }
            8 if len > 2 => {
                let at = rng.below(len);
                let n = (1 + rng.below(16)).min(len - at);
                let chunk = m[at..at + n].to_vec();
                m.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    // Usually keep the header consistent, so the mutation reaches the body decoders.
    if m.len() >= 19 && rng.chance(80) {
        let n = m.len().min(65535) as u16;
        m[16..18].copy_from_slice(&n.to_be_bytes());
        m[..16].fill(0xff);
    }
    m
}

#[derive(Default, Debug)]
struct Tally {
    need_more: usize,
    header_errors: usize,
    resets: usize,
    updates: usize,
    treat_as_withdraw: usize,
    discards: usize,
    other_ok: usize,
}

#[test]
fn a_million_mutated_messages_never_panic_or_hang() {
    let corpus = corpus();
    assert!(corpus.len() > 60, "corpus of {}", corpus.len());
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        PANICS_SEEN.fetch_add(1, Ordering::SeqCst);
        eprintln!("panic during fuzzing: {info}");
    }));
    let zetta_before = zettabgp_panics_caught();
    let disagreements_before = zettabgp_disagreements();
    let param_sets = [
        params(true),
        params(false),
        CodecParams {
            max_message_len: 65535,
            ..params(true)
        },
        CodecParams {
            families: vec![Family::Ipv4Unicast],
            ..params(false)
        },
    ];
    let mut rng = Rng(SEED);
    let mut tally = Tally::default();
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for i in 0..MUTATIONS {
        let m = mutate(&mut rng, &corpus);
        let p = &param_sets[i % param_sets.len()];
        let t = thread_cpu_time();
        let framed = frame_len(&m, p.max_message_len);
        let result = match framed {
            Ok(Some(n)) => Some(decode(p, &m[..n])),
            Ok(None) => None,
            Err(_) => {
                tally.header_errors += 1;
                // decode must be just as safe on frames a caller failed to cut.
                let _ = decode(p, &m);
                continue;
            }
        };
        slowest = slowest.max(thread_cpu_time().saturating_sub(t));
        match result {
            None => tally.need_more += 1,
            Some(Err(_)) => tally.resets += 1,
            Some(Ok(Message::Update(u))) => {
                tally.updates += 1;
                tally.treat_as_withdraw += usize::from(u.treat_as_withdraw.is_some());
                tally.discards += usize::from(!u.discarded.is_empty());
            }
            Some(Ok(_)) => tally.other_ok += 1,
        }
    }
    let elapsed = started.elapsed();
    panic::set_hook(default_hook);
    let zetta_panics = zettabgp_panics_caught() - zetta_before;
    let disagreements = zettabgp_disagreements() - disagreements_before;
    println!(
        "seed {SEED:#x}: {MUTATIONS} mutated messages in {elapsed:?} (slowest {slowest:?}), \
         zettabgp panics caught: {zetta_panics}, zettabgp disagreements: {disagreements}, \
         panic hook fired: {}\n{tally:#?}",
        PANICS_SEEN.load(Ordering::SeqCst)
    );
    assert_eq!(
        PANICS_SEEN.load(Ordering::SeqCst),
        0,
        "a panic fired during decoding"
    );
    assert_eq!(zetta_panics, 0, "zettabgp panicked on a validated message");
    assert_eq!(
        disagreements, 0,
        "zettabgp rejected or misread a validated message"
    );
    // CPU time, not wall time: a busy shared machine preempts the test, a hang does not stop.
    assert!(
        slowest < Duration::from_secs(1),
        "one decode used {slowest:?} of CPU: a hang"
    );
    // The mutations must reach every outcome, or the test is not exercising the decoder.
    assert!(tally.updates > 100_000 && tally.treat_as_withdraw > 1_000 && tally.discards > 100);
    assert!(tally.resets > 10_000 && tally.header_errors > 10_000 && tally.other_ok > 10_000);
}

#[test]
fn random_attribute_sets_always_encode_within_the_limit_and_decode_back() {
    let mut rng = Rng(SEED ^ 0xe4c0de);
    for round in 0..3000 {
        let four = rng.chance(50);
        let max = [4096usize, 4096, 65535, 200, 1000][rng.below(5)];
        let p = CodecParams {
            max_message_len: max,
            ..params(four)
        };
        let asn = |rng: &mut Rng| {
            if rng.chance(30) {
                4_200_000_000 + rng.below(1000) as u32
            } else {
                1 + rng.below(65000) as u32
            }
        };
        let mut a = PathAttrs::local(
            (0..rng.below(40)).map(|_| rng.next() as u32).collect(),
            (0..rng.below(5))
                .map(|_| LargeCommunity {
                    global: rng.next() as u32,
                    local1: 1,
                    local2: 2,
                })
                .collect(),
        );
        a.origin = [Origin::Igp, Origin::Egp, Origin::Incomplete][rng.below(3)];
        a.as_path = AsPath {
            segments: (0..rng.below(4))
                .map(|_| {
                    // At most 255: longer runs come back split into 255-ASN segments.
                    let asns: Vec<u32> = (0..1 + rng.below(255)).map(|_| asn(&mut rng)).collect();
                    if rng.chance(80) {
                        AsSegment::Sequence(asns)
                    } else {
                        AsSegment::Set(asns)
                    }
                })
                .collect(),
        };
        a.med = rng.chance(50).then(|| rng.next() as u32);
        // A 4-octet aggregator: with a 2-octet one a 2-octet receiver must ignore AS4_PATH
        // (RFC 6793 §4.2.3), so the path would not come back unchanged.
        a.aggregator = rng.chance(30).then(|| {
            (
                4_200_000_000 + rng.below(1000) as u32,
                Ipv4Addr::new(10, 0, 0, 1),
            )
        });
        let v6 = rng.chance(40);
        a.next_hop = Some(if v6 {
            "2001:db8::1".parse().unwrap()
        } else {
            "192.0.2.1".parse().unwrap()
        });
        if v6 && rng.chance(50) {
            a.link_local_next_hop = Some("fe80::1".parse().unwrap());
        }
        let prefixes: Vec<IpNet> = (0..1 + rng.below(2000))
            .map(|_| {
                if v6 {
                    let len = rng.below(129) as u8;
                    IpNet::V6(
                        Ipv6Net::new(Ipv6Addr::from(u128::from(rng.next()) << 64), len)
                            .unwrap()
                            .trunc(),
                    )
                } else {
                    let len = rng.below(33) as u8;
                    IpNet::V4(
                        Ipv4Net::new(Ipv4Addr::from(rng.next() as u32), len)
                            .unwrap()
                            .trunc(),
                    )
                }
            })
            .collect();
        let mut out = Vec::new();
        let n = encode_announce(&p, &a, &prefixes, &mut out);
        let mut got = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let len = frame_len(rest, max).unwrap().expect("whole message");
            let Ok(Message::Update(u)) = decode(&p, &rest[..len]) else {
                panic!("round {round}: undecodable")
            };
            assert_eq!(u.treat_as_withdraw, None, "round {round}");
            assert_eq!(*u.announced[0].attrs, a, "round {round}");
            got.extend(u.announced[0].prefixes.iter().copied());
            rest = &rest[len..];
        }
        if n > 0 {
            assert_eq!(got, prefixes, "round {round}");
        } else {
            assert!(
                out.is_empty(),
                "round {round}: nothing written when nothing fits"
            );
        }
        out.clear();
        let n = encode_withdraw(&p, &prefixes, &mut out);
        let mut count = 0;
        let mut rest = &out[..];
        while !rest.is_empty() {
            let len = frame_len(rest, max).unwrap().expect("whole message");
            let Ok(Message::Update(u)) = decode(&p, &rest[..len]) else {
                panic!("round {round}")
            };
            count += u.withdrawn.len();
            rest = &rest[len..];
        }
        assert!(n > 0 && count == prefixes.len(), "round {round}");
    }
}

/// CPU time used by the calling thread (immune to preemption on a loaded machine).
#[allow(unsafe_code)]
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
