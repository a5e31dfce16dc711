//! Import and export policy: what Ginger accepts from a peer and what it sends to one.
//!
//! Owns: the pure rules of RFC 4271 §9.1.2 / §9.1.3 / §5.1, RFC 4456 (route reflection), RFC 1997
//! well-known communities, next-hop handling (Calico's `nextHopMode`), and Calico's export filter
//! (learned routes only inside enabled pools, nothing inside `disableBGPExport` pools). Must not:
//! touch the RIB or sessions; callers pass in everything a rule needs.
//!
//! Import runs once per announce group of an UPDATE (all its prefixes share attributes); export
//! runs per (prefix, peer) when the speaker drains a peer's pending set, and is cached by the
//! caller per source attribute set so that equal inputs give the same `Arc`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::{ExportPolicy, NextHopMode};
use crate::rib::decision::DEFAULT_LOCAL_PREF;
use crate::rib::{Ineligible, SourceId, SourceInfo};
use crate::types::{AsPath, Asn, Family, NO_ADVERTISE, NO_EXPORT, NO_EXPORT_SUBCONFED, PathAttrs};

/// Who we are, for loop checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalIdentity {
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Our route-reflector cluster id, if we reflect.
    pub cluster_id: Option<Ipv4Addr>,
    /// Our own addresses (router id, node addresses, session local addresses).
    pub addresses: Vec<IpAddr>,
}

/// The session a route was received on.
#[derive(Clone, Copy, Debug)]
pub struct ImportSession {
    /// Our AS on that session.
    pub local_asn: Asn,
    /// The session is eBGP.
    pub ebgp: bool,
    /// How many times our AS may occur in a received AS_PATH (BIRD `allow local as <n>`,
    /// Calico `numAllowedLocalASNumbers`); 0 is the RFC 4271 §9.1.2 loop check.
    pub allow_local_as: u8,
}

/// Whether `path` is an AS loop for a session with `local_asn` that allows our AS `allowed`
/// times. Follows BIRD (proto/bgp/attrs.c `bgp_as_path_loopy`, nest/a-path.c
/// `as_path_contains`): `as_path_contains(path, local_as, allow_local_as + 1)` counts every
/// occurrence in every segment (sequences, sets and confederation segments alike, prepends
/// each count), and the path loops once the count reaches `allowed + 1`.
pub fn is_as_loop(path: &AsPath, local_asn: Asn, allowed: u8) -> bool {
    let mut seen = 0usize;
    for segment in &path.segments {
        seen += segment.asns().iter().filter(|a| **a == local_asn).count();
        if seen > usize::from(allowed) {
            return true;
        }
    }
    false
}

/// Apply import rules to the attributes of one announce group: strip what an eBGP peer may not
/// set, and decide whether the routes are usable. Returns the attributes to store (the same
/// `Arc` when nothing changed) and why the routes are ineligible, if they are.
pub fn import(
    attrs: &Arc<PathAttrs>,
    session: ImportSession,
    local: &LocalIdentity,
) -> (Arc<PathAttrs>, Option<Ineligible>) {
    let mut stored = attrs.clone();
    if session.ebgp
        && (attrs.local_pref.is_some()
            || attrs.originator_id.is_some()
            || !attrs.cluster_list.is_empty())
    {
        // RFC 4271 §5.1.5: LOCAL_PREF from an external peer is ignored; RFC 4456 §8: so are
        // ORIGINATOR_ID and CLUSTER_LIST.
        let mut a = (**attrs).clone();
        a.local_pref = None;
        a.originator_id = None;
        a.cluster_list.clear();
        stored = Arc::new(a);
    }
    let ineligible = if is_as_loop(&stored.as_path, session.local_asn, session.allow_local_as) {
        Some(Ineligible::AsLoop)
    } else if !session.ebgp && stored.originator_id == Some(local.router_id) {
        Some(Ineligible::OriginatorIsUs)
    } else if !session.ebgp
        && local
            .cluster_id
            .is_some_and(|c| stored.cluster_list.contains(&c))
    {
        Some(Ineligible::ClusterLoop)
    } else {
        match stored.next_hop {
            None => Some(Ineligible::NoNextHop),
            Some(nh) if nh.is_unspecified() => Some(Ineligible::NoNextHop),
            Some(nh) if local.addresses.contains(&nh) => Some(Ineligible::NextHopIsUs),
            Some(_) => None,
        }
    };
    (stored, ineligible)
}

