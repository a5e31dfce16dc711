//! Path attribute facts shared by the UPDATE validator and encoder: type codes, flag bits, the
//! flags each recognised attribute must carry, its name, and what RFC 7606 §7 says to do when it
//! is malformed.
//!
//! Owns: the table of recognised attributes. Must not: read or write bytes.

/// Attribute flag: Optional (RFC 4271 §4.3).
pub const FLAG_OPTIONAL: u8 = 0x80;
/// Attribute flag: Transitive.
pub const FLAG_TRANSITIVE: u8 = 0x40;
/// Attribute flag: Partial.
pub const FLAG_PARTIAL: u8 = 0x20;
/// Attribute flag: Extended Length (two-octet length field).
pub const FLAG_EXTENDED_LENGTH: u8 = 0x10;

/// ORIGIN (RFC 4271 §5.1.1).
pub const ORIGIN: u8 = 1;
/// AS_PATH (RFC 4271 §5.1.2).
pub const AS_PATH: u8 = 2;
/// NEXT_HOP (RFC 4271 §5.1.3).
pub const NEXT_HOP: u8 = 3;
/// MULTI_EXIT_DISC (RFC 4271 §5.1.4).
pub const MULTI_EXIT_DISC: u8 = 4;
/// LOCAL_PREF (RFC 4271 §5.1.5).
pub const LOCAL_PREF: u8 = 5;
/// ATOMIC_AGGREGATE (RFC 4271 §5.1.6).
pub const ATOMIC_AGGREGATE: u8 = 6;
/// AGGREGATOR (RFC 4271 §5.1.7).
pub const AGGREGATOR: u8 = 7;
/// COMMUNITIES (RFC 1997).
pub const COMMUNITIES: u8 = 8;
/// ORIGINATOR_ID (RFC 4456).
pub const ORIGINATOR_ID: u8 = 9;
/// CLUSTER_LIST (RFC 4456).
pub const CLUSTER_LIST: u8 = 10;
/// MP_REACH_NLRI (RFC 4760).
pub const MP_REACH_NLRI: u8 = 14;
/// MP_UNREACH_NLRI (RFC 4760).
pub const MP_UNREACH_NLRI: u8 = 15;
/// EXTENDED COMMUNITIES (RFC 4360); carried raw, length-checked.
pub const EXTENDED_COMMUNITIES: u8 = 16;
/// AS4_PATH (RFC 6793).
pub const AS4_PATH: u8 = 17;
/// AS4_AGGREGATOR (RFC 6793).
pub const AS4_AGGREGATOR: u8 = 18;
/// LARGE_COMMUNITY (RFC 8092).
pub const LARGE_COMMUNITY: u8 = 32;

/// What RFC 7606 says to do about an error found in an UPDATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorAction {
    /// RFC 7606 §2 "attribute discard": drop the attribute, keep the routes.
    AttributeDiscard,
    /// RFC 7606 §2 "treat-as-withdraw": every prefix of the message becomes a withdrawal.
    TreatAsWithdraw,
    /// RFC 7606 §2 "session reset": send the NOTIFICATION and close.
    SessionReset,
}

/// Whether Ginger recognises (validates and interprets) this attribute type.
pub fn is_recognised(type_code: u8) -> bool {
    expected_flags(type_code).is_some()
}

/// The Optional and Transitive bits a recognised attribute must carry (RFC 4271 §5, RFC 4456,
/// RFC 4760, RFC 1997, RFC 4360, RFC 6793, RFC 8092).
pub fn expected_flags(type_code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = FLAG_TRANSITIVE;
    const OPT_TRANS: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;
    const OPT_NON_TRANS: u8 = FLAG_OPTIONAL;
    Some(match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => WELL_KNOWN,
        MULTI_EXIT_DISC | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => {
            OPT_NON_TRANS
        }
        AGGREGATOR | COMMUNITIES | EXTENDED_COMMUNITIES | AS4_PATH | AS4_AGGREGATOR
        | LARGE_COMMUNITY => OPT_TRANS,
        _ => return None,
    })
}

/// Whether the flags conflict with the attribute's definition: wrong Optional/Transitive bits,
/// or the Partial bit on a well-known or optional non-transitive attribute (RFC 4271 §4.3).
pub fn flags_conflict(type_code: u8, flags: u8) -> bool {
    let Some(expected) = expected_flags(type_code) else {
        return false;
    };
    let ot = flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE);
    let partial_allowed = expected == FLAG_OPTIONAL | FLAG_TRANSITIVE;
    ot != expected || (!partial_allowed && flags & FLAG_PARTIAL != 0)
}

/// The RFC 7606 approach for a malformed instance of this attribute (RFC 7606 §3 c and §7,
/// RFC 6793 §6 for AS4_PATH / AS4_AGGREGATOR).
pub fn malformed_action(type_code: u8) -> ErrorAction {
    match type_code {
        ATOMIC_AGGREGATE | AGGREGATOR | AS4_PATH | AS4_AGGREGATOR => ErrorAction::AttributeDiscard,
        MP_REACH_NLRI | MP_UNREACH_NLRI => ErrorAction::SessionReset,
        _ => ErrorAction::TreatAsWithdraw,
    }
}

/// The attribute's name for messages and logs.
pub fn name(type_code: u8) -> &'static str {
    match type_code {
        ORIGIN => "ORIGIN",
        AS_PATH => "AS_PATH",
        NEXT_HOP => "NEXT_HOP",
        MULTI_EXIT_DISC => "MULTI_EXIT_DISC",
        LOCAL_PREF => "LOCAL_PREF",
        ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        AGGREGATOR => "AGGREGATOR",
        COMMUNITIES => "COMMUNITIES",
        ORIGINATOR_ID => "ORIGINATOR_ID",
        CLUSTER_LIST => "CLUSTER_LIST",
        MP_REACH_NLRI => "MP_REACH_NLRI",
        MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        AS4_PATH => "AS4_PATH",
        AS4_AGGREGATOR => "AS4_AGGREGATOR",
        LARGE_COMMUNITY => "LARGE_COMMUNITY",
        _ => "unrecognised attribute",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_conflicts_follow_rfc4271_4_3() {
        assert!(!flags_conflict(ORIGIN, 0x40));
        assert!(
            !flags_conflict(ORIGIN, 0x50),
            "extended length is not a conflict"
        );
        assert!(flags_conflict(ORIGIN, 0xc0), "well-known marked optional");
        assert!(
            flags_conflict(ORIGIN, 0x60),
            "partial on a well-known attribute"
        );
        assert!(
            flags_conflict(MULTI_EXIT_DISC, 0xa0),
            "partial on optional non-transitive"
        );
        assert!(
            !flags_conflict(COMMUNITIES, 0xe0),
            "partial allowed on optional transitive"
        );
        assert!(flags_conflict(COMMUNITIES, 0x80));
        assert!(
            !flags_conflict(99, 0x00),
            "unknown attributes have no expected flags"
        );
    }

    #[test]
    fn malformed_actions_follow_rfc7606_7() {
        assert_eq!(malformed_action(ORIGIN), ErrorAction::TreatAsWithdraw);
        assert_eq!(malformed_action(AGGREGATOR), ErrorAction::AttributeDiscard);
        assert_eq!(malformed_action(MP_REACH_NLRI), ErrorAction::SessionReset);
        assert_eq!(malformed_action(AS4_PATH), ErrorAction::AttributeDiscard);
    }
}
