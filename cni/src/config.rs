//! The network configuration a runtime passes on stdin (one plugin's entry of a conflist, with
//! `cniVersion`, `name`, `prevResult`, `runtimeConfig` inserted by the runtime).
//!
//! Owns: decoding stdin into `NetConf` with Ginger's keys and defaults, and validating it:
//! malformed JSON is code 6, an unsupported `cniVersion` code 1, a bad value code 7 naming the
//! key, an unsupported `ipam.type` code 2. Keys Ginger does not know are kept in
//! `ignored_keys` (logged as a warning: a typo must not pass silently) unless the spec reserves
//! them. Must not: act on the configuration.
//!
//! Ginger's keys (documented in `docs/cni.md`): `run_dir`, `mtu`, `log_level`, `log_file_path`,
//! `log_file_max_size`, `agent_timeout_seconds`, `ipam.assign_ipv4`, `ipam.assign_ipv6`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::env::is_valid_cni_name;
use crate::error::{CniError, ErrorCode};
use crate::result::Dns;
use crate::version::CniVersion;

/// Where ginger-node's sockets live by default (Calico's /var/run/calico).
pub const DEFAULT_RUN_DIR: &str = "/var/run/ginger";
/// How long to wait for one ginger-node reply (Calico's IPAM gives AutoAssign 90 s).
pub const DEFAULT_AGENT_TIMEOUT_SECS: u64 = 60;
/// Log file size (MiB) beyond which it is rotated to `<path>.1` (Calico's default).
pub const DEFAULT_LOG_FILE_MAX_SIZE_MB: u64 = 100;

/// Keys the spec defines or reserves, or that a chained conflist commonly carries: not warned.
const RESERVED_KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "prevResult",
    "runtimeConfig",
    "capabilities",
    "args",
    "dns",
    "ipam",
    "ipMasq",
    "disableCheck",
    "disableGC",
];

/// The `log_level` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
}

/// One still-valid attachment of a GC request (`cni.dev/valid-attachments`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    #[serde(default)]
    pub ifname: String,
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    pub cni_version: CniVersion,
    /// The network (conflist) name: the first half of every IPAM handle.
    pub name: String,
    /// `type`: the plugin binary's name.
    pub plugin_type: String,
    /// The previous plugin's result, undecoded (`result::CniResult::from_value` reads it).
    pub prev_result: Option<Value>,
    /// Capability arguments; Ginger declares no capability, so this is informational.
    pub runtime_config: Option<Value>,
    /// `dns`: copied into ADD's result.
    pub dns: Dns,
    /// `run_dir`: the directory holding ginger-node's `cni.sock`.
    pub run_dir: PathBuf,
    /// `mtu`: pod MTU; 0 uses the MTU ginger-node detected.
    pub mtu: u32,
    pub log_level: LogLevel,
    /// `log_file_path`: log here instead of stderr.
    pub log_file_path: Option<PathBuf>,
    /// `log_file_max_size` in MiB.
    pub log_file_max_size_mb: u64,
    /// `agent_timeout_seconds`.
    pub agent_timeout: Duration,
    /// `ipam.assign_ipv4` (default true).
    pub assign_ipv4: bool,
    /// `ipam.assign_ipv6` (default false).
    pub assign_ipv6: bool,
    /// GC's still-valid attachments (`cni.dev/valid-attachments`, or the spec's older spelling
    /// `cni.dev/attachments`); `None` when the runtime sent neither.
    pub valid_attachments: Option<Vec<Attachment>>,
    /// Keys Ginger does not know (for a warning in the log).
    pub ignored_keys: Vec<String>,
}

fn invalid(key: &str, why: impl std::fmt::Display) -> CniError {
    CniError::new(
        ErrorCode::InvalidConfig,
        format!("invalid network configuration key {key:?}"),
        why.to_string(),
    )
}

