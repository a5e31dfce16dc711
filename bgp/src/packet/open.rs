//! OPEN messages (RFC 4271 §4.2) and their capabilities (RFC 5492), decoded and encoded by Ginger
//! itself: zettabgp fails a whole OPEN on FRR's FQDN capability and drops unknown capabilities.
//!
//! Owns: optional parameters (RFC 9072 extended length included), the layout of every
//! [`Capability`], and the OPEN checks that need no configuration (version, AS 0, hold time 1–2,
//! BGP identifier 0). Must not: negotiate or compare against configuration (that is `negotiate`).

use std::net::Ipv4Addr;

use super::error::OpenError;
use super::header::{begin_message, finish_message};
use super::{
    AddPathEntry, AfiSafi, BGP_VERSION, Capability, GracefulRestartCap, MAX_MESSAGE_LEN,
    MessageType, OpenMsg,
};

/// Optional parameter type: Capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// Non-Ext OP Type that announces the RFC 9072 extended layout.
const PARAM_EXTENDED: u8 = 255;

/// Capability codes (IANA "Capability Codes").
mod cap {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    pub const LONG_LIVED_GR: u8 = 71;
    pub const FQDN: u8 = 73;
}

/// GR restart flags (RFC 4724 §3, RFC 8538 §2).
const GR_RESTARTING: u8 = 0x80;
const GR_NOTIFICATION: u8 = 0x40;
/// GR per-family "forwarding state preserved" flag.
const GR_FORWARDING: u8 = 0x80;

fn malformed(reason: impl Into<String>) -> OpenError {
    OpenError::MalformedParameters {
        reason: reason.into(),
    }
}

/// Decode an OPEN body (without the header).
pub(crate) fn decode_open(body: &[u8]) -> Result<OpenMsg, OpenError> {
    let [
        version,
        as_hi,
        as_lo,
        ht_hi,
        ht_lo,
        a,
        b,
        c,
        d,
        opt_len,
        rest @ ..,
    ] = body
    else {
        return Err(malformed("OPEN shorter than its fixed fields"));
    };
    if *version != BGP_VERSION {
        return Err(OpenError::UnsupportedVersion { version: *version });
    }
    let my_as = u16::from_be_bytes([*as_hi, *as_lo]);
    let hold_time = u16::from_be_bytes([*ht_hi, *ht_lo]);
    let bgp_id = Ipv4Addr::new(*a, *b, *c, *d);

    let mut capabilities = Vec::new();
    if *opt_len == 255 && rest.first() == Some(&PARAM_EXTENDED) {
        // RFC 9072 §2: Non-Ext OP Type 255, then a two-octet length, then 2-octet param lengths.
        let [_, len_hi, len_lo, params @ ..] = rest else {
            return Err(malformed("extended optional parameters length missing"));
        };
        let len = u16::from_be_bytes([*len_hi, *len_lo]) as usize;
        if params.len() != len {
            return Err(malformed(format!(
                "extended optional parameters length {len} but {} bytes follow",
                params.len()
            )));
        }
        walk_params(params, 2, &mut capabilities)?;
    } else {
        if rest.len() != *opt_len as usize {
            return Err(malformed(format!(
                "optional parameters length {opt_len} but {} bytes follow",
                rest.len()
            )));
        }
        walk_params(rest, 1, &mut capabilities)?;
    }

    let open = OpenMsg {
        version: *version,
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    };
    if my_as == 0 || open.asn() == 0 {
        return Err(OpenError::BadPeerAs);
    }
    if bgp_id.is_unspecified() {
        return Err(OpenError::BadBgpIdentifier { id: bgp_id });
    }
    if hold_time == 1 || hold_time == 2 {
        return Err(OpenError::UnacceptableHoldTime { hold_time });
    }
    Ok(open)
}

