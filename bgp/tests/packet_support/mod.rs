//! Helpers shared by the `packet_*` integration tests: fixture files, hex, readable byte diffs,
//! and a message builder for hand-made UPDATEs.
#![allow(dead_code)]

use bgp::packet::{CodecParams, Message, Notification, decode, frame_len};
use bgp::types::Family;

/// One message from a `.hex` fixture: its name and bytes.
pub struct Fixture {
    pub name: String,
    pub bytes: Vec<u8>,
}

pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parse a fixture file: `# comment` lines, then `name hex` lines.
pub fn fixtures(text: &str) -> Vec<Fixture> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, h) = l.split_once(' ').expect("name and hex");
            Fixture {
                name: name.to_string(),
                bytes: unhex(h),
            }
        })
        .collect()
}

/// The fixture called `name`.
pub fn fixture<'a>(all: &'a [Fixture], name: &str) -> &'a [u8] {
    &all.iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .bytes
}

/// Assert two byte strings are equal; on failure show both as 16-byte hex rows with the rows
/// that differ marked, and the first differing offset.
pub fn assert_bytes_eq(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let mut report = format!(
        "{what}: bytes differ at offset {first} (got {} bytes, want {} bytes)\n  offset  got                                              want\n",
        got.len(),
        want.len()
    );
    let rows = got.len().max(want.len()).div_ceil(16);
    for r in 0..rows {
        let g = got.get(r * 16..(r * 16 + 16).min(got.len())).unwrap_or(&[]);
        let w = want
            .get(r * 16..(r * 16 + 16).min(want.len()))
            .unwrap_or(&[]);
        let fmt = |b: &[u8]| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mark = if g == w { ' ' } else { '>' };
        report += &format!("{mark} {:06x}  {:<48} {}\n", r * 16, fmt(g), fmt(w));
    }
    panic!("{report}");
}

/// Params for a session with both families.
pub fn params(four_octet_as: bool) -> CodecParams {
    CodecParams {
        four_octet_as,
        max_message_len: 4096,
        local_asn: 65000,
        families: Family::ALL.to_vec(),
    }
}

/// Frame and decode one whole message, checking `frame_len` agrees on its length.
pub fn frame_and_decode(p: &CodecParams, bytes: &[u8]) -> Result<Message, Notification> {
    match frame_len(bytes, p.max_message_len)? {
        Some(n) if n == bytes.len() => decode(p, bytes),
        other => panic!(
            "frame_len said {other:?} for a {}-byte message",
            bytes.len()
        ),
    }
}

/// A whole message of `msg_type` around `body`.
pub fn message(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

/// One path attribute, with the Extended Length bit when `flags` asks for it.
pub fn attr(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, type_code];
    if flags & 0x10 != 0 {
        a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        a.push(value.len() as u8);
    }
    a.extend_from_slice(value);
    a
}

/// A whole UPDATE from its three parts.
pub fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    message(2, &body)
}

/// ORIGIN IGP, AS_PATH [65001] (4-octet), NEXT_HOP 10.0.0.1: a valid IPv4 attribute set.
pub fn base_attrs() -> Vec<u8> {
    [
        attr(0x40, 1, &[0]),
        attr(0x40, 2, &[2, 1, 0, 0, 0xfd, 0xe9]),
        attr(0x40, 3, &[10, 0, 0, 1]),
    ]
    .concat()
}

/// 10.1.0.0/16 as NLRI.
pub const NLRI_10_1: &[u8] = &[16, 10, 1];
