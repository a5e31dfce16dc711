//! The lab directory and its journal, `lab.json`: what exists, so that `status` and `down` work
//! from another shell and `down` can undo a failed or interrupted `up`.
//!
//! Owns: the directory layout (`lab.json`, `cluster.yaml`, `nodes/<node>/`, `tors/<tor>/`,
//! `state/` shared by the nodes' IPAM), the exclusive lock one `ginger-lab` holds while it
//! works, and the journal itself, which `up` writes *before* each step that creates something
//! (a namespace is recorded, then added), atomically (write a sibling, rename). Must not: create
//! or remove namespaces or processes (`host` does); it only remembers them.

use std::fs::{self, File};
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::error::{LabError, LabResult};
use super::plan::LabOptions;

/// Journal file name.
pub const JOURNAL: &str = "lab.json";
/// Version of the journal format.
pub const JOURNAL_VERSION: u32 = 1;
/// How long `up`/`down` wait for the lab directory's lock before saying another ginger-lab
/// holds it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// How far `up` got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "phase", content = "error")]
pub enum Phase {
    /// `up` is building (or was interrupted while building).
    Building,
    /// `up` finished.
    Up,
    /// `up` failed with this error.
    Failed(String),
}

/// A process the lab started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    /// What it is (`ginger-node-node-1`, `bird-tor`); its logs are `<label>.log`.
    pub label: String,
    /// Its pid.
    pub pid: i32,
    /// Its start time (clock ticks since boot), so a reused pid is never mistaken for it.
    pub start_time: u64,
    /// The namespace it runs in.
    pub netns: String,
    /// Its log file.
    pub log: PathBuf,
}

/// A pod the lab created through CNI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    /// Pod name.
    pub name: String,
    /// Its node.
    pub node: String,
    /// Its sandbox namespace.
    pub netns: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// Its address, once ADD answered.
    pub ip: Option<IpAddr>,
}

/// Everything the lab made, in creation order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Format version.
    pub version: u32,
    /// Namespace name prefix.
    pub prefix: String,
    /// The options `up` was given.
    pub options: LabOptions,
    /// How far `up` got.
    #[serde(flatten)]
    pub phase: Phase,
    /// Namespaces, recorded before each was added.
    pub namespaces: Vec<String>,
    /// Processes, recorded as soon as each was started.
    pub processes: Vec<ProcRecord>,
    /// Pods, recorded before each ADD (the address once it answered).
    pub pods: Vec<PodRecord>,
}

impl Journal {
    /// A fresh journal for a lab being built.
    pub fn new(prefix: &str, options: &LabOptions) -> Journal {
        Journal {
            version: JOURNAL_VERSION,
            prefix: prefix.to_string(),
            options: options.clone(),
            phase: Phase::Building,
            namespaces: Vec::new(),
            processes: Vec::new(),
            pods: Vec::new(),
        }
    }

    /// The process recorded under `label`.
    pub fn process(&self, label: &str) -> Option<&ProcRecord> {
        self.processes.iter().find(|p| p.label == label)
    }
}

/// The lab directory, held exclusively while this value lives (unless opened to read).
#[derive(Debug)]
pub struct LabDir {
    path: PathBuf,
    _lock: Option<Flock<File>>,
}

