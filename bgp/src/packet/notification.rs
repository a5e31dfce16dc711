//! NOTIFICATION messages (RFC 4271 §4.5, §6): codes, subcodes, their names, and the full data
//! field (zettabgp keeps only two bytes of it, so Ginger encodes and decodes this message itself).
//!
//! Owns: the `Notification` value, its human-readable name and its wire form. Must not: decide
//! when to send one.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::header::{begin_message, finish_message};
use super::{HEADER_LEN, MAX_MESSAGE_LEN, MessageType};

/// Error codes (RFC 4271 §4.5, RFC 4486, RFC 7313).
pub mod code {
    /// 1: Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// 2: OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// 3: UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// 4: Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// 5: Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// 6: Cease.
    pub const CEASE: u8 = 6;
    /// 7: ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header {
    /// 1: Connection Not Synchronized.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// 2: Bad Message Length.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// 3: Bad Message Type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
pub mod open {
    /// 1: Unsupported Version Number.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// 2: Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// 3: Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// 4: Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// 6: Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// 7: Unsupported Capability (RFC 5492).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    /// 11: Role Mismatch (RFC 9234).
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update {
    /// 1: Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// 2: Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    /// 3: Missing Well-known Attribute.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    /// 4: Attribute Flags Error.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    /// 5: Attribute Length Error.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// 6: Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    /// 8: Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    /// 9: Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// 10: Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// 11: Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm {
    /// 0: Unspecified.
    pub const UNSPECIFIED: u8 = 0;
    /// 1: Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// 2: Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// 3: Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538).
pub mod cease {
    /// 1: Maximum Number of Prefixes Reached.
    pub const MAX_PREFIXES: u8 = 1;
    /// 2: Administrative Shutdown.
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// 3: Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// 4: Administrative Reset.
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// 5: Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// 6: Other Configuration Change.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    /// 7: Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// 8: Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// 9: Hard Reset (RFC 8538).
    pub const HARD_RESET: u8 = 9;
}

/// A NOTIFICATION: error code, subcode and the full data field.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode (0 where the code defines none).
    pub subcode: u8,
    /// Data: e.g. the bad length, the offending attribute, or shutdown text (RFC 8203).
    pub data: Vec<u8>,
}

impl Notification {
    /// A notification with the given code, subcode and data.
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// Cease with a subcode and no data.
    pub fn cease(subcode: u8) -> Notification {
        Notification::new(code::CEASE, subcode, Vec::new())
    }

    /// Hold Timer Expired (RFC 4271 §6.5).
    pub fn hold_timer_expired() -> Notification {
        Notification::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new())
    }

    /// A Finite State Machine Error for an unexpected message in `subcode`'s state (RFC 6608).
    pub fn fsm_error(subcode: u8) -> Notification {
        Notification::new(code::FSM, subcode, Vec::new())
    }

    /// The name of the code, e.g. `Cease`.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            code::MESSAGE_HEADER => "Message Header Error",
            code::OPEN_MESSAGE => "OPEN Message Error",
            code::UPDATE_MESSAGE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM => "Finite State Machine Error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            _ => "Unknown error code",
        }
    }

    /// The name of the subcode, if the code defines one with this value.
    pub fn subcode_name(&self) -> Option<&'static str> {
        let name = match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, 1) => "Connection Not Synchronized",
            (code::MESSAGE_HEADER, 2) => "Bad Message Length",
            (code::MESSAGE_HEADER, 3) => "Bad Message Type",
            (code::OPEN_MESSAGE, 1) => "Unsupported Version Number",
            (code::OPEN_MESSAGE, 2) => "Bad Peer AS",
            (code::OPEN_MESSAGE, 3) => "Bad BGP Identifier",
            (code::OPEN_MESSAGE, 4) => "Unsupported Optional Parameter",
            (code::OPEN_MESSAGE, 6) => "Unacceptable Hold Time",
            (code::OPEN_MESSAGE, 7) => "Unsupported Capability",
            (code::OPEN_MESSAGE, 11) => "Role Mismatch",
            (code::UPDATE_MESSAGE, 1) => "Malformed Attribute List",
            (code::UPDATE_MESSAGE, 2) => "Unrecognized Well-known Attribute",
            (code::UPDATE_MESSAGE, 3) => "Missing Well-known Attribute",
            (code::UPDATE_MESSAGE, 4) => "Attribute Flags Error",
            (code::UPDATE_MESSAGE, 5) => "Attribute Length Error",
            (code::UPDATE_MESSAGE, 6) => "Invalid ORIGIN Attribute",
            (code::UPDATE_MESSAGE, 8) => "Invalid NEXT_HOP Attribute",
            (code::UPDATE_MESSAGE, 9) => "Optional Attribute Error",
            (code::UPDATE_MESSAGE, 10) => "Invalid Network Field",
            (code::UPDATE_MESSAGE, 11) => "Malformed AS_PATH",
            (code::FSM, 0) => "Unspecified Error",
            (code::FSM, 1) => "Receive Unexpected Message in OpenSent State",
            (code::FSM, 2) => "Receive Unexpected Message in OpenConfirm State",
            (code::FSM, 3) => "Receive Unexpected Message in Established State",
            (code::CEASE, 1) => "Maximum Number of Prefixes Reached",
            (code::CEASE, 2) => "Administrative Shutdown",
            (code::CEASE, 3) => "Peer De-configured",
            (code::CEASE, 4) => "Administrative Reset",
            (code::CEASE, 5) => "Connection Rejected",
            (code::CEASE, 6) => "Other Configuration Change",
            (code::CEASE, 7) => "Connection Collision Resolution",
            (code::CEASE, 8) => "Out of Resources",
            (code::CEASE, 9) => "Hard Reset",
            (code::ROUTE_REFRESH, 1) => "Invalid Message Length",
            _ => return None,
        };
        Some(name)
    }

    /// The shutdown communication of an Administrative Shutdown/Reset (RFC 8203), if any.
    pub fn shutdown_text(&self) -> Option<String> {
        let is_shutdown = self.code == code::CEASE
            && (self.subcode == cease::ADMINISTRATIVE_SHUTDOWN
                || self.subcode == cease::ADMINISTRATIVE_RESET);
        let (&len, rest) = self.data.split_first()?;
        if !is_shutdown || len as usize > rest.len() || len == 0 {
            return None;
        }
        String::from_utf8(rest[..len as usize].to_vec()).ok()
    }

    /// A short label for metrics, e.g. `6/2`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.code, self.subcode)
    }
}

