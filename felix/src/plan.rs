//! `plan(desired, programmed, ctx) -> Plan`: the pure diff between what the agent wants and what
//! the kernel holds. It decides which kernel route each desired object becomes (workload
//! `/32 dev caliX scope link`, `blackhole <block>`, `<prefix> via <gw>` or ECMP), which desired
//! routes cannot be programmed and why, and which owned kernel objects must go. A workload's
//! permanent neighbour entry carries the MAC its pod-side veth end has now (`Programmed::peers`)
//! when that was read, else the MAC the endpoint reported. It never does I/O:
//! next-hop resolutions and the grace-period set come in through `PlanContext`, ops go out to
//! `Dataplane::apply`. Foreign routes (see `ownership`) are never in an op.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{DesiredState, Link, Neighbour, NextHop, Resolution, Route};
use crate::ownership::Ownership;
use crate::programmed::Programmed;

/// One kernel write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create a route that is not there (`NLM_F_CREATE|NLM_F_EXCL`).
    AddRoute(Route),
    /// Overwrite the route with the same key (`NLM_F_CREATE|NLM_F_REPLACE`).
    ReplaceRoute(Route),
    /// Delete exactly this route.
    DeleteRoute(Route),
    /// Create or overwrite a permanent neighbour entry.
    SetNeighbour(Neighbour),
    /// Delete a neighbour entry.
    DeleteNeighbour(Neighbour),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddRoute(r) => write!(f, "add route {}", r.dst),
            Op::ReplaceRoute(r) => write!(f, "replace route {}", r.dst),
            Op::DeleteRoute(r) => write!(f, "delete route {} (proto {})", r.dst, r.protocol),
            Op::SetNeighbour(n) => write!(
                f,
                "set neighbour {} lladdr {} ifindex {}",
                n.ip, n.mac, n.ifindex
            ),
            Op::DeleteNeighbour(n) => write!(f, "delete neighbour {} ifindex {}", n.ip, n.ifindex),
        }
    }
}

/// Where a desired route came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteSource {
    Workload { ifname: String },
    Blackhole,
    Remote,
}

/// Why a desired route is not in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The workload's host link does not exist (yet).
    LinkMissing { ifname: String },
    /// The workload's host link is administratively down; the kernel refuses routes on it.
    LinkDown { ifname: String },
    /// Another workload endpoint already holds this address.
    DuplicateAddress { holder: String },
    /// A remote route for one of this node's own blocks: the blackhole stays.
    OwnBlock,
    /// A local workload holds this address.
    LocalWorkload { ifname: String },
    /// No next hop resolves through the FIB.
    Unresolvable { next_hops: Vec<(IpAddr, String)> },
    /// A route Ginger does not own holds the same destination and metric.
    ForeignRoute { protocol: u8 },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::LinkMissing { ifname } => write!(f, "link {ifname} does not exist"),
            Reason::LinkDown { ifname } => write!(f, "link {ifname} is down"),
            Reason::DuplicateAddress { holder } => {
                write!(f, "address already used by workload link {holder}")
            }
            Reason::OwnBlock => write!(f, "this node owns the block; its blackhole route stays"),
            Reason::LocalWorkload { ifname } => write!(f, "a local workload on {ifname} holds it"),
            Reason::Unresolvable { next_hops } => {
                write!(f, "no next hop resolves:")?;
                for (nh, why) in next_hops {
                    write!(f, " {nh} ({why})")?;
                }
                Ok(())
            }
            Reason::ForeignRoute { protocol } => {
                write!(
                    f,
                    "a route Ginger does not own (proto {protocol}) holds this destination"
                )
            }
        }
    }
}

/// A desired route left out of the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub dst: IpNet,
    pub source: RouteSource,
    pub reason: Reason,
}

/// Inputs to `plan` that come from I/O done beforehand.
#[derive(Clone, Copy, Debug)]
pub struct PlanContext<'a> {
    pub ownership: &'a Ownership,
    /// FIB resolution of every remote next hop (missing entries count as unresolved).
    pub resolved: &'a BTreeMap<IpAddr, Resolution>,
    /// Workload links still in their grace period: nothing on them is deleted.
    pub grace_links: &'a BTreeSet<u32>,
}

