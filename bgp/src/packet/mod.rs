//! The BGP wire format: Ginger's guard around `zettabgp`.
//!
//! Owns: framing (the 19-byte header), decoding and encoding of OPEN, UPDATE, NOTIFICATION,
//! KEEPALIVE and ROUTE-REFRESH, RFC 4271 §6 / RFC 7606 error classification, AS4 handling
//! towards 2-octet peers, and splitting UPDATEs to the negotiated size.
//! Must not: do I/O, keep session state, negotiate capabilities (that is `negotiate`), or panic on
//! any input. Bytes from the network are validated here before any of them reach `zettabgp`
//! (see `shared/reference/zettabgp.md`); `catch_unwind` around the zettabgp call is a second wall.
//!
//! Data enters as `&[u8]` frames cut by [`frame_len`] and leaves as [`Message`]; outbound messages
//! are appended to a `Vec<u8>` that the session writes to its socket.
//!
//! Map: `header` (framing), `open`, `notification`, `route_refresh`; for UPDATEs `update_walk`
//! (the validator and RFC 7606 classifier), `zetta` (the only zettabgp caller), `update` (builds
//! [`UpdateMsg`]), `update_encode` (announce/withdraw/End-of-RIB with splitting), `aspath` (AS
//! paths and RFC 6793), `prefix` (NLRI), `attr` (attribute table), `error` (typed errors and
//! their one mapping to [`Notification`]).

mod aspath;
pub mod attr;
pub mod error;
mod header;
pub mod notification;
mod open;
mod prefix;
mod route_refresh;
mod update;
mod update_encode;
mod update_walk;
mod zetta;

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use attr::ErrorAction;
pub use error::{HeaderError, NlriField, OpenError, UpdateError};
pub use header::frame_len;
pub use notification::{Notification, encode_notification};
pub use open::encode_open;
pub use route_refresh::encode_route_refresh;
pub use update_encode::{encode_announce, encode_end_of_rib, encode_withdraw};
pub use zetta::{zettabgp_disagreements, zettabgp_panics_caught};

use crate::types::{Asn, Family, PathAttrs};

/// Length of the fixed header (marker, length, type).
pub const HEADER_LEN: usize = 19;
/// Maximum message size without the Extended Message capability (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Maximum message size with the Extended Message capability (RFC 8654).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// The BGP version Ginger speaks.
pub const BGP_VERSION: u8 = 4;

/// Message type codes (RFC 4271 §4.1, RFC 2918).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum MessageType {
    /// 1
    Open = 1,
    /// 2
    Update = 2,
    /// 3
    Notification = 3,
    /// 4
    Keepalive = 4,
    /// 5 (RFC 2918)
    RouteRefresh = 5,
}

/// One decoded BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// OPEN (RFC 4271 §4.2).
    Open(OpenMsg),
    /// UPDATE (RFC 4271 §4.3), already validated and classified per RFC 7606.
    Update(UpdateMsg),
    /// NOTIFICATION (RFC 4271 §4.5).
    Notification(Notification),
    /// KEEPALIVE (RFC 4271 §4.4).
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918, RFC 7313 subtypes).
    RouteRefresh(RouteRefreshMsg),
}

impl Message {
    /// The message type, for counters and logs.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }
}

/// An OPEN message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenMsg {
    /// Protocol version (4).
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS when the real ASN needs 4 octets).
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities from all Capabilities optional parameters, in order (RFC 5492).
    pub capabilities: Vec<Capability>,
}

impl OpenMsg {
    /// The sender's real AS: the 4-octet AS capability if present, else `my_as` (RFC 6793 §4.1).
    pub fn asn(&self) -> Asn {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(self.my_as as Asn)
    }
}

/// A wire (AFI, SAFI) pair; kept raw so that families Ginger does not carry can still be listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AfiSafi {
    /// Address Family Identifier.
    pub afi: u16,
    /// Subsequent Address Family Identifier.
    pub safi: u8,
}

impl AfiSafi {
    /// The pair for a family Ginger carries.
    pub fn of(family: Family) -> AfiSafi {
        let (afi, safi) = family.afi_safi();
        AfiSafi { afi, safi }
    }

    /// The family, if Ginger carries it.
    pub fn family(self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }
}

/// Graceful restart capability (RFC 4724 §3, RFC 8538 N bit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GracefulRestartCap {
    /// R bit: the sender has restarted and is in restart state.
    pub restarting: bool,
    /// N bit (RFC 8538): graceful NOTIFICATION supported.
    pub notification: bool,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Families with the F bit (forwarding state preserved).
    pub families: Vec<(AfiSafi, bool)>,
}

/// ADD-PATH send/receive mode for one family (RFC 7911 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPathEntry {
    /// The family.
    pub afi_safi: AfiSafi,
    /// 1 = receive, 2 = send, 3 = both.
    pub send_receive: u8,
}

