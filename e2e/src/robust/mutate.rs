//! A seeded generator and a mutator of valid BGP messages for the randomized abuse scenario,
//! with a corpus of valid messages for a 4-octet iBGP session with the lab's raw peer.
//!
//! Owns: reproducible randomness (`Rng`, xorshift64*), the edits (`mutate`) and whether they
//! may break framing (`Framing`). Must not: send anything (the scenario does).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::lab::{RAW_ADDR, RAW_ROUTER_ID};
use crate::rawpeer::msg::{self, UpdateBuilder};

/// Seeded xorshift64* generator: the abuse test is reproducible from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced, xorshift has no zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u8) -> bool {
        self.below(100) < percent as usize
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

/// Rewrite the header's length field to the message's real length (saturating).
pub fn fix_length(message: &mut [u8]) {
    if message.len() >= msg::HEADER_LEN {
        let len = message.len().min(u16::MAX as usize) as u16;
        message[16..18].copy_from_slice(&len.to_be_bytes());
    }
}

/// Whether mutants may break the 19-octet header framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Every mutant is at least a header long and its length field tells its real size, so a
    /// receiver always sees whole messages (and whatever follows stays in step).
    Keep,
    /// Length fields may lie and messages may be shorter than a header three times in four.
    MayBreak,
}

/// One to four random edits of `message`, mostly in the body: bit flips, byte overwrites
/// (lengths and flags are favoured: they steer decoders), insertions, deletions, truncation,
/// duplication. With
/// `Framing::MayBreak` the header length is still corrected three times in four, so most
/// mutants reach the body decoders instead of stopping at the framing check.
pub fn mutate(rng: &mut Rng, message: &[u8], framing: Framing) -> Vec<u8> {
    let mut m = message.to_vec();
    for _ in 0..=rng.below(4) {
        if m.is_empty() {
            m.push(rng.byte());
        }
        // Mostly the body: a damaged marker or type ends the message at the header check.
        let at = if m.len() > msg::HEADER_LEN && rng.chance(85) {
            msg::HEADER_LEN + rng.below(m.len() - msg::HEADER_LEN)
        } else {
            rng.below(m.len())
        };
        match rng.below(8) {
            0 => m[at] ^= 1 << rng.below(8),
            1 => m[at] = rng.byte(),
            // Small values in the body: lengths and counts that almost fit.
            2 => {
                let body = m.len().saturating_sub(msg::HEADER_LEN);
                let at = (msg::HEADER_LEN + rng.below(body.max(1))).min(m.len() - 1);
                m[at] = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xff][rng.below(8)];
            }
            3 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                m.splice(at..at, bytes);
            }
            4 => {
                let end = (at + 1 + rng.below(8)).min(m.len());
                m.drain(at..end);
            }
            5 => m.truncate(at.max(1)),
            6 => {
                let end = (at + 1 + rng.below(16)).min(m.len());
                let chunk = m[at..end].to_vec();
                m.splice(at..at, chunk);
            }
            // Attribute flags: optional/transitive/partial/extended-length bits.
            _ => m[at] ^= [0x80, 0x40, 0x20, 0x10][rng.below(4)],
        }
    }
    match framing {
        Framing::Keep => {
            while m.len() < msg::HEADER_LEN {
                m.push(rng.byte());
            }
            fix_length(&mut m);
        }
        Framing::MayBreak => {
            if rng.below(4) != 0 {
                fix_length(&mut m);
            }
        }
    }
    m
}

