//! The endpoint registry: every pod the CNI plugin reported ready on this node (`EndpointReady`),
//! persisted under `<state-dir>/nodes/<node>/endpoints/`, one JSON file per handle, so a
//! restarted agent knows every pod before it tells felix anything.
//!
//! Owns: the records, their files (temporary file + rename, like the IPAM store) and loading
//! them at start. Must not: allocate addresses or touch the kernel. Records enter from the CNI
//! server and leave as copies (`all`, `get`) for felix's desired state and `gingerctl get
//! endpoints`. A file that cannot be read stops the agent at start: guessing would let the
//! garbage collector release a live pod's address.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// One ready pod endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointRecord {
    /// `<network>.<containerID>`, the key.
    pub handle: String,
    /// Pod namespace (empty outside Kubernetes).
    pub namespace: String,
    /// Pod name (empty outside Kubernetes).
    pub pod: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// Pod-side link name (`CNI_IFNAME`).
    pub ifname: String,
    /// Host-side link name (`cali…`).
    pub host_ifname: String,
    /// Host-side link index (absent in records of older plugins): what the teardown deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ifindex: Option<u32>,
    /// Pod-side MAC address.
    pub mac: String,
    /// The pod's addresses.
    pub ips: Vec<IpAddr>,
    /// Unix time it was recorded.
    pub created_unix: u64,
    /// DEL handed the teardown to the agent: the veth is being removed, and the addresses are
    /// released once it is gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminating: bool,
}

/// Why the registry could not load or save a record.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Reading or writing a file failed.
    #[error("endpoint registry: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A record file is not a record.
    #[error(
        "endpoint registry: {path} is unusable ({reason}); fix or remove it (its pod's \
         addresses are released by garbage collection once the file is gone)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The persisted endpoints of one node.
#[derive(Debug)]
pub struct EndpointRegistry {
    dir: PathBuf,
    records: Mutex<BTreeMap<String, EndpointRecord>>,
}

/// The file name for `handle`: bytes outside `[A-Za-z0-9_.-]` are `%XX`-escaped, and a leading
/// dot too, so no handle can name a hidden, temporary or parent file.
pub fn file_name(handle: &str) -> String {
    let mut out = String::with_capacity(handle.len() + 5);
    for (i, b) in handle.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".json");
    out
}

