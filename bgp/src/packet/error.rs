//! Typed decode errors of the packet layer and the one place where each becomes a NOTIFICATION.
//!
//! Owns: [`HeaderError`], [`OpenError`], [`UpdateError`], the RFC 7606 approach of each UPDATE
//! error ([`UpdateError::action`]) and the `From<…> for Notification` impls (RFC 4271 §6 codes,
//! subcodes and data). Must not: decide anything about sessions; the caller sends what it gets.

use std::net::Ipv4Addr;

use thiserror::Error;

use super::Notification;
use super::attr::{self, ErrorAction};
use super::notification::{code, header, open, update};

/// A Message Header Error (RFC 4271 §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The marker is not all ones.
    #[error("message marker is not all ones (RFC 4271 §6.1)")]
    NotSynchronized,
    /// The length is outside 19..=max or the type's fixed size.
    #[error("message length {len} is invalid for type {type_code} (maximum {max}, RFC 4271 §6.1)")]
    BadLength {
        /// The length field.
        len: u16,
        /// The type field.
        type_code: u8,
        /// The session's maximum message length.
        max: usize,
    },
    /// The type is not one Ginger speaks.
    #[error("unknown message type {type_code} (RFC 4271 §6.1)")]
    BadType {
        /// The type field.
        type_code: u8,
    },
}

impl From<HeaderError> for Notification {
    fn from(e: HeaderError) -> Notification {
        match e {
            HeaderError::NotSynchronized => Notification::new(
                code::MESSAGE_HEADER,
                header::CONNECTION_NOT_SYNCHRONIZED,
                Vec::new(),
            ),
            HeaderError::BadLength { len, .. } => Notification::new(
                code::MESSAGE_HEADER,
                header::BAD_MESSAGE_LENGTH,
                len.to_be_bytes().to_vec(),
            ),
            HeaderError::BadType { type_code } => Notification::new(
                code::MESSAGE_HEADER,
                header::BAD_MESSAGE_TYPE,
                vec![type_code],
            ),
        }
    }
}

/// An OPEN Message Error (RFC 4271 §6.2, RFC 5492, RFC 9072).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OpenError {
    /// Version other than 4.
    #[error("unsupported BGP version {version} (Ginger speaks 4)")]
    UnsupportedVersion {
        /// The version field.
        version: u8,
    },
    /// My Autonomous System (or the 4-octet AS capability) is 0 (RFC 7607).
    #[error("peer AS 0 is not allowed (RFC 7607)")]
    BadPeerAs,
    /// BGP Identifier 0.0.0.0 (RFC 6286 §2.1).
    #[error("BGP identifier {id} is not valid (RFC 6286)")]
    BadBgpIdentifier {
        /// The identifier.
        id: Ipv4Addr,
    },
    /// Hold time of 1 or 2 seconds (RFC 4271 §6.2).
    #[error("hold time {hold_time}s is not acceptable (must be 0 or at least 3)")]
    UnacceptableHoldTime {
        /// The hold time field.
        hold_time: u16,
    },
    /// An optional parameter type other than Capabilities.
    #[error("unsupported optional parameter type {param_type}")]
    UnsupportedOptionalParameter {
        /// The parameter type.
        param_type: u8,
    },
    /// Optional parameters that do not tile their length, or lengths past the message.
    #[error("malformed optional parameters: {reason}")]
    MalformedParameters {
        /// What is wrong.
        reason: String,
    },
    /// A recognised capability whose value has the wrong size or shape.
    #[error("malformed capability {code}: {reason}")]
    MalformedCapability {
        /// The capability code.
        code: u8,
        /// What is wrong.
        reason: String,
    },
}

impl From<OpenError> for Notification {
    fn from(e: OpenError) -> Notification {
        let (subcode, data) = match e {
            // RFC 4271 §6.2: data is the largest locally supported version number.
            OpenError::UnsupportedVersion { .. } => (
                open::UNSUPPORTED_VERSION,
                u16::from(super::BGP_VERSION).to_be_bytes().to_vec(),
            ),
            OpenError::BadPeerAs => (open::BAD_PEER_AS, Vec::new()),
            OpenError::BadBgpIdentifier { .. } => (open::BAD_BGP_IDENTIFIER, Vec::new()),
            OpenError::UnacceptableHoldTime { .. } => (open::UNACCEPTABLE_HOLD_TIME, Vec::new()),
            OpenError::UnsupportedOptionalParameter { .. } => {
                (open::UNSUPPORTED_OPTIONAL_PARAMETER, Vec::new())
            }
            // Subcode 0 (unspecific), as BIRD and FRR send for malformed parameters.
            OpenError::MalformedParameters { .. } | OpenError::MalformedCapability { .. } => {
                (0, Vec::new())
            }
        };
        Notification::new(code::OPEN_MESSAGE, subcode, data)
    }
}

