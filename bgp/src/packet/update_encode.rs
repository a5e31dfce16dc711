//! UPDATE encoding: announcements, withdrawals and End-of-RIB markers, split so that no message
//! exceeds the session's maximum length.
//!
//! Owns: the attribute block (encoded once per [`encode_announce`] call, in type-code order, with
//! AS_TRANS / AS4_PATH / AS4_AGGREGATOR towards 2-octet peers per RFC 6793 §4.2.2), MP_REACH_NLRI
//! first when present (RFC 7606 §5.1), and NLRI packing. Ginger encodes UPDATEs itself: zettabgp
//! writes AS_SEQUENCE as AS_SET, cannot write a 32-byte IPv6 next hop, has no size limit and
//! panics into a short buffer. Must not: decide what to announce or to whom.

use std::net::IpAddr;

use ipnet::IpNet;

use super::attr::{self, FLAG_EXTENDED_LENGTH, FLAG_OPTIONAL, FLAG_PARTIAL, FLAG_TRANSITIVE};
use super::header::{begin_message, finish_message};
use super::{CodecParams, HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, MessageType, aspath, prefix};
use crate::types::{AS_TRANS, Family, PathAttrs, RawAttr};

const WELL_KNOWN: u8 = FLAG_TRANSITIVE;
const OPT_TRANS: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;
const OPT_NON_TRANS: u8 = FLAG_OPTIONAL;
/// UPDATE overhead before attributes: header, Withdrawn Routes Length, Total Path Attribute Length.
const UPDATE_FIXED: usize = HEADER_LEN + 4;
/// MP_REACH/MP_UNREACH are always written with a two-octet length: their size varies per message.
const MP_ATTR_HEADER: usize = 4;

fn max_len(params: &CodecParams) -> usize {
    params.max_message_len.min(MAX_EXTENDED_MESSAGE_LEN)
}

/// Append one attribute with the Extended Length bit set only when the value needs it.
/// `false` if the value is too long for any attribute.
fn put_attr(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) -> bool {
    let flags = flags & !FLAG_EXTENDED_LENGTH;
    if let Ok(len) = u8::try_from(value.len()) {
        out.extend_from_slice(&[flags, type_code, len]);
    } else if let Ok(len) = u16::try_from(value.len()) {
        out.extend_from_slice(&[flags | FLAG_EXTENDED_LENGTH, type_code]);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        return false;
    }
    out.extend_from_slice(value);
    true
}

/// Writes attributes in type-code order, slotting in the unknown optional transitive attributes
/// Ginger passes on (with the Partial bit set, RFC 4271 §5) between its own.
struct AttrWriter<'a> {
    out: Vec<u8>,
    others: std::iter::Peekable<std::vec::IntoIter<&'a RawAttr>>,
    ok: bool,
}

impl<'a> AttrWriter<'a> {
    fn new(others: &'a [RawAttr]) -> Self {
        let mut passed: Vec<&RawAttr> = others
            .iter()
            .filter(|o| {
                o.flags & FLAG_OPTIONAL != 0
                    && (!attr::is_recognised(o.type_code)
                        || o.type_code == attr::EXTENDED_COMMUNITIES)
            })
            .collect();
        passed.sort_by_key(|o| o.type_code);
        AttrWriter {
            out: Vec::with_capacity(64),
            others: passed.into_iter().peekable(),
            ok: true,
        }
    }

    fn flush_others_below(&mut self, type_code: u16) {
        while let Some(o) = self.others.next_if(|o| u16::from(o.type_code) < type_code) {
            // EXTENDED_COMMUNITIES was validated, so it is recognised: no Partial bit added.
            let partial = if o.type_code == attr::EXTENDED_COMMUNITIES {
                0
            } else {
                FLAG_PARTIAL
            };
            self.ok &= put_attr(&mut self.out, o.flags | partial, o.type_code, &o.value);
        }
    }

    fn put(&mut self, flags: u8, type_code: u8, value: &[u8]) {
        self.flush_others_below(u16::from(type_code));
        self.ok &= put_attr(&mut self.out, flags, type_code, value);
    }

    fn finish(mut self) -> Option<Vec<u8>> {
        self.flush_others_below(u16::MAX);
        self.ok.then_some(self.out)
    }
}

