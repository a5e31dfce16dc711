//! AS_PATH and AS4_PATH on the wire (RFC 4271 §4.3, RFC 6793): parsing segments with 2- or
//! 4-octet ASNs, merging AS4_PATH into a 2-octet AS_PATH, and encoding with AS_TRANS.
//!
//! Owns: segment layout and the RFC 6793 §4.2.2/§4.2.3 rules. zettabgp is not used for AS paths:
//! it turns AS_SEQUENCE into AS_SET on encode, keeps AS_SETs as sorted sets and rejects
//! confederation segments on decode. Must not: judge paths (loops, length), that is the RIB's.

use crate::types::{AS_TRANS, AsPath, AsSegment, Asn};

const SEG_SET: u8 = 1;
const SEG_SEQUENCE: u8 = 2;
const SEG_CONFED_SEQUENCE: u8 = 3;
const SEG_CONFED_SET: u8 = 4;
/// The most ASNs one segment can hold (its count is one octet).
const MAX_SEGMENT_ASNS: usize = 255;

/// Parse an AS_PATH / AS4_PATH value whose ASNs are `asn_size` (2 or 4) bytes wide.
///
/// Malformed per RFC 7606 §7.2: an unknown segment type, a zero segment count, a segment that
/// overruns the value, or a partial segment header at the end.
pub(crate) fn parse(value: &[u8], asn_size: usize) -> Result<AsPath, &'static str> {
    let mut segments = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let [seg_type, count, tail @ ..] = rest else {
            return Err("a partial segment header at the end");
        };
        let count = *count as usize;
        if count == 0 {
            return Err("a segment with zero ASNs");
        }
        let Some(asn_bytes) = tail.get(..count * asn_size) else {
            return Err("a segment overruns the attribute");
        };
        let asns: Vec<Asn> = asn_bytes
            .chunks_exact(asn_size)
            .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
            .collect();
        segments.push(match *seg_type {
            SEG_SET => AsSegment::Set(asns),
            SEG_SEQUENCE => AsSegment::Sequence(asns),
            SEG_CONFED_SEQUENCE => AsSegment::ConfedSequence(asns),
            SEG_CONFED_SET => AsSegment::ConfedSet(asns),
            _ => return Err("an unknown segment type"),
        });
        rest = &tail[count * asn_size..];
    }
    Ok(AsPath { segments })
}

/// How many ASes RFC 6793 §4.2.3 counts in a path: an AS_SET counts one, confederation segments
/// none (the RFC 4271 §9.1.2.2 path length).
fn counted_len(path: &AsPath) -> usize {
    path.len_for_decision()
}

/// Rebuild the real path from a 2-octet AS_PATH and the AS4_PATH (RFC 6793 §4.2.3).
///
/// Returns `None` when AS4_PATH must be ignored because it holds more ASes than AS_PATH.
pub(crate) fn merge_as4_path(as_path: &AsPath, as4_path: &AsPath) -> Option<AsPath> {
    let as_len = counted_len(as_path);
    let as4_len = counted_len(as4_path);
    if as_len < as4_len {
        return None;
    }
    // Keep the leading (as_len - as4_len) ASes of AS_PATH, then append AS4_PATH.
    let mut keep = as_len - as4_len;
    let mut segments: Vec<AsSegment> = Vec::new();
    for seg in &as_path.segments {
        match seg {
            AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => segments.push(seg.clone()),
            _ if keep == 0 => break,
            AsSegment::Set(_) => {
                segments.push(seg.clone());
                keep -= 1;
            }
            AsSegment::Sequence(v) => {
                let n = keep.min(v.len());
                segments.push(AsSegment::Sequence(v[..n].to_vec()));
                keep -= n;
            }
        }
    }
    // Join the kept AS_PATH head and the AS4_PATH where both are sequences; leave the AS4_PATH's
    // own segmentation alone.
    let mut tail = as4_path.segments.iter().peekable();
    if let (Some(AsSegment::Sequence(head)), Some(AsSegment::Sequence(first))) =
        (segments.last_mut(), tail.peek())
        && head.len() + first.len() <= MAX_SEGMENT_ASNS
    {
        head.extend_from_slice(first);
        tail.next();
    }
    segments.extend(tail.cloned());
    Some(AsPath { segments })
}

/// Whether the path needs an AS4_PATH next to a 2-octet AS_PATH (some ASN exceeds 65535).
pub(crate) fn needs_as4_path(path: &AsPath) -> bool {
    !path.fits_two_octets()
}

