//! The routing information bases: Loc-RIB with every received path (so it doubles as the
//! Adj-RIB-In of each peer), the decision process, and per-peer Adj-RIB-Out.
//!
//! Owns: per-family tables keyed by prefix, each prefix's candidate paths ordered best first, the
//! equal-cost multipath group, and stale marking for graceful restart. Must not: do I/O, decide
//! import/export policy (that is `policy`), or know about sessions beyond a `SourceId`.
//!
//! Paths enter through `Table::upsert` / `Table::remove` (one prefix at a time, already passed
//! through import policy); each call reports whether the best path or multipath group changed,
//! which is what the speaker exports and publishes. Why a path is not the best is not stored: it
//! is recomputed by `decision::explain` when someone asks (`gingerctl route show`), so the table
//! costs no memory for it.

pub mod adj_out;
pub mod decision;

use std::collections::HashMap;
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
            && (Arc::ptr_eq(&self.attrs, &other.attrs) || self.attrs == other.attrs)
    }
}

/// All paths to one prefix: the best first, then its multipath siblings, then the rest.
#[derive(Clone, Debug, Default)]
pub struct Dest {
    paths: SmallVec<[Path; 1]>,
    /// How many leading paths form the best + multipath group (0: nothing eligible).
    selected: u8,
}

impl Dest {
    /// Every path, best first.
    pub fn paths(&self) -> &[Path] {
        &self.paths
    }

    /// The best path, if any path is eligible.
    pub fn best(&self) -> Option<&Path> {
        if self.selected > 0 {
            self.paths.first()
        } else {
            None
        }
    }

    /// The best path and its equal-cost siblings.
    pub fn selected(&self) -> &[Path] {
        &self.paths[..self.selected as usize]
    }

    /// The path from `source`, if any.
    pub fn from_source(&self, source: SourceId) -> Option<&Path> {
        self.paths.iter().find(|p| p.source == source)
    }

    fn snapshot_selected(&self) -> SmallVec<[(SourceId, *const PathAttrs, bool); 2]> {
        self.selected()
            .iter()
            .map(|p| (p.source, Arc::as_ptr(&p.attrs), p.stale))
            .collect()
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

/// One family's table.
#[derive(Debug)]
pub struct Table<P: Prefix> {
    dests: HashMap<P, Dest, RandomState>,
}

impl<P: Prefix> Default for Table<P> {
    fn default() -> Self {
        Table {
            dests: HashMap::default(),
        }
    }
}

impl<P: Prefix> Table<P> {
    /// Number of prefixes with at least one path.
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }

    /// The paths to `prefix`.
    pub fn get(&self, prefix: &P) -> Option<&Dest> {
        self.dests.get(prefix)
    }

    /// Every prefix and its paths, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&P, &Dest)> {
        self.dests.iter()
    }

    /// Insert or replace the path from `path.source` to `prefix`. Returns whether the selected
    /// group (best + multipath) changed.
    pub fn upsert(&mut self, prefix: P, path: Path, ctx: &DecisionCtx<'_>) -> bool {
        let dest = self.dests.entry(prefix).or_default();
        let before = dest.snapshot_selected();
        match dest.paths.iter_mut().find(|p| p.source == path.source) {
            Some(existing) => {
                if existing.same_as(&path) && existing.ineligible == path.ineligible {
                    return false;
                }
                *existing = path;
            }
            None => dest.paths.push(path),
        }
        dest.selected = decision::select(&mut dest.paths, ctx);
        before != dest.snapshot_selected()
    }

    /// Remove the path from `source` to `prefix`. Returns whether the selected group changed.
    pub fn remove(&mut self, prefix: &P, source: SourceId, ctx: &DecisionCtx<'_>) -> bool {
        let Some(dest) = self.dests.get_mut(prefix) else {
            return false;
        };
        let Some(pos) = dest.paths.iter().position(|p| p.source == source) else {
            return false;
        };
        let was_selected = pos < dest.selected as usize;
        dest.paths.remove(pos);
        if dest.paths.is_empty() {
            self.dests.remove(prefix);
            return was_selected;
        }
        if !was_selected {
            return false;
        }
        dest.selected = decision::select(&mut dest.paths, ctx);
        true
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
            let before = dest.snapshot_selected();
            let mut touched = false;
            for p in dest.paths.iter_mut().filter(|p| p.source == source) {
                p.stale = true;
                touched = true;
            }
            if touched {
                dest.selected = decision::select(&mut dest.paths, ctx);
                if before != dest.snapshot_selected() {
                    changed.push(*prefix);
                }
            }
        }
        changed
    }

    /// Remove the paths from `source` still marked stale (End-of-RIB received or restart timer
    /// expired). Returns the prefixes whose selected group changed.
    pub fn sweep_stale(&mut self, source: SourceId, ctx: &DecisionCtx<'_>) -> Vec<P> {
        self.retain_paths(ctx, |p| !(p.source == source && p.stale))
    }

    /// Re-run the decision process everywhere (a source's attributes, e.g. its router id,
    /// changed). Returns the prefixes whose selected group changed.
    pub fn reselect_all(&mut self, ctx: &DecisionCtx<'_>) -> Vec<P> {
        let mut changed = Vec::new();
        for (prefix, dest) in self.dests.iter_mut() {
            let before = dest.snapshot_selected();
            dest.selected = decision::select(&mut dest.paths, ctx);
            if before != dest.snapshot_selected() {
                changed.push(*prefix);
            }
        }
        changed
    }

    fn retain_paths(&mut self, ctx: &DecisionCtx<'_>, keep: impl Fn(&Path) -> bool) -> Vec<P> {
        let mut changed = Vec::new();
        self.dests.retain(|prefix, dest| {
            let before_len = dest.paths.len();
            let selected_len = dest.selected as usize;
            let lost_selected = dest.paths[..selected_len].iter().any(|p| !keep(p));
            dest.paths.retain(|p| keep(p));
            if dest.paths.len() == before_len {
                return true;
            }
            if dest.paths.is_empty() {
                if selected_len > 0 {
                    changed.push(*prefix);
                }
                return false;
            }
            if lost_selected {
                dest.selected = decision::select(&mut dest.paths, ctx);
                changed.push(*prefix);
            }
            true
        });
        changed
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

    /// Total prefixes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether both tables are empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

#[cfg(test)]
mod tests {
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