/// The ops that bring the kernel to the desired state, and what cannot be programmed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub rejected: Vec<Rejected>,
}

/// Computes the ops that turn `programmed` into `desired` (see the module doc).
pub fn plan(desired: &DesiredState, programmed: &Programmed, ctx: &PlanContext<'_>) -> Plan {
    let mut out = Plan::default();
    let by_name: BTreeMap<&str, &Link> = programmed
        .links
        .values()
        .map(|l| (l.name.as_str(), l))
        .collect();
    let protocol = ctx.ownership.protocol;

    // Workloads first: a local pod address outranks a blackhole or a remote route (Calico's
    // RouteClass order, calico.md §3.3).
    let mut wanted: BTreeMap<IpNet, Route> = BTreeMap::new();
    let mut claimed: BTreeMap<IpNet, &str> = BTreeMap::new();
    let mut wanted_neigh: BTreeMap<(IpAddr, u32), Neighbour> = BTreeMap::new();
    // Addresses of desired workloads whose link the cache has missing or down: the cache may
    // be behind the kernel (the plugin has just brought the link up and routed it, and the link
    // event is still queued), so their routes and neighbours are left alone until it catches up.
    let mut unsettled: BTreeSet<IpAddr> = BTreeSet::new();
    for w in desired.workloads.values() {
        let link = by_name.get(w.ifname.as_str());
        for &ip in &w.ips {
            let dst = IpNet::from(ip);
            let source = RouteSource::Workload {
                ifname: w.ifname.clone(),
            };
            if let Some(holder) = claimed.get(&dst) {
                let reason = Reason::DuplicateAddress {
                    holder: holder.to_string(),
                };
                out.rejected.push(Rejected {
                    dst,
                    source,
                    reason,
                });
                continue;
            }
            claimed.insert(dst, w.ifname.as_str());
            let reason = match link {
                None => Reason::LinkMissing {
                    ifname: w.ifname.clone(),
                },
                Some(l) if !l.up => Reason::LinkDown {
                    ifname: w.ifname.clone(),
                },
                Some(l) => {
                    wanted.insert(dst, Route::workload(ip, l.index, protocol));
                    if let (IpAddr::V4(_), Some(reported)) = (ip, w.mac) {
                        // The pod's end as it is now beats the MAC the plugin reported at ADD.
                        let mac = programmed.peer_mac(l.index).unwrap_or(reported);
                        let n = Neighbour {
                            ifindex: l.index,
                            ip,
                            mac,
                            permanent: true,
                        };
                        wanted_neigh.insert((ip, l.index), n);
                    }
                    continue;
                }
            };
            unsettled.insert(ip);
            out.rejected.push(Rejected {
                dst,
                source,
                reason,
            });
        }
    }
    for &block in &desired.blackholes {
        if let Some(ifname) = claimed.get(&block) {
            let reason = Reason::LocalWorkload {
                ifname: ifname.to_string(),
            };
            out.rejected.push(Rejected {
                dst: block,
                source: RouteSource::Blackhole,
                reason,
            });
            continue;
        }
        wanted.insert(block, Route::blackhole(block, protocol));
    }
    for r in desired.remotes.values() {
        let reject = |reason| Rejected {
            dst: r.dst,
            source: RouteSource::Remote,
            reason,
        };
        if desired.blackholes.contains(&r.dst) {
            out.rejected.push(reject(Reason::OwnBlock));
            continue;
        }
        if let Some(ifname) = claimed.get(&r.dst) {
            out.rejected.push(reject(Reason::LocalWorkload {
                ifname: ifname.to_string(),
            }));
            continue;
        }
        let mut hops = Vec::new();
        let mut failures = Vec::new();
        for &nh in &r.next_hops {
            match ctx.resolved.get(&nh) {
                Some(Resolution::Via { gateway, ifindex }) => hops.push(NextHop {
                    gateway: Some(*gateway),
                    ifindex: *ifindex,
                    onlink: false,
                }),
                Some(Resolution::Unresolvable { reason }) => failures.push((nh, reason.clone())),
                None => failures.push((nh, "not resolved yet".to_string())),
            }
        }
        if hops.is_empty() {
            out.rejected.push(reject(Reason::Unresolvable {
                next_hops: failures,
            }));
            continue;
        }
        wanted.insert(r.dst, Route::via(r.dst, hops, protocol));
    }

    // Diff every destination that is wanted or holds a route of ours.
    let owns = |r: &Route| ctx.ownership.owns_route(r, &programmed.links);
    // A route on a link the cache does not know yet is left alone: a full resync dumps links
    // before routes, so a pod link created in between shows up only through its route, and
    // that link's own event resyncs it.
    let protected = |r: &Route| {
        r.next_hops.iter().any(|h| {
            ctx.grace_links.contains(&h.ifindex)
                || (h.ifindex != 0 && !programmed.links.contains_key(&h.ifindex))
        }) || (desired.retain_unlisted_remotes && r.is_gateway_route())
    };
    let mut dsts: BTreeSet<IpNet> = wanted.keys().copied().collect();
    for (dst, routes) in &programmed.routes {
        if routes.iter().any(owns) {
            dsts.insert(*dst);
        }
    }
    let no_routes = Vec::new();
    for dst in dsts {
        let existing = programmed.routes.get(&dst).unwrap_or(&no_routes);
        let want = wanted.get(&dst);
        let mut keep: Option<&Route> = None;
        if let Some(w) = want {
            if let Some(f) = existing.iter().find(|r| r.same_key(w) && !owns(r)) {
                let source = source_of(desired, &dst);
                let reason = Reason::ForeignRoute {
                    protocol: f.protocol,
                };
                out.rejected.push(Rejected {
                    dst,
                    source,
                    reason,
                });
            } else {
                match existing.iter().find(|r| r.same_key(w)) {
                    Some(cur) if cur.same_content(w) => {}
                    Some(_) => out.ops.push(Op::ReplaceRoute(w.clone())),
                    None => out.ops.push(Op::AddRoute(w.clone())),
                }
                keep = Some(w);
            }
        }
        let settled = want.is_some() || !unsettled.contains(&dst.addr());
        for r in existing.iter().filter(|r| owns(r)) {
            let is_kept = keep.is_some_and(|k| k.same_key(r));
            if !is_kept && !protected(r) && settled {
                out.ops.push(Op::DeleteRoute(r.clone()));
            }
        }
    }

    // Permanent neighbours for IPv4 workloads (calico.md §3.3).
    for (key, n) in &wanted_neigh {
        if programmed.neighbours.get(key) != Some(n) {
            out.ops.push(Op::SetNeighbour(*n));
        }
    }
    for (key, n) in &programmed.neighbours {
        if !wanted_neigh.contains_key(key)
            && !unsettled.contains(&n.ip)
            && ctx.ownership.owns_neighbour(n, &programmed.links)
            && !ctx.grace_links.contains(&n.ifindex)
        {
            out.ops.push(Op::DeleteNeighbour(*n));
        }
    }
    out
}

