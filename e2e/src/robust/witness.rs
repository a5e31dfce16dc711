//! Witnesses that a scenario disturbed nothing it should not have: a BGP session as both ends
//! see it (`SessionMark`: the node's since and established count, BIRD's since in
//! milliseconds), BIRD's protocol rows and route counters, a process's memory (`MemoryBudget`)
//! and CPU use, and the daemons' logs with their colours stripped.
//!
//! Owns: reading `/proc/<pid>/{status,stat}`, `birdc show protocols [all]` and log files.
//! Must not: change anything it observes.

use std::fs;
use std::net::IpAddr;
use std::time::Duration;

use bgp::status::SessionState;

use crate::bird::Bird;
use crate::error::{Error, Result};
use crate::ginger::GingerNode;
use crate::wait::wait_until;

/// One BGP session as both ends see it: the node's state, `since` and established count, and
/// the remote BIRD's state and `since` (millisecond resolution).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionMark {
    /// The node's state.
    pub state: SessionState,
    /// The node's last state change (Unix seconds).
    pub since_unix: u64,
    /// Times the node saw the session reach Established.
    pub established_count: u64,
    /// BIRD's protocol row for the session.
    pub bird: BirdProtocol,
}

impl SessionMark {
    /// Read the session between the node and the BIRD at `bird_addr` from both ends;
    /// `node_addr` is the node's address as BIRD knows it.
    pub fn take(
        ginger: &GingerNode,
        bird: &Bird,
        bird_addr: IpAddr,
        node_addr: IpAddr,
    ) -> Result<SessionMark> {
        let p = ginger.peer(bird_addr)?;
        Ok(SessionMark {
            state: p.state,
            since_unix: p.since_unix,
            established_count: p.counters.established_count,
            bird: bird_protocol(bird, node_addr)?,
        })
    }

    /// Panic unless `now` is the same Established session.
    #[track_caller]
    pub fn assert_same(&self, now: &SessionMark, context: &str) {
        assert_eq!(
            now.state,
            SessionState::Established,
            "{context}: the BIRD session is down: {now:?}"
        );
        let same = now.state == self.state
            && now.since_unix == self.since_unix
            && now.established_count == self.established_count
            && now.bird.state == self.bird.state
            && now.bird.same_since(&self.bird);
        assert!(
            same,
            "{context}: the BIRD session was reset\nbefore: {self:?}\nnow:    {now:?}"
        );
    }
}

/// BIRD shows a state change's time by converting its monotonic clock to wall time at each
/// query, so the same instant can read a millisecond apart; a real reset moves it by at least
/// BIRD's error wait (1 s in the lab). Times without milliseconds must match exactly.
fn same_bird_since(a: &str, b: &str) -> bool {
    fn millis_of_day(t: &str) -> Option<i64> {
        let (hms, ms) = t.split_once('.')?;
        let mut parts = hms.split(':').map(|p| p.parse::<i64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<i64>().ok()?)
    }
    match (millis_of_day(a), millis_of_day(b)) {
        // Midnight between the two readings wraps around.
        (Some(x), Some(y)) => {
            (x - y)
                .rem_euclid(86_400_000)
                .min((y - x).rem_euclid(86_400_000))
                <= 100
        }
        _ => a == b,
    }
}

/// A protocol row of `birdc show protocols`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdProtocol {
    /// `up`, `start`, `down`.
    pub state: String,
    /// The Since column (`19:31:48.612`).
    pub since: String,
    /// The Info column (`Established`, `Active Socket: Connection refused`).
    pub info: String,
}

impl BirdProtocol {
    /// Whether both rows show the same state change (BIRD's time conversion jitter allowed).
    pub fn same_since(&self, other: &BirdProtocol) -> bool {
        same_bird_since(&self.since, &other.since)
    }
}

/// The BGP protocol row BIRD shows for neighbour `peer` (the launcher names it `peer_<ip>`).
/// On a loaded machine a `birdc` answer now and then comes back empty; that is asked again
/// (for up to 5 s), a missing or malformed row is not.
pub fn bird_protocol(bird: &Bird, peer: IpAddr) -> Result<BirdProtocol> {
    let name = format!("peer_{}", peer.to_string().replace(['.', ':'], "_"));
    let out = wait_until(
        Duration::from_secs(5),
        "a non-empty `birdc show protocols`",
        || match bird.birdc("show protocols") {
            Ok(out) if out.trim().is_empty() => Err("empty answer".to_string()),
            Ok(out) => Ok(Ok(out)),
            Err(e) => Ok(Err(e)),
        },
    )??;
    parse_bird_protocol(&out, &name)
}

