//! Which of the injected host routes a receiving session holds right now, and the moment it
//! first held all of them.
//!
//! Owns: `PrefixTracker`, a lock-free bitmap over the benchmark's dense range of /32s (one bit
//! per injected route, so a million routes cost 128 KiB and one atomic OR each), the count of
//! routes held, the first instant that count reached the expected total, and counters for what
//! falls outside (routes not injected, or a session's own routes echoed back). Several reader
//! threads may feed one tracker (the monitor in direct mode). Must not: parse bytes (`wire` does)
//! or decide when a run ends (`run` does).

use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::wire::Prefix4;

/// Distinct injected routes held by one receiver.
#[derive(Debug)]
pub struct PrefixTracker {
    base: u32,
    total: u32,
    ignore: Range<u32>,
    expected: u64,
    bits: Vec<AtomicU64>,
    held: AtomicU64,
    complete_at: OnceLock<Instant>,
    announcements: AtomicU64,
    withdrawals: AtomicU64,
    unexpected: AtomicU64,
    echoed: AtomicU64,
}

impl PrefixTracker {
    /// Track the `total` host routes starting at `base`, except the offsets in `ignore` (the
    /// receiver's own routes, should a target send them back); all others are expected.
    pub fn new(base: Ipv4Addr, total: u32, ignore: Range<u32>) -> PrefixTracker {
        let ignore = ignore.start.min(total)..ignore.end.min(total);
        let expected = u64::from(total) - u64::from(ignore.end.saturating_sub(ignore.start));
        let complete_at = OnceLock::new();
        if expected == 0 {
            let _ = complete_at.set(Instant::now());
        }
        PrefixTracker {
            base: u32::from(base),
            total,
            ignore,
            expected,
            bits: (0..(total as usize).div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            held: AtomicU64::new(0),
            complete_at,
            announcements: AtomicU64::new(0),
            withdrawals: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            echoed: AtomicU64::new(0),
        }
    }

    /// The offset of `prefix` in the tracked range, if it is one of the injected /32s.
    fn offset(&self, (addr, len): Prefix4) -> Option<u32> {
        let off = addr.wrapping_sub(self.base);
        (len == 32 && off < self.total).then_some(off)
    }

    /// A route to `prefix` was announced (again, perhaps).
    pub fn announce(&self, prefix: Prefix4) {
        self.announcements.fetch_add(1, Ordering::Relaxed);
        let Some(off) = self.offset(prefix) else {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if self.ignore.contains(&off) {
            self.echoed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let bit = 1u64 << (off % 64);
        let before = self.bits[(off / 64) as usize].fetch_or(bit, Ordering::AcqRel);
        if before & bit == 0 {
            let held = self.held.fetch_add(1, Ordering::AcqRel) + 1;
            if held == self.expected {
                let _ = self.complete_at.set(Instant::now());
            }
        }
    }

    /// The route to `prefix` was withdrawn.
    pub fn withdraw(&self, prefix: Prefix4) {
        self.withdrawals.fetch_add(1, Ordering::Relaxed);
        let Some(off) = self.offset(prefix) else {
            return;
        };
        if self.ignore.contains(&off) {
            return;
        }
        let bit = 1u64 << (off % 64);
        let before = self.bits[(off / 64) as usize].fetch_and(!bit, Ordering::AcqRel);
        if before & bit != 0 {
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Distinct expected routes held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// How many routes this receiver should end up holding.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// When it first held every expected route (its creation, for a tracker expecting none).
    pub fn complete_at(&self) -> Option<Instant> {
        self.complete_at.get().copied()
    }

    /// Announcements seen (every NLRI entry, repeats included).
    pub fn announcements(&self) -> u64 {
        self.announcements.load(Ordering::Relaxed)
    }

    /// Withdrawals seen.
    pub fn withdrawals(&self) -> u64 {
        self.withdrawals.load(Ordering::Relaxed)
    }

    /// Announcements of prefixes nobody injected.
    pub fn unexpected(&self) -> u64 {
        self.unexpected.load(Ordering::Relaxed)
    }

    /// Announcements of the receiver's own routes.
    pub fn echoed(&self) -> u64 {
        self.echoed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 0);

    fn p(off: u32) -> Prefix4 {
        (u32::from(BASE) + off, 32)
    }

    #[test]
    fn counts_distinct_routes_and_records_completion_once() {
        let t = PrefixTracker::new(BASE, 130, 0..0);
        for off in 0..129 {
            t.announce(p(off));
            t.announce(p(off));
        }
        assert_eq!(t.held(), 129);
        assert!(t.complete_at().is_none());
        t.announce(p(129));
        let done = t.complete_at().expect("complete");
        assert_eq!(t.announcements(), 259);
        // A withdrawal and re-announcement later does not move the first completion.
        t.withdraw(p(5));
        assert_eq!(t.held(), 129);
        t.announce(p(5));
        assert_eq!(t.complete_at(), Some(done));
    }

    #[test]
    fn withdrawals_undo_and_foreign_or_own_routes_do_not_count() {
        let t = PrefixTracker::new(BASE, 100, 40..60);
        assert_eq!(t.expected(), 80);
        t.announce(p(1));
        t.announce(p(45));
        t.announce(p(100));
        t.announce((u32::from(BASE) + 1, 31));
        t.announce((u32::from(BASE) - 1, 32));
        assert_eq!(t.held(), 1);
        assert_eq!((t.echoed(), t.unexpected()), (1, 3));
        t.withdraw(p(1));
        t.withdraw(p(1));
        t.withdraw(p(2));
        assert_eq!(t.held(), 0);
        assert_eq!(t.withdrawals(), 3);
    }

    #[test]
    fn a_tracker_expecting_nothing_is_complete_at_once() {
        let before = Instant::now();
        let t = PrefixTracker::new(BASE, 50, 0..50);
        assert!(
            t.complete_at()
                .is_some_and(|at| at >= before && at <= Instant::now())
        );
        assert_eq!(t.expected(), 0);
        assert!(t.complete_at().is_some());
    }

    #[test]
    fn concurrent_feeders_agree_on_the_count() {
        let t = PrefixTracker::new(BASE, 40_000, 0..0);
        std::thread::scope(|s| {
            for k in 0..4u32 {
                let t = &t;
                s.spawn(move || {
                    for off in (k * 10_000)..((k + 1) * 10_000) {
                        t.announce(p(off));
                        t.announce(p(39_999 - off));
                    }
                });
            }
        });
        assert_eq!(t.held(), 40_000);
        assert!(t.complete_at().is_some());
    }
}
