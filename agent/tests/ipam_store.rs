//! The file block store on a real directory: compare-and-swap rules, and the proof that
//! allocators sharing one directory — threads of one process and separate processes, each as
//! its own node with its own `Ipam` — never hand out one address twice (calico.md §2.6: every
//! write is compare-and-swap).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};

use agent::datastore::model::{AllowedUse, AssignmentMode, IpPool, Metadata};
use agent::ipam::allocator::{AssignArgs, Blocks};
use agent::ipam::{Block, BlockStore, FileStore, IpFamily, Ipam, IpamSettings, StoreError};
use agent::selector::Selector;
use common::TempDir;

/// Set in a child process: the IPAM directory to allocate from.
const CHILD_DIR: &str = "GINGER_IPAM_CHILD_DIR";
/// Set in a child process: its node name.
const CHILD_NODE: &str = "GINGER_IPAM_CHILD_NODE";
/// Addresses each allocator asks for in the process test.
const PER_PROCESS: usize = 80;

fn settings(node: &str) -> IpamSettings {
    IpamSettings {
        node: node.into(),
        labels: BTreeMap::new(),
        // 256 addresses in 16 blocks of 16.
        pools: vec![IpPool {
            metadata: Metadata {
                name: "lab".into(),
                ..Metadata::default()
            },
            cidr: "10.50.0.0/24".parse().unwrap(),
            block_size: 28,
            disabled: false,
            disable_bgp_export: false,
            node_selector: Selector::all(),
            nat_outgoing: false,
            allowed_uses: vec![AllowedUse::Workload],
            assignment_mode: AssignmentMode::Automatic,
        }],
        block_grace: 0,
    }
}

fn args(handle: &str) -> AssignArgs {
    AssignArgs {
        handle: handle.into(),
        namespace: "lab".into(),
        pod: handle.into(),
        families: vec![IpFamily::V4],
    }
}

/// Allocate `count` addresses as `node` from the store in `dir`; handle = `<node>.<i>`.
fn allocate(dir: &Path, node: &str, count: usize) -> Vec<(String, IpAddr)> {
    let ipam = Ipam::new(FileStore::open(dir).unwrap(), settings(node));
    (0..count)
        .map(|i| {
            let handle = format!("{node}.{i}");
            let got = ipam.assign(&args(&handle), 1_000).unwrap();
            (handle, got.addresses[0].0.addr())
        })
        .collect()
}

/// Every allocation in the store, by address, and a check that blocks do not overlap.
fn stored(dir: &Path) -> BTreeMap<IpAddr, String> {
    let blocks: Blocks = FileStore::open(dir)
        .unwrap()
        .list()
        .unwrap()
        .into_iter()
        .map(|b| (b.cidr, b))
        .collect();
    let cidrs: Vec<_> = blocks.keys().collect();
    for (i, a) in cidrs.iter().enumerate() {
        for b in &cidrs[i + 1..] {
            assert!(!a.contains(*b) && !b.contains(*a), "{a} overlaps {b}");
        }
    }
    let mut by_ip = BTreeMap::new();
    for b in blocks.values() {
        b.validate().unwrap();
        for (&o, a) in &b.allocations {
            assert!(by_ip.insert(b.address(o), a.handle.clone()).is_none());
        }
    }
    by_ip
}

/// Every returned address is distinct and the store agrees on who holds it.
fn assert_no_double_allocation(dir: &Path, results: &[(String, IpAddr)]) {
    let distinct: BTreeSet<IpAddr> = results.iter().map(|(_, ip)| *ip).collect();
    assert_eq!(
        distinct.len(),
        results.len(),
        "an address was handed out twice"
    );
    let store = stored(dir);
    assert_eq!(store.len(), results.len());
    for (handle, ip) in results {
        assert_eq!(store.get(ip), Some(handle), "store disagrees about {ip}");
    }
}

#[test]
fn create_update_delete_are_compare_and_swap() {
    let dir = TempDir::new("ipam-cas");
    let a = FileStore::open(dir.path()).unwrap();
    let b = FileStore::open(dir.path()).unwrap();
    let block = Block::new("10.0.0.0/26".parse().unwrap(), Some("n1"), 5);
    let s0 = a.create(&block).unwrap().sequence;
    assert!(s0 > 1);
    assert!(matches!(
        b.create(&block),
        Err(StoreError::AlreadyExists { .. })
    ));
    // Both read s0; b writes first, a's write is then stale.
    let mut via_b = b.list().unwrap().pop().unwrap();
    let mut via_a = a.list().unwrap().pop().unwrap();
    assert_eq!((via_a.sequence, via_b.sequence), (s0, s0));
    via_b.affinity = Some("n2".into());
    assert_eq!(b.update(&via_b).unwrap().sequence, s0 + 1);
    via_a.affinity = Some("n3".into());
    let err = a.update(&via_a).unwrap_err();
    match &err {
        StoreError::Conflict {
            expected, found, ..
        } => assert_eq!((*expected, *found), (s0, Some(s0 + 1))),
        other => panic!("{other}"),
    }
    assert!(err.is_conflict());
    assert_eq!(a.list().unwrap()[0].affinity.as_deref(), Some("n2"));
    // One file per block: the old version is gone.
    assert_eq!(
        std::fs::read_dir(dir.path().join("blocks"))
            .unwrap()
            .count(),
        1
    );
    // A stale delete fails too; a current one works; then updates find no block.
    assert!(a.delete(&via_a).unwrap_err().is_conflict());
    let current = a.list().unwrap().pop().unwrap();
    a.delete(&current).unwrap();
    assert!(a.list().unwrap().is_empty());
    let err = b.update(&current).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { found: None, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("found no block"), "{err}");
    // Claimed again, the block starts above every number it had before: a reader holding the
    // old block cannot overwrite the new one (no ABA).
    let again = b.create(&block).unwrap();
    assert!(again.sequence > current.sequence);
    assert!(a.update(&current).unwrap_err().is_conflict());
}

