//! The UPDATE validator: walks a whole UPDATE body (RFC 4271 §4.3) before any byte of it reaches
//! zettabgp, and classifies every problem per RFC 4271 §6.3 and RFC 7606.
//!
//! Owns: the structural checks (field lengths, prefix tiling, attribute headers, flags, per-type
//! sizes and shapes, MP_REACH/MP_UNREACH layout, duplicates) and the values zettabgp gets wrong
//! (AS_PATH/AS4_PATH segments, community order, MP next hops, unknown attributes). Must not:
//! build routes; `update` does that from the [`UpdateWalk`]. A session-reset error ends the walk
//! with `Err`; treat-as-withdraw and attribute-discard problems are collected and the walk goes on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use super::attr::{self, ErrorAction};
use super::error::{NlriField, UpdateError};
use super::{CodecParams, aspath, prefix};
use crate::types::{AsPath, Asn, Community, Family, LargeCommunity, RawAttr};

/// Where one attribute sits in the UPDATE body.
#[derive(Clone, Debug)]
pub(crate) struct AttrSpan {
    /// Attribute flags.
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Offset of the flags octet.
    pub start: usize,
    /// The value bytes.
    pub value: Range<usize>,
}

/// A validated MP_REACH_NLRI for a negotiated family.
#[derive(Clone, Debug)]
pub(crate) struct MpReach {
    /// The attribute.
    pub span: AttrSpan,
    /// Next hop (global address for IPv6).
    pub next_hop: IpAddr,
    /// IPv6 link-local next hop from a 32-byte next-hop field (RFC 2545 §3).
    pub link_local: Option<Ipv6Addr>,
    /// Number of prefixes in its NLRI.
    pub count: usize,
}

/// A validated MP_UNREACH_NLRI for a negotiated family.
#[derive(Clone, Debug)]
pub(crate) struct MpUnreach {
    /// The attribute.
    pub span: AttrSpan,
    /// Its family.
    pub family: Family,
    /// Number of withdrawn prefixes.
    pub count: usize,
}

