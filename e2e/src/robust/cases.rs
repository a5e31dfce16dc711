//! The zettabgp case table (`reference/zettabgp-cases.tsv`) and the byte helpers the bad-input
//! scenarios build on: hex text, and the path-attribute block of an UPDATE.
//!
//! Owns: reading the table's rows (name, whole message). Must not: decide what a row should
//! provoke (the scenario's expectation table does, after `bgp/tests/packet_cases.rs`).

use crate::error::{Error, Result};
use crate::rawpeer::msg;

/// Hex text (whitespace ignored) to bytes.
pub fn unhex(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let invalid = |reason: &str| Error::Invalid {
        what: "hex string",
        value: text.to_string(),
        reason: reason.to_string(),
    };
    if !digits.len().is_multiple_of(2) {
        return Err(invalid("odd number of digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| invalid("not a hex digit"))
        })
        .collect()
}

/// Bytes to lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One row of `zettabgp-cases.tsv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZettaCase {
    /// The case name (first column).
    pub name: String,
    /// The whole message.
    pub bytes: Vec<u8>,
}

/// The rows of `zettabgp-cases.tsv` (title row and `#` comments skipped).
pub fn zettabgp_cases(tsv: &str) -> Result<Vec<ZettaCase>> {
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .skip(1)
        .map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next().unwrap_or_default().to_string();
            let bytes = unhex(cols.next().unwrap_or_default())?;
            Ok(ZettaCase { name, bytes })
        })
        .collect()
}

/// The path attribute bytes of an UPDATE message (header included), clipped to the message.
pub fn update_attr_bytes(message: &[u8]) -> &[u8] {
    let body = message.get(msg::HEADER_LEN..).unwrap_or(&[]);
    let withdrawn_len = body
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) as usize);
    let attrs_at = 2 + withdrawn_len;
    let Some(len) = body.get(attrs_at..attrs_at + 2) else {
        return &[];
    };
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    let start = (attrs_at + 2).min(body.len());
    &body[start..(start + len).min(body.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::lab::raw_announce;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(unhex("ff 00\n10").unwrap(), vec![0xff, 0, 0x10]);
        assert_eq!(hex(&[0xff, 0, 0x10]), "ff0010");
        assert!(unhex("f").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn cases_table_reads_rows_after_the_title() {
        let tsv = "case\thex\twhat\n# comment\none\tff00\tx\ntwo\t\ty\n";
        let rows = zettabgp_cases(tsv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].bytes, vec![0xff, 0]);
        assert!(rows[1].bytes.is_empty());
    }

    #[test]
    fn attribute_bytes_are_found_and_clipped() {
        // Attribute block length 1 holding a lone flags octet (a zettabgp case).
        let m = unhex("ffffffffffffffffffffffffffffffff0018020000000140").unwrap();
        assert_eq!(update_attr_bytes(&m), &[0x40]);
        // The block claims more than the message holds.
        let m = unhex("ffffffffffffffffffffffffffffffff00180200000009c0").unwrap();
        assert_eq!(update_attr_bytes(&m), &[0xc0]);
        assert_eq!(update_attr_bytes(&[0xff; 10]), &[] as &[u8]);
        let u = raw_announce("10.1.0.0/16".parse().unwrap());
        let attrs = update_attr_bytes(&u);
        assert_eq!(attrs[..2], [0x40, 1]);
        assert_eq!(u.len(), msg::HEADER_LEN + 4 + attrs.len() + 3);
    }
}
