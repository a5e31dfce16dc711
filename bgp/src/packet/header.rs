//! The 19-byte message header (RFC 4271 §4.1): cutting frames out of a socket buffer, checking
//! marker, length and type before anything else looks at a message, and writing headers.
//!
//! Owns: [`frame_len`] and the small helpers every encoder uses to open and close a message.
//! Must not: look inside a message body beyond its type's fixed minimum size. Data enters as the
//! bytes read from a socket; it leaves as a frame length or a typed [`HeaderError`].

use super::error::HeaderError;
use super::{HEADER_LEN, MessageType, Notification};

/// The marker every message starts with (RFC 4271 §4.1: all ones).
pub(crate) const MARKER: [u8; 16] = [0xff; 16];

/// Smallest OPEN: header + version, my AS, hold time, BGP identifier, opt param length.
pub(crate) const MIN_OPEN_LEN: usize = HEADER_LEN + 10;
/// Smallest UPDATE: header + withdrawn routes length + total path attribute length.
pub(crate) const MIN_UPDATE_LEN: usize = HEADER_LEN + 4;
/// Smallest NOTIFICATION: header + error code + subcode.
pub(crate) const MIN_NOTIFICATION_LEN: usize = HEADER_LEN + 2;
/// The only valid ROUTE-REFRESH length: header + AFI, subtype, SAFI.
pub(crate) const ROUTE_REFRESH_LEN: usize = HEADER_LEN + 4;

impl MessageType {
    /// The message type for a wire type code, if it is one Ginger speaks.
    pub fn from_u8(code: u8) -> Option<MessageType> {
        match code {
            1 => Some(MessageType::Open),
            2 => Some(MessageType::Update),
            3 => Some(MessageType::Notification),
            4 => Some(MessageType::Keepalive),
            5 => Some(MessageType::RouteRefresh),
            _ => None,
        }
    }

    /// Whether `len` (header included) is allowed for this type (RFC 4271 §6.1, RFC 2918 §3).
    fn length_fits(self, len: usize) -> bool {
        match self {
            MessageType::Open => len >= MIN_OPEN_LEN,
            MessageType::Update => len >= MIN_UPDATE_LEN,
            MessageType::Notification => len >= MIN_NOTIFICATION_LEN,
            MessageType::Keepalive => len == HEADER_LEN,
            MessageType::RouteRefresh => len == ROUTE_REFRESH_LEN,
        }
    }
}

/// Cut one message out of `buf`.
///
/// `Ok(None)`: fewer than 19 bytes, or the header is valid and the body has not fully arrived.
/// `Ok(Some(n))`: `buf[..n]` is one whole message. `Err`: a Message Header Error (RFC 4271 §6.1)
/// to send before closing; the header is judged as soon as its 19 bytes are there.
pub fn frame_len(buf: &[u8], max_message_len: usize) -> Result<Option<usize>, Notification> {
    match check_header(buf, max_message_len) {
        Ok(Some((len, _))) if buf.len() >= len => Ok(Some(len)),
        Ok(_) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Validate the header at the start of `buf`: `Ok(None)` until 19 bytes are there, then the
/// message length and type.
pub(crate) fn check_header(
    buf: &[u8],
    max_message_len: usize,
) -> Result<Option<(usize, MessageType)>, HeaderError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if header[..16] != MARKER {
        return Err(HeaderError::NotSynchronized);
    }
    let len = u16::from_be_bytes([header[16], header[17]]);
    let type_code = header[18];
    if (len as usize) < HEADER_LEN || len as usize > max_message_len {
        return Err(HeaderError::BadLength {
            len,
            type_code,
            max: max_message_len,
        });
    }
    let Some(msg_type) = MessageType::from_u8(type_code) else {
        return Err(HeaderError::BadType { type_code });
    };
    if !msg_type.length_fits(len as usize) {
        return Err(HeaderError::BadLength {
            len,
            type_code,
            max: max_message_len,
        });
    }
    Ok(Some((len as usize, msg_type)))
}

/// Append a header with a zero length to `out`; returns where the message starts, for
/// [`finish_message`].
pub(crate) fn begin_message(out: &mut Vec<u8>, msg_type: MessageType) -> usize {
    let start = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, msg_type as u8]);
    start
}

/// Write the length of the message that starts at `start` and runs to the end of `out`.
///
/// Encoders size their messages before writing, so the length always fits; a message that
/// somehow does not is cut back out of `out` rather than sent with a wrong length.
pub(crate) fn finish_message(out: &mut Vec<u8>, start: usize) -> bool {
    let len = out.len() - start;
    match u16::try_from(len) {
        Ok(len16) if len >= HEADER_LEN => {
            out[start + 16..start + 18].copy_from_slice(&len16.to_be_bytes());
            true
        }
        _ => {
            out.truncate(start);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::notification::{code, header};

    fn hdr(len: u16, t: u8) -> Vec<u8> {
        let mut v = MARKER.to_vec();
        v.extend_from_slice(&len.to_be_bytes());
        v.push(t);
        v
    }

    #[test]
    fn waits_for_the_whole_header_then_the_body() {
        let mut m = hdr(23, 2);
        assert_eq!(frame_len(&m[..18], 4096), Ok(None));
        assert_eq!(frame_len(&m, 4096), Ok(None));
        m.extend_from_slice(&[0, 0, 0, 0, 0xff]);
        assert_eq!(frame_len(&m, 4096), Ok(Some(23)));
    }

    #[test]
    fn header_errors_carry_rfc4271_6_1_subcodes_and_data() {
        let mut bad_marker = hdr(19, 4);
        bad_marker[3] = 0;
        let n = frame_len(&bad_marker, 4096).unwrap_err();
        assert_eq!(
            (n.code, n.subcode),
            (code::MESSAGE_HEADER, header::CONNECTION_NOT_SYNCHRONIZED)
        );
        let n = frame_len(&hdr(4097, 2), 4096).unwrap_err();
        assert_eq!(
            (n.subcode, n.data.clone()),
            (header::BAD_MESSAGE_LENGTH, vec![0x10, 0x01])
        );
        assert_eq!(frame_len(&hdr(4097, 2), 65535), Ok(None));
        let n = frame_len(&hdr(19, 9), 4096).unwrap_err();
        assert_eq!((n.subcode, n.data), (header::BAD_MESSAGE_TYPE, vec![9]));
        for (len, t) in [(28u16, 1u8), (22, 2), (20, 3), (20, 4), (22, 5), (24, 5)] {
            let n = frame_len(&hdr(len, t), 4096).unwrap_err();
            assert_eq!(n.subcode, header::BAD_MESSAGE_LENGTH, "type {t} len {len}");
            assert_eq!(n.data, len.to_be_bytes().to_vec());
        }
    }

    #[test]
    fn finish_message_writes_the_length() {
        let mut out = vec![7u8];
        let start = begin_message(&mut out, MessageType::Keepalive);
        assert!(finish_message(&mut out, start));
        assert_eq!(&out[1..], &hdr(19, 4)[..]);
    }
}
