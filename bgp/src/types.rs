//! Protocol data shared by every layer of the speaker: address families, AS numbers, AS paths and
//! the path attribute set a route carries.
//!
//! Owns: plain data and the small pure helpers on it (AS path length, prepend, loop checks,
//! display). Must not: know about wire encoding (that is `packet`), sessions or the RIB.
//! Path attributes are immutable once built and shared through `Arc`, so many prefixes learned in
//! one UPDATE (or exported to one peer) point at the same allocation.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A 4-octet AS number (RFC 6793); 2-octet numbers are the same values below 65536.
pub type Asn = u32;

/// The AS number a 4-octet speaker puts in 2-octet fields for a larger ASN (RFC 6793 §9).
pub const AS_TRANS: Asn = 23456;

/// AFI values (IANA "Address Family Numbers").
pub const AFI_IPV4: u16 = 1;
/// AFI for IPv6.
pub const AFI_IPV6: u16 = 2;
/// SAFI for unicast forwarding (RFC 4760).
pub const SAFI_UNICAST: u8 = 1;

/// The address families Ginger carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    /// AFI 1 / SAFI 1.
    Ipv4Unicast,
    /// AFI 2 / SAFI 1, always in MP_REACH_NLRI / MP_UNREACH_NLRI.
    Ipv6Unicast,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    /// The (AFI, SAFI) pair on the wire.
    pub fn afi_safi(self) -> (u16, u8) {
        match self {
            Family::Ipv4Unicast => (AFI_IPV4, SAFI_UNICAST),
            Family::Ipv6Unicast => (AFI_IPV6, SAFI_UNICAST),
        }
    }

    /// The family for a wire (AFI, SAFI) pair, if Ginger carries it.
    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Family> {
        match (afi, safi) {
            (AFI_IPV4, SAFI_UNICAST) => Some(Family::Ipv4Unicast),
            (AFI_IPV6, SAFI_UNICAST) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    /// The family a prefix belongs to.
    pub fn of(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }

    /// The family of an address.
    pub fn of_addr(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4Unicast,
            IpAddr::V6(_) => Family::Ipv6Unicast,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

/// ORIGIN attribute values (RFC 4271 §5.1.1); the order is the decision-process preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Origin {
    /// Learned from an interior protocol (preferred).
    Igp = 0,
    /// Learned via EGP.
    Egp = 1,
    /// Learned some other way.
    Incomplete = 2,
}

impl Origin {
    /// The origin for a wire value, if it is one of the three defined ones.
    pub fn from_u8(v: u8) -> Option<Origin> {
        match v {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Igp => "IGP",
            Origin::Egp => "EGP",
            Origin::Incomplete => "incomplete",
        })
    }
}

/// One AS_PATH segment (RFC 4271 §4.3, RFC 5065 for the confederation types).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AsSegment {
    /// Type 2: ordered ASes the route has traversed.
    Sequence(Vec<Asn>),
    /// Type 1: unordered ASes (aggregation).
    Set(Vec<Asn>),
    /// Type 3: ordered member ASes within a confederation.
    ConfedSequence(Vec<Asn>),
    /// Type 4: unordered member ASes within a confederation.
    ConfedSet(Vec<Asn>),
}

impl AsSegment {
    /// The ASes in this segment, whatever its type.
    pub fn asns(&self) -> &[Asn] {
        match self {
            AsSegment::Sequence(v)
            | AsSegment::Set(v)
            | AsSegment::ConfedSequence(v)
            | AsSegment::ConfedSet(v) => v,
        }
    }

    /// The segment type code on the wire.
    pub fn type_code(&self) -> u8 {
        match self {
            AsSegment::Set(_) => 1,
            AsSegment::Sequence(_) => 2,
            AsSegment::ConfedSequence(_) => 3,
            AsSegment::ConfedSet(_) => 4,
        }
    }
}

