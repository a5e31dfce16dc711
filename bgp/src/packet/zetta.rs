//! The only place in Ginger that calls `zettabgp`: it decodes the parts of an UPDATE that the
//! validator has already proven well-formed, behind `catch_unwind` as a second wall.
//!
//! Owns: building the cleaned UPDATE body zettabgp sees (only validated attributes whose zettabgp
//! decoders are correct: ORIGIN, NEXT_HOP, MED, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR,
//! ORIGINATOR_ID, CLUSTER_LIST, MP_REACH/MP_UNREACH of negotiated families with the Reserved octet
//! zeroed, plus Withdrawn Routes and NLRI), the session parameters it runs with (IPv4 transport,
//! no `fuzzy_pathid`, no ADD-PATH), converting its output, cross-checking it against the walk,
//! and counting caught panics. Must not: see unvalidated bytes or decide RFC 7606 actions.

use std::net::{IpAddr, Ipv4Addr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use zettabgp::prelude::{
    BgpAddr, BgpAddrs, BgpAttrItem, BgpAttrOrigin, BgpMessage, BgpSessionParams, BgpTransportMode,
    BgpUpdateMessage,
};

use super::CodecParams;
use super::error::UpdateError;
use super::update_walk::{AttrSpan, UpdateWalk};
use crate::types::{Asn, Origin};

static PANICS_CAUGHT: AtomicU64 = AtomicU64::new(0);
static DISAGREEMENTS: AtomicU64 = AtomicU64::new(0);

/// How many panics inside zettabgp `catch_unwind` has caught in this process. Each one became a
/// session reset; with the validator in front it should stay zero.
pub fn zettabgp_panics_caught() -> u64 {
    PANICS_CAUGHT.load(Ordering::Relaxed)
}

/// How many validated UPDATEs zettabgp rejected or decoded differently from the validator (each
/// became a session reset with Malformed Attribute List). Should stay zero.
pub fn zettabgp_disagreements() -> u64 {
    DISAGREEMENTS.load(Ordering::Relaxed)
}

/// What zettabgp decoded, converted to Ginger's types.
#[derive(Debug, Default)]
pub(crate) struct CodecOutput {
    /// Withdrawn Routes field.
    pub withdrawn: Vec<IpNet>,
    /// MP_UNREACH_NLRI prefixes.
    pub mp_withdrawn: Vec<IpNet>,
    /// NLRI field.
    pub nlri: Vec<IpNet>,
    /// MP_REACH_NLRI prefixes.
    pub mp_nlri: Vec<IpNet>,
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// NEXT_HOP.
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR as on the wire (AS_TRANS not yet resolved).
    pub aggregator: Option<(Asn, Ipv4Addr)>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST.
    pub cluster_list: Vec<Ipv4Addr>,
}

fn rejected(reason: impl Into<String>) -> UpdateError {
    UpdateError::CodecRejected {
        reason: reason.into(),
    }
}

/// The zettabgp session parameters for a Ginger session (trap list: IPv4 transport mode on every
/// session, `fuzzy_pathid` off, no ADD-PATH capabilities).
fn session_params(params: &CodecParams) -> BgpSessionParams {
    let mut sp = BgpSessionParams::new(
        params.local_asn,
        0,
        BgpTransportMode::IPv4,
        Ipv4Addr::UNSPECIFIED,
        Vec::new(),
    );
    sp.has_as32bit = params.four_octet_as;
    sp.fuzzy_pathid = false;
    sp
}

fn copy_attr(body: &[u8], span: &AttrSpan, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&body[span.start..span.value.end]);
    start
}

/// The UPDATE body zettabgp gets: only what the walk validated, and for a treat-as-withdraw
/// message only the parts that carry prefixes.
fn cleaned_body(body: &[u8], walk: &UpdateWalk, with_attributes: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let withdrawn = &body[walk.withdrawn.clone()];
    out.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    out.extend_from_slice(withdrawn);
    let attrs_len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    if let Some(mp) = &walk.mp_reach {
        let start = copy_attr(body, &mp.span, &mut out);
        // zettabgp reads the Reserved octet as an SNPA count (RFC 2858); RFC 4760 says ignore it.
        let value_at = start + (mp.span.value.start - mp.span.start);
        let reserved_at = value_at + 4 + usize::from(out[value_at + 3]);
        out[reserved_at] = 0;
    }
    if let Some(mu) = &walk.mp_unreach {
        copy_attr(body, &mu.span, &mut out);
    }
    if with_attributes {
        for span in &walk.codec_attrs {
            copy_attr(body, span, &mut out);
        }
    }
    // A subset of the original attributes, so the length still fits in two octets.
    let attrs_len = (out.len() - attrs_len_at - 2) as u16;
    out[attrs_len_at..attrs_len_at + 2].copy_from_slice(&attrs_len.to_be_bytes());
    out.extend_from_slice(&body[walk.nlri.clone()]);
    out
}