/// The AS4_PATH to send with a 2-octet AS_PATH: the path without confederation segments
/// (RFC 6793 §3).
pub(crate) fn as4_path_of(path: &AsPath) -> AsPath {
    AsPath {
        segments: path
            .segments
            .iter()
            .filter(|s| matches!(s, AsSegment::Sequence(_) | AsSegment::Set(_)))
            .cloned()
            .collect(),
    }
}

/// Append the AS_PATH value: segment type 2 for sequences, at most 255 ASNs a segment, ASNs
/// above 65535 written as AS_TRANS when `asn_size` is 2 (RFC 6793 §4.2.2).
pub(crate) fn encode(path: &AsPath, asn_size: usize, out: &mut Vec<u8>) {
    for seg in &path.segments {
        let seg_type = match seg {
            AsSegment::Set(_) => SEG_SET,
            AsSegment::Sequence(_) => SEG_SEQUENCE,
            AsSegment::ConfedSequence(_) => SEG_CONFED_SEQUENCE,
            AsSegment::ConfedSet(_) => SEG_CONFED_SET,
        };
        for chunk in seg.asns().chunks(MAX_SEGMENT_ASNS) {
            out.push(seg_type);
            out.push(chunk.len() as u8);
            for &asn in chunk {
                if asn_size == 4 {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let two = u16::try_from(asn).unwrap_or(AS_TRANS as u16);
                    out.extend_from_slice(&two.to_be_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(v: &[Asn]) -> AsSegment {
        AsSegment::Sequence(v.to_vec())
    }

    #[test]
    fn parses_all_segment_types_in_order() {
        let v = [2, 2, 0, 1, 0, 2, 1, 2, 0, 9, 0, 3, 3, 1, 0, 7, 4, 1, 0, 8];
        let p = parse(&v, 2).unwrap();
        assert_eq!(
            p.segments,
            vec![
                seq(&[1, 2]),
                AsSegment::Set(vec![9, 3]),
                AsSegment::ConfedSequence(vec![7]),
                AsSegment::ConfedSet(vec![8])
            ]
        );
    }

    #[test]
    fn rejects_malformed_paths_rfc7606_7_2() {
        assert!(parse(&[2, 0], 4).is_err(), "zero count");
        assert!(parse(&[2, 1, 0, 0], 4).is_err(), "overrun");
        assert!(
            parse(&[2, 1, 0, 0, 0xfd, 0xe9, 0], 4).is_err(),
            "trailing byte"
        );
        assert!(parse(&[5, 1, 0, 1], 2).is_err(), "unknown type");
        assert_eq!(parse(&[], 4).unwrap(), AsPath::empty());
    }

    #[test]
    fn as4_merge_keeps_leading_2_octet_ases_rfc6793_4_2_3() {
        // Path 65001 4200000001 4200000002 seen through a 2-octet speaker that prepended 65001.
        let as_path = AsPath::sequence(vec![65001, 23456, 23456]);
        let as4 = AsPath::sequence(vec![4_200_000_001, 4_200_000_002]);
        let merged = merge_as4_path(&as_path, &as4).unwrap();
        assert_eq!(
            merged,
            AsPath::sequence(vec![65001, 4_200_000_001, 4_200_000_002])
        );
        // AS4_PATH longer than AS_PATH is ignored.
        assert_eq!(merge_as4_path(&AsPath::sequence(vec![23456]), &as4), None);
        // Confederation segments of AS_PATH stay in front.
        let confed = AsPath {
            segments: vec![AsSegment::ConfedSequence(vec![65100]), seq(&[23456])],
        };
        let merged = merge_as4_path(&confed, &AsPath::sequence(vec![4_200_000_001])).unwrap();
        assert_eq!(merged.to_string(), "(65100) 4200000001");
    }

    #[test]
    fn encodes_sequences_as_type_2_with_as_trans_and_255_asn_segments() {
        let mut out = Vec::new();
        encode(&AsPath::sequence(vec![65001, 4_200_000_001]), 2, &mut out);
        assert_eq!(out, vec![2, 2, 0xfd, 0xe9, 0x5b, 0xa0]);
        let long = AsPath::sequence((1..=300).collect());
        let mut out = Vec::new();
        encode(&long, 4, &mut out);
        assert_eq!(out.len(), 2 * 2 + 300 * 4);
        assert_eq!((out[0], out[1]), (2, 255));
        assert_eq!((out[2 + 255 * 4], out[3 + 255 * 4]), (2, 45));
        let back = parse(&out, 4).unwrap();
        assert_eq!(back.len_for_decision(), 300);
    }
}