impl fmt::Display for Notification {
    /// `Cease/Administrative Shutdown (6/2)`, with shutdown text or data bytes appended.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hold Timer Expired defines no subcodes: subcode 0 is no information.
        let has_subcodes = self.code != code::HOLD_TIMER_EXPIRED;
        match self.subcode_name() {
            Some(sub) => write!(f, "{}/{}", self.code_name(), sub)?,
            None if self.subcode == 0 && !has_subcodes => f.write_str(self.code_name())?,
            None => write!(f, "{} (subcode {})", self.code_name(), self.subcode)?,
        }
        write!(f, " ({}/{})", self.code, self.subcode)?;
        if let Some(text) = self.shutdown_text() {
            write!(f, ": \"{text}\"")?;
        } else if !self.data.is_empty() {
            f.write_str(" data ")?;
            for b in self.data.iter().take(32) {
                write!(f, "{b:02x}")?;
            }
            if self.data.len() > 32 {
                write!(f, "… ({} bytes)", self.data.len())?;
            }
        }
        Ok(())
    }
}

/// Decode a NOTIFICATION body (without the header): code, subcode, and all remaining bytes as
/// data. The header check has guaranteed at least the two fixed octets.
pub(crate) fn decode_notification(body: &[u8]) -> Option<Notification> {
    let [code, subcode, data @ ..] = body else {
        return None;
    };
    Some(Notification::new(*code, *subcode, data.to_vec()))
}

/// Append a whole NOTIFICATION with its full data field (zettabgp would keep two bytes of it).
/// Data beyond what a 4096-byte message holds is cut off.
pub fn encode_notification(n: &Notification, out: &mut Vec<u8>) {
    let room = MAX_MESSAGE_LEN - HEADER_LEN - 2;
    let start = begin_message(out, MessageType::Notification);
    out.extend_from_slice(&[n.code, n.subcode]);
    out.extend_from_slice(&n.data[..n.data.len().min(room)]);
    finish_message(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_keeps_the_whole_data_field() {
        let text = "maintenance window: back at 14:00 UTC";
        let mut data = vec![text.len() as u8];
        data.extend_from_slice(text.as_bytes());
        let n = Notification::new(code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN, data);
        let mut out = Vec::new();
        encode_notification(&n, &mut out);
        assert_eq!(out.len(), HEADER_LEN + 2 + 1 + text.len());
        assert_eq!(u16::from_be_bytes([out[16], out[17]]) as usize, out.len());
        assert_eq!(decode_notification(&out[HEADER_LEN..]), Some(n));
        let huge = Notification::new(code::UPDATE_MESSAGE, 1, vec![7; 10_000]);
        out.clear();
        encode_notification(&huge, &mut out);
        assert_eq!(out.len(), MAX_MESSAGE_LEN);
    }

    #[test]
    fn names_and_display() {
        let n = Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN);
        assert_eq!(n.to_string(), "Cease/Administrative Shutdown (6/2)");
        let n = Notification::new(code::UPDATE_MESSAGE, update::MALFORMED_AS_PATH, vec![1, 2]);
        assert_eq!(
            n.to_string(),
            "UPDATE Message Error/Malformed AS_PATH (3/11) data 0102"
        );
        let n = Notification::new(code::CEASE, 2, b"\x05maint".to_vec());
        assert_eq!(n.shutdown_text().as_deref(), Some("maint"));
        assert!(n.to_string().ends_with(": \"maint\""));
        assert_eq!(
            Notification::hold_timer_expired().to_string(),
            "Hold Timer Expired (4/0)"
        );
        let n = Notification::new(99, 1, vec![]);
        assert_eq!(n.to_string(), "Unknown error code (subcode 1) (99/1)");
    }
}
