//! Attribute interning: equal path attribute sets share one allocation.
//!
//! Owns: a set of `Arc<PathAttrs>` and its periodic sweep of entries nobody else holds.
//! Must not: be used from more than the speaker's core task (it is not synchronised).
//!
//! Thousands of prefixes arrive with the same attributes (one UPDATE, or one origin AS); sharing
//! them keeps memory per route to a pointer, and lets export group prefixes by pointer identity
//! into few UPDATEs.

use std::collections::HashSet;
use std::sync::Arc;

use crate::rib::RandomState;
use crate::types::PathAttrs;

/// The interner.
#[derive(Debug)]
pub struct Interner {
    set: HashSet<Arc<PathAttrs>, RandomState>,
    next_sweep: usize,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            set: HashSet::default(),
            next_sweep: 1024,
        }
    }
}

impl Interner {
    /// The shared copy of `attrs`.
    pub fn intern(&mut self, attrs: PathAttrs) -> Arc<PathAttrs> {
        if let Some(found) = self.set.get(&attrs) {
            return found.clone();
        }
        self.insert(Arc::new(attrs))
    }

    /// The shared copy of an attribute set that is already in an `Arc`.
    pub fn intern_arc(&mut self, attrs: Arc<PathAttrs>) -> Arc<PathAttrs> {
        if let Some(found) = self.set.get(&attrs) {
            return found.clone();
        }
        self.insert(attrs)
    }

    fn insert(&mut self, attrs: Arc<PathAttrs>) -> Arc<PathAttrs> {
        if self.set.len() >= self.next_sweep {
            self.sweep();
        }
        self.set.insert(attrs.clone());
        attrs
    }

    /// Drop entries only the interner holds.
    pub fn sweep(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
        self.next_sweep = (self.set.len() * 2).max(1024);
    }

    /// Number of distinct attribute sets held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the interner holds nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_attributes_share_one_allocation_and_unused_ones_are_swept() {
        let mut i = Interner::default();
        let a = i.intern(PathAttrs::local(vec![1], vec![]));
        let b = i.intern(PathAttrs::local(vec![1], vec![]));
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.intern_arc(Arc::new(PathAttrs::local(vec![2], vec![])));
        assert_eq!(i.len(), 2);
        drop(c);
        i.sweep();
        assert_eq!(i.len(), 1);
        drop((a, b));
        i.sweep();
        assert!(i.is_empty());
    }
}
