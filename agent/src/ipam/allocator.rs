//! Calico's allocation rules as pure functions over a snapshot of the blocks (`calico.md` §2.6):
//! which address a request gets, which blocks a release, a sweep or a garbage collection
//! rewrites, and what `ipam show` counts.
//!
//! Owns: pool eligibility (`disabled`, `nodeSelector`, `allowedUses`, `assignmentMode`), the
//! order "this node's blocks → claim a free block → reclaim a long-empty block of another
//! node → borrow an address from another node's block", release, empty-block release and leak
//! detection. Must not: do I/O or read the clock; the caller passes `now` (Unix seconds) and
//! applies the returned `BlockWrite`s through a `BlockStore`, re-planning on a conflict.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::block::{Allocation, Block};
use crate::datastore::model::{AllowedUse, AssignmentMode, IpPool};

/// Blocks by CIDR.
pub type Blocks = BTreeMap<IpNet, Block>;

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of a prefix.
    pub fn of(net: &IpNet) -> IpFamily {
        match net {
            IpNet::V4(_) => IpFamily::V4,
            IpNet::V6(_) => IpFamily::V6,
        }
    }

    /// The family of an address.
    pub fn of_addr(ip: &IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// The node asking and the pools it may use.
#[derive(Clone, Copy, Debug)]
pub struct NodeContext<'a> {
    /// Node name.
    pub node: &'a str,
    /// The node's labels (for pools' `nodeSelector`).
    pub labels: &'a BTreeMap<String, String>,
    /// Every IPPool of the cluster.
    pub pools: &'a [IpPool],
}

/// One pod's address request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignArgs {
    /// `<network>.<containerID>`.
    pub handle: String,
    /// Pod namespace (empty outside Kubernetes).
    pub namespace: String,
    /// Pod name (empty outside Kubernetes).
    pub pod: String,
    /// Families wanted, each at most once.
    pub families: Vec<IpFamily>,
}

/// A change to one block, to apply with compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockWrite {
    /// A block that does not exist yet (a claim).
    Create(Block),
    /// The block as it should be; its `sequence` is the one it was read at.
    Update(Block),
    /// Remove the block (read at its `sequence`).
    Delete(Block),
}

impl BlockWrite {
    /// The block written.
    pub fn block(&self) -> &Block {
        match self {
            BlockWrite::Create(b) | BlockWrite::Update(b) | BlockWrite::Delete(b) => b,
        }
    }
}

/// How an address was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The handle already held it (a repeated ADD).
    Existing,
    /// From a block affine to this node.
    Affine,
    /// From a block this node just claimed.
    Claimed,
    /// From another node's long-empty block this node took over.
    Reclaimed,
    /// Borrowed from another node's block.
    Borrowed,
}

/// What `plan_assign` decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignPlan {
    /// The addresses, each with its block's prefix length, in the order of the families asked.
    pub addresses: Vec<(IpNet, Source)>,
    /// The writes that make it so (empty when the handle already held everything).
    pub writes: Vec<BlockWrite>,
}

/// Why no address can be given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    /// No pool of the family may be used by this node.
    #[error("no {family} IP pool can be used by node {node}: {detail}")]
    NoPool {
        /// The family asked.
        family: IpFamily,
        /// The node.
        node: String,
        /// The pools of the family and why each is out, or that there are none.
        detail: String,
    },
    /// Every usable pool is full and no block anywhere has a free address.
    #[error(
        "no {family} address left for node {node}: pool{} {} {} full and no other node's block \
         has a free address",
        if pools.len() == 1 { "" } else { "s" },
        pools.join(", "),
        if pools.len() == 1 { "is" } else { "are" }
    )]
    Exhausted {
        /// The family asked.
        family: IpFamily,
        /// The node.
        node: String,
        /// The usable pools, as `name (cidr)`.
        pools: Vec<String>,
    },
}

/// Why `pool` cannot give workload addresses to a node with `labels`, if it cannot.
pub fn pool_refusal(pool: &IpPool, labels: &BTreeMap<String, String>) -> Option<String> {
    if pool.disabled {
        Some("disabled".to_string())
    } else if !pool.allowed_uses.contains(&AllowedUse::Workload) {
        Some("allowedUses has no Workload".to_string())
    } else if pool.assignment_mode == AssignmentMode::Manual {
        Some("assignmentMode is Manual".to_string())
    } else if !pool.node_selector.matches(labels) {
        Some(format!(
            "nodeSelector {:?} does not match",
            pool.node_selector.to_string()
        ))
    } else {
        None
    }
}

