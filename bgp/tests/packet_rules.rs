//! One test per wire rule: attribute flags, lengths and values, duplicates, missing attributes,
//! unknown attributes, AS4 (RFC 6793), MP_REACH/MP_UNREACH, End-of-RIB, OPEN, and splitting
//! UPDATEs to the maximum message size. Each cites the RFC section it checks.

mod packet_support;

use std::net::Ipv4Addr;
use std::sync::Arc;

use bgp::packet::{
    AfiSafi, Capability, CodecParams, ErrorAction, Message, Notification, OpenMsg, RouteRefreshMsg,
    UpdateError, UpdateMsg, decode, encode_announce, encode_open, encode_route_refresh,
    encode_withdraw, frame_len,
};
use bgp::types::{AS_TRANS, AsPath, AsSegment, Family, Origin, PathAttrs, RawAttr};
use ipnet::IpNet;
use packet_support::*;

fn dec(four: bool, m: &[u8]) -> Result<UpdateMsg, Notification> {
    match frame_and_decode(&params(four), m)? {
        Message::Update(u) => Ok(u),
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn ok(four: bool, m: &[u8]) -> UpdateMsg {
    dec(four, m).unwrap_or_else(|n| panic!("session reset {n}"))
}

fn reset(four: bool, m: &[u8]) -> Notification {
    match dec(four, m) {
        Err(n) => n,
        Ok(u) => panic!("expected a session reset, got {u:?}"),
    }
}

/// Assert treat-as-withdraw with a reason mentioning `why`; returns the withdrawn prefixes.
fn treat_as_withdraw(four: bool, m: &[u8], why: &str) -> Vec<IpNet> {
    let u = ok(four, m);
    let reason = u
        .treat_as_withdraw
        .clone()
        .unwrap_or_else(|| panic!("not withdrawn: {u:?}"));
    assert!(reason.contains(why), "reason {reason:?} lacks {why:?}");
    assert!(u.announced.is_empty());
    u.withdrawn
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The base IPv4 attributes with `extra` appended, announcing 10.1.0.0/16.
fn with(extra: &[u8]) -> Vec<u8> {
    update(&[], &[base_attrs(), extra.to_vec()].concat(), NLRI_10_1)
}

/// The base attributes with attribute `type_code` replaced by `replacement`.
fn replacing(type_code: u8, replacement: &[u8]) -> Vec<u8> {
    let mut attrs = Vec::new();
    let base = base_attrs();
    let mut pos = 0;
    while pos < base.len() {
        let len = base[pos + 2] as usize;
        if base[pos + 1] == type_code {
            attrs.extend_from_slice(replacement);
        } else {
            attrs.extend_from_slice(&base[pos..pos + 3 + len]);
        }
        pos += 3 + len;
    }
    update(&[], &attrs, NLRI_10_1)
}

fn announced_attrs(u: &UpdateMsg) -> &PathAttrs {
    assert_eq!(u.treat_as_withdraw, None, "{u:?}");
    &u.announced[0].attrs
}

// ---- flags (RFC 4271 §6.3, RFC 7606 §3 c) ----

#[test]
fn well_known_attribute_marked_optional_is_treat_as_withdraw_rfc7606_3c() {
    let m = replacing(1, &attr(0xc0, 1, &[0]));
    assert_eq!(
        treat_as_withdraw(true, &m, "flags"),
        vec![net("10.1.0.0/16")]
    );
}

#[test]
fn partial_bit_on_well_known_attribute_is_a_flags_error_rfc4271_4_3() {
    treat_as_withdraw(true, &replacing(1, &attr(0x60, 1, &[0])), "flags");
    treat_as_withdraw(
        true,
        &with(&attr(0xa0, 4, &[0, 0, 0, 1])),
        "MULTI_EXIT_DISC",
    );
}

#[test]
fn extended_length_bit_on_a_short_value_is_fine() {
    // FRR sends AS_PATH with flags 0x50; RFC 4271 §4.3 allows it.
    let u = ok(true, &replacing(1, &attr(0x50, 1, &[2])));
    assert_eq!(announced_attrs(&u).origin, Origin::Incomplete);
}

#[test]
fn flags_error_on_aggregator_discards_only_it_rfc7606_7_7() {
    let u = ok(
        true,
        &with(&attr(0x40, 7, &[0, 0, 0xfd, 0xe9, 10, 0, 0, 9])),
    );
    assert_eq!(announced_attrs(&u).aggregator, None);
    assert!(u.discarded[0].contains("AGGREGATOR"), "{:?}", u.discarded);
}

#[test]
fn flags_error_on_mp_reach_resets_with_the_attribute_as_data() {
    let mp = attr(
        0x40,
        14,
        &[
            0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
        ],
    );
    let n = reset(true, &update(&[], &mp, &[]));
    assert_eq!((n.code, n.subcode), (3, 4));
    assert_eq!(n.data, mp);
}

// ---- lengths and values (RFC 7606 §7) ----

#[test]
fn fixed_size_attributes_with_wrong_length_are_treat_as_withdraw() {
    treat_as_withdraw(
        true,
        &replacing(1, &attr(0x40, 1, &[0, 0])),
        "ORIGIN (type 1) has length 2",
    );
    treat_as_withdraw(
        true,
        &replacing(3, &attr(0x40, 3, &[10, 0, 0, 1, 0])),
        "NEXT_HOP",
    );
    treat_as_withdraw(true, &with(&attr(0x80, 4, &[0, 0, 1])), "MULTI_EXIT_DISC");
    treat_as_withdraw(
        true,
        &with(&attr(0x40, 5, &[0, 0, 0, 0, 100])),
        "LOCAL_PREF",
    );
    treat_as_withdraw(true, &with(&attr(0x80, 9, &[1, 2, 3])), "ORIGINATOR_ID");
    treat_as_withdraw(
        true,
        &with(&attr(0x80, 10, &[1, 2, 3, 4, 5, 6])),
        "CLUSTER_LIST",
    );
    treat_as_withdraw(true, &with(&attr(0xc0, 8, &[])), "COMMUNITIES");
    treat_as_withdraw(
        true,
        &with(&attr(0xc0, 16, &[0; 7])),
        "EXTENDED_COMMUNITIES",
    );
    treat_as_withdraw(true, &with(&attr(0xc0, 32, &[0; 13])), "LARGE_COMMUNITY");
}

#[test]
fn length_error_maps_to_3_5_with_the_attribute_rfc4271_6_3() {
    let bad = attr(0x40, 1, &[0, 0]);
    let e = UpdateError::AttributeLength {
        type_code: 1,
        len: 2,
        expected: "1",
        attr: bad.clone(),
    };
    assert_eq!(e.action(), ErrorAction::TreatAsWithdraw);
    assert_eq!(Notification::from(e), Notification::new(3, 5, bad));
}

#[test]
fn atomic_aggregate_and_aggregator_length_errors_discard_rfc7606_7_6_7_7() {
    let u = ok(
        true,
        &with(&[attr(0x40, 6, &[1]), attr(0xc0, 7, &[0, 1, 10, 0, 0, 9])].concat()),
    );
    let a = announced_attrs(&u);
    assert!(!a.atomic_aggregate && a.aggregator.is_none());
    assert_eq!(u.discarded.len(), 2, "{:?}", u.discarded);
    // On a 2-octet session AGGREGATOR is 6 bytes, so 8 is wrong there.
    let two = update(
        &[],
        &[
            attr(0x40, 1, &[0]),
            attr(0x40, 2, &[2, 1, 0xfd, 0xe9]),
            attr(0x40, 3, &[10, 0, 0, 1]),
            attr(0xc0, 7, &[0, 0, 0xfd, 0xe9, 10, 0, 0, 9]),
        ]
        .concat(),
        NLRI_10_1,
    );
    let u = ok(false, &two);
    assert_eq!(announced_attrs(&u).aggregator, None);
    assert_eq!(announced_attrs(&u).as_path, AsPath::sequence(vec![65001]));
}

#[test]
fn undefined_origin_and_bad_next_hop_rfc7606_7_1_7_3() {
    treat_as_withdraw(true, &replacing(1, &attr(0x40, 1, &[3])), "ORIGIN value 3");
    for nh in [[0, 0, 0, 0], [224, 0, 0, 5], [255, 255, 255, 255]] {
        treat_as_withdraw(true, &replacing(3, &attr(0x40, 3, &nh)), "not a valid host");
    }
    let e = UpdateError::InvalidOrigin {
        value: 3,
        attr: attr(0x40, 1, &[3]),
    };
    assert_eq!(Notification::from(e).label(), "3/6");
}

#[test]
fn malformed_as_path_is_treat_as_withdraw_rfc7606_7_2() {
    treat_as_withdraw(
        true,
        &replacing(2, &attr(0x40, 2, &[5, 1, 0, 0, 0, 1])),
        "unknown segment type",
    );
    treat_as_withdraw(
        true,
        &replacing(2, &attr(0x40, 2, &[2, 2, 0, 0, 0, 1])),
        "overruns",
    );
}

#[test]
fn valid_optional_attributes_are_all_decoded() {
    let extra = [
        attr(0x80, 4, &[0, 0, 0, 7]),
        attr(0x40, 5, &[0, 0, 0, 200]),
        attr(0x40, 6, &[]),
        attr(0xc0, 7, &[0, 0, 0xfd, 0xe9, 10, 0, 0, 9]),
        attr(0xc0, 8, &[0, 1, 0, 2, 0, 1, 0, 1]),
        attr(0x80, 9, &[1, 1, 1, 1]),
        attr(0x80, 10, &[2, 2, 2, 2, 3, 3, 3, 3]),
        attr(0xc0, 16, &[0, 2, 0xfd, 0xe9, 0, 0, 0, 1]),
    ]
    .concat();
    let u = ok(true, &with(&extra));
    let a = announced_attrs(&u);
    assert_eq!(
        (a.med, a.local_pref, a.atomic_aggregate),
        (Some(7), Some(200), true)
    );
    assert_eq!(a.aggregator, Some((65001, Ipv4Addr::new(10, 0, 0, 9))));
    assert_eq!(
        a.communities,
        vec![0x0001_0002, 0x0001_0001],
        "received order kept"
    );
    assert_eq!(a.originator_id, Some(Ipv4Addr::new(1, 1, 1, 1)));
    assert_eq!(
        a.cluster_list,
        vec![Ipv4Addr::new(2, 2, 2, 2), Ipv4Addr::new(3, 3, 3, 3)]
    );
    assert_eq!(a.other.len(), 1, "extended communities carried raw");
    assert_eq!(a.other[0].type_code, 16);
}

// ---- duplicates (RFC 7606 §3 g) ----

#[test]
fn duplicate_attributes_keep_the_first() {
    let u = ok(
        true,
        &with(
            &[
                attr(0x40, 1, &[2]),
                attr(0xc0, 8, &[0, 0, 0, 1]),
                attr(0xc0, 8, &[0, 0, 0, 2]),
            ]
            .concat(),
        ),
    );
    let a = announced_attrs(&u);
    assert_eq!(a.origin, Origin::Igp);
    assert_eq!(a.communities, vec![1]);
    assert_eq!(u.discarded.len(), 2, "{:?}", u.discarded);
}

#[test]
fn duplicate_mp_attributes_reset_with_malformed_attribute_list() {
    let unreach = attr(0x80, 15, &[0, 2, 1]);
    let n = reset(
        true,
        &update(&[], &[unreach.clone(), unreach].concat(), &[]),
    );
    assert_eq!((n.code, n.subcode, n.data.len()), (3, 1, 0));
}

// ---- missing attributes (RFC 7606 §3 d) ----

#[test]
fn missing_mandatory_attributes_with_nlri_are_treat_as_withdraw() {
    let no_nh = update(&[], &base_attrs()[..13], NLRI_10_1);
    assert_eq!(
        treat_as_withdraw(true, &no_nh, "NEXT_HOP"),
        vec![net("10.1.0.0/16")]
    );
    let no_origin = update(&[], &base_attrs()[4..], NLRI_10_1);
    treat_as_withdraw(true, &no_origin, "mandatory ORIGIN");
    let e = UpdateError::MissingWellKnown { type_code: 3 };
    assert_eq!(Notification::from(e), Notification::new(3, 3, vec![3]));
    // Without NLRI nothing is mandatory.
    let u = ok(true, &update(&[8, 10], &attr(0x40, 1, &[0]), &[]));
    assert_eq!(
        (u.withdrawn, u.treat_as_withdraw),
        (vec![net("10.0.0.0/8")], None)
    );
}

// ---- unknown attributes (RFC 4271 §5, §6.3) ----

#[test]
fn unknown_well_known_attribute_resets_with_3_2() {
    let bad = attr(0x40, 99, &[1, 2]);
    let n = reset(true, &with(&bad));
    assert_eq!((n.code, n.subcode, n.data.clone()), (3, 2, bad));
}

#[test]
fn unknown_optional_transitive_is_kept_and_passed_on_with_partial() {
    let u = ok(
        true,
        &with(&[attr(0xc0, 99, &[1, 2]), attr(0x80, 98, &[3])].concat()),
    );
    let a = announced_attrs(&u);
    assert_eq!(
        a.other,
        vec![RawAttr {
            flags: 0xc0,
            type_code: 99,
            value: vec![1, 2]
        }]
    );
    let mut out = Vec::new();
    encode_announce(&params(true), a, &u.announced[0].prefixes, &mut out);
    assert!(
        hex(&out).contains("e063020102"),
        "Partial bit set: {}",
        hex(&out)
    );
}

// ---- AS4 (RFC 6793) ----

fn two_octet_update(as_path: &[u8], extra: &[u8]) -> Vec<u8> {
    update(
        &[],
        &[
            attr(0x40, 1, &[0]),
            attr(0x40, 2, as_path),
            attr(0x40, 3, &[10, 0, 0, 1]),
            extra.to_vec(),
        ]
        .concat(),
        NLRI_10_1,
    )
}

const AS4_PATH_2: [u8; 10] = [2, 2, 0xfa, 0x56, 0xea, 0x01, 0xfa, 0x56, 0xea, 0x02];
const AS4_PATH_1: [u8; 6] = [2, 1, 0xfa, 0x56, 0xea, 0x01];

#[test]
fn as4_path_merges_into_a_2_octet_as_path_rfc6793_4_2_3() {
    let as_path = [2, 3, 0xfd, 0xe9, 0x5b, 0xa0, 0x5b, 0xa0];
    let u = ok(
        false,
        &two_octet_update(&as_path, &attr(0xc0, 17, &AS4_PATH_2)),
    );
    assert_eq!(
        announced_attrs(&u).as_path,
        AsPath::sequence(vec![65001, 4_200_000_001, 4_200_000_002])
    );
    // AS4_PATH longer than AS_PATH: ignored.
    let u = ok(
        false,
        &two_octet_update(&[2, 1, 0x5b, 0xa0], &attr(0xc0, 17, &AS4_PATH_2)),
    );
    assert_eq!(
        announced_attrs(&u).as_path,
        AsPath::sequence(vec![AS_TRANS])
    );
    assert!(u.discarded[0].contains("more ASes"), "{:?}", u.discarded);
}

#[test]
fn as4_aggregator_replaces_an_as_trans_aggregator_rfc6793_4_2_3() {
    let extra = [
        attr(0xc0, 7, &[0x5b, 0xa0, 10, 0, 0, 9]),
        attr(0xc0, 17, &AS4_PATH_1),
        attr(0xc0, 18, &[0xfa, 0x56, 0xea, 0x01, 10, 0, 0, 9]),
    ]
    .concat();
    let u = ok(false, &two_octet_update(&[2, 1, 0x5b, 0xa0], &extra));
    let a = announced_attrs(&u);
    assert_eq!(
        a.aggregator,
        Some((4_200_000_001, Ipv4Addr::new(10, 0, 0, 9)))
    );
    assert_eq!(a.as_path, AsPath::sequence(vec![4_200_000_001]));
}

#[test]
fn aggregator_from_an_old_speaker_voids_as4_attributes_rfc6793_4_2_3() {
    let extra = [
        attr(0xc0, 7, &[0xfd, 0xe9, 10, 0, 0, 9]),
        attr(0xc0, 17, &AS4_PATH_1),
    ]
    .concat();
    let u = ok(false, &two_octet_update(&[2, 1, 0x5b, 0xa0], &extra));
    let a = announced_attrs(&u);
    assert_eq!(a.aggregator, Some((65001, Ipv4Addr::new(10, 0, 0, 9))));
    assert_eq!(a.as_path, AsPath::sequence(vec![AS_TRANS]));
}

#[test]
fn as4_attributes_are_ignored_on_4_octet_sessions_and_discarded_when_malformed() {
    let u = ok(true, &with(&attr(0xc0, 17, &AS4_PATH_2)));
    assert_eq!(announced_attrs(&u).as_path, AsPath::sequence(vec![65001]));
    assert!(u.discarded[0].contains("4-octet"), "{:?}", u.discarded);
    // RFC 6793 §6: malformed AS4_PATH (confederation segment) is discarded, the route stays.
    let confed = [3, 1, 0, 0, 0xfd, 0xe9];
    let u = ok(
        false,
        &two_octet_update(&[2, 1, 0x5b, 0xa0], &attr(0xc0, 17, &confed)),
    );
    assert_eq!(
        announced_attrs(&u).as_path,
        AsPath::sequence(vec![AS_TRANS])
    );
    assert!(u.discarded[0].contains("AS4_PATH"), "{:?}", u.discarded);
}

fn v4_attrs(path: AsPath) -> PathAttrs {
    let mut a = PathAttrs::local(vec![], vec![]);
    a.as_path = path;
    a.next_hop = Some("192.0.2.1".parse().unwrap());
    a
}

#[test]
fn encoding_to_a_2_octet_peer_uses_as_trans_and_as4_attributes_rfc6793_4_2_2() {
    let mut a = v4_attrs(AsPath {
        segments: vec![
            AsSegment::ConfedSequence(vec![65100]),
            AsSegment::Sequence(vec![65000, 4_200_000_001]),
            AsSegment::Set(vec![4_200_000_009, 65010]),
        ],
    });
    a.aggregator = Some((4_200_000_001, Ipv4Addr::new(10, 0, 0, 9)));
    let mut out = Vec::new();
    assert_eq!(
        encode_announce(&params(false), &a, &[net("10.9.0.0/16")], &mut out),
        1
    );
    let h = hex(&out);
    assert!(
        h.contains("4002100301fe4c0202fde85ba001025ba0fdf2"),
        "AS_PATH with AS_TRANS: {h}"
    );
    assert!(h.contains("c00706"), "2-octet AGGREGATOR: {h}");
    assert!(
        h.contains("c0111402020000fde8fa56ea01"),
        "AS4_PATH without the confed segment: {h}"
    );
    assert!(h.contains("c01208fa56ea010a000009"), "AS4_AGGREGATOR: {h}");
    let back = ok(false, &out);
    assert_eq!(
        *back.announced[0].attrs, a,
        "a 2-octet receiver rebuilds the same path"
    );
    // Towards a 4-octet peer none of that is needed.
    out.clear();
    encode_announce(&params(true), &a, &[net("10.9.0.0/16")], &mut out);
    assert!(!hex(&out).contains("c011") && !hex(&out).contains("c012"));
    assert_eq!(*ok(true, &out).announced[0].attrs, a);
}

#[test]
fn long_as_paths_split_into_255_asn_segments_of_type_sequence() {
    let a = v4_attrs(AsPath::sequence((64_000..64_600).collect()));
    let mut out = Vec::new();
    encode_announce(&params(true), &a, &[net("10.9.0.0/16")], &mut out);
    let h = hex(&out);
    assert!(
        h.contains("50020966" /* ext length 0x0966 = 2406 */),
        "{}",
        &h[..120]
    );
    let back = ok(true, &out);
    let segs = &back.announced[0].attrs.as_path.segments;
    assert_eq!(
        segs.iter().map(|s| s.asns().len()).collect::<Vec<_>>(),
        vec![255, 255, 90]
    );
    assert!(segs.iter().all(|s| matches!(s, AsSegment::Sequence(_))));
    assert_eq!(back.announced[0].attrs.as_path.len_for_decision(), 600);
}

// ---- attribute list structure (RFC 4271 §6.3, RFC 7606 §4) ----

#[test]
fn attribute_overrunning_the_list_is_treat_as_withdraw_rfc7606_4() {
    let mut attrs = base_attrs();
    attrs.extend_from_slice(&[0xc0, 8, 9, 0, 0, 0, 1]); // length 9, 4 bytes present
    assert_eq!(
        treat_as_withdraw(true, &update(&[], &attrs, NLRI_10_1), "overruns"),
        vec![net("10.1.0.0/16")]
    );
}

#[test]
fn field_lengths_past_the_message_reset_with_3_1_rfc4271_6_3() {
    let mut m = update(&[], &base_attrs(), &[]);
    m[19..21].copy_from_slice(&[0, 200]); // Withdrawn Routes Length
    assert_eq!(reset(true, &m).label(), "3/1");
    let mut m = update(&[], &base_attrs(), &[]);
    m[21..23].copy_from_slice(&[0, 200]); // Total Path Attribute Length
    assert_eq!(reset(true, &m).label(), "3/1");
}

#[test]
fn host_bits_in_nlri_are_cleared() {
    let u = ok(
        true,
        &update(&[], &base_attrs(), &[16, 10, 1, 24, 10, 2, 3]),
    );
    assert_eq!(
        u.announced[0].prefixes,
        vec![net("10.1.0.0/16"), net("10.2.3.0/24")]
    );
}

// ---- MP_REACH / MP_UNREACH (RFC 4760) ----

fn mp_reach_v6(nh: &[u8], reserved: u8, nlri: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, nh.len() as u8];
    v.extend_from_slice(nh);
    v.push(reserved);
    v.extend_from_slice(nlri);
    attr(0x90, 14, &v)
}

const NH6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const NLRI6: [u8; 5] = [32, 0x20, 1, 0xd, 0xb8];

#[test]
fn ipv4_nlri_and_ipv6_mp_reach_in_one_update_make_two_groups() {
    let attrs = [mp_reach_v6(&NH6, 0, &NLRI6), base_attrs()].concat();
    let u = ok(true, &update(&[], &attrs, NLRI_10_1));
    assert_eq!(u.announced.len(), 2);
    assert_eq!(
        u.announced[0].attrs.next_hop,
        Some("10.0.0.1".parse().unwrap())
    );
    assert_eq!(
        u.announced[1].attrs.next_hop,
        Some("2001:db8::1".parse().unwrap())
    );
    assert_eq!(u.announced[1].prefixes, vec![net("2001:db8::/32")]);
    assert_eq!(u.announced[0].attrs.as_path, u.announced[1].attrs.as_path);
}

#[test]
fn mp_reach_reserved_octet_is_ignored_rfc4760_3() {
    // zettabgp would read it as an SNPA count and misparse the NLRI.
    let attrs = [mp_reach_v6(&NH6, 3, &NLRI6), base_attrs()[..13].to_vec()].concat();
    let u = ok(true, &update(&[], &attrs, &[]));
    assert_eq!(u.announced[0].prefixes, vec![net("2001:db8::/32")]);
}

#[test]
fn bad_mp_reach_layout_resets_with_optional_attribute_error_rfc7606_7_11() {
    let short_nh = mp_reach_v6(&[10, 0, 0, 1], 0, &NLRI6);
    let n = reset(true, &update(&[], &short_nh, &[]));
    assert_eq!((n.label(), n.data), ("3/9".to_string(), short_nh));
    let long_prefix = mp_reach_v6(&NH6, 0, &[129, 0x20]);
    assert_eq!(reset(true, &update(&[], &long_prefix, &[])).label(), "3/9");
    let bad_unreach = attr(0x80, 15, &[0, 2, 1, 64, 0x20]);
    assert_eq!(reset(true, &update(&[], &bad_unreach, &[])).label(), "3/9");
}

#[test]
fn mp_attributes_of_families_not_negotiated_are_ignored() {
    let p = CodecParams {
        families: vec![Family::Ipv4Unicast],
        ..params(true)
    };
    let attrs = [mp_reach_v6(&NH6, 0, &NLRI6), base_attrs()[..13].to_vec()].concat();
    let Message::Update(u) = decode(&p, &update(&[], &attrs, &[])).unwrap() else {
        panic!()
    };
    assert!(u.announced.is_empty());
    assert!(
        u.discarded[0].contains("not negotiated"),
        "{:?}",
        u.discarded
    );
}

#[test]
fn mp_unreach_and_withdrawn_routes_combine() {
    let u = ok(
        true,
        &update(
            &[8, 10],
            &attr(0x90, 15, &[0, 2, 1, 32, 0x20, 1, 0xd, 0xb8]),
            &[],
        ),
    );
    assert_eq!(u.withdrawn, vec![net("10.0.0.0/8"), net("2001:db8::/32")]);
    assert_eq!(u.end_of_rib, None);
}

#[test]
fn end_of_rib_markers_rfc4724_2() {
    assert_eq!(
        ok(true, &update(&[], &[], &[])).end_of_rib,
        Some(Family::Ipv4Unicast)
    );
    assert_eq!(
        ok(true, &update(&[], &attr(0x80, 15, &[0, 2, 1]), &[])).end_of_rib,
        Some(Family::Ipv6Unicast)
    );
    let not_eor = [attr(0x80, 15, &[0, 2, 1]), attr(0x40, 1, &[0])].concat();
    assert_eq!(ok(true, &update(&[], &not_eor, &[])).end_of_rib, None);
}

// ---- splitting (RFC 4271 §4.1 maximum size, RFC 8654) ----

fn messages(buf: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let n = frame_len(rest, max).unwrap().expect("whole message");
        assert!(n <= max, "message of {n} bytes exceeds {max}");
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fn host_routes_v4(n: u32) -> Vec<IpNet> {
    (0..n)
        .map(|i| IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap()))
        .collect()
}

#[test]
fn ten_thousand_host_routes_split_to_4096_byte_messages_and_decode_back() {
    let prefixes = host_routes_v4(10_000);
    let mut a = v4_attrs(AsPath::sequence(vec![64512]));
    a.communities = vec![1, 2, 3];
    let p = params(true);
    let mut out = Vec::new();
    let n = encode_announce(&p, &a, &prefixes, &mut out);
    let msgs = messages(&out, 4096);
    assert_eq!(n, msgs.len());
    assert!(n >= 10_000 * 5 / 4096, "packed: {n} messages");
    assert!(
        n <= 10_000 * 5 / (4096 - 60) + 1,
        "packed tightly: {n} messages"
    );
    let mut union = Vec::new();
    for m in msgs {
        let u = ok(true, m);
        assert_eq!(*u.announced[0].attrs, a);
        union.extend_from_slice(&u.announced[0].prefixes);
    }
    assert_eq!(union, prefixes);
}

#[test]
fn ipv6_announcements_and_mixed_withdrawals_split_and_decode_back() {
    let v6: Vec<IpNet> = (0..3000u128)
        .map(|i| IpNet::V6(ipnet::Ipv6Net::new(((0x2001_0db8u128 << 96) | i).into(), 128).unwrap()))
        .collect();
    let mut a = PathAttrs::local(vec![], vec![]);
    a.next_hop = Some("2001:db8::1".parse().unwrap());
    a.link_local_next_hop = Some("fe80::1".parse().unwrap());
    let p = params(true);
    let mut out = Vec::new();
    let n = encode_announce(&p, &a, &v6, &mut out);
    let mut union = Vec::new();
    for m in messages(&out, 4096) {
        let u = ok(true, m);
        assert_eq!(*u.announced[0].attrs, a);
        union.extend_from_slice(&u.announced[0].prefixes);
    }
    assert_eq!((union, n), (v6.clone(), messages(&out, 4096).len()));

    let mut mixed = host_routes_v4(5000);
    mixed.extend_from_slice(&v6);
    out.clear();
    let n = encode_withdraw(&p, &mixed, &mut out);
    let msgs = messages(&out, 4096);
    assert_eq!(n, msgs.len());
    let mut withdrawn: Vec<IpNet> = msgs.iter().flat_map(|m| ok(true, m).withdrawn).collect();
    withdrawn.sort();
    mixed.sort();
    assert_eq!(withdrawn, mixed);
}

#[test]
fn extended_messages_pack_more_and_oversized_attributes_send_nothing() {
    let prefixes = host_routes_v4(20_000);
    let a = v4_attrs(AsPath::sequence(vec![64512]));
    let p = CodecParams {
        max_message_len: 65535,
        ..params(true)
    };
    let mut out = Vec::new();
    let n = encode_announce(&p, &a, &prefixes, &mut out);
    assert_eq!(n, messages(&out, 65535).len());
    assert_eq!(n, 2, "100 000 bytes of NLRI in two extended messages");
    // 1100 communities (4400 bytes) cannot fit a 4096-byte UPDATE.
    let mut big = a.clone();
    big.communities = (0..1100).collect();
    out.clear();
    assert_eq!(
        encode_announce(&params(true), &big, &prefixes[..1], &mut out),
        0
    );
    assert!(out.is_empty());
    // An IPv4 announcement without an IPv4 next hop cannot be sent either.
    let mut no_nh = a;
    no_nh.next_hop = None;
    assert_eq!(
        encode_announce(&params(true), &no_nh, &prefixes[..1], &mut out),
        0
    );
}

// ---- OPEN (RFC 4271 §6.2, RFC 5492, RFC 9072) ----

fn open_body(version: u8, my_as: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&my_as.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(params.len() as u8);
    b.extend_from_slice(params);
    message(1, &b)
}

fn open_error(m: &[u8]) -> Notification {
    decode(&params(false), m).expect_err("OPEN error")
}

#[test]
fn open_field_errors_carry_rfc4271_6_2_subcodes() {
    let id = [10, 0, 0, 1];
    assert_eq!(
        open_error(&open_body(3, 65001, 90, id, &[])),
        Notification::new(2, 1, vec![0, 4])
    );
    assert_eq!(open_error(&open_body(4, 0, 90, id, &[])).label(), "2/2");
    assert_eq!(
        open_error(&open_body(4, 65001, 90, [0; 4], &[])).label(),
        "2/3"
    );
    assert_eq!(open_error(&open_body(4, 65001, 2, id, &[])).label(), "2/6");
    assert_eq!(
        open_error(&open_body(4, 65001, 90, id, &[1, 2, 0, 0])).label(),
        "2/4"
    );
    // Malformed capability (multiprotocol with 3 bytes) and parameter overruns: subcode 0.
    assert_eq!(
        open_error(&open_body(4, 65001, 90, id, &[2, 5, 1, 3, 0, 1, 0])).label(),
        "2/0"
    );
    assert_eq!(
        open_error(&open_body(4, 65001, 90, id, &[2, 9, 1, 4])).label(),
        "2/0"
    );
}

#[test]
fn open_round_trips_unknown_capabilities_and_rfc9072_extended_parameters() {
    let mut open = OpenMsg {
        version: 4,
        my_as: AS_TRANS as u16,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        capabilities: vec![
            Capability::MultiProtocol(AfiSafi { afi: 2, safi: 1 }),
            Capability::FourOctetAs(4_200_000_001),
            Capability::Unknown {
                code: 200,
                value: vec![1, 2, 3],
            },
        ],
    };
    let mut out = Vec::new();
    encode_open(&open, &mut out);
    let Message::Open(back) = decode(&params(false), &out).unwrap() else {
        panic!()
    };
    assert_eq!((back.clone(), back.asn()), (open.clone(), 4_200_000_001));
    // 300 bytes of capabilities need the RFC 9072 layout.
    open.capabilities
        .extend((0..30).map(|i| Capability::Unknown {
            code: 210 + i,
            value: vec![i; 8],
        }));
    out.clear();
    encode_open(&open, &mut out);
    assert_eq!(&out[28..30], &[255, 255], "Non-Ext OP Len and Type 255");
    let Message::Open(back) = decode(&params(false), &out).unwrap() else {
        panic!()
    };
    assert_eq!(back, open);
}

#[test]
fn route_refresh_round_trips_with_subtype() {
    let rr = RouteRefreshMsg {
        afi_safi: AfiSafi { afi: 2, safi: 1 },
        subtype: 1,
    };
    let mut out = Vec::new();
    encode_route_refresh(&rr, &mut out);
    assert_eq!(hex(&out), "ffffffffffffffffffffffffffffffff00170500020101");
    assert_eq!(decode(&params(true), &out), Ok(Message::RouteRefresh(rr)));
}

#[test]
fn decode_rejects_a_frame_longer_than_its_header_says() {
    let mut m = update(&[], &[], &[]);
    m.push(0);
    assert_eq!(decode(&params(true), &m).unwrap_err().label(), "1/2");
}

#[test]
fn byte_diff_helper_names_the_first_differing_offset() {
    let r = std::panic::catch_unwind(|| assert_bytes_eq("demo", &[1, 2, 3], &[1, 9, 3, 4]));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(
        msg.contains("differ at offset 1")
            && msg.contains("01 02 03")
            && msg.contains("01 09 03 04"),
        "{msg}"
    );
}

#[test]
fn one_arc_per_announce_group() {
    let u = ok(true, &update(&[], &base_attrs(), &[16, 10, 1, 16, 10, 2]));
    assert_eq!(u.announced.len(), 1);
    assert_eq!(Arc::strong_count(&u.announced[0].attrs), 1);
    assert_eq!(u.announced[0].prefixes.len(), 2);
}