fn parse_bird_protocol(out: &str, name: &str) -> Result<BirdProtocol> {
    let row = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .ok_or_else(|| Error::parse("bird", format!("protocol {name}"), out.to_string()))?;
    let cols: Vec<&str> = row.split_whitespace().collect();
    match cols.as_slice() {
        [_, _, _, state, since, info @ ..] => Ok(BirdProtocol {
            state: state.to_string(),
            since: since.to_string(),
            info: info.join(" "),
        }),
        _ => Err(Error::parse("bird", format!("protocol {name}"), row)),
    }
}

/// BIRD's route counts for its session with `peer` (`Routes: N imported, M exported` of
/// `show protocols all`): what the node sent BIRD, and what BIRD sent the node.
pub fn bird_route_counts(bird: &Bird, peer: IpAddr) -> Result<(u64, u64)> {
    let name = format!("peer_{}", peer.to_string().replace(['.', ':'], "_"));
    let out = bird.birdc(&format!("show protocols all {name}"))?;
    parse_route_counts(&out)
        .ok_or_else(|| Error::parse("bird", format!("route counts of {name}"), out))
}

fn parse_route_counts(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().find_map(|l| l.trim().strip_prefix("Routes:"))?;
    let mut imported = None;
    let mut exported = None;
    for part in line.split(',') {
        let mut words = part.split_whitespace();
        let n: u64 = words.next()?.parse().ok()?;
        match words.next()? {
            "imported" => imported = Some(n),
            "exported" => exported = Some(n),
            _ => {}
        }
    }
    Some((imported?, exported?))
}

/// Resident memory of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| Error::parse("kernel", format!("VmRSS in {path}"), text.clone()))
}

/// CPU time `pid` has used so far (user + system), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    // Fields after the parenthesised command name (which may hold spaces): state is field 3,
    // utime and stime are fields 14 and 15.
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| Error::parse("kernel", path.clone(), text.clone()))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(|| {
            Error::parse("kernel", format!("field {} of {path}", i + 3), text.clone())
        })
    };
    // Field 14 is at index 11 after the name (field 3 is index 0).
    let total = ticks(11)? + ticks(12)?;
    // USER_HZ is 100 on every Linux architecture Ginger targets.
    Ok(Duration::from_millis(total * 10))
}

/// How busy `pid` is over `window`: CPU time used divided by wall time.
pub fn cpu_load(pid: u32, window: Duration) -> Result<f64> {
    let before = cpu_time(pid)?;
    std::thread::sleep(window);
    let after = cpu_time(pid)?;
    Ok((after.saturating_sub(before)).as_secs_f64() / window.as_secs_f64())
}

/// A process's resident memory at a baseline, and how much it may grow.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    pid: u32,
    /// RSS when the budget was taken (KiB).
    pub baseline_kib: u64,
    /// Allowed growth over the baseline (KiB).
    pub allowance_kib: u64,
}

impl MemoryBudget {
    /// Measure `pid` now; it may grow by `allowance_mib` MiB.
    pub fn new(pid: u32, allowance_mib: u64) -> Result<MemoryBudget> {
        Ok(MemoryBudget {
            pid,
            baseline_kib: rss_kib(pid)?,
            allowance_kib: allowance_mib * 1024,
        })
    }

    /// Panic if the process has grown beyond the allowance; returns the RSS now (KiB).
    #[track_caller]
    pub fn assert_within(&self, context: &str) -> u64 {
        let now = rss_kib(self.pid)
            .unwrap_or_else(|e| panic!("{context}: reading RSS of {}: {}", self.pid, e.chain()));
        assert!(
            now <= self.baseline_kib + self.allowance_kib,
            "{context}: RSS {now} KiB exceeds baseline {} KiB + {} KiB",
            self.baseline_kib,
            self.allowance_kib
        );
        now
    }
}

