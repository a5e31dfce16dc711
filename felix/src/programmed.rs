//! `Programmed`: felix's cache of what the kernel holds — links, every main-table route (foreign
//! routes too, because they can block a destination), the permanent neighbour entries on
//! workload links, and the pod-side end (`LinkPeer`, with its current MAC) of each workload link.
//! It is filled from dataplane dumps and reads and updated op by op after `apply`; it never
//! talks to the kernel itself and holds no desired state.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{Link, LinkPeer, MacAddr, Neighbour, Route};
use crate::plan::Op;

/// A cache of the kernel's state as last read or written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Programmed {
    /// Links by ifindex.
    pub links: BTreeMap<u32, Link>,
    /// Main-table routes by destination (several per destination when metrics differ).
    pub routes: BTreeMap<IpNet, Vec<Route>>,
    /// Permanent neighbour entries by (address, ifindex).
    pub neighbours: BTreeMap<(IpAddr, u32), Neighbour>,
    /// The far (pod-side) end of workload links, by the near link's ifindex; links whose far
    /// end is not in another namespace, or was never read, are absent.
    pub peers: BTreeMap<u32, LinkPeer>,
}

impl Programmed {
    /// Builds the cache from full dumps.
    pub fn from_dumps(links: Vec<Link>, routes: Vec<Route>, neighbours: Vec<Neighbour>) -> Self {
        let mut p = Programmed {
            links: links.into_iter().map(|l| (l.index, l)).collect(),
            ..Default::default()
        };
        for r in routes {
            p.put_route(r);
        }
        for n in neighbours.into_iter().filter(|n| n.permanent) {
            p.neighbours.insert((n.ip, n.ifindex), n);
        }
        p
    }

    /// The MAC the far end of link `index` has now, when it could be read.
    pub fn peer_mac(&self, index: u32) -> Option<MacAddr> {
        self.peers.get(&index).and_then(|p| p.mac)
    }

    /// The link in this namespace whose far end is link `ifindex` of namespace `nsid`.
    pub fn link_of_peer(&self, nsid: i32, ifindex: u32) -> Option<u32> {
        self.peers
            .iter()
            .find(|(_, p)| p.nsid == nsid && p.ifindex == ifindex)
            .map(|(index, _)| *index)
    }

    /// Records what was read about the far end of link `index` (`None`: it has none).
    pub fn set_peer(&mut self, index: u32, peer: Option<LinkPeer>) {
        match peer {
            Some(p) => {
                self.peers.insert(index, p);
            }
            None => {
                self.peers.remove(&index);
            }
        }
    }

    /// Finds a link by name.
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// Inserts or replaces the route with the same key.
    pub fn put_route(&mut self, route: Route) {
        let slot = self.routes.entry(route.dst).or_default();
        match slot.iter_mut().find(|r| r.same_key(&route)) {
            Some(existing) => *existing = route,
            None => slot.push(route),
        }
    }

    /// Removes the route with the same key, if cached.
    pub fn remove_route(&mut self, route: &Route) {
        if let Some(slot) = self.routes.get_mut(&route.dst) {
            slot.retain(|r| !r.same_key(route));
            if slot.is_empty() {
                self.routes.remove(&route.dst);
            }
        }
    }

    /// Replaces everything cached about one link with a fresh per-link dump. Routes that also
    /// use other links stay cached unless the dump returned them (the dump is authoritative for
    /// every route that touches the link). The far end is recorded apart (`set_peer`); a link
    /// that is gone loses it here.
    pub fn refresh_link(
        &mut self,
        link: Option<Link>,
        index: u32,
        routes: Vec<Route>,
        neighbours: Vec<Neighbour>,
    ) {
        match link {
            Some(l) => {
                self.links.insert(index, l);
            }
            None => {
                self.links.remove(&index);
                self.peers.remove(&index);
            }
        }
        for slot in self.routes.values_mut() {
            slot.retain(|r| !r.uses_link(index));
        }
        self.routes.retain(|_, slot| !slot.is_empty());
        for r in routes {
            self.put_route(r);
        }
        self.neighbours.retain(|_, n| n.ifindex != index);
        for n in neighbours
            .into_iter()
            .filter(|n| n.permanent && n.ifindex == index)
        {
            self.neighbours.insert((n.ip, n.ifindex), n);
        }
    }

    /// Records the effect of an op the kernel accepted.
    pub fn record(&mut self, op: &Op) {
        match op {
            Op::AddRoute(r) | Op::ReplaceRoute(r) => self.put_route(r.clone()),
            Op::DeleteRoute(r) => self.remove_route(r),
            Op::SetNeighbour(n) => {
                self.neighbours.insert((n.ip, n.ifindex), *n);
            }
            Op::DeleteNeighbour(n) => {
                self.neighbours.remove(&(n.ip, n.ifindex));
            }
        }
    }

    /// All cached routes, in destination order.
    pub fn all_routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            running: true,
            mtu: 1500,
            mac: None,
        }
    }

    #[test]
    fn put_replaces_same_key_and_keeps_other_metrics() {
        let mut p = Programmed::default();
        let r = Route::workload("10.0.0.1".parse().unwrap(), 3, 97);
        p.put_route(r.clone());
        let mut other_metric = r.clone();
        other_metric.priority = 100;
        p.put_route(other_metric.clone());
        let mut replaced = r.clone();
        replaced.protocol = 3;
        p.put_route(replaced.clone());
        assert_eq!(
            p.routes[&r.dst],
            vec![replaced.clone(), other_metric.clone()]
        );
        p.remove_route(&r);
        p.remove_route(&other_metric);
        assert!(p.routes.is_empty());
    }

    #[test]
    fn refresh_link_drops_stale_entries_of_that_link_only() {
        let a = Route::workload("10.0.0.1".parse().unwrap(), 3, 97);
        let b = Route::workload("10.0.0.2".parse().unwrap(), 4, 97);
        let n = Neighbour {
            ifindex: 3,
            ip: "10.0.0.1".parse().unwrap(),
            mac: Default::default(),
            permanent: true,
        };
        let mut p = Programmed::from_dumps(
            vec![link(3, "cali3"), link(4, "cali4")],
            vec![a, b.clone()],
            vec![n],
        );
        let peer = |ifindex, mac| LinkPeer {
            nsid: 7,
            ifindex,
            mac,
        };
        p.set_peer(3, Some(peer(2, Some(MacAddr([2, 0, 0, 0, 0, 3])))));
        p.set_peer(4, Some(peer(5, None)));
        assert_eq!(p.link_of_peer(7, 2), Some(3));
        assert_eq!(p.link_of_peer(8, 2), None, "same ifindex, other namespace");
        assert_eq!(p.peer_mac(3), Some(MacAddr([2, 0, 0, 0, 0, 3])));
        assert_eq!(p.peer_mac(4), None, "unreadable far end");
        p.refresh_link(None, 3, vec![], vec![]);
        assert_eq!(p.all_routes().collect::<Vec<_>>(), vec![&b]);
        assert!(p.neighbours.is_empty());
        assert!(!p.links.contains_key(&3));
        assert!(p.links.contains_key(&4));
        assert_eq!(p.link_of_peer(7, 2), None, "the far end goes with its link");
        assert_eq!(p.link_of_peer(7, 5), Some(4));
        p.set_peer(4, None);
        assert!(p.peers.is_empty());
    }
}