/// Everything the walk established about one UPDATE body.
#[derive(Debug, Default)]
pub(crate) struct UpdateWalk {
    /// Withdrawn Routes field (without its length).
    pub withdrawn: Range<usize>,
    /// Prefixes in it.
    pub withdrawn_count: usize,
    /// NLRI field.
    pub nlri: Range<usize>,
    /// Prefixes in it.
    pub nlri_count: usize,
    /// Attribute headers seen (valid or not), for End-of-RIB detection.
    pub attr_count: usize,
    /// Valid attributes whose values zettabgp decodes, first of each type, in wire order.
    pub codec_attrs: Vec<AttrSpan>,
    /// MP_REACH_NLRI, if present, valid and for a negotiated family.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI, if present, valid and for a negotiated family.
    pub mp_unreach: Option<MpUnreach>,
    /// AS_PATH as received (ASN width per session).
    pub as_path: Option<AsPath>,
    /// AS4_PATH, only on 2-octet sessions.
    pub as4_path: Option<AsPath>,
    /// AS4_AGGREGATOR, only on 2-octet sessions.
    pub as4_aggregator: Option<(Asn, Ipv4Addr)>,
    /// ORIGIN present (valid or not): for the missing-attribute check.
    pub has_origin: bool,
    /// NEXT_HOP present (valid or not).
    pub has_next_hop: bool,
    /// COMMUNITIES in received order (zettabgp would sort and deduplicate them).
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY in received order.
    pub large_communities: Vec<LargeCommunity>,
    /// Optional transitive attributes Ginger passes on without interpreting.
    pub other: Vec<RawAttr>,
    /// Errors that call for treat-as-withdraw.
    pub withdraw_reasons: Vec<UpdateError>,
    /// Attributes discarded or ignored, one line each.
    pub discarded: Vec<String>,
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be_u32(b: &[u8]) -> u32 {
    b.iter()
        .take(4)
        .fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
}

/// Walk an UPDATE body (the message without its 19-byte header).
pub(crate) fn walk(params: &CodecParams, body: &[u8]) -> Result<UpdateWalk, UpdateError> {
    let overrun = |withdrawn_len, attrs_len| UpdateError::LengthsOverrun {
        withdrawn_len,
        attrs_len,
        body_len: body.len(),
    };
    let withdrawn_len = be_u16(body, 0).ok_or_else(|| overrun(0, 0))?;
    let withdrawn = 2..2 + withdrawn_len as usize;
    let attrs_len = be_u16(body, withdrawn.end).ok_or_else(|| overrun(withdrawn_len, 0))?;
    let attrs = withdrawn.end + 2..withdrawn.end + 2 + attrs_len as usize;
    if attrs.end > body.len() {
        return Err(overrun(withdrawn_len, attrs_len));
    }
    let nlri = attrs.end..body.len();

    let mut w = UpdateWalk {
        withdrawn_count: count_field(&body[withdrawn.clone()], NlriField::Withdrawn)?,
        nlri_count: count_field(&body[nlri.clone()], NlriField::Nlri)?,
        withdrawn,
        nlri,
        ..UpdateWalk::default()
    };
    walk_attributes(&mut w, params, body, attrs)?;

    // RFC 7606 §3 d: mandatory attributes missing while the message announces something.
    // Skipped when the attribute list was cut short: later attributes were never seen.
    let cut_short = w.withdraw_reasons.iter().any(|e| {
        matches!(
            e,
            UpdateError::AttributeListTruncated { .. } | UpdateError::AttributeOverrun { .. }
        )
    });
    let announces_mp = w.mp_reach.as_ref().is_some_and(|m| m.count > 0);
    if !cut_short && (w.nlri_count > 0 || announces_mp) {
        let mut missing = Vec::new();
        if !w.has_origin {
            missing.push(attr::ORIGIN);
        }
        if w.as_path.is_none() && !w.withdraw_reasons.iter().any(is_as_path_error) {
            missing.push(attr::AS_PATH);
        }
        if w.nlri_count > 0 && !w.has_next_hop {
            missing.push(attr::NEXT_HOP);
        }
        for type_code in missing {
            w.withdraw_reasons
                .push(UpdateError::MissingWellKnown { type_code });
        }
    }
    Ok(w)
}

fn is_as_path_error(e: &UpdateError) -> bool {
    matches!(e,
        UpdateError::MalformedAsPath { type_code, .. }
        | UpdateError::AttributeFlags { type_code, .. } if *type_code == attr::AS_PATH)
}

fn count_field(field: &[u8], which: NlriField) -> Result<usize, UpdateError> {
    prefix::count(field, 32).map_err(|(offset, reason)| UpdateError::InvalidNetworkField {
        field: which,
        offset,
        reason,
    })
}

/// Walk the path attributes in `range` of `body`.
fn walk_attributes(
    w: &mut UpdateWalk,
    params: &CodecParams,
    body: &[u8],
    range: Range<usize>,
) -> Result<(), UpdateError> {
    let mut seen = [false; 256];
    let mut pos = range.start;
    while pos < range.end {
        let remaining = range.end - pos;
        let flags = body[pos];
        let header_len = if flags & attr::FLAG_EXTENDED_LENGTH != 0 {
            4
        } else {
            3
        };
        if remaining < header_len {
            // RFC 7606 §4: not enough left for an attribute header.
            return record(w, UpdateError::AttributeListTruncated { remaining });
        }
        let type_code = body[pos + 1];
        let len = if header_len == 4 {
            u16::from_be_bytes([body[pos + 2], body[pos + 3]]) as usize
        } else {
            body[pos + 2] as usize
        };
        let value = pos + header_len..pos + header_len + len;
        if value.end > range.end {
            // RFC 7606 §4: the attribute overruns the list; the rest cannot be trusted.
            return record(
                w,
                UpdateError::AttributeOverrun {
                    type_code,
                    declared: len,
                    remaining: range.end - value.start,
                    attr: body[pos..range.end].to_vec(),
                },
            );
        }
        w.attr_count += 1;
        let span = AttrSpan {
            flags,
            type_code,
            start: pos,
            value: value.clone(),
        };
        pos = value.end;

        if seen[type_code as usize] {
            let dup = if matches!(type_code, attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI) {
                UpdateError::DuplicateMpAttribute { type_code }
            } else {
                UpdateError::DuplicateAttribute { type_code }
            };
            record(w, dup)?;
            continue;
        }
        seen[type_code as usize] = true;
        check_attribute(w, params, body, span)?;
    }
    Ok(())
}

/// Sort an error into the walk by its RFC 7606 approach; `Err` for a session reset.
fn record(w: &mut UpdateWalk, e: UpdateError) -> Result<(), UpdateError> {
    match e.action() {
        ErrorAction::SessionReset => return Err(e),
        ErrorAction::TreatAsWithdraw => w.withdraw_reasons.push(e),
        ErrorAction::AttributeDiscard => w.discarded.push(e.to_string()),
    }
    Ok(())
}

/// Validate one (first-of-its-type) attribute and keep what the walk owns of it.
fn check_attribute(
    w: &mut UpdateWalk,
    params: &CodecParams,
    body: &[u8],
    span: AttrSpan,
) -> Result<(), UpdateError> {
    let type_code = span.type_code;
    let v = &body[span.value.clone()];
    let whole = || body[span.start..span.value.end].to_vec();
    let length_error = |expected: &'static str| UpdateError::AttributeLength {
        type_code,
        len: v.len(),
        expected,
        attr: whole(),
    };

