//! IP address management, Calico's model (`calico.md` §2): IPPools cut into blocks, blocks
//! claimed by nodes through compare-and-swap on a shared store, addresses allocated per
//! handle (`<network>.<containerID>`).
//!
//! Layout: `block` (one block's data and operations), `allocator` (the pure rules), `store`
//! (the `BlockStore` trait), `file_store` (blocks as files shared by the nodes of one
//! machine). This file holds `Ipam`, the driver: it plans with `allocator` on a snapshot,
//! applies the writes through the store, and on a conflict re-reads and plans again. Must
//! not: know about endpoints, the CNI socket, felix or BGP (`pod_network` wires those).
//!
//! Concurrency: one mutex serialises this process's IPAM work (and holds the last snapshot of
//! the store); processes sharing a store are kept apart by the store's compare-and-swap. A
//! request is planned on the snapshot first, so the common case costs one store write (one
//! lock round); only a conflict or a refusal reads the whole store again.

pub mod allocator;
pub mod block;
pub mod file_store;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use ipnet::IpNet;

use crate::datastore::model::IpPool;
use allocator::{
    AssignArgs, AssignError, AssignPlan, BlockWrite, Blocks, NodeContext, SweepInput, SweepPlan,
};
pub use allocator::{IpFamily, NodeBlocks, Source};
pub use block::{Allocation, Block};
pub use file_store::FileStore;
pub use store::{BlockStore, StoreError};

/// Calico's `datastoreRetries`: how often a conflicting write is re-planned.
pub const MAX_ATTEMPTS: usize = 100;

/// Why an IPAM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// No address can be given (no usable pool, or every pool full).
    #[error(transparent)]
    Assign(#[from] AssignError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other writers kept winning.
    #[error(
        "IPAM store contention: {attempts} attempts in a row conflicted with other nodes' writes"
    )]
    Contention {
        /// Attempts made.
        attempts: usize,
    },
}

/// What this node is and which pools exist (replaced on every configuration reload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpamSettings {
    /// This node's name.
    pub node: String,
    /// Its labels (pools' `nodeSelector`).
    pub labels: BTreeMap<String, String>,
    /// Every IPPool of the cluster, by name.
    pub pools: Vec<IpPool>,
    /// Seconds another node's block must have been empty before this node takes it over
    /// (0: never); also how long an empty block of this node waits before a sweep gives it
    /// back (Calico's leak grace period).
    pub block_grace: u64,
}

/// The outcome of an assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Addresses with their blocks' prefix lengths, and how each was found.
    pub addresses: Vec<(IpNet, Source)>,
    /// Store writes that were retried after a conflict.
    pub conflicts: u64,
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Leaked handles released, with the addresses each held.
    pub released: Vec<(String, Vec<IpAddr>)>,
    /// Empty blocks given back.
    pub blocks_released: Vec<IpNet>,
}

/// The IPAM driver over a `BlockStore` (see the module doc).
pub struct Ipam<S: BlockStore> {
    store: S,
    settings: RwLock<Arc<IpamSettings>>,
    /// The last snapshot of the store; its lock serialises this process's IPAM work.
    snapshot: Mutex<Arc<Blocks>>,
    conflicts: AtomicU64,
}

/// Why `Ipam::run` stopped: the plan refused (on a fresh read), or the store failed.
enum RunError<E> {
    Refused(E),
    Ipam(IpamError),
}

impl<E> From<StoreError> for RunError<E> {
    fn from(e: StoreError) -> Self {
        RunError::Ipam(IpamError::Store(e))
    }
}

fn to_map(blocks: Vec<Block>) -> Blocks {
    blocks.into_iter().map(|b| (b.cidr, b)).collect()
}

