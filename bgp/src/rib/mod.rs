//! The routing information bases: Loc-RIB with every received path (so it doubles as the
//! Adj-RIB-In of each peer), the decision process, and what was advertised to each peer.
//!
//! Owns: per-family tables keyed by prefix, each prefix's candidate paths ordered best first, the
//! equal-cost multipath group, stale marking for graceful restart, the list of prefixes whose
//! selection changed since the last flush, and one "advertised" bit per peer and prefix. Must
//! not: do I/O, decide import/export policy (that is `policy`), or know about sessions beyond a
//! `SourceId`.
//!
//! Paths enter through `Table::upsert` / `Table::remove` (one prefix at a time, already passed
//! through import policy); a change of the selected group (best + multipath) is recorded once in
//! the table's change list (a dirty bit in the entry de-duplicates it) and taken by the speaker
//! at each flush. Per-peer export state lives in the entry too: one bit per peer slot below
//! `INLINE_PEER_SLOTS` says whether the prefix is advertised to that peer, so exporting a
//! prefix to a peer costs the one table lookup it already needs; a prefix that loses its last
//! path stays as an empty entry (a tombstone) until every peer it was advertised to has been
//! sent the withdrawal. Why a path is not the best is not stored: `decision::explain` recomputes
//! it when someone asks (`gingerctl route show`).

pub mod adj_out;
pub mod decision;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use smallvec::SmallVec;

use crate::types::PathAttrs;

pub use decision::DecisionCtx;

/// Hash builder for the big tables: fast, and randomly seeded so that a peer cannot choose
/// prefixes that collide.
pub type RandomState = foldhash::fast::RandomState;

/// Peer slots whose "advertised" bit lives in the table entry; higher slots keep a set of their
/// own (`adj_out::Advertised`).
pub const INLINE_PEER_SLOTS: u32 = 63;
/// The entry's flag: it is already in the table's change list.
const DIRTY: u64 = 1 << 63;

/// Where a path came from: a peer slot of the speaker, or this speaker itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u32);

impl SourceId {
    /// Routes this speaker originates.
    pub const LOCAL: SourceId = SourceId(u32::MAX);

    /// Whether this is the local source.
    pub fn is_local(self) -> bool {
        self == SourceId::LOCAL
    }
}

/// What the decision process needs to know about a peer (RFC 4271 §9.1.2.2, RFC 4456 §9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// Session name, for display.
    pub name: String,
    /// The peer is in another AS.
    pub ebgp: bool,
    /// The peer's BGP identifier from its OPEN.
    pub router_id: Ipv4Addr,
    /// The peer's address.
    pub address: IpAddr,
    /// The peer is a route-reflector client of ours.
    pub rr_client: bool,
}

/// Why a received path can never be selected (kept so `route show` can say so, as BIRD's
/// `import keep filtered` does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ineligible {
    /// Our AS is in the AS_PATH (RFC 4271 §9.1.2).
    AsLoop,
    /// ORIGINATOR_ID is our router id (RFC 4456 §8).
    OriginatorIsUs,
    /// Our cluster id is in the CLUSTER_LIST (RFC 4456 §8).
    ClusterLoop,
    /// The NEXT_HOP is one of our own addresses (RFC 4271 §5.1.3).
    NextHopIsUs,
    /// No usable next hop for the family.
    NoNextHop,
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ineligible::AsLoop => "AS loop: our AS is in the AS_PATH",
            Ineligible::OriginatorIsUs => "ORIGINATOR_ID is our router id",
            Ineligible::ClusterLoop => "CLUSTER_LIST contains our cluster id",
            Ineligible::NextHopIsUs => "NEXT_HOP is our own address",
            Ineligible::NoNextHop => "no next hop",
        })
    }
}

/// One path to a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// Who sent it.
    pub source: SourceId,
    /// Its attributes (shared with every prefix of the same UPDATE).
    pub attrs: Arc<PathAttrs>,
    /// Kept across the source's restart (RFC 4724 helper mode) until refreshed or swept.
    pub stale: bool,
    /// Set when the path can never win.
    pub ineligible: Option<Ineligible>,
}

impl Path {
    /// A path from `source` with these attributes.
    pub fn new(source: SourceId, attrs: Arc<PathAttrs>, ineligible: Option<Ineligible>) -> Path {
        Path {
            source,
            attrs,
            stale: false,
            ineligible,
        }
    }

