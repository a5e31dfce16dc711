//! Hand-built BGP messages and a minimal, bounds-checked reader of received ones.
//!
//! Owns: byte builders for OPEN (with capabilities), KEEPALIVE, NOTIFICATION and UPDATE (IPv4
//! NLRI with ORIGIN, 4-octet AS_PATH, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES, or any raw
//! attribute), and `Update`/`Open` views of what a peer sent. Deliberately independent of
//! Ginger's codec: a test must be able to build (and send) anything, including garbage, and
//! check Ginger's output against a second reading of RFC 4271. Must not: panic on any input.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The all-ones marker (RFC 4271 §4.1).
pub const MARKER: [u8; 16] = [0xFF; 16];
/// Header length.
pub const HEADER_LEN: usize = 19;

/// Message type codes (RFC 4271 §4.1, RFC 2918).
pub mod msg_type {
    /// OPEN.
    pub const OPEN: u8 = 1;
    /// UPDATE.
    pub const UPDATE: u8 = 2;
    /// NOTIFICATION.
    pub const NOTIFICATION: u8 = 3;
    /// KEEPALIVE.
    pub const KEEPALIVE: u8 = 4;
    /// ROUTE-REFRESH.
    pub const ROUTE_REFRESH: u8 = 5;
}

/// Path attribute type codes used by the builders.
pub mod attr_type {
    /// ORIGIN.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP.
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC.
    pub const MED: u8 = 4;
    /// LOCAL_PREF.
    pub const LOCAL_PREF: u8 = 5;
    /// COMMUNITIES.
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID.
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST.
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI.
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// LARGE_COMMUNITY.
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// Attribute flag bits (RFC 4271 §4.3).
pub mod attr_flags {
    /// Optional.
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial.
    pub const PARTIAL: u8 = 0x20;
    /// Extended length (two-octet length field).
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// A whole message: marker, length (computed, saturating at 65535) and `body`.
pub fn frame(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let len = (HEADER_LEN + body.len()).min(u16::MAX as usize) as u16;
    let mut m = Vec::with_capacity(HEADER_LEN + body.len());
    m.extend_from_slice(&MARKER);
    m.extend_from_slice(&len.to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

/// KEEPALIVE.
pub fn keepalive() -> Vec<u8> {
    frame(msg_type::KEEPALIVE, &[])
}

/// NOTIFICATION with `code`, `subcode` and `data`.
pub fn notification(code: u8, subcode: u8, data: &[u8]) -> Vec<u8> {
    let mut b = vec![code, subcode];
    b.extend_from_slice(data);
    frame(msg_type::NOTIFICATION, &b)
}

/// Capability: multiprotocol `afi`/`safi` (RFC 4760).
pub fn cap_multiprotocol(afi: u16, safi: u8) -> Vec<u8> {
    let a = afi.to_be_bytes();
    vec![1, 4, a[0], a[1], 0, safi]
}

/// Capability: route refresh (RFC 2918).
pub fn cap_route_refresh() -> Vec<u8> {
    vec![2, 0]
}

/// Capability: 4-octet AS number (RFC 6793).
pub fn cap_four_octet_as(asn: u32) -> Vec<u8> {
    let mut c = vec![65, 4];
    c.extend_from_slice(&asn.to_be_bytes());
    c
}

/// OPEN for `asn` (AS_TRANS in the 2-octet field when it does not fit) with IPv4 unicast,
/// route refresh and 4-octet AS capabilities.
pub fn open(asn: u32, hold_time: u16, router_id: Ipv4Addr) -> Vec<u8> {
    open_with(
        asn,
        hold_time,
        router_id,
        &[
            cap_multiprotocol(1, 1),
            cap_route_refresh(),
            cap_four_octet_as(asn),
        ],
    )
}

/// OPEN with exactly `capabilities` (each one already encoded, code + length + value), all in
/// one Capabilities optional parameter (RFC 5492).
pub fn open_with(
    asn: u32,
    hold_time: u16,
    router_id: Ipv4Addr,
    capabilities: &[Vec<u8>],
) -> Vec<u8> {
    let my_as: u16 = u16::try_from(asn).unwrap_or(bgp::types::AS_TRANS as u16);
    let caps: Vec<u8> = capabilities.concat();
    let mut b = vec![4];
    b.extend_from_slice(&my_as.to_be_bytes());
    b.extend_from_slice(&hold_time.to_be_bytes());
    b.extend_from_slice(&router_id.octets());
    if caps.is_empty() {
        b.push(0);
    } else {
        let param_len = caps.len().min(255) as u8;
        b.push(param_len.saturating_add(2));
        b.push(2);
        b.push(param_len);
        b.extend_from_slice(&caps[..param_len as usize]);
    }
    frame(msg_type::OPEN, &b)
}

/// Encode one path attribute (extended length when the value needs it).
pub fn attr(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + value.len());
    if value.len() > 255 {
        a.push(flags | attr_flags::EXTENDED_LENGTH);
        a.push(type_code);
        a.extend_from_slice(&(value.len().min(u16::MAX as usize) as u16).to_be_bytes());
    } else {
        a.push(flags & !attr_flags::EXTENDED_LENGTH);
        a.push(type_code);
        a.push(value.len() as u8);
    }
    a.extend_from_slice(value);
    a
}

/// Encode an IPv4 prefix as NLRI (length octet + significant octets).
pub fn encode_prefix(p: &Ipv4Net) -> Vec<u8> {
    let bytes = (p.prefix_len() as usize).div_ceil(8);
    let mut v = vec![p.prefix_len()];
    v.extend_from_slice(&p.network().octets()[..bytes]);
    v
}

/// Builder for an UPDATE carrying IPv4 NLRI.
#[derive(Clone, Debug, Default)]
pub struct UpdateBuilder {
    withdrawn: Vec<Ipv4Net>,
    attrs: Vec<u8>,
    nlri: Vec<Ipv4Net>,
}

impl UpdateBuilder {
    /// An empty UPDATE (as is, it is the IPv4 End-of-RIB marker, RFC 4724 §2).
    pub fn new() -> Self {
        Self::default()
    }

    /// Withdraw `p`.
    pub fn withdraw(mut self, p: Ipv4Net) -> Self {
        self.withdrawn.push(p);
        self
    }

    /// Announce `p` (the attributes added apply to every announced prefix).
    pub fn nlri(mut self, p: Ipv4Net) -> Self {
        self.nlri.push(p);
        self
    }

    /// ORIGIN (0 IGP, 1 EGP, 2 INCOMPLETE; anything else to test error handling).
    pub fn origin(self, origin: u8) -> Self {
        self.raw_attr(attr_flags::TRANSITIVE, attr_type::ORIGIN, &[origin])
    }

    /// AS_PATH as one AS_SEQUENCE of 4-octet ASNs (empty: an empty AS_PATH).
    pub fn as_path(self, asns: &[u32]) -> Self {
        let mut v = Vec::new();
        for chunk in asns.chunks(255) {
            v.push(2);
            v.push(chunk.len() as u8);
            for a in chunk {
                v.extend_from_slice(&a.to_be_bytes());
            }
        }
        self.raw_attr(attr_flags::TRANSITIVE, attr_type::AS_PATH, &v)
    }

    /// NEXT_HOP.
    pub fn next_hop(self, nh: Ipv4Addr) -> Self {
        self.raw_attr(attr_flags::TRANSITIVE, attr_type::NEXT_HOP, &nh.octets())
    }

    /// MULTI_EXIT_DISC.
    pub fn med(self, med: u32) -> Self {
        self.raw_attr(attr_flags::OPTIONAL, attr_type::MED, &med.to_be_bytes())
    }

    /// LOCAL_PREF.
    pub fn local_pref(self, lp: u32) -> Self {
        self.raw_attr(
            attr_flags::TRANSITIVE,
            attr_type::LOCAL_PREF,
            &lp.to_be_bytes(),
        )
    }

    /// COMMUNITIES (`high << 16 | low` each).
    pub fn communities(self, cs: &[u32]) -> Self {
        let v: Vec<u8> = cs.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.raw_attr(
            attr_flags::OPTIONAL | attr_flags::TRANSITIVE,
            attr_type::COMMUNITIES,
            &v,
        )
    }

    /// Any attribute, encoded as given.
    pub fn raw_attr(mut self, flags: u8, type_code: u8, value: &[u8]) -> Self {
        self.attrs.extend(attr(flags, type_code, value));
        self
    }

    /// Append already-encoded attribute bytes verbatim (malformed ones included).
    pub fn raw_attr_bytes(mut self, bytes: &[u8]) -> Self {
        self.attrs.extend_from_slice(bytes);
        self
    }

    /// The whole message.
    pub fn build(&self) -> Vec<u8> {
        let withdrawn: Vec<u8> = self.withdrawn.iter().flat_map(encode_prefix).collect();
        let mut b = Vec::new();
        b.extend_from_slice(&(withdrawn.len().min(u16::MAX as usize) as u16).to_be_bytes());
        b.extend_from_slice(&withdrawn);
        b.extend_from_slice(&(self.attrs.len().min(u16::MAX as usize) as u16).to_be_bytes());
        b.extend_from_slice(&self.attrs);
        for p in &self.nlri {
            b.extend(encode_prefix(p));
        }
        frame(msg_type::UPDATE, &b)
    }
}

/// Why a received message could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {detail}")]
pub struct Malformed {
    /// Which message or field.
    pub what: &'static str,
    /// What was wrong.
    pub detail: String,
}

fn malformed(what: &'static str, detail: impl Into<String>) -> Malformed {
    Malformed {
        what,
        detail: detail.into(),
    }
}

/// A bounds-checked cursor.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.buf.len() < n {
            return Err(malformed(
                self.what,
                format!("needs {n} more bytes, {} left", self.buf.len()),
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// An OPEN as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// Version (4).
    pub version: u8,
    /// The 2-octet My Autonomous System field.
    pub my_as: u16,
    /// Proposed hold time.
    pub hold_time: u16,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Capabilities as (code, value).
    pub capabilities: Vec<(u8, Vec<u8>)>,
}

impl Open {
    /// Parse an OPEN body (after the header).
    pub fn parse(body: &[u8]) -> Result<Open, Malformed> {
        let mut r = Reader {
            buf: body,
            what: "OPEN",
        };
        let version = r.u8()?;
        let my_as = r.u16()?;
        let hold_time = r.u16()?;
        let id = r.take(4)?;
        let router_id = Ipv4Addr::new(id[0], id[1], id[2], id[3]);
        let opt_len = r.u8()? as usize;
        let mut params = Reader {
            buf: r.take(opt_len)?,
            what: "OPEN optional parameter",
        };
        let mut capabilities = Vec::new();
        while !params.buf.is_empty() {
            let ptype = params.u8()?;
            let plen = params.u8()? as usize;
            let value = params.take(plen)?;
            if ptype != 2 {
                continue;
            }
            let mut caps = Reader {
                buf: value,
                what: "capability",
            };
            while !caps.buf.is_empty() {
                let code = caps.u8()?;
                let len = caps.u8()? as usize;
                capabilities.push((code, caps.take(len)?.to_vec()));
            }
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            router_id,
            capabilities,
        })
    }

    /// The 4-octet AS from the capability, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find(|(c, v)| *c == 65 && v.len() == 4)
            .map(|(_, v)| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            .unwrap_or(self.my_as as u32)
    }

    /// Whether capability `code` was offered.
    pub fn has_capability(&self, code: u8) -> bool {
        self.capabilities.iter().any(|(c, _)| *c == code)
    }
}

/// One path attribute as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Flags.
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value bytes.
    pub value: Vec<u8>,
}

/// An UPDATE as received (IPv4 NLRI in the body; MP attributes are left as raw attributes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn routes.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes in received order.
    pub attrs: Vec<Attr>,
    /// Announced prefixes.
    pub nlri: Vec<Ipv4Net>,
}

fn read_prefixes(mut r: Reader<'_>) -> Result<Vec<Ipv4Net>, Malformed> {
    let mut out = Vec::new();
    while !r.buf.is_empty() {
        let len = r.u8()?;
        if len > 32 {
            return Err(malformed(r.what, format!("prefix length {len}")));
        }
        let bytes = r.take((len as usize).div_ceil(8))?;
        let mut o = [0u8; 4];
        o[..bytes.len()].copy_from_slice(bytes);
        let net =
            Ipv4Net::new(Ipv4Addr::from(o), len).map_err(|e| malformed(r.what, e.to_string()))?;
        out.push(net.trunc());
    }
    Ok(out)
}

impl Update {
    /// Parse an UPDATE body (after the header).
    pub fn parse(body: &[u8]) -> Result<Update, Malformed> {
        let mut r = Reader {
            buf: body,
            what: "UPDATE",
        };
        let wlen = r.u16()? as usize;
        let withdrawn = read_prefixes(Reader {
            buf: r.take(wlen)?,
            what: "withdrawn routes",
        })?;
        let alen = r.u16()? as usize;
        let mut ar = Reader {
            buf: r.take(alen)?,
            what: "path attribute",
        };
        let mut attrs = Vec::new();
        while !ar.buf.is_empty() {
            let flags = ar.u8()?;
            let type_code = ar.u8()?;
            let len = if flags & attr_flags::EXTENDED_LENGTH != 0 {
                ar.u16()? as usize
            } else {
                ar.u8()? as usize
            };
            attrs.push(Attr {
                flags,
                type_code,
                value: ar.take(len)?.to_vec(),
            });
        }
        let nlri = read_prefixes(Reader {
            buf: r.buf,
            what: "NLRI",
        })?;
        Ok(Update {
            withdrawn,
            attrs,
            nlri,
        })
    }

