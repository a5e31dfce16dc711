//! What the lab does to the machine: named network namespaces, links inside them, sysctls
//! inside them, and detached processes inside them.
//!
//! Owns: `add_netns`/`delete_netns` (the lab's namespaces carry its own names and outlive the
//! `ginger-lab` process, so the harness's `Netns` guard — which deletes on drop and is swept
//! once its creator is gone — does not fit), veth pairs created straight into their namespaces
//! (`ip -n A link add … peer … netns B`: no link is ever in the machine's own namespace),
//! `spawn_detached` (`ip netns exec NS prog` in its own process group, output in a log file,
//! not waited for: it runs on after `up` returns) and stopping a recorded process by pid, after
//! checking its start time. Must not: touch the machine's own namespace, or signal a process the
//! lab did not record or that is not inside one of the lab's namespaces.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::error::{LabError, LabResult};
use super::journal::ProcRecord;
use crate::cmd;
use crate::netns::{NETNS_DIR, is_alive};

/// Whether namespace `name` exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// The path a process or plugin uses to enter namespace `name`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Create namespace `name` with `lo` up.
pub fn add_netns(name: &str) -> LabResult<()> {
    cmd::run(Command::new("ip").args(["netns", "add", name]))
        .map_err(|e| LabError::step(format!("creating namespace {name}"), e))?;
    ip(name, &["link", "set", "lo", "up"])?;
    Ok(())
}

/// SIGKILL every process inside `name`, then delete it. A missing namespace is success.
/// Returns the pids killed.
pub fn delete_netns(name: &str) -> LabResult<Vec<i32>> {
    if !netns_exists(name) {
        return Ok(Vec::new());
    }
    let killed = kill_all_in(name)?;
    let out = cmd::output_with_timeout(
        Command::new("ip").args(["netns", "del", name]),
        cmd::DEFAULT_COMMAND_TIMEOUT,
    )
    .map_err(|e| LabError::step(format!("deleting namespace {name}"), e))?;
    if netns_exists(name) {
        return Err(LabError::NotConverged(format!(
            "namespace {name} is still there after `ip netns del`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(killed)
}

/// Pids of the processes inside namespace `name`.
pub fn pids_in(name: &str) -> LabResult<Vec<i32>> {
    let out = cmd::run(Command::new("ip").args(["netns", "pids", name]))
        .map_err(|e| LabError::step(format!("listing processes in {name}"), e))?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

fn kill_all_in(name: &str) -> LabResult<Vec<i32>> {
    let me = std::process::id() as i32;
    let victims: Vec<i32> = pids_in(name)?.into_iter().filter(|&p| p != me).collect();
    for &pid in &victims {
        // ESRCH: it exited meanwhile.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    wait_gone(&victims, Duration::from_secs(5)).map_err(|left| {
        LabError::NotConverged(format!(
            "processes {left:?} in namespace {name} survived SIGKILL for 5 s"
        ))
    })?;
    Ok(victims)
}

/// Wait until none of `pids` runs; the ones still running after `within`.
fn wait_gone(pids: &[i32], within: Duration) -> Result<(), Vec<i32>> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(left);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `ip -n NS args…`; returns stdout.
pub fn ip(ns: &str, args: &[&str]) -> LabResult<String> {
    let mut c = Command::new("ip");
    c.args(["-n", ns]).args(args);
    cmd::run(&mut c).map_err(|e| LabError::step(format!("in namespace {ns}"), e))
}

/// Set a sysctl inside namespace `ns` (`ip netns exec NS sysctl -qw key=value`).
pub fn sysctl(ns: &str, key: &str, value: &str) -> LabResult<()> {
    cmd::run(Command::new("ip").args([
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        &format!("{key}={value}"),
    ]))
    .map(|_| ())
    .map_err(|e| LabError::step(format!("setting {key} in {ns}"), e))
}

/// A bridge `name` inside `ns`, up (multicast snooping off: no querier here).
pub fn add_bridge(ns: &str, name: &str) -> LabResult<()> {
    ip(
        ns,
        &["link", "add", name, "type", "bridge", "mcast_snooping", "0"],
    )?;
    ip(ns, &["link", "set", name, "up"])?;
    Ok(())
}

/// A veth pair from `a_ns`/`a_if` to `b_ns`/`b_if`, both ends up; `a_addr`/`b_addr` (CIDR) are
/// added when given; end A is enslaved to bridge `a_master` when given.
pub fn add_veth(
    (a_ns, a_if, a_addr, a_master): (&str, &str, Option<&str>, Option<&str>),
    (b_ns, b_if, b_addr): (&str, &str, Option<&str>),
) -> LabResult<()> {
    ip(
        a_ns,
        &[
            "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b_ns,
        ],
    )?;
    if let Some(master) = a_master {
        ip(a_ns, &["link", "set", a_if, "master", master])?;
    }
    for (ns, ifname, addr) in [(a_ns, a_if, a_addr), (b_ns, b_if, b_addr)] {
        if let Some(a) = addr {
            ip(ns, &["addr", "add", a, "dev", ifname])?;
        }
        ip(ns, &["link", "set", ifname, "up"])?;
    }
    Ok(())
}

/// Start `argv` inside `ns`, detached: its own process group (a Ctrl-C in the shell that ran
/// `up` does not reach it), stdin closed, stdout and stderr appended to `log`, `env` added.
/// Returns its record; the child is not waited for.
pub fn spawn_detached(
    ns: &str,
    label: &str,
    argv: &[String],
    env: &[(&str, String)],
    log: &Path,
) -> LabResult<ProcRecord> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
    }
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::io(format!("opening {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| LabError::io(format!("opening {}", log.display()), e))?;
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .args(argv)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let child = c
        .spawn()
        .map_err(|e| LabError::io(format!("starting {}", cmd::describe(&c)), e))?;
    // `ip netns exec` execs the program in place: this pid is the daemon's.
    let pid = child.id() as i32;
    let start_time = process_start_time(pid).unwrap_or(0);
    Ok(ProcRecord {
        label: label.to_string(),
        pid,
        start_time,
        netns: ns.to_string(),
        log: log.to_path_buf(),
    })
}

/// Whether the recorded process still runs (same pid, same start time, not a zombie).
pub fn is_running(p: &ProcRecord) -> bool {
    is_alive(p.pid) && process_start_time(p.pid) == Some(p.start_time)
}

/// Stop a recorded process: SIGTERM, up to `grace`, then SIGKILL. Whether it was running.
pub fn stop(p: &ProcRecord, grace: Duration) -> bool {
    if !is_running(p) {
        return false;
    }
    let pid = Pid::from_raw(p.pid);
    // A stopped process acts on nothing but SIGKILL until continued.
    let _ = kill(pid, Signal::SIGCONT);
    let _ = kill(pid, Signal::SIGTERM);
    if wait_gone(&[p.pid], grace).is_err() && is_running(p) {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = wait_gone(&[p.pid], Duration::from_secs(5));
    }
    true
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    stat.get(close + 1..)?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_tells_a_reused_pid_apart() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).unwrap();
        let rec = |start_time| ProcRecord {
            label: "me".into(),
            pid: me,
            start_time,
            netns: String::new(),
            log: PathBuf::new(),
        };
        assert!(is_running(&rec(t)));
        assert!(!is_running(&rec(t + 1)));
        // `stop` never signals a process whose start time does not match.
        assert!(!stop(&rec(t + 1), Duration::from_millis(1)));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&p, 2), "b\nc");
        assert_eq!(log_tail(&p, 9), "a\nb\nc");
        assert_eq!(log_tail(&dir.path().join("none"), 3), "");
    }
}
