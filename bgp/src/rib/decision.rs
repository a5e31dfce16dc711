//! The BGP decision process (RFC 4271 §9.1.2.2 with RFC 4456 §9 tie-breakers) and the
//! equal-cost multipath group.
//!
//! Owns: choosing the best path among a prefix's candidates, the multipath siblings, and the
//! explanation of why each other path lost. Must not: change attributes or look at anything
//! but the candidate paths and the `DecisionCtx`.
//!
//! The process eliminates candidates step by step, as the RFC describes it, rather than sorting
//! with a pairwise comparator: MED is only comparable between paths from the same neighbour AS,
//! which makes a pairwise order non-transitive. Steps:
//!  0. eligible only (no loop, usable next hop); non-stale over stale (as BIRD does);
//!  1. locally originated routes first (BIRD's static preference over BGP);
//!  2. highest LOCAL_PREF (100 when absent);           — §9.1.2.2 preamble / §9.1.1
//!  3. shortest AS_PATH (a set counts 1);               — §9.1.2.2 a
//!  4. lowest ORIGIN;                                   — §9.1.2.2 b
//!  5. lowest MED among paths from the same neighbour AS (absent = 0); — §9.1.2.2 c
//!  6. eBGP over iBGP;                                  — §9.1.2.2 d
//!     (IGP cost to the next hop: all equal here)       — §9.1.2.2 e
//!     → what remains is the multipath group;
//!  7. lowest ORIGINATOR_ID, else BGP identifier;       — §9.1.2.2 f, RFC 4456 §9
//!  8. shortest CLUSTER_LIST;                           — RFC 4456 §9
//!  9. lowest peer address.                             — §9.1.2.2 g

use std::net::{IpAddr, Ipv4Addr};

use smallvec::SmallVec;

use super::{Path, SourceId, SourceInfo};
use crate::types::{Asn, Origin};

/// LOCAL_PREF assumed when a path has none (RFC 4271 §5.1.5 common default, BIRD's too).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What the decision process needs beyond the paths themselves.
#[derive(Clone, Copy, Debug)]
pub struct DecisionCtx<'a> {
    /// Peer information, indexed by `SourceId.0`.
    pub sources: &'a [Option<SourceInfo>],
    /// Our AS (the neighbour AS of internal routes with an empty AS_PATH).
    pub local_asn: Asn,
    /// Keep an equal-cost multipath group (else only the best is selected).
    pub multipath: bool,
    /// Our router id, for locally originated routes in tie-breaks.
    pub router_id: Ipv4Addr,
}

impl<'a> DecisionCtx<'a> {
    /// A context over the given source table.
    pub fn new(sources: &'a [Option<SourceInfo>], local_asn: Asn, multipath: bool) -> Self {
        DecisionCtx {
            sources,
            local_asn,
            multipath,
            router_id: Ipv4Addr::UNSPECIFIED,
        }
    }

    fn source(&self, id: SourceId) -> Option<&SourceInfo> {
        self.sources.get(id.0 as usize).and_then(|s| s.as_ref())
    }

    fn is_ebgp(&self, p: &Path) -> bool {
        self.source(p.source).is_some_and(|s| s.ebgp)
    }

    fn neighbor_as(&self, p: &Path) -> Asn {
        p.attrs.as_path.neighbor_as().unwrap_or(self.local_asn)
    }

    fn tie_id(&self, p: &Path) -> u32 {
        if let Some(o) = p.attrs.originator_id {
            return u32::from(o);
        }
        match self.source(p.source) {
            Some(s) => u32::from(s.router_id),
            None => u32::from(self.router_id),
        }
    }

    fn peer_address(&self, p: &Path) -> Option<IpAddr> {
        self.source(p.source).map(|s| s.address)
    }
}

fn local_pref(p: &Path) -> u32 {
    p.attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
}

fn med(p: &Path) -> u32 {
    p.attrs.med.unwrap_or(0)
}

fn origin_rank(o: Origin) -> u8 {
    o as u8
}

/// The steps, in order; a path eliminated at a step loses for that step's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Stale,
    Local,
    LocalPref,
    AsPathLen,
    Origin,
    Med,
    Ebgp,
    RouterId,
    ClusterList,
    PeerAddress,
}

type Candidates = SmallVec<[usize; 8]>;