    /// Whether two paths are the same for export and FIB purposes.
    fn same_as(&self, other: &Path) -> bool {
        self.source == other.source
            && self.stale == other.stale
            && self.ineligible == other.ineligible
            && (Arc::ptr_eq(&self.attrs, &other.attrs) || self.attrs == other.attrs)
    }
}

/// Several paths to one prefix, best first.
#[derive(Clone, Debug)]
struct Many {
    paths: Vec<Path>,
    /// How many leading paths form the best + multipath group.
    selected: u8,
}

/// A prefix's paths, without an allocation for the usual single path.
#[derive(Clone, Debug, Default)]
enum Paths {
    /// None (a tombstone kept until its withdrawal reached every peer).
    #[default]
    Empty,
    One(Path),
    Many(Box<Many>),
}

/// All paths to one prefix (the best first, then its multipath siblings, then the rest) and
/// the prefix's per-peer export bits.
#[derive(Clone, Debug, Default)]
pub struct Dest {
    paths: Paths,
    /// Bit `i < 63`: advertised to peer slot `i`; bit 63: in the change list.
    flags: u64,
}

type Selected = SmallVec<[(SourceId, *const PathAttrs, bool); 2]>;

impl Dest {
    /// Every path, best first.
    pub fn paths(&self) -> &[Path] {
        match &self.paths {
            Paths::Empty => &[],
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(m) => &m.paths,
        }
    }

    fn selected_len(&self) -> usize {
        match &self.paths {
            Paths::Empty => 0,
            Paths::One(p) => usize::from(p.ineligible.is_none()),
            Paths::Many(m) => m.selected as usize,
        }
    }

    /// The best path, if any path is eligible.
    pub fn best(&self) -> Option<&Path> {
        self.selected().first()
    }

    /// The best path and its equal-cost siblings.
    pub fn selected(&self) -> &[Path] {
        &self.paths()[..self.selected_len()]
    }

    /// The path from `source`, if any.
    pub fn from_source(&self, source: SourceId) -> Option<&Path> {
        self.paths().iter().find(|p| p.source == source)
    }

    /// Whether no path is left (a tombstone).
    pub fn is_empty(&self) -> bool {
        matches!(self.paths, Paths::Empty)
    }

    fn snapshot_selected(&self) -> Selected {
        self.selected()
            .iter()
            .map(|p| (p.source, Arc::as_ptr(&p.attrs), p.stale))
            .collect()
    }

    /// Store `paths` after running the decision process over them.
    fn set_paths(&mut self, mut paths: Vec<Path>, ctx: &DecisionCtx<'_>) {
        self.paths = match paths.len() {
            0 => Paths::Empty,
            1 => Paths::One(paths.pop().expect("one path")),
            _ => {
                let selected = decision::select(&mut paths, ctx);
                Paths::Many(Box::new(Many { paths, selected }))
            }
        };
    }

    fn take_paths(&mut self) -> Vec<Path> {
        match std::mem::take(&mut self.paths) {
            Paths::Empty => Vec::new(),
            Paths::One(p) => vec![p],
            Paths::Many(m) => m.paths,
        }
    }

    /// Insert or replace `path.source`'s path; returns whether the selected group changed.
    fn upsert(&mut self, path: Path, ctx: &DecisionCtx<'_>) -> bool {
        let before = self.snapshot_selected();
        match &mut self.paths {
            Paths::Empty => self.paths = Paths::One(path),
            Paths::One(p) if p.source == path.source => {
                if p.same_as(&path) {
                    return false;
                }
                *p = path;
            }
            Paths::One(p) => {
                let first = p.clone();
                self.set_paths(vec![first, path], ctx);
            }
            Paths::Many(m) => {
                match m.paths.iter_mut().find(|p| p.source == path.source) {
                    Some(existing) if existing.same_as(&path) => return false,
                    Some(existing) => *existing = path,
                    None => m.paths.push(path),
                }
                m.selected = decision::select(&mut m.paths, ctx);
            }
        }
        before != self.snapshot_selected()
    }

    /// Keep only the paths `keep` accepts; returns whether the selected group changed.
    fn retain(&mut self, ctx: &DecisionCtx<'_>, keep: impl Fn(&Path) -> bool) -> bool {
        if self.paths().iter().all(&keep) {
            return false;
        }
        let before = self.snapshot_selected();
        let mut paths = self.take_paths();
        paths.retain(keep);
        self.set_paths(paths, ctx);
        before != self.snapshot_selected()
    }