/// Encode every attribute of `attrs` except MP_REACH_NLRI, in type-code order. `None` when an
/// attribute value exceeds 65535 bytes or the next hop does not suit `family`.
fn encode_attr_block(params: &CodecParams, attrs: &PathAttrs, family: Family) -> Option<Vec<u8>> {
    let mut w = AttrWriter::new(&attrs.other);
    let mut value = Vec::with_capacity(64);
    let asn_size = if params.four_octet_as { 4 } else { 2 };

    w.put(WELL_KNOWN, attr::ORIGIN, &[attrs.origin as u8]);
    aspath::encode(&attrs.as_path, asn_size, &mut value);
    w.put(WELL_KNOWN, attr::AS_PATH, &value);
    if family == Family::Ipv4Unicast {
        let IpAddr::V4(nh) = attrs.next_hop? else {
            return None;
        };
        w.put(WELL_KNOWN, attr::NEXT_HOP, &nh.octets());
    }
    if let Some(med) = attrs.med {
        w.put(OPT_NON_TRANS, attr::MULTI_EXIT_DISC, &med.to_be_bytes());
    }
    if let Some(lp) = attrs.local_pref {
        w.put(WELL_KNOWN, attr::LOCAL_PREF, &lp.to_be_bytes());
    }
    if attrs.atomic_aggregate {
        w.put(WELL_KNOWN, attr::ATOMIC_AGGREGATE, &[]);
    }
    let mut as4_aggregator = None;
    if let Some((asn, addr)) = attrs.aggregator {
        value.clear();
        if asn_size == 4 {
            value.extend_from_slice(&asn.to_be_bytes());
        } else {
            let two = u16::try_from(asn).unwrap_or_else(|_| {
                as4_aggregator = Some((asn, addr));
                AS_TRANS as u16
            });
            value.extend_from_slice(&two.to_be_bytes());
        }
        value.extend_from_slice(&addr.octets());
        w.put(OPT_TRANS, attr::AGGREGATOR, &value);
    }
    if !attrs.communities.is_empty() {
        value.clear();
        attrs
            .communities
            .iter()
            .for_each(|c| value.extend_from_slice(&c.to_be_bytes()));
        w.put(OPT_TRANS, attr::COMMUNITIES, &value);
    }
    if let Some(id) = attrs.originator_id {
        w.put(OPT_NON_TRANS, attr::ORIGINATOR_ID, &id.octets());
    }
    if !attrs.cluster_list.is_empty() {
        value.clear();
        attrs
            .cluster_list
            .iter()
            .for_each(|c| value.extend_from_slice(&c.octets()));
        w.put(OPT_NON_TRANS, attr::CLUSTER_LIST, &value);
    }
    // RFC 6793 §4.2.2: towards a 2-octet peer, the real path and aggregator travel in AS4_*.
    if asn_size == 2 && aspath::needs_as4_path(&attrs.as_path) {
        value.clear();
        aspath::encode(&aspath::as4_path_of(&attrs.as_path), 4, &mut value);
        w.put(OPT_TRANS, attr::AS4_PATH, &value);
    }
    if let Some((asn, addr)) = as4_aggregator {
        value.clear();
        value.extend_from_slice(&asn.to_be_bytes());
        value.extend_from_slice(&addr.octets());
        w.put(OPT_TRANS, attr::AS4_AGGREGATOR, &value);
    }
    if !attrs.large_communities.is_empty() {
        value.clear();
        for lc in &attrs.large_communities {
            value.extend_from_slice(&lc.global.to_be_bytes());
            value.extend_from_slice(&lc.local1.to_be_bytes());
            value.extend_from_slice(&lc.local2.to_be_bytes());
        }
        w.put(OPT_TRANS, attr::LARGE_COMMUNITY, &value);
    }
    w.finish()
}

/// The MP_REACH_NLRI value up to (not including) its NLRI: AFI, SAFI, next hop, Reserved.
fn mp_reach_head(attrs: &PathAttrs) -> Option<Vec<u8>> {
    let IpAddr::V6(global) = attrs.next_hop? else {
        return None;
    };
    let (afi, safi) = Family::Ipv6Unicast.afi_safi();
    let mut head = afi.to_be_bytes().to_vec();
    head.push(safi);
    match attrs.link_local_next_hop {
        Some(ll) => {
            head.push(32);
            head.extend_from_slice(&global.octets());
            head.extend_from_slice(&ll.octets());
        }
        None => {
            head.push(16);
            head.extend_from_slice(&global.octets());
        }
    }
    head.push(0);
    Some(head)
}

/// Cut `prefixes` of `family` into runs whose encoded size fits `room` bytes, calling `emit` with
/// each run's encoded NLRI. Returns the number of runs.
fn pack(prefixes: &[IpNet], family: Family, room: usize, mut emit: impl FnMut(&[u8])) -> usize {
    let mut nlri = Vec::with_capacity(room.min(MAX_EXTENDED_MESSAGE_LEN));
    let mut runs = 0;
    for p in prefixes.iter().filter(|p| Family::of(p) == family) {
        if nlri.len() + prefix::wire_len(p) > room {
            emit(&nlri);
            runs += 1;
            nlri.clear();
        }
        prefix::write(p, &mut nlri);
    }
    if !nlri.is_empty() {
        emit(&nlri);
        runs += 1;
    }
    runs
}