/// Keep the candidates minimising `key`; report the eliminated ones.
fn keep_min<K: Ord + Copy>(
    c: &mut Candidates,
    key: impl Fn(usize) -> K,
    eliminated: &mut dyn FnMut(usize),
) {
    let Some(min) = c.iter().map(|&i| key(i)).min() else {
        return;
    };
    c.retain(|i| {
        let keep = key(*i) == min;
        if !keep {
            eliminated(*i);
        }
        keep
    });
}

/// Run the elimination over `paths`, calling `lost(index, step)` for each eliminated path.
/// Returns the multipath group (indices, best first).
fn eliminate(
    paths: &[Path],
    ctx: &DecisionCtx<'_>,
    lost: &mut dyn FnMut(usize, Step),
) -> Candidates {
    let mut c: Candidates = (0..paths.len())
        .filter(|&i| paths[i].ineligible.is_none())
        .collect();
    if c.len() <= 1 {
        return c;
    }
    keep_min(&mut c, |i| paths[i].stale, &mut |i| lost(i, Step::Stale));
    keep_min(&mut c, |i| !paths[i].source.is_local(), &mut |i| {
        lost(i, Step::Local)
    });
    keep_min(
        &mut c,
        |i| std::cmp::Reverse(local_pref(&paths[i])),
        &mut |i| lost(i, Step::LocalPref),
    );
    keep_min(
        &mut c,
        |i| paths[i].attrs.as_path.len_for_decision(),
        &mut |i| lost(i, Step::AsPathLen),
    );
    keep_min(&mut c, |i| origin_rank(paths[i].attrs.origin), &mut |i| {
        lost(i, Step::Origin)
    });
    // §9.1.2.2 c: per neighbour AS, drop paths whose MED exceeds that AS's minimum.
    if c.len() > 1 {
        let mut mins: SmallVec<[(Asn, u32); 4]> = SmallVec::new();
        for &i in &c {
            let asn = ctx.neighbor_as(&paths[i]);
            let m = med(&paths[i]);
            match mins.iter_mut().find(|(a, _)| *a == asn) {
                Some((_, cur)) => *cur = (*cur).min(m),
                None => mins.push((asn, m)),
            }
        }
        c.retain(|i| {
            let asn = ctx.neighbor_as(&paths[*i]);
            let min = mins.iter().find(|(a, _)| *a == asn).map(|(_, m)| *m);
            let keep = Some(med(&paths[*i])) == min;
            if !keep {
                lost(*i, Step::Med);
            }
            keep
        });
    }
    keep_min(&mut c, |i| !ctx.is_ebgp(&paths[i]), &mut |i| {
        lost(i, Step::Ebgp)
    });
    // The multipath group is what is left; order it by the remaining tie-breakers so the best
    // comes first.
    c.sort_by(|&a, &b| {
        let (pa, pb) = (&paths[a], &paths[b]);
        ctx.tie_id(pa)
            .cmp(&ctx.tie_id(pb))
            .then(
                pa.attrs
                    .cluster_list
                    .len()
                    .cmp(&pb.attrs.cluster_list.len()),
            )
            .then(ctx.peer_address(pa).cmp(&ctx.peer_address(pb)))
            .then(pa.source.cmp(&pb.source))
    });
    c
}

/// Reorder `paths` so the best path comes first, followed by its multipath siblings; return
/// how many paths form that group (0 when no path is eligible).
pub fn select(paths: &mut [Path], ctx: &DecisionCtx<'_>) -> u8 {
    if paths.len() == 1 {
        return u8::from(paths[0].ineligible.is_none());
    }
    let group = eliminate(paths, ctx, &mut |_, _| {});
    if group.is_empty() {
        return 0;
    }
    let keep = if ctx.multipath {
        group.len().min(u8::MAX as usize)
    } else {
        1
    };
    // Move the selected indices to the front, in group order.
    let mut order: SmallVec<[usize; 8]> = group[..keep].iter().copied().collect();
    for i in 0..paths.len() {
        if !order.contains(&i) {
            order.push(i);
        }
    }
    apply_order(paths, &order);
    keep as u8
}

/// Permute `paths` so that new position k holds old index `order[k]`.
fn apply_order(paths: &mut [Path], order: &[usize]) {
    if order.iter().enumerate().all(|(k, &i)| k == i) {
        return;
    }
    let old: Vec<Path> = paths.to_vec();
    for (k, &i) in order.iter().enumerate() {
        paths[k] = old[i].clone();
    }
}