    /// Apply `f` to every path and re-run the decision; returns whether the group changed.
    fn modify(&mut self, ctx: &DecisionCtx<'_>, f: impl Fn(&mut Path)) -> bool {
        let before = self.snapshot_selected();
        let mut paths = self.take_paths();
        paths.iter_mut().for_each(f);
        self.set_paths(paths, ctx);
        before != self.snapshot_selected()
    }

    fn advertised_bit(slot: u32) -> Option<u64> {
        (slot < INLINE_PEER_SLOTS).then(|| 1u64 << slot)
    }

    /// Whether the prefix is advertised to an inline peer slot.
    pub fn advertised_to(&self, slot: u32) -> bool {
        Self::advertised_bit(slot).is_some_and(|b| self.flags & b != 0)
    }

    /// Whether nothing keeps the entry alive (no path, not advertised anywhere).
    fn removable(&self) -> bool {
        self.is_empty() && self.flags & !DIRTY == 0
    }
}

/// A prefix type a table can be keyed by.
pub trait Prefix:
    Copy + Eq + Hash + Ord + fmt::Debug + fmt::Display + Send + Sync + 'static
{
    /// As a family-neutral prefix.
    fn to_ipnet(self) -> IpNet;
    /// The same prefix with host bits cleared.
    fn normalized(self) -> Self;
}

impl Prefix for Ipv4Net {
    fn to_ipnet(self) -> IpNet {
        IpNet::V4(self)
    }
    fn normalized(self) -> Self {
        self.trunc()
    }
}

impl Prefix for Ipv6Net {
    fn to_ipnet(self) -> IpNet {
        IpNet::V6(self)
    }
    fn normalized(self) -> Self {
        self.trunc()
    }
}

/// What exporting one prefix to one peer requires on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutChange {
    /// Nothing: it was not advertised and still is not.
    None,
    /// Announce with these attributes (`replaces`: the prefix was already advertised).
    Announce {
        /// The attributes to send.
        attrs: Arc<PathAttrs>,
        /// It was advertised before (this is an implicit replacement).
        replaces: bool,
    },
    /// Withdraw: it was advertised and no longer is.
    Withdraw,
}

/// One family's table.
#[derive(Debug)]
pub struct Table<P: Prefix> {
    dests: HashMap<P, Dest, RandomState>,
    /// Prefixes whose selected group changed since `take_changes`.
    changes: Vec<P>,
    /// Entries with at least one path (the rest are tombstones).
    live: usize,
}

impl<P: Prefix> Default for Table<P> {
    fn default() -> Self {
        Table {
            dests: HashMap::default(),
            changes: Vec::new(),
            live: 0,
        }
    }
}

impl<P: Prefix> Table<P> {
    /// Number of prefixes with at least one path.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Number of prefixes in the change list (not yet drained).
    pub fn changes_pending(&self) -> usize {
        self.changes.len()
    }

    /// Number of entries including tombstones (cheap; an upper bound of `len`).
    pub fn entries(&self) -> usize {
        self.dests.len()
    }

    /// Whether no prefix has a path.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The paths to `prefix` (absent, or empty for a tombstone).
    pub fn get(&self, prefix: &P) -> Option<&Dest> {
        self.dests.get(prefix).filter(|d| !d.is_empty())
    }

