//! ROUTE-REFRESH messages (RFC 2918 §3, RFC 7313 §3 subtypes): AFI, subtype, SAFI.
//!
//! Owns: the 4-byte body. Must not: act on refresh requests. Subtypes other than 0–2 are passed
//! up unchanged; RFC 7313 §5 has the receiver ignore them, which is the session's call.

use super::header::{begin_message, finish_message};
use super::{AfiSafi, MessageType, RouteRefreshMsg};

/// Decode a ROUTE-REFRESH body; the header check has guaranteed exactly 4 bytes.
pub(crate) fn decode_route_refresh(body: &[u8]) -> Option<RouteRefreshMsg> {
    let [afi_hi, afi_lo, subtype, safi] = body else {
        return None;
    };
    Some(RouteRefreshMsg {
        afi_safi: AfiSafi {
            afi: u16::from_be_bytes([*afi_hi, *afi_lo]),
            safi: *safi,
        },
        subtype: *subtype,
    })
}

/// Append a whole ROUTE-REFRESH.
pub fn encode_route_refresh(rr: &RouteRefreshMsg, out: &mut Vec<u8>) {
    let start = begin_message(out, MessageType::RouteRefresh);
    out.extend_from_slice(&rr.afi_safi.afi.to_be_bytes());
    out.extend_from_slice(&[rr.subtype, rr.afi_safi.safi]);
    finish_message(out, start);
}
