//! Per-peer export state beside the Loc-RIB: what is decided but not yet sent to one peer, and —
//! for peer slots beyond the table's inline bits — the set of prefixes advertised.
//!
//! Owns: `OutQueue` (announcements and withdrawals in order, per family) and `Advertised`
//! (overflow sets). Must not: decide what to advertise (the speaker runs export policy when a
//! prefix's selection changes) or encode anything.
//!
//! Export is decided once per changed prefix, for every established peer at the same time, while
//! the speaker holds the table entry anyway; the outcome waits here until the peer's socket has
//! room. Entries are small (a prefix and an index into the queue's attribute list), so a slow
//! peer costs a few bytes per pending prefix; a flapping prefix queued repeatedly for a stalled
//! peer is compacted to its last outcome.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{OutChange, Prefix, RandomState};
use crate::types::PathAttrs;

/// Queue marker for a withdrawal.
const WITHDRAW: u32 = u32::MAX;

/// One queued outcome, packed: an IPv4 entry is 9 bytes (a queue holds one per pending prefix
/// and peer, so this is most of a burst's memory).
#[derive(Clone, Copy, Debug)]
#[repr(C, packed)]
struct Entry<P: Copy> {
    prefix: P,
    id: u32,
}

impl<P: Copy> Entry<P> {
    fn new(prefix: P, id: u32) -> Self {
        Entry { prefix, id }
    }

    fn get(self) -> (P, u32) {
        (self.prefix, self.id)
    }
}

/// Decided UPDATE content for one peer, oldest first.
#[derive(Debug, Default)]
pub struct OutQueue {
    v4: VecDeque<Entry<Ipv4Net>>,
    v6: VecDeque<Entry<Ipv6Net>>,
    /// Attribute sets referenced by the queue entries.
    attrs: Vec<Arc<PathAttrs>>,
    /// `Arc` address → index (addresses of `Arc`s `attrs` holds, so they stay unique).
    ids: HashMap<usize, u32, RandomState>,
    last: Option<(usize, u32)>,
}

/// One queued outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// Announce the prefix with these attributes.
    Announce(IpNet, Arc<PathAttrs>),
    /// Withdraw the prefix.
    Withdraw(IpNet),
}

fn compact<P: Prefix>(q: &mut VecDeque<Entry<P>>) {
    // Keep each prefix's last outcome, in the order of those last outcomes.
    let mut seen: HashSet<P, RandomState> = HashSet::default();
    let mut kept: Vec<Entry<P>> = q
        .drain(..)
        .rev()
        .filter(|e| seen.insert(e.get().0))
        .collect();
    kept.reverse();
    q.extend(kept);
    q.shrink_to_fit();
}