impl EndpointRegistry {
    /// Load every record from `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<EndpointRegistry, EndpointError> {
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| EndpointError::Io { what, path, source }
        };
        fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
        let mut records = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io("cannot list", dir))? {
            let entry = entry.map_err(io("cannot list", dir))?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                // A temporary file left by a crash mid-write; the rename never happened.
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let bytes = fs::read(&path).map_err(io("cannot read", &path))?;
            let corrupt = |reason: String| EndpointError::Corrupt {
                path: path.clone(),
                reason,
            };
            let record: EndpointRecord =
                serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
            if file_name(&record.handle) != name {
                return Err(corrupt(format!(
                    "it holds handle {:?}, whose file would be {}",
                    record.handle,
                    file_name(&record.handle)
                )));
            }
            records.insert(record.handle.clone(), record);
        }
        Ok(EndpointRegistry {
            dir: dir.to_path_buf(),
            records: Mutex::new(records),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, EndpointRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record (or replace) an endpoint, on disk first.
    pub fn put(&self, record: EndpointRecord) -> Result<(), EndpointError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self.dir.join(file_name(&record.handle));
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut bytes = serde_json::to_vec(&record).map_err(|e| EndpointError::Corrupt {
            path: path.clone(),
            reason: format!("cannot encode: {e}"),
        })?;
        bytes.push(b'\n');
        let mut records = self.lock();
        let written = fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes))
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(EndpointError::Io {
                what: "cannot write",
                path,
                source,
            });
        }
        records.insert(record.handle.clone(), record);
        Ok(())
    }

    /// Forget an endpoint; returns it if it was known. Idempotent.
    pub fn remove(&self, handle: &str) -> Result<Option<EndpointRecord>, EndpointError> {
        let path = self.dir.join(file_name(handle));
        let mut records = self.lock();
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(EndpointError::Io {
                    what: "cannot delete",
                    path,
                    source,
                });
            }
        }
        Ok(records.remove(handle))
    }

    /// The record of `handle`.
    pub fn get(&self, handle: &str) -> Option<EndpointRecord> {
        self.lock().get(handle).cloned()
    }

    /// Every record, by handle.
    pub fn all(&self) -> Vec<EndpointRecord> {
        self.lock().values().cloned().collect()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no endpoint is recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(handle: &str, ip: &str) -> EndpointRecord {
        EndpointRecord {
            handle: handle.into(),
            namespace: "default".into(),
            pod: "web".into(),
            container_id: handle.rsplit('.').next().unwrap().into(),
            netns: "/var/run/netns/cni-1".into(),
            ifname: "eth0".into(),
            host_ifname: "cali0123456789a".into(),
            host_ifindex: Some(7),
            mac: "0a:58:0a:f4:00:05".into(),
            ips: vec![ip.parse().unwrap()],
            created_unix: 1_700_000_000,
            terminating: false,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ginger-ep-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn records_survive_a_reload() {
        let dir = temp_dir("reload");
        let reg = EndpointRegistry::open(&dir).unwrap();
        assert!(reg.is_empty());
        reg.put(record("k8s-pod-network.aaa", "10.244.0.5"))
            .unwrap();
        reg.put(record("k8s-pod-network.bbb", "10.244.0.6"))
            .unwrap();
        // Replacing keeps one record.
        reg.put(record("k8s-pod-network.bbb", "10.244.0.7"))
            .unwrap();
        assert_eq!(
            reg.remove("k8s-pod-network.aaa").unwrap().unwrap().pod,
            "web"
        );
        assert_eq!(
            reg.remove("k8s-pod-network.aaa").unwrap(),
            None,
            "idempotent"
        );
        drop(reg);
        let again = EndpointRegistry::open(&dir).unwrap();
        assert_eq!(
            again.all(),
            vec![record("k8s-pod-network.bbb", "10.244.0.7")]
        );
        assert_eq!(again.len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn odd_handles_get_safe_file_names() {
        assert_eq!(
            file_name("k8s-pod-network.abc_1"),
            "k8s-pod-network.abc_1.json"
        );
        assert_eq!(file_name("../etc/passwd"), "%2E.%2Fetc%2Fpasswd.json");
        assert_eq!(file_name(".hidden"), "%2Ehidden.json");
        assert_eq!(file_name("a b"), "a%20b.json");
        let dir = temp_dir("odd");
        let reg = EndpointRegistry::open(&dir).unwrap();
        reg.put(record("net/../x", "10.0.0.1")).unwrap();
        drop(reg);
        let again = EndpointRegistry::open(&dir).unwrap();
        assert_eq!(again.get("net/../x").unwrap().handle, "net/../x");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_stops_the_load_and_leftover_temp_files_go() {
        let dir = temp_dir("corrupt");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".123.0.tmp"), b"half a reco").unwrap();
        let reg = EndpointRegistry::open(&dir).unwrap();
        assert!(reg.is_empty());
        assert!(!dir.join(".123.0.tmp").exists());
        fs::write(dir.join("x.json"), b"{not json").unwrap();
        let err = EndpointRegistry::open(&dir).unwrap_err();
        assert!(err.to_string().contains("x.json is unusable"), "{err}");
        // A record stored under another handle's name is refused too.
        let mut bytes = serde_json::to_vec(&record("net.y", "10.0.0.2")).unwrap();
        bytes.push(b'\n');
        fs::write(dir.join("x.json"), bytes).unwrap();
        let err = EndpointRegistry::open(&dir).unwrap_err();
        assert!(err.to_string().contains("holds handle \"net.y\""), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
