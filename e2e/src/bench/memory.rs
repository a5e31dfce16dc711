//! A process's memory as the kernel counts it: peak resident set (`VmHWM`) and current resident
//! set (`VmRSS`) from `/proc/<pid>/status`, in KiB.
//!
//! Owns: reading and parsing those two lines. Must not: sample on a timer (the run decides when
//! to read; `VmHWM` already is the peak over the process's life).

use std::fs;

use super::BenchError;

/// Resident memory of one process, KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    /// Peak resident set size since the process started (`VmHWM`).
    pub peak_kib: u64,
    /// Resident set size now (`VmRSS`).
    pub now_kib: u64,
}

/// Read `pid`'s memory figures.
pub fn memory_of(pid: u32) -> Result<MemoryUse, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| {
        BenchError::Harness(crate::Error::Io {
            context: format!("reading {path}"),
            source: e,
        })
    })?;
    parse_status(&text).ok_or_else(|| BenchError::Invalid {
        what: "process status",
        value: path,
        reason: "no VmHWM/VmRSS lines (a kernel thread, or the process is a zombie)".into(),
    })
}

/// `VmHWM` and `VmRSS` out of a `/proc/<pid>/status` text.
fn parse_status(text: &str) -> Option<MemoryUse> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let mut words = line[name.len()..].split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        (words.next()? == "kB").then_some(value)
    };
    Some(MemoryUse {
        peak_kib: field("VmHWM:")?,
        now_kib: field("VmRSS:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_peak_and_current_resident_set() {
        let text = "Name:\tbird\nVmPeak:\t  20000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t   11000 kB\n";
        assert_eq!(
            parse_status(text),
            Some(MemoryUse {
                peak_kib: 12345,
                now_kib: 11000
            })
        );
        assert_eq!(parse_status("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let m = memory_of(std::process::id()).unwrap();
        assert!(m.peak_kib >= m.now_kib && m.now_kib > 0, "{m:?}");
    }
}