/// The peer a route is exported to.
#[derive(Clone, Debug)]
pub struct ExportTarget {
    /// The peer's slot (routes are never sent back to where they came from).
    pub id: SourceId,
    /// The session is eBGP.
    pub ebgp: bool,
    /// The peer is our route-reflector client.
    pub rr_client: bool,
    /// Our AS on this session (prepended towards eBGP).
    pub local_asn: Asn,
    /// Next-hop handling.
    pub next_hop_mode: NextHopMode,
    /// Our IPv4 address for next-hop-self (the session's local address, or the node's).
    pub self_v4: Option<Ipv4Addr>,
    /// Our IPv6 address for next-hop-self.
    pub self_v6: Option<Ipv6Addr>,
    /// Our connected subnet the peer is in, if any: a next hop inside it reaches the peer
    /// directly, so `Auto` passes it on unchanged even towards eBGP (RFC 4271 §5.1.3).
    pub peer_subnet: Option<IpNet>,
}

/// Where the exported path came from.
#[derive(Clone, Copy, Debug)]
pub struct ExportSource<'a> {
    /// The source slot.
    pub id: SourceId,
    /// The peer, or `None` for a locally originated route.
    pub peer: Option<&'a SourceInfo>,
}

/// Why a route is not exported (for debugging and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotExported {
    /// The target is the peer we learned it from.
    SourcePeer,
    /// NO_ADVERTISE, or NO_EXPORT / NO_EXPORT_SUBCONFED towards eBGP (RFC 1997).
    WellKnownCommunity,
    /// Inside a `disableBGPExport` pool.
    Denied,
    /// A learned route outside every pool we may re-export (Calico's export filter).
    NotInAllowedPools,
    /// iBGP to iBGP without reflection (RFC 4271 §9.1.3), or non-client to non-client (RFC 4456 §6).
    IbgpSplitHorizon,
    /// We have no address of the prefix's family to use as next hop on this session.
    NoNextHopSelf,
}

/// Decide whether `prefix` with `attrs` from `source` goes to `target`, and with what attributes.
pub fn export(
    prefix: &IpNet,
    attrs: &PathAttrs,
    source: ExportSource<'_>,
    target: &ExportTarget,
    local: &LocalIdentity,
    filter: &ExportPolicy,
) -> Result<PathAttrs, NotExported> {
    check_prefix(prefix, source, filter)?;
    transform(Family::of(prefix), attrs, source, target, local)
}

/// The part of export policy that depends on the prefix: Calico's pool filter.
pub fn check_prefix(
    prefix: &IpNet,
    source: ExportSource<'_>,
    filter: &ExportPolicy,
) -> Result<(), NotExported> {
    if filter.deny_within.iter().any(|d| d.contains(prefix)) {
        return Err(NotExported::Denied);
    }
    if let (Some(_), Some(allowed)) = (source.peer, &filter.allow_learned_within)
        && !allowed.iter().any(|a| a.contains(prefix))
    {
        return Err(NotExported::NotInAllowedPools);
    }
    Ok(())
}