/// Which NLRI-carrying field of an UPDATE an error is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NlriField {
    /// Withdrawn Routes.
    Withdrawn,
    /// Network Layer Reachability Information.
    Nlri,
}

impl std::fmt::Display for NlriField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NlriField::Withdrawn => "Withdrawn Routes",
            NlriField::Nlri => "NLRI",
        })
    }
}

/// An error in an UPDATE message. `attr` fields hold the whole offending attribute as received
/// (flags, type, length, value): the NOTIFICATION data RFC 4271 §6.3 asks for.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum UpdateError {
    /// Withdrawn Routes Length / Total Path Attribute Length past the end (RFC 4271 §6.3).
    #[error(
        "Withdrawn Routes Length {withdrawn_len} and Total Path Attribute Length {attrs_len} do not fit the {body_len}-byte UPDATE body (RFC 4271 §6.3)"
    )]
    LengthsOverrun {
        /// Withdrawn Routes Length.
        withdrawn_len: u16,
        /// Total Path Attribute Length (0 when it could not be read).
        attrs_len: u16,
        /// UPDATE length without the header.
        body_len: usize,
    },
    /// A prefix in Withdrawn Routes or NLRI with a bad length or missing bytes (RFC 7606 §5.3).
    #[error("{field} field: {reason} at offset {offset} (RFC 7606 §5.3)")]
    InvalidNetworkField {
        /// Which field.
        field: NlriField,
        /// Byte offset within the field.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Fewer bytes left in the attribute list than an attribute header needs (RFC 7606 §4).
    #[error("path attributes end with {remaining} stray bytes (RFC 7606 §4)")]
    AttributeListTruncated {
        /// Bytes left.
        remaining: usize,
    },
    /// An attribute's length runs past the Total Path Attribute Length (RFC 7606 §4).
    #[error("{} (type {type_code}) length {declared} overruns the {remaining} bytes left in the attribute list (RFC 7606 §4)", attr::name(*.type_code))]
    AttributeOverrun {
        /// Type code.
        type_code: u8,
        /// The attribute's length field.
        declared: usize,
        /// Bytes actually left for its value.
        remaining: usize,
        /// The attribute's bytes as far as they go.
        attr: Vec<u8>,
    },
    /// MP_REACH_NLRI or MP_UNREACH_NLRI more than once (RFC 7606 §3 g).
    #[error("{} appears more than once (RFC 7606 §3 g)", attr::name(*.type_code))]
    DuplicateMpAttribute {
        /// Type code.
        type_code: u8,
    },
    /// Another attribute more than once: later copies are dropped (RFC 7606 §3 g).
    #[error("{} (type {type_code}) appears more than once; the first is kept (RFC 7606 §3 g)", attr::name(*.type_code))]
    DuplicateAttribute {
        /// Type code.
        type_code: u8,
    },
    /// Flags conflict with the type (RFC 4271 §6.3, RFC 7606 §3 c).
    #[error("{} (type {type_code}) has flags {flags:#04x} that conflict with its type (RFC 7606 §3 c)", attr::name(*.type_code))]
    AttributeFlags {
        /// Type code.
        type_code: u8,
        /// Flags received.
        flags: u8,
        /// The attribute.
        attr: Vec<u8>,
    },
    /// A recognised attribute with a length its type does not allow (RFC 7606 §7).
    #[error("{} (type {type_code}) has length {len}, expected {expected} (RFC 7606 §7)", attr::name(*.type_code))]
    AttributeLength {
        /// Type code.
        type_code: u8,
        /// Length received.
        len: usize,
        /// What the type allows.
        expected: &'static str,
        /// The attribute.
        attr: Vec<u8>,
    },
    /// ORIGIN value other than 0..=2 (RFC 7606 §7.1).
    #[error("ORIGIN value {value} is undefined (RFC 7606 §7.1)")]
    InvalidOrigin {
        /// The value.
        value: u8,
        /// The attribute.
        attr: Vec<u8>,
    },
    /// NEXT_HOP that is not a valid host address (RFC 4271 §6.3, RFC 7606 §7.3).
    #[error("NEXT_HOP {addr} is not a valid host address (RFC 7606 §7.3)")]
    InvalidNextHop {
        /// The address.
        addr: Ipv4Addr,
        /// The attribute.
        attr: Vec<u8>,
    },
    /// AS_PATH or AS4_PATH whose segments do not tile the value (RFC 7606 §7.2, RFC 6793 §6).
    #[error("{} is malformed: {reason} (RFC 7606 §7.2, RFC 6793 §6)", attr::name(*.type_code))]
    MalformedAsPath {
        /// AS_PATH or AS4_PATH.
        type_code: u8,
        /// What is wrong.
        reason: &'static str,
        /// The attribute.
        attr: Vec<u8>,
    },
    /// MP_REACH_NLRI / MP_UNREACH_NLRI whose layout or prefixes cannot be parsed (RFC 4760 §7,
    /// RFC 7606 §7.11).
    #[error("{} is malformed: {reason} (RFC 4760 §7, RFC 7606 §7.11)", attr::name(*.type_code))]
    MalformedMpAttribute {
        /// Type code.
        type_code: u8,
        /// What is wrong.
        reason: String,
        /// The attribute.
        attr: Vec<u8>,
    },
    /// An attribute without the Optional bit that Ginger does not know (RFC 4271 §6.3).
    #[error("unrecognised well-known attribute type {type_code} (RFC 4271 §6.3)")]
    UnrecognizedWellKnown {
        /// Type code.
        type_code: u8,
        /// The attribute.
        attr: Vec<u8>,
    },
    /// ORIGIN, AS_PATH or (with IPv4 NLRI) NEXT_HOP missing while NLRI is present (RFC 7606 §3 d).
    #[error("mandatory {} (type {type_code}) is missing (RFC 7606 §3 d)", attr::name(*.type_code))]
    MissingWellKnown {
        /// Type code of the missing attribute.
        type_code: u8,
    },
    /// zettabgp rejected, disagreed with or panicked on a message Ginger had validated.
    #[error("the UPDATE codec rejected a validated message: {reason}")]
    CodecRejected {
        /// What zettabgp said.
        reason: String,
    },
}