    /// Every prefix with a path and its paths, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&P, &Dest)> {
        self.dests.iter().filter(|(_, d)| !d.is_empty())
    }

    /// Every entry's prefix, tombstones included.
    pub fn keys(&self) -> impl Iterator<Item = &P> {
        self.dests.keys()
    }

    fn note(changes: &mut Vec<P>, prefix: P, dest: &mut Dest) {
        if dest.flags & DIRTY == 0 {
            dest.flags |= DIRTY;
            changes.push(prefix);
        }
    }

    /// Insert or replace the path from `path.source` to `prefix`. Returns whether the selected
    /// group (best + multipath) changed (and records the change).
    pub fn upsert(&mut self, prefix: P, path: Path, ctx: &DecisionCtx<'_>) -> bool {
        let dest = self.dests.entry(prefix).or_default();
        if dest.is_empty() {
            self.live += 1;
        }
        let changed = dest.upsert(path, ctx);
        if changed {
            Self::note(&mut self.changes, prefix, dest);
        }
        changed
    }

    /// Remove the path from `source` to `prefix`. Returns whether the selected group changed.
    pub fn remove(&mut self, prefix: &P, source: SourceId, ctx: &DecisionCtx<'_>) -> bool {
        let Some(dest) = self.dests.get_mut(prefix) else {
            return false;
        };
        if dest.from_source(source).is_none() {
            return false;
        }
        let changed = dest.retain(ctx, |p| p.source != source);
        if changed {
            Self::note(&mut self.changes, *prefix, dest);
        }
        if dest.is_empty() {
            self.live -= 1;
        }
        if dest.removable() {
            self.dests.remove(prefix);
        }
        changed
    }

    fn retain_paths(&mut self, ctx: &DecisionCtx<'_>, keep: impl Fn(&Path) -> bool) -> Vec<P> {
        let mut changed = Vec::new();
        let changes = &mut self.changes;
        let live = &mut self.live;
        self.dests.retain(|prefix, dest| {
            let was_empty = dest.is_empty();
            if dest.retain(ctx, &keep) {
                Self::note(changes, *prefix, dest);
                changed.push(*prefix);
            }
            if dest.is_empty() && !was_empty {
                *live -= 1;
            }
            !dest.removable()
        });
        changed
    }

    /// Remove every path from `source` (its session went down). Returns the prefixes whose
    /// selected group changed.
    pub fn remove_source(&mut self, source: SourceId, ctx: &DecisionCtx<'_>) -> Vec<P> {
        self.retain_paths(ctx, |p| p.source != source)
    }

    /// Mark every path from `source` stale (graceful restart helper, RFC 4724 §4.2). Returns
    /// the prefixes whose selected group changed (the stale flag is visible to the FIB).
    pub fn mark_stale(&mut self, source: SourceId, ctx: &DecisionCtx<'_>) -> Vec<P> {
        let mut changed = Vec::new();
        for (prefix, dest) in self.dests.iter_mut() {
            if dest.from_source(source).is_some_and(|p| !p.stale)
                && dest.modify(ctx, |p| {
                    if p.source == source {
                        p.stale = true;
                    }
                })
            {
                Self::note(&mut self.changes, *prefix, dest);
                changed.push(*prefix);
            }
        }
        changed
    }

    /// Remove the paths from `source` still marked stale (End-of-RIB received or restart timer
    /// expired). Returns the prefixes whose selected group changed.
    pub fn sweep_stale(&mut self, source: SourceId, ctx: &DecisionCtx<'_>) -> Vec<P> {
        self.retain_paths(ctx, |p| !(p.source == source && p.stale))
    }

    /// Re-run the decision process everywhere (policy or multipath setting changed). Returns
    /// the prefixes whose selected group changed.
    pub fn reselect_all(&mut self, ctx: &DecisionCtx<'_>) -> Vec<P> {
        let mut changed = Vec::new();
        for (prefix, dest) in self.dests.iter_mut() {
            if dest.paths().len() > 1 && dest.modify(ctx, |_| {}) {
                Self::note(&mut self.changes, *prefix, dest);
                changed.push(*prefix);
            }
        }
        changed
    }

    /// The prefixes whose selection changed since the last call, each once.
    pub fn take_changes(&mut self) -> Vec<P> {
        let changes = std::mem::take(&mut self.changes);
        for p in &changes {
            if let Some(d) = self.dests.get_mut(p) {
                d.flags &= !DIRTY;
            }
        }
        changes
    }

    /// Export `prefix` to the peer in `slot`: `decide` gets the best path (if any) and returns
    /// the attributes to advertise (or `None`); the entry's advertised bit (or `overflow` for
    /// slots without one) tells whether a withdrawal is owed.
    pub fn export(
        &mut self,
        prefix: P,
        slot: u32,
        overflow: &mut HashSet<P, RandomState>,
        decide: impl FnOnce(Option<&Path>) -> Option<Arc<PathAttrs>>,
    ) -> OutChange {
        let mut absent = Dest::default();
        let dest = self.dests.get_mut(&prefix).unwrap_or(&mut absent);
        let out = decide(dest.best());
        let change = Self::export_entry(prefix, dest, slot, overflow, out);
        if self.dests.get(&prefix).is_some_and(Dest::removable) {
            self.dests.remove(&prefix);
        }
        change
    }

    /// The export decision for one entry the caller already holds: `out` is what export policy
    /// says to advertise now (or `None`); the entry's bit for `slot` (or `overflow`) says what
    /// was advertised before, and is updated.
    pub fn export_entry(
        prefix: P,
        dest: &mut Dest,
        slot: u32,
        overflow: &mut HashSet<P, RandomState>,
        out: Option<Arc<PathAttrs>>,
    ) -> OutChange {
        let bit = Dest::advertised_bit(slot);
        let was = match bit {
            Some(b) => dest.flags & b != 0,
            None => overflow.contains(&prefix),
        };
        match (out, was) {
            (Some(attrs), _) => {
                match bit {
                    Some(b) => dest.flags |= b,
                    None => {
                        overflow.insert(prefix);
                    }
                }
                OutChange::Announce {
                    attrs,
                    replaces: was,
                }
            }
            (None, true) => {
                match bit {
                    Some(b) => dest.flags &= !b,
                    None => {
                        overflow.remove(&prefix);
                    }
                }
                OutChange::Withdraw
            }
            (None, false) => OutChange::None,
        }
    }

    /// Take the change list, visiting each changed entry once (an entry already gone is
    /// visited as an empty one); tombstones nobody is owed any more are dropped afterwards.
    pub fn drain_changes(&mut self, mut visit: impl FnMut(P, &mut Dest)) -> usize {
        let changes = std::mem::take(&mut self.changes);
        for p in &changes {
            match self.dests.get_mut(p) {
                Some(d) => {
                    d.flags &= !DIRTY;
                    visit(*p, d);
                    if d.removable() {
                        self.dests.remove(p);
                    }
                }
                None => visit(*p, &mut Dest::default()),
            }
        }
        changes.len()
    }

    /// Visit every entry, tombstones included, in table order (initial table dump, route
    /// refresh, policy change); tombstones nobody is owed any more are dropped afterwards.
    pub fn visit_all(&mut self, mut visit: impl FnMut(P, &mut Dest)) {
        self.dests.retain(|p, d| {
            visit(*p, d);
            !d.removable()
        });
    }

    /// Forget everything advertised to `slot` (its session ended): clears its bits and drops
    /// tombstones nobody else is owed.
    pub fn forget_peer(&mut self, slot: u32) {
        let Some(bit) = Dest::advertised_bit(slot) else {
            return;
        };
        self.dests.retain(|_, d| {
            d.flags &= !bit;
            !d.removable()
        });
    }

    /// The prefixes advertised to `slot` (for route refresh).
    pub fn advertised_to(&self, slot: u32, overflow: &HashSet<P, RandomState>) -> Vec<P> {
        match Dest::advertised_bit(slot) {
            Some(b) => self
                .dests
                .iter()
                .filter(|(_, d)| d.flags & b != 0)
                .map(|(p, _)| *p)
                .collect(),
            None => overflow.iter().copied().collect(),
        }
    }

    /// Count the paths from `source`: (received, eligible).
    pub fn count_from(&self, source: SourceId) -> (u64, u64) {
        let mut received = 0;
        let mut accepted = 0;
        for dest in self.dests.values() {
            if let Some(p) = dest.from_source(source) {
                received += 1;
                if p.ineligible.is_none() {
                    accepted += 1;
                }
            }
        }
        (received, accepted)
    }
}