    if type_code == attr::ORIGIN {
        w.has_origin = true;
    }
    if type_code == attr::NEXT_HOP {
        w.has_next_hop = true;
    }

    if !attr::is_recognised(type_code) {
        if span.flags & attr::FLAG_OPTIONAL == 0 {
            return Err(UpdateError::UnrecognizedWellKnown {
                type_code,
                attr: whole(),
            });
        }
        if span.flags & attr::FLAG_TRANSITIVE != 0 {
            w.other.push(RawAttr {
                flags: span.flags,
                type_code,
                value: v.to_vec(),
            });
        }
        // Unknown optional non-transitive attributes are quietly dropped (RFC 4271 §5).
        return Ok(());
    }

    if attr::flags_conflict(type_code, span.flags) {
        let e = UpdateError::AttributeFlags {
            type_code,
            flags: span.flags,
            attr: whole(),
        };
        return record_unless_ignored(w, e, type_code);
    }

    let asn_size = if params.four_octet_as { 4 } else { 2 };
    let problem = match type_code {
        attr::ORIGIN if v.len() != 1 => Some(length_error("1")),
        attr::ORIGIN if v[0] > 2 => Some(UpdateError::InvalidOrigin {
            value: v[0],
            attr: whole(),
        }),
        attr::NEXT_HOP if v.len() != 4 => Some(length_error("4")),
        attr::NEXT_HOP => {
            let addr = Ipv4Addr::new(v[0], v[1], v[2], v[3]);
            // Not a host address: 0.0.0.0/8, multicast, 240.0.0.0/4 and broadcast.
            (addr.octets()[0] == 0 || addr.octets()[0] >= 224).then(|| {
                UpdateError::InvalidNextHop {
                    addr,
                    attr: whole(),
                }
            })
        }
        attr::MULTI_EXIT_DISC | attr::LOCAL_PREF | attr::ORIGINATOR_ID if v.len() != 4 => {
            Some(length_error("4"))
        }
        attr::ATOMIC_AGGREGATE if !v.is_empty() => Some(length_error("0")),
        attr::AGGREGATOR if v.len() != 4 + asn_size => {
            Some(length_error(if asn_size == 4 { "8" } else { "6" }))
        }
        attr::COMMUNITIES | attr::CLUSTER_LIST if v.is_empty() || !v.len().is_multiple_of(4) => {
            Some(length_error("a non-zero multiple of 4"))
        }
        attr::EXTENDED_COMMUNITIES if v.is_empty() || !v.len().is_multiple_of(8) => {
            Some(length_error("a non-zero multiple of 8"))
        }
        attr::LARGE_COMMUNITY if v.is_empty() || !v.len().is_multiple_of(12) => {
            Some(length_error("a non-zero multiple of 12"))
        }
        attr::AS4_AGGREGATOR if v.len() != 8 => Some(length_error("8")),
        attr::AS_PATH => match aspath::parse(v, asn_size) {
            Ok(path) => {
                w.as_path = Some(path);
                None
            }
            Err(reason) => Some(UpdateError::MalformedAsPath {
                type_code,
                reason,
                attr: whole(),
            }),
        },
        attr::AS4_PATH => match aspath::parse(v, 4) {
            Ok(path) if path.segments.iter().any(|s| s.type_code() > 2) => {
                Some(UpdateError::MalformedAsPath {
                    type_code,
                    reason: "it carries confederation segments",
                    attr: whole(),
                })
            }
            Ok(path) => {
                w.as4_path = Some(path);
                None
            }
            Err(reason) => Some(UpdateError::MalformedAsPath {
                type_code,
                reason,
                attr: whole(),
            }),
        },
        attr::MP_REACH_NLRI => {
            check_mp_reach(w, params, body, &span)?;
            return Ok(());
        }
        attr::MP_UNREACH_NLRI => {
            check_mp_unreach(w, params, body, &span)?;
            return Ok(());
        }
        _ => None,
    };
    if let Some(e) = problem {
        return record_unless_ignored(w, e, type_code);
    }

