//! What the BIRD, FRR and GoBGP launchers share: one router configuration, one route view, and
//! the `BgpDaemon` trait a scenario uses without caring which daemon plays the peer.
//!
//! Owns: `RouterConfig`, `Neighbor`, `RouteAttrs`, `Originated` (rendered by each launcher into
//! its daemon's syntax), `Route` (what each launcher parses out of its daemon), and the waits
//! built on `BgpDaemon` (`wait_established`, `wait_route`, `wait_no_route`). The attribute types
//! are Ginger's own (`bgp::types`), so a scenario compares Ginger's RIB and a daemon's directly.
//! Must not: know any daemon's syntax.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp::status::SessionState;
use bgp::types::{AsSegment, Asn, Community, Family, LargeCommunity, Origin};
use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::proc::Proc;
use crate::wait::wait_until;

/// Seconds between connection attempts the launchers configure (daemons default to 120 s,
/// far too slow for a test that starts its peers one after another).
pub const TEST_CONNECT_RETRY: u16 = 2;

/// One BGP neighbour of a test router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// The neighbour's address.
    pub address: IpAddr,
    /// Its AS (equal to ours makes the session iBGP).
    pub remote_as: Asn,
    /// Its TCP port.
    pub port: u16,
    /// Our source address for the session (`update-source`, BIRD `local`).
    pub local_address: Option<IpAddr>,
    /// Never connect; wait for the neighbour.
    pub passive: bool,
    /// eBGP multihop with this TTL (the neighbour need not be on a connected subnet).
    pub multihop: Option<u8>,
    /// Rewrite the next hop to our own address on export.
    pub next_hop_self: bool,
    /// The neighbour is a route-reflector client (needs `RouterConfig::cluster_id` or uses the
    /// router id as cluster id).
    pub rr_client: bool,
    /// Hold time we propose (seconds).
    pub hold_time: Option<u16>,
    /// Keepalive interval (seconds); defaults to a third of the hold time.
    pub keepalive_time: Option<u16>,
    /// Seconds between connection attempts.
    pub connect_retry: u16,
    /// Families to negotiate; by default the family of `address`.
    pub families: Vec<Family>,
}

impl Neighbor {
    /// A neighbour on port 179 with the daemon's defaults and the family of its address.
    pub fn new(address: IpAddr, remote_as: Asn) -> Neighbor {
        Neighbor {
            address,
            remote_as,
            port: 179,
            local_address: None,
            passive: false,
            multihop: None,
            next_hop_self: false,
            rr_client: false,
            hold_time: None,
            keepalive_time: None,
            connect_retry: TEST_CONNECT_RETRY,
            families: vec![Family::of_addr(&address)],
        }
    }

    /// Parse `address` (panics on a malformed literal: test code writes these by hand).
    pub fn parse(address: &str, remote_as: Asn) -> Neighbor {
        let ip = address
            .parse()
            .unwrap_or_else(|e| panic!("neighbour address {address:?}: {e}"));
        Neighbor::new(ip, remote_as)
    }

    /// Connect to this TCP port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Use `addr` as our source address.
    pub fn local_address(mut self, addr: IpAddr) -> Self {
        self.local_address = Some(addr);
        self
    }

    /// Wait for the neighbour to connect.
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }

    /// eBGP multihop with `ttl`.
    pub fn multihop(mut self, ttl: u8) -> Self {
        self.multihop = Some(ttl);
        self
    }

    /// Next hop self on export.
    pub fn next_hop_self(mut self) -> Self {
        self.next_hop_self = true;
        self
    }

    /// Make the neighbour a route-reflector client.
    pub fn rr_client(mut self) -> Self {
        self.rr_client = true;
        self
    }

    /// Hold and keepalive times (seconds).
    pub fn timers(mut self, hold: u16, keepalive: u16) -> Self {
        self.hold_time = Some(hold);
        self.keepalive_time = Some(keepalive);
        self
    }

    /// Seconds between connection attempts.
    pub fn connect_retry(mut self, secs: u16) -> Self {
        self.connect_retry = secs;
        self
    }

    /// Negotiate exactly these families.
    pub fn families(mut self, families: &[Family]) -> Self {
        self.families = families.to_vec();
        self
    }

    /// Whether the session is iBGP for a router in `local_as`.
    pub fn is_ibgp(&self, local_as: Asn) -> bool {
        self.remote_as == local_as
    }

    /// The keepalive to configure when only a hold time was given.
    pub(crate) fn effective_keepalive(&self) -> Option<u16> {
        self.keepalive_time
            .or_else(|| self.hold_time.map(|h| (h / 3).max(1)))
    }
}