/// A corpus of valid messages for a 4-octet iBGP session with the raw peer: UPDATEs with every
/// attribute Ginger handles (and some it only carries), withdrawals, End-of-RIB, KEEPALIVE and
/// ROUTE-REFRESH. Prefixes come from 100.64.0.0/10 so they cannot shadow the lab's own.
pub fn abuse_corpus(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut prefix = || -> Ipv4Net {
        let len = 16 + rng.below(17) as u8;
        let addr = Ipv4Addr::from(0x6440_0000 | (rng.next_u64() as u32 & 0x003F_FFFF));
        Ipv4Net::new(addr, len).expect("length ≤ 32").trunc()
    };
    let base = || {
        UpdateBuilder::new()
            .origin(0)
            .as_path(&[])
            .next_hop(RAW_ADDR)
            .local_pref(100)
    };
    let (p1, p2, p3, p4) = (prefix(), prefix(), prefix(), prefix());
    let mp_reach_v6 = {
        // AFI 2 SAFI 1, next hop length 16, fd00::3, reserved, 2001:db8::/32.
        let mut v = vec![0, 2, 1, 16];
        v.extend_from_slice(
            &"fd00::3"
                .parse::<std::net::Ipv6Addr>()
                .expect("literal")
                .octets(),
        );
        v.push(0);
        v.extend_from_slice(&[32, 0x20, 0x01, 0x0d, 0xb8]);
        v
    };
    let mp_unreach_v4 = vec![0, 1, 1, 24, 100, 64, 9];
    vec![
        base().nlri(p1).build(),
        base()
            .med(7)
            .communities(&[(65001 << 16) | 1, 0xFFFF_FF01])
            .nlri(p2)
            .nlri(p3)
            .build(),
        base()
            .raw_attr(
                0xC0,
                msg::attr_type::LARGE_COMMUNITY,
                &[0, 0, 0xFD, 0xE9, 0, 0, 0, 1, 0, 0, 0, 2],
            )
            .raw_attr(0x80, msg::attr_type::ORIGINATOR_ID, &RAW_ROUTER_ID.octets())
            .raw_attr(0x80, msg::attr_type::CLUSTER_LIST, &[10, 81, 0, 9])
            .nlri(p4)
            .build(),
        // ATOMIC_AGGREGATE, AGGREGATOR (4-octet), an unknown optional transitive attribute.
        base()
            .raw_attr(0x40, 6, &[])
            .raw_attr(0xC0, 7, &[0, 0, 0xFD, 0xE9, 10, 81, 0, 3])
            .raw_attr(0xC0, 99, &[1, 2, 3, 4, 5])
            .nlri(p1)
            .build(),
        UpdateBuilder::new()
            .origin(0)
            .as_path(&[])
            .local_pref(100)
            .raw_attr(0x80, msg::attr_type::MP_REACH_NLRI, &mp_reach_v6)
            .build(),
        UpdateBuilder::new()
            .raw_attr(0x80, msg::attr_type::MP_UNREACH_NLRI, &mp_unreach_v4)
            .build(),
        UpdateBuilder::new().withdraw(p1).withdraw(p2).build(),
        UpdateBuilder::new().build(),
        msg::keepalive(),
        msg::frame(msg::msg_type::ROUTE_REFRESH, &[0, 1, 0, 1]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::cases::hex;
    use crate::robust::lab::raw_announce;

    #[test]
    fn mutations_are_reproducible_and_change_messages() {
        let base = raw_announce("10.1.0.0/16".parse().unwrap());
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|_| mutate(&mut rng, &base, Framing::MayBreak))
                .collect::<Vec<_>>()
        };
        let (a, b) = (run(7), run(7));
        assert_eq!(a, b);
        assert_ne!(a, run(8));
        let changed = a.iter().filter(|m| **m != base).count();
        assert!(changed > 150, "only {changed} of 200 mutants differ");
        let framed = a
            .iter()
            .filter(|m| m.len() >= 19 && u16::from_be_bytes([m[16], m[17]]) as usize == m.len())
            .count();
        assert!(
            framed > 100,
            "only {framed} of 200 mutants keep their framing"
        );
        let mut rng = Rng::new(9);
        for _ in 0..2000 {
            let m = mutate(&mut rng, &msg::keepalive(), Framing::Keep);
            assert!(m.len() >= msg::HEADER_LEN);
            assert_eq!(u16::from_be_bytes([m[16], m[17]]) as usize, m.len());
        }
    }

    #[test]
    fn corpus_messages_are_well_framed() {
        let corpus = abuse_corpus(&mut Rng::new(1));
        assert!(corpus.len() >= 10);
        for m in &corpus {
            assert_eq!(u16::from_be_bytes([m[16], m[17]]) as usize, m.len());
            assert!(m[..16].iter().all(|b| *b == 0xff));
            if m[18] == msg::msg_type::UPDATE {
                assert!(msg::Update::parse(&m[19..]).is_ok(), "{}", hex(m));
            }
        }
    }
}
