//! The file `BlockStore`: one JSON file per block under `<state-dir>/ipam/blocks/`, shared by
//! every node of one machine (a multi-node lab), with compare-and-swap made atomic across
//! threads and processes by `flock(2)` on `<state-dir>/ipam/lock`.
//!
//! Owns: the directory layout, the lock, and the write discipline (lock, re-read the stored
//! sequence number, write a temporary file, rename it over the block, unlock). Must not:
//! decide anything about allocations. Reads take no lock: a rename replaces a file atomically,
//! so a reader sees either the old or the new block, and a decision made on a stale read fails
//! its compare-and-swap. Files are not fsync'd: they describe pods of this machine, which a
//! power loss takes down with them, and ext4 orders a replace-by-rename after its data anyway.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};

use super::block::{Block, block_name};
use super::store::{BlockStore, StoreError};

/// The lock file's name inside the IPAM directory.
pub const LOCK_FILE: &str = "lock";
/// The directory of block files inside the IPAM directory.
pub const BLOCKS_DIR: &str = "blocks";

/// Blocks as files in a directory (see the module doc).
#[derive(Debug)]
pub struct FileStore {
    root: PathBuf,
    blocks: PathBuf,
    lock: PathBuf,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { what, path, source }
}

impl FileStore {
    /// Open (creating if needed) the store in `root` (`<state-dir>/ipam`).
    pub fn open(root: &Path) -> Result<FileStore, StoreError> {
        let blocks = root.join(BLOCKS_DIR);
        fs::create_dir_all(&blocks).map_err(io_err("cannot create", &blocks))?;
        let lock = root.join(LOCK_FILE);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock)
            .map_err(io_err("cannot create", &lock))?;
        Ok(FileStore {
            root: root.to_path_buf(),
            blocks,
            lock,
        })
    }

    /// The IPAM directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, block: &Block) -> PathBuf {
        self.blocks
            .join(format!("{}.json", block_name(&block.cidr)))
    }

    /// Hold the store's lock until the guard is dropped. A fresh open file description per
    /// call, so threads of one process exclude each other as processes do.
    fn locked(&self) -> Result<Flock<File>, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock)
            .map_err(io_err("cannot open", &self.lock))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| StoreError::Io {
            what: "cannot lock",
            path: self.lock.clone(),
            source: io::Error::from(errno),
        })
    }

    /// The stored block at `path`, `None` if there is none.
    fn read(&self, path: &Path) -> Result<Option<Block>, StoreError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", path)(e)),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let block: Block = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        block.validate().map_err(corrupt)?;
        let expected = format!("{}.json", block.name());
        if path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
            return Err(corrupt(format!(
                "it holds block {} whose file name would be {expected}",
                block.cidr
            )));
        }
        Ok(Some(block))
    }

    /// Write `block` to `path` through a temporary file and a rename.
    fn write(&self, path: &Path, block: &Block) -> Result<(), StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut bytes = serde_json::to_vec(block).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("cannot encode: {e}"),
        })?;
        bytes.push(b'\n');
        let tmp = self.blocks.join(format!(
            ".{}.{}.{}.tmp",
            block.name(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes))
            .and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("cannot write", path)(e));
        }
        Ok(())
    }

    /// The stored sequence number must be `expected`.
    fn check(block: &Block, stored: Option<&Block>) -> Result<(), StoreError> {
        match stored {
            Some(s) if s.sequence == block.sequence => Ok(()),
            other => Err(StoreError::Conflict {
                cidr: block.cidr,
                expected: block.sequence,
                found: other.map(|s| s.sequence),
            }),
        }
    }
}

impl BlockStore for FileStore {
    fn list(&self) -> Result<Vec<Block>, StoreError> {
        let entries = fs::read_dir(&self.blocks).map_err(io_err("cannot list", &self.blocks))?;
        let mut blocks = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("cannot list", &self.blocks))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Temporary files start with a dot; anything else that is not JSON is not ours.
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            // A block deleted since the listing is simply gone.
            if let Some(block) = self.read(&entry.path())? {
                blocks.push(block);
            }
        }
        Ok(blocks)
    }

    fn create(&self, block: &Block) -> Result<Block, StoreError> {
        let path = self.path_of(block);
        let _lock = self.locked()?;
        if path.exists() {
            return Err(StoreError::AlreadyExists { cidr: block.cidr });
        }
        let mut stored = block.clone();
        stored.sequence = 1;
        self.write(&path, &stored)?;
        Ok(stored)
    }

    fn update(&self, block: &Block) -> Result<Block, StoreError> {
        let path = self.path_of(block);
        let _lock = self.locked()?;
        Self::check(block, self.read(&path)?.as_ref())?;
        let mut stored = block.clone();
        stored.sequence = block.sequence + 1;
        self.write(&path, &stored)?;
        Ok(stored)
    }

    fn delete(&self, block: &Block) -> Result<(), StoreError> {
        let path = self.path_of(block);
        let _lock = self.locked()?;
        Self::check(block, self.read(&path)?.as_ref())?;
        fs::remove_file(&path).map_err(io_err("cannot delete", &path))
    }
}