/// Attributes a test router attaches to a route it originates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteAttrs {
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (only iBGP peers see it).
    pub local_pref: Option<u32>,
    /// Standard communities (`high << 16 | low`).
    pub communities: Vec<Community>,
    /// Large communities.
    pub large_communities: Vec<LargeCommunity>,
}

impl RouteAttrs {
    /// No attributes beyond what the daemon adds.
    pub fn new() -> RouteAttrs {
        RouteAttrs::default()
    }

    /// Set MED.
    pub fn med(mut self, med: u32) -> Self {
        self.med = Some(med);
        self
    }

    /// Set LOCAL_PREF.
    pub fn local_pref(mut self, lp: u32) -> Self {
        self.local_pref = Some(lp);
        self
    }

    /// Add community `high:low`.
    pub fn community(mut self, high: u16, low: u16) -> Self {
        self.communities.push(((high as u32) << 16) | low as u32);
        self
    }

    /// Add large community `global:local1:local2`.
    pub fn large_community(mut self, global: u32, local1: u32, local2: u32) -> Self {
        self.large_communities.push(LargeCommunity {
            global,
            local1,
            local2,
        });
        self
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == RouteAttrs::default()
    }
}

/// A prefix a test router originates, with its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Originated {
    /// The prefix.
    pub prefix: IpNet,
    /// Attributes to attach.
    pub attrs: RouteAttrs,
}

/// A test router's whole configuration, rendered by each launcher into its daemon's syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Our AS.
    pub asn: Asn,
    /// Listen only on this address (default: all).
    pub listen_address: Option<IpAddr>,
    /// TCP port to listen on.
    pub listen_port: u16,
    /// Route-reflector cluster id (used when a neighbour is an `rr_client`; defaults to the
    /// router id).
    pub cluster_id: Option<Ipv4Addr>,
    /// Neighbours.
    pub neighbors: Vec<Neighbor>,
    /// Prefixes originated from the start.
    pub originate: Vec<Originated>,
    /// Install learned routes into the namespace's FIB.
    pub install_fib: bool,
}

impl RouterConfig {
    /// A router with no neighbours, listening on port 179 on all addresses, no FIB.
    pub fn new(router_id: Ipv4Addr, asn: Asn) -> RouterConfig {
        RouterConfig {
            router_id,
            asn,
            listen_address: None,
            listen_port: 179,
            cluster_id: None,
            neighbors: Vec::new(),
            originate: Vec::new(),
            install_fib: false,
        }
    }

    /// Parse the router id (panics on a malformed literal: test code writes these by hand).
    pub fn parse(router_id: &str, asn: Asn) -> RouterConfig {
        let id = router_id
            .parse()
            .unwrap_or_else(|e| panic!("router id {router_id:?}: {e}"));
        RouterConfig::new(id, asn)
    }

    /// Add a neighbour.
    pub fn neighbor(mut self, n: Neighbor) -> Self {
        self.neighbors.push(n);
        self
    }

    /// Originate `prefix` (panics on a malformed literal) with `attrs`.
    pub fn originate(mut self, prefix: &str, attrs: RouteAttrs) -> Self {
        let prefix = prefix
            .parse()
            .unwrap_or_else(|e| panic!("originated prefix {prefix:?}: {e}"));
        self.originate.push(Originated { prefix, attrs });
        self
    }

    /// Listen on `addr` (or all addresses) and `port`.
    pub fn listen(mut self, addr: Option<IpAddr>, port: u16) -> Self {
        self.listen_address = addr;
        self.listen_port = port;
        self
    }

    /// Set the route-reflector cluster id.
    pub fn cluster_id(mut self, id: Ipv4Addr) -> Self {
        self.cluster_id = Some(id);
        self
    }

    /// Install learned routes into the namespace's FIB (or not).
    pub fn install_fib(mut self, on: bool) -> Self {
        self.install_fib = on;
        self
    }

    /// The neighbour configured at `peer`.
    pub fn neighbor_at(&self, peer: IpAddr) -> Option<&Neighbor> {
        self.neighbors.iter().find(|n| n.address == peer)
    }

