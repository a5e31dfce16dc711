//! The ownership rule: which kernel routes and neighbour entries are Ginger's to change or delete.
//! Ginger's routes carry its own route protocol number (default 97); routes whose output link name
//! starts with a workload prefix (default `cali`) are Ginger's whatever their protocol, except the
//! kernel's own (`proto kernel`: connected subnets, IPv6 link-local); everything else is never
//! touched. Pure functions over `model` types; `plan` is the only caller that acts on the answer.

use std::collections::BTreeMap;

use crate::model::{Link, Neighbour, RT_TABLE_MAIN, RTPROT_KERNEL, Route};

/// Route protocol number Ginger writes by default (unassigned in iproute2's `rt_protos`).
pub const DEFAULT_ROUTE_PROTOCOL: u8 = 97;
/// Calico's default workload interface prefix.
pub const DEFAULT_IFACE_PREFIX: &str = "cali";

/// Ginger's claim on the kernel's tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// `rtm_protocol` on every route Ginger writes.
    pub protocol: u8,
    /// Name prefixes of workload links (Calico's `InterfacePrefix`, a list).
    pub iface_prefixes: Vec<String>,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership {
            protocol: DEFAULT_ROUTE_PROTOCOL,
            iface_prefixes: vec![DEFAULT_IFACE_PREFIX.to_string()],
        }
    }
}

impl Ownership {
    /// True when `name` is a workload link name.
    pub fn is_workload_link(&self, name: &str) -> bool {
        self.iface_prefixes
            .iter()
            .any(|p| !p.is_empty() && name.starts_with(p.as_str()))
    }

    /// True when the route is Ginger's to replace or delete. `links` maps ifindex to link.
    pub fn owns_route(&self, route: &Route, links: &BTreeMap<u32, Link>) -> bool {
        if route.table != RT_TABLE_MAIN || route.tos != 0 {
            return false;
        }
        if route.protocol == self.protocol {
            return true;
        }
        if route.protocol == RTPROT_KERNEL {
            return false;
        }
        !route.next_hops.is_empty()
            && route.next_hops.iter().all(|h| {
                links
                    .get(&h.ifindex)
                    .is_some_and(|l| self.is_workload_link(&l.name))
            })
    }

    /// True when the neighbour entry is Ginger's: permanent, on a workload link.
    pub fn owns_neighbour(&self, n: &Neighbour, links: &BTreeMap<u32, Link>) -> bool {
        n.permanent
            && links
                .get(&n.ifindex)
                .is_some_and(|l| self.is_workload_link(&l.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NextHop, RouteKind};

    fn links() -> BTreeMap<u32, Link> {
        let mk = |index, name: &str| Link {
            index,
            name: name.into(),
            up: true,
            running: true,
            mtu: 1500,
            mac: None,
        };
        [
            (1, mk(1, "lo")),
            (2, mk(2, "eth0")),
            (3, mk(3, "cali0123456789a")),
        ]
        .into()
    }

    fn route(protocol: u8, ifindex: Option<u32>) -> Route {
        let mut r = match ifindex {
            Some(i) => Route::workload("10.0.0.1".parse().unwrap(), i, protocol),
            None => Route::blackhole("10.0.0.0/26".parse().unwrap(), protocol),
        };
        r.protocol = protocol;
        r
    }

    // calico.md §3.2: exclusive protocol → ours wherever it points; workload iface → ours
    // whatever the protocol; everything else untouched.
    #[test]
    fn ownership_table() {
        let o = Ownership::default();
        let l = links();
        let cases: &[(&str, Route, bool)] = &[
            ("our protocol on eth0", route(97, Some(2)), true),
            ("our blackhole", route(97, None), true),
            ("boot route on cali (CNI-style)", route(3, Some(3)), true),
            ("bird route on cali", route(12, Some(3)), true),
            ("kernel route on cali", route(RTPROT_KERNEL, Some(3)), false),
            ("static route on eth0", route(4, Some(2)), false),
            ("foreign blackhole", route(12, None), false),
            ("route on unknown link", route(4, Some(99)), false),
        ];
        for (name, r, want) in cases {
            assert_eq!(o.owns_route(r, &l), *want, "{name}");
        }
        let mut other_table = route(97, None);
        other_table.table = 100;
        assert!(
            !o.owns_route(&other_table, &l),
            "other tables are never ours"
        );
        let mixed = Route {
            next_hops: vec![
                NextHop {
                    gateway: None,
                    ifindex: 3,
                    onlink: false,
                },
                NextHop {
                    gateway: Some("192.0.2.1".parse().unwrap()),
                    ifindex: 2,
                    onlink: false,
                },
            ],
            kind: RouteKind::Unicast,
            ..route(12, Some(3))
        };
        assert!(
            !o.owns_route(&mixed, &l),
            "a foreign ECMP route that also uses eth0 is not ours"
        );
    }

    #[test]
    fn neighbour_ownership_needs_permanent_on_workload_link() {
        let o = Ownership::default();
        let l = links();
        let n = |ifindex, permanent| Neighbour {
            ifindex,
            ip: "10.0.0.1".parse().unwrap(),
            mac: Default::default(),
            permanent,
        };
        assert!(o.owns_neighbour(&n(3, true), &l));
        assert!(!o.owns_neighbour(&n(3, false), &l));
        assert!(!o.owns_neighbour(&n(2, true), &l));
    }

    #[test]
    fn prefixes_are_a_list() {
        let o = Ownership {
            protocol: 97,
            iface_prefixes: vec!["cali".into(), "tap".into()],
        };
        assert!(o.is_workload_link("tap0"));
        assert!(o.is_workload_link("cali1"));
        assert!(!o.is_workload_link("eth0"));
        let empty = Ownership {
            protocol: 97,
            iface_prefixes: vec![String::new()],
        };
        assert!(
            !empty.is_workload_link("eth0"),
            "an empty prefix must not claim every link"
        );
    }
}
