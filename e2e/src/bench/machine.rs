//! What a benchmark figure was measured on: CPU model, cores, memory, kernel, load, and the
//! versions of the implementations under test.
//!
//! Owns: reading those from `/proc` and from each program's `--version`. Must not: fail a run
//! (a missing fact prints as "unknown").

use std::fs;
use std::path::Path;
use std::process::Command;

use super::target::TargetKind;

/// The machine, in one Markdown list.
pub fn describe_machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = read_trimmed("/proc/sys/kernel/osrelease");
    let load = load_average();
    format!(
        "- CPU: {model}, {cores} cores available\n- RAM: {mem}\n- kernel: {kernel}\n\
         - load average at start (1/5/15 min, runnable/total, last pid): {load}\n"
    )
}

/// `/proc/loadavg`: 1, 5 and 15 minute load, runnable/total tasks, last pid.
pub fn load_average() -> String {
    read_trimmed("/proc/loadavg")
}

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The version line of each target's program.
pub fn describe_versions(targets: &[TargetKind], ginger_bin: &Path) -> String {
    let mut s = String::new();
    for t in targets {
        let (program, args): (String, &[&str]) = match t {
            TargetKind::Direct => continue,
            TargetKind::Ginger => (ginger_bin.display().to_string(), &["--version"]),
            TargetKind::Bird => ("bird".into(), &["--version"]),
            TargetKind::Frr => ("/usr/lib/frr/bgpd".into(), &["--version"]),
            TargetKind::Gobgp => ("gobgpd".into(), &["--version"]),
        };
        let version = Command::new(&program)
            .args(args)
            .output()
            .ok()
            .map(|o| {
                // BIRD prints its version on stderr.
                let text = [o.stdout, o.stderr].concat();
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into());
        s.push_str(&format!("- {t}: {version}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_description_names_cpu_memory_and_kernel() {
        let d = describe_machine();
        assert!(
            d.contains("- CPU: ") && d.contains("cores available"),
            "{d}"
        );
        assert!(d.contains(" GiB"), "{d}");
        assert!(!d.contains("kernel: unknown"), "{d}");
    }

    #[test]
    fn bird_reports_its_version() {
        let v = describe_versions(&[TargetKind::Direct, TargetKind::Bird], Path::new("/none"));
        assert!(v.starts_with("- bird: BIRD version 2"), "{v}");
    }
}
