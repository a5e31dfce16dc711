//! CNI errors: the codes Ginger returns and the error JSON the runtime reads on stdout.
//!
//! Owns: `ErrorCode` (the spec's well-known codes plus Ginger's own from 100 up, each documented
//! here and in `docs/cni.md`), `CniError` (`code`, `msg`, `details`) and its JSON rendering
//! `{cniVersion, code, msg, details}`. Must not: print or exit — the binary does that.

use serde::Serialize;

use crate::protocol::ErrorKind;

/// A CNI error code (CNI spec §5 "Error"; codes 0–99 are the spec's, 100+ the plugin's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: the configuration's `cniVersion` is not one Ginger implements, or the operation does
    /// not exist in that version (CHECK before 0.4.0, STATUS/GC before 1.1.0).
    IncompatibleVersion,
    /// 2: a configuration key has a value Ginger does not support (the message names both).
    UnsupportedField,
    /// 3: the container's network namespace does not exist (ADD/CHECK): nothing to clean up.
    UnknownContainer,
    /// 4: a required `CNI_*` variable is missing or invalid (the message names it).
    InvalidEnvironment,
    /// 5: reading stdin or writing a log failed.
    IoFailure,
    /// 6: stdin (or `prevResult`) is not valid JSON.
    DecodingFailure,
    /// 7: the JSON is well-formed but the configuration is invalid (wrong type, bad name, …).
    InvalidConfig,
    /// 8: `CNI_NETNS` is the plugin's own namespace (libcni's `ErrInvalidNetNS`): refusing
    /// protects the node's own links.
    InvalidNetns,
    /// 11: a transient condition (ginger-node unreachable or not ready): the runtime retries.
    TryAgainLater,
    /// 50 (STATUS): the plugin cannot serve ADDs now.
    PluginNotAvailable,
    /// 51 (STATUS): not available, and existing pods may have limited connectivity.
    LimitedConnectivity,
    /// 100: every pool this node may use is full and no address can be borrowed.
    PoolExhausted,
    /// 101: no IP pool is configured for this node.
    NoPool,
    /// 102: ginger-node refused the request as invalid.
    AgentRefused,
    /// 103: ginger-node failed internally (datastore, storage I/O).
    AgentInternal,
    /// 104: building or removing the pod's veth, addresses or routes failed.
    Dataplane,
    /// 105: ginger-node answered something the plugin does not understand (version skew).
    AgentProtocol,
    /// 106: CHECK found the pod's networking different from its `prevResult`.
    CheckFailed,
}

impl ErrorCode {
    /// The number on the wire.
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::IoFailure => 5,
            ErrorCode::DecodingFailure => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::InvalidNetns => 8,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::PoolExhausted => 100,
            ErrorCode::NoPool => 101,
            ErrorCode::AgentRefused => 102,
            ErrorCode::AgentInternal => 103,
            ErrorCode::Dataplane => 104,
            ErrorCode::AgentProtocol => 105,
            ErrorCode::CheckFailed => 106,
        }
    }

    /// The code for an agent refusal of `kind`.
    pub fn for_agent_error(kind: ErrorKind) -> ErrorCode {
        match kind {
            ErrorKind::PoolExhausted => ErrorCode::PoolExhausted,
            ErrorKind::NoPool => ErrorCode::NoPool,
            ErrorKind::Invalid => ErrorCode::AgentRefused,
            ErrorKind::NotReady => ErrorCode::TryAgainLater,
            ErrorKind::UnsupportedVersion => ErrorCode::AgentProtocol,
            ErrorKind::Internal => ErrorCode::AgentInternal,
        }
    }
}

/// A CNI error: what the runtime shows the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!("; {details}") })]
pub struct CniError {
    pub code: ErrorCode,
    /// A short sentence.
    pub msg: String,
    /// Longer context; may be empty.
    pub details: String,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    details: &'a str,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Appends a sentence to `details`.
    pub fn with_detail(mut self, more: impl AsRef<str>) -> Self {
        if !self.details.is_empty() {
            self.details.push_str("; ");
        }
        self.details.push_str(more.as_ref());
        self
    }

    /// The error JSON (CNI spec §5 "Error"), `details` left out when empty.
    pub fn to_json(&self, cni_version: &str) -> String {
        let body = ErrorJson {
            cni_version,
            code: self.code.code(),
            msg: &self.msg,
            details: &self.details,
        };
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_is_the_spec_shape() {
        // CNI spec §5 "Error": {cniVersion, code, msg, details}.
        let e = CniError::new(
            ErrorCode::TryAgainLater,
            "cannot reach ginger-node",
            "is ginger-node running?",
        );
        assert_eq!(
            e.to_json("1.0.0"),
            r#"{"cniVersion":"1.0.0","code":11,"msg":"cannot reach ginger-node","details":"is ginger-node running?"}"#
        );
        let bare = CniError::new(ErrorCode::DecodingFailure, "bad json", "");
        assert_eq!(
            bare.to_json("0.3.1"),
            r#"{"cniVersion":"0.3.1","code":6,"msg":"bad json"}"#
        );
        assert_eq!(
            e.to_string(),
            "cannot reach ginger-node; is ginger-node running?"
        );
    }

    #[test]
    fn codes_match_the_spec_table() {
        let spec = [
            (ErrorCode::IncompatibleVersion, 1),
            (ErrorCode::UnsupportedField, 2),
            (ErrorCode::UnknownContainer, 3),
            (ErrorCode::InvalidEnvironment, 4),
            (ErrorCode::IoFailure, 5),
            (ErrorCode::DecodingFailure, 6),
            (ErrorCode::InvalidConfig, 7),
            (ErrorCode::TryAgainLater, 11),
            (ErrorCode::PluginNotAvailable, 50),
            (ErrorCode::LimitedConnectivity, 51),
        ];
        for (c, n) in spec {
            assert_eq!(c.code(), n, "{c:?}");
        }
        for c in [
            ErrorCode::PoolExhausted,
            ErrorCode::NoPool,
            ErrorCode::AgentRefused,
            ErrorCode::AgentInternal,
            ErrorCode::Dataplane,
            ErrorCode::AgentProtocol,
            ErrorCode::CheckFailed,
        ] {
            assert!(c.code() >= 100, "{c:?} must be plugin-specific");
        }
    }

    #[test]
    fn agent_refusals_map_to_codes() {
        assert_eq!(
            ErrorCode::for_agent_error(ErrorKind::PoolExhausted).code(),
            100
        );
        assert_eq!(ErrorCode::for_agent_error(ErrorKind::NotReady).code(), 11);
        assert_eq!(
            ErrorCode::for_agent_error(ErrorKind::UnsupportedVersion),
            ErrorCode::AgentProtocol
        );
    }
}
