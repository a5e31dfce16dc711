//! Issue 3, "How it must be shown", sixth point: two nodes (two namespaces joined by a veth,
//! BGP mesh up) run `ginger-node` over one shared IPAM state directory and one pool of exactly
//! four /29 blocks; pods come from the real `ginger` binary. Concurrent ADDs on both nodes never
//! hand out an address twice and give each node one block; a node whose block is full claims a
//! second; while a block is free a node claims it rather than borrow; only when every block is
//! taken does a node borrow an address from another node's block — which `ipam show --ip`
//! shows in use by that node's pod, and which the borrowing node originates as a /32
//! (calico.md §4.4) and the other node learns. Run as root.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use agent::ctl::protocol::BlockUsage;
use e2e::pods::{Pod, PodBinaries, PodNode, neighbours, pod_cluster, routes_v4};
use e2e::{Error, Netns, Result, Veth, scenario, wait_until, write_cluster};
use ipnet::IpNet;

/// Four blocks of eight addresses.
const POOL: &str = "10.250.0.0/27";
const BLOCK: u8 = 29;
const PER_BLOCK: usize = 8;
const T: Duration = Duration::from_secs(30);

fn fail(what: impl Into<String>) -> Error {
    Error::Invalid {
        what: "state",
        value: String::new(),
        reason: what.into(),
    }
}

/// ADD `count` pods named `<prefix>-<i>` on `node`, one after the other.
fn add_pods(node: &PodNode, prefix: &str, count: usize) -> Result<Vec<Pod>> {
    (0..count)
        .map(|i| add_pod(node, &format!("{prefix}-{i}")))
        .collect()
}

fn add_pod(node: &PodNode, name: &str) -> Result<Pod> {
    let mut pod = Pod::create("default", name)?;
    node.add(&mut pod)?.result()?;
    Ok(pod)
}

/// ADD `count` pods on each node, all at once (one thread per pod).
fn add_everywhere_at_once(nodes: [&PodNode; 2], count: usize) -> Result<[Vec<Pod>; 2]> {
    thread::scope(|s| {
        let handles: Vec<Vec<_>> = nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                (0..count)
                    .map(|i| s.spawn(move || add_pod(node, &format!("n{n}-{i}"))))
                    .collect()
            })
            .collect();
        let mut out = [Vec::new(), Vec::new()];
        for (n, hs) in handles.into_iter().enumerate() {
            for h in hs {
                out[n].push(h.join().expect("ADD thread")?);
            }
        }
        Ok(out)
    })
}

fn blocks(node: &PodNode) -> Result<Vec<BlockUsage>> {
    let report = node.ipam()?;
    Ok(report.pools.into_iter().flat_map(|p| p.blocks).collect())
}

fn affine_to<'a>(blocks: &'a [BlockUsage], node: &str) -> Vec<&'a BlockUsage> {
    blocks
        .iter()
        .filter(|b| b.affinity.as_deref() == Some(node))
        .collect()
}

fn block_of(blocks: &[BlockUsage], ip: IpAddr) -> Option<&BlockUsage> {
    blocks.iter().find(|b| b.cidr.contains(&ip))
}

fn ips(pods: &[Pod]) -> Vec<IpAddr> {
    pods.iter().map(|p| p.addresses()[0]).collect()
}

/// The blackholes felix installed in `ns` (one per block the node owns).
fn blackholes(ns: &Netns) -> Result<BTreeSet<String>> {
    Ok(routes_v4(ns)?
        .into_iter()
        .filter(|r| r["type"] == "blackhole")
        .filter_map(|r| r["dst"].as_str().map(str::to_string))
        .collect())
}