/// `text` without ANSI colour sequences (`ESC [ … m`), as a terminal would show it.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of `logs` (colours stripped) that contain every one of `needles`.
pub fn log_lines(logs: &str, needles: &[&str]) -> Vec<String> {
    strip_ansi(logs)
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Wait until `logs()` has at least `count` lines containing every one of `needles`; returns
/// the last of them.
pub fn wait_log_lines(
    logs: impl Fn() -> String,
    needles: &[&str],
    count: usize,
    timeout: Duration,
) -> Result<String> {
    wait_until(
        timeout,
        &format!("{count} log line(s) with {needles:?}"),
        || {
            let text = logs();
            let found = log_lines(&text, needles);
            if found.len() >= count {
                Ok(found.last().cloned().unwrap_or_default())
            } else {
                let plain = strip_ansi(&text);
                let tail: Vec<&str> = plain.lines().rev().take(3).collect();
                Err(format!("{} found; last lines: {tail:?}", found.len()))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_rows_parse_and_missing_ones_are_errors() {
        let out = "Name       Proto      Table      State  Since         Info\n\
                   peer_10_81_0_1 BGP        ---        up     19:31:48.612  Established   \n\
                   peer_10_81_0_9 BGP        ---        start  19:31:40.001  Active        Socket: Connection refused\n";
        let up = parse_bird_protocol(out, "peer_10_81_0_1").unwrap();
        assert_eq!(
            (up.state.as_str(), up.since.as_str(), up.info.as_str()),
            ("up", "19:31:48.612", "Established")
        );
        let down = parse_bird_protocol(out, "peer_10_81_0_9").unwrap();
        assert_eq!(down.info, "Active Socket: Connection refused");
        assert!(parse_bird_protocol(out, "peer_10_81_0_2").is_err());
        assert!(parse_bird_protocol("peer_x BGP\n", "peer_x").is_err());
    }

    #[test]
    fn bird_since_tolerates_clock_conversion_jitter_only() {
        assert!(same_bird_since("20:49:19.274", "20:49:19.273"));
        assert!(same_bird_since("23:59:59.990", "00:00:00.010"));
        assert!(!same_bird_since("20:49:19.274", "20:49:20.274"));
        assert!(!same_bird_since("20:49:19.274", "20:49:19.500"));
        assert!(same_bird_since("2026-11-22", "2026-11-22"));
        assert!(!same_bird_since("2026-11-22", "2026-11-23"));
    }

    #[test]
    fn bird_route_counts_parse() {
        let out = "peer_10_81_0_1 BGP ---  up  19:31:48.612  Established\n  Channel ipv4\n    \
                   State:          UP\n    Routes:         3 imported, 2 exported, 1 preferred\n";
        assert_eq!(parse_route_counts(out), Some((3, 2)));
        assert_eq!(parse_route_counts("    Routes:  x imported\n"), None);
        assert_eq!(parse_route_counts("no such line"), None);
    }

    #[test]
    fn colours_are_stripped_from_log_lines() {
        let line = "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m configuration applied \
                    \u{1b}[3mtrigger\u{1b}[0m\u{1b}[2m=\u{1b}[0mSIGHUP";
        assert_eq!(
            strip_ansi(line),
            "2026  INFO configuration applied trigger=SIGHUP"
        );
        let logs = format!("{line}\nother\n{line}\n");
        assert_eq!(log_lines(&logs, &["trigger=SIGHUP", "applied"]).len(), 2);
        assert!(log_lines(&logs, &["trigger=file"]).is_empty());
    }

    #[test]
    fn cpu_time_of_a_busy_thread_grows() {
        // The machine is shared: spin until 100 ms of CPU were granted, however long it takes.
        let pid = std::process::id();
        let start = cpu_time(pid).unwrap();
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        while cpu_time(pid).unwrap() - start < Duration::from_millis(100) {
            assert!(std::time::Instant::now() < give_up, "CPU time never grew");
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        assert!(x > 0);
        // Sleeping costs (almost) nothing.
        assert!(cpu_load(pid, Duration::from_millis(300)).unwrap() < 0.5);
    }

    #[test]
    fn rss_of_this_process_is_read() {
        let kib = rss_kib(std::process::id()).unwrap();
        assert!(kib > 100, "{kib}");
        let budget = MemoryBudget::new(std::process::id(), 1024).unwrap();
        assert!(budget.assert_within("self") >= kib / 2);
    }
}
