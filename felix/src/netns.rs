//! Network namespaces: `run_in_netns` runs a closure on a fresh thread that has entered a
//! namespace (`setns(2)`, via `sys`), so sockets and `/proc/sys` writes made there act inside it
//! while the caller's thread stays where it was. `Netns` is an RAII namespace made with
//! `ip netns add` and deleted on drop, for tests and the lab. Nothing here touches the caller's
//! own namespace.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where `ip netns` keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// A namespace could not be entered, created or used.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start a thread for network namespace {path}: {source}")]
    Thread {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
}

/// A namespace given by name (`/var/run/netns/<name>`) or by path (anything containing `/`).
pub fn netns_path(name_or_path: &str) -> PathBuf {
    if name_or_path.contains('/') {
        PathBuf::from(name_or_path)
    } else {
        Path::new(NETNS_RUN_DIR).join(name_or_path)
    }
}

/// Moves the calling thread into the namespace at `path`. Only for threads felix owns.
pub(crate) fn enter(path: &Path) -> Result<(), NetnsError> {
    let file = File::open(path).map_err(|source| NetnsError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    crate::sys::setns_net(file.as_fd()).map_err(|source| NetnsError::Enter {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs `f` on a new thread inside the namespace `name_or_path` and returns its result. A
/// panic in `f` is resumed on the caller's thread.
pub fn run_in_netns<T, F>(name_or_path: &str, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let path = netns_path(name_or_path);
    // Open first so a missing namespace is reported before a thread is made.
    let file = File::open(&path).map_err(|source| NetnsError::Open {
        path: path.clone(),
        source,
    })?;
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("felix-netns".into())
            .spawn_scoped(scope, || {
                crate::sys::setns_net(file.as_fd()).map_err(|source| NetnsError::Enter {
                    path: path.clone(),
                    source,
                })?;
                Ok(f())
            })
            .map_err(|source| NetnsError::Thread {
                path: path.clone(),
                source,
            })?;
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Runs a command and returns its stdout, or its stderr as the error.
pub fn run_command(program: &str, args: &[&str]) -> Result<String, NetnsError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetnsError::Command {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(NetnsError::Command { command, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace made with `ip netns add`, deleted (with everything in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `<prefix>-<pid>-<n>` (unique per process and call) with `lo` up.
    pub fn create(prefix: &str) -> Result<Netns, NetnsError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        run_command("ip", &["netns", "add", &name])?;
        let ns = Netns { name };
        run_command("ip", &["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        netns_path(&self.name)
    }

    /// `run_in_netns` for this namespace.
    pub fn run<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> Result<T, NetnsError> {
        run_in_netns(&self.name, f)
    }

    /// Runs `program args…` inside the namespace (`ip netns exec`) and returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, NetnsError> {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run_command("ip", &full)
    }

    /// Runs `ip -n <ns> args…` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String, NetnsError> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run_command("ip", &full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run_command("ip", &["netns", "del", &self.name]) {
            eprintln!(
                "warning: could not delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(netns_path("pod1"), PathBuf::from("/var/run/netns/pod1"));
        assert_eq!(
            netns_path("/proc/123/ns/net"),
            PathBuf::from("/proc/123/ns/net")
        );
    }

    #[test]
    fn missing_namespace_is_an_open_error() {
        let r = run_in_netns("/nonexistent/ns/path", || 1);
        assert!(matches!(r, Err(NetnsError::Open { .. })));
    }
}