impl UpdateError {
    /// What RFC 7606 says to do about this error.
    pub fn action(&self) -> ErrorAction {
        match self {
            UpdateError::LengthsOverrun { .. }
            | UpdateError::InvalidNetworkField { .. }
            | UpdateError::DuplicateMpAttribute { .. }
            | UpdateError::MalformedMpAttribute { .. }
            | UpdateError::UnrecognizedWellKnown { .. }
            | UpdateError::CodecRejected { .. } => ErrorAction::SessionReset,
            UpdateError::AttributeListTruncated { .. }
            | UpdateError::AttributeOverrun { .. }
            | UpdateError::MissingWellKnown { .. } => ErrorAction::TreatAsWithdraw,
            UpdateError::DuplicateAttribute { .. } => ErrorAction::AttributeDiscard,
            UpdateError::AttributeFlags { type_code, .. }
            | UpdateError::AttributeLength { type_code, .. }
            | UpdateError::MalformedAsPath { type_code, .. } => attr::malformed_action(*type_code),
            UpdateError::InvalidOrigin { .. } => attr::malformed_action(attr::ORIGIN),
            UpdateError::InvalidNextHop { .. } => attr::malformed_action(attr::NEXT_HOP),
        }
    }
}

impl From<&UpdateError> for Notification {
    /// The NOTIFICATION RFC 4271 §6.3 prescribes for this error. It is sent only when
    /// [`UpdateError::action`] is a session reset; for the other approaches it names the error.
    fn from(e: &UpdateError) -> Notification {
        use UpdateError as E;
        let (subcode, data) = match e {
            E::LengthsOverrun { .. }
            | E::AttributeListTruncated { .. }
            | E::DuplicateMpAttribute { .. }
            | E::DuplicateAttribute { .. }
            | E::CodecRejected { .. } => (update::MALFORMED_ATTRIBUTE_LIST, Vec::new()),
            E::InvalidNetworkField { .. } => (update::INVALID_NETWORK_FIELD, Vec::new()),
            E::AttributeOverrun { attr, .. } | E::AttributeLength { attr, .. } => {
                (update::ATTRIBUTE_LENGTH_ERROR, attr.clone())
            }
            E::AttributeFlags { attr, .. } => (update::ATTRIBUTE_FLAGS_ERROR, attr.clone()),
            E::InvalidOrigin { attr, .. } => (update::INVALID_ORIGIN_ATTRIBUTE, attr.clone()),
            E::InvalidNextHop { attr, .. } => (update::INVALID_NEXT_HOP_ATTRIBUTE, attr.clone()),
            E::MalformedAsPath {
                type_code, attr, ..
            } if *type_code == attr::AS_PATH => (update::MALFORMED_AS_PATH, Vec::new()),
            E::MalformedAsPath { attr, .. } | E::MalformedMpAttribute { attr, .. } => {
                (update::OPTIONAL_ATTRIBUTE_ERROR, attr.clone())
            }
            E::UnrecognizedWellKnown { attr, .. } => {
                (update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, attr.clone())
            }
            E::MissingWellKnown { type_code } => {
                (update::MISSING_WELL_KNOWN_ATTRIBUTE, vec![*type_code])
            }
        };
        Notification::new(code::UPDATE_MESSAGE, subcode, data)
    }
}

impl From<UpdateError> for Notification {
    fn from(e: UpdateError) -> Notification {
        Notification::from(&e)
    }
}