    // Valid. Keep the values zettabgp would get wrong, hand the rest to it.
    match type_code {
        attr::COMMUNITIES => w.communities = v.chunks_exact(4).map(be_u32).collect(),
        attr::LARGE_COMMUNITY => {
            w.large_communities = v
                .chunks_exact(12)
                .map(|c| LargeCommunity {
                    global: be_u32(&c[0..4]),
                    local1: be_u32(&c[4..8]),
                    local2: be_u32(&c[8..12]),
                })
                .collect();
        }
        attr::EXTENDED_COMMUNITIES => w.other.push(RawAttr {
            flags: span.flags,
            type_code,
            value: v.to_vec(),
        }),
        attr::AS4_AGGREGATOR => {
            w.as4_aggregator = Some((be_u32(&v[0..4]), Ipv4Addr::new(v[4], v[5], v[6], v[7])))
        }
        attr::AS_PATH | attr::AS4_PATH => {}
        attr::NEXT_HOP if w.nlri_count == 0 => {}
        _ => w.codec_attrs.push(span),
    }
    if params.four_octet_as && matches!(type_code, attr::AS4_PATH | attr::AS4_AGGREGATOR) {
        // RFC 6793 §4.1: a NEW speaker ignores these from another NEW speaker.
        w.as4_path = None;
        w.as4_aggregator = None;
        w.discarded.push(format!(
            "{} ignored on a 4-octet AS session (RFC 6793 §4.1)",
            attr::name(type_code)
        ));
    }
    Ok(())
}

/// Record a malformed attribute, except where RFC 7606 says to ignore it instead: NEXT_HOP in a
/// message without an NLRI field (§5.2 via RFC 4760 §3), AS4_* on a 4-octet session (RFC 6793).
fn record_unless_ignored(
    w: &mut UpdateWalk,
    e: UpdateError,
    type_code: u8,
) -> Result<(), UpdateError> {
    if type_code == attr::NEXT_HOP && w.nlri_count == 0 {
        w.discarded.push(format!("ignored: {e}"));
        return Ok(());
    }
    record(w, e)
}

/// The negotiated family for a wire (AFI, SAFI), or a note that the attribute is ignored.
fn negotiated_family(
    w: &mut UpdateWalk,
    params: &CodecParams,
    afi: u16,
    safi: u8,
    type_code: u8,
) -> Option<Family> {
    match Family::from_afi_safi(afi, safi) {
        Some(f) if params.families.contains(&f) => Some(f),
        _ => {
            w.discarded.push(format!(
                "{} for AFI {afi} SAFI {safi} ignored: family not negotiated",
                attr::name(type_code)
            ));
            None
        }
    }
}