    /// The attribute with `type_code`, if present.
    pub fn attr(&self, type_code: u8) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.type_code == type_code)
    }

    /// Whether this is the IPv4 End-of-RIB marker (an empty UPDATE, RFC 4724 §2).
    pub fn is_end_of_rib(&self) -> bool {
        self.withdrawn.is_empty() && self.attrs.is_empty() && self.nlri.is_empty()
    }

    /// ORIGIN value.
    pub fn origin(&self) -> Option<u8> {
        self.attr(attr_type::ORIGIN)
            .and_then(|a| a.value.first().copied())
    }

    /// AS_PATH flattened, reading ASNs as 4 octets (the session negotiated 4-octet AS).
    pub fn as_path(&self) -> Result<Vec<u32>, Malformed> {
        let Some(a) = self.attr(attr_type::AS_PATH) else {
            return Ok(Vec::new());
        };
        let mut r = Reader {
            buf: &a.value,
            what: "AS_PATH",
        };
        let mut out = Vec::new();
        while !r.buf.is_empty() {
            let _seg_type = r.u8()?;
            let n = r.u8()?;
            for _ in 0..n {
                out.push(r.u32()?);
            }
        }
        Ok(out)
    }

    /// NEXT_HOP.
    pub fn next_hop(&self) -> Option<Ipv4Addr> {
        let v = &self.attr(attr_type::NEXT_HOP)?.value;
        (v.len() == 4).then(|| Ipv4Addr::new(v[0], v[1], v[2], v[3]))
    }

    /// MULTI_EXIT_DISC.
    pub fn med(&self) -> Option<u32> {
        u32_value(self.attr(attr_type::MED)?)
    }

    /// LOCAL_PREF.
    pub fn local_pref(&self) -> Option<u32> {
        u32_value(self.attr(attr_type::LOCAL_PREF)?)
    }

    /// COMMUNITIES.
    pub fn communities(&self) -> Vec<u32> {
        self.attr(attr_type::COMMUNITIES)
            .map(|a| {
                a.value
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn u32_value(a: &Attr) -> Option<u32> {
    let v = &a.value;
    (v.len() == 4).then(|| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

/// A NOTIFICATION as received: (code, subcode, data).
pub fn parse_notification(body: &[u8]) -> Result<(u8, u8, Vec<u8>), Malformed> {
    match body {
        [code, subcode, data @ ..] => Ok((*code, *subcode, data.to_vec())),
        _ => Err(malformed("NOTIFICATION", format!("{} bytes", body.len()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn keepalive_is_a_bare_header() {
        // RFC 4271 §4.4: a KEEPALIVE is the 19-byte header alone.
        let k = keepalive();
        assert_eq!(k.len(), 19);
        assert_eq!(&k[16..], &[0, 19, 4]);
    }

    #[test]
    fn open_round_trips_and_uses_as_trans() {
        // RFC 6793 §4.2.1: a 4-octet ASN that does not fit goes as AS_TRANS.
        let m = open(4_200_000_001, 90, "10.0.0.9".parse().unwrap());
        assert_eq!(u16::from_be_bytes([m[16], m[17]]) as usize, m.len());
        let o = Open::parse(&m[19..]).unwrap();
        assert_eq!(o.version, 4);
        assert_eq!(o.my_as, 23456);
        assert_eq!(o.asn(), 4_200_000_001);
        assert_eq!(o.hold_time, 90);
        assert!(o.has_capability(1) && o.has_capability(2) && o.has_capability(65));
        let small = Open::parse(&open_with(65001, 3, Ipv4Addr::LOCALHOST, &[])[19..]).unwrap();
        assert_eq!(small.asn(), 65001);
        assert!(small.capabilities.is_empty());
    }

    #[test]
    fn update_round_trips() {
        let m = UpdateBuilder::new()
            .withdraw(net("198.51.100.0/24"))
            .origin(0)
            .as_path(&[65099, 4_200_000_001])
            .next_hop("10.0.0.9".parse().unwrap())
            .med(42)
            .local_pref(150)
            .communities(&[(65099 << 16) | 1])
            .nlri(net("192.0.2.0/24"))
            .nlri(net("10.1.0.0/23"))
            .build();
        let u = Update::parse(&m[19..]).unwrap();
        assert_eq!(u.withdrawn, vec![net("198.51.100.0/24")]);
        assert_eq!(u.nlri, vec![net("192.0.2.0/24"), net("10.1.0.0/23")]);
        assert_eq!(u.origin(), Some(0));
        assert_eq!(u.as_path().unwrap(), vec![65099, 4_200_000_001]);
        assert_eq!(u.next_hop(), Some("10.0.0.9".parse().unwrap()));
        assert_eq!((u.med(), u.local_pref()), (Some(42), Some(150)));
        assert_eq!(u.communities(), vec![(65099 << 16) | 1]);
        // RFC 4271 §4.3: MED is optional non-transitive, ORIGIN well-known transitive.
        assert_eq!(u.attr(attr_type::MED).unwrap().flags, 0x80);
        assert_eq!(u.attr(attr_type::ORIGIN).unwrap().flags, 0x40);
        assert!(!u.is_end_of_rib());
        assert!(
            Update::parse(&UpdateBuilder::new().build()[19..])
                .unwrap()
                .is_end_of_rib()
        );
    }

    #[test]
    fn prefixes_encode_only_significant_octets() {
        assert_eq!(encode_prefix(&net("10.1.0.0/23")), vec![23, 10, 1, 0]);
        assert_eq!(encode_prefix(&net("10.128.0.0/9")), vec![9, 10, 128]);
        assert_eq!(encode_prefix(&net("0.0.0.0/0")), vec![0]);
        assert_eq!(encode_prefix(&net("192.0.2.1/32")), vec![32, 192, 0, 2, 1]);
    }

    #[test]
    fn long_attribute_values_use_extended_length() {
        let a = attr(attr_flags::OPTIONAL, 99, &[7; 300]);
        assert_eq!(a[0], attr_flags::OPTIONAL | attr_flags::EXTENDED_LENGTH);
        assert_eq!(u16::from_be_bytes([a[2], a[3]]), 300);
        let m = UpdateBuilder::new()
            .raw_attr(attr_flags::OPTIONAL, 99, &[7; 300])
            .build();
        assert_eq!(Update::parse(&m[19..]).unwrap().attrs[0].value.len(), 300);
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error_never_a_panic() {
        let good = UpdateBuilder::new()
            .origin(0)
            .as_path(&[1, 2])
            .next_hop(Ipv4Addr::LOCALHOST)
            .nlri(net("192.0.2.0/24"))
            .build();
        let body = &good[19..];
        let nlri_start = body.len() - 4;
        for cut in 0..body.len() {
            let parsed = Update::parse(&body[..cut]);
            match cut {
                c if c < nlri_start => assert!(parsed.is_err(), "cut at {c} parsed"),
                c if c == nlri_start => assert!(parsed.unwrap().nlri.is_empty()),
                c => assert!(parsed.is_err(), "partial prefix at {c} parsed"),
            }
        }
        assert!(Update::parse(&[0, 5, 1]).is_err());
        assert!(Update::parse(&[0, 0, 0, 0, 33, 1, 2, 3, 4, 5]).is_err());
        assert!(Open::parse(&[4, 0]).is_err());
        assert!(Open::parse(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 4, 2, 9, 1, 1]).is_err());
        assert!(parse_notification(&[6]).is_err());
        assert_eq!(parse_notification(&[6, 2, 9]).unwrap(), (6, 2, vec![9]));
        // A deterministic pseudo-random sweep over short inputs.
        let mut x: u32 = 0x1234_5678;
        for len in 0..64 {
            let mut buf = vec![0u8; len];
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let _ = Update::parse(&buf);
            let _ = Open::parse(&buf);
            if let Ok(u) = Update::parse(&buf) {
                let _ = u.as_path();
            }
        }
    }
}
