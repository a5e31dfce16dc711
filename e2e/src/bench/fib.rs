//! The FIB figure of `ginger-bench --fib`: the instant the target namespace's main table first
//! holds every injected route, each via the injector that announced it.
//!
//! Owns: `FibCount` (pure: which injected /32s table main holds, from route events), `FibWatch`
//! (a `converge::RouteWatch` in the target namespace feeding a `FibCount`; the kernel dropping
//! events, ENOBUFS, fails the run with `BenchError::RouteListener` rather than undercounting),
//! and the after-run check of a sample of routes read back from the kernel (`check_next_hops`,
//! `ip route show exact`). Data enters as route events and the run's `Topology`; it leaves as
//! counts, an instant and mismatch descriptions. Must not: program routes, or time anything
//! but the events' receive instants.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Instant;

use ipnet::IpNet;

use super::BenchError;
use super::scenario::Topology;
use crate::converge::{RouteEvent, RouteWatch};
use crate::netns::Netns;

/// The kernel's main routing table.
const RT_TABLE_MAIN: u32 = 254;
/// The listener's receive buffer: room for ~100k route notifications (a few hundred octets of
/// skb each) while its thread waits for a core on a busy machine.
const FIB_WATCH_BUFFER: usize = 128 << 20;
/// Routes read back per injector after the run.
const SAMPLES_PER_INJECTOR: u32 = 5;
/// The device every injector's next hop is on (the target's end of the veth).
pub const TARGET_DEVICE: &str = "eth0";

/// Which injected routes table main holds, built from route events.
#[derive(Clone, Debug)]
pub struct FibCount {
    topo: Topology,
    present: Vec<bool>,
    held: u64,
    complete_at: Option<Instant>,
    wrong_next_hop: u64,
    removed: u64,
}

impl FibCount {
    /// Nothing held yet.
    pub fn new(topo: Topology) -> FibCount {
        FibCount {
            topo,
            present: vec![false; topo.scenario.total() as usize],
            held: 0,
            complete_at: None,
            wrong_next_hop: 0,
            removed: 0,
        }
    }

    /// Take one event; events for other tables and other prefixes are ignored.
    pub fn apply(&mut self, e: &RouteEvent) {
        let Some(offset) = self.offset_of(e) else {
            return;
        };
        let slot = &mut self.present[offset as usize];
        if e.new {
            let injector = offset / self.topo.scenario.prefixes;
            if e.gateways != [IpAddr::V4(self.topo.injector_address(injector))] {
                self.wrong_next_hop += 1;
            }
            if !*slot {
                *slot = true;
                self.held += 1;
                if self.held == self.expected() && self.complete_at.is_none() {
                    self.complete_at = Some(e.at);
                }
            }
        } else {
            self.removed += 1;
            if *slot {
                *slot = false;
                self.held -= 1;
            }
        }
    }

    /// The injected route's offset from `Topology::PREFIX_BASE`, for a table-main /32 event.
    fn offset_of(&self, e: &RouteEvent) -> Option<u32> {
        let IpNet::V4(net) = e.dst else { return None };
        if e.table != RT_TABLE_MAIN || net.prefix_len() != 32 {
            return None;
        }
        let offset = u32::from(net.addr()).checked_sub(u32::from(Topology::PREFIX_BASE))?;
        (offset < self.topo.scenario.total()).then_some(offset)
    }

    /// Injected routes held now.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// M×N.
    pub fn expected(&self) -> u64 {
        u64::from(self.topo.scenario.total())
    }

    /// When the table first held every injected route.
    pub fn complete_at(&self) -> Option<Instant> {
        self.complete_at
    }

    /// What did not look right: additions via another next hop, removals.
    pub fn anomalies(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.wrong_next_hop > 0 {
            out.push(format!(
                "{} injected routes entered the FIB not via their injector",
                self.wrong_next_hop
            ));
        }
        if self.removed > 0 {
            out.push(format!(
                "{} injected routes were removed from the FIB during the run",
                self.removed
            ));
        }
        out
    }
}

/// Our route listener in the target namespace, counting into a `FibCount`.
pub struct FibWatch {
    watch: RouteWatch,
    consumed: usize,
    count: FibCount,
}