#[test]
fn listing_skips_temporary_files_prunes_leftovers_and_refuses_corrupt_ones() {
    let dir = TempDir::new("ipam-corrupt");
    let store = FileStore::open(dir.path()).unwrap();
    let stored = store
        .create(&Block::new("10.0.0.0/26".parse().unwrap(), Some("n1"), 5))
        .unwrap();
    let blocks_dir = dir.path().join("blocks");
    let current = blocks_dir.join(format!("10-0-0-0-26.{}.json", stored.sequence));
    std::fs::write(blocks_dir.join(".10-0-0-64-26.77.0.tmp"), b"{half").unwrap();
    std::fs::write(blocks_dir.join("README"), b"not a block").unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    // A crash between writing version n+1 and unlinking version n leaves both: the newest
    // counts and the listing prunes the older one.
    let mut newer = stored.clone();
    newer.sequence += 1;
    newer.affinity = Some("n2".into());
    let newer_path = blocks_dir.join(format!("10-0-0-0-26.{}.json", newer.sequence));
    std::fs::write(&newer_path, serde_json::to_vec(&newer).unwrap()).unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed, vec![newer.clone()]);
    assert!(!current.exists(), "the older version was pruned");
    assert!(newer_path.exists());
    // Not JSON.
    std::fs::write(blocks_dir.join("10-0-0-64-26.1.json"), b"{\"cidr\":").unwrap();
    let err = store.list().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("10-0-0-64-26.1.json is unusable"),
        "{err}"
    );
    // A valid block under another block's name.
    std::fs::write(
        blocks_dir.join("10-0-0-64-26.1.json"),
        std::fs::read(&newer_path).unwrap(),
    )
    .unwrap();
    let err = store.list().unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "holds block 10.0.0.0/26 at sequence {}, which belongs in 10-0-0-0-26.{}.json",
            newer.sequence, newer.sequence
        )),
        "{err}"
    );
}

#[test]
fn concurrent_nodes_in_threads_never_share_an_address() {
    let dir = TempDir::new("ipam-threads");
    let nodes = 8;
    let per_node = 30; // 240 of 256: every block gets claimed and nodes end up borrowing.
    let start = Arc::new(Barrier::new(nodes));
    let results: Vec<(String, IpAddr)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..nodes)
            .map(|n| {
                let start = start.clone();
                let dir = dir.path();
                scope.spawn(move || {
                    start.wait();
                    allocate(dir, &format!("node-{n}"), per_node)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(results.len(), nodes * per_node);
    assert_no_double_allocation(dir.path(), &results);
    // Every block was claimed by exactly one node.
    let blocks = FileStore::open(dir.path()).unwrap().list().unwrap();
    assert_eq!(blocks.len(), 16);
    assert!(blocks.iter().all(|b| b.affinity.is_some()));
}

#[test]
fn concurrent_nodes_in_processes_never_share_an_address() {
    let dir = TempDir::new("ipam-procs");
    // Two children and this process allocate at once, each as its own node.
    let children: Vec<_> = ["node-a", "node-b"]
        .iter()
        .map(|node| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "allocator_process", "--nocapture"])
                .env(CHILD_DIR, dir.path())
                .env(CHILD_NODE, node)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut results = allocate(dir.path(), "node-parent", PER_PROCESS);
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {:?}", out.status);
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<(String, IpAddr)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("ALLOC "))
            .map(|l| {
                let (h, ip) = l.split_once(' ').unwrap();
                (h.to_string(), ip.parse().unwrap())
            })
            .collect();
        assert_eq!(lines.len(), PER_PROCESS, "child output: {text}");
        results.extend(lines);
    }
    assert_eq!(results.len(), 3 * PER_PROCESS);
    assert_no_double_allocation(dir.path(), &results);
}

/// The child side of the process test (run by it with `CHILD_DIR` set). Run on its own, it
/// allocates alone in a fresh directory and checks the result the same way.
#[test]
fn allocator_process() {
    match (std::env::var_os(CHILD_DIR), std::env::var(CHILD_NODE)) {
        (Some(dir), Ok(node)) => {
            for (handle, ip) in allocate(Path::new(&dir), &node, PER_PROCESS) {
                println!("ALLOC {handle} {ip}");
            }
        }
        _ => {
            let dir = TempDir::new("ipam-alone");
            let results = allocate(dir.path(), "node-alone", PER_PROCESS);
            assert_no_double_allocation(dir.path(), &results);
            // Alone, a node never borrows: its addresses fill its own blocks in order.
            let first: Vec<String> = results
                .iter()
                .take(3)
                .map(|(_, ip)| ip.to_string())
                .collect();
            assert_eq!(first, ["10.50.0.0", "10.50.0.1", "10.50.0.2"]);
        }
    }
}
