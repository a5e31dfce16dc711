//! Network namespaces as RAII guards: the lab's hosts.
//!
//! Owns: unique naming (`gng-<pid>-<n>-<label>`), creation (`ip netns add`, `lo` up, IPv6 DAD
//! off), commands inside (`exec`, `run`, `ip`, `sysctl`), and teardown on drop (kill every
//! process still inside, by PID, then `ip netns del`). Also the start-of-run sweep of namespaces
//! left behind by a test process that died (a timeout kills it with SIGKILL, so its guards never
//! ran): each namespace has an owner marker in `/run/gng-e2e/` recording the creating process's
//! pid and start time, and only namespaces whose owner is gone are swept.
//! Must not: touch the machine's own namespace (every link and address command here is scoped
//! with `ip -n NAME` or runs inside the namespace), or sweep a namespace it has no marker for.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd;
use crate::error::{Error, Result};
use crate::proc::Proc;
use crate::setns::thread_in_netns;

/// Prefix of every namespace the harness creates.
pub const NAME_PREFIX: &str = "gng-";
/// Where `ip netns` keeps its namespace handles.
pub const NETNS_DIR: &str = "/run/netns";
/// Where the harness records which process owns which namespace.
pub const MARKER_DIR: &str = "/run/gng-e2e";
/// Longest label kept in a namespace name.
const MAX_LABEL: usize = 10;

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// A network namespace that is deleted, with everything running in it, when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create a fresh namespace with `lo` up and IPv6 duplicate address detection off (so v6
    /// addresses are usable at once). The first call in a process sweeps stale namespaces.
    pub fn new(label: &str) -> Result<Netns> {
        SWEEP.call_once(|| match sweep_stale() {
            Ok(swept) if !swept.is_empty() => {
                eprintln!("e2e: swept stale namespaces: {}", swept.join(", "));
            }
            Ok(_) => {}
            Err(e) => eprintln!("e2e: sweeping stale namespaces failed: {}", e.chain()),
        });
        let name = unique_name(label);
        let me = std::process::id();
        let marker = Marker {
            pid: me,
            start_time: process_start_time(me).ok_or_else(|| {
                Error::io(
                    "reading this process's start time",
                    io::ErrorKind::NotFound.into(),
                )
            })?,
        };
        marker.write(&name)?;
        if let Err(e) = cmd::run(Command::new("ip").args(["netns", "add", &name])) {
            let _ = fs::remove_file(marker_path(&name));
            return Err(e);
        }
        // From here on the guard owns the namespace: a failure below still deletes it.
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        if Path::new("/proc/sys/net/ipv6").exists() {
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
        }
        Ok(ns)
    }

    /// The namespace's name (as `ip netns list` shows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace handle file (`/run/netns/NAME`).
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// A `Command` that runs `args` inside the namespace (`ip netns exec NAME args…`).
    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]);
        c.args(args.iter().map(|a| a.as_ref()));
        c
    }

    /// Run `args` inside the namespace and return its output, whatever the exit status.
    pub fn exec<S: AsRef<str>>(&self, args: &[S]) -> Result<Output> {
        cmd::output_with_timeout(&mut self.command(args), cmd::DEFAULT_COMMAND_TIMEOUT)
    }

    /// Run `args` inside the namespace; a non-zero exit is an error. Returns stdout.
    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Result<String> {
        cmd::run(&mut self.command(args))
    }

    /// Run `ip -n NAME args…` (links, addresses, routes of this namespace). Returns stdout.
    pub fn ip<S: AsRef<str>>(&self, args: &[S]) -> Result<String> {
        let mut c = Command::new("ip");
        c.args(["-n", &self.name]);
        c.args(args.iter().map(|a| a.as_ref()));
        cmd::run(&mut c)
    }

    /// Set a sysctl inside this namespace only. `key` is dotted (`net.ipv4.ip_forward`) or a
    /// path under `/proc/sys` (`net/ipv4/conf/eth0.10/forwarding`, for names with dots).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let rel = if key.contains('/') {
            key.to_string()
        } else {
            key.replace('.', "/")
        };
        let path = Path::new("/proc/sys").join(rel);
        let value = value.to_string();
        // /proc/sys/net resolves against the writing thread's namespace.
        thread_in_netns(self, move || {
            fs::write(&path, value.as_bytes()).map_err(|e| (path, e))
        })?
        .map_err(|(path, e)| Error::io(format!("setting {} in {}", path.display(), self.name), e))
    }

    /// Read a sysctl inside this namespace.
    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        thread_in_netns(self, move || {
            fs::read_to_string(&path).map_err(|e| (path, e))
        })?
        .map(|v| v.trim().to_string())
        .map_err(|(path, e)| Error::io(format!("reading {} in {}", path.display(), self.name), e))
    }

    /// Start a long-running process inside the namespace; its stdout/stderr go to
    /// `log_dir/<label>.stdout` and `.stderr`.
    pub fn spawn<S: AsRef<str>>(&self, label: &str, args: &[S], log_dir: &Path) -> Result<Proc> {
        Proc::spawn(self.command(args), label, log_dir)
    }

    /// PIDs of every process whose network namespace is this one.
    pub fn pids(&self) -> Result<Vec<i32>> {
        pids_in(&self.name)
    }

    /// The names of this namespace's interfaces (`lo` included).
    pub fn links(&self) -> Result<Vec<String>> {
        let out = self.ip(&["-o", "link", "show"])?;
        Ok(parse_link_names(&out))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = destroy(&self.name) {
            eprintln!(
                "e2e: tearing down namespace {} failed: {}",
                self.name,
                e.chain()
            );
        }
    }
}

