//! Wires between lab hosts: veth pairs between two namespaces, and shared L2 segments.
//!
//! Owns: `Veth` (a point-to-point pair with addresses, MTU, both ends up), `Segment` (a bridge
//! inside its own namespace; each member attaches with a veth whose bridge end is enslaved to it,
//! so N nodes and a ToR share one subnet), and `Link` (the two ends, for later up/down). Every
//! link is created directly inside its namespaces (`ip -n A link add … peer … netns B`) and so
//! never exists in the machine's own namespace. IPv6 addresses are added `nodad`, usable at once.
//! Must not: own namespaces (deleting a namespace destroys its veths; that is the cleanup).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::netns::Netns;

/// Linux's limit on interface names (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;
/// Name of the bridge inside a segment's namespace.
pub const BRIDGE: &str = "br0";

/// Parse `10.0.0.1/24`, `fd00::1/64`, or a bare address (a host prefix).
pub fn parse_cidr(text: &str) -> Result<IpNet> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|e| Error::Invalid {
            what: "address",
            value: text.to_string(),
            reason: e.to_string(),
        })
}

/// Check an interface name before handing it to the kernel.
pub fn check_ifname(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::Invalid {
            what: "interface name",
            value: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > MAX_IFNAME {
        return bad("must be 1 to 15 bytes");
    }
    if name.contains(['/', ':']) || name.chars().any(char::is_whitespace) || name == "." {
        return bad("must not contain '/', ':' or whitespace");
    }
    Ok(())
}

/// Which end of a `Link`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The first namespace given.
    A,
    /// The second namespace given.
    B,
}

/// A created veth pair: which interface sits in which namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Namespace of end A.
    pub a_ns: String,
    /// Interface name of end A.
    pub a_if: String,
    /// Namespace of end B (a segment's namespace for `Segment::attach`).
    pub b_ns: String,
    /// Interface name of end B.
    pub b_if: String,
}

impl Link {
    /// Bring one end down or up (link failure injection; the other end sees carrier loss).
    pub fn set_up(&self, end: End, up: bool) -> Result<()> {
        let (ns, ifname) = match end {
            End::A => (&self.a_ns, &self.a_if),
            End::B => (&self.b_ns, &self.b_if),
        };
        ip_in(ns, &["link", "set", ifname, if up { "up" } else { "down" }])?;
        Ok(())
    }
}

/// Builder for a veth pair between two namespaces.
#[derive(Debug)]
pub struct Veth<'a> {
    a: &'a Netns,
    a_if: String,
    a_addrs: Vec<String>,
    b: &'a Netns,
    b_if: String,
    b_addrs: Vec<String>,
    mtu: Option<u32>,
}

impl<'a> Veth<'a> {
    /// A pair with interface `a_if` in `a` and `b_if` in `b`.
    pub fn new(a: &'a Netns, a_if: &str, b: &'a Netns, b_if: &str) -> Veth<'a> {
        Veth {
            a,
            a_if: a_if.to_string(),
            a_addrs: Vec::new(),
            b,
            b_if: b_if.to_string(),
            b_addrs: Vec::new(),
            mtu: None,
        }
    }

    /// Add an address (`10.0.12.1/24`, `fd00:12::1/64`) to end A.
    pub fn addr_a(mut self, cidr: &str) -> Self {
        self.a_addrs.push(cidr.to_string());
        self
    }

    /// Add an address to end B.
    pub fn addr_b(mut self, cidr: &str) -> Self {
        self.b_addrs.push(cidr.to_string());
        self
    }

    /// Set the MTU of both ends.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Create the pair, address both ends and bring them up.
    pub fn create(self) -> Result<Link> {
        check_ifname(&self.a_if)?;
        check_ifname(&self.b_if)?;
        let a_addrs = parse_all(&self.a_addrs)?;
        let b_addrs = parse_all(&self.b_addrs)?;
        self.a.ip(&[
            "link",
            "add",
            &self.a_if,
            "type",
            "veth",
            "peer",
            "name",
            &self.b_if,
            "netns",
            self.b.name(),
        ])?;
        configure(self.a, &self.a_if, &a_addrs, self.mtu)?;
        configure(self.b, &self.b_if, &b_addrs, self.mtu)?;
        Ok(Link {
            a_ns: self.a.name().to_string(),
            a_if: self.a_if,
            b_ns: self.b.name().to_string(),
            b_if: self.b_if,
        })
    }
}

