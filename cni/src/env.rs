//! The `CNI_*` environment of one plugin invocation.
//!
//! Owns: reading `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS` and
//! `CNI_PATH` through a lookup function (the process environment in the binary, a map in
//! tests), checking which are required for the command (CNI spec §2 "Parameters") and
//! validating them as libcni's skel does. Every problem is error code 4 naming the variable.
//! Must not: touch stdin or the network.

use std::fmt;
use std::path::PathBuf;

use crate::args::CniArgs;
use crate::error::{CniError, ErrorCode};

/// `CNI_COMMAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    /// The command as the runtime spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    /// Whether the command concerns one attachment (and so needs a container and interface).
    fn is_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The validated environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Command,
    /// `CNI_CONTAINERID`; set for ADD, DEL and CHECK.
    pub container_id: String,
    /// `CNI_NETNS`; set for ADD and CHECK, optional for DEL.
    pub netns: Option<String>,
    /// `CNI_IFNAME`; set for ADD, DEL and CHECK.
    pub ifname: String,
    /// `CNI_ARGS`, parsed.
    pub args: CniArgs,
    /// `CNI_PATH`, split on ':' (Ginger delegates to no plugin, so it is informational).
    pub path: Vec<PathBuf>,
}

/// libcni's rule for container IDs and network names: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn is_valid_cni_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Linux's rules for an interface name (libcni `ValidateInterfaceName`).
pub fn interface_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > 15 {
        Some("is longer than 15 characters")
    } else if name == "." || name == ".." {
        Some("is . or ..")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("contains '/', ':' or whitespace")
    } else {
        None
    }
}

fn env_error(msg: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::InvalidEnvironment, msg, details)
}

impl CniEnv {
    /// Reads and validates the environment; `lookup` returns a variable's value (`None` or an
    /// empty string both mean unset, as in libcni).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<CniEnv, CniError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let Some(raw_command) = get("CNI_COMMAND") else {
            return Err(env_error(
                "required environment variables [CNI_COMMAND] missing",
                "set CNI_COMMAND to ADD, DEL, CHECK, VERSION, STATUS or GC",
            ));
        };
        let command = Command::parse(&raw_command).ok_or_else(|| {
            env_error(
                format!("unknown CNI_COMMAND {raw_command:?}"),
                "expected ADD, DEL, CHECK, VERSION, STATUS or GC",
            )
        })?;

        let container_id = get("CNI_CONTAINERID");
        let netns = get("CNI_NETNS");
        let ifname = get("CNI_IFNAME");
        let mut missing = Vec::new();
        if command.is_attachment() {
            if container_id.is_none() {
                missing.push("CNI_CONTAINERID");
            }
            if netns.is_none() && command != Command::Del {
                missing.push("CNI_NETNS");
            }
            if ifname.is_none() {
                missing.push("CNI_IFNAME");
            }
        }
        if !missing.is_empty() {
            return Err(env_error(
                format!(
                    "required environment variables [{}] missing",
                    missing.join(",")
                ),
                format!("{command} needs them (CNI spec, section 2)"),
            ));
        }
        let container_id = container_id.unwrap_or_default();
        let ifname = ifname.unwrap_or_default();
        if command.is_attachment() {
            if !is_valid_cni_name(&container_id) {
                return Err(env_error(
                    "invalid characters in CNI_CONTAINERID",
                    format!(
                        "{container_id:?}: must start with a letter or digit, then letters, digits, '_', '.' or '-'"
                    ),
                ));
            }
            if let Some(problem) = interface_name_problem(&ifname) {
                return Err(env_error(
                    format!("invalid CNI_IFNAME {ifname:?}"),
                    format!("the interface name {problem}"),
                ));
            }
        }
        let args = CniArgs::parse(&get("CNI_ARGS").unwrap_or_default())?;
        let path = get("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(CniEnv {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }

    /// Reads the process environment.
    pub fn from_process() -> Result<CniEnv, CniError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::from_lookup(|k| map.get(k).cloned())
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc-1"),
        ("CNI_NETNS", "/var/run/netns/cni-1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
        ),
    ];

    #[test]
    fn a_containerd_add_environment_parses() {
        let e = env(ADD).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.container_id, "abc-1");
        assert_eq!(e.netns.as_deref(), Some("/var/run/netns/cni-1"));
        assert_eq!(e.ifname, "eth0");
        assert_eq!(e.args.pod_name, "p");
        assert_eq!(
            e.path,
            [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
    }

    #[test]
    fn missing_variables_are_code_4_and_named() {
        // CNI spec §2: ADD requires CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME.
        let without: Vec<_> = ADD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .collect();
        let e = env(&without).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEnvironment);
        assert!(e.msg.contains("CNI_NETNS"), "{}", e.msg);
        let e = env(&[("CNI_COMMAND", "CHECK")]).unwrap_err();
        assert!(
            e.msg.contains("CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME"),
            "{}",
            e.msg
        );
        assert_eq!(env(&[]).unwrap_err().code, ErrorCode::InvalidEnvironment);
        assert_eq!(
            env(&[("CNI_COMMAND", "RESET")]).unwrap_err().code,
            ErrorCode::InvalidEnvironment
        );
    }

    #[test]
    fn del_needs_no_netns_and_version_needs_nothing() {
        // CNI spec §2: CNI_NETNS is optional for DEL.
        let del = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(del.netns, None);
        for c in ["VERSION", "STATUS", "GC"] {
            assert!(env(&[("CNI_COMMAND", c)]).is_ok(), "{c}");
        }
    }

    #[test]
    fn invalid_ids_and_names_are_code_4() {
        let mut bad_id = ADD.to_vec();
        bad_id[1] = ("CNI_CONTAINERID", "-abc");
        assert_eq!(
            env(&bad_id).unwrap_err().code,
            ErrorCode::InvalidEnvironment
        );
        let mut bad_if = ADD.to_vec();
        bad_if[3] = ("CNI_IFNAME", "eth0/1");
        let e = env(&bad_if).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEnvironment);
        assert!(e.msg.contains("CNI_IFNAME"));
        let mut long_if = ADD.to_vec();
        long_if[3] = ("CNI_IFNAME", "a-very-long-ifname");
        assert!(env(&long_if).is_err());
    }

    #[test]
    fn names_follow_libcni() {
        for ok in ["a", "k8s-pod-network", "A_b.c-9", "0abc"] {
            assert!(is_valid_cni_name(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "a:b"] {
            assert!(!is_valid_cni_name(bad), "{bad}");
        }
    }
}
