//! The `Dataplane` trait: the one door to the kernel (dump links, routes and neighbours, read the
//! far ends of workload veths, resolve a next hop, apply ops, read and write sysctls). `netlink` implements it against the real kernel
//! of the calling thread's network namespace; `mock` implements it in memory with failure
//! injection. Nothing here decides what to write: ops come from `plan`.

pub mod codec;
pub mod mock;
pub mod netlink;

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::model::{Link, LinkPeer, Neighbour, Resolution, Route, RouteKind};
use crate::nlsock::NetlinkError;
use crate::plan::Op;

/// Why one op was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {}", if message.is_empty() { std::io::Error::from_raw_os_error(*errno).to_string() } else { format!("{} ({message})", std::io::Error::from_raw_os_error(*errno)) })]
pub struct OpError {
    /// What was attempted, for logs.
    pub op: String,
    /// Positive errno.
    pub errno: i32,
    /// The kernel's extended-ACK text, if any.
    pub message: String,
}

impl OpError {
    pub fn new(op: &Op, errno: i32, message: impl Into<String>) -> Self {
        OpError {
            op: op.to_string(),
            errno,
            message: message.into(),
        }
    }
    /// The link the op needed is gone (it vanished mid-apply).
    pub fn is_missing_link(&self) -> bool {
        self.errno == libc::ENODEV
    }
}

/// A failure reading from or talking to the dataplane as a whole.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("sysctl {path}: {source}")]
    Sysctl {
        path: String,
        source: std::io::Error,
    },
}

impl DataplaneError {
    /// True when the failure is transient and a retry is expected to succeed.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            DataplaneError::Netlink(NetlinkError::DumpInterrupted { .. })
        )
    }
}

/// The kernel as felix sees it.
pub trait Dataplane {
    /// Every link of the namespace.
    fn list_links(&mut self) -> Result<Vec<Link>, DataplaneError>;
    /// Main-table routes of both families; with `oif`, only routes that use that link.
    fn list_routes(&mut self, oif: Option<u32>) -> Result<Vec<Route>, DataplaneError>;
    /// Neighbour entries of both families; with `ifindex`, only that link's.
    fn list_neighbours(&mut self, ifindex: Option<u32>) -> Result<Vec<Neighbour>, DataplaneError>;
    /// For each of `links`, the far end of the veth when it is in another namespace, with the
    /// MAC it has now (read in that namespace, `IFLA_TARGET_NETNSID`). Links that are gone or
    /// have no such far end are absent; a far end whose MAC cannot be read has `mac: None`.
    fn read_peers(&mut self, links: &[u32]) -> Result<BTreeMap<u32, LinkPeer>, DataplaneError>;
    /// Resolves a next hop through the FIB (see `interpret_lookup`).
    fn resolve(&mut self, next_hop: IpAddr, own_protocol: u8)
    -> Result<Resolution, DataplaneError>;
    /// Applies ops in order; one result per op. Deleting what is already gone and adding a
    /// route that is already there, identical, both succeed.
    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), OpError>>;
    /// Reads `/proc/sys/<key>` (key with `/` separators), trimmed.
    fn read_sysctl(&mut self, key: &str) -> Result<String, DataplaneError>;
    /// Writes `/proc/sys/<key>`.
    fn write_sysctl(&mut self, key: &str, value: &str) -> Result<(), DataplaneError>;
    /// Kernel-changing requests issued so far (route/neighbour writes and sysctl writes).
    fn writes(&self) -> u64;
}

/// Turns the FIB entry that matched `next_hop` into a resolution, like BIRD's `gateway
/// recursive`: a connected route gives the next hop itself, a gateway route gives its gateway;
/// blackholes, local addresses and Ginger's own routes (which would loop) do not resolve.
pub fn interpret_lookup(next_hop: IpAddr, matched: Option<&Route>, own_protocol: u8) -> Resolution {
    let unresolvable = |reason: &str| Resolution::Unresolvable {
        reason: reason.to_string(),
    };
    let Some(route) = matched else {
        return unresolvable("no route to the next hop");
    };
    match route.kind {
        RouteKind::Unicast => {}
        RouteKind::Local => return unresolvable("the next hop is a local address"),
        RouteKind::Blackhole | RouteKind::Unreachable | RouteKind::Prohibit => {
            return unresolvable("the next hop's route is a blackhole/unreachable route");
        }
        RouteKind::Other(_) => return unresolvable("the next hop's route is not unicast"),
    }
    if route.protocol == own_protocol {
        return unresolvable("the next hop resolves through a route Ginger installed");
    }
    match route.next_hops.first() {
        None => unresolvable("the next hop's route has no output link"),
        Some(h) => Resolution::Via {
            gateway: h.gateway.unwrap_or(next_hop),
            ifindex: h.ifindex,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NextHop;

    #[test]
    fn lookup_interpretation() {
        let nh: IpAddr = "198.51.100.7".parse().unwrap();
        let connected = Route {
            protocol: 2,
            scope: 253,
            ..Route::via(
                "198.51.100.0/24".parse().unwrap(),
                vec![NextHop {
                    gateway: None,
                    ifindex: 4,
                    onlink: false,
                }],
                2,
            )
        };
        assert_eq!(
            interpret_lookup(nh, Some(&connected), 97),
            Resolution::Via {
                gateway: nh,
                ifindex: 4
            }
        );
        let default = Route::via(
            "0.0.0.0/0".parse().unwrap(),
            vec![NextHop {
                gateway: Some("192.0.2.254".parse().unwrap()),
                ifindex: 2,
                onlink: false,
            }],
            4,
        );
        assert_eq!(
            interpret_lookup(nh, Some(&default), 97),
            Resolution::Via {
                gateway: "192.0.2.254".parse().unwrap(),
                ifindex: 2
            }
        );
        let ours = Route {
            protocol: 97,
            ..default.clone()
        };
        assert!(matches!(
            interpret_lookup(nh, Some(&ours), 97),
            Resolution::Unresolvable { .. }
        ));
        let bh = Route::blackhole("198.51.100.0/24".parse().unwrap(), 4);
        assert!(matches!(
            interpret_lookup(nh, Some(&bh), 97),
            Resolution::Unresolvable { .. }
        ));
        assert!(matches!(
            interpret_lookup(nh, None, 97),
            Resolution::Unresolvable { .. }
        ));
    }
}
