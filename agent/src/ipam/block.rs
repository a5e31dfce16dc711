//! One IPAM block (Calico's `IPAMBlock`, `calico.md` §2.2): a CIDR cut from a pool, the node it
//! is affine to, which addresses are allocated to which handle, the FIFO of free addresses and
//! the sequence number every compare-and-swap write checks.
//!
//! Owns: the block's data, its invariants (`validate`) and the per-block operations (take the
//! longest-free address, release a handle, find an address). Must not: choose blocks or pools
//! (`allocator`) or do I/O (`store`). Blocks enter from a store as serialised JSON and leave the
//! same way; everything here is pure.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The largest block accepted (a /20 or /116 holds 4096 addresses, Calico's smallest
/// `blockSize`); a bigger one in a file is treated as corrupt rather than allocated.
pub const MAX_BLOCK_ADDRESSES: u32 = 1 << 16;

/// Who holds one address (Calico's allocation attributes: handle, node, namespace, pod,
/// timestamp).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Allocation {
    /// `<network>.<containerID>`.
    pub handle: String,
    /// The node that allocated it (differs from the block's affinity for a borrowed address).
    pub node: String,
    /// Pod namespace, empty outside Kubernetes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Pod name, empty outside Kubernetes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    /// Unix time of the allocation (GC grace periods count from it).
    pub allocated_unix: u64,
}

/// An IPAM block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Block {
    /// The block, normalised to its network address.
    pub cidr: IpNet,
    /// The node the block is affine to (Calico `host:<node>`); `None` for a block without
    /// affinity, which is deleted as soon as it is empty.
    pub affinity: Option<String>,
    /// Unix time the current affinity was claimed.
    pub claimed_unix: u64,
    /// Allocated ordinals (offset from the network address) and their holders.
    pub allocations: BTreeMap<u32, Allocation>,
    /// Free ordinals, the longest-free first (released addresses go to the back).
    pub unallocated: VecDeque<u32>,
    /// Unix time the block became empty, while it is empty.
    pub empty_since_unix: Option<u64>,
    /// Incremented by the store on every write; a write must name the number it read.
    pub sequence: u64,
}

impl Block {
    /// An empty block affine to `node` (or to nobody), claimed at `now`. The sequence number
    /// is set by the store when the block is created.
    pub fn new(cidr: IpNet, node: Option<&str>, now: u64) -> Block {
        let cidr = cidr.trunc();
        let size = address_count(&cidr).min(MAX_BLOCK_ADDRESSES);
        Block {
            cidr,
            affinity: node.map(str::to_string),
            claimed_unix: now,
            allocations: BTreeMap::new(),
            unallocated: (0..size).collect(),
            empty_since_unix: Some(now),
            sequence: 0,
        }
    }

    /// Addresses in the block.
    pub fn capacity(&self) -> u32 {
        address_count(&self.cidr)
    }

    /// Allocated addresses.
    pub fn in_use(&self) -> usize {
        self.allocations.len()
    }

    /// True when no address is allocated.
    pub fn is_empty(&self) -> bool {
        self.allocations.is_empty()
    }

    /// True when another address can be allocated.
    pub fn has_free(&self) -> bool {
        !self.unallocated.is_empty()
    }

    /// True when the block is affine to `node`.
    pub fn is_affine_to(&self, node: &str) -> bool {
        self.affinity.as_deref() == Some(node)
    }

