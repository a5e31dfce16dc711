//! Per-peer Adj-RIB-Out: what has been advertised to one peer, and which prefixes need to be
//! looked at again before the next UPDATE to it.
//!
//! Owns: the advertised attribute per prefix and a de-duplicating FIFO of pending prefixes.
//! Must not: decide what to advertise (the speaker runs export policy) or encode anything.
//!
//! Prefixes enter `Pending` when their best path changes (or the whole table on session start /
//! route refresh / policy change); the speaker drains them in batches as the peer's socket keeps
//! up, so a flapping prefix is sent once with its latest state, and a slow peer costs one entry
//! per prefix, never a growing queue of messages.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{Prefix, RandomState};
use crate::types::PathAttrs;

/// What was advertised to one peer, per family.
#[derive(Debug, Default)]
pub struct AdjRibOut {
    v4: HashMap<Ipv4Net, Arc<PathAttrs>, RandomState>,
    v6: HashMap<Ipv6Net, Arc<PathAttrs>, RandomState>,
}

/// The effect of recording a new export decision for a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutChange {
    /// Nothing to send: the peer already has exactly this.
    None,
    /// Send an announcement with these attributes.
    Announce(Arc<PathAttrs>),
    /// Send a withdrawal.
    Withdraw,
}

impl AdjRibOut {
    /// Record that `prefix` should now be advertised with `attrs` (or not at all), and say what
    /// must be sent to get the peer there.
    pub fn update(&mut self, prefix: IpNet, attrs: Option<Arc<PathAttrs>>) -> OutChange {
        match prefix {
            IpNet::V4(p) => update_map(&mut self.v4, p, attrs),
            IpNet::V6(p) => update_map(&mut self.v6, p, attrs),
        }
    }

    /// The attributes advertised for `prefix`.
    pub fn get(&self, prefix: &IpNet) -> Option<&Arc<PathAttrs>> {
        match prefix {
            IpNet::V4(p) => self.v4.get(p),
            IpNet::V6(p) => self.v6.get(p),
        }
    }

    /// Number of prefixes advertised.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether nothing is advertised.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget everything (the session went down).
    pub fn clear(&mut self) {
        self.v4 = HashMap::default();
        self.v6 = HashMap::default();
    }

    /// Every advertised prefix with its attributes (for route refresh: resend all).
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &Arc<PathAttrs>)> {
        self.v4
            .iter()
            .map(|(p, a)| (IpNet::V4(*p), a))
            .chain(self.v6.iter().map(|(p, a)| (IpNet::V6(*p), a)))
    }
}

fn update_map<P: Prefix>(
    map: &mut HashMap<P, Arc<PathAttrs>, RandomState>,
    prefix: P,
    attrs: Option<Arc<PathAttrs>>,
) -> OutChange {
    match attrs {
        Some(new) => match map.get_mut(&prefix) {
            Some(old) if Arc::ptr_eq(old, &new) || **old == *new => OutChange::None,
            Some(old) => {
                *old = new.clone();
                OutChange::Announce(new)
            }
            None => {
                map.insert(prefix, new.clone());
                OutChange::Announce(new)
            }
        },
        None => match map.remove(&prefix) {
            Some(_) => OutChange::Withdraw,
            None => OutChange::None,
        },
    }
}

/// A de-duplicating FIFO of prefixes to re-examine for one peer.
#[derive(Debug, Default)]
pub struct Pending {
    v4: PendingFamily<Ipv4Net>,
    v6: PendingFamily<Ipv6Net>,
}

#[derive(Debug)]
struct PendingFamily<P: Prefix> {
    queue: VecDeque<P>,
    queued: HashSet<P, RandomState>,
}

impl<P: Prefix> Default for PendingFamily<P> {
    fn default() -> Self {
        PendingFamily {
            queue: VecDeque::new(),
            queued: HashSet::default(),
        }
    }
}

impl<P: Prefix> PendingFamily<P> {
    fn push(&mut self, p: P) {
        if self.queued.insert(p) {
            self.queue.push_back(p);
        }
    }

    fn pop(&mut self) -> Option<P> {
        let p = self.queue.pop_front()?;
        self.queued.remove(&p);
        Some(p)
    }
}

impl Pending {
    /// Queue a prefix (no-op if already queued).
    pub fn push(&mut self, prefix: IpNet) {
        match prefix {
            IpNet::V4(p) => self.v4.push(p),
            IpNet::V6(p) => self.v6.push(p),
        }
    }

    /// Take up to `max` prefixes, IPv4 first.
    pub fn take(&mut self, max: usize) -> Vec<IpNet> {
        let mut out = Vec::with_capacity(max.min(self.len()));
        while out.len() < max {
            match self.v4.pop() {
                Some(p) => out.push(IpNet::V4(p)),
                None => break,
            }
        }
        while out.len() < max {
            match self.v6.pop() {
                Some(p) => out.push(IpNet::V6(p)),
                None => break,
            }
        }
        if self.is_empty() {
            // Give back the memory of a large initial dump.
            *self = Pending::default();
        }
        out
    }

    /// Number of queued prefixes.
    pub fn len(&self) -> usize {
        self.v4.queue.len() + self.v6.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop everything queued.
    pub fn clear(&mut self) {
        *self = Pending::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PathAttrs;

    #[test]
    fn adj_out_reports_only_real_changes() {
        let mut out = AdjRibOut::default();
        let p: IpNet = "10.0.0.0/26".parse().unwrap();
        let a = Arc::new(PathAttrs::local(vec![], vec![]));
        let b = Arc::new(PathAttrs::local(vec![7], vec![]));
        assert_eq!(
            out.update(p, Some(a.clone())),
            OutChange::Announce(a.clone())
        );
        // Equal content in a different allocation is no change.
        let a2 = Arc::new(PathAttrs::local(vec![], vec![]));
        assert_eq!(out.update(p, Some(a2)), OutChange::None);
        assert_eq!(out.update(p, Some(b.clone())), OutChange::Announce(b));
        assert_eq!(out.len(), 1);
        assert_eq!(out.update(p, None), OutChange::Withdraw);
        assert_eq!(out.update(p, None), OutChange::None);
        assert!(out.is_empty());
    }

    #[test]
    fn pending_deduplicates_and_keeps_order() {
        let mut q = Pending::default();
        let a: IpNet = "10.0.0.0/24".parse().unwrap();
        let b: IpNet = "10.0.1.0/24".parse().unwrap();
        let c: IpNet = "fd00::/64".parse().unwrap();
        q.push(c);
        q.push(a);
        q.push(b);
        q.push(a);
        assert_eq!(q.len(), 3);
        assert_eq!(q.take(2), vec![a, b]);
        q.push(a);
        assert_eq!(q.take(10), vec![a, c]);
        assert!(q.is_empty());
    }
}