/// Takes `key` out of `map` and decodes it, naming the key on failure.
fn take<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<T>, CniError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| invalid(key, e)),
    }
}

/// Calico writes IPAM booleans as strings ("true"); accept both forms.
#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrString {
    Bool(bool),
    Text(String),
}

fn flag(map: &mut Map<String, Value>, key: &str, default: bool) -> Result<bool, CniError> {
    match take::<BoolOrString>(map, key)? {
        None => Ok(default),
        Some(BoolOrString::Bool(b)) => Ok(b),
        Some(BoolOrString::Text(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid(key, format!("{s:?} is not true or false"))),
        },
    }
}

/// Decodes stdin as a JSON object, or error code 6 saying what is wrong.
pub fn decode_json(stdin: &[u8]) -> Result<Map<String, Value>, CniError> {
    let value: Value = serde_json::from_slice(stdin).map_err(|e| {
        let what = if stdin.iter().all(u8::is_ascii_whitespace) {
            "stdin is empty".to_string()
        } else {
            e.to_string()
        };
        CniError::new(
            ErrorCode::DecodingFailure,
            "cannot decode the network configuration on stdin",
            what,
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(CniError::new(
            ErrorCode::DecodingFailure,
            "cannot decode the network configuration on stdin",
            format!("expected a JSON object, got {}", json_kind(&other)),
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `cniVersion` string of stdin, if it has one (to label an error before full parsing).
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_string)
}

impl NetConf {
    /// Decodes and validates stdin.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let mut map = decode_json(stdin)?;
        let version: String = take(&mut map, "cniVersion")?.unwrap_or_default();
        let cni_version = CniVersion::parse(&version)?;
        let name: String = take(&mut map, "name")?.unwrap_or_default();
        if !is_valid_cni_name(&name) {
            let why = if name.is_empty() {
                "the network name is missing".to_string()
            } else {
                format!(
                    "{name:?}: must start with a letter or digit, then letters, digits, '_', '.' or '-'"
                )
            };
            return Err(invalid("name", why));
        }
        let plugin_type: String = take(&mut map, "type")?.unwrap_or_default();
        let prev_result: Option<Value> = take(&mut map, "prevResult")?;
        if let Some(p) = &prev_result
            && !p.is_object()
        {
            return Err(CniError::new(
                ErrorCode::DecodingFailure,
                "cannot decode prevResult",
                format!("expected a JSON object, got {}", json_kind(p)),
            ));
        }
        let runtime_config: Option<Value> = take(&mut map, "runtimeConfig")?;
        let dns: Dns = take(&mut map, "dns")?.unwrap_or_default();

        let run_dir: PathBuf = take::<String>(&mut map, "run_dir")?
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR));
        if !run_dir.is_absolute() {
            return Err(invalid(
                "run_dir",
                format!("{} is not an absolute path", run_dir.display()),
            ));
        }
        let mtu: u32 = take(&mut map, "mtu")?.unwrap_or(0);
        if mtu != 0 && !(68..=65535).contains(&mtu) {
            return Err(invalid(
                "mtu",
                format!("{mtu} is outside 68..=65535 (0 = auto)"),
            ));
        }
        let log_level = match take::<String>(&mut map, "log_level")? {
            None => LogLevel::Info,
            Some(s) => match s.to_ascii_lowercase().as_str() {
                "error" => LogLevel::Error,
                "warning" | "warn" => LogLevel::Warning,
                "info" => LogLevel::Info,
                "debug" => LogLevel::Debug,
                _ => {
                    return Err(invalid(
                        "log_level",
                        format!("{s:?} is not one of error, warning, info, debug"),
                    ));
                }
            },
        };
        let log_file_path = take::<String>(&mut map, "log_file_path")?
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        if let Some(p) = &log_file_path
            && !p.is_absolute()
        {
            return Err(invalid(
                "log_file_path",
                format!("{} is not an absolute path", p.display()),
            ));
        }
        let log_file_max_size_mb =
            take(&mut map, "log_file_max_size")?.unwrap_or(DEFAULT_LOG_FILE_MAX_SIZE_MB);
        let timeout_secs: u64 =
            take(&mut map, "agent_timeout_seconds")?.unwrap_or(DEFAULT_AGENT_TIMEOUT_SECS);
        if timeout_secs == 0 {
            return Err(invalid("agent_timeout_seconds", "must be at least 1"));
        }

        let (assign_ipv4, assign_ipv6) = match take::<Map<String, Value>>(&mut map, "ipam")? {
            None => (true, false),
            Some(mut ipam) => {
                if let Some(t) = take::<String>(&mut ipam, "type")?
                    && t != "ginger"
                {
                    return Err(CniError::new(
                        ErrorCode::UnsupportedField,
                        format!("unsupported field ipam.type={t:?}"),
                        "ginger allocates addresses through ginger-node; \
                         remove ipam.type or set it to \"ginger\"",
                    ));
                }
                let v4 = flag(&mut ipam, "assign_ipv4", true)?;
                let v6 = flag(&mut ipam, "assign_ipv6", false)?;
                if !v4 && !v6 {
                    return Err(invalid(
                        "ipam",
                        "assign_ipv4 and assign_ipv6 are both false: the pod would get no address",
                    ));
                }
                (v4, v6)
            }
        };

        let valid: Option<Vec<Attachment>> = take(&mut map, "cni.dev/valid-attachments")?;
        let older: Option<Vec<Attachment>> = take(&mut map, "cni.dev/attachments")?;
        let valid_attachments = valid.or(older);

        let ignored_keys = map
            .keys()
            .filter(|k| !RESERVED_KEYS.contains(&k.as_str()) && !k.starts_with("cni.dev/"))
            .cloned()
            .collect();
        Ok(NetConf {
            cni_version,
            name,
            plugin_type,
            prev_result,
            runtime_config,
            dns,
            run_dir,
            mtu,
            log_level,
            log_file_path,
            log_file_max_size_mb,
            agent_timeout: Duration::from_secs(timeout_secs),
            assign_ipv4,
            assign_ipv6,
            valid_attachments,
            ignored_keys,
        })
    }

    /// The IPAM handle of a container: `<network name>.<CNI_CONTAINERID>` (Calico's).
    pub fn handle(&self, container_id: &str) -> String {
        format!("{}.{container_id}", self.name)
    }

    /// The agent's CNI socket.
    pub fn socket_path(&self) -> PathBuf {
        self.run_dir.join(crate::protocol::SOCKET_NAME)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<NetConf, CniError> {
        NetConf::parse(v.to_string().as_bytes())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "ginger"}))
            .unwrap();
        assert_eq!(c.cni_version, CniVersion::V1_0_0);
        assert_eq!(c.run_dir, PathBuf::from("/var/run/ginger"));
        assert_eq!(c.socket_path(), PathBuf::from("/var/run/ginger/cni.sock"));
        assert_eq!(c.mtu, 0);
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.log_file_path, None);
        assert_eq!(c.agent_timeout, Duration::from_secs(60));
        assert!(c.assign_ipv4 && !c.assign_ipv6);
        assert_eq!(c.handle("abc"), "k8s-pod-network.abc");
        assert!(c.ignored_keys.is_empty());
        assert_eq!(c.valid_attachments, None);
    }

    #[test]
    fn all_keys_parse() {
        let c = parse(json!({
            "cniVersion": "1.1.0", "name": "net", "type": "ginger",
            "run_dir": "/tmp/x", "mtu": 1400, "log_level": "DEBUG",
            "log_file_path": "/var/log/ginger/cni.log", "log_file_max_size": 5,
            "agent_timeout_seconds": 3,
            "ipam": {"type": "ginger", "assign_ipv4": "true", "assign_ipv6": true},
            "dns": {"nameservers": ["10.96.0.10"]},
            "runtimeConfig": {"portMappings": []},
            "prevResult": {"cniVersion": "1.1.0"},
            "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
            "capabilities": {"x": true},
            "kubernetes": {"kubeconfig": "/x"},
            "mtuu": 1
        }))
        .unwrap();
        assert_eq!(c.run_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.mtu, 1400);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.log_file_max_size_mb, 5);
        assert_eq!(c.agent_timeout, Duration::from_secs(3));
        assert!(c.assign_ipv4 && c.assign_ipv6);
        assert_eq!(c.dns.nameservers, ["10.96.0.10"]);
        assert!(c.prev_result.is_some() && c.runtime_config.is_some());
        assert_eq!(
            c.valid_attachments,
            Some(vec![Attachment {
                container_id: "a".into(),
                ifname: "eth0".into()
            }])
        );
        assert_eq!(c.ignored_keys, ["kubernetes", "mtuu"]);
    }

    #[test]
    fn older_gc_key_spelling_is_accepted() {
        // libcni sends both; the 1.1.0 spec text names `cni.dev/attachments`.
        let c = parse(json!({"cniVersion": "1.1.0", "name": "n",
                             "cni.dev/attachments": [{"containerID": "b", "ifname": "eth0"}]}))
        .unwrap();
        assert_eq!(c.valid_attachments.unwrap()[0].container_id, "b");
    }

    #[test]
    fn malformed_json_is_code_6() {
        for bad in [&b"{\"cniVersion\": "[..], b"", b"   ", b"[1,2]", b"\"x\""] {
            let e = NetConf::parse(bad).unwrap_err();
            assert_eq!(
                e.code,
                ErrorCode::DecodingFailure,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(NetConf::parse(b"").unwrap_err().details.contains("empty"));
        let e = NetConf::parse(b"{\"name\": }").unwrap_err();
        assert!(e.details.contains("line 1"), "{}", e.details);
    }

    #[test]
    fn unsupported_version_is_code_1() {
        let e = parse(json!({"cniVersion": "0.2.0", "name": "n"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::IncompatibleVersion);
        let e = parse(json!({"name": "n"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::IncompatibleVersion);
    }

    #[test]
    fn bad_values_are_code_7_naming_the_key() {
        let cases = [
            (json!({"cniVersion": "1.0.0"}), "name"),
            (json!({"cniVersion": "1.0.0", "name": "-bad"}), "name"),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "mtu": "big"}),
                "mtu",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "mtu": 20}),
                "mtu",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "run_dir": "rel"}),
                "run_dir",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "log_level": "loud"}),
                "log_level",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "agent_timeout_seconds": 0}),
                "agent_timeout_seconds",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"assign_ipv4": "yes"}}),
                "assign_ipv4",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n",
                    "ipam": {"assign_ipv4": false, "assign_ipv6": false}}),
                "ipam",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "cni.dev/valid-attachments": [{}]}),
                "cni.dev/valid-attachments",
            ),
        ];
        for (conf, key) in cases {
            let e = parse(conf.clone()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidConfig, "{conf}");
            assert!(e.msg.contains(key), "{conf}: {}", e.msg);
        }
        let e = parse(json!({"cniVersion": "1.0.0", "name": "n", "prevResult": [1]})).unwrap_err();
        assert_eq!(e.code, ErrorCode::DecodingFailure);
    }

    #[test]
    fn foreign_ipam_is_code_2() {
        // CNI spec §5: code 2 must name the key and value.
        let e = parse(json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local"}}))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedField);
        assert!(
            e.msg.contains("ipam.type") && e.msg.contains("host-local"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn version_can_be_peeked_from_anything_json() {
        assert_eq!(
            peek_version(br#"{"cniVersion":"0.3.1","name":1}"#).as_deref(),
            Some("0.3.1")
        );
        assert_eq!(peek_version(b"{oops"), None);
    }
}
