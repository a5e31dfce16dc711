//! `CNI_ARGS`: the runtime's `KEY=VALUE;KEY=VALUE` pairs.
//!
//! Owns: parsing the string into `CniArgs` with the keys Kubernetes runtimes pass
//! (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_INFRA_CONTAINER_ID`, `K8S_POD_UID`) and the
//! `IgnoreUnknown` convention (libcni `LoadArgs`): an unknown key is an error unless
//! `IgnoreUnknown` is `1`/`true`. Must not: read the environment — `env` hands the string in.

use crate::error::{CniError, ErrorCode};

/// The parsed `CNI_ARGS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `K8S_POD_NAMESPACE`, empty outside Kubernetes.
    pub pod_namespace: String,
    /// `K8S_POD_NAME`, empty outside Kubernetes.
    pub pod_name: String,
    /// `K8S_POD_INFRA_CONTAINER_ID` (the sandbox container), if given.
    pub infra_container_id: String,
    /// `K8S_POD_UID`, if given.
    pub pod_uid: String,
    /// `IgnoreUnknown`.
    pub ignore_unknown: bool,
    /// Keys not listed above, in order (kept for logs).
    pub unknown: Vec<(String, String)>,
}

fn invalid(details: String) -> CniError {
    CniError::new(ErrorCode::InvalidEnvironment, "invalid CNI_ARGS", details)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, CniError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(invalid(format!(
            "{key}={value}: expected 1, true, 0 or false"
        ))),
    }
}

impl CniArgs {
    /// Parses `CNI_ARGS` (an empty string is no arguments).
    pub fn parse(s: &str) -> Result<CniArgs, CniError> {
        let mut args = CniArgs::default();
        for pair in s.split(';') {
            if pair.is_empty() {
                // Tolerate a trailing or doubled ';' as containerd never sends one but people do.
                continue;
            }
            let Some((key, value)) = pair.split_once('=') else {
                return Err(invalid(format!("{pair:?} is not KEY=VALUE")));
            };
            if key.is_empty() {
                return Err(invalid(format!("{pair:?} has an empty key")));
            }
            match key {
                "K8S_POD_NAMESPACE" => args.pod_namespace = value.to_string(),
                "K8S_POD_NAME" => args.pod_name = value.to_string(),
                "K8S_POD_INFRA_CONTAINER_ID" => args.infra_container_id = value.to_string(),
                "K8S_POD_UID" => args.pod_uid = value.to_string(),
                "IgnoreUnknown" => args.ignore_unknown = parse_bool(key, value)?,
                _ => args.unknown.push((key.to_string(), value.to_string())),
            }
        }
        if !args.ignore_unknown && !args.unknown.is_empty() {
            let keys: Vec<&str> = args.unknown.iter().map(|(k, _)| k.as_str()).collect();
            return Err(invalid(format!(
                "unknown keys {} (add IgnoreUnknown=1 to ignore them)",
                keys.join(", ")
            )));
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_args_parse() {
        // What containerd's CRI plugin passes for a pod sandbox.
        let s = "K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=1f2e;IgnoreUnknown=1;\
                 K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0";
        let a = CniArgs::parse(s).unwrap();
        assert_eq!(a.pod_namespace, "default");
        assert_eq!(a.pod_name, "web-0");
        assert_eq!(a.infra_container_id, "abc123");
        assert_eq!(a.pod_uid, "1f2e");
        assert!(a.ignore_unknown);
        assert!(a.unknown.is_empty());
    }

    #[test]
    fn empty_args_are_empty() {
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
        assert_eq!(CniArgs::parse(";").unwrap(), CniArgs::default());
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        let e = CniArgs::parse("FOO=bar;K8S_POD_NAME=x").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEnvironment);
        assert!(e.details.contains("FOO"), "{}", e.details);
        let a = CniArgs::parse("FOO=bar;IgnoreUnknown=true").unwrap();
        assert_eq!(a.unknown, [("FOO".to_string(), "bar".to_string())]);
        // IgnoreUnknown may come after the unknown key.
        assert!(CniArgs::parse("FOO=bar;IgnoreUnknown=True").is_ok());
        assert!(CniArgs::parse("FOO=bar;IgnoreUnknown=0").is_err());
    }

    #[test]
    fn malformed_pairs_are_code_4() {
        for bad in ["K8S_POD_NAME", "=x", "IgnoreUnknown=yes"] {
            let e = CniArgs::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidEnvironment, "{bad}");
        }
        // A value may itself contain '='.
        let a = CniArgs::parse("K8S_POD_NAME=a=b").unwrap();
        assert_eq!(a.pod_name, "a=b");
    }
}
