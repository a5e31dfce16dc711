//! The benchmark's own BGP bytes: pre-encoded announcement UPDATEs for the injectors, and a
//! zero-copy reader of what the target sends to the monitor and the injectors.
//!
//! Owns: packing N host routes into as few 4096-byte UPDATEs as fit (ORIGIN IGP, AS_PATH of one
//! AS, NEXT_HOP), the End-of-RIB marker, message framing over a byte stream (`split_messages`),
//! and walking an UPDATE's withdrawn routes, NLRI and IPv4-unicast MP_REACH/MP_UNREACH without
//! allocating (`UpdateView`). Hand-written and independent of Ginger's codec, so the benchmark
//! judges every target with the same yardstick. Must not: panic on any input (every read is
//! bounds-checked and malformed bytes become a `WireError`), or do I/O.

use std::net::Ipv4Addr;

use crate::rawpeer::msg::{HEADER_LEN, MARKER, attr_flags, attr_type, msg_type};

/// Largest message without the extended-message capability (RFC 4271 §4.1), which the
/// benchmark never advertises.
pub const MAX_MESSAGE: usize = 4096;
/// Octets one IPv4 /32 takes in NLRI: the length octet and four address octets.
const HOST_ROUTE_LEN: usize = 5;

/// Something in the received byte stream that is not well-formed BGP.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed BGP from the target: {0}")]
pub struct WireError(pub String);

fn bad<T>(what: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(what.into()))
}

/// Announcements ready to be written to a socket in one go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blast {
    /// Every UPDATE back to back, then the IPv4 End-of-RIB marker.
    pub bytes: Vec<u8>,
    /// Number of UPDATEs carrying routes (End-of-RIB not counted).
    pub messages: usize,
    /// Number of routes announced.
    pub prefixes: u32,
}

/// How many /32s fit in one UPDATE next to path attributes of `attrs_len` octets.
pub fn host_routes_per_update(attrs_len: usize) -> usize {
    (MAX_MESSAGE - HEADER_LEN - 4 - attrs_len) / HOST_ROUTE_LEN
}

/// The path attributes every injected route carries: ORIGIN IGP, AS_PATH `[asn]` (4-octet ASNs
/// when the session negotiated them, RFC 6793 §4.1; 2-octet otherwise) and NEXT_HOP.
pub fn injector_attributes(asn: u32, four_octet: bool, next_hop: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![attr_flags::TRANSITIVE, attr_type::ORIGIN, 1, 0];
    let as_len: u8 = if four_octet { 4 } else { 2 };
    a.extend([attr_flags::TRANSITIVE, attr_type::AS_PATH, 2 + as_len, 2, 1]);
    if four_octet {
        a.extend(asn.to_be_bytes());
    } else {
        a.extend(
            u16::try_from(asn)
                .unwrap_or(bgp::types::AS_TRANS as u16)
                .to_be_bytes(),
        );
    }
    a.extend([attr_flags::TRANSITIVE, attr_type::NEXT_HOP, 4]);
    a.extend(next_hop.octets());
    a
}

/// UPDATEs announcing the `count` host routes `first`, `first + 1`, … with `attrs`, packed as
/// tightly as the 4096-octet limit allows, followed by End-of-RIB (RFC 4724 §2).
pub fn encode_announcements(first: Ipv4Addr, count: u32, attrs: &[u8]) -> Blast {
    let per_message = host_routes_per_update(attrs.len()).max(1);
    let mut bytes =
        Vec::with_capacity((count as usize).div_ceil(per_message) * MAX_MESSAGE + HEADER_LEN + 4);
    let mut messages = 0;
    let base = u32::from(first);
    let mut next = 0u32;
    while next < count {
        let n = (count - next).min(per_message as u32);
        let len = HEADER_LEN + 4 + attrs.len() + n as usize * HOST_ROUTE_LEN;
        bytes.extend_from_slice(&MARKER);
        bytes.extend_from_slice(&(len as u16).to_be_bytes());
        bytes.push(msg_type::UPDATE);
        bytes.extend_from_slice(&0u16.to_be_bytes());
        bytes.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        bytes.extend_from_slice(attrs);
        for k in next..next + n {
            bytes.push(32);
            bytes.extend_from_slice(&base.wrapping_add(k).to_be_bytes());
        }
        next += n;
        messages += 1;
    }
    bytes.extend_from_slice(&end_of_rib());
    Blast {
        bytes,
        messages,
        prefixes: count,
    }
}

/// The IPv4 unicast End-of-RIB marker: an UPDATE with nothing in it.
pub fn end_of_rib() -> Vec<u8> {
    let mut m = MARKER.to_vec();
    m.extend_from_slice(&((HEADER_LEN + 4) as u16).to_be_bytes());
    m.push(msg_type::UPDATE);
    m.extend_from_slice(&[0, 0, 0, 0]);
    m
}