/// The pools of `family` the node may allocate from, in name order.
pub fn eligible_pools<'a>(ctx: &NodeContext<'a>, family: IpFamily) -> Vec<&'a IpPool> {
    ctx.pools
        .iter()
        .filter(|p| IpFamily::of(&p.cidr) == family && pool_refusal(p, ctx.labels).is_none())
        .collect()
}

fn no_pool(ctx: &NodeContext<'_>, family: IpFamily) -> AssignError {
    let refused: Vec<String> = ctx
        .pools
        .iter()
        .filter(|p| IpFamily::of(&p.cidr) == family)
        .filter_map(|p| pool_refusal(p, ctx.labels).map(|why| format!("{} ({why})", p.name())))
        .collect();
    let detail = if refused.is_empty() {
        format!("the cluster has no {family} IPPool")
    } else {
        refused.join(", ")
    };
    AssignError::NoPool {
        family,
        node: ctx.node.to_string(),
        detail,
    }
}

/// Half-open address ranges of existing blocks of one family, sorted, for overlap tests.
struct Taken(Vec<(u128, u128)>);

fn range(net: &IpNet) -> (u128, u128) {
    let (start, bits) = match net.trunc() {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            32 - u32::from(n.prefix_len()),
        ),
        IpNet::V6(n) => (u128::from(n.network()), 128 - u32::from(n.prefix_len())),
    };
    let size = if bits >= 128 {
        u128::MAX
    } else {
        1u128 << bits
    };
    (start, start.saturating_add(size))
}

impl Taken {
    fn new(blocks: &Blocks, family: IpFamily) -> Taken {
        let mut ranges: Vec<(u128, u128)> = blocks
            .keys()
            .filter(|c| IpFamily::of(c) == family)
            .map(range)
            .collect();
        ranges.sort_unstable();
        Taken(ranges)
    }

    fn overlaps(&self, net: &IpNet) -> bool {
        let (start, end) = range(net);
        // The first range starting at or after `end` cannot overlap, nor can any after it;
        // blocks never overlap each other, so only the range just before can.
        let idx = self.0.partition_point(|&(s, _)| s < end);
        idx > 0 && self.0[idx - 1].1 > start
    }
}

fn allocation(args: &AssignArgs, node: &str, now: u64) -> Allocation {
    Allocation {
        handle: args.handle.clone(),
        node: node.to_string(),
        namespace: args.namespace.clone(),
        pod: args.pod.clone(),
        allocated_unix: now,
    }
}

fn in_pools(block: &Block, pools: &[&IpPool]) -> bool {
    pools.iter().any(|p| p.cidr.contains(&block.cidr))
}

/// The addresses `handle` holds, with their blocks' prefix lengths.
pub fn addresses_of(blocks: &Blocks, handle: &str) -> Vec<IpNet> {
    blocks
        .values()
        .flat_map(|b| {
            let len = b.cidr.prefix_len();
            b.addresses_of(handle)
                .into_iter()
                .filter_map(move |ip| IpNet::new(ip, len).ok())
        })
        .collect()
}