/// Both families' tables.
#[derive(Debug, Default)]
pub struct Rib {
    /// IPv4 unicast.
    pub v4: Table<Ipv4Net>,
    /// IPv6 unicast.
    pub v6: Table<Ipv6Net>,
}

impl Rib {
    /// Insert or replace a path to any prefix. Returns whether the selected group changed.
    pub fn upsert(&mut self, prefix: IpNet, path: Path, ctx: &DecisionCtx<'_>) -> bool {
        match prefix {
            IpNet::V4(p) => self.v4.upsert(p.normalized(), path, ctx),
            IpNet::V6(p) => self.v6.upsert(p.normalized(), path, ctx),
        }
    }

    /// Remove a path to any prefix. Returns whether the selected group changed.
    pub fn remove(&mut self, prefix: IpNet, source: SourceId, ctx: &DecisionCtx<'_>) -> bool {
        match prefix {
            IpNet::V4(p) => self.v4.remove(&p.normalized(), source, ctx),
            IpNet::V6(p) => self.v6.remove(&p.normalized(), source, ctx),
        }
    }

    /// The paths to a prefix.
    pub fn get(&self, prefix: &IpNet) -> Option<&Dest> {
        match prefix {
            IpNet::V4(p) => self.v4.get(p),
            IpNet::V6(p) => self.v6.get(p),
        }
    }