/// For each path (in the given order, as `select` left them): `None` for the best path and its
/// multipath siblings, else why it is not the best.
pub fn explain(paths: &[Path], ctx: &DecisionCtx<'_>) -> Vec<Option<String>> {
    let mut reasons: Vec<Option<String>> = vec![None; paths.len()];
    let mut steps: Vec<Option<Step>> = vec![None; paths.len()];
    let group = eliminate(paths, ctx, &mut |i, step| steps[i] = Some(step));
    let best = group.first().copied();
    for (i, p) in paths.iter().enumerate() {
        if let Some(why) = p.ineligible {
            reasons[i] = Some(format!("ineligible: {why}"));
            continue;
        }
        let Some(b) = best else { continue };
        let bp = &paths[b];
        let step = match steps[i] {
            Some(s) => s,
            None if i == b => continue,
            None if ctx.multipath => continue,
            // Lost one of the final tie-breakers to the best path.
            None => {
                if ctx.tie_id(p) != ctx.tie_id(bp) {
                    Step::RouterId
                } else if p.attrs.cluster_list.len() != bp.attrs.cluster_list.len() {
                    Step::ClusterList
                } else {
                    Step::PeerAddress
                }
            }
        };
        reasons[i] = Some(describe(step, p, bp, ctx));
    }
    reasons
}