/// The part of export policy that depends only on the family, the attributes and the two
/// peers: the same inputs always give the same result, so callers cache it per attribute set.
pub fn transform(
    family: Family,
    attrs: &PathAttrs,
    source: ExportSource<'_>,
    target: &ExportTarget,
    local: &LocalIdentity,
) -> Result<PathAttrs, NotExported> {
    if source.id == target.id {
        return Err(NotExported::SourcePeer);
    }
    if attrs.communities.contains(&NO_ADVERTISE) {
        return Err(NotExported::WellKnownCommunity);
    }
    if target.ebgp
        && (attrs.communities.contains(&NO_EXPORT)
            || attrs.communities.contains(&NO_EXPORT_SUBCONFED))
    {
        return Err(NotExported::WellKnownCommunity);
    }
    let reflecting = match source.peer {
        Some(src) if !src.ebgp && !target.ebgp => {
            // RFC 4456 §6: a reflector sends client routes to everyone, non-client routes to
            // clients only; without reflection, iBGP routes stay off iBGP (RFC 4271 §9.1.3).
            if local.cluster_id.is_none() || !(src.rr_client || target.rr_client) {
                return Err(NotExported::IbgpSplitHorizon);
            }
            true
        }
        _ => false,
    };

    let mut out = attrs.clone();
    let keep_next_hop = match (target.ebgp, target.next_hop_mode) {
        (_, NextHopMode::SelfAddr) => false,
        (_, NextHopMode::Keep) => true,
        // BIRD's default: unchanged towards iBGP (incl. reflection); towards eBGP only when
        // the next hop is on the segment we share with the peer (a "third party" next hop, as
        // BIRD does between single-hop sessions on one interface), else our address.
        (ebgp, NextHopMode::Auto) => {
            !ebgp
                || out
                    .next_hop
                    .is_some_and(|nh| target.peer_subnet.is_some_and(|s| s.contains(&nh)))
        }
    };
    if source.peer.is_none() || !keep_next_hop || out.next_hop.is_none() {
        out.next_hop = Some(self_address(family, target).ok_or(NotExported::NoNextHopSelf)?);
        out.link_local_next_hop = None;
    }
    if target.ebgp {
        out.as_path = out.as_path.prepended(target.local_asn, 1);
        out.local_pref = None;
        out.originator_id = None;
        out.cluster_list.clear();
        if source.peer.is_some() {
            // RFC 4271 §5.1.4: a MED received from a neighbouring AS is not passed to others.
            out.med = None;
        }
    } else {
        out.local_pref = Some(attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
        if reflecting {
            let src = source.peer.expect("reflecting implies a peer source");
            // RFC 4456 §8: set ORIGINATOR_ID if absent, prepend our cluster id.
            out.originator_id = Some(attrs.originator_id.unwrap_or(src.router_id));
            if let Some(c) = local.cluster_id {
                out.cluster_list.insert(0, c);
            }
        }
    }
    Ok(out)
}

fn self_address(family: Family, target: &ExportTarget) -> Option<IpAddr> {
    match family {
        Family::Ipv4Unicast => target.self_v4.map(IpAddr::V4),
        Family::Ipv6Unicast => target.self_v6.map(IpAddr::V6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::AsSegment;

    fn local() -> LocalIdentity {
        LocalIdentity {
            router_id: "10.0.0.1".parse().unwrap(),
            cluster_id: None,
            addresses: vec!["10.0.0.1".parse().unwrap()],
        }
    }

    fn peer(ebgp: bool, rr_client: bool) -> SourceInfo {
        SourceInfo {
            name: "p".into(),
            ebgp,
            router_id: "10.0.0.2".parse().unwrap(),
            address: "10.0.0.2".parse().unwrap(),
            rr_client,
        }
    }

    fn target(ebgp: bool, rr_client: bool, mode: NextHopMode) -> ExportTarget {
        ExportTarget {
            id: SourceId(5),
            ebgp,
            rr_client,
            local_asn: 64512,
            next_hop_mode: mode,
            self_v4: Some("10.0.0.1".parse().unwrap()),
            self_v6: None,
            peer_subnet: None,
        }
    }

    fn learned(path: Vec<u32>, nh: &str) -> PathAttrs {
        let mut a = PathAttrs::local(vec![], vec![]);
        a.as_path = AsPath::sequence(path);
        a.next_hop = Some(nh.parse().unwrap());
        a.med = Some(5);
        a.local_pref = Some(300);
        a
    }

    const P: &str = "10.244.1.0/26";

    #[test]
    fn ebgp_import_strips_ibgp_only_attributes_and_checks_loops() {
        let mut a = learned(vec![65001], "10.0.0.2");
        a.originator_id = Some("1.1.1.1".parse().unwrap());
        let a = Arc::new(a);
        let s = ImportSession {
            local_asn: 64512,
            ebgp: true,
            allow_local_as: 0,
        };
        let (stored, bad) = import(&a, s, &local());
        assert_eq!(bad, None);
        assert_eq!(stored.local_pref, None);
        assert_eq!(stored.originator_id, None);

        let looped = Arc::new(learned(vec![65001, 64512], "10.0.0.2"));
        assert_eq!(import(&looped, s, &local()).1, Some(Ineligible::AsLoop));
        let to_us = Arc::new(learned(vec![65001], "10.0.0.1"));
        assert_eq!(import(&to_us, s, &local()).1, Some(Ineligible::NextHopIsUs));
    }

    /// RFC 4271 §9.1.2 loop check, loosened as BIRD's `allow local as <n>`: the AS-per-rack
    /// case, where the ToR passes a rack neighbour's block back with our AS in the path.
    #[test]
    fn allow_local_as_counts_every_occurrence_of_our_as() {
        let session = |allow_local_as| ImportSession {
            local_asn: 65001,
            ebgp: true,
            allow_local_as,
        };
        let verdict = |path: AsPath, allow: u8| {
            let mut a = learned(vec![], "10.0.0.2");
            a.as_path = path;
            import(&Arc::new(a), session(allow), &local()).1
        };
        let once = || AsPath::sequence(vec![65100, 65001]);
        let twice = || AsPath::sequence(vec![65100, 65001, 65200, 65001]);
        // n = 0 (the default): one occurrence is a loop.
        assert_eq!(verdict(once(), 0), Some(Ineligible::AsLoop));
        assert_eq!(verdict(AsPath::sequence(vec![65100, 65200]), 0), None);
        // n = 1: one occurrence is accepted, two are not.
        assert_eq!(verdict(once(), 1), None);
        assert_eq!(verdict(twice(), 1), Some(Ineligible::AsLoop));
        assert_eq!(verdict(twice(), 2), None);
        // Prepends count: `65001 65001` is two occurrences, as in BIRD's as_path_contains.
        let prepended = AsPath::sequence(vec![65100, 65001, 65001]);
        assert_eq!(verdict(prepended.clone(), 1), Some(Ineligible::AsLoop));
        assert_eq!(verdict(prepended, 2), None);
        // Every segment counts: one in a sequence and one in an AS_SET are two.
        let mixed = AsPath {
            segments: vec![
                AsSegment::Sequence(vec![65100, 65001]),
                AsSegment::Set(vec![65001, 65300]),
            ],
        };
        assert_eq!(verdict(mixed.clone(), 1), Some(Ineligible::AsLoop));
        assert_eq!(verdict(mixed, 2), None);
        // The check uses the session's AS (localASNumber), not some other AS in the path.
        assert!(!is_as_loop(&once(), 64512, 0));
        assert!(is_as_loop(&once(), 65100, 0));
    }

    #[test]
    fn rfc4456_8_reflection_loops_are_ineligible() {
        let mut me = local();
        me.cluster_id = Some("244.0.0.1".parse().unwrap());
        let s = ImportSession {
            local_asn: 64512,
            ebgp: false,
            allow_local_as: 0,
        };
        let mut a = learned(vec![], "10.0.0.3");
        a.originator_id = Some(me.router_id);
        assert_eq!(
            import(&Arc::new(a), s, &me).1,
            Some(Ineligible::OriginatorIsUs)
        );
        let mut a = learned(vec![], "10.0.0.3");
        a.cluster_list = vec!["244.0.0.1".parse().unwrap()];
        assert_eq!(
            import(&Arc::new(a), s, &me).1,
            Some(Ineligible::ClusterLoop)
        );
    }

    #[test]
    fn ebgp_export_prepends_sets_next_hop_self_and_drops_med() {
        let p: IpNet = P.parse().unwrap();
        let src = peer(true, false);
        let a = learned(vec![65001], "10.0.0.2");
        let out = export(
            &p,
            &a,
            ExportSource {
                id: SourceId(1),
                peer: Some(&src),
            },
            &target(true, false, NextHopMode::Auto),
            &local(),
            &ExportPolicy::default(),
        )
        .unwrap();
        assert_eq!(out.as_path.to_string(), "64512 65001");
        assert_eq!(out.next_hop, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(out.med, None);
        assert_eq!(out.local_pref, None);

        // On a segment shared with the peer, a next hop there is passed on (third party);
        // one outside it is not.
        let mut shared = target(true, false, NextHopMode::Auto);
        shared.peer_subnet = Some("10.0.0.0/24".parse().unwrap());
        let src_ibgp = peer(false, false);
        let from_ibgp = ExportSource {
            id: SourceId(1),
            peer: Some(&src_ibgp),
        };
        let policy = ExportPolicy::default();
        let out = export(&p, &a, from_ibgp, &shared, &local(), &policy).unwrap();
        assert_eq!(out.next_hop, Some("10.0.0.2".parse().unwrap()));
        let far = learned(vec![], "10.9.0.2");
        let out = export(&p, &far, from_ibgp, &shared, &local(), &policy).unwrap();
        assert_eq!(out.next_hop, Some("10.0.0.1".parse().unwrap()));

        // nextHopMode Keep keeps it even towards eBGP.
        let out = export(
            &p,
            &a,
            ExportSource {
                id: SourceId(1),
                peer: Some(&src),
            },
            &target(true, false, NextHopMode::Keep),
            &local(),
            &ExportPolicy::default(),
        )
        .unwrap();
        assert_eq!(out.next_hop, Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn local_routes_get_our_next_hop_and_default_local_pref_on_ibgp() {
        let p: IpNet = P.parse().unwrap();
        let a = PathAttrs::local(vec![0xFDE8_0001], vec![]);
        let out = export(
            &p,
            &a,
            ExportSource {
                id: SourceId::LOCAL,
                peer: None,
            },
            &target(false, false, NextHopMode::Keep),
            &local(),
            &ExportPolicy::default(),
        )
        .unwrap();
        assert_eq!(out.next_hop, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(out.local_pref, Some(100));
        assert!(out.as_path.segments.is_empty());
        assert_eq!(out.communities, vec![0xFDE8_0001]);
        // An IPv6 route over a session where we have no IPv6 address cannot be sent.
        let p6: IpNet = "fd00:10::/122".parse().unwrap();
        assert_eq!(
            export(
                &p6,
                &a,
                ExportSource {
                    id: SourceId::LOCAL,
                    peer: None
                },
                &target(false, false, NextHopMode::Auto),
                &local(),
                &ExportPolicy::default()
            ),
            Err(NotExported::NoNextHopSelf)
        );
    }

    #[test]
    fn ibgp_split_horizon_and_rfc4456_6_reflection() {
        let p: IpNet = P.parse().unwrap();
        let client = peer(false, true);
        let non_client = peer(false, false);
        let a = learned(vec![], "10.0.0.2");
        let src = |s| ExportSource {
            id: SourceId(1),
            peer: Some(s),
        };
        let none = ExportPolicy::default();
        // Not a reflector: never iBGP → iBGP.
        assert_eq!(
            export(
                &p,
                &a,
                src(&client),
                &target(false, true, NextHopMode::Auto),
                &local(),
                &none
            ),
            Err(NotExported::IbgpSplitHorizon)
        );
        let mut rr = local();
        rr.cluster_id = Some("244.0.0.1".parse().unwrap());
        // Non-client → non-client: no.
        assert_eq!(
            export(
                &p,
                &a,
                src(&non_client),
                &target(false, false, NextHopMode::Auto),
                &rr,
                &none
            ),
            Err(NotExported::IbgpSplitHorizon)
        );
        // Client → non-client: yes, with ORIGINATOR_ID and CLUSTER_LIST, next hop unchanged.
        let out = export(
            &p,
            &a,
            src(&client),
            &target(false, false, NextHopMode::Auto),
            &rr,
            &none,
        )
        .unwrap();
        assert_eq!(out.originator_id, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(
            out.cluster_list,
            vec!["244.0.0.1".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(out.next_hop, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(out.local_pref, Some(300));
        // Never back to the source.
        let mut back = target(false, true, NextHopMode::Auto);
        back.id = SourceId(1);
        assert_eq!(
            export(&p, &a, src(&client), &back, &rr, &none),
            Err(NotExported::SourcePeer)
        );
    }

    #[test]
    fn calico_export_filter_and_well_known_communities() {
        let p: IpNet = P.parse().unwrap();
        let outside: IpNet = "0.0.0.0/0".parse().unwrap();
        let src = peer(true, false);
        let s = ExportSource {
            id: SourceId(1),
            peer: Some(&src),
        };
        let pools = ExportPolicy {
            allow_learned_within: Some(vec!["10.244.0.0/16".parse().unwrap()]),
            deny_within: vec!["10.244.1.0/24".parse().unwrap()],
        };
        let a = learned(vec![65001], "10.0.0.2");
        let t = target(true, false, NextHopMode::Auto);
        assert_eq!(
            export(&p, &a, s, &t, &local(), &pools),
            Err(NotExported::Denied)
        );
        assert_eq!(
            export(&outside, &a, s, &t, &local(), &pools),
            Err(NotExported::NotInAllowedPools)
        );
        let mut no_export = a.clone();
        no_export.communities = vec![NO_EXPORT];
        assert_eq!(
            export(&p, &no_export, s, &t, &local(), &ExportPolicy::default()),
            Err(NotExported::WellKnownCommunity)
        );
    }
}