/// Decide the addresses for `args` (Calico's AutoAssign): for each family, the handle's
/// existing address, else a free address of a block affine to this node, else a newly
/// claimed block, else a block another node left empty for `reclaim_after` seconds (0: never),
/// else — only then — a free address borrowed from another node's block.
pub fn plan_assign(
    blocks: &Blocks,
    ctx: &NodeContext<'_>,
    args: &AssignArgs,
    now: u64,
    reclaim_after: u64,
) -> Result<AssignPlan, AssignError> {
    let held = addresses_of(blocks, &args.handle);
    let mut addresses = Vec::new();
    let mut writes = Vec::new();
    for &family in &args.families {
        if let Some(net) = held.iter().find(|n| IpFamily::of(n) == family) {
            addresses.push((*net, Source::Existing));
            continue;
        }
        let pools = eligible_pools(ctx, family);
        if pools.is_empty() {
            return Err(no_pool(ctx, family));
        }
        let alloc = allocation(args, ctx.node, now);
        let (mut block, write_is_create, source) =
            match choose_block(blocks, ctx.node, &pools, now, reclaim_after) {
                Some(choice) => choice,
                None => {
                    return Err(AssignError::Exhausted {
                        family,
                        node: ctx.node.to_string(),
                        pools: pools
                            .iter()
                            .map(|p| format!("{} ({})", p.name(), p.cidr))
                            .collect(),
                    });
                }
            };
        // Chosen blocks always have a free address.
        let Some(ip) = block.assign(alloc) else {
            continue;
        };
        if let Ok(net) = IpNet::new(ip, block.cidr.prefix_len()) {
            addresses.push((net, source));
        }
        writes.push(if write_is_create {
            BlockWrite::Create(block)
        } else {
            BlockWrite::Update(block)
        });
    }
    Ok(AssignPlan { addresses, writes })
}

/// The block to allocate from: (block to modify, is a new block, how it was found).
fn choose_block(
    blocks: &Blocks,
    node: &str,
    pools: &[&IpPool],
    now: u64,
    reclaim_after: u64,
) -> Option<(Block, bool, Source)> {
    let usable = |b: &&Block| in_pools(b, pools);
    if let Some(b) = blocks
        .values()
        .filter(usable)
        .find(|b| b.is_affine_to(node) && b.has_free())
    {
        return Some((b.clone(), false, Source::Affine));
    }
    let family = IpFamily::of(&pools[0].cidr);
    let taken = Taken::new(blocks, family);
    for pool in pools {
        let Ok(candidates) = pool.cidr.trunc().subnets(pool.block_size) else {
            continue;
        };
        if let Some(free) = candidates.into_iter().find(|c| !taken.overlaps(c)) {
            return Some((Block::new(free, Some(node), now), true, Source::Claimed));
        }
    }
    if reclaim_after > 0 {
        let reclaimable = blocks.values().filter(usable).find(|b| {
            b.affinity.is_some()
                && !b.is_affine_to(node)
                && b.is_empty()
                && b.empty_since_unix
                    .is_some_and(|t| now >= t.saturating_add(reclaim_after))
        });
        if let Some(b) = reclaimable {
            let mut b = b.clone();
            b.affinity = Some(node.to_string());
            b.claimed_unix = now;
            return Some((b, false, Source::Reclaimed));
        }
    }
    blocks
        .values()
        .filter(usable)
        .find(|b| !b.is_affine_to(node) && b.has_free())
        .map(|b| (b.clone(), false, Source::Borrowed))
}

/// What releasing `handle` rewrites, and the addresses it frees. A block without affinity
/// that empties is deleted (Calico); an affine block stays with its node.
pub fn plan_release(blocks: &Blocks, handle: &str, now: u64) -> (Vec<BlockWrite>, Vec<IpAddr>) {
    let mut writes = Vec::new();
    let mut freed = Vec::new();
    for block in blocks.values() {
        if block.allocations.values().all(|a| a.handle != handle) {
            continue;
        }
        let mut b = block.clone();
        freed.extend(b.release(handle, now));
        writes.push(if b.is_empty() && b.affinity.is_none() {
            BlockWrite::Delete(block.clone())
        } else {
            BlockWrite::Update(b)
        });
    }
    (writes, freed)
}

/// Inputs of a sweep (periodic, and at start-up).
#[derive(Clone, Copy, Debug)]
pub struct SweepInput<'a> {
    /// This node.
    pub node: &'a str,
    /// Unix seconds.
    pub now: u64,
    /// An allocation of this node with no live handle is released this many seconds after it
    /// was made (room for an ADD in flight).
    pub leak_grace: u64,
    /// An empty block of this node is released after staying empty this long (0: never).
    pub block_grace: u64,
    /// Handles of pods this node knows (endpoints, and ADDs in flight).
    pub live: &'a BTreeSet<String>,
    /// Handles whose pod is known to be gone (its host link vanished): released at once.
    pub dead: &'a BTreeSet<String>,
}

/// What a sweep should release.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepPlan {
    /// Handles of this node's allocations to release, sorted.
    pub leaked: Vec<String>,
    /// Empty blocks of this node to delete.
    pub empty_blocks: Vec<Block>,
}