/// Append UPDATEs announcing `prefixes` (one family) with `attrs`, split to the session's
/// maximum message length. Returns the number of messages written; 0 when there is nothing to
/// announce or the attributes cannot be sent (no next hop of the family, or too large to fit).
pub fn encode_announce(
    params: &CodecParams,
    attrs: &PathAttrs,
    prefixes: &[IpNet],
    out: &mut Vec<u8>,
) -> usize {
    let Some(family) = prefixes.first().map(Family::of) else {
        return 0;
    };
    if prefixes.iter().any(|p| Family::of(p) != family) {
        tracing::warn!(%family, "announcement mixes families; only {family} prefixes are sent");
    }
    let Some(block) = encode_attr_block(params, attrs, family) else {
        tracing::warn!(%family, next_hop = ?attrs.next_hop, "attributes cannot be encoded for this family");
        return 0;
    };
    let mp_head = match family {
        Family::Ipv4Unicast => None,
        Family::Ipv6Unicast => match mp_reach_head(attrs) {
            Some(h) => Some(h),
            None => {
                tracing::warn!(next_hop = ?attrs.next_hop, "IPv6 announcement without an IPv6 next hop");
                return 0;
            }
        },
    };
    let overhead =
        UPDATE_FIXED + block.len() + mp_head.as_ref().map_or(0, |h| MP_ATTR_HEADER + h.len());
    let room = max_len(params).saturating_sub(overhead);
    // The longest prefix of the family must fit, or nothing can be sent.
    let longest = if family == Family::Ipv4Unicast { 5 } else { 17 };
    if room < longest {
        tracing::warn!(
            attrs_len = block.len(),
            "path attributes leave no room for NLRI"
        );
        return 0;
    }
    pack(prefixes, family, room, |nlri| {
        let start = begin_message(out, MessageType::Update);
        out.extend_from_slice(&[0, 0]);
        let mp_len = mp_head
            .as_ref()
            .map_or(0, |h| MP_ATTR_HEADER + h.len() + nlri.len());
        // Fits: overhead + nlri <= max_len <= 65535.
        out.extend_from_slice(&((mp_len + block.len()) as u16).to_be_bytes());
        if let Some(head) = &mp_head {
            out.extend_from_slice(&[OPT_NON_TRANS | FLAG_EXTENDED_LENGTH, attr::MP_REACH_NLRI]);
            out.extend_from_slice(&((head.len() + nlri.len()) as u16).to_be_bytes());
            out.extend_from_slice(head);
            out.extend_from_slice(nlri);
            out.extend_from_slice(&block);
        } else {
            out.extend_from_slice(&block);
            out.extend_from_slice(nlri);
        }
        finish_message(out, start);
    })
}

/// Append UPDATEs withdrawing `prefixes` (IPv4 in Withdrawn Routes, IPv6 in MP_UNREACH_NLRI),
/// split to the session's maximum message length. Returns the number of messages written.
pub fn encode_withdraw(params: &CodecParams, prefixes: &[IpNet], out: &mut Vec<u8>) -> usize {
    let max = max_len(params);
    let v4 = pack(
        prefixes,
        Family::Ipv4Unicast,
        max.saturating_sub(UPDATE_FIXED),
        |w| {
            let start = begin_message(out, MessageType::Update);
            out.extend_from_slice(&(w.len() as u16).to_be_bytes());
            out.extend_from_slice(w);
            out.extend_from_slice(&[0, 0]);
            finish_message(out, start);
        },
    );
    let (afi, safi) = Family::Ipv6Unicast.afi_safi();
    let room = max.saturating_sub(UPDATE_FIXED + MP_ATTR_HEADER + 3);
    let v6 = pack(prefixes, Family::Ipv6Unicast, room, |w| {
        let start = begin_message(out, MessageType::Update);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&((MP_ATTR_HEADER + 3 + w.len()) as u16).to_be_bytes());
        out.extend_from_slice(&[OPT_NON_TRANS | FLAG_EXTENDED_LENGTH, attr::MP_UNREACH_NLRI]);
        out.extend_from_slice(&((3 + w.len()) as u16).to_be_bytes());
        out.extend_from_slice(&afi.to_be_bytes());
        out.push(safi);
        out.extend_from_slice(w);
        finish_message(out, start);
    });
    v4 + v6
}

/// Append the End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE for IPv4 unicast,
/// an UPDATE holding only an empty MP_UNREACH_NLRI otherwise.
pub fn encode_end_of_rib(_params: &CodecParams, family: Family, out: &mut Vec<u8>) {
    let start = begin_message(out, MessageType::Update);
    match family {
        Family::Ipv4Unicast => out.extend_from_slice(&[0, 0, 0, 0]),
        Family::Ipv6Unicast => {
            let (afi, safi) = family.afi_safi();
            out.extend_from_slice(&[0, 0, 0, 6, OPT_NON_TRANS, attr::MP_UNREACH_NLRI, 3]);
            out.extend_from_slice(&afi.to_be_bytes());
            out.push(safi);
        }
    }
    finish_message(out, start);
}