/// Decode the validated UPDATE `body` with zettabgp. `with_attributes` is false for a
/// treat-as-withdraw message, where only prefixes matter.
pub(crate) fn decode_update(
    params: &CodecParams,
    body: &[u8],
    walk: &UpdateWalk,
    with_attributes: bool,
) -> Result<CodecOutput, UpdateError> {
    let result = decode_cleaned(params, body, walk, with_attributes);
    if result.is_err() {
        DISAGREEMENTS.fetch_add(1, Ordering::Relaxed);
    }
    result
}

fn decode_cleaned(
    params: &CodecParams,
    body: &[u8],
    walk: &UpdateWalk,
    with_attributes: bool,
) -> Result<CodecOutput, UpdateError> {
    let clean = cleaned_body(body, walk, with_attributes);
    let sp = session_params(params);
    let decoded = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut msg = BgpUpdateMessage::new();
        msg.decode_from(&sp, &clean).map(|()| msg)
    }));
    let msg = match decoded {
        Ok(Ok(msg)) => msg,
        Ok(Err(e)) => return Err(rejected(e.to_string())),
        Err(_) => {
            PANICS_CAUGHT.fetch_add(1, Ordering::Relaxed);
            return Err(rejected("zettabgp panicked"));
        }
    };
    let out = convert(msg)?;
    // Second wall: zettabgp must have seen exactly the prefixes the walk counted.
    let expect = (
        walk.withdrawn_count,
        walk.nlri_count,
        walk.mp_unreach.as_ref().map_or(0, |m| m.count),
        walk.mp_reach.as_ref().map_or(0, |m| m.count),
    );
    let got = (
        out.withdrawn.len(),
        out.nlri.len(),
        out.mp_withdrawn.len(),
        out.mp_nlri.len(),
    );
    if expect != got {
        return Err(rejected(format!(
            "prefix counts (withdrawn, nlri, mp_unreach, mp_reach) {got:?} differ from the validator's {expect:?}"
        )));
    }
    Ok(out)
}

fn prefixes(addrs: BgpAddrs, out: &mut Vec<IpNet>) -> Result<(), UpdateError> {
    match addrs {
        BgpAddrs::None => {}
        BgpAddrs::IPV4U(v) => {
            out.reserve(v.len());
            for a in v {
                let net = Ipv4Net::new(a.addr, a.prefixlen)
                    .map_err(|_| rejected(format!("IPv4 prefix length {}", a.prefixlen)))?;
                out.push(IpNet::V4(net.trunc()));
            }
        }
        BgpAddrs::IPV6U(v) => {
            out.reserve(v.len());
            for a in v {
                let net = Ipv6Net::new(a.addr, a.prefixlen)
                    .map_err(|_| rejected(format!("IPv6 prefix length {}", a.prefixlen)))?;
                out.push(IpNet::V6(net.trunc()));
            }
        }
        other => {
            return Err(rejected(format!(
                "unexpected NLRI kind {:?}",
                other.get_afi_safi()
            )));
        }
    }
    Ok(())
}

fn v4(addr: IpAddr, what: &str) -> Result<Ipv4Addr, UpdateError> {
    match addr {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(a) => Err(rejected(format!("{what} decoded as IPv6 {a}"))),
    }
}

fn convert(msg: BgpUpdateMessage) -> Result<CodecOutput, UpdateError> {
    let mut out = CodecOutput::default();
    prefixes(msg.withdraws, &mut out.withdrawn)?;
    prefixes(msg.updates, &mut out.nlri)?;
    for item in msg.attrs {
        match item {
            BgpAttrItem::Origin(o) => {
                out.origin = Some(match o.value {
                    BgpAttrOrigin::Igp => Origin::Igp,
                    BgpAttrOrigin::Egp => Origin::Egp,
                    BgpAttrOrigin::Incomplete => Origin::Incomplete,
                })
            }
            BgpAttrItem::NextHop(n) => out.next_hop = Some(v4(n.value, "NEXT_HOP")?),
            BgpAttrItem::MED(m) => out.med = Some(m.value),
            BgpAttrItem::LocalPref(l) => out.local_pref = Some(l.value),
            BgpAttrItem::AtomicAggregate(_) => out.atomic_aggregate = true,
            BgpAttrItem::AggregatorAS(a) => out.aggregator = Some((a.asn, a.addr)),
            BgpAttrItem::OriginatorID(o) => out.originator_id = Some(v4(o.value, "ORIGINATOR_ID")?),
            BgpAttrItem::ClusterList(c) => {
                out.cluster_list = c
                    .value
                    .into_iter()
                    .map(|a| v4(a, "CLUSTER_LIST"))
                    .collect::<Result<_, _>>()?
            }
            // The next hop comes from the walk: zettabgp drops the link-local half.
            BgpAttrItem::MPUpdates(u) => {
                if !matches!(u.nexthop, BgpAddr::V4(_) | BgpAddr::V6(_)) {
                    return Err(rejected("MP_REACH_NLRI next hop of an unexpected kind"));
                }
                prefixes(u.addrs, &mut out.mp_nlri)?
            }
            BgpAttrItem::MPWithdraws(w) => prefixes(w.addrs, &mut out.mp_withdrawn)?,
            other => return Err(rejected(format!("unexpected attribute {other:?}"))),
        }
    }
    Ok(out)
}