/// Walk optional parameters whose length fields are `len_size` (1, or 2 under RFC 9072) bytes.
fn walk_params(
    mut params: &[u8],
    len_size: usize,
    capabilities: &mut Vec<Capability>,
) -> Result<(), OpenError> {
    while let Some((&param_type, tail)) = params.split_first() {
        let Some(len_bytes) = tail.get(..len_size) else {
            return Err(malformed("optional parameter header truncated"));
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        let Some(value) = tail.get(len_size..len_size + len) else {
            return Err(malformed(format!(
                "optional parameter type {param_type} length {len} runs past the end"
            )));
        };
        if param_type != PARAM_CAPABILITIES {
            return Err(OpenError::UnsupportedOptionalParameter { param_type });
        }
        walk_capabilities(value, capabilities)?;
        params = &tail[len_size + len..];
    }
    Ok(())
}

/// Walk the `<code, length, value>` capability triples of one Capabilities parameter.
fn walk_capabilities(mut caps: &[u8], out: &mut Vec<Capability>) -> Result<(), OpenError> {
    while let [code, len, tail @ ..] = caps {
        let len = *len as usize;
        let Some(value) = tail.get(..len) else {
            return Err(malformed(format!(
                "capability {code} length {len} runs past its parameter"
            )));
        };
        out.push(decode_capability(*code, value)?);
        caps = &tail[len..];
    }
    if !caps.is_empty() {
        return Err(malformed("capability header truncated"));
    }
    Ok(())
}

fn u16_at(v: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([v[at], v[at + 1]])
}

/// Decode one capability value; recognised capabilities must have their exact layout.
fn decode_capability(code: u8, v: &[u8]) -> Result<Capability, OpenError> {
    let bad = |reason: &str| OpenError::MalformedCapability {
        code,
        reason: format!("{reason} (length {})", v.len()),
    };
    let afi_safi = |c: &[u8]| AfiSafi {
        afi: u16_at(c, 0),
        safi: c[2],
    };
    Ok(match code {
        cap::MULTIPROTOCOL if v.len() == 4 => Capability::MultiProtocol(AfiSafi {
            afi: u16_at(v, 0),
            safi: v[3],
        }),
        cap::MULTIPROTOCOL => return Err(bad("multiprotocol needs 4 bytes")),
        cap::ROUTE_REFRESH | cap::EXTENDED_MESSAGE | cap::ENHANCED_ROUTE_REFRESH
            if !v.is_empty() =>
        {
            return Err(bad("this capability carries no value"));
        }
        cap::ROUTE_REFRESH => Capability::RouteRefresh,
        cap::EXTENDED_MESSAGE => Capability::ExtendedMessage,
        cap::ENHANCED_ROUTE_REFRESH => Capability::EnhancedRouteRefresh,
        cap::EXTENDED_NEXT_HOP if v.len().is_multiple_of(6) => Capability::ExtendedNextHop(
            v.chunks_exact(6)
                .map(|c| (u16_at(c, 0), u16_at(c, 2), u16_at(c, 4)))
                .collect(),
        ),
        cap::EXTENDED_NEXT_HOP => return Err(bad("extended next hop needs 6-byte entries")),
        cap::GRACEFUL_RESTART if v.len() >= 2 && (v.len() - 2).is_multiple_of(4) => {
            Capability::GracefulRestart(GracefulRestartCap {
                restarting: v[0] & GR_RESTARTING != 0,
                notification: v[0] & GR_NOTIFICATION != 0,
                restart_time: u16_at(v, 0) & 0x0fff,
                families: v[2..]
                    .chunks_exact(4)
                    .map(|c| (afi_safi(c), c[3] & GR_FORWARDING != 0))
                    .collect(),
            })
        }
        cap::GRACEFUL_RESTART => return Err(bad("graceful restart needs 2 + 4n bytes")),
        cap::FOUR_OCTET_AS if v.len() == 4 => {
            Capability::FourOctetAs(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
        }
        cap::FOUR_OCTET_AS => return Err(bad("4-octet AS needs 4 bytes")),
        cap::ADD_PATH if !v.is_empty() && v.len().is_multiple_of(4) => Capability::AddPath(
            v.chunks_exact(4)
                .map(|c| AddPathEntry {
                    afi_safi: afi_safi(c),
                    send_receive: c[3],
                })
                .collect(),
        ),
        cap::ADD_PATH => return Err(bad("ADD-PATH needs 4-byte entries")),
        cap::LONG_LIVED_GR => Capability::LongLivedGracefulRestart(v.to_vec()),
        cap::FQDN => decode_fqdn(v).ok_or_else(|| bad("FQDN names run past the capability"))?,
        _ => Capability::Unknown {
            code,
            value: v.to_vec(),
        },
    })
}

/// FQDN (draft-walton-bgp-hostname-capability): hostname length and bytes, then domain length and
/// bytes. Older senders stop after the hostname; the domain is then empty.
fn decode_fqdn(v: &[u8]) -> Option<Capability> {
    let (&host_len, rest) = v.split_first()?;
    let hostname = rest.get(..host_len as usize)?;
    let rest = &rest[host_len as usize..];
    let domain = match rest.split_first() {
        None => &[][..],
        Some((&dom_len, tail)) => tail.get(..dom_len as usize)?,
    };
    Some(Capability::Fqdn {
        hostname: String::from_utf8_lossy(hostname).into_owned(),
        domain: String::from_utf8_lossy(domain).into_owned(),
    })
}

/// Append one capability as `<code, length, value>`. Lists are cut to what a one-octet length
/// can describe, names to 255 bytes.
fn encode_capability(c: &Capability, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    let code = match c {
        Capability::MultiProtocol(af) => {
            out.extend_from_slice(&af.afi.to_be_bytes());
            out.extend_from_slice(&[0, af.safi]);
            cap::MULTIPROTOCOL
        }
        Capability::RouteRefresh => cap::ROUTE_REFRESH,
        Capability::ExtendedNextHop(v) => {
            for (afi, safi, nh_afi) in v.iter().take(255 / 6) {
                out.extend_from_slice(&afi.to_be_bytes());
                out.extend_from_slice(&safi.to_be_bytes());
                out.extend_from_slice(&nh_afi.to_be_bytes());
            }
            cap::EXTENDED_NEXT_HOP
        }
        Capability::ExtendedMessage => cap::EXTENDED_MESSAGE,
        Capability::GracefulRestart(gr) => {
            let mut flags = 0u8;
            if gr.restarting {
                flags |= GR_RESTARTING;
            }
            if gr.notification {
                flags |= GR_NOTIFICATION;
            }
            let word = (u16::from(flags) << 8) | (gr.restart_time & 0x0fff);
            out.extend_from_slice(&word.to_be_bytes());
            for (af, forwarding) in gr.families.iter().take(253 / 4) {
                out.extend_from_slice(&af.afi.to_be_bytes());
                out.push(af.safi);
                out.push(if *forwarding { GR_FORWARDING } else { 0 });
            }
            cap::GRACEFUL_RESTART
        }
        Capability::FourOctetAs(asn) => {
            out.extend_from_slice(&asn.to_be_bytes());
            cap::FOUR_OCTET_AS
        }
        Capability::AddPath(v) => {
            for e in v.iter().take(255 / 4) {
                out.extend_from_slice(&e.afi_safi.afi.to_be_bytes());
                out.extend_from_slice(&[e.afi_safi.safi, e.send_receive]);
            }
            cap::ADD_PATH
        }
        Capability::EnhancedRouteRefresh => cap::ENHANCED_ROUTE_REFRESH,
        Capability::LongLivedGracefulRestart(raw) => {
            out.extend_from_slice(&raw[..raw.len().min(255)]);
            cap::LONG_LIVED_GR
        }
        Capability::Fqdn { hostname, domain } => {
            // Both names share 255 bytes with their two length octets.
            let host = &hostname.as_bytes()[..hostname.len().min(126)];
            let dom = &domain.as_bytes()[..domain.len().min(127)];
            out.push(host.len() as u8);
            out.extend_from_slice(host);
            out.push(dom.len() as u8);
            out.extend_from_slice(dom);
            cap::FQDN
        }
        Capability::Unknown { code, value } => {
            out.extend_from_slice(&value[..value.len().min(255)]);
            *code
        }
    };
    out[start] = code;
    out[start + 1] = (out.len() - start - 2) as u8;
}

/// Append a whole OPEN. All capabilities go into one Capabilities parameter; past 255 bytes the
/// RFC 9072 extended layout is used. Capabilities that would push the OPEN past 4096 bytes
/// (RFC 8654 §3: OPEN never exceeds it) are left out.
pub fn encode_open(open: &OpenMsg, out: &mut Vec<u8>) {
    // Header, fixed fields, and the RFC 9072 parameter headers (1+1+2 and 1+2).
    const BUDGET: usize = MAX_MESSAGE_LEN - super::HEADER_LEN - 10 - 4 - 3;
    let mut caps = Vec::new();
    for c in &open.capabilities {
        let before = caps.len();
        encode_capability(c, &mut caps);
        if caps.len() > BUDGET {
            caps.truncate(before);
        }
    }
    let start = begin_message(out, MessageType::Open);
    out.push(open.version);
    out.extend_from_slice(&open.my_as.to_be_bytes());
    out.extend_from_slice(&open.hold_time.to_be_bytes());
    out.extend_from_slice(&open.bgp_id.octets());
    if caps.is_empty() {
        out.push(0);
    } else if caps.len() + 2 <= 255 {
        out.push((caps.len() + 2) as u8);
        out.extend_from_slice(&[PARAM_CAPABILITIES, caps.len() as u8]);
        out.extend_from_slice(&caps);
    } else {
        out.extend_from_slice(&[255, PARAM_EXTENDED]);
        out.extend_from_slice(&((caps.len() + 3) as u16).to_be_bytes());
        out.push(PARAM_CAPABILITIES);
        out.extend_from_slice(&(caps.len() as u16).to_be_bytes());
        out.extend_from_slice(&caps);
    }
    finish_message(out, start);
}
