//! CNI specification versions: which ones Ginger speaks and what each allows.
//!
//! Owns: parsing a `cniVersion` string into `CniVersion` and the per-version rules (CHECK from
//! 0.4.0, STATUS and GC from 1.1.0, the `version` field of `ips` before 1.0.0). Must not: know
//! about results or configs beyond these rules — `result` and `config` ask here.

use std::fmt;

use crate::error::{CniError, ErrorCode};

/// A CNI specification version Ginger implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first (what VERSION reports).
    pub const SUPPORTED: [CniVersion; 5] = [
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];

    /// The newest version (used when the input names none that can be trusted).
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// The version as the spec writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Parses `cniVersion`; an absent or unknown version is error code 1.
    pub fn parse(s: &str) -> Result<CniVersion, CniError> {
        if let Some(v) = Self::SUPPORTED.iter().find(|v| v.as_str() == s) {
            return Ok(*v);
        }
        let supported = Self::supported_list();
        let msg = if s.is_empty() {
            // libcni reads a missing cniVersion as 0.1.0, which Ginger does not implement.
            "network configuration has no cniVersion".to_string()
        } else {
            format!("unsupported cniVersion {s:?}")
        };
        Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            msg,
            format!("ginger supports CNI versions {supported}"),
        ))
    }

    /// `0.3.0, 0.3.1, …` for messages.
    pub fn supported_list() -> String {
        Self::SUPPORTED
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// CHECK exists from spec 0.4.0 on.
    pub fn allows_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    /// STATUS and GC exist from spec 1.1.0 on.
    pub fn allows_status_and_gc(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    /// Before 1.0.0 every `ips` entry carries `"version": "4"|"6"`.
    pub fn ips_carry_version(self) -> bool {
        self < CniVersion::V1_0_0
    }

    /// 1.1.0 added `mtu`, `socketPath`, `pciID` to interfaces and `mtu`, `advmss`, `priority`,
    /// `table`, `scope` to routes.
    pub fn has_extended_fields(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_versions_and_orders_them() {
        for v in CniVersion::SUPPORTED {
            assert_eq!(CniVersion::parse(v.as_str()).unwrap(), v);
        }
        assert!(CniVersion::V0_3_1 < CniVersion::V1_0_0);
        assert!(CniVersion::SUPPORTED.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn unknown_or_missing_versions_are_code_1() {
        // CNI spec §5 "Error": code 1 is "Incompatible CNI version".
        for bad in ["", "0.2.0", "0.1.0", "1.2.0", "2.0.0", "1.0"] {
            let e = CniVersion::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::IncompatibleVersion, "{bad}");
            assert!(e.details.contains("1.1.0"), "{}", e.details);
        }
    }

    #[test]
    fn per_version_rules() {
        assert!(!CniVersion::V0_3_1.allows_check());
        assert!(CniVersion::V0_4_0.allows_check());
        assert!(!CniVersion::V1_0_0.allows_status_and_gc());
        assert!(CniVersion::V1_1_0.allows_status_and_gc());
        assert!(CniVersion::V0_4_0.ips_carry_version());
        assert!(!CniVersion::V1_0_0.ips_carry_version());
        assert!(!CniVersion::V1_0_0.has_extended_fields());
        assert!(CniVersion::V1_1_0.has_extended_fields());
    }
}
