//! Every row of `zettabgp-cases.tsv` (the messages that panic, hang or mislead zettabgp 0.6.0):
//! Ginger's classification, asserted per row with the RFC section that decides it. None of them
//! may reach a zettabgp panic.

mod packet_support;

use bgp::packet::{Capability, Message, zettabgp_panics_caught};
use packet_support::*;

const CASES: &str = include_str!("fixtures/zettabgp-cases.tsv");

/// What Ginger must do with a row.
#[derive(Debug)]
enum Want {
    /// Session reset with this NOTIFICATION (code, subcode, data as hex).
    Reset(u8, u8, &'static str),
    /// RFC 7606 treat-as-withdraw, the reason mentioning this text.
    TreatAsWithdraw(&'static str),
    /// Decoded; `check` inspects the message.
    Decoded(fn(&Message)),
}

/// (case name, session is 4-octet, expected outcome, rule).
fn expectations() -> Vec<(&'static str, bool, Want, &'static str)> {
    use Want::*;
    vec![
        (
            "hdr length field 0 (<19)",
            true,
            Reset(1, 2, "0000"),
            "RFC 4271 §6.1 Bad Message Length",
        ),
        (
            "UPDATE: attr block len 1, attr header truncated",
            true,
            TreatAsWithdraw("stray bytes"),
            "RFC 7606 §4: fewer octets than an attribute header",
        ),
        (
            "UPDATE: attr flags+type but no length byte",
            true,
            TreatAsWithdraw("stray bytes"),
            "RFC 7606 §4",
        ),
        (
            "UPDATE: ORIGINATOR_ID len 0",
            true,
            TreatAsWithdraw("ORIGINATOR_ID"),
            "RFC 7606 §7.9",
        ),
        (
            "UPDATE: COMMUNITIES len 1",
            true,
            TreatAsWithdraw("COMMUNITIES"),
            "RFC 7606 §7.8",
        ),
        (
            "UPDATE: LARGE_COMMUNITY len 1",
            true,
            TreatAsWithdraw("LARGE_COMMUNITY"),
            "RFC 8092 §5",
        ),
        (
            "UPDATE: MP_REACH_NLRI len 0",
            true,
            Reset(3, 9, "800e00"),
            "RFC 7606 §7.11, RFC 4760 §7",
        ),
        (
            "UPDATE: MP_REACH ipv6 nh_len 16 but truncated",
            true,
            Reset(3, 9, "800e050002011020"),
            "RFC 7606 §7.11: next hop length inconsistent, NLRI cannot be located",
        ),
        (
            "UPDATE: MP_UNREACH len 2",
            true,
            Reset(3, 9, "800f020002"),
            "RFC 7606 §7.11, RFC 4760 §7",
        ),
        (
            "UPDATE: AS_PATH 4-byte session, segment with 2 trailing bytes",
            true,
            TreatAsWithdraw("AS_PATH is malformed"),
            "RFC 7606 §7.2: segment overruns",
        ),
        (
            "UPDATE: AS_PATH value 02 00 00 (trailing byte) -> HANG",
            true,
            TreatAsWithdraw("AS_PATH is malformed"),
            "RFC 7606 §7.2: zero segment length",
        ),
        (
            "UPDATE: AS_PATH value 02 01 0000fde9 00 (1 trailing byte) -> HANG",
            true,
            TreatAsWithdraw("AS_PATH is malformed"),
            "RFC 7606 §7.2: partial segment header",
        ),
        (
            "UPDATE: withdrawn prefix length 255",
            true,
            Reset(3, 10, ""),
            "RFC 7606 §5.3",
        ),
        (
            "UPDATE: NLRI prefix length 33",
            true,
            Reset(3, 10, ""),
            "RFC 7606 §5.3, RFC 4271 §6.3",
        ),
        (
            "UPDATE: NLRI /24 truncated (1 of 3 bytes)",
            true,
            Reset(3, 10, ""),
            "RFC 7606 §5.3",
        ),
        (
            "OPEN: opt param len 255 beyond end",
            true,
            Reset(2, 0, ""),
            "RFC 4271 §6.2 (malformed optional parameters, subcode 0 as BIRD/FRR)",
        ),
        (
            "OPEN: FQDN cap hostname+domain (FRR layout)",
            true,
            Decoded(|m| {
                let Message::Open(o) = m else { panic!("{m:?}") };
                assert_eq!(o.my_as, 64512);
                assert_eq!(
                    o.capabilities,
                    vec![Capability::Fqdn {
                        hostname: "node1".into(),
                        domain: "example".into()
                    }]
                );
            }),
            "draft-walton-bgp-hostname-capability; RFC 5492 §3",
        ),
        (
            "NOTIFICATION: 1 byte",
            true,
            Reset(1, 2, "0014"),
            "RFC 4271 §6.1: NOTIFICATION >= 21",
        ),
        (
            "KEEPALIVE with 3-byte body",
            true,
            Reset(1, 2, "0016"),
            "RFC 4271 §6.1: KEEPALIVE == 19",
        ),
        (
            "UPDATE: NEXT_HOP len 8 accepted?",
            true,
            Decoded(|m| {
                let Message::Update(u) = m else {
                    panic!("{m:?}")
                };
                // No NLRI field: NEXT_HOP is ignored, nothing to withdraw (RFC 7606 §5.2).
                assert_eq!(u.treat_as_withdraw, None);
                assert!(u.announced.is_empty() && u.withdrawn.is_empty());
                assert!(
                    u.discarded.iter().any(|d| d.contains("NEXT_HOP")),
                    "{:?}",
                    u.discarded
                );
            }),
            "RFC 7606 §7.3 (length error) and §5.2 (no NLRI: ignored)",
        ),
    ]
}

#[test]
fn every_zettabgp_case_is_classified_per_rfc() {
    let rows: Vec<(&str, Vec<u8>)> = CASES
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1) // column titles
        .map(|l| {
            let mut cols = l.split('\t');
            (cols.next().unwrap(), unhex(cols.next().unwrap()))
        })
        .collect();
    let table = expectations();
    assert_eq!(rows.len(), 20);
    assert_eq!(table.len(), rows.len(), "one expectation per row");
    let panics_before = zettabgp_panics_caught();
    for (name, bytes) in rows {
        let (_, four, want, rule) = table
            .iter()
            .find(|(n, ..)| *n == name)
            .unwrap_or_else(|| panic!("no expectation for row {name:?}"));
        let p = params(*four);
        // Frame first as a session would; a header error ends there.
        let result = match bgp::packet::frame_len(&bytes, p.max_message_len) {
            Err(n) => Err(n),
            Ok(Some(n)) => {
                assert_eq!(n, bytes.len(), "{name}");
                bgp::packet::decode(&p, &bytes)
            }
            Ok(None) => panic!("{name}: frame_len wants more bytes"),
        };
        match (want, &result) {
            (Want::Reset(code, subcode, data), Err(n)) => {
                assert_eq!(
                    (n.code, n.subcode, hex(&n.data)),
                    (*code, *subcode, data.to_string()),
                    "{name} ({rule})"
                );
            }
            (Want::TreatAsWithdraw(why), Ok(Message::Update(u))) => {
                let reason = u
                    .treat_as_withdraw
                    .as_deref()
                    .unwrap_or_else(|| panic!("{name} ({rule}): not treat-as-withdraw: {u:?}"));
                assert!(reason.contains(why), "{name} ({rule}): {reason}");
                assert!(u.announced.is_empty(), "{name}");
            }
            (Want::Decoded(check), Ok(m)) => check(m),
            (want, got) => panic!("{name} ({rule}): want {want:?}, got {got:?}"),
        }
    }
    assert_eq!(
        zettabgp_panics_caught(),
        panics_before,
        "a case reached a zettabgp panic"
    );
}