    /// Remove everything from `source`; returns the prefixes whose selection changed.
    pub fn remove_source(&mut self, source: SourceId, ctx: &DecisionCtx<'_>) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self
            .v4
            .remove_source(source, ctx)
            .into_iter()
            .map(IpNet::V4)
            .collect();
        out.extend(
            self.v6
                .remove_source(source, ctx)
                .into_iter()
                .map(IpNet::V6),
        );
        out
    }

    /// Mark everything from `source` stale; returns the prefixes whose selection changed.
    pub fn mark_stale(&mut self, source: SourceId, ctx: &DecisionCtx<'_>) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self
            .v4
            .mark_stale(source, ctx)
            .into_iter()
            .map(IpNet::V4)
            .collect();
        out.extend(self.v6.mark_stale(source, ctx).into_iter().map(IpNet::V6));
        out
    }

    /// Sweep stale paths from `source`; returns the prefixes whose selection changed.
    pub fn sweep_stale(&mut self, source: SourceId, ctx: &DecisionCtx<'_>) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self
            .v4
            .sweep_stale(source, ctx)
            .into_iter()
            .map(IpNet::V4)
            .collect();
        out.extend(self.v6.sweep_stale(source, ctx).into_iter().map(IpNet::V6));
        out
    }

    /// Re-run the decision everywhere; returns the prefixes whose selection changed.
    pub fn reselect_all(&mut self, ctx: &DecisionCtx<'_>) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self
            .v4
            .reselect_all(ctx)
            .into_iter()
            .map(IpNet::V4)
            .collect();
        out.extend(self.v6.reselect_all(ctx).into_iter().map(IpNet::V6));
        out
    }

    /// Paths received from `source`: (received, eligible).
    pub fn count_from(&self, source: SourceId) -> (u64, u64) {
        let (r4, a4) = self.v4.count_from(source);
        let (r6, a6) = self.v6.count_from(source);
        (r4 + r6, a4 + a6)
    }