/// One capability (RFC 5492) from an OPEN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Capability {
    /// Code 1: Multiprotocol Extensions (RFC 4760).
    MultiProtocol(AfiSafi),
    /// Code 2: Route Refresh (RFC 2918).
    RouteRefresh,
    /// Code 5: Extended Next Hop Encoding (RFC 8950), carried as (NLRI AFI, SAFI, next-hop AFI).
    ExtendedNextHop(Vec<(u16, u16, u16)>),
    /// Code 6: Extended Message (RFC 8654).
    ExtendedMessage,
    /// Code 64: Graceful Restart (RFC 4724).
    GracefulRestart(GracefulRestartCap),
    /// Code 65: 4-octet AS numbers (RFC 6793).
    FourOctetAs(Asn),
    /// Code 69: ADD-PATH (RFC 7911).
    AddPath(Vec<AddPathEntry>),
    /// Code 70: Enhanced Route Refresh (RFC 7313).
    EnhancedRouteRefresh,
    /// Code 71: Long-Lived Graceful Restart (RFC 9494), carried raw.
    LongLivedGracefulRestart(Vec<u8>),
    /// Code 73: FQDN (draft-walton-bgp-hostname-capability), as FRR sends it.
    Fqdn {
        /// Host name.
        hostname: String,
        /// Domain name (may be empty).
        domain: String,
    },
    /// Any other capability, kept verbatim.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// A validated UPDATE message.
///
/// IPv4 NLRI and MP_REACH_NLRI routes may share one message; each gets its own `Announce` since
/// their next hops differ. RFC 7606 treat-as-withdraw turns every prefix of the message into a
/// withdrawal and records why in `treat_as_withdraw`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateMsg {
    /// Withdrawn Routes plus MP_UNREACH_NLRI prefixes.
    pub withdrawn: Vec<IpNet>,
    /// Reachable prefixes grouped by the attributes they share (at most one group per family).
    pub announced: Vec<Announce>,
    /// Set when this UPDATE is the End-of-RIB marker for a family (RFC 4724 §2).
    pub end_of_rib: Option<Family>,
    /// Set when RFC 7606 treat-as-withdraw applied: the reason, for the log.
    pub treat_as_withdraw: Option<String>,
    /// Attributes discarded under RFC 7606 (attribute discard): one line each, for the log.
    pub discarded: Vec<String>,
}

/// Prefixes announced with one attribute set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    /// The attributes, with `next_hop` set for this group's family.
    pub attrs: Arc<PathAttrs>,
    /// The prefixes.
    pub prefixes: Vec<IpNet>,
}

/// A ROUTE-REFRESH message (RFC 2918; subtype per RFC 7313: 0 request, 1 BoRR, 2 EoRR).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRefreshMsg {
    /// The family asked for.
    pub afi_safi: AfiSafi,
    /// 0 = normal request, 1 = Begin-of-RR, 2 = End-of-RR.
    pub subtype: u8,
}

/// What decoding and encoding depend on once a session is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecParams {
    /// Both sides advertised the 4-octet AS capability.
    pub four_octet_as: bool,
    /// The largest message either side may send (4096, or 65535 with Extended Message).
    pub max_message_len: usize,
    /// Our own AS (for AS4 / AS_TRANS encoding towards 2-octet peers).
    pub local_asn: Asn,
    /// The families negotiated for this session.
    pub families: Vec<Family>,
}

impl Default for CodecParams {
    /// What applies before OPENs are exchanged: 2-octet AS, 4096-byte messages, IPv4 unicast.
    fn default() -> Self {
        CodecParams {
            four_octet_as: false,
            max_message_len: MAX_MESSAGE_LEN,
            local_asn: 0,
            families: vec![Family::Ipv4Unicast],
        }
    }
}

/// Decode one whole message as cut by [`frame_len`] (header included).
///
/// `Err` is the NOTIFICATION to send before closing (RFC 4271 §6, RFC 7606 session reset).
/// RFC 7606 treat-as-withdraw and attribute discard come back as `Ok(Message::Update(..))` with
/// `treat_as_withdraw` / `discarded` filled in.
pub fn decode(params: &CodecParams, frame: &[u8]) -> Result<Message, Notification> {
    let (len, msg_type) = match header::check_header(frame, params.max_message_len)? {
        Some(h) => h,
        None => {
            return Err(HeaderError::BadLength {
                len: frame.len().min(u16::MAX as usize) as u16,
                type_code: 0,
                max: params.max_message_len,
            }
            .into());
        }
    };
    if len != frame.len() {
        // The frame does not hold exactly the message its header describes.
        return Err(HeaderError::BadLength {
            len: len as u16,
            type_code: msg_type as u8,
            max: params.max_message_len,
        }
        .into());
    }
    let body = &frame[HEADER_LEN..];
    match msg_type {
        MessageType::Open => Ok(Message::Open(open::decode_open(body)?)),
        MessageType::Update => Ok(Message::Update(update::decode_update(params, body)?)),
        MessageType::Notification => notification::decode_notification(body)
            .map(Message::Notification)
            .ok_or_else(|| short(msg_type, len, params)),
        MessageType::Keepalive => Ok(Message::Keepalive),
        MessageType::RouteRefresh => route_refresh::decode_route_refresh(body)
            .map(Message::RouteRefresh)
            .ok_or_else(|| short(msg_type, len, params)),
    }
}

/// A Bad Message Length error for a body the header check should already have sized.
fn short(msg_type: MessageType, len: usize, params: &CodecParams) -> Notification {
    HeaderError::BadLength {
        len: len as u16,
        type_code: msg_type as u8,
        max: params.max_message_len,
    }
    .into()
}

/// Append a KEEPALIVE (RFC 4271 §4.4: the header alone).
pub fn encode_keepalive(out: &mut Vec<u8>) {
    let start = header::begin_message(out, MessageType::Keepalive);
    header::finish_message(out, start);
}