/// An AS_PATH: a list of segments, leftmost (most recently traversed) first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AsPath {
    /// Segments in wire order.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// An empty path (what a locally originated route carries towards iBGP peers).
    pub fn empty() -> AsPath {
        AsPath::default()
    }

    /// A path of a single AS_SEQUENCE.
    pub fn sequence(asns: Vec<Asn>) -> AsPath {
        if asns.is_empty() {
            return AsPath::empty();
        }
        AsPath {
            segments: vec![AsSegment::Sequence(asns)],
        }
    }

    /// Path length for the decision process (RFC 4271 §9.1.2.2 a): an AS_SET counts as one,
    /// confederation segments count as zero (RFC 5065 §5.3).
    pub fn len_for_decision(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v) => v.len(),
                AsSegment::Set(_) => 1,
                AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => 0,
            })
            .sum()
    }

    /// Whether `asn` appears anywhere in the path (eBGP loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: Asn) -> bool {
        self.segments.iter().any(|s| s.asns().contains(&asn))
    }

    /// The AS of the neighbour the route came from: the first AS of a leading AS_SEQUENCE
    /// (RFC 4271 §9.1.2.2 c, used to decide whether MEDs are comparable).
    pub fn neighbor_as(&self) -> Option<Asn> {
        match self.segments.first() {
            Some(AsSegment::Sequence(v)) => v.first().copied(),
            _ => None,
        }
    }

    /// The originating AS: the last AS of a trailing AS_SEQUENCE.
    pub fn origin_as(&self) -> Option<Asn> {
        match self.segments.last() {
            Some(AsSegment::Sequence(v)) => v.last().copied(),
            _ => None,
        }
    }

    /// This path with `asn` prepended `count` times (RFC 4271 §5.1.2: into the leading
    /// AS_SEQUENCE, or a new one if the path starts with a set or the sequence is full).
    pub fn prepended(&self, asn: Asn, count: usize) -> AsPath {
        let mut segments = self.segments.clone();
        for _ in 0..count {
            match segments.first_mut() {
                Some(AsSegment::Sequence(v)) if v.len() < 255 => v.insert(0, asn),
                _ => segments.insert(0, AsSegment::Sequence(vec![asn])),
            }
        }
        AsPath { segments }
    }

    /// Whether every AS in the path fits in two octets.
    pub fn fits_two_octets(&self) -> bool {
        self.segments
            .iter()
            .all(|s| s.asns().iter().all(|&a| a <= u16::MAX as u32))
    }
}

impl fmt::Display for AsPath {
    /// BIRD-style text: `64512 65001 {65010 65011}`; confederation segments in parentheses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let join = |v: &[Asn]| {
                v.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            match seg {
                AsSegment::Sequence(v) => write!(f, "{}", join(v))?,
                AsSegment::Set(v) => write!(f, "{{{}}}", join(v))?,
                AsSegment::ConfedSequence(v) => write!(f, "({})", join(v))?,
                AsSegment::ConfedSet(v) => write!(f, "[{}]", join(v))?,
            }
        }
        Ok(())
    }
}

/// A standard community (RFC 1997), `high:low` as one u32.
pub type Community = u32;

/// Well-known community NO_EXPORT (RFC 1997).
pub const NO_EXPORT: Community = 0xFFFF_FF01;
/// Well-known community NO_ADVERTISE (RFC 1997).
pub const NO_ADVERTISE: Community = 0xFFFF_FF02;
/// Well-known community NO_EXPORT_SUBCONFED (RFC 1997).
pub const NO_EXPORT_SUBCONFED: Community = 0xFFFF_FF03;

/// Format a standard community as `aa:nn`.
pub fn community_to_string(c: Community) -> String {
    format!("{}:{}", c >> 16, c & 0xFFFF)
}

/// A large community (RFC 8092): global administrator, two local data parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LargeCommunity {
    /// Global administrator (usually an ASN).
    pub global: u32,
    /// First local data part.
    pub local1: u32,
    /// Second local data part.
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

/// An attribute Ginger does not interpret but must carry (optional transitive ones are passed
/// on with the Partial bit set, RFC 4271 §5; others are dropped on receipt).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawAttr {
    /// Attribute flags as received (Optional, Transitive, Partial, Extended Length).
    pub flags: u8,
    /// Attribute type code.
    pub type_code: u8,
    /// Attribute value bytes.
    pub value: Vec<u8>,
}