impl FibWatch {
    /// Subscribe in `ns` (before the first injected byte).
    pub fn start(ns: &Netns, topo: Topology) -> Result<FibWatch, BenchError> {
        Ok(FibWatch {
            watch: RouteWatch::start_with_buffer(ns, FIB_WATCH_BUFFER)?,
            consumed: 0,
            count: FibCount::new(topo),
        })
    }

    /// Count the events received since the last call; an overrun or a socket error is an error.
    pub fn poll(&mut self) -> Result<&FibCount, BenchError> {
        let events = self.watch.events()?;
        for e in &events[self.consumed..] {
            self.count.apply(e);
        }
        self.consumed = events.len();
        Ok(&self.count)
    }

    /// The count so far (as of the last `poll`).
    pub fn count(&self) -> &FibCount {
        &self.count
    }
}

/// The prefixes read back after the run: the first, the last and three in between of each
/// injector's range.
pub fn sample_offsets(topo: &Topology) -> Vec<u32> {
    let n = topo.scenario.prefixes;
    let mut out = Vec::new();
    for i in 0..topo.scenario.injectors {
        let range = topo.injector_range(i);
        let mut picks: Vec<u32> = (0..SAMPLES_PER_INJECTOR)
            .map(|k| range.start + (n - 1) * k / (SAMPLES_PER_INJECTOR - 1))
            .collect();
        picks.dedup();
        out.extend(picks);
    }
    out
}

/// One line of `ip route show`: destination, `via`, `dev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShownRoute {
    /// The destination (a host route is printed without `/32`).
    pub dst: Ipv4Addr,
    /// The gateway after `via`.
    pub via: Option<Ipv4Addr>,
    /// The device after `dev`.
    pub dev: Option<String>,
}

/// Parse one `ip route show` line (`10.128.0.5 [nhid 7] via 10.0.0.10 dev eth0 proto bird …`);
/// `None` for a line that is not an IPv4 host route.
pub fn parse_shown_route(line: &str) -> Option<ShownRoute> {
    let mut words = line.split_whitespace();
    let dst = words.next()?.trim_end_matches("/32").parse().ok()?;
    let mut route = ShownRoute {
        dst,
        via: None,
        dev: None,
    };
    while let Some(w) = words.next() {
        match w {
            "via" => route.via = words.next().and_then(|a| a.parse().ok()),
            "dev" => route.dev = words.next().map(str::to_string),
            _ => {}
        }
    }
    Some(route)
}