/// Find this node's leaked allocations and the empty blocks it should give back. Like
/// Calico's GC, a node keeps at least one block per family even when empty, so an idle node
/// does not churn claims.
pub fn plan_sweep(blocks: &Blocks, input: &SweepInput<'_>) -> SweepPlan {
    let mut leaked = BTreeSet::new();
    for a in blocks.values().flat_map(|b| b.allocations.values()) {
        if a.node != input.node || input.live.contains(&a.handle) {
            continue;
        }
        if input.dead.contains(&a.handle)
            || input.now >= a.allocated_unix.saturating_add(input.leak_grace)
        {
            leaked.insert(a.handle.clone());
        }
    }
    let mut empty_blocks = Vec::new();
    if input.block_grace > 0 {
        for family in [IpFamily::V4, IpFamily::V6] {
            let own: Vec<&Block> = blocks
                .values()
                .filter(|b| IpFamily::of(&b.cidr) == family && b.is_affine_to(input.node))
                .collect();
            // Blocks the pending leak releases will empty count as non-empty here: they are
            // given back on a later sweep, once their grace has run.
            let mut expired: Vec<&Block> = own
                .iter()
                .copied()
                .filter(|b| {
                    b.is_empty()
                        && b.empty_since_unix
                            .is_some_and(|t| input.now >= t.saturating_add(input.block_grace))
                })
                .collect();
            let mut kept = own.len();
            // Give back the highest blocks first, keep the lowest.
            while kept > 1 {
                let Some(b) = expired.pop() else { break };
                empty_blocks.push(b.clone());
                kept -= 1;
            }
        }
    }
    SweepPlan {
        leaked: leaked.into_iter().collect(),
        empty_blocks,
    }
}

/// This node's share of the blocks: what it owns (exported as aggregates, blackholed) and the
/// addresses it borrowed from other nodes' blocks (exported as /32 or /128).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeBlocks {
    /// Blocks affine to this node.
    pub owned: BTreeSet<IpNet>,
    /// This node's addresses in blocks affine to another node or to none.
    pub borrowed: BTreeSet<IpAddr>,
    /// Every address this node allocated, by family.
    pub allocated: BTreeMap<IpFamily, u64>,
}

/// This node's blocks and borrowed addresses.
pub fn node_blocks(blocks: &Blocks, node: &str) -> NodeBlocks {
    let mut view = NodeBlocks::default();
    for b in blocks.values() {
        if b.is_affine_to(node) {
            view.owned.insert(b.cidr);
        }
        for (&o, a) in &b.allocations {
            if a.node != node {
                continue;
            }
            *view.allocated.entry(IpFamily::of(&b.cidr)).or_default() += 1;
            if !b.is_affine_to(node) {
                view.borrowed.insert(b.address(o));
            }
        }
    }
    view
}

/// Handles of this node's allocations.
pub fn handles_of_node(blocks: &Blocks, node: &str) -> BTreeSet<String> {
    blocks
        .values()
        .flat_map(|b| b.allocations.values())
        .filter(|a| a.node == node)
        .map(|a| a.handle.clone())
        .collect()
}

