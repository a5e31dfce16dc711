//! `MockDataplane`: an in-memory kernel behind the `Dataplane` trait, for reconciler tests. It
//! mimics the kernel behaviours felix relies on (ENODEV for a missing link, ENETDOWN for a down
//! one, EEXIST on add over an existing key, routes and neighbours vanishing with their link),
//! keeps the far (pod-side) ends of workload veths with their MACs (`KernelState::peers`), and
//! injects one-shot failures (Calico's `mocknetlink` `FailFlags`). Tests share the kernel through
//! `MockKernel` handles to change it behind the reconciler's back and to inspect it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Dataplane, DataplaneError, OpError, interpret_lookup};
use crate::model::{Link, LinkPeer, MacAddr, Neighbour, RT_TABLE_MAIN, Resolution, Route};
use crate::nlsock::NetlinkError;
use crate::plan::Op;

/// One-shot failures; each is cleared when it fires.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailFlags {
    /// The next route add or replace is refused (EIO) and not applied.
    pub next_route_add: bool,
    /// The next route delete is refused (EIO) and not applied.
    pub next_route_delete: bool,
    /// The next neighbour set is refused (EIO) and not applied.
    pub next_neighbour_set: bool,
    /// The next `apply` is carried out but every reply is lost (receive-buffer overrun).
    pub next_apply_replies_lost: bool,
    /// The next `apply` fails as a whole before anything is written (socket error).
    pub next_apply_socket_error: bool,
    /// During the next `apply`, this link is deleted after the first op.
    pub link_vanishes_mid_apply: Option<u32>,
    /// The next route dump is interrupted (`NLM_F_DUMP_INTR`, Calico's "EINTR").
    pub next_route_list_eintr: bool,
    /// The next link dump fails.
    pub next_link_list: bool,
    /// The next neighbour dump fails.
    pub next_neighbour_list: bool,
    /// The next next-hop lookup fails.
    pub next_resolve: bool,
    /// The next sysctl write fails.
    pub next_sysctl_write: bool,
    /// The next read of veth far ends fails.
    pub next_peer_read: bool,
}

/// The in-memory kernel state.
#[derive(Clone, Debug, Default)]
pub struct KernelState {
    pub links: BTreeMap<u32, Link>,
    pub routes: Vec<Route>,
    pub neighbours: BTreeMap<(IpAddr, u32), Neighbour>,
    /// The far end of veth links whose far end is "in another namespace", by the near link's
    /// ifindex (`mac: None`: the far end cannot be read).
    pub peers: BTreeMap<u32, LinkPeer>,
    /// Addresses configured on this "host" (lookups of them resolve as local).
    pub local_addrs: BTreeSet<IpAddr>,
    pub sysctls: BTreeMap<String, String>,
    pub fail: FailFlags,
    /// Kernel-changing requests received (ops and sysctl writes), failed ones included.
    pub writes: u64,
    next_ifindex: u32,
}

impl KernelState {
    /// Adds a link and returns its ifindex.
    pub fn add_link(&mut self, name: &str, up: bool) -> u32 {
        self.next_ifindex = self
            .next_ifindex
            .max(self.links.keys().max().copied().unwrap_or(0))
            + 1;
        let index = self.next_ifindex;
        let link = Link {
            index,
            name: name.to_string(),
            up,
            running: up,
            mtu: 1500,
            mac: None,
        };
        self.links.insert(index, link);
        // The kernel creates the link's /proc/sys entries with it.
        for (key, _) in crate::sysctl::workload_link_sysctls(name) {
            self.sysctls
                .entry(key)
                .or_insert_with(|| "default".to_string());
        }
        index
    }

    /// Gives link `index` a far end: link `peer_index` in the namespace with id `nsid`.
    pub fn set_peer(&mut self, index: u32, nsid: i32, peer_index: u32, mac: Option<MacAddr>) {
        let peer = LinkPeer {
            nsid,
            ifindex: peer_index,
            mac,
        };
        self.peers.insert(index, peer);
    }

    /// Changes (or, with `None`, makes unreadable) the MAC of link `index`'s far end, as a
    /// later CNI plugin (`tuning`) or a vanished pod namespace would.
    pub fn set_peer_mac(&mut self, index: u32, mac: Option<MacAddr>) {
        if let Some(p) = self.peers.get_mut(&index) {
            p.mac = mac;
        }
    }

    /// Deletes a link and, as the kernel does, every route and neighbour entry using it (and,
    /// being one end of a veth, its far end).
    pub fn delete_link(&mut self, index: u32) {
        self.peers.remove(&index);
        if let Some(link) = self.links.remove(&index) {
            for (key, _) in crate::sysctl::workload_link_sysctls(&link.name) {
                self.sysctls.remove(&key);
            }
        }
        self.flush_link(index);
    }