/// Kill what runs inside `name`, delete it, and remove its marker.
fn destroy(name: &str) -> Result<()> {
    if !Path::new(NETNS_DIR).join(name).exists() {
        // Someone (a concurrent sweep) got there first.
        let _ = fs::remove_file(marker_path(name));
        return Ok(());
    }
    kill_all_in(name)?;
    let out = cmd::output_with_timeout(
        Command::new("ip").args(["netns", "del", name]),
        cmd::DEFAULT_COMMAND_TIMEOUT,
    )?;
    let gone = !Path::new(NETNS_DIR).join(name).exists();
    let _ = fs::remove_file(marker_path(name));
    if out.status.success() || gone {
        Ok(())
    } else {
        Err(Error::Command {
            cmd: format!("ip netns del {name}"),
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// SIGKILL every process inside `name` (never this process) and wait until they are gone.
fn kill_all_in(name: &str) -> Result<()> {
    let me = std::process::id() as i32;
    let victims: Vec<i32> = pids_in(name)?.into_iter().filter(|&p| p != me).collect();
    for &pid in &victims {
        // ESRCH just means it exited meanwhile.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while victims.iter().any(|&p| is_alive(p)) {
        if Instant::now() > deadline {
            let left: Vec<String> = victims
                .iter()
                .filter(|&&p| is_alive(p))
                .map(|p| p.to_string())
                .collect();
            return Err(Error::Command {
                cmd: format!("kill -9 (processes in {name})"),
                status: "still running after 3 s".into(),
                output: left.join(" "),
            });
        }
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn pids_in(name: &str) -> Result<Vec<i32>> {
    let out = cmd::run(Command::new("ip").args(["netns", "pids", name]))?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Whether `pid` exists and is not a zombie (a zombie no longer holds any namespace).
pub fn is_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat).is_some_and(|f| f.first() != Some(&"Z")),
        Err(_) => false,
    }
}

/// The fields of `/proc/PID/stat` after the command name (state first).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let close = stat.rfind(')')?;
    Some(stat.get(close + 1..)?.split_whitespace().collect())
}

/// Start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`): with the pid it
/// identifies a process uniquely, so a reused pid is not mistaken for the namespace's owner.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat)?.get(19)?.parse().ok()
}

fn unique_name(label: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let clean: String = label
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(MAX_LABEL)
        .collect();
    format!(
        "{NAME_PREFIX}{}-{}-{}",
        base36(std::process::id()),
        base36(n),
        clean
    )
}

fn base36(mut v: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn parse_link_names(ip_o_link: &str) -> Vec<String> {
    ip_o_link
        .lines()
        .filter_map(|l| {
            let name = l.split(':').nth(1)?.trim();
            Some(name.split('@').next().unwrap_or(name).to_string())
        })
        .collect()
}

/// Who created a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Marker {
    pid: u32,
    start_time: u64,
}

fn marker_path(name: &str) -> PathBuf {
    Path::new(MARKER_DIR).join(name)
}

impl Marker {
    fn write(&self, name: &str) -> Result<()> {
        fs::create_dir_all(MARKER_DIR)
            .map_err(|e| Error::io(format!("creating {MARKER_DIR}"), e))?;
        let path = marker_path(name);
        fs::write(&path, format!("{} {}\n", self.pid, self.start_time))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    fn read(name: &str) -> Option<Marker> {
        let text = fs::read_to_string(marker_path(name)).ok()?;
        let mut it = text.split_whitespace();
        Some(Marker {
            pid: it.next()?.parse().ok()?,
            start_time: it.next()?.parse().ok()?,
        })
    }

    fn owner_alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }
}

/// Delete every harness namespace whose creating process is gone (killing what still runs in
/// it), and forget markers of namespaces that no longer exist. Returns the names swept.
/// Namespaces without a harness marker are never touched.
pub fn sweep_stale() -> Result<Vec<String>> {
    let mut swept = Vec::new();
    let entries = match fs::read_dir(MARKER_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(swept),
        Err(e) => return Err(Error::io(format!("listing {MARKER_DIR}"), e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(NAME_PREFIX) {
            continue;
        }
        match Marker::read(&name) {
            Some(m) if m.owner_alive() => continue,
            // Unreadable markers are being written right now, or are not ours to judge.
            None => continue,
            Some(_) => {}
        }
        if Path::new(NETNS_DIR).join(&name).exists() {
            match destroy(&name) {
                Ok(()) => swept.push(name),
                // A concurrent sweep in another test process may have deleted it meanwhile.
                Err(_) if !Path::new(NETNS_DIR).join(&name).exists() => {}
                Err(e) => return Err(e),
            }
        } else {
            let _ = fs::remove_file(marker_path(&name));
        }
    }
    Ok(swept)
}

/// Names of every namespace `ip netns list` shows (for cleanup assertions).
pub fn list_namespaces() -> Result<Vec<String>> {
    let out = cmd::run(Command::new("ip").args(["netns", "list"]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_short_and_clean() {
        let a = unique_name("BIRD router #1");
        let b = unique_name("BIRD router #1");
        assert_ne!(a, b);
        assert!(a.starts_with(NAME_PREFIX));
        assert!(a.ends_with("birdrouter"), "{a}");
        assert!(a.len() <= 4 + 5 + 1 + 3 + 1 + MAX_LABEL, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn base36_round_numbers() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(4_194_304), "2hwcg");
    }

    #[test]
    fn start_time_identifies_this_process() {
        let me = std::process::id();
        let t = process_start_time(me).expect("own start time");
        assert!(
            Marker {
                pid: me,
                start_time: t
            }
            .owner_alive()
        );
        assert!(
            !Marker {
                pid: me,
                start_time: t + 1
            }
            .owner_alive()
        );
        assert!(is_alive(me as i32));
    }

    #[test]
    fn stat_fields_survive_parentheses_in_the_command_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0";
        let f = stat_fields(stat).unwrap();
        assert_eq!(f[0], "S");
        assert_eq!(f[19], "777");
    }

    #[test]
    fn link_names_drop_the_peer_suffix() {
        let out = "1: lo: <LOOPBACK,UP> mtu 65536\n7: eth-b@if6: <BROADCAST> mtu 1500\n";
        assert_eq!(parse_link_names(out), vec!["lo", "eth-b"]);
    }
}