impl OutQueue {
    fn id(&mut self, attrs: Arc<PathAttrs>) -> u32 {
        let key = Arc::as_ptr(&attrs) as usize;
        if let Some((k, id)) = self.last
            && k == key
        {
            return id;
        }
        let id = match self.ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = self.attrs.len() as u32;
                self.attrs.push(attrs);
                self.ids.insert(key, id);
                id
            }
        };
        self.last = Some((key, id));
        id
    }

    /// Queue the outcome of exporting `prefix` (nothing for `OutChange::None`).
    pub fn push(&mut self, prefix: IpNet, change: OutChange) {
        let id = match change {
            OutChange::None => return,
            OutChange::Withdraw => WITHDRAW,
            OutChange::Announce { attrs, .. } => self.id(attrs),
        };
        match prefix {
            IpNet::V4(p) => self.v4.push_back(Entry::new(p, id)),
            IpNet::V6(p) => self.v6.push_back(Entry::new(p, id)),
        }
    }

    /// Make room for `v4` and `v6` more outcomes: a burst larger than the queue's capacity is
    /// reserved exactly (no doubling slack on the big allocation), smaller ones grow as usual
    /// (amortised, so many small flushes never copy a long queue each time).
    pub fn reserve(&mut self, v4: usize, v6: usize) {
        fn grow<T>(q: &mut VecDeque<T>, n: usize) {
            if n > q.capacity() {
                q.reserve_exact(n);
            } else {
                q.reserve(n);
            }
        }
        grow(&mut self.v4, v4);
        grow(&mut self.v6, v6);
    }

    /// Keep the queue bounded: a family's queue longer than twice its table (plus slack) keeps
    /// only each prefix's last outcome. It only grows so when prefixes keep changing while the
    /// peer does not read.
    pub fn bound(&mut self, v4_entries: usize, v6_entries: usize) {
        if self.v4.len() > 2 * v4_entries + 4096 {
            compact(&mut self.v4);
        }
        if self.v6.len() > 2 * v6_entries + 4096 {
            compact(&mut self.v6);
        }
    }

    /// Take up to `max` outcomes, IPv4 first.
    pub fn take(&mut self, max: usize) -> Vec<Out> {
        let mut out = Vec::with_capacity(max.min(self.len()));
        let n4 = max.min(self.v4.len());
        for (p, id) in self.v4.drain(..n4).map(Entry::get) {
            out.push(match id {
                WITHDRAW => Out::Withdraw(IpNet::V4(p)),
                id => Out::Announce(IpNet::V4(p), self.attrs[id as usize].clone()),
            });
        }
        let n6 = (max - n4).min(self.v6.len());
        for (p, id) in self.v6.drain(..n6).map(Entry::get) {
            out.push(match id {
                WITHDRAW => Out::Withdraw(IpNet::V6(p)),
                id => Out::Announce(IpNet::V6(p), self.attrs[id as usize].clone()),
            });
        }
        if self.is_empty() {
            // Give back the memory of a large burst and the attribute references.
            *self = OutQueue::default();
        }
        out
    }

    /// Return outcomes taken but not sent to the front of the queue, in their order.
    pub fn put_back(&mut self, outs: Vec<Out>) {
        for out in outs.into_iter().rev() {
            let (prefix, id) = match out {
                Out::Withdraw(p) => (p, WITHDRAW),
                Out::Announce(p, a) => (p, self.id(a)),
            };
            match prefix {
                IpNet::V4(p) => self.v4.push_front(Entry::new(p, id)),
                IpNet::V6(p) => self.v6.push_front(Entry::new(p, id)),
            }
        }
    }

    /// Number of queued outcomes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is advertised to a peer whose slot has no inline bit in the table entries.
#[derive(Debug, Default)]
pub struct Advertised {
    /// IPv4 prefixes advertised.
    pub v4: HashSet<Ipv4Net, RandomState>,
    /// IPv6 prefixes advertised.
    pub v6: HashSet<Ipv6Net, RandomState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_entries_are_nine_bytes() {
        assert_eq!(std::mem::size_of::<Entry<Ipv4Net>>(), 9);
    }

    fn announce(a: &Arc<PathAttrs>) -> OutChange {
        OutChange::Announce {
            attrs: a.clone(),
            replaces: false,
        }
    }

    #[test]
    fn queue_keeps_order_shares_attributes_and_compacts_a_flapping_prefix() {
        let a = Arc::new(PathAttrs::local(vec![1], vec![]));
        let b = Arc::new(PathAttrs::local(vec![2], vec![]));
        let p: IpNet = "10.0.0.0/24".parse().unwrap();
        let q6: IpNet = "fd00::/64".parse().unwrap();
        let mut q = OutQueue::default();
        q.push(q6, announce(&b));
        q.push(p, announce(&a));
        q.push(p, OutChange::None);
        q.push(p, OutChange::Withdraw);
        assert_eq!(q.len(), 3);
        assert_eq!(q.attrs.len(), 2);
        assert_eq!(
            q.take(10),
            vec![
                Out::Announce(p, a.clone()),
                Out::Withdraw(p),
                Out::Announce(q6, b.clone())
            ]
        );
        assert!(q.is_empty() && q.attrs.is_empty());
        // Outcomes taken but not sent go back to the front, in order.
        q.push(p, announce(&a));
        q.push(q6, OutChange::Withdraw);
        let taken = q.take(10);
        q.push(p, OutChange::Withdraw);
        q.put_back(taken.clone());
        let mut again = taken;
        again.insert(1, Out::Withdraw(p));
        assert_eq!(q.take(10), again);
        // A stalled peer and a flapping prefix: only the last outcome survives compaction.
        for i in 0..10_000 {
            q.push(
                p,
                if i % 2 == 0 {
                    announce(&a)
                } else {
                    OutChange::Withdraw
                },
            );
        }
        q.push(p, announce(&b));
        q.bound(1, 0);
        assert_eq!(q.take(usize::MAX), vec![Out::Announce(p, b)]);
    }
}