    /// Families used by any neighbour or originated prefix.
    pub fn families(&self) -> Vec<Family> {
        let mut out: Vec<Family> = self
            .neighbors
            .iter()
            .flat_map(|n| n.families.iter().copied())
            .chain(self.originate.iter().map(|o| Family::of(&o.prefix)))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// One path to a prefix as a daemon shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The prefix.
    pub prefix: IpNet,
    /// Next hop (the global one for IPv6); `None` for a locally originated route.
    pub next_hop: Option<IpAddr>,
    /// The AS path flattened, leftmost first (sets and confederation segments included).
    pub as_path: Vec<Asn>,
    /// The AS path with its segment types.
    pub as_path_segments: Vec<AsSegment>,
    /// ORIGIN.
    pub origin: Origin,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (BIRD and FRR show a default for eBGP routes too; compare on iBGP).
    pub local_pref: Option<u32>,
    /// COMMUNITIES in the daemon's order.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST, most recent first.
    pub cluster_list: Vec<Ipv4Addr>,
    /// The daemon's best path for the prefix.
    pub best: bool,
    /// The neighbour the path was learned from; `None` for a local route.
    pub from: Option<IpAddr>,
}

impl Route {
    /// A route with no attributes (parsers fill it in).
    pub(crate) fn empty(prefix: IpNet) -> Route {
        Route {
            prefix,
            next_hop: None,
            as_path: Vec::new(),
            as_path_segments: Vec::new(),
            origin: Origin::Igp,
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            originator_id: None,
            cluster_list: Vec::new(),
            best: false,
            from: None,
        }
    }

    /// Set `as_path_segments` and the flattened `as_path` together.
    pub(crate) fn set_as_path(&mut self, segments: Vec<AsSegment>) {
        self.as_path = segments.iter().flat_map(|s| s.asns().to_vec()).collect();
        self.as_path_segments = segments;
    }

    /// Whether community `high:low` is attached.
    pub fn has_community(&self, high: u16, low: u16) -> bool {
        self.communities
            .contains(&(((high as u32) << 16) | low as u32))
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nh = self
            .next_hop
            .map(|n| n.to_string())
            .unwrap_or_else(|| "local".into());
        let path: Vec<String> = self.as_path.iter().map(|a| a.to_string()).collect();
        write!(
            f,
            "{} via {} path [{}] {}",
            self.prefix,
            nh,
            path.join(" "),
            self.origin
        )?;
        if let Some(m) = self.med {
            write!(f, " med {m}")?;
        }
        if let Some(lp) = self.local_pref {
            write!(f, " lp {lp}")?;
        }
        if !self.communities.is_empty() {
            let c: Vec<String> = self
                .communities
                .iter()
                .map(|c| bgp::types::community_to_string(*c))
                .collect();
            write!(f, " comm {}", c.join(","))?;
        }
        if self.best {
            f.write_str(" best")?;
        }
        Ok(())
    }
}

/// Parse a community written `high:low`.
pub(crate) fn parse_community(text: &str) -> Option<Community> {
    let (h, l) = text.trim().split_once(':')?;
    let h: u16 = h.trim().parse().ok()?;
    let l: u16 = l.trim().parse().ok()?;
    Some(((h as u32) << 16) | l as u32)
}

/// Parse a large community written `a:b:c`.
pub(crate) fn parse_large_community(text: &str) -> Option<LargeCommunity> {
    let mut it = text.trim().split(':').map(|p| p.trim().parse::<u32>());
    let lc = LargeCommunity {
        global: it.next()?.ok()?,
        local1: it.next()?.ok()?,
        local2: it.next()?.ok()?,
    };
    it.next().is_none().then_some(lc)
}

/// A running BGP daemon playing a peer in a scenario.
pub trait BgpDaemon {
    /// "bird", "frr" or "gobgp".
    fn kind(&self) -> &'static str;

    /// The daemon process (pid, signals, logs).
    fn process(&self) -> &Proc;

    /// Session state towards `peer`.
    fn peer_state(&self, peer: IpAddr) -> Result<SessionState>;

    /// Every path in the daemon's RIB (IPv4 and IPv6 unicast), local routes included.
    fn routes(&self) -> Result<Vec<Route>>;

    /// Start originating `prefix` with `attrs` (replaces an earlier origination of it).
    fn announce(&self, prefix: IpNet, attrs: &RouteAttrs) -> Result<()>;

    /// Stop originating `prefix`.
    fn withdraw(&self, prefix: IpNet) -> Result<()>;