#[test]
fn two_nodes_share_a_pool_without_overlap_and_borrow_last() {
    scenario("pods-blocks", |dir| {
        let (ns1, ns2) = (Netns::new("node1")?, Netns::new("node2")?);
        Veth::new(&ns1, "eth0", &ns2, "eth0")
            .addr_a("10.99.0.1/24")
            .addr_b("10.99.0.2/24")
            .create()?;
        let yaml = pod_cluster(
            &[("node-1", "10.99.0.1/24"), ("node-2", "10.99.0.2/24")],
            &[("small", POOL, BLOCK)],
            true,
        );
        let cluster = write_cluster(dir.path(), "cluster.yaml", &yaml)?;
        let shared = dir.subdir("shared-state")?;
        let shared = shared.to_str().unwrap_or_default();
        let extra = ["--state-dir", shared];
        let bins = PodBinaries::built()?;
        let n1 = PodNode::start(ns1, dir.path(), bins.clone(), &cluster, "node-1", &extra)?;
        let n2 = PodNode::start(ns2, dir.path(), bins, &cluster, "node-2", &extra)?;
        n1.agent()?
            .wait_established("10.99.0.2".parse().unwrap(), T)?;

        // 16 ADDs at once, 8 per node: 16 distinct addresses, exactly one block each.
        let [first1, first2] = add_everywhere_at_once([&n1, &n2], PER_BLOCK)?;
        let all: BTreeSet<IpAddr> = ips(&first1).into_iter().chain(ips(&first2)).collect();
        assert_eq!(all.len(), 2 * PER_BLOCK, "an address was handed out twice");
        let b = blocks(&n1)?;
        assert_eq!(b, blocks(&n2)?, "the nodes see different stores");
        let (own1, own2) = (affine_to(&b, "node-1"), affine_to(&b, "node-2"));
        assert_eq!((own1.len(), own2.len()), (1, 1), "{b:?}");
        assert_eq!((own1[0].in_use, own2[0].in_use), (8, 8), "{b:?}");
        assert!(ips(&first1).iter().all(|ip| own1[0].cidr.contains(ip)));
        assert!(ips(&first2).iter().all(|ip| own2[0].cidr.contains(ip)));
        let (block1, block2) = (own1[0].cidr, own2[0].cidr);

        // node-1's block is full: its next pod opens a second block.
        let second1 = add_pods(&n1, "a2", 1)?;
        let b = blocks(&n1)?;
        let new1 = block_of(&b, second1[0].addresses()[0]).expect("a block");
        assert_eq!(new1.affinity.as_deref(), Some("node-1"));
        assert_ne!(new1.cidr, block1);
        let block1b = new1.cidr;

        // node-2's block is full and one block is still free: it claims that block rather
        // than borrow from node-1's half-empty one.
        let second2 = add_pods(&n2, "b2", PER_BLOCK)?;
        let b = blocks(&n2)?;
        let mut block2b: Option<IpNet> = None;
        for ip in ips(&second2) {
            let blk = block_of(&b, ip).expect("a block");
            assert_eq!(
                blk.affinity.as_deref(),
                Some("node-2"),
                "{ip} borrowed too early: {b:?}"
            );
            assert_ne!(blk.cidr, block2);
            assert!(block2b.is_none_or(|c| c == blk.cidr));
            block2b = Some(blk.cidr);
        }
        let block2b = block2b.expect("node-2's second block");
        assert_eq!(b.len(), 4, "{b:?}");
        assert!(b.iter().all(|b| b.affinity.is_some()), "{b:?}");

        // No block is free any more: node-2 borrows from the only block with room, node-1's.
        let borrower = add_pods(&n2, "borrow", 1)?;
        let borrowed = borrower[0].addresses()[0];
        assert!(block1b.contains(&borrowed), "{borrowed} not from {block1b}");
        let b = blocks(&n2)?;
        assert_eq!(
            block_of(&b, borrowed).unwrap().affinity.as_deref(),
            Some("node-1")
        );
        let (code, shown, _) =
            n2.agent()?
                .gingerctl(&["ipam", "show", "--ip", &borrowed.to_string()])?;
        assert_eq!(code, 0);
        assert!(
            shown.starts_with(&format!("IP {borrowed} is in use\n")),
            "{shown}"
        );
        assert!(shown.contains("  node: node-2\n"), "{shown}");
        assert!(shown.contains("  pod: borrow-0\n"), "{shown}");
        assert!(
            shown.contains(&format!(
                "Handle ID: {}\n",
                borrower[0].reference().handle("k8s-pod-network")
            )),
            "{shown}"
        );

        // The dataplane follows ownership: a blackhole per own block; the borrowed pod is
        // routed on node-2 with its neighbour entry; node-2 originates the borrowed /32 and
        // node-1 learns it from the mesh.
        let want1: BTreeSet<String> = [block1, block1b].iter().map(|c| c.to_string()).collect();
        let want2: BTreeSet<String> = [block2, block2b].iter().map(|c| c.to_string()).collect();
        wait_until(T, "a blackhole per owned block", || {
            let (h1, h2) = (blackholes(n1.netns())?, blackholes(n2.netns())?);
            if h1 == want1 && h2 == want2 {
                Ok(())
            } else {
                Err(fail(format!("node-1 {h1:?}, node-2 {h2:?}")))
            }
        })?;
        let link = borrower[0].host_link().unwrap();
        wait_until(T, "the borrowed pod's neighbour entry on node-2", || {
            let n = neighbours(n2.netns())?;
            if n.iter()
                .any(|n| n["dst"] == borrowed.to_string() && n["dev"] == link.as_str())
            {
                Ok(())
            } else {
                Err(fail(format!("{n:?}")))
            }
        })?;
        let host32 = IpNet::from(borrowed);
        n2.agent()?.wait_route(host32, T, &|_| true)?;
        n1.agent()?.wait_route(host32, T, &|r| {
            r.paths
                .iter()
                .any(|p| p.best && p.next_hop == Some("10.99.0.2".parse().unwrap()))
        })?;

        // Releasing the borrowed address withdraws the /32 and frees it in node-1's block.
        n2.del(&borrower[0])?.result()?;
        assert!(n1.ipam_ip(borrowed)?.allocation.is_none());
        n1.agent()?.wait_no_route(host32, T)?;
        Ok(())
    });
}
