//! UPDATE decoding: turns a validated walk plus zettabgp's values into an [`UpdateMsg`], applying
//! RFC 7606 (treat-as-withdraw, attribute discard), RFC 4724 End-of-RIB detection and the
//! RFC 6793 §4.2.3 AS4 merge on 2-octet sessions.
//!
//! Owns: the shape of `UpdateMsg` (one `Arc<PathAttrs>` per announced family). Must not: check
//! bytes (that is `update_walk`) or call zettabgp directly (that is `zetta`).

use std::sync::Arc;

use super::error::UpdateError;
use super::update_walk::{self, UpdateWalk};
use super::zetta::{self, CodecOutput};
use super::{Announce, CodecParams, UpdateMsg};
use crate::types::{AS_TRANS, AsPath, Asn, Family, PathAttrs};

/// Decode an UPDATE body (without the header). `Err` only for a session reset.
pub(crate) fn decode_update(params: &CodecParams, body: &[u8]) -> Result<UpdateMsg, UpdateError> {
    let mut walk = update_walk::walk(params, body)?;
    if let Some(family) = end_of_rib(&walk) {
        return Ok(UpdateMsg {
            end_of_rib: Some(family),
            discarded: walk.discarded,
            ..UpdateMsg::default()
        });
    }

    let treat_as_withdraw = !walk.withdraw_reasons.is_empty();
    let out = zetta::decode_update(params, body, &walk, !treat_as_withdraw)?;
    let mut msg = UpdateMsg {
        withdrawn: out.withdrawn,
        discarded: std::mem::take(&mut walk.discarded),
        ..UpdateMsg::default()
    };
    msg.withdrawn.extend(out.mp_withdrawn);

    if treat_as_withdraw {
        // RFC 7606 §2: every prefix the message announces is withdrawn instead.
        msg.withdrawn.extend(out.nlri);
        msg.withdrawn.extend(out.mp_nlri);
        let reasons: Vec<String> = walk
            .withdraw_reasons
            .iter()
            .map(|e| e.to_string())
            .collect();
        msg.treat_as_withdraw = Some(reasons.join("; "));
        return Ok(msg);
    }
    if out.nlri.is_empty() && out.mp_nlri.is_empty() {
        return Ok(msg);
    }

    let CodecOutput {
        nlri,
        mp_nlri,
        origin,
        next_hop,
        med,
        local_pref,
        atomic_aggregate,
        aggregator,
        originator_id,
        cluster_list,
        ..
    } = out;
    let (Some(origin), Some(as_path)) = (origin, walk.as_path.take()) else {
        // The walk turned a missing ORIGIN or AS_PATH into treat-as-withdraw already.
        return Err(UpdateError::CodecRejected {
            reason: "ORIGIN or AS_PATH vanished after validation".into(),
        });
    };
    let (as_path, aggregator) =
        resolve_as4(params, &mut walk, as_path, aggregator, &mut msg.discarded);
    let attrs = PathAttrs {
        origin,
        as_path,
        next_hop: None,
        link_local_next_hop: None,
        med,
        local_pref,
        atomic_aggregate,
        aggregator,
        communities: std::mem::take(&mut walk.communities),
        large_communities: std::mem::take(&mut walk.large_communities),
        originator_id,
        cluster_list,
        other: std::mem::take(&mut walk.other),
    };

    let mp_group = walk
        .mp_reach
        .as_ref()
        .filter(|_| !mp_nlri.is_empty())
        .map(|mp| {
            let mut a = attrs.clone();
            a.next_hop = Some(mp.next_hop);
            a.link_local_next_hop = mp.link_local;
            Announce {
                attrs: Arc::new(a),
                prefixes: mp_nlri,
            }
        });
    if !nlri.is_empty() {
        let mut a = attrs;
        a.next_hop = next_hop.map(Into::into);
        msg.announced.push(Announce {
            attrs: Arc::new(a),
            prefixes: nlri,
        });
    }
    msg.announced.extend(mp_group);
    Ok(msg)
}

/// RFC 4724 §2: an UPDATE with nothing in it is the IPv4 unicast End-of-RIB; one holding only an
/// empty MP_UNREACH_NLRI is the End-of-RIB of that attribute's family.
fn end_of_rib(walk: &UpdateWalk) -> Option<Family> {
    if !walk.withdrawn.is_empty() || !walk.nlri.is_empty() || !walk.withdraw_reasons.is_empty() {
        return None;
    }
    match (walk.attr_count, &walk.mp_unreach, &walk.mp_reach) {
        (0, None, None) => Some(Family::Ipv4Unicast),
        (1, Some(mu), None) if mu.count == 0 => Some(mu.family),
        _ => None,
    }
}

/// RFC 6793 §4.2.3 on 2-octet sessions: AGGREGATOR with an AS other than AS_TRANS means an OLD
/// speaker aggregated, so AS4_AGGREGATOR and AS4_PATH are ignored; otherwise AS4_AGGREGATOR
/// replaces AGGREGATOR and AS4_PATH is merged into AS_PATH.
fn resolve_as4(
    params: &CodecParams,
    walk: &mut UpdateWalk,
    as_path: AsPath,
    aggregator: Option<(Asn, std::net::Ipv4Addr)>,
    discarded: &mut Vec<String>,
) -> (AsPath, Option<(Asn, std::net::Ipv4Addr)>) {
    let as4_path = walk.as4_path.take();
    let as4_aggregator = walk.as4_aggregator.take();
    if params.four_octet_as {
        return (as_path, aggregator);
    }
    let aggregator = match (aggregator, as4_aggregator) {
        (Some((asn, _)), _) if asn != AS_TRANS => {
            if as4_path.is_some() || as4_aggregator.is_some() {
                discarded.push(
                    "AS4_PATH/AS4_AGGREGATOR ignored: AGGREGATOR names a 2-octet AS (RFC 6793 §4.2.3)"
                        .into(),
                );
            }
            return (as_path, aggregator);
        }
        (Some(_), Some(as4)) => Some(as4),
        (None, Some(_)) => {
            discarded.push("AS4_AGGREGATOR ignored: no AGGREGATOR (RFC 6793 §4.2.3)".into());
            None
        }
        (agg, None) => agg,
    };
    let as_path = match as4_path {
        None => as_path,
        Some(as4) => match super::aspath::merge_as4_path(&as_path, &as4) {
            Some(merged) => merged,
            None => {
                discarded.push(
                    "AS4_PATH ignored: it holds more ASes than AS_PATH (RFC 6793 §4.2.3)".into(),
                );
                as_path
            }
        },
    };
    (as_path, aggregator)
}
