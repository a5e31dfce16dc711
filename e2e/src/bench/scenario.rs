//! What a benchmark run injects and where everyone sits: `Scenario` (M injectors × N routes,
//! written `2x100k`) and `Topology` (addresses, AS numbers and the injected address range).
//!
//! Owns: parsing and printing scenarios, their limits, and the lab's fixed plan: the target at
//! 10.0.0.1 (AS 64512), the monitor at 10.0.0.2 (AS 65100), injector i at 10.0.0.(10+i)
//! (AS 65001+i), all on one /24 between two namespaces; injector i announces the N host routes
//! starting at 10.128.0.0 + i·N, so every route is unique and all of them lie inside the pool
//! 10.128.0.0/9. Must not: create namespaces or start anything.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

use super::BenchError;

/// Most injectors a scenario may have (their AS numbers stay below the monitor's).
pub const MAX_INJECTORS: u32 = 99;

/// M injectors, each announcing N unique host routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// M.
    pub injectors: u32,
    /// N.
    pub prefixes: u32,
}

impl Scenario {
    /// Every route the monitor must end up holding (M × N).
    pub fn total(&self) -> u32 {
        self.injectors * self.prefixes
    }
}

impl FromStr for Scenario {
    type Err = BenchError;

    /// `MxN` where N may end in `k` (thousands) or `m` (millions): `2x100k`, `10x10k`, `1x1000`.
    fn from_str(text: &str) -> Result<Scenario, BenchError> {
        let invalid = |reason: &str| BenchError::Invalid {
            what: "scenario",
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let (m, n) = text
            .trim()
            .split_once(['x', 'X', '×'])
            .ok_or_else(|| invalid("write it as INJECTORSxPREFIXES, e.g. 2x100k"))?;
        let injectors: u32 = m
            .parse()
            .map_err(|_| invalid("the injector count is not a number"))?;
        let n = n.to_ascii_lowercase();
        let (digits, scale) = match n.strip_suffix('k') {
            Some(d) => (d, 1_000u64),
            None => match n.strip_suffix('m') {
                Some(d) => (d, 1_000_000),
                None => (n.as_str(), 1),
            },
        };
        let prefixes = digits
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(scale))
            .ok_or_else(|| invalid("the prefix count is not a number"))?;
        if !(1..=MAX_INJECTORS).contains(&injectors) {
            return Err(invalid("between 1 and 99 injectors"));
        }
        if prefixes == 0 || prefixes * u64::from(injectors) > u64::from(Topology::POOL_SIZE) {
            return Err(invalid("between 1 and 8388608 routes in all (the /9 pool)"));
        }
        Ok(Scenario {
            injectors,
            prefixes: prefixes as u32,
        })
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.prefixes;
        if n.is_multiple_of(1_000_000) {
            write!(f, "{}x{}m", self.injectors, n / 1_000_000)
        } else if n.is_multiple_of(1_000) {
            write!(f, "{}x{}k", self.injectors, n / 1_000)
        } else {
            write!(f, "{}x{}", self.injectors, n)
        }
    }
}

/// The lab plan for one scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    /// The scenario it serves.
    pub scenario: Scenario,
}

impl Topology {
    /// The target's address (also its router id).
    pub const TARGET: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    /// The monitor's address.
    pub const MONITOR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    /// The lab subnet's prefix length.
    pub const SUBNET_LEN: u8 = 24;
    /// The target's AS.
    pub const TARGET_AS: u32 = 64512;
    /// The monitor's AS.
    pub const MONITOR_AS: u32 = 65100;
    /// The first injected route.
    pub const PREFIX_BASE: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 0);
    /// Length of the pool holding every injected route.
    pub const POOL_LEN: u8 = 9;
    /// Addresses in the pool.
    pub const POOL_SIZE: u32 = 1 << (32 - Self::POOL_LEN);

    /// The plan for `scenario`.
    pub fn new(scenario: Scenario) -> Topology {
        Topology { scenario }
    }

    /// Injector `i`'s address (0-based).
    pub fn injector_address(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 10)) + i)
    }

    /// Injector `i`'s AS.
    pub fn injector_as(&self, i: u32) -> u32 {
        65001 + i
    }

    /// Offsets (from `PREFIX_BASE`) of the routes injector `i` announces.
    pub fn injector_range(&self, i: u32) -> std::ops::Range<u32> {
        let n = self.scenario.prefixes;
        i * n..(i + 1) * n
    }

    /// The first route injector `i` announces.
    pub fn injector_first_prefix(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Self::PREFIX_BASE) + self.injector_range(i).start)
    }

    /// The pool that contains every injected route.
    pub fn pool(&self) -> Ipv4Net {
        Ipv4Net::new(Self::PREFIX_BASE, Self::POOL_LEN).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse_with_suffixes_and_print_back() {
        for (text, m, n, shown) in [
            ("2x100k", 2, 100_000, "2x100k"),
            ("2x500K", 2, 500_000, "2x500k"),
            ("10x10k", 10, 10_000, "10x10k"),
            ("1x1000", 1, 1000, "1x1k"),
            ("3x1234", 3, 1234, "3x1234"),
            ("1x2m", 1, 2_000_000, "1x2m"),
        ] {
            let s: Scenario = text.parse().unwrap();
            assert_eq!((s.injectors, s.prefixes), (m, n), "{text}");
            assert_eq!(s.to_string(), shown);
        }
        for bad in [
            "", "2", "x100", "0x10", "100x10", "2x0", "2xk", "2x5m", "1x9m",
        ] {
            assert!(bad.parse::<Scenario>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn injectors_get_disjoint_ranges_inside_the_pool() {
        let t = Topology::new("10x10k".parse().unwrap());
        assert_eq!(t.injector_address(0), Ipv4Addr::new(10, 0, 0, 10));
        assert_eq!(t.injector_address(9), Ipv4Addr::new(10, 0, 0, 19));
        assert_eq!(t.injector_as(9), 65010);
        assert_eq!(t.injector_first_prefix(1), Ipv4Addr::new(10, 128, 39, 16));
        assert_eq!(t.injector_range(9), 90_000..100_000);
        assert_eq!(t.pool().to_string(), "10.128.0.0/9");
        let big = Topology::new("2x500k".parse().unwrap());
        let last = u32::from(big.injector_first_prefix(1)) + 499_999;
        assert!(big.pool().contains(&Ipv4Addr::from(last)));
    }
}