    /// The address at `ordinal`.
    pub fn address(&self, ordinal: u32) -> IpAddr {
        match self.cidr {
            IpNet::V4(n) => {
                IpAddr::V4(Ipv4Addr::from(u32::from(n.network()).wrapping_add(ordinal)))
            }
            IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(
                u128::from(n.network()).wrapping_add(u128::from(ordinal)),
            )),
        }
    }

    /// The ordinal of `ip`, if the block contains it.
    pub fn ordinal(&self, ip: IpAddr) -> Option<u32> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        let offset = match (self.cidr, ip) {
            (IpNet::V4(n), IpAddr::V4(a)) => u128::from(u32::from(a) - u32::from(n.network())),
            (IpNet::V6(n), IpAddr::V6(a)) => u128::from(a) - u128::from(n.network()),
            _ => return None,
        };
        u32::try_from(offset).ok()
    }

    /// Who holds `ip`, if it is allocated in this block.
    pub fn holder(&self, ip: IpAddr) -> Option<&Allocation> {
        self.allocations.get(&self.ordinal(ip)?)
    }

    /// The addresses `handle` holds in this block.
    pub fn addresses_of(&self, handle: &str) -> Vec<IpAddr> {
        self.allocations
            .iter()
            .filter(|(_, a)| a.handle == handle)
            .map(|(&o, _)| self.address(o))
            .collect()
    }

    /// Allocate the longest-free address to `allocation`; `None` when the block is full.
    pub fn assign(&mut self, allocation: Allocation) -> Option<IpAddr> {
        let ordinal = self.unallocated.pop_front()?;
        self.allocations.insert(ordinal, allocation);
        self.empty_since_unix = None;
        Some(self.address(ordinal))
    }

    /// Free every address `handle` holds here (to the back of the free list); returns them.
    /// The block records when it became empty.
    pub fn release(&mut self, handle: &str, now: u64) -> Vec<IpAddr> {
        let ordinals: Vec<u32> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.handle == handle)
            .map(|(&o, _)| o)
            .collect();
        for o in &ordinals {
            self.allocations.remove(o);
            self.unallocated.push_back(*o);
        }
        if !ordinals.is_empty() && self.allocations.is_empty() {
            self.empty_since_unix = Some(now);
        }
        ordinals.into_iter().map(|o| self.address(o)).collect()
    }

    /// Check the invariants a block read from storage must hold: a normalised CIDR of an
    /// accepted size, and every ordinal either allocated or free, exactly once.
    pub fn validate(&self) -> Result<(), String> {
        if self.cidr != self.cidr.trunc() {
            return Err(format!(
                "cidr {} is not a network address (expected {})",
                self.cidr,
                self.cidr.trunc()
            ));
        }
        let size = address_count(&self.cidr);
        if size > MAX_BLOCK_ADDRESSES {
            return Err(format!(
                "cidr {} holds more than {MAX_BLOCK_ADDRESSES} addresses",
                self.cidr
            ));
        }
        let mut seen = vec![false; size as usize];
        let ordinals = self
            .allocations
            .keys()
            .copied()
            .chain(self.unallocated.iter().copied());
        for o in ordinals {
            match seen.get_mut(o as usize) {
                None => {
                    return Err(format!(
                        "ordinal {o} is outside the /{} block",
                        self.cidr.prefix_len()
                    ));
                }
                Some(true) => return Err(format!("ordinal {o} is listed twice")),
                Some(slot) => *slot = true,
            }
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(format!("ordinal {missing} is neither allocated nor free"));
        }
        if let Some((o, a)) = self.allocations.iter().find(|(_, a)| a.handle.is_empty()) {
            return Err(format!(
                "ordinal {o} is allocated to an empty handle (node {:?})",
                a.node
            ));
        }
        Ok(())
    }

    /// Calico's resource name for the block: the CIDR with `.`, `:` and `/` turned into `-`
    /// (`10-244-0-64-26`).
    pub fn name(&self) -> String {
        block_name(&self.cidr)
    }
}

/// Calico's block name for `cidr` (`10.244.0.64/26` → `10-244-0-64-26`).
pub fn block_name(cidr: &IpNet) -> String {
    cidr.trunc()
        .to_string()
        .chars()
        .map(|c| if matches!(c, '.' | ':' | '/') { '-' } else { c })
        .collect()
}

