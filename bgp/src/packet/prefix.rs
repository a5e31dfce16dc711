//! Prefixes on the wire (RFC 4271 §4.3, RFC 4760 §5): `<length, prefix bytes>` pairs.
//!
//! Owns: checking that a run of encoded prefixes tiles its field exactly with valid lengths, and
//! writing prefixes. Must not: allocate per prefix. Decoding into `IpNet` values happens in the
//! zettabgp bridge after these checks have passed.

use ipnet::IpNet;

/// Count the prefixes in `field`, each at most `max_bits` long (32 or 128), or say where the
/// field stops being valid: `(offset, reason)`.
pub(crate) fn count(field: &[u8], max_bits: u8) -> Result<usize, (usize, &'static str)> {
    let mut pos = 0;
    let mut n = 0;
    while let Some(&bits) = field.get(pos) {
        if bits > max_bits {
            return Err((pos, "prefix length exceeds the address size"));
        }
        let bytes = usize::from(bits).div_ceil(8);
        if field.len() - pos - 1 < bytes {
            return Err((pos, "prefix bytes run past the end of the field"));
        }
        pos += 1 + bytes;
        n += 1;
    }
    Ok(n)
}

/// Bytes `prefix` takes on the wire.
pub(crate) fn wire_len(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}

/// Append `prefix` (host bits cleared).
pub(crate) fn write(prefix: &IpNet, out: &mut Vec<u8>) {
    let bits = prefix.prefix_len();
    let bytes = usize::from(bits).div_ceil(8);
    out.push(bits);
    match prefix.trunc() {
        IpNet::V4(p) => out.extend_from_slice(&p.addr().octets()[..bytes]),
        IpNet::V6(p) => out.extend_from_slice(&p.addr().octets()[..bytes]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rejects_per_rfc7606_5_3() {
        assert_eq!(count(&[], 32), Ok(0));
        assert_eq!(count(&[0, 8, 10, 32, 1, 2, 3, 4], 32), Ok(3));
        assert_eq!(count(&[33, 1, 2, 3, 4, 5], 32).unwrap_err().0, 0);
        assert_eq!(count(&[24, 10], 32).unwrap_err().0, 0);
        assert_eq!(count(&[8, 10, 255], 32).unwrap_err().0, 2);
        assert_eq!(count(&[128; 17], 128), Ok(1));
    }

    #[test]
    fn writes_minimal_bytes_with_host_bits_cleared() {
        let mut out = Vec::new();
        write(&"10.1.2.3/23".parse().unwrap(), &mut out);
        write(&"2001:db8::/33".parse().unwrap(), &mut out);
        write(&"0.0.0.0/0".parse().unwrap(), &mut out);
        assert_eq!(out, vec![23, 10, 1, 2, 33, 0x20, 0x01, 0x0d, 0xb8, 0, 0]);
        assert_eq!(wire_len(&"2001:db8::/33".parse().unwrap()), 6);
    }
}