fn source_of(desired: &DesiredState, dst: &IpNet) -> RouteSource {
    for w in desired.workloads.values() {
        if w.ips.iter().any(|ip| IpNet::from(*ip) == *dst) {
            return RouteSource::Workload {
                ifname: w.ifname.clone(),
            };
        }
    }
    if desired.blackholes.contains(dst) {
        RouteSource::Blackhole
    } else {
        RouteSource::Remote
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LinkPeer, MacAddr, RemoteRoute, RouteKind, WorkloadEndpoint};

    const P: u8 = 97;

    fn link(index: u32, name: &str, up: bool) -> Link {
        Link {
            index,
            name: name.into(),
            up,
            running: up,
            mtu: 1500,
            mac: None,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn wep(ifname: &str, ips: &[&str], mac: Option<MacAddr>) -> WorkloadEndpoint {
        WorkloadEndpoint {
            ifname: ifname.into(),
            mac,
            ips: ips.iter().map(|s| ip(s)).collect(),
        }
    }

    fn remote(dst: &str, nhs: &[&str]) -> RemoteRoute {
        RemoteRoute {
            dst: net(dst),
            next_hops: nhs.iter().map(|s| ip(s)).collect(),
        }
    }

    fn kernel() -> Programmed {
        Programmed::from_dumps(
            vec![
                link(1, "lo", true),
                link(2, "eth0", true),
                link(10, "caliA", true),
                link(11, "caliB", true),
                link(12, "caliDown", false),
            ],
            vec![],
            vec![],
        )
    }

    struct Fixture {
        ownership: Ownership,
        resolved: BTreeMap<IpAddr, Resolution>,
        grace: BTreeSet<u32>,
    }

    impl Fixture {
        fn new() -> Self {
            let resolved = [
                (
                    ip("192.0.2.1"),
                    Resolution::Via {
                        gateway: ip("192.0.2.1"),
                        ifindex: 2,
                    },
                ),
                (
                    ip("192.0.2.2"),
                    Resolution::Via {
                        gateway: ip("192.0.2.2"),
                        ifindex: 2,
                    },
                ),
                (
                    ip("198.51.100.9"),
                    Resolution::Via {
                        gateway: ip("192.0.2.254"),
                        ifindex: 2,
                    },
                ),
                (
                    ip("203.0.113.1"),
                    Resolution::Unresolvable {
                        reason: "no route".into(),
                    },
                ),
            ]
            .into();
            Fixture {
                ownership: Ownership::default(),
                resolved,
                grace: BTreeSet::new(),
            }
        }
        fn plan(&self, d: &DesiredState, p: &Programmed) -> Plan {
            let ctx = PlanContext {
                ownership: &self.ownership,
                resolved: &self.resolved,
                grace_links: &self.grace,
            };
            plan(d, p, &ctx)
        }
    }

    fn gw(g: &str, ifindex: u32) -> NextHop {
        NextHop {
            gateway: Some(ip(g)),
            ifindex,
            onlink: false,
        }
    }

    #[test]
    fn empty_desired_on_clean_kernel_is_a_no_op() {
        let p = Fixture::new().plan(&DesiredState::default(), &kernel());
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn workload_gets_route_and_permanent_neighbour() {
        let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let mut d = DesiredState::default();
        d.workloads.insert(
            "caliA".into(),
            wep("caliA", &["10.0.0.1", "fd00::1"], Some(mac)),
        );
        let p = Fixture::new().plan(&d, &kernel());
        assert_eq!(
            p.ops,
            vec![
                Op::AddRoute(Route::workload(ip("10.0.0.1"), 10, P)),
                Op::AddRoute(Route::workload(ip("fd00::1"), 10, P)),
                // calico.md §3.3: permanent ARP entry, IPv4 only.
                Op::SetNeighbour(Neighbour {
                    ifindex: 10,
                    ip: ip("10.0.0.1"),
                    mac,
                    permanent: true
                }),
            ]
        );
        assert!(p.rejected.is_empty());
    }

    #[test]
    fn neighbour_follows_the_pod_side_mac_and_falls_back_to_the_reported_one() {
        let reported: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let tuned: MacAddr = "c2:aa:bb:cc:dd:ee".parse().unwrap();
        let neighbour = |mac| Neighbour {
            ifindex: 10,
            ip: ip("10.0.0.1"),
            mac,
            permanent: true,
        };
        let mut d = DesiredState::default();
        d.workloads
            .insert("caliA".into(), wep("caliA", &["10.0.0.1"], Some(reported)));
        d.workloads
            .insert("caliB".into(), wep("caliB", &["10.0.0.2"], None));
        let f = Fixture::new();
        let mut k = kernel();
        k.record(&Op::AddRoute(Route::workload(ip("10.0.0.1"), 10, P)));
        k.record(&Op::AddRoute(Route::workload(ip("10.0.0.2"), 11, P)));
        k.record(&Op::SetNeighbour(neighbour(reported)));
        let peer = |ifindex, mac| LinkPeer {
            nsid: 3,
            ifindex,
            mac,
        };
        // The pod's end now has another MAC (a later CNI plugin changed it): replace the entry.
        k.set_peer(10, Some(peer(2, Some(tuned))));
        // An endpoint that reported no MAC gets no entry, whatever its far end has.
        k.set_peer(11, Some(peer(4, Some(reported))));
        assert_eq!(f.plan(&d, &k).ops, vec![Op::SetNeighbour(neighbour(tuned))]);
        // The far end cannot be read (gone, namespace without an id): the reported MAC stays.
        k.set_peer(10, Some(peer(2, None)));
        assert_eq!(f.plan(&d, &k), Plan::default());
        k.set_peer(10, None);
        assert_eq!(f.plan(&d, &k), Plan::default());
    }

    #[test]
    fn programmed_state_that_matches_is_left_alone() {
        let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let mut d = DesiredState::default();
        d.workloads
            .insert("caliA".into(), wep("caliA", &["10.0.0.1"], Some(mac)));
        d.blackholes.insert(net("10.0.0.0/26"));
        d.remotes.insert(
            net("10.1.0.0/26"),
            remote("10.1.0.0/26", &["192.0.2.1", "192.0.2.2"]),
        );
        let f = Fixture::new();
        let mut k = kernel();
        for op in f.plan(&d, &k).ops {
            k.record(&op);
        }
        assert_eq!(f.plan(&d, &k), Plan::default(), "second plan must be empty");
    }

    #[test]
    fn retained_remote_routes_survive_until_the_flag_is_cleared() {
        // A restarted agent does not know BGP's routes yet: with the flag, the kernel's remote
        // routes stay (forwarding continues); without it they are deleted.
        let mut before = DesiredState::default();
        before.blackholes.insert(net("10.0.0.0/26"));
        before.remotes.insert(
            net("10.1.0.0/26"),
            remote("10.1.0.0/26", &["192.0.2.1", "192.0.2.2"]),
        );
        let f = Fixture::new();
        let mut k = kernel();
        for op in f.plan(&before, &k).ops {
            k.record(&op);
        }
        let mut after = DesiredState::default();
        after.blackholes.insert(net("10.0.0.0/26"));
        after.retain_unlisted_remotes = true;
        assert_eq!(f.plan(&after, &k), Plan::default());
        after.retain_unlisted_remotes = false;
        let ops = f.plan(&after, &k).ops;
        assert!(
            matches!(ops.as_slice(), [Op::DeleteRoute(r)] if r.dst == net("10.1.0.0/26")),
            "{ops:?}"
        );
    }

    #[test]
    fn table_of_single_route_cases() {
        struct Case {
            name: &'static str,
            desired: DesiredState,
            kernel_routes: Vec<Route>,
            ops: Vec<Op>,
            rejected: Vec<(IpNet, Reason)>,
        }
        let d_with = |f: &dyn Fn(&mut DesiredState)| {
            let mut d = DesiredState::default();
            f(&mut d);
            d
        };
        let mut cni_route = Route::workload(ip("10.0.0.1"), 10, 3);
        cni_route.protocol = 3;
        let mut static_on_eth0 = Route::via(net("10.9.0.0/24"), vec![gw("192.0.2.1", 2)], 4);
        static_on_eth0.protocol = 4;
        let mut bird_on_cali = Route::workload(ip("10.0.0.7"), 11, 12);
        bird_on_cali.protocol = 12;
        let mut foreign_same_key = Route::via(net("10.1.0.0/26"), vec![gw("192.0.2.1", 2)], 12);
        foreign_same_key.protocol = 12;
        let cases = vec![
            Case {
                name: "blackhole per owned block",
                desired: d_with(&|d| {
                    d.blackholes.insert(net("10.0.0.0/26"));
                }),
                kernel_routes: vec![],
                ops: vec![Op::AddRoute(Route::blackhole(net("10.0.0.0/26"), P))],
                rejected: vec![],
            },
            Case {
                name: "remote ECMP route with two directly connected next hops",
                desired: d_with(&|d| {
                    d.remotes.insert(
                        net("10.1.0.0/26"),
                        remote("10.1.0.0/26", &["192.0.2.2", "192.0.2.1"]),
                    );
                }),
                kernel_routes: vec![],
                ops: vec![Op::AddRoute(Route::via(
                    net("10.1.0.0/26"),
                    vec![gw("192.0.2.1", 2), gw("192.0.2.2", 2)],
                    P,
                ))],
                rejected: vec![],
            },
            Case {
                name: "recursive next hop installs via the resolved gateway",
                desired: d_with(&|d| {
                    d.remotes
                        .insert(net("10.2.0.0/26"), remote("10.2.0.0/26", &["198.51.100.9"]));
                }),
                kernel_routes: vec![],
                ops: vec![Op::AddRoute(Route::via(
                    net("10.2.0.0/26"),
                    vec![gw("192.0.2.254", 2)],
                    P,
                ))],
                rejected: vec![],
            },
            Case {
                name: "unresolvable next hop stays out with its reason",
                desired: d_with(&|d| {
                    d.remotes
                        .insert(net("10.3.0.0/26"), remote("10.3.0.0/26", &["203.0.113.1"]));
                }),
                kernel_routes: vec![],
                ops: vec![],
                rejected: vec![(
                    net("10.3.0.0/26"),
                    Reason::Unresolvable {
                        next_hops: vec![(ip("203.0.113.1"), "no route".into())],
                    },
                )],
            },
            Case {
                name: "an unresolvable hop of an ECMP set is dropped, the rest installed",
                desired: d_with(&|d| {
                    d.remotes.insert(
                        net("10.3.0.0/26"),
                        remote("10.3.0.0/26", &["203.0.113.1", "192.0.2.1"]),
                    );
                }),
                kernel_routes: vec![],
                ops: vec![Op::AddRoute(Route::via(
                    net("10.3.0.0/26"),
                    vec![gw("192.0.2.1", 2)],
                    P,
                ))],
                rejected: vec![],
            },
            Case {
                name: "unresolvable route that was installed is removed",
                desired: d_with(&|d| {
                    d.remotes
                        .insert(net("10.3.0.0/26"), remote("10.3.0.0/26", &["203.0.113.1"]));
                }),
                kernel_routes: vec![Route::via(net("10.3.0.0/26"), vec![gw("192.0.2.1", 2)], P)],
                ops: vec![Op::DeleteRoute(Route::via(
                    net("10.3.0.0/26"),
                    vec![gw("192.0.2.1", 2)],
                    P,
                ))],
                rejected: vec![(
                    net("10.3.0.0/26"),
                    Reason::Unresolvable {
                        next_hops: vec![(ip("203.0.113.1"), "no route".into())],
                    },
                )],
            },
            Case {
                name: "remote route for an own block is refused; the blackhole stays",
                desired: d_with(&|d| {
                    d.blackholes.insert(net("10.0.0.0/26"));
                    d.remotes
                        .insert(net("10.0.0.0/26"), remote("10.0.0.0/26", &["192.0.2.1"]));
                }),
                kernel_routes: vec![Route::blackhole(net("10.0.0.0/26"), P)],
                ops: vec![],
                rejected: vec![(net("10.0.0.0/26"), Reason::OwnBlock)],
            },
            Case {
                name: "borrowed /32 inside an own block is installed (longest prefix wins)",
                desired: d_with(&|d| {
                    d.blackholes.insert(net("10.0.0.0/26"));
                    d.remotes
                        .insert(net("10.0.0.9/32"), remote("10.0.0.9/32", &["192.0.2.1"]));
                }),
                kernel_routes: vec![Route::blackhole(net("10.0.0.0/26"), P)],
                ops: vec![Op::AddRoute(Route::via(
                    net("10.0.0.9/32"),
                    vec![gw("192.0.2.1", 2)],
                    P,
                ))],
                rejected: vec![],
            },
            Case {
                name: "remote /32 for a local pod address is refused",
                desired: d_with(&|d| {
                    d.workloads
                        .insert("caliA".into(), wep("caliA", &["10.0.0.1"], None));
                    d.remotes
                        .insert(net("10.0.0.1/32"), remote("10.0.0.1/32", &["192.0.2.1"]));
                }),
                kernel_routes: vec![Route::workload(ip("10.0.0.1"), 10, P)],
                ops: vec![],
                rejected: vec![(
                    net("10.0.0.1/32"),
                    Reason::LocalWorkload {
                        ifname: "caliA".into(),
                    },
                )],
            },
            Case {
                name: "CNI route with another protocol is taken over by replace",
                desired: d_with(&|d| {
                    d.workloads
                        .insert("caliA".into(), wep("caliA", &["10.0.0.1"], None));
                }),
                kernel_routes: vec![cni_route.clone()],
                ops: vec![Op::ReplaceRoute(Route::workload(ip("10.0.0.1"), 10, P))],
                rejected: vec![],
            },
            Case {
                name: "workload moved to another link is replaced",
                desired: d_with(&|d| {
                    d.workloads
                        .insert("caliB".into(), wep("caliB", &["10.0.0.1"], None));
                }),
                kernel_routes: vec![Route::workload(ip("10.0.0.1"), 10, P)],
                ops: vec![Op::ReplaceRoute(Route::workload(ip("10.0.0.1"), 11, P))],
                rejected: vec![],
            },
            Case {
                name: "foreign route on a cali link is removed",
                desired: DesiredState::default(),
                kernel_routes: vec![bird_on_cali.clone()],
                ops: vec![Op::DeleteRoute(bird_on_cali.clone())],
                rejected: vec![],
            },
            Case {
                name: "foreign route elsewhere is untouched",
                desired: DesiredState::default(),
                kernel_routes: vec![static_on_eth0.clone()],
                ops: vec![],
                rejected: vec![],
            },
            Case {
                name: "foreign route with the same key blocks a remote route and survives",
                desired: d_with(&|d| {
                    d.remotes
                        .insert(net("10.1.0.0/26"), remote("10.1.0.0/26", &["192.0.2.2"]));
                }),
                kernel_routes: vec![foreign_same_key.clone()],
                ops: vec![],
                rejected: vec![(net("10.1.0.0/26"), Reason::ForeignRoute { protocol: 12 })],
            },
            Case {
                name: "our stale route at another metric is deleted",
                desired: d_with(&|d| {
                    d.blackholes.insert(net("10.0.0.0/26"));
                }),
                kernel_routes: vec![Route {
                    priority: 512,
                    ..Route::blackhole(net("10.0.0.0/26"), P)
                }],
                ops: vec![
                    Op::AddRoute(Route::blackhole(net("10.0.0.0/26"), P)),
                    Op::DeleteRoute(Route {
                        priority: 512,
                        ..Route::blackhole(net("10.0.0.0/26"), P)
                    }),
                ],
                rejected: vec![],
            },
            Case {
                name: "workload on a missing link",
                desired: d_with(&|d| {
                    d.workloads
                        .insert("caliGone".into(), wep("caliGone", &["10.0.0.3"], None));
                }),
                kernel_routes: vec![],
                ops: vec![],
                rejected: vec![(
                    net("10.0.0.3/32"),
                    Reason::LinkMissing {
                        ifname: "caliGone".into(),
                    },
                )],
            },
            Case {
                name: "workload on a down link",
                desired: d_with(&|d| {
                    d.workloads
                        .insert("caliDown".into(), wep("caliDown", &["10.0.0.4"], None));
                }),
                kernel_routes: vec![],
                ops: vec![],
                rejected: vec![(
                    net("10.0.0.4/32"),
                    Reason::LinkDown {
                        ifname: "caliDown".into(),
                    },
                )],
            },
            Case {
                name: "a workload's route stays while the cache has its link down",
                desired: d_with(&|d| {
                    d.workloads
                        .insert("caliDown".into(), wep("caliDown", &["10.0.0.4"], None));
                }),
                kernel_routes: vec![Route::workload(ip("10.0.0.4"), 12, P)],
                ops: vec![],
                rejected: vec![(
                    net("10.0.0.4/32"),
                    Reason::LinkDown {
                        ifname: "caliDown".into(),
                    },
                )],
            },
            Case {
                name: "two workloads claim one address: the first by name keeps it",
                desired: d_with(&|d| {
                    d.workloads
                        .insert("caliA".into(), wep("caliA", &["10.0.0.1"], None));
                    d.workloads
                        .insert("caliB".into(), wep("caliB", &["10.0.0.1"], None));
                }),
                kernel_routes: vec![],
                ops: vec![Op::AddRoute(Route::workload(ip("10.0.0.1"), 10, P))],
                rejected: vec![(
                    net("10.0.0.1/32"),
                    Reason::DuplicateAddress {
                        holder: "caliA".into(),
                    },
                )],
            },
            Case {
                name: "kernel-created route on a cali link is not ours",
                desired: DesiredState::default(),
                kernel_routes: vec![Route {
                    protocol: 2,
                    ..Route::workload(ip("fe80::"), 10, 2)
                }],
                ops: vec![],
                rejected: vec![],
            },
        ];
        let f = Fixture::new();
        for c in cases {
            let mut k = kernel();
            for r in c.kernel_routes {
                k.put_route(r);
            }
            let p = f.plan(&c.desired, &k);
            assert_eq!(p.ops, c.ops, "{}: ops", c.name);
            let rejected: Vec<(IpNet, Reason)> =
                p.rejected.into_iter().map(|r| (r.dst, r.reason)).collect();
            assert_eq!(rejected, c.rejected, "{}: rejected", c.name);
        }
    }

    #[test]
    fn grace_period_protects_routes_and_neighbours_on_new_links() {
        let mut f = Fixture::new();
        let mut k = kernel();
        let r = Route::workload(ip("10.0.0.5"), 11, 3);
        let n = Neighbour {
            ifindex: 11,
            ip: ip("10.0.0.5"),
            mac: MacAddr([2, 0, 0, 0, 0, 5]),
            permanent: true,
        };
        k.put_route(r.clone());
        k.neighbours.insert((n.ip, n.ifindex), n);
        f.grace.insert(11);
        assert_eq!(f.plan(&DesiredState::default(), &k).ops, vec![]);
        f.grace.clear();
        assert_eq!(
            f.plan(&DesiredState::default(), &k).ops,
            vec![Op::DeleteRoute(r), Op::DeleteNeighbour(n)]
        );
    }

    #[test]
    fn routes_on_links_the_cache_does_not_know_yet_stay() {
        // Found by the 200-concurrent-ADD e2e test: a pod's fresh host route deleted because
        // its link appeared between a full resync's link dump and its route dump.
        let f = Fixture::new();
        let mut k = kernel();
        let r = Route::workload(ip("10.0.0.7"), 99, f.ownership.protocol);
        k.put_route(r.clone());
        assert_eq!(f.plan(&DesiredState::default(), &k).ops, vec![]);
        k.links.insert(99, link(99, "caliNew", true));
        assert_eq!(
            f.plan(&DesiredState::default(), &k).ops,
            vec![Op::DeleteRoute(r)]
        );
    }

    #[test]
    fn neighbour_mac_change_is_a_set_and_foreign_neighbours_stay() {
        let f = Fixture::new();
        let mut k = kernel();
        let old = Neighbour {
            ifindex: 10,
            ip: ip("10.0.0.1"),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            permanent: true,
        };
        let on_eth0 = Neighbour {
            ifindex: 2,
            ip: ip("192.0.2.7"),
            mac: MacAddr([2, 0, 0, 0, 0, 7]),
            permanent: true,
        };
        k.neighbours.insert((old.ip, old.ifindex), old);
        k.neighbours.insert((on_eth0.ip, on_eth0.ifindex), on_eth0);
        k.put_route(Route::workload(ip("10.0.0.1"), 10, P));
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let mut d = DesiredState::default();
        d.workloads
            .insert("caliA".into(), wep("caliA", &["10.0.0.1"], Some(mac)));
        let p = f.plan(&d, &k);
        assert_eq!(p.ops, vec![Op::SetNeighbour(Neighbour { mac, ..old })]);
    }

    #[test]
    fn blackhole_kind_and_scope() {
        let r = Route::blackhole(net("10.0.0.0/26"), P);
        assert_eq!(r.kind, RouteKind::Blackhole);
        assert!(r.next_hops.is_empty());
    }
}
