//! Where IPAM blocks live: the `BlockStore` trait, whose every write is a compare-and-swap on
//! the block's sequence number (Calico's `resourceVersion` discipline, `calico.md` §2.6), so
//! that nodes sharing a store never hand out one address twice.
//!
//! Owns: the four operations (read all, create, update-if-sequence-matches, delete) and their
//! errors. Must not: decide allocations (`allocator`) or retry (`Ipam` re-reads and retries on
//! a conflict). The file implementation is `file_store`; a Kubernetes one (IPAMBlock CRDs,
//! `resourceVersion`) fits the same trait.

use std::path::PathBuf;

use ipnet::IpNet;

use super::block::Block;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` found the block already there (another node claimed it first).
    #[error("block {cidr} already exists")]
    AlreadyExists {
        /// The block.
        cidr: IpNet,
    },
    /// The stored block's sequence number is not the one the write was based on (or the
    /// block is gone): someone else wrote it first.
    #[error("block {cidr} changed underneath us (expected sequence {expected}, found {})",
        found.map_or_else(|| "no block".to_string(), |s| s.to_string()))]
    Conflict {
        /// The block.
        cidr: IpNet,
        /// The sequence number the write was based on.
        expected: u64,
        /// The stored one, `None` when the block no longer exists.
        found: Option<u64>,
    },
    /// A stored block cannot be read back (edited by hand, or from another program).
    #[error("IPAM block file {path} is unusable: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing the store failed.
    #[error("IPAM store: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl StoreError {
    /// True when re-reading the store and trying again can succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            StoreError::AlreadyExists { .. } | StoreError::Conflict { .. }
        )
    }
}

/// A datastore for IPAM blocks, shared by every node that allocates from the same pools.
///
/// Reads need not be atomic across blocks; every write must be atomic per block and
/// conditional: `create` only if absent, `update` and `delete` only if the stored sequence
/// number equals `block.sequence`. A successful write stores sequence + 1.
pub trait BlockStore: Send + Sync + 'static {
    /// Every block, in no particular order.
    fn list(&self) -> Result<Vec<Block>, StoreError>;

    /// Store a new block; `AlreadyExists` if one with its CIDR is there. Returns the block as
    /// stored (with its sequence number).
    fn create(&self, block: &Block) -> Result<Block, StoreError>;

    /// Replace the block if the stored sequence number is still `block.sequence`; returns the
    /// block as stored.
    fn update(&self, block: &Block) -> Result<Block, StoreError>;

    /// Delete the block if the stored sequence number is still `block.sequence`.
    fn delete(&self, block: &Block) -> Result<(), StoreError>;
}