/// Addresses in `net`, saturated at `u32::MAX`.
pub fn address_count(net: &IpNet) -> u32 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if host_bits >= 32 {
        u32::MAX
    } else {
        1u32 << host_bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(handle: &str) -> Allocation {
        Allocation {
            handle: handle.into(),
            node: "node-1".into(),
            namespace: "default".into(),
            pod: handle.into(),
            allocated_unix: 100,
        }
    }

    #[test]
    fn addresses_come_in_order_and_released_ones_go_last() {
        let mut b = Block::new("10.244.0.64/30".parse().unwrap(), Some("node-1"), 10);
        assert_eq!(b.capacity(), 4);
        assert!(b.is_empty());
        let got: Vec<IpAddr> = ["a", "b", "c"]
            .iter()
            .map(|h| b.assign(alloc(h)).unwrap())
            .collect();
        assert_eq!(
            got,
            ["10.244.0.64", "10.244.0.65", "10.244.0.66"].map(|s| s.parse::<IpAddr>().unwrap())
        );
        assert_eq!(
            b.release("b", 20),
            vec!["10.244.0.65".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(b.empty_since_unix, None, "still holds a and c");
        // .67 has been free the longest; .65 comes after it (Calico's unallocated FIFO).
        assert_eq!(
            b.assign(alloc("d")).unwrap(),
            "10.244.0.67".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            b.assign(alloc("e")).unwrap(),
            "10.244.0.65".parse::<IpAddr>().unwrap()
        );
        assert!(!b.has_free());
        assert_eq!(b.assign(alloc("f")), None);
        b.validate().unwrap();
    }

    #[test]
    fn release_is_idempotent_and_marks_the_block_empty() {
        let mut b = Block::new("fd00::/126".parse().unwrap(), Some("node-1"), 10);
        let ip = b.assign(alloc("a")).unwrap();
        assert_eq!(ip, "fd00::".parse::<IpAddr>().unwrap());
        assert_eq!(b.holder(ip).unwrap().handle, "a");
        assert_eq!(b.addresses_of("a"), vec![ip]);
        assert_eq!(b.release("a", 50), vec![ip]);
        assert_eq!(b.empty_since_unix, Some(50));
        assert!(b.release("a", 60).is_empty());
        assert_eq!(
            b.empty_since_unix,
            Some(50),
            "a no-op release keeps the time"
        );
        assert!(b.holder(ip).is_none());
    }

    #[test]
    fn ordinals_map_both_ways() {
        let b = Block::new("10.0.0.200/29".parse().unwrap(), None, 0);
        assert_eq!(b.cidr.to_string(), "10.0.0.200/29");
        assert_eq!(b.ordinal("10.0.0.207".parse().unwrap()), Some(7));
        assert_eq!(b.ordinal("10.0.0.208".parse().unwrap()), None);
        assert_eq!(b.ordinal("fd00::1".parse().unwrap()), None);
        assert_eq!(b.address(7), "10.0.0.207".parse::<IpAddr>().unwrap());
        let v6 = Block::new("fd00:1::40/122".parse().unwrap(), None, 0);
        assert_eq!(v6.capacity(), 64);
        assert_eq!(v6.ordinal("fd00:1::7f".parse().unwrap()), Some(63));
    }

    #[test]
    fn names_follow_calico() {
        assert_eq!(
            block_name(&"10.244.0.64/26".parse().unwrap()),
            "10-244-0-64-26"
        );
        assert_eq!(
            block_name(&"fd00:1::40/122".parse().unwrap()),
            "fd00-1--40-122"
        );
    }

    #[test]
    fn validate_rejects_broken_blocks() {
        let good = Block::new("10.0.0.0/30".parse().unwrap(), Some("n"), 0);
        good.validate().unwrap();
        let mut twice = good.clone();
        twice.unallocated.push_back(1);
        assert!(twice.validate().unwrap_err().contains("listed twice"));
        let mut missing = good.clone();
        missing.unallocated.pop_back();
        assert!(missing.validate().unwrap_err().contains("ordinal 3"));
        let mut outside = good.clone();
        outside.unallocated.push_back(9);
        assert!(outside.validate().unwrap_err().contains("outside"));
        let mut host_bits = good.clone();
        host_bits.cidr = "10.0.0.1/30".parse().unwrap();
        assert!(
            host_bits
                .validate()
                .unwrap_err()
                .contains("network address")
        );
        let mut huge = good;
        huge.cidr = "10.0.0.0/8".parse().unwrap();
        assert!(huge.validate().unwrap_err().contains("more than"));
    }
}