/// A shared L2 segment: a bridge in its own namespace that members attach to.
#[derive(Debug)]
pub struct Segment {
    ns: Netns,
    mtu: Option<u32>,
    next_port: AtomicU32,
}

impl Segment {
    /// A new segment (its namespace is labelled `sw-<label>`).
    pub fn new(label: &str) -> Result<Segment> {
        Segment::with_mtu(label, None)
    }

    /// A new segment whose bridge and member links use `mtu`.
    pub fn with_mtu(label: &str, mtu: Option<u32>) -> Result<Segment> {
        let ns = Netns::new(&format!("sw-{label}"))?;
        // No multicast snooping: with no querier it could starve IPv6 neighbour discovery.
        ns.ip(&[
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        if let Some(m) = mtu {
            ns.ip(&["link", "set", BRIDGE, "mtu", &m.to_string()])?;
        }
        ns.ip(&["link", "set", BRIDGE, "up"])?;
        Ok(Segment {
            ns,
            mtu,
            next_port: AtomicU32::new(0),
        })
    }

    /// The segment's own namespace (holds only the bridge and its ports).
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Plug `node` into the segment through interface `ifname` with `addrs`.
    pub fn attach(&self, node: &Netns, ifname: &str, addrs: &[&str]) -> Result<Link> {
        check_ifname(ifname)?;
        let addrs = parse_all(addrs)?;
        let port = format!("p{}", self.next_port.fetch_add(1, Ordering::Relaxed));
        self.ns.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            node.name(),
        ])?;
        configure(&self.ns, &port, &[], self.mtu)?;
        self.ns.ip(&["link", "set", &port, "master", BRIDGE])?;
        configure(node, ifname, &addrs, self.mtu)?;
        Ok(Link {
            a_ns: node.name().to_string(),
            a_if: ifname.to_string(),
            b_ns: self.ns.name().to_string(),
            b_if: port,
        })
    }
}

fn parse_all<S: AsRef<str>>(addrs: &[S]) -> Result<Vec<IpNet>> {
    addrs.iter().map(|a| parse_cidr(a.as_ref())).collect()
}

/// Add addresses, set the MTU and bring `ifname` up inside `ns`.
fn configure(ns: &Netns, ifname: &str, addrs: &[IpNet], mtu: Option<u32>) -> Result<()> {
    for addr in addrs {
        let a = addr.to_string();
        match addr {
            IpNet::V4(_) => ns.ip(&["addr", "add", &a, "dev", ifname])?,
            IpNet::V6(_) => ns.ip(&["addr", "add", &a, "dev", ifname, "nodad"])?,
        };
    }
    if let Some(m) = mtu {
        ns.ip(&["link", "set", ifname, "mtu", &m.to_string()])?;
    }
    ns.ip(&["link", "set", ifname, "up"])?;
    Ok(())
}

fn ip_in(ns_name: &str, args: &[&str]) -> Result<String> {
    let mut c = std::process::Command::new("ip");
    c.args(["-n", ns_name]).args(args);
    crate::cmd::run(&mut c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_bare_addresses_parse() {
        assert_eq!(
            parse_cidr("10.0.0.1/24").unwrap().to_string(),
            "10.0.0.1/24"
        );
        assert_eq!(parse_cidr("fd00::1").unwrap().to_string(), "fd00::1/128");
        let err = parse_cidr("10.0.0.300/24").unwrap_err().to_string();
        assert!(err.contains("invalid address \"10.0.0.300/24\""), "{err}");
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("eth-b").is_ok());
        assert!(check_ifname("a23456789012345").is_ok());
        assert!(check_ifname("a234567890123456").is_err());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a b").is_err());
        assert!(check_ifname("a/b").is_err());
    }
}
