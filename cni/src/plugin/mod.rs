//! The `ginger` CNI plugin: one invocation from environment and stdin to stdout and exit code.
//!
//! Owns: the order of an invocation — environment (`env`), VERSION, configuration (`config`),
//! the per-version gate on commands, logging set-up (`logging`) — and the dispatch to `add`,
//! `del`, `check`, `status` and `gc`. Every failure becomes one CNI error JSON on stdout and a
//! non-zero exit; logs never go to stdout. Must not: print — `bin/ginger.rs` writes `Output`.

mod add;
mod check;
mod del;
mod gc;
mod logging;
mod netns_guard;
mod status;

use serde_json::json;
use tracing::{error, info, info_span, warn};

use crate::client::AgentClient;
use crate::config::{NetConf, peek_version};
use crate::env::{CniEnv, Command};
use crate::error::{CniError, ErrorCode};
use crate::version::CniVersion;

/// What the binary prints on stdout and the exit code it returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The result, version or error JSON; empty for commands that print nothing on success.
    pub stdout: String,
    pub exit_code: u8,
}

impl Output {
    fn success(stdout: String) -> Output {
        Output {
            stdout,
            exit_code: 0,
        }
    }

    fn failure(err: &CniError, version: &str) -> Output {
        Output {
            stdout: err.to_json(version),
            exit_code: 1,
        }
    }
}

/// The VERSION answer: `cniVersion` echoes the input's when it has one (CNI spec §5 "Version").
pub fn version_json(stdin: &[u8]) -> String {
    let requested = peek_version(stdin).filter(|v| !v.is_empty());
    let supported: Vec<&str> = CniVersion::SUPPORTED.iter().map(|v| v.as_str()).collect();
    json!({
        "cniVersion": requested.as_deref().unwrap_or(CniVersion::LATEST.as_str()),
        "supportedVersions": supported,
    })
    .to_string()
}

/// Runs one invocation. `env` is the parsed environment (or why it is invalid); `stdin` the
/// bytes the runtime wrote.
pub fn run(env: Result<CniEnv, CniError>, stdin: &[u8]) -> Output {
    let label = peek_version(stdin)
        .filter(|v| CniVersion::parse(v).is_ok())
        .unwrap_or_else(|| CniVersion::LATEST.as_str().to_string());
    let env = match env {
        Ok(env) => env,
        Err(e) => {
            logging::init_stderr();
            error!(error = %e, "invalid CNI environment");
            return Output::failure(&e, &label);
        }
    };
    if env.command == Command::Version {
        return Output::success(version_json(stdin));
    }
    let conf = match NetConf::parse(stdin) {
        Ok(conf) => conf,
        Err(e) => {
            logging::init_stderr();
            error!(command = %env.command, error = %e, "invalid network configuration");
            return Output::failure(&e, &label);
        }
    };
    logging::init(&conf);
    let version = conf.cni_version.as_str();
    let span = info_span!(
        "ginger",
        cmd = %env.command,
        container = %env.container_id,
        pod = %format!("{}/{}", env.args.pod_namespace, env.args.pod_name),
    );
    let _entered = span.enter();
    if !conf.ignored_keys.is_empty() {
        warn!(keys = ?conf.ignored_keys, "ignoring unknown network configuration keys");
    }
    match dispatch(&env, &conf) {
        Ok(stdout) => {
            info!("done");
            Output::success(stdout)
        }
        Err(e) => {
            error!(code = e.code.code(), error = %e, "failed");
            Output::failure(&e, version)
        }
    }
}