impl LabDir {
    /// Create `path` if needed (mode 0755: FRR's zebra runs as user `frr` and must reach its
    /// files) and lock it. Refuses a non-empty directory without a journal: it is not a lab's.
    pub fn create(path: &Path) -> LabResult<LabDir> {
        fs::create_dir_all(path)
            .map_err(|e| LabError::io(format!("creating {}", path.display()), e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .map_err(|e| LabError::io(format!("chmod {}", path.display()), e))?;
        let dir = LabDir::lock(path)?;
        if !dir.journal_path().exists() && !is_empty(path)? {
            return Err(LabError::Directory {
                dir: path.to_path_buf(),
                reason: format!(
                    "not empty and has no {JOURNAL}: not a ginger-lab directory (choose another --dir)"
                ),
            });
        }
        Ok(dir)
    }

    /// Lock an existing lab directory; `None` when it does not exist.
    pub fn open(path: &Path) -> LabResult<Option<LabDir>> {
        if !path.is_dir() {
            return Ok(None);
        }
        LabDir::lock(path).map(Some)
    }

    /// An existing lab directory, to read only (`status`): no lock, so it works while another
    /// `ginger-lab` builds; the journal is replaced atomically, never read half written.
    pub fn open_to_read(path: &Path) -> Option<LabDir> {
        path.is_dir().then(|| LabDir {
            path: path.to_path_buf(),
            _lock: None,
        })
    }

    /// Takes the directory's lock, waiting up to `LOCK_WAIT` for it: a `ginger-lab` killed
    /// while it was starting a process leaves that child holding the lock until it has exec'd.
    fn lock(path: &Path) -> LabResult<LabDir> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let mut file =
            File::open(path).map_err(|e| LabError::io(format!("opening {}", path.display()), e))?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    return Ok(LabDir {
                        path: path.to_path_buf(),
                        _lock: Some(lock),
                    });
                }
                Err((f, errno)) if std::time::Instant::now() >= deadline => {
                    drop(f);
                    return Err(LabError::Directory {
                        dir: path.to_path_buf(),
                        reason: format!("another ginger-lab is working on this lab ({errno})"),
                    });
                }
                Err((f, _)) => {
                    file = f;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `lab.json`.
    pub fn journal_path(&self) -> PathBuf {
        self.path.join(JOURNAL)
    }

    /// The cluster file the nodes read.
    pub fn cluster_path(&self) -> PathBuf {
        self.path.join("cluster.yaml")
    }

    /// The IPAM state every node shares (`ginger-node --state-dir`).
    pub fn state_dir(&self) -> PathBuf {
        self.path.join("state")
    }

    /// A node's directory: `run/` (its sockets), its conflist, logs.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.path.join("nodes").join(node)
    }

    /// A node's run directory (`ginger-node --run-dir`).
    pub fn node_run_dir(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("run")
    }

    /// A ToR's directory: configuration, control sockets, logs.
    pub fn tor_dir(&self, tor: &str) -> PathBuf {
        self.path.join("tors").join(tor)
    }

    /// The journal, if there is one.
    pub fn load(&self) -> LabResult<Option<Journal>> {
        let path = self.journal_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LabError::io(format!("reading {}", path.display()), e)),
        };
        let journal: Journal = serde_json::from_str(&text).map_err(|e| LabError::Directory {
            dir: self.path.clone(),
            reason: format!("{JOURNAL} is unreadable ({e}); remove the lab by hand"),
        })?;
        if journal.version != JOURNAL_VERSION {
            return Err(LabError::Directory {
                dir: self.path.clone(),
                reason: format!(
                    "{JOURNAL} has version {}, this ginger-lab reads {JOURNAL_VERSION}",
                    journal.version
                ),
            });
        }
        Ok(Some(journal))
    }

    /// Write the journal atomically.
    pub fn save(&self, journal: &Journal) -> LabResult<()> {
        let path = self.journal_path();
        let tmp = self.path.join(format!("{JOURNAL}.tmp"));
        let text = serde_json::to_string_pretty(journal)
            .map_err(|e| LabError::io("encoding the journal", io::Error::other(e)))?;
        fs::write(&tmp, text).map_err(|e| LabError::io(format!("writing {}", tmp.display()), e))?;
        fs::rename(&tmp, &path)
            .map_err(|e| LabError::io(format!("renaming onto {}", path.display()), e))
    }

    /// Remove the directory and everything in it (the lab's files only live here).
    pub fn remove(self) -> LabResult<()> {
        fs::remove_dir_all(&self.path)
            .map_err(|e| LabError::io(format!("removing {}", self.path.display()), e))
    }
}

fn is_empty(path: &Path) -> LabResult<bool> {
    let mut entries =
        fs::read_dir(path).map_err(|e| LabError::io(format!("listing {}", path.display()), e))?;
    Ok(entries.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trips_and_phases_read_well() {
        let dir = tempfile::tempdir().unwrap();
        let lab = LabDir::create(&dir.path().join("lab")).unwrap();
        assert_eq!(lab.load().unwrap(), None);
        let mut j = Journal::new("lab", &LabOptions::default());
        j.namespaces.push("lab-sw".into());
        j.processes.push(ProcRecord {
            label: "bird-tor".into(),
            pid: 42,
            start_time: 7,
            netns: "lab-tor".into(),
            log: lab.tor_dir("tor").join("bird-tor.log"),
        });
        lab.save(&j).unwrap();
        assert_eq!(lab.load().unwrap().as_ref(), Some(&j));
        let text = fs::read_to_string(lab.journal_path()).unwrap();
        assert!(text.contains("\"phase\": \"building\""), "{text}");
        j.phase = Phase::Failed("boom".into());
        lab.save(&j).unwrap();
        let text = fs::read_to_string(lab.journal_path()).unwrap();
        assert!(text.contains("\"error\": \"boom\""), "{text}");
        assert_eq!(
            lab.load().unwrap().unwrap().phase,
            Phase::Failed("boom".into())
        );
        assert!(j.process("bird-tor").is_some());
    }

    #[test]
    fn a_second_holder_is_refused_while_the_first_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab");
        let first = LabDir::create(&path).unwrap();
        let err = LabDir::open(&path).unwrap_err().to_string();
        assert!(err.contains("another ginger-lab"), "{err}");
        drop(first);
        assert!(LabDir::open(&path).unwrap().is_some());
    }

    #[test]
    fn foreign_directories_are_refused_and_missing_ones_are_none() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
        let err = LabDir::create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a ginger-lab directory"), "{err}");
        assert!(dir.path().join("precious.txt").exists());
        assert!(LabDir::open(&dir.path().join("nope")).unwrap().is_none());
    }
}