/// The first complete message at the start of `data` as (type, body), or `None` while it is
/// still incomplete.
pub fn first_message(data: &[u8]) -> Result<Option<(u8, &[u8])>, WireError> {
    let Some(header) = data.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if header[..16] != MARKER {
        return bad("a message with a broken marker");
    }
    let len = u16::from_be_bytes([header[16], header[17]]) as usize;
    if !(HEADER_LEN..=MAX_MESSAGE).contains(&len) {
        return bad(format!("message length {len} outside 19..=4096"));
    }
    Ok(data.get(HEADER_LEN..len).map(|body| (header[18], body)))
}

/// Call `each(type, body)` for every complete message at the start of `data`; returns how many
/// octets were consumed (the rest is an incomplete message to keep for the next read).
pub fn split_messages(
    data: &[u8],
    mut each: impl FnMut(u8, &[u8]) -> Result<(), WireError>,
) -> Result<usize, WireError> {
    let mut at = 0;
    while let Some((t, body)) = first_message(&data[at..])? {
        each(t, body)?;
        at += HEADER_LEN + body.len();
    }
    Ok(at)
}

/// An IPv4 prefix as the tracker wants it: address as a number and length.
pub type Prefix4 = (u32, u8);

/// The three parts of an UPDATE body (RFC 4271 §4.3), borrowed.
#[derive(Clone, Copy, Debug)]
pub struct UpdateView<'a> {
    withdrawn: &'a [u8],
    attrs: &'a [u8],
    nlri: &'a [u8],
}

impl<'a> UpdateView<'a> {
    /// Split an UPDATE body; fails when the two length fields do not fit the body.
    pub fn parse(body: &'a [u8]) -> Result<UpdateView<'a>, WireError> {
        let wlen = read_u16(body, 0, "withdrawn routes length")? as usize;
        let withdrawn = slice(body, 2, wlen, "withdrawn routes")?;
        let alen = read_u16(body, 2 + wlen, "path attribute length")? as usize;
        let attrs = slice(body, 4 + wlen, alen, "path attributes")?;
        let nlri = body.get(4 + wlen + alen..).unwrap_or(&[]);
        Ok(UpdateView {
            withdrawn,
            attrs,
            nlri,
        })
    }

    /// Every withdrawn IPv4 unicast prefix: the withdrawn routes field and MP_UNREACH_NLRI.
    pub fn for_each_withdrawn(&self, mut f: impl FnMut(Prefix4)) -> Result<(), WireError> {
        walk_prefixes(self.withdrawn, &mut f)?;
        self.for_each_attr(|code, value| {
            if code == attr_type::MP_UNREACH_NLRI && is_ipv4_unicast(value) {
                walk_prefixes(value.get(3..).unwrap_or(&[]), &mut f)?;
            }
            Ok(())
        })
    }

    /// Every announced IPv4 unicast prefix: the NLRI field and MP_REACH_NLRI.
    pub fn for_each_announced(&self, mut f: impl FnMut(Prefix4)) -> Result<(), WireError> {
        walk_prefixes(self.nlri, &mut f)?;
        self.for_each_attr(|code, value| {
            if code == attr_type::MP_REACH_NLRI && is_ipv4_unicast(value) {
                let nh_len = *value
                    .get(3)
                    .ok_or(WireError("MP_REACH_NLRI too short".into()))?;
                let start = 4 + nh_len as usize + 1;
                match value.get(start..) {
                    Some(nlri) => walk_prefixes(nlri, &mut f)?,
                    None => return bad("MP_REACH_NLRI next hop runs past the attribute"),
                }
            }
            Ok(())
        })
    }

    /// Whether the UPDATE announces anything (NLRI or MP_REACH_NLRI present).
    pub fn announces(&self) -> bool {
        !self.nlri.is_empty() || self.attr(attr_type::MP_REACH_NLRI).is_some()
    }

    /// The leftmost AS of AS_PATH (the neighbour that sent it), if there is one.
    pub fn first_as(&self, four_octet: bool) -> Option<u32> {
        let v = self.attr(attr_type::AS_PATH)?;
        // Segment type, segment length, then ASNs.
        if *v.get(1)? == 0 {
            return None;
        }
        if four_octet {
            Some(u32::from_be_bytes(v.get(2..6)?.try_into().ok()?))
        } else {
            Some(u16::from_be_bytes(v.get(2..4)?.try_into().ok()?) as u32)
        }
    }

    /// The value of the first attribute with `code`.
    fn attr(&self, code: u8) -> Option<&'a [u8]> {
        let mut found = None;
        let _ = self.for_each_attr(|c, v| {
            if c == code && found.is_none() {
                found = Some(v);
            }
            Ok(())
        });
        found
    }