fn mp_error(body: &[u8], span: &AttrSpan, reason: String) -> UpdateError {
    UpdateError::MalformedMpAttribute {
        type_code: span.type_code,
        reason,
        attr: body[span.start..span.value.end].to_vec(),
    }
}

fn max_bits(family: Family) -> u8 {
    match family {
        Family::Ipv4Unicast => 32,
        Family::Ipv6Unicast => 128,
    }
}

/// MP_REACH_NLRI (RFC 4760 §3): AFI, SAFI, next-hop length and next hop, reserved, NLRI.
fn check_mp_reach(
    w: &mut UpdateWalk,
    params: &CodecParams,
    body: &[u8],
    span: &AttrSpan,
) -> Result<(), UpdateError> {
    let v = &body[span.value.clone()];
    if v.len() < 5 {
        return Err(mp_error(
            body,
            span,
            format!("length {} is below the 5-byte minimum", v.len()),
        ));
    }
    let afi = u16::from_be_bytes([v[0], v[1]]);
    let nh_len = v[3] as usize;
    if v.len() < 5 + nh_len {
        return Err(mp_error(
            body,
            span,
            format!("next-hop length {nh_len} runs past the attribute"),
        ));
    }
    let Some(family) = negotiated_family(w, params, afi, v[2], span.type_code) else {
        return Ok(());
    };
    let nh = &v[4..4 + nh_len];
    let octets16 = |b: &[u8]| -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16]);
        a
    };
    let (next_hop, link_local) = match (family, nh_len) {
        (Family::Ipv4Unicast, 4) => (IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3])), None),
        (Family::Ipv6Unicast, 16) => (IpAddr::V6(Ipv6Addr::from(octets16(nh))), None),
        (Family::Ipv6Unicast, 32) => {
            let ll = Ipv6Addr::from(octets16(&nh[16..]));
            // RFC 2545 §3: the second address is link-local; anything else is not usable as one.
            let ll = ll.is_unicast_link_local().then_some(ll);
            (IpAddr::V6(Ipv6Addr::from(octets16(nh))), ll)
        }
        _ => {
            return Err(mp_error(
                body,
                span,
                format!("next-hop length {nh_len} is invalid for {family}"),
            ));
        }
    };
    // The octet after the next hop is Reserved (was SNPA count) and is ignored (RFC 4760 §3).
    let nlri = &v[5 + nh_len..];
    let count = prefix::count(nlri, max_bits(family)).map_err(|(offset, reason)| {
        mp_error(body, span, format!("NLRI {reason} at offset {offset}"))
    })?;
    w.mp_reach = Some(MpReach {
        span: span.clone(),
        next_hop,
        link_local,
        count,
    });
    Ok(())
}

/// MP_UNREACH_NLRI (RFC 4760 §4): AFI, SAFI, withdrawn routes.
fn check_mp_unreach(
    w: &mut UpdateWalk,
    params: &CodecParams,
    body: &[u8],
    span: &AttrSpan,
) -> Result<(), UpdateError> {
    let v = &body[span.value.clone()];
    if v.len() < 3 {
        return Err(mp_error(
            body,
            span,
            format!("length {} is below the 3-byte minimum", v.len()),
        ));
    }
    let afi = u16::from_be_bytes([v[0], v[1]]);
    let Some(family) = negotiated_family(w, params, afi, v[2], span.type_code) else {
        return Ok(());
    };
    let count = prefix::count(&v[3..], max_bits(family)).map_err(|(offset, reason)| {
        mp_error(
            body,
            span,
            format!("withdrawn routes: {reason} at offset {offset}"),
        )
    })?;
    w.mp_unreach = Some(MpUnreach {
        span: span.clone(),
        family,
        count,
    });
    Ok(())
}