fn describe(step: Step, p: &Path, best: &Path, ctx: &DecisionCtx<'_>) -> String {
    match step {
        Step::Stale => "stale (graceful restart), a fresh path exists".to_string(),
        Step::Local => "locally originated route preferred".to_string(),
        Step::LocalPref => format!(
            "lower LOCAL_PREF ({} < {})",
            local_pref(p),
            local_pref(best)
        ),
        Step::AsPathLen => format!(
            "longer AS_PATH ({} > {})",
            p.attrs.as_path.len_for_decision(),
            best.attrs.as_path.len_for_decision()
        ),
        Step::Origin => format!("worse ORIGIN ({} vs {})", p.attrs.origin, best.attrs.origin),
        Step::Med => format!(
            "higher MED ({}) than another path from AS {}",
            med(p),
            ctx.neighbor_as(p)
        ),
        Step::Ebgp => "iBGP path, an eBGP path is preferred".to_string(),
        Step::RouterId => format!(
            "higher router id ({} > {})",
            Ipv4Addr::from(ctx.tie_id(p)),
            Ipv4Addr::from(ctx.tie_id(best))
        ),
        Step::ClusterList => format!(
            "longer CLUSTER_LIST ({} > {})",
            p.attrs.cluster_list.len(),
            best.attrs.cluster_list.len()
        ),
        Step::PeerAddress => "higher peer address".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rib::Ineligible;
    use crate::types::{AsPath, PathAttrs};

    struct Fixture {
        sources: Vec<Option<SourceInfo>>,
    }

    impl Fixture {
        /// Peers 0..n: peer i has router id 10.0.0.(10+i); `ebgp` lists the eBGP ones.
        fn new(n: usize, ebgp: &[usize]) -> Fixture {
            Fixture {
                sources: (0..n)
                    .map(|i| {
                        Some(SourceInfo {
                            name: format!("p{i}"),
                            ebgp: ebgp.contains(&i),
                            router_id: Ipv4Addr::new(10, 0, 0, 10 + i as u8),
                            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + i as u8)),
                            rr_client: false,
                        })
                    })
                    .collect(),
            }
        }
        fn ctx(&self, multipath: bool) -> DecisionCtx<'_> {
            DecisionCtx::new(&self.sources, 64512, multipath)
        }
    }

    #[derive(Default, Clone)]
    struct A {
        path: Vec<u32>,
        lp: Option<u32>,
        med: Option<u32>,
        origin: Option<Origin>,
        originator: Option<Ipv4Addr>,
        clusters: usize,
        nh: Option<&'static str>,
    }

    fn path(src: u32, a: A) -> Path {
        let mut pa = PathAttrs::local(vec![], vec![]);
        pa.as_path = AsPath::sequence(a.path);
        pa.local_pref = a.lp;
        pa.med = a.med;
        pa.origin = a.origin.unwrap_or(Origin::Igp);
        pa.originator_id = a.originator;
        pa.cluster_list = vec![Ipv4Addr::new(1, 1, 1, 1); a.clusters];
        pa.next_hop = Some(a.nh.unwrap_or("10.0.0.1").parse().unwrap());
        Path::new(SourceId(src), Arc::new(pa), None)
    }

    fn best_of(paths: &mut [Path], ctx: &DecisionCtx<'_>) -> (u32, u8) {
        let n = select(paths, ctx);
        (paths[0].source.0, n)
    }

    #[test]
    fn rfc4271_9_1_2_2_steps_in_order() {
        let f = Fixture::new(4, &[2]);
        let ctx = f.ctx(false);
        // Highest LOCAL_PREF beats a shorter path.
        let mut p = vec![
            path(
                0,
                A {
                    path: vec![1],
                    lp: Some(100),
                    ..A::default()
                },
            ),
            path(
                1,
                A {
                    path: vec![1, 2, 3],
                    lp: Some(200),
                    ..A::default()
                },
            ),
        ];
        assert_eq!(best_of(&mut p, &ctx), (1, 1));
        // a) shortest AS_PATH.
        let mut p = vec![
            path(
                0,
                A {
                    path: vec![1, 2],
                    ..A::default()
                },
            ),
            path(
                1,
                A {
                    path: vec![3],
                    ..A::default()
                },
            ),
        ];
        assert_eq!(best_of(&mut p, &ctx).0, 1);
        // b) lowest ORIGIN.
        let mut p = vec![
            path(
                0,
                A {
                    path: vec![1],
                    origin: Some(Origin::Incomplete),
                    ..A::default()
                },
            ),
            path(
                1,
                A {
                    path: vec![2],
                    origin: Some(Origin::Egp),
                    ..A::default()
                },
            ),
        ];
        assert_eq!(best_of(&mut p, &ctx).0, 1);
        // c) lowest MED from the same neighbour AS.
        let mut p = vec![
            path(
                0,
                A {
                    path: vec![7],
                    med: Some(20),
                    ..A::default()
                },
            ),
            path(
                1,
                A {
                    path: vec![7],
                    med: Some(10),
                    ..A::default()
                },
            ),
        ];
        assert_eq!(best_of(&mut p, &ctx).0, 1);
        // d) eBGP over iBGP.
        let mut p = vec![
            path(
                0,
                A {
                    path: vec![7],
                    ..A::default()
                },
            ),
            path(
                2,
                A {
                    path: vec![8],
                    ..A::default()
                },
            ),
        ];
        assert_eq!(best_of(&mut p, &ctx).0, 2);
        // f) lowest router id.
        let mut p = vec![
            path(
                3,
                A {
                    path: vec![7],
                    ..A::default()
                },
            ),
            path(
                1,
                A {
                    path: vec![8],
                    ..A::default()
                },
            ),
        ];
        assert_eq!(best_of(&mut p, &ctx).0, 1);
    }

    #[test]
    fn med_is_not_compared_across_neighbour_ases() {
        // RFC 4271 §9.1.2.2 c: path 0 (AS 7, MED 50) and path 1 (AS 8, MED 10) both survive,
        // then the router id decides.
        let f = Fixture::new(2, &[]);
        let ctx = f.ctx(false);
        let mut p = vec![
            path(
                1,
                A {
                    path: vec![8],
                    med: Some(10),
                    ..A::default()
                },
            ),
            path(
                0,
                A {
                    path: vec![7],
                    med: Some(50),
                    ..A::default()
                },
            ),
        ];
        assert_eq!(best_of(&mut p, &ctx).0, 0);
    }

    #[test]
    fn rfc4456_originator_id_and_cluster_list_break_ties() {
        let f = Fixture::new(2, &[]);
        let ctx = f.ctx(false);
        // ORIGINATOR_ID replaces the peer's router id (RFC 4456 §9).
        let mut p = vec![
            path(
                0,
                A {
                    path: vec![],
                    originator: Some(Ipv4Addr::new(10, 9, 9, 9)),
                    ..A::default()
                },
            ),
            path(
                1,
                A {
                    path: vec![],
                    originator: Some(Ipv4Addr::new(10, 1, 1, 1)),
                    ..A::default()
                },
            ),
        ];
        assert_eq!(best_of(&mut p, &ctx).0, 1);
        // Same originator: the shorter CLUSTER_LIST wins.
        let o = Some(Ipv4Addr::new(10, 1, 1, 1));
        let mut p = vec![
            path(
                0,
                A {
                    path: vec![],
                    originator: o,
                    clusters: 2,
                    ..A::default()
                },
            ),
            path(
                1,
                A {
                    path: vec![],
                    originator: o,
                    clusters: 1,
                    ..A::default()
                },
            ),
        ];
        assert_eq!(best_of(&mut p, &ctx).0, 1);
        let why = explain(&p, &ctx);
        assert_eq!(why[0], None);
        assert_eq!(why[1].as_deref(), Some("longer CLUSTER_LIST (2 > 1)"));
    }

    #[test]
    fn equal_paths_form_a_multipath_group_best_first() {
        let f = Fixture::new(3, &[]);
        let ctx = f.ctx(true);
        let mut p = vec![
            path(
                2,
                A {
                    path: vec![],
                    nh: Some("10.0.0.3"),
                    ..A::default()
                },
            ),
            path(
                0,
                A {
                    path: vec![],
                    nh: Some("10.0.0.1"),
                    ..A::default()
                },
            ),
            path(
                1,
                A {
                    path: vec![9],
                    nh: Some("10.0.0.2"),
                    ..A::default()
                },
            ),
        ];
        let (best, n) = best_of(&mut p, &ctx);
        assert_eq!((best, n), (0, 2));
        assert_eq!(p[1].source, SourceId(2));
        let why = explain(&p, &ctx);
        assert_eq!(why[0], None);
        assert_eq!(why[1], None);
        assert_eq!(why[2].as_deref(), Some("longer AS_PATH (1 > 0)"));
    }

    #[test]
    fn local_routes_win_and_ineligible_or_stale_lose() {
        let f = Fixture::new(2, &[]);
        let ctx = f.ctx(false);
        let mut local = path(0, A::default());
        local.source = SourceId::LOCAL;
        let mut p = vec![
            path(
                0,
                A {
                    lp: Some(500),
                    ..A::default()
                },
            ),
            local,
        ];
        assert!(best_of(&mut p, &ctx).0 == SourceId::LOCAL.0);

        let mut looped = path(
            0,
            A {
                lp: Some(500),
                ..A::default()
            },
        );
        looped.ineligible = Some(Ineligible::AsLoop);
        let mut stale = path(
            1,
            A {
                lp: Some(900),
                ..A::default()
            },
        );
        stale.stale = true;
        let fresh = path(
            1,
            A {
                lp: Some(10),
                ..A::default()
            },
        );
        let mut p = vec![looped.clone(), stale, fresh.clone()];
        // Stale loses to any fresh path, whatever its LOCAL_PREF.
        select(&mut p, &ctx);
        assert_eq!(p[0], fresh);
        let why = explain(&p, &ctx);
        assert!(
            why.iter()
                .flatten()
                .any(|w| w.starts_with("ineligible: AS loop"))
        );
        assert!(why.iter().flatten().any(|w| w.starts_with("stale")));

        let mut only_bad = vec![looped];
        assert_eq!(select(&mut only_bad, &ctx), 0);
    }

    #[test]
    fn explain_names_the_losing_step() {
        let f = Fixture::new(3, &[1]);
        let ctx = f.ctx(false);
        let mut p = vec![
            path(
                0,
                A {
                    path: vec![1],
                    lp: Some(50),
                    ..A::default()
                },
            ),
            path(
                1,
                A {
                    path: vec![1],
                    ..A::default()
                },
            ),
            path(
                2,
                A {
                    path: vec![1],
                    ..A::default()
                },
            ),
        ];
        select(&mut p, &ctx);
        assert_eq!(p[0].source, SourceId(1));
        let why = explain(&p, &ctx);
        let by_src = |s: u32| why[p.iter().position(|x| x.source.0 == s).unwrap()].clone();
        assert_eq!(by_src(0).as_deref(), Some("lower LOCAL_PREF (50 < 100)"));
        assert_eq!(
            by_src(2).as_deref(),
            Some("iBGP path, an eBGP path is preferred")
        );
        assert_eq!(by_src(1), None);
    }
}