    fn for_each_attr(
        &self,
        mut f: impl FnMut(u8, &'a [u8]) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        let a = self.attrs;
        let mut at = 0;
        while at < a.len() {
            let flags = *a.get(at).ok_or(WireError("attribute flags".into()))?;
            let code = *a.get(at + 1).ok_or(WireError("attribute type".into()))?;
            let (len, hdr) = if flags & attr_flags::EXTENDED_LENGTH != 0 {
                (read_u16(a, at + 2, "attribute length")? as usize, 4)
            } else {
                (
                    *a.get(at + 2).ok_or(WireError("attribute length".into()))? as usize,
                    3,
                )
            };
            f(code, slice(a, at + hdr, len, "attribute value")?)?;
            at += hdr + len;
        }
        Ok(())
    }
}

fn is_ipv4_unicast(mp_value: &[u8]) -> bool {
    mp_value.get(..3) == Some(&[0, 1, 1][..])
}

/// Walk IPv4 prefixes encoded as length octet + significant octets (RFC 4271 §4.3).
fn walk_prefixes(mut b: &[u8], f: &mut impl FnMut(Prefix4)) -> Result<(), WireError> {
    while let Some((&len, rest)) = b.split_first() {
        if len > 32 {
            return bad(format!("IPv4 prefix length {len}"));
        }
        let n = (len as usize).div_ceil(8);
        let Some(octets) = rest.get(..n) else {
            return bad(format!("prefix of length {len} cut short"));
        };
        let mut addr = [0u8; 4];
        addr[..n].copy_from_slice(octets);
        f((u32::from_be_bytes(addr), len));
        b = &rest[n..];
    }
    Ok(())
}

fn read_u16(b: &[u8], at: usize, what: &str) -> Result<u16, WireError> {
    match b.get(at..at + 2) {
        Some(v) => Ok(u16::from_be_bytes([v[0], v[1]])),
        None => bad(format!("{what} missing")),
    }
}

fn slice<'a>(b: &'a [u8], at: usize, len: usize, what: &str) -> Result<&'a [u8], WireError> {
    b.get(at..at + len)
        .ok_or_else(|| WireError(format!("{what} ({len} octets) run past the message")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rawpeer::msg::{Update, UpdateBuilder};
    use ipnet::Ipv4Net;

    fn collect(view: &UpdateView<'_>) -> (Vec<Prefix4>, Vec<Prefix4>) {
        let (mut a, mut w) = (Vec::new(), Vec::new());
        view.for_each_announced(|p| a.push(p)).unwrap();
        view.for_each_withdrawn(|p| w.push(p)).unwrap();
        (a, w)
    }

    #[test]
    fn announcements_pack_810_host_routes_per_4096_octets_and_end_with_eor() {
        let attrs = injector_attributes(65001, true, Ipv4Addr::new(10, 0, 0, 10));
        assert_eq!(attrs.len(), 20);
        assert_eq!(host_routes_per_update(attrs.len()), 810);
        let blast = encode_announcements(Ipv4Addr::new(10, 128, 0, 0), 2000, &attrs);
        assert_eq!(blast.messages, 3);
        let mut sizes = Vec::new();
        let mut seen = Vec::new();
        let used = split_messages(&blast.bytes, |t, body| {
            assert_eq!(t, msg_type::UPDATE);
            sizes.push(body.len() + HEADER_LEN);
            // Read back with the harness's independent parser.
            let u = Update::parse(body).unwrap();
            if !u.is_end_of_rib() {
                assert_eq!(u.origin(), Some(0));
                assert_eq!(u.as_path().unwrap(), vec![65001]);
                assert_eq!(u.next_hop(), Some(Ipv4Addr::new(10, 0, 0, 10)));
                seen.extend(u.nlri.iter().copied());
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(used, blast.bytes.len());
        assert_eq!(sizes, vec![4093, 4093, 4093 - 430 * 5, 23]);
        assert!(sizes.iter().all(|&s| s <= MAX_MESSAGE));
        assert_eq!(seen.len(), 2000);
        assert_eq!(seen[0], "10.128.0.0/32".parse::<Ipv4Net>().unwrap());
        assert_eq!(seen[1999], "10.128.7.207/32".parse::<Ipv4Net>().unwrap());
    }

    #[test]
    fn two_octet_sessions_get_a_two_octet_as_path() {
        let attrs = injector_attributes(65001, false, Ipv4Addr::new(10, 0, 0, 10));
        assert_eq!(&attrs[4..11], &[0x40, 2, 4, 2, 1, 0xFD, 0xE9]);
        assert_eq!(host_routes_per_update(attrs.len()), 811);
    }

    #[test]
    fn the_view_reads_nlri_withdrawals_and_the_first_as() {
        let m = UpdateBuilder::new()
            .withdraw("10.1.0.0/16".parse().unwrap())
            .origin(0)
            .as_path(&[64512, 65001])
            .next_hop(Ipv4Addr::new(10, 0, 0, 1))
            .nlri("10.128.0.5/32".parse().unwrap())
            .nlri("192.0.2.0/24".parse().unwrap())
            .build();
        let v = UpdateView::parse(&m[HEADER_LEN..]).unwrap();
        let (a, w) = collect(&v);
        assert_eq!(a, vec![(0x0A80_0005, 32), (0xC000_0200, 24)]);
        assert_eq!(w, vec![(0x0A01_0000, 16)]);
        assert_eq!(v.first_as(true), Some(64512));
        assert!(v.announces());
    }

    #[test]
    fn mp_reach_and_unreach_for_ipv4_unicast_count_too() {
        // MP_REACH: AFI 1, SAFI 1, next hop 4 octets, reserved, one /32.
        let reach = [0, 1, 1, 4, 10, 0, 0, 1, 0, 32, 10, 128, 0, 9];
        let unreach = [0, 1, 1, 32, 10, 128, 0, 8];
        let m = UpdateBuilder::new()
            .raw_attr(attr_flags::OPTIONAL, attr_type::MP_REACH_NLRI, &reach)
            .raw_attr(attr_flags::OPTIONAL, attr_type::MP_UNREACH_NLRI, &unreach)
            .build();
        let v = UpdateView::parse(&m[HEADER_LEN..]).unwrap();
        let (a, w) = collect(&v);
        assert_eq!(a, vec![(0x0A80_0009, 32)]);
        assert_eq!(w, vec![(0x0A80_0008, 32)]);
        // IPv6 (AFI 2) is not ours to count.
        let v6 = [0, 2, 1, 32, 0x20, 0x01, 0x0d, 0xb8];
        let m = UpdateBuilder::new()
            .raw_attr(attr_flags::OPTIONAL, attr_type::MP_UNREACH_NLRI, &v6)
            .build();
        let (a, w) = collect(&UpdateView::parse(&m[HEADER_LEN..]).unwrap());
        assert!(a.is_empty() && w.is_empty());
    }

    #[test]
    fn framing_keeps_a_partial_message_for_later() {
        let ka = crate::rawpeer::msg::keepalive();
        let mut stream = ka.clone();
        stream.extend_from_slice(&ka[..10]);
        let mut types = Vec::new();
        let used = split_messages(&stream, |t, _| {
            types.push(t);
            Ok(())
        })
        .unwrap();
        assert_eq!((used, types), (19, vec![msg_type::KEEPALIVE]));
        assert_eq!(first_message(&ka[..10]), Ok(None));
        assert_eq!(first_message(&ka), Ok(Some((msg_type::KEEPALIVE, &[][..]))));
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let mut broken = crate::rawpeer::msg::keepalive();
        broken[3] = 0;
        assert!(split_messages(&broken, |_, _| Ok(())).is_err());
        let mut long = crate::rawpeer::msg::keepalive();
        long[16..18].copy_from_slice(&5000u16.to_be_bytes());
        assert!(split_messages(&long, |_, _| Ok(())).is_err());
        // Every truncation and every single-octet corruption of a real UPDATE body.
        let m = UpdateBuilder::new()
            .withdraw("10.1.0.0/16".parse().unwrap())
            .origin(0)
            .as_path(&[64512])
            .next_hop(Ipv4Addr::new(10, 0, 0, 1))
            .nlri("10.128.0.5/32".parse().unwrap())
            .build();
        let body = &m[HEADER_LEN..];
        for cut in 0..body.len() {
            if let Ok(v) = UpdateView::parse(&body[..cut]) {
                let _ = collect_lenient(&v);
            }
        }
        for i in 0..body.len() {
            for x in [0u8, 0x21, 0x80, 0xFF] {
                let mut b = body.to_vec();
                b[i] = x;
                if let Ok(v) = UpdateView::parse(&b) {
                    let _ = collect_lenient(&v);
                    let _ = v.first_as(true);
                }
            }
        }
        assert!(UpdateView::parse(&[0, 9, 1]).is_err());
    }

    fn collect_lenient(v: &UpdateView<'_>) -> Result<(), WireError> {
        v.for_each_announced(|_| {})?;
        v.for_each_withdrawn(|_| {})
    }
}