fn dispatch(env: &CniEnv, conf: &NetConf) -> Result<String, CniError> {
    let version = conf.cni_version;
    let gate = |allowed: bool, since: &str| {
        if allowed {
            Ok(())
        } else {
            Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("config version {version} does not allow {}", env.command),
                format!("{} exists from CNI {since} on", env.command),
            ))
        }
    };
    let agent = AgentClient::new(conf.socket_path(), conf.agent_timeout);
    info!(netns = env.netns.as_deref().unwrap_or(""), ifname = %env.ifname, socket = %agent.socket().display(), "start");
    match env.command {
        Command::Add => add::add(env, conf, &agent).map(|r| r.to_json(version)),
        Command::Del => del::del(env, conf, &agent).map(|()| String::new()),
        Command::Check => {
            gate(version.allows_check(), "0.4.0")?;
            check::check(env, conf, &agent).map(|()| String::new())
        }
        Command::Status => {
            gate(version.allows_status_and_gc(), "1.1.0")?;
            status::status(&agent).map(|()| String::new())
        }
        Command::Gc => {
            gate(version.allows_status_and_gc(), "1.1.0")?;
            gc::gc(conf, &agent).map(|()| String::new())
        }
        // Answered before the configuration is read.
        Command::Version => Ok(version_json(b"")),
    }
}

/// The message of a reply the plugin did not expect for its request.
fn unexpected_reply(request: &str, reply: &crate::protocol::Reply) -> CniError {
    CniError::new(
        ErrorCode::AgentProtocol,
        format!("ginger-node answered {request} with an unexpected reply"),
        format!(
            "{reply:?}; the plugin and ginger-node may be different versions, install matching versions"
        ),
    )
}

/// The CNI error for an agent refusal.
fn refused(request: &str, kind: crate::protocol::ErrorKind, message: &str) -> CniError {
    CniError::new(
        ErrorCode::for_agent_error(kind),
        format!("ginger-node refused {request}: {message}"),
        "",
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::Value;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::from_lookup(|k| map.get(k).cloned())
    }

    fn json_of(out: &Output) -> Value {
        serde_json::from_str(&out.stdout).expect("stdout is JSON")
    }

    #[test]
    fn version_lists_every_supported_version() {
        // CNI spec §5 "Version": cniVersion echoes the input, supportedVersions lists all.
        let out = run(
            env(&[("CNI_COMMAND", "VERSION")]),
            br#"{"cniVersion":"0.4.0"}"#,
        );
        assert_eq!(out.exit_code, 0);
        assert_eq!(
            json_of(&out),
            json!({"cniVersion": "0.4.0",
                   "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        );
        // No or garbled stdin: answer with the newest version.
        let out = run(env(&[("CNI_COMMAND", "VERSION")]), b"");
        assert_eq!(json_of(&out)["cniVersion"], "1.1.0");
    }

    #[test]
    fn command_gates_follow_the_config_version() {
        let dir = tempfile::tempdir().unwrap();
        let conf = |v: &str| {
            json!({"cniVersion": v, "name": "n", "type": "ginger",
                   "run_dir": dir.path().to_str().unwrap()})
            .to_string()
        };
        let check = [
            ("CNI_COMMAND", "CHECK"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
        ];
        let out = run(env(&check), conf("0.3.1").as_bytes());
        assert_eq!(out.exit_code, 1);
        assert_eq!(json_of(&out)["code"], 1);
        assert_eq!(json_of(&out)["cniVersion"], "0.3.1");
        for cmd in ["STATUS", "GC"] {
            let out = run(env(&[("CNI_COMMAND", cmd)]), conf("1.0.0").as_bytes());
            assert_eq!(json_of(&out)["code"], 1, "{cmd}");
            assert!(
                json_of(&out)["msg"].as_str().unwrap().contains(cmd),
                "{cmd}"
            );
        }
        // STATUS at 1.1.0 with no agent: "not available".
        let out = run(env(&[("CNI_COMMAND", "STATUS")]), conf("1.1.0").as_bytes());
        assert_eq!(json_of(&out)["code"], 50);
    }

    #[test]
    fn errors_before_the_config_carry_a_version_label() {
        let out = run(
            env(&[("CNI_COMMAND", "ADD")]),
            br#"{"cniVersion":"0.3.1","name":"n"}"#,
        );
        assert_eq!(out.exit_code, 1);
        let v = json_of(&out);
        assert_eq!(v["code"], 4);
        assert_eq!(v["cniVersion"], "0.3.1");
        let out = run(
            env(&[
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "c"),
                ("CNI_IFNAME", "eth0"),
            ]),
            b"{not json",
        );
        let v = json_of(&out);
        assert_eq!(v["code"], 6);
        assert_eq!(v["cniVersion"], "1.1.0");
    }
}