/// Read the sample of injected routes back from `ns`'s main table (one `ip -batch` run, its
/// input file in `dir`); returns how many were checked and a description of each mismatch.
pub fn check_next_hops(
    ns: &Netns,
    topo: &Topology,
    dir: &Path,
) -> Result<(usize, Vec<String>), BenchError> {
    let offsets = sample_offsets(topo);
    let base = u32::from(Topology::PREFIX_BASE);
    let mut batch = String::new();
    for o in &offsets {
        let _ = writeln!(
            batch,
            "route show table main exact {}/32",
            Ipv4Addr::from(base + o)
        );
    }
    let file = dir.join("fib-sample.batch");
    std::fs::write(&file, batch).map_err(|e| {
        BenchError::Harness(crate::Error::io(format!("writing {}", file.display()), e))
    })?;
    let shown = ns.ip(&["-4", "-batch", &file.to_string_lossy()])?;
    let routes: Vec<ShownRoute> = shown.lines().filter_map(parse_shown_route).collect();
    let mut mismatches = Vec::new();
    for o in &offsets {
        let dst = Ipv4Addr::from(base + o);
        let want = topo.injector_address(o / topo.scenario.prefixes);
        match routes.iter().find(|r| r.dst == dst) {
            None => mismatches.push(format!("{dst}/32 is not in the FIB after the run")),
            Some(r) if r.via != Some(want) || r.dev.as_deref() != Some(TARGET_DEVICE) => mismatches
                .push(format!(
                    "{dst}/32 is via {:?} dev {:?}, not via {want} dev {TARGET_DEVICE}",
                    r.via, r.dev
                )),
            Some(_) => {}
        }
    }
    Ok((offsets.len(), mismatches))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        Topology::new("2x1000".parse().unwrap())
    }

    fn event(at: Instant, new: bool, dst: &str, gw: &str, table: u32) -> RouteEvent {
        RouteEvent {
            at,
            new,
            dst: dst.parse().unwrap(),
            gateways: vec![gw.parse().unwrap()],
            kind: 1,
            table,
            protocol: 186,
        }
    }

    #[test]
    fn the_count_completes_at_the_event_that_adds_the_last_injected_route() {
        let t = Topology::new("2x2".parse().unwrap());
        let t0 = Instant::now();
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        let mut c = FibCount::new(t);
        // Injector 0 owns 10.128.0.0-1 (via .10), injector 1 owns 10.128.0.2-3 (via .11).
        c.apply(&event(at(1), true, "10.128.0.0/32", "10.0.0.10", 254));
        c.apply(&event(at(2), true, "10.128.0.0/32", "10.0.0.10", 254)); // a replace
        c.apply(&event(at(3), true, "10.128.0.1/32", "10.0.0.10", 255)); // table local
        c.apply(&event(at(4), true, "10.128.0.4/32", "10.0.0.11", 254)); // not injected
        c.apply(&event(at(5), true, "10.128.0.0/31", "10.0.0.10", 254)); // not a /32
        c.apply(&event(at(6), true, "10.0.0.0/24", "10.0.0.1", 254));
        assert_eq!((c.held(), c.expected()), (1, 4));
        c.apply(&event(at(7), true, "10.128.0.1/32", "10.0.0.10", 254));
        c.apply(&event(at(8), true, "10.128.0.2/32", "10.0.0.11", 254));
        c.apply(&event(at(9), false, "10.128.0.2/32", "10.0.0.11", 254));
        assert_eq!(c.held(), 2);
        c.apply(&event(at(10), true, "10.128.0.2/32", "10.0.0.11", 254));
        assert_eq!(c.complete_at(), None);
        c.apply(&event(at(11), true, "10.128.0.3/32", "10.0.0.10", 254));
        assert_eq!(c.complete_at(), Some(at(11)));
        assert_eq!(c.held(), 4);
        let a = c.anomalies();
        assert_eq!(a.len(), 2, "{a:?}");
        assert!(a[0].starts_with("1 injected routes entered the FIB not via"));
        assert!(a[1].starts_with("1 injected routes were removed"));
        // Completion is the first instant, not a later re-completion.
        c.apply(&event(at(12), false, "10.128.0.3/32", "10.0.0.11", 254));
        c.apply(&event(at(13), true, "10.128.0.3/32", "10.0.0.11", 254));
        assert_eq!(c.complete_at(), Some(at(11)));
    }

    #[test]
    fn the_sample_covers_both_ends_of_each_injector_range() {
        let s = sample_offsets(&topo());
        assert_eq!(s, [0, 249, 499, 749, 999, 1000, 1249, 1499, 1749, 1999]);
        let tiny = Topology::new("1x2".parse().unwrap());
        assert_eq!(sample_offsets(&tiny), [0, 1]);
    }

    #[test]
    fn ip_route_lines_give_destination_gateway_and_device() {
        assert_eq!(
            parse_shown_route("10.128.0.5 via 10.0.0.10 dev eth0 proto bird metric 32"),
            Some(ShownRoute {
                dst: Ipv4Addr::new(10, 128, 0, 5),
                via: Some(Ipv4Addr::new(10, 0, 0, 10)),
                dev: Some("eth0".into()),
            })
        );
        let frr =
            parse_shown_route("10.128.3.231 nhid 12 via 10.0.0.11 dev eth0 proto bgp").unwrap();
        assert_eq!(frr.via, Some(Ipv4Addr::new(10, 0, 0, 11)));
        let blackhole = parse_shown_route("blackhole 10.128.0.0/9 proto 97");
        assert_eq!(blackhole, None);
        assert_eq!(parse_shown_route(""), None);
        let device = parse_shown_route("10.128.0.9/32 dev eth0 scope link").unwrap();
        assert_eq!((device.via, device.dev.as_deref()), (None, Some("eth0")));
    }
}