/// The block holding `ip` and its allocation, if `ip` is allocated.
pub fn find(blocks: &Blocks, ip: IpAddr) -> Option<(&Block, &Allocation)> {
    blocks
        .values()
        .find(|b| b.cidr.contains(&ip))
        .and_then(|b| b.holder(ip).map(|a| (b, a)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::datastore::model::Metadata;
    use crate::selector::Selector;

    const NOW: u64 = 1_000_000;

    fn pool(name: &str, cidr: &str, block_size: u8) -> IpPool {
        IpPool {
            metadata: Metadata {
                name: name.into(),
                ..Metadata::default()
            },
            cidr: cidr.parse().unwrap(),
            block_size,
            disabled: false,
            disable_bgp_export: false,
            node_selector: Selector::parse("all()").unwrap(),
            nat_outgoing: false,
            allowed_uses: vec![AllowedUse::Workload, AllowedUse::Tunnel],
            assignment_mode: AssignmentMode::Automatic,
        }
    }

    fn args(handle: &str, families: &[IpFamily]) -> AssignArgs {
        AssignArgs {
            handle: handle.into(),
            namespace: "default".into(),
            pod: handle.into(),
            families: families.to_vec(),
        }
    }

    /// Apply a plan's writes to `blocks` as a store would (sequence + 1).
    fn apply(blocks: &mut Blocks, writes: Vec<BlockWrite>) {
        for w in writes {
            match w {
                BlockWrite::Create(mut b) => {
                    assert!(!blocks.contains_key(&b.cidr), "create of an existing block");
                    b.sequence = 1;
                    blocks.insert(b.cidr, b);
                }
                BlockWrite::Update(mut b) => {
                    assert_eq!(blocks[&b.cidr].sequence, b.sequence, "stale update");
                    b.sequence += 1;
                    blocks.insert(b.cidr, b);
                }
                BlockWrite::Delete(b) => {
                    assert_eq!(blocks[&b.cidr].sequence, b.sequence, "stale delete");
                    blocks.remove(&b.cidr);
                }
            }
        }
    }

    struct Lab {
        pools: Vec<IpPool>,
        labels: BTreeMap<String, String>,
        blocks: Blocks,
    }

    impl Lab {
        fn new(pools: Vec<IpPool>) -> Lab {
            Lab {
                pools,
                labels: BTreeMap::new(),
                blocks: Blocks::new(),
            }
        }

        fn ctx<'a>(&'a self, node: &'a str) -> NodeContext<'a> {
            NodeContext {
                node,
                labels: &self.labels,
                pools: &self.pools,
            }
        }

        fn assign(&mut self, node: &str, handle: &str) -> Result<(IpNet, Source), AssignError> {
            self.assign_at(node, handle, NOW, 0)
        }

        fn assign_at(
            &mut self,
            node: &str,
            handle: &str,
            now: u64,
            reclaim_after: u64,
        ) -> Result<(IpNet, Source), AssignError> {
            let plan = plan_assign(
                &self.blocks,
                &self.ctx(node),
                &args(handle, &[IpFamily::V4]),
                now,
                reclaim_after,
            )?;
            apply(&mut self.blocks, plan.writes);
            Ok(plan.addresses[0])
        }

        fn release(&mut self, handle: &str, now: u64) -> Vec<IpAddr> {
            let (writes, freed) = plan_release(&self.blocks, handle, now);
            apply(&mut self.blocks, writes);
            freed
        }

        fn affinity(&self, cidr: &str) -> Option<String> {
            self.blocks[&cidr.parse::<IpNet>().unwrap()]
                .affinity
                .clone()
        }
    }

    #[test]
    fn allocation_order_table() {
        // calico.md §2.6: own blocks, then a new block, then borrowing only when no block is
        // free anywhere. Pool /28 with /30 blocks: four blocks of four addresses.
        let mut lab = Lab::new(vec![pool("p", "10.0.0.0/28", 30)]);
        let rows: [(&str, &str, &str, Source); 10] = [
            ("n1", "a", "10.0.0.0/30", Source::Claimed),
            ("n1", "b", "10.0.0.1/30", Source::Affine),
            ("n1", "c", "10.0.0.2/30", Source::Affine),
            ("n1", "d", "10.0.0.3/30", Source::Affine),
            // Full block → a second block.
            ("n1", "e", "10.0.0.4/30", Source::Claimed),
            // Another node claims the next free block, not n1's half-used one.
            ("n2", "f", "10.0.0.8/30", Source::Claimed),
            ("n3", "g", "10.0.0.12/30", Source::Claimed),
            ("n3", "h", "10.0.0.13/30", Source::Affine),
            ("n3", "i", "10.0.0.14/30", Source::Affine),
            ("n3", "j", "10.0.0.15/30", Source::Affine),
        ];
        for (node, handle, want, source) in rows {
            let got = lab.assign(node, handle).unwrap();
            assert_eq!(got, (want.parse().unwrap(), source), "{node} {handle}");
        }
        // Every block is claimed; n3's is full: now, and only now, n3 borrows (from n1's
        // second block, the first with a free address).
        assert_eq!(
            lab.assign("n3", "k").unwrap(),
            ("10.0.0.5/30".parse().unwrap(), Source::Borrowed)
        );
        assert_eq!(lab.affinity("10.0.0.4/30").as_deref(), Some("n1"));
        let view = node_blocks(&lab.blocks, "n3");
        assert_eq!(view.owned, ["10.0.0.12/30".parse().unwrap()].into());
        assert_eq!(view.borrowed, ["10.0.0.5".parse().unwrap()].into());
        assert_eq!(view.allocated[&IpFamily::V4], 5);
        // The owner's view: the block stays its own, the borrowed address is not its.
        let n1 = node_blocks(&lab.blocks, "n1");
        assert_eq!(n1.owned.len(), 2);
        assert!(n1.borrowed.is_empty());
        assert_eq!(n1.allocated[&IpFamily::V4], 5);
    }

    #[test]
    fn exhaustion_names_the_pools() {
        let mut lab = Lab::new(vec![pool("small", "10.0.0.0/30", 31)]);
        for h in ["a", "b", "c", "d"] {
            lab.assign("n1", h).unwrap();
        }
        let err = lab.assign("n1", "e").unwrap_err();
        assert_eq!(
            err,
            AssignError::Exhausted {
                family: IpFamily::V4,
                node: "n1".into(),
                pools: vec!["small (10.0.0.0/30)".into()],
            }
        );
        assert_eq!(
            err.to_string(),
            "no IPv4 address left for node n1: pool small (10.0.0.0/30) is full and no other \
             node's block has a free address"
        );
    }

    #[test]
    fn pool_eligibility_table() {
        let mut disabled = pool("off", "10.1.0.0/24", 26);
        disabled.disabled = true;
        let mut selective = pool("rack-b", "10.2.0.0/24", 26);
        selective.node_selector = Selector::parse("rack == 'b'").unwrap();
        let mut tunnel_only = pool("tunnel", "10.3.0.0/24", 26);
        tunnel_only.allowed_uses = vec![AllowedUse::Tunnel];
        let mut manual = pool("manual", "10.4.0.0/24", 26);
        manual.assignment_mode = AssignmentMode::Manual;
        let mut lab = Lab::new(vec![disabled, selective, tunnel_only, manual]);
        let err = lab.assign("n1", "a").unwrap_err();
        let AssignError::NoPool { detail, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            detail,
            "off (disabled), rack-b (nodeSelector \"rack == 'b'\" does not match), \
             tunnel (allowedUses has no Workload), manual (assignmentMode is Manual)"
        );
        // The label makes rack-b usable, and only rack-b.
        lab.labels.insert("rack".into(), "b".into());
        assert_eq!(
            lab.assign("n1", "a").unwrap().0,
            "10.2.0.0/26".parse().unwrap()
        );
        // No IPv6 pool at all.
        let ctx = lab.ctx("n1");
        let err = plan_assign(&lab.blocks, &ctx, &args("v6", &[IpFamily::V6]), NOW, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no IPv6 IP pool can be used by node n1: the cluster has no IPv6 IPPool"
        );
    }

    #[test]
    fn a_disabled_pool_keeps_its_blocks_but_gives_no_address() {
        let mut lab = Lab::new(vec![
            pool("old", "10.1.0.0/24", 26),
            pool("new", "10.2.0.0/24", 26),
        ]);
        assert_eq!(
            lab.assign("n1", "a").unwrap().0,
            "10.1.0.0/26".parse().unwrap()
        );
        lab.pools[0].disabled = true;
        assert_eq!(
            lab.assign("n1", "b").unwrap(),
            ("10.2.0.0/26".parse().unwrap(), Source::Claimed)
        );
        assert_eq!(node_blocks(&lab.blocks, "n1").owned.len(), 2);
    }

    #[test]
    fn dual_stack_and_repeated_requests() {
        let lab = Lab::new(vec![
            pool("v4", "10.0.0.0/24", 26),
            pool("v6", "fd00::/120", 122),
        ]);
        let both = args("h", &[IpFamily::V4, IpFamily::V6]);
        let plan = plan_assign(&lab.blocks, &lab.ctx("n1"), &both, NOW, 0).unwrap();
        assert_eq!(
            plan.addresses,
            vec![
                ("10.0.0.0/26".parse().unwrap(), Source::Claimed),
                ("fd00::/122".parse().unwrap(), Source::Claimed)
            ]
        );
        let mut blocks = lab.blocks.clone();
        apply(&mut blocks, plan.writes);
        // The same handle again: the same addresses, nothing written.
        let again = plan_assign(&blocks, &lab.ctx("n1"), &both, NOW, 0).unwrap();
        assert!(again.writes.is_empty());
        assert!(again.addresses.iter().all(|(_, s)| *s == Source::Existing));
        assert_eq!(addresses_of(&blocks, "h").len(), 2);
    }

    #[test]
    fn claims_skip_blocks_left_by_another_block_size() {
        // A /26 from an earlier configuration sits inside the first /25 candidate.
        let mut lab = Lab::new(vec![pool("p", "10.0.0.0/24", 26)]);
        lab.assign("n1", "old").unwrap();
        lab.pools[0].block_size = 25;
        assert_eq!(
            lab.assign("n2", "new").unwrap(),
            ("10.0.0.128/25".parse().unwrap(), Source::Claimed)
        );
    }

    #[test]
    fn release_is_idempotent_and_never_drops_affinity() {
        let mut lab = Lab::new(vec![pool("p", "10.0.0.0/29", 30)]);
        for h in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            lab.assign(if h < "e" { "n1" } else { "n2" }, h).unwrap();
        }
        // Both blocks are full; n1 frees one address.
        assert_eq!(
            lab.release("a", NOW + 1),
            vec!["10.0.0.0".parse::<IpAddr>().unwrap()]
        );
        assert!(
            lab.release("a", NOW + 2).is_empty(),
            "second release is a no-op"
        );
        assert!(lab.release("never-assigned", NOW + 2).is_empty());
        assert_eq!(
            lab.assign("n2", "i").unwrap(),
            ("10.0.0.0/30".parse().unwrap(), Source::Borrowed)
        );
        // n1 empties its block: it keeps the affinity (and its export) until a sweep.
        for h in ["b", "c", "d"] {
            lab.release(h, NOW + 3);
        }
        assert_eq!(lab.affinity("10.0.0.0/30").as_deref(), Some("n1"));
        lab.release("i", NOW + 4);
        let b = &lab.blocks[&"10.0.0.0/30".parse().unwrap()];
        assert!(b.is_empty());
        assert_eq!(b.empty_since_unix, Some(NOW + 4));
    }

    #[test]
    fn a_block_without_affinity_is_deleted_when_it_empties() {
        let mut lab = Lab::new(vec![pool("p", "10.0.0.0/30", 30)]);
        lab.assign("n1", "a").unwrap();
        lab.blocks.values_mut().for_each(|b| b.affinity = None);
        lab.release("a", NOW);
        assert!(lab.blocks.is_empty());
    }

    #[test]
    fn empty_blocks_are_released_after_the_grace_period() {
        let mut lab = Lab::new(vec![pool("p", "10.0.0.0/28", 30)]);
        for h in ["a", "b", "c", "d", "e"] {
            lab.assign("n1", h).unwrap();
        }
        lab.assign("n1", "f").unwrap();
        assert_eq!(node_blocks(&lab.blocks, "n1").owned.len(), 2);
        for h in ["a", "b", "c", "d", "e", "f"] {
            lab.release(h, NOW + 10);
        }
        let live = BTreeSet::new();
        let sweep = |now| {
            plan_sweep(
                &lab.blocks,
                &SweepInput {
                    node: "n1",
                    now,
                    leak_grace: 60,
                    block_grace: 30,
                    live: &live,
                    dead: &live,
                },
            )
        };
        // Within the grace period nothing goes.
        assert_eq!(sweep(NOW + 39), SweepPlan::default());
        // After it, the higher block goes and the lowest stays (a node keeps one block).
        let plan = sweep(NOW + 40);
        assert!(plan.leaked.is_empty());
        assert_eq!(
            plan.empty_blocks
                .iter()
                .map(|b| b.cidr.to_string())
                .collect::<Vec<_>>(),
            ["10.0.0.4/30"]
        );
        // Block grace 0 disables block release (Calico).
        let off = plan_sweep(
            &lab.blocks,
            &SweepInput {
                node: "n1",
                now: NOW + 1000,
                leak_grace: 60,
                block_grace: 0,
                live: &live,
                dead: &live,
            },
        );
        assert!(off.empty_blocks.is_empty());
    }

    #[test]
    fn an_empty_block_beside_a_busy_one_is_released() {
        let mut lab = Lab::new(vec![pool("p", "10.0.0.0/28", 30)]);
        for h in ["a", "b", "c", "d", "e"] {
            lab.assign("n1", h).unwrap();
        }
        // The first block empties; the second still holds e.
        for h in ["a", "b", "c", "d"] {
            lab.release(h, NOW);
        }
        let live: BTreeSet<String> = ["e".to_string()].into();
        let plan = plan_sweep(
            &lab.blocks,
            &SweepInput {
                node: "n1",
                now: NOW + 100,
                leak_grace: 60,
                block_grace: 30,
                live: &live,
                dead: &BTreeSet::new(),
            },
        );
        assert_eq!(plan.empty_blocks.len(), 1);
        assert_eq!(plan.empty_blocks[0].cidr.to_string(), "10.0.0.0/30");
    }

    #[test]
    fn leak_detection_table() {
        let mut lab = Lab::new(vec![pool("p", "10.0.0.0/28", 30)]);
        lab.assign_at("n1", "live", NOW, 0).unwrap();
        lab.assign_at("n1", "in-flight", NOW + 50, 0).unwrap();
        lab.assign_at("n1", "leaked", NOW, 0).unwrap();
        lab.assign_at("n1", "link-gone", NOW + 55, 0).unwrap();
        lab.assign_at("n2", "other-node", NOW, 0).unwrap();
        let live: BTreeSet<String> = ["live".to_string()].into();
        let dead: BTreeSet<String> = ["link-gone".to_string()].into();
        let plan = plan_sweep(
            &lab.blocks,
            &SweepInput {
                node: "n1",
                now: NOW + 60,
                leak_grace: 60,
                block_grace: 30,
                live: &live,
                dead: &dead,
            },
        );
        // live: has an endpoint; in-flight: younger than the grace; other-node: not ours;
        // leaked: no endpoint and older than the grace; link-gone: its pod is gone.
        assert_eq!(plan.leaked, ["leaked", "link-gone"]);
        assert!(plan.empty_blocks.is_empty());
    }

    #[test]
    fn a_long_empty_block_of_another_node_is_reclaimed_before_borrowing() {
        let mut lab = Lab::new(vec![pool("p", "10.0.0.0/29", 30)]);
        lab.assign("n1", "a").unwrap();
        lab.assign("n2", "b").unwrap();
        lab.release("a", NOW);
        // n2's block is full? No: it has three free addresses, so n2 uses its own block.
        assert_eq!(
            lab.assign_at("n2", "c", NOW + 100, 60).unwrap().1,
            Source::Affine
        );
        // n3 has no block and none is unclaimed: n1's block has been empty for 100 s > 60 s.
        // Its longest-free address is .1 (.0 went to the back of the free list when released).
        assert_eq!(
            lab.assign_at("n3", "d", NOW + 100, 60).unwrap(),
            ("10.0.0.1/30".parse().unwrap(), Source::Reclaimed)
        );
        assert_eq!(lab.affinity("10.0.0.0/30").as_deref(), Some("n3"));
        // Without reclaiming (0), n4 borrows instead.
        assert_eq!(
            lab.assign_at("n4", "e", NOW + 100, 0).unwrap().1,
            Source::Borrowed
        );
    }

    #[test]
    fn lookups() {
        let mut lab = Lab::new(vec![pool("p", "10.0.0.0/28", 30)]);
        lab.assign("n1", "a").unwrap();
        let (block, alloc) = find(&lab.blocks, "10.0.0.0".parse().unwrap()).unwrap();
        assert_eq!(block.cidr.to_string(), "10.0.0.0/30");
        assert_eq!(alloc.handle, "a");
        assert!(find(&lab.blocks, "10.0.0.1".parse().unwrap()).is_none());
        assert!(find(&lab.blocks, "10.0.0.9".parse().unwrap()).is_none());
        assert_eq!(handles_of_node(&lab.blocks, "n1"), ["a".to_string()].into());
        assert!(handles_of_node(&lab.blocks, "n2").is_empty());
    }
}