impl<S: BlockStore> Ipam<S> {
    /// A driver over `store`. Nothing is read until the first operation or `refresh`.
    pub fn new(store: S, settings: IpamSettings) -> Ipam<S> {
        Ipam {
            store,
            settings: RwLock::new(Arc::new(settings)),
            snapshot: Mutex::new(Arc::new(Blocks::new())),
            conflicts: AtomicU64::new(0),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The current settings.
    pub fn settings(&self) -> Arc<IpamSettings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replace the settings (pools, labels) after a configuration reload.
    pub fn set_settings(&self, settings: IpamSettings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
    }

    /// Write conflicts seen so far (retried writes).
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Arc<Blocks>> {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The blocks as last read or written by this process (no store access).
    pub fn cached(&self) -> Arc<Blocks> {
        self.lock().clone()
    }

    /// Read the whole store and return it.
    pub fn refresh(&self) -> Result<Arc<Blocks>, IpamError> {
        let mut snapshot = self.lock();
        *snapshot = Arc::new(to_map(self.store.list()?));
        Ok(snapshot.clone())
    }

    /// Apply `writes` in order, updating `blocks` with what the store holds afterwards (after a
    /// failure the caller re-reads the store: `blocks` may hold part of the writes).
    fn apply(&self, blocks: &mut Blocks, writes: &[BlockWrite]) -> Result<(), StoreError> {
        for w in writes {
            match w {
                BlockWrite::Create(b) => {
                    let stored = self.store.create(b)?;
                    blocks.insert(stored.cidr, stored);
                }
                BlockWrite::Update(b) => {
                    let stored = self.store.update(b)?;
                    blocks.insert(stored.cidr, stored);
                }
                BlockWrite::Delete(b) => {
                    self.store.delete(b)?;
                    blocks.remove(&b.cidr);
                }
            }
        }
        Ok(())
    }

    /// Plan on the snapshot, write, and on a conflict re-read and re-plan (at most
    /// `MAX_ATTEMPTS` times). A plan refused on the cached snapshot is retried once on a fresh
    /// read before the refusal is believed. Returns the plan's result and the conflicts.
    fn run<T, E>(
        &self,
        mut plan: impl FnMut(&Blocks) -> Result<(Vec<BlockWrite>, T), E>,
    ) -> Result<(T, u64), RunError<E>> {
        let mut snapshot = self.lock();
        let mut fresh = false;
        let mut conflicts = 0;
        for _ in 0..MAX_ATTEMPTS {
            let (writes, result) = match plan(&snapshot) {
                Ok(p) => p,
                Err(e) if fresh => return Err(RunError::Refused(e)),
                Err(_) => {
                    *snapshot = Arc::new(to_map(self.store.list()?));
                    fresh = true;
                    continue;
                }
            };
            // Copies the map only while a reader still holds the previous snapshot.
            match self.apply(Arc::make_mut(&mut snapshot), &writes) {
                Ok(()) => return Ok((result, conflicts)),
                Err(e) if e.is_conflict() => {
                    conflicts += 1;
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "IPAM write conflict; re-reading the store");
                    *snapshot = Arc::new(to_map(self.store.list()?));
                    fresh = true;
                }
                Err(e) => {
                    // Some writes may have landed: the next operation starts from the store.
                    if let Ok(blocks) = self.store.list() {
                        *snapshot = Arc::new(to_map(blocks));
                    }
                    return Err(e.into());
                }
            }
        }
        Err(RunError::Ipam(IpamError::Contention {
            attempts: MAX_ATTEMPTS,
        }))
    }

    /// Allocate addresses for `args` (see `allocator::plan_assign`). A handle that already
    /// holds addresses gets them again.
    pub fn assign(&self, args: &AssignArgs, now: u64) -> Result<Assignment, IpamError> {
        let settings = self.settings();
        let ctx = NodeContext {
            node: &settings.node,
            labels: &settings.labels,
            pools: &settings.pools,
        };
        let run = self.run(|blocks| {
            allocator::plan_assign(blocks, &ctx, args, now, settings.block_grace)
                .map(|AssignPlan { addresses, writes }| (writes, addresses))
        });
        match run {
            Ok((addresses, conflicts)) => Ok(Assignment {
                addresses,
                conflicts,
            }),
            Err(RunError::Refused(e)) => Err(IpamError::Assign(e)),
            Err(RunError::Ipam(e)) => Err(e),
        }
    }

    /// Release every address of `handle`; idempotent (an unknown handle frees nothing, which
    /// is believed only after a fresh read of the store).
    pub fn release(&self, handle: &str, now: u64) -> Result<Vec<IpAddr>, IpamError> {
        let run = self.run(|blocks| {
            let (writes, freed) = allocator::plan_release(blocks, handle, now);
            if writes.is_empty() {
                Err(())
            } else {
                Ok((writes, freed))
            }
        });
        match run {
            Ok((freed, _)) => Ok(freed),
            Err(RunError::Refused(())) => Ok(Vec::new()),
            Err(RunError::Ipam(e)) => Err(e),
        }
    }

    /// Read the store, then release this node's leaked allocations and give back its
    /// long-empty blocks (`allocator::plan_sweep`). `live` and `dead` are handles, as in
    /// `SweepInput`.
    pub fn sweep(
        &self,
        now: u64,
        leak_grace: u64,
        live: &BTreeSet<String>,
        dead: &BTreeSet<String>,
    ) -> Result<SweepReport, IpamError> {
        let settings = self.settings();
        let input = SweepInput {
            node: &settings.node,
            now,
            leak_grace,
            block_grace: settings.block_grace,
            live,
            dead,
        };
        let SweepPlan {
            leaked,
            empty_blocks,
        } = allocator::plan_sweep(&*self.refresh()?, &input);
        let mut report = SweepReport::default();
        for handle in leaked {
            let freed = self.release(&handle, now)?;
            report.released.push((handle, freed));
        }
        for block in empty_blocks {
            let cidr = block.cidr;
            let deleted = self.run(|blocks| {
                // Only while it is still this node's and still empty: a racing assignment wins.
                let writes = match blocks.get(&cidr) {
                    Some(b) if b.is_empty() && b.is_affine_to(&settings.node) => {
                        vec![BlockWrite::Delete(b.clone())]
                    }
                    _ => Vec::new(),
                };
                let deleted = !writes.is_empty();
                Ok::<_, ()>((writes, deleted))
            });
            let deleted = match deleted {
                Ok((deleted, _)) => deleted,
                Err(RunError::Refused(())) => false,
                Err(RunError::Ipam(e)) => return Err(e),
            };
            if deleted {
                report.blocks_released.push(cidr);
            }
        }
        Ok(report)
    }

    /// This node's blocks and borrowed addresses, from the snapshot.
    pub fn node_blocks(&self) -> NodeBlocks {
        allocator::node_blocks(&self.cached(), &self.settings().node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::model::{AllowedUse, AssignmentMode, Metadata};
    use crate::selector::Selector;

    /// A store in memory with the same compare-and-swap rules as the file store, to drive
    /// `Ipam`'s retry logic without I/O. `steal` makes the next update lose to another writer.
    #[derive(Default)]
    struct MemStore {
        blocks: Mutex<Blocks>,
        steal: Mutex<usize>,
    }

    impl BlockStore for MemStore {
        fn list(&self) -> Result<Vec<Block>, StoreError> {
            Ok(self.blocks.lock().unwrap().values().cloned().collect())
        }
        fn create(&self, block: &Block) -> Result<Block, StoreError> {
            let mut blocks = self.blocks.lock().unwrap();
            if blocks.contains_key(&block.cidr) {
                return Err(StoreError::AlreadyExists { cidr: block.cidr });
            }
            let mut b = block.clone();
            b.sequence = 1;
            blocks.insert(b.cidr, b.clone());
            Ok(b)
        }
        fn update(&self, block: &Block) -> Result<Block, StoreError> {
            let mut blocks = self.blocks.lock().unwrap();
            let stored = blocks.get_mut(&block.cidr);
            let mut steal = self.steal.lock().unwrap();
            match stored {
                Some(s) if *steal > 0 => {
                    // Another writer bumps the block between our read and our write.
                    *steal -= 1;
                    s.sequence += 1;
                    Err(StoreError::Conflict {
                        cidr: block.cidr,
                        expected: block.sequence,
                        found: Some(s.sequence),
                    })
                }
                Some(s) if s.sequence == block.sequence => {
                    let mut b = block.clone();
                    b.sequence += 1;
                    *s = b.clone();
                    Ok(b)
                }
                other => Err(StoreError::Conflict {
                    cidr: block.cidr,
                    expected: block.sequence,
                    found: other.map(|s| s.sequence),
                }),
            }
        }
        fn delete(&self, block: &Block) -> Result<(), StoreError> {
            let mut blocks = self.blocks.lock().unwrap();
            match blocks.get(&block.cidr) {
                Some(s) if s.sequence == block.sequence => {
                    blocks.remove(&block.cidr);
                    Ok(())
                }
                other => Err(StoreError::Conflict {
                    cidr: block.cidr,
                    expected: block.sequence,
                    found: other.map(|s| s.sequence),
                }),
            }
        }
    }

    fn settings(node: &str, cidr: &str, block_size: u8) -> IpamSettings {
        IpamSettings {
            node: node.into(),
            labels: BTreeMap::new(),
            pools: vec![IpPool {
                metadata: Metadata {
                    name: "p".into(),
                    ..Metadata::default()
                },
                cidr: cidr.parse().unwrap(),
                block_size,
                disabled: false,
                disable_bgp_export: false,
                node_selector: Selector::all(),
                nat_outgoing: false,
                allowed_uses: vec![AllowedUse::Workload],
                assignment_mode: AssignmentMode::Automatic,
            }],
            block_grace: 60,
        }
    }

    fn v4(handle: &str) -> AssignArgs {
        AssignArgs {
            handle: handle.into(),
            namespace: String::new(),
            pod: String::new(),
            families: vec![IpFamily::V4],
        }
    }

    #[test]
    fn a_conflicting_write_is_replanned_on_a_fresh_read() {
        let ipam = Ipam::new(MemStore::default(), settings("n1", "10.0.0.0/24", 26));
        let first = ipam.assign(&v4("a"), 1).unwrap();
        assert_eq!(first.addresses[0].0.to_string(), "10.0.0.0/26");
        *ipam.store().steal.lock().unwrap() = 3;
        let second = ipam.assign(&v4("b"), 2).unwrap();
        assert_eq!(second.conflicts, 3);
        assert_eq!(second.addresses[0].0.to_string(), "10.0.0.1/26");
        assert_eq!(ipam.conflicts(), 3);
        // Endless conflicts end in a clear error rather than a loop.
        *ipam.store().steal.lock().unwrap() = usize::MAX;
        let err = ipam.assign(&v4("c"), 3).unwrap_err();
        assert!(
            matches!(
                err,
                IpamError::Contention {
                    attempts: MAX_ATTEMPTS
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_stale_snapshot_does_not_cause_a_false_exhaustion() {
        let store = MemStore::default();
        let a = Ipam::new(store, settings("n1", "10.0.0.0/30", 31));
        a.assign(&v4("x"), 1).unwrap();
        a.assign(&v4("y"), 1).unwrap();
        a.assign(&v4("z"), 1).unwrap();
        a.assign(&v4("w"), 1).unwrap();
        // Another process frees an address behind this one's back.
        {
            let mut blocks = a.store().blocks.lock().unwrap();
            let b = blocks.values_mut().next().unwrap();
            b.release("x", 2);
            b.sequence += 1;
        }
        let got = a.assign(&v4("v"), 3).unwrap();
        assert_eq!(got.addresses[0].0.addr().to_string(), "10.0.0.0");
    }

    #[test]
    fn sweep_releases_leaks_and_empty_blocks() {
        let ipam = Ipam::new(MemStore::default(), settings("n1", "10.0.0.0/29", 30));
        for (h, t) in [("a", 0), ("b", 0), ("c", 0), ("d", 0), ("e", 100)] {
            ipam.assign(&v4(h), t).unwrap();
        }
        let live: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let report = ipam.sweep(200, 150, &live, &BTreeSet::new()).unwrap();
        // c and d are older than 150 s; e is younger.
        let released: Vec<&str> = report.released.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(released, ["c", "d"]);
        assert!(report.blocks_released.is_empty());
        // e's block empties at 300; 60 s later a sweep gives it back.
        ipam.release("e", 300).unwrap();
        assert!(
            ipam.sweep(359, 150, &live, &BTreeSet::new())
                .unwrap()
                .blocks_released
                .is_empty()
        );
        let report = ipam.sweep(360, 150, &live, &BTreeSet::new()).unwrap();
        assert_eq!(
            report.blocks_released,
            vec!["10.0.0.4/30".parse::<IpNet>().unwrap()]
        );
        assert_eq!(ipam.node_blocks().owned.len(), 1);
    }
}