    /// Sets a link administratively up or down; down flushes its routes and neighbours.
    pub fn set_link_up(&mut self, index: u32, up: bool) {
        if let Some(l) = self.links.get_mut(&index) {
            l.up = up;
            l.running = up;
        }
        if !up {
            self.flush_link(index);
        }
    }

    fn flush_link(&mut self, index: u32) {
        self.routes.retain(|r| !r.uses_link(index));
        self.neighbours.retain(|_, n| n.ifindex != index);
    }

    pub fn link_index(&self, name: &str) -> Option<u32> {
        self.links
            .values()
            .find(|l| l.name == name)
            .map(|l| l.index)
    }

    /// Inserts a route directly (a change made "by hand", behind felix's back).
    pub fn put_route(&mut self, route: Route) {
        self.routes.retain(|r| !r.same_key(&route));
        self.routes.push(route);
    }

    /// Deletes the routes to `dst` directly.
    pub fn delete_routes_to(&mut self, dst: ipnet::IpNet) {
        self.routes.retain(|r| r.dst != dst);
    }

    fn check_links(&self, route: &Route) -> Result<(), i32> {
        for h in &route.next_hops {
            match self.links.get(&h.ifindex) {
                None => return Err(libc::ENODEV),
                Some(l) if !l.up => return Err(libc::ENETDOWN),
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn apply_one(&mut self, op: &Op) -> Result<(), i32> {
        match op {
            Op::AddRoute(r) => {
                if std::mem::take(&mut self.fail.next_route_add) {
                    return Err(libc::EIO);
                }
                self.check_links(r)?;
                if let Some(existing) = self.routes.iter().find(|x| x.same_key(r)) {
                    // The netlink dataplane turns EEXIST for an identical route into success.
                    return if existing.same_content(r) {
                        Ok(())
                    } else {
                        Err(libc::EEXIST)
                    };
                }
                self.routes.push(r.clone());
                Ok(())
            }
            Op::ReplaceRoute(r) => {
                if std::mem::take(&mut self.fail.next_route_add) {
                    return Err(libc::EIO);
                }
                self.check_links(r)?;
                self.put_route(r.clone());
                Ok(())
            }
            Op::DeleteRoute(r) => {
                if std::mem::take(&mut self.fail.next_route_delete) {
                    return Err(libc::EIO);
                }
                // Missing is success (ESRCH on delete).
                self.routes
                    .retain(|x| !(x.same_key(r) && x.protocol == r.protocol));
                Ok(())
            }
            Op::SetNeighbour(n) => {
                if std::mem::take(&mut self.fail.next_neighbour_set) {
                    return Err(libc::EIO);
                }
                if !self.links.contains_key(&n.ifindex) {
                    return Err(libc::ENODEV);
                }
                self.neighbours.insert((n.ip, n.ifindex), *n);
                Ok(())
            }
            Op::DeleteNeighbour(n) => {
                self.neighbours.remove(&(n.ip, n.ifindex));
                Ok(())
            }
        }
    }

    /// The FIB entry a lookup of `addr` would match: local address, else longest prefix.
    fn lookup(&self, addr: IpAddr) -> Option<Route> {
        if self.local_addrs.contains(&addr) {
            let mut local = Route::blackhole(addr.into(), 2);
            local.kind = crate::model::RouteKind::Local;
            return Some(local);
        }
        self.routes
            .iter()
            .filter(|r| r.table == RT_TABLE_MAIN && r.dst.contains(&addr))
            .max_by_key(|r| (r.dst.prefix_len(), std::cmp::Reverse(r.priority)))
            .cloned()
    }
}

/// A shared handle on the in-memory kernel.
#[derive(Clone, Debug, Default)]
pub struct MockKernel(Arc<Mutex<KernelState>>);

impl MockKernel {
    pub fn new() -> Self {
        Self::default()
    }
    /// Locks the kernel state (tests poke and inspect it).
    pub fn state(&self) -> MutexGuard<'_, KernelState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    /// A dataplane over this kernel.
    pub fn dataplane(&self) -> MockDataplane {
        MockDataplane {
            kernel: self.clone(),
        }
    }
}

/// The `Dataplane` over a `MockKernel`.
#[derive(Clone, Debug)]
pub struct MockDataplane {
    kernel: MockKernel,
}

fn injected(what: &str) -> DataplaneError {
    DataplaneError::Netlink(NetlinkError::Kernel {
        request: what.to_string(),
        errno: libc::EIO,
        message: "injected failure".into(),
    })
}

impl Dataplane for MockDataplane {
    fn list_links(&mut self) -> Result<Vec<Link>, DataplaneError> {
        let mut k = self.kernel.state();
        if std::mem::take(&mut k.fail.next_link_list) {
            return Err(injected("link dump"));
        }
        Ok(k.links.values().cloned().collect())
    }

    fn list_routes(&mut self, oif: Option<u32>) -> Result<Vec<Route>, DataplaneError> {
        let mut k = self.kernel.state();
        if std::mem::take(&mut k.fail.next_route_list_eintr) {
            return Err(NetlinkError::DumpInterrupted {
                what: "route dump".into(),
            }
            .into());
        }
        Ok(k.routes
            .iter()
            .filter(|r| r.table == RT_TABLE_MAIN && oif.is_none_or(|i| r.uses_link(i)))
            .cloned()
            .collect())
    }

    fn list_neighbours(&mut self, ifindex: Option<u32>) -> Result<Vec<Neighbour>, DataplaneError> {
        let mut k = self.kernel.state();
        if std::mem::take(&mut k.fail.next_neighbour_list) {
            return Err(injected("neighbour dump"));
        }
        Ok(k.neighbours
            .values()
            .filter(|n| ifindex.is_none_or(|i| n.ifindex == i))
            .copied()
            .collect())
    }

    fn read_peers(&mut self, links: &[u32]) -> Result<BTreeMap<u32, LinkPeer>, DataplaneError> {
        let mut k = self.kernel.state();
        if std::mem::take(&mut k.fail.next_peer_read) {
            return Err(injected("link lookup"));
        }
        Ok(links
            .iter()
            .filter(|i| k.links.contains_key(i))
            .filter_map(|i| Some((*i, *k.peers.get(i)?)))
            .collect())
    }

    fn resolve(
        &mut self,
        next_hop: IpAddr,
        own_protocol: u8,
    ) -> Result<Resolution, DataplaneError> {
        let mut k = self.kernel.state();
        if std::mem::take(&mut k.fail.next_resolve) {
            return Err(injected("next-hop lookup"));
        }
        Ok(interpret_lookup(
            next_hop,
            k.lookup(next_hop).as_ref(),
            own_protocol,
        ))
    }

    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), OpError>> {
        let mut k = self.kernel.state();
        k.writes += ops.len() as u64;
        if std::mem::take(&mut k.fail.next_apply_socket_error) {
            return ops
                .iter()
                .map(|op| Err(OpError::new(op, libc::EIO, "injected socket error")))
                .collect();
        }
        let lose_replies = std::mem::take(&mut k.fail.next_apply_replies_lost);
        let vanish = k.fail.link_vanishes_mid_apply.take();
        let mut out = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            if i == 1
                && let Some(index) = vanish
            {
                k.delete_link(index);
            }
            let r = k.apply_one(op).map_err(|errno| OpError::new(op, errno, ""));
            out.push(if lose_replies {
                Err(OpError::new(op, libc::ENOBUFS, "reply lost"))
            } else {
                r
            });
        }
        if ops.len() == 1
            && let Some(index) = vanish
        {
            k.delete_link(index);
        }
        out
    }

    fn read_sysctl(&mut self, key: &str) -> Result<String, DataplaneError> {
        let k = self.kernel.state();
        k.sysctls
            .get(key)
            .cloned()
            .ok_or_else(|| DataplaneError::Sysctl {
                path: format!("/proc/sys/{key}"),
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            })
    }

    fn write_sysctl(&mut self, key: &str, value: &str) -> Result<(), DataplaneError> {
        let mut k = self.kernel.state();
        k.writes += 1;
        if std::mem::take(&mut k.fail.next_sysctl_write) {
            return Err(DataplaneError::Sysctl {
                path: format!("/proc/sys/{key}"),
                source: std::io::Error::from_raw_os_error(libc::EIO),
            });
        }
        k.sysctls.insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn writes(&self) -> u64 {
        self.kernel.state().writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_kernel_refuses_like_the_kernel() {
        let kernel = MockKernel::new();
        let (up, down) = {
            let mut k = kernel.state();
            (k.add_link("caliA", true), k.add_link("caliB", false))
        };
        let mut dp = kernel.dataplane();
        let on = |i| Route::workload("10.0.0.1".parse().unwrap(), i, 97);
        let res = dp.apply(&[
            Op::AddRoute(on(99)),
            Op::AddRoute(on(down)),
            Op::AddRoute(on(up)),
            Op::AddRoute(on(up)),
        ]);
        let errnos: Vec<Option<i32>> = res
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.errno))
            .collect();
        assert_eq!(
            errnos,
            vec![Some(libc::ENODEV), Some(libc::ENETDOWN), None, None]
        );
        kernel.state().delete_link(up);
        assert!(
            kernel.state().routes.is_empty(),
            "routes vanish with their link"
        );
        assert_eq!(dp.writes(), 4);
    }
}