    /// Prefixes with at least one path.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether both tables are empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Forget everything advertised to `slot`, in both families.
    pub fn forget_peer(&mut self, slot: u32) {
        self.v4.forget_peer(slot);
        self.v6.forget_peer(slot);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::types::{AsPath, Origin};

    fn attrs(path: &[u32], lp: Option<u32>) -> Arc<PathAttrs> {
        let mut a = PathAttrs::local(vec![], vec![]);
        a.as_path = AsPath::sequence(path.to_vec());
        a.local_pref = lp;
        a.origin = Origin::Igp;
        a.next_hop = Some("10.0.0.9".parse().unwrap());
        Arc::new(a)
    }

    fn sources() -> Vec<Option<SourceInfo>> {
        (0..4)
            .map(|i| {
                Some(SourceInfo {
                    name: format!("p{i}"),
                    ebgp: false,
                    router_id: Ipv4Addr::new(10, 0, 0, 10 + i as u8),
                    address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10 + i as u8)),
                    rr_client: false,
                })
            })
            .collect()
    }

    #[test]
    fn upsert_and_remove_report_selection_changes() {
        let src = sources();
        let ctx = DecisionCtx::new(&src, 64512, false);
        let mut t: Table<Ipv4Net> = Table::default();
        let p: Ipv4Net = "10.1.0.0/26".parse().unwrap();
        assert!(t.upsert(p, Path::new(SourceId(0), attrs(&[1, 2], None), None), &ctx));
        // A worse path does not change the selection.
        assert!(!t.upsert(
            p,
            Path::new(SourceId(1), attrs(&[1, 2, 3], None), None),
            &ctx
        ));
        // The same path again is no change.
        assert!(!t.upsert(
            p,
            Path::new(SourceId(1), attrs(&[1, 2, 3], None), None),
            &ctx
        ));
        // A better one does.
        assert!(t.upsert(p, Path::new(SourceId(2), attrs(&[1], None), None), &ctx));
        assert_eq!(t.get(&p).unwrap().best().unwrap().source, SourceId(2));
        // Removing a loser is no change; removing the best is.
        assert!(!t.remove(&p, SourceId(1), &ctx));
        assert!(t.remove(&p, SourceId(2), &ctx));
        assert_eq!(t.get(&p).unwrap().best().unwrap().source, SourceId(0));
        assert!(t.remove(&p, SourceId(0), &ctx));
        assert!(t.is_empty());
    }

    #[test]
    fn remove_source_and_stale_sweep() {
        let src = sources();
        let ctx = DecisionCtx::new(&src, 64512, false);
        let mut t: Table<Ipv4Net> = Table::default();
        for i in 0..10u32 {
            let p = Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap();
            t.upsert(p, Path::new(SourceId(0), attrs(&[1], None), None), &ctx);
            if i < 5 {
                t.upsert(p, Path::new(SourceId(1), attrs(&[1, 2], None), None), &ctx);
            }
        }
        assert_eq!(t.count_from(SourceId(1)), (5, 5));
        let changed = t.mark_stale(SourceId(0), &ctx);
        // Alone, a stale path still wins (RFC 4724 §4.2: keep forwarding) but the flag is a
        // change; next to a fresh path it loses: a change too.
        assert_eq!(changed.len(), 10);
        for i in 0..5u32 {
            let p = Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap();
            assert_eq!(t.get(&p).unwrap().best().unwrap().source, SourceId(1));
        }
        // Sweeping changes only the prefixes where the stale path was still selected.
        let changed = t.sweep_stale(SourceId(0), &ctx);
        assert_eq!(changed.len(), 5);
        assert_eq!(t.len(), 5);
        let changed = t.remove_source(SourceId(1), &ctx);
        assert_eq!(changed.len(), 5);
        assert!(t.is_empty());
    }

    #[test]
    fn export_bits_track_what_each_peer_was_sent_and_tombstones_owe_withdrawals() {
        let src = sources();
        let ctx = DecisionCtx::new(&src, 64512, false);
        let mut t: Table<Ipv4Net> = Table::default();
        let p: Ipv4Net = "10.244.3.0/26".parse().unwrap();
        let mut none = HashSet::default();
        let a = attrs(&[1], None);
        t.upsert(p, Path::new(SourceId(0), a.clone(), None), &ctx);
        assert_eq!(t.take_changes(), vec![p]);
        assert!(t.take_changes().is_empty(), "each change is taken once");
        let send = |best: Option<&Path>| best.map(|b| b.attrs.clone());
        // Slot 5 (inline bit): first an announcement, then a replacement.
        assert_eq!(
            t.export(p, 5, &mut none, send),
            OutChange::Announce {
                attrs: a.clone(),
                replaces: false
            }
        );
        assert_eq!(
            t.export(p, 5, &mut none, send),
            OutChange::Announce {
                attrs: a.clone(),
                replaces: true
            }
        );
        // Slot 100 has no inline bit: its own set remembers.
        let mut overflow = HashSet::default();
        assert!(matches!(
            t.export(p, 100, &mut overflow, send),
            OutChange::Announce { .. }
        ));
        assert!(overflow.contains(&p));
        // The last path goes: the entry stays (a tombstone) until both peers got the withdrawal.
        t.remove(&p, SourceId(0), &ctx);
        assert!(t.get(&p).is_none() && t.entries() == 1);
        assert_eq!(t.export(p, 5, &mut none, send), OutChange::Withdraw);
        assert_eq!(t.export(p, 5, &mut none, send), OutChange::None);
        assert_eq!(t.entries(), 0, "no inline bit owes anything any more");
        assert_eq!(t.export(p, 100, &mut overflow, send), OutChange::Withdraw);
        assert!(overflow.is_empty());
        // A peer that goes away forgets its bits; tombstones only it was owed disappear.
        t.upsert(p, Path::new(SourceId(0), a.clone(), None), &ctx);
        t.export(p, 7, &mut none, send);
        t.remove(&p, SourceId(0), &ctx);
        assert_eq!(t.entries(), 1);
        t.forget_peer(7);
        assert_eq!(t.entries(), 0);
    }

    #[test]
    fn ineligible_paths_are_kept_but_never_selected() {
        let src = sources();
        let ctx = DecisionCtx::new(&src, 64512, false);
        let mut t: Table<Ipv4Net> = Table::default();
        let p: Ipv4Net = "10.9.0.0/24".parse().unwrap();
        assert!(!t.upsert(
            p,
            Path::new(SourceId(0), attrs(&[64512], None), Some(Ineligible::AsLoop)),
            &ctx
        ));
        assert!(t.get(&p).unwrap().best().is_none());
        assert_eq!(t.count_from(SourceId(0)), (1, 0));
    }
}