/// The path attributes of a route (RFC 4271 §5, RFC 4456, RFC 1997, RFC 8092).
///
/// `next_hop` is the next hop for this route's family: the NEXT_HOP attribute for IPv4 NLRI, the
/// MP_REACH_NLRI next hop for IPv6 (global address; the link-local one, if any, is kept apart).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathAttrs {
    /// ORIGIN (well-known mandatory).
    pub origin: Origin,
    /// AS_PATH (well-known mandatory), already merged with AS4_PATH on 2-octet sessions.
    pub as_path: AsPath,
    /// NEXT_HOP, or the MP_REACH_NLRI global next hop.
    pub next_hop: Option<IpAddr>,
    /// The link-local IPv6 next hop from a 32-byte MP_REACH next-hop field.
    pub link_local_next_hop: Option<Ipv6Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (iBGP only).
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR (AS, address), 4-octet AS after AS4_AGGREGATOR merging.
    pub aggregator: Option<(Asn, Ipv4Addr)>,
    /// COMMUNITIES in received order.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY in received order.
    pub large_communities: Vec<LargeCommunity>,
    /// ORIGINATOR_ID (RFC 4456).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456), most recent cluster first.
    pub cluster_list: Vec<Ipv4Addr>,
    /// Unrecognised optional transitive attributes to pass on.
    pub other: Vec<RawAttr>,
}

impl PathAttrs {
    /// Attributes for a route this speaker originates: ORIGIN IGP, empty AS_PATH, no next hop
    /// yet (export fills it in per peer).
    pub fn local(communities: Vec<Community>, large_communities: Vec<LargeCommunity>) -> PathAttrs {
        PathAttrs {
            origin: Origin::Igp,
            as_path: AsPath::empty(),
            next_hop: None,
            link_local_next_hop: None,
            med: None,
            local_pref: None,
            atomic_aggregate: false,
            aggregator: None,
            communities,
            large_communities,
            originator_id: None,
            cluster_list: Vec::new(),
            other: Vec::new(),
        }
    }
}

/// Whether two prefixes are of the same family.
pub fn same_family(a: &IpNet, b: &IpNet) -> bool {
    Family::of(a) == Family::of(b)
}

/// The unspecified address of a family (used where a next hop must be present but is unknown).
pub fn unspecified(family: Family) -> IpAddr {
    match family {
        Family::Ipv4Unicast => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::Ipv6Unicast => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_length_counts_sets_as_one_and_confed_as_zero() {
        // RFC 4271 §9.1.2.2 (a), RFC 5065 §5.3.
        let p = AsPath {
            segments: vec![
                AsSegment::ConfedSequence(vec![1, 2]),
                AsSegment::Sequence(vec![3, 4, 5]),
                AsSegment::Set(vec![6, 7]),
            ],
        };
        assert_eq!(p.len_for_decision(), 4);
        assert_eq!(p.to_string(), "(1 2) 3 4 5 {6 7}");
    }

    #[test]
    fn prepend_goes_into_leading_sequence_or_a_new_one() {
        let p = AsPath::sequence(vec![65001]).prepended(64512, 2);
        assert_eq!(
            p.segments,
            vec![AsSegment::Sequence(vec![64512, 64512, 65001])]
        );
        let set_first = AsPath {
            segments: vec![AsSegment::Set(vec![1, 2])],
        };
        let q = set_first.prepended(64512, 1);
        assert_eq!(q.to_string(), "64512 {1 2}");
        assert_eq!(AsPath::empty().prepended(7, 1).neighbor_as(), Some(7));
    }

    #[test]
    fn prepend_starts_a_new_segment_when_the_first_is_full() {
        let p = AsPath::sequence(vec![1; 255]).prepended(2, 1);
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.neighbor_as(), Some(2));
        assert_eq!(p.len_for_decision(), 256);
    }

    #[test]
    fn family_round_trips_through_afi_safi() {
        for f in Family::ALL {
            let (afi, safi) = f.afi_safi();
            assert_eq!(Family::from_afi_safi(afi, safi), Some(f));
        }
        assert_eq!(Family::from_afi_safi(1, 128), None);
    }
}