    /// The best path to exactly `prefix`, if any.
    fn route(&self, prefix: IpNet) -> Result<Option<Route>> {
        let mut paths: Vec<Route> = self
            .routes()?
            .into_iter()
            .filter(|r| r.prefix == prefix)
            .collect();
        let best = paths.iter().position(|r| r.best);
        Ok(match best {
            Some(i) => Some(paths.swap_remove(i)),
            None => paths.into_iter().next(),
        })
    }

    /// Wait until the session to `peer` is Established (fails at once for an unknown peer).
    fn wait_established(&self, peer: IpAddr, timeout: Duration) -> Result<()> {
        let what = format!("{} session to {peer} to be Established", self.kind());
        wait_until(timeout, &what, || match self.peer_state(peer) {
            Ok(SessionState::Established) => Ok(Ok(())),
            Err(e @ Error::UnknownPeer { .. }) => Ok(Err(e)),
            Ok(s) => Err(s.name().to_string()),
            Err(e) => Err(e.chain()),
        })?
    }

    /// Wait until the best path to `prefix` satisfies `check`; a timeout quotes the last path.
    fn wait_route(
        &self,
        prefix: IpNet,
        timeout: Duration,
        check: &dyn Fn(&Route) -> bool,
    ) -> Result<Route> {
        let what = format!("{} to hold a matching route to {prefix}", self.kind());
        wait_until(timeout, &what, || match self.route(prefix) {
            Ok(Some(r)) if check(&r) => Ok(r),
            Ok(Some(r)) => Err(format!("{r}")),
            Ok(None) => Err("no route".to_string()),
            Err(e) => Err(e.chain()),
        })
    }

    /// Wait until the daemon has any path to `prefix`.
    fn wait_any_route(&self, prefix: IpNet, timeout: Duration) -> Result<Route> {
        self.wait_route(prefix, timeout, &|_| true)
    }

    /// Wait until the daemon has no path to `prefix`.
    fn wait_no_route(&self, prefix: IpNet, timeout: Duration) -> Result<()> {
        let what = format!("{} to lose its route to {prefix}", self.kind());
        wait_until(timeout, &what, || match self.route(prefix) {
            Ok(None) => Ok(()),
            Ok(Some(r)) => Err(format!("still there: {r}")),
            Err(e) => Err(e.chain()),
        })
    }

    /// What the daemon logged so far.
    fn logs(&self) -> String {
        self.process().logs()
    }
}

/// `Error::UnknownPeer` unless `config` has a neighbour at `peer`.
pub(crate) fn known_peer<'a>(
    daemon: &'static str,
    config: &'a RouterConfig,
    peer: IpAddr,
) -> Result<&'a Neighbor> {
    config
        .neighbor_at(peer)
        .ok_or(Error::UnknownPeer { daemon, peer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_parse_and_reject_garbage() {
        assert_eq!(parse_community("65001:100"), Some(0xFDE9_0064));
        assert_eq!(parse_community("65536:1"), None);
        assert_eq!(parse_community("x"), None);
        assert_eq!(
            parse_large_community("65001:1:2"),
            Some(LargeCommunity {
                global: 65001,
                local1: 1,
                local2: 2
            })
        );
        assert_eq!(parse_large_community("1:2"), None);
        assert_eq!(parse_large_community("1:2:3:4"), None);
    }

    #[test]
    fn attrs_builder_encodes_communities() {
        let a = RouteAttrs::new().community(65001, 100).med(5);
        assert_eq!(a.communities, vec![(65001 << 16) | 100]);
        assert_eq!(a.med, Some(5));
        assert!(!a.is_empty());
        assert!(RouteAttrs::new().is_empty());
    }

    #[test]
    fn keepalive_defaults_to_a_third_of_hold() {
        let n = Neighbor::parse("10.0.0.1", 65001);
        assert_eq!(n.effective_keepalive(), None);
        let mut n = n;
        n.hold_time = Some(9);
        assert_eq!(n.effective_keepalive(), Some(3));
        assert_eq!(n.timers(30, 7).effective_keepalive(), Some(7));
    }

    #[test]
    fn families_follow_neighbours_and_prefixes() {
        let c = RouterConfig::parse("10.0.0.1", 65001)
            .neighbor(Neighbor::parse("10.0.0.2", 65002))
            .originate("2001:db8::/48", RouteAttrs::new());
        assert_eq!(c.families(), vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
    }
}
