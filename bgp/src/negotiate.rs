//! OPEN handling: the OPEN we send, and checking the peer's OPEN against ours (RFC 4271 §6.2,
//! RFC 5492, RFC 6793, RFC 6286, RFC 4724, RFC 8654, RFC 7313).
//!
//! Owns: [`LocalOpen`] (our OPEN, built from configuration), [`negotiate`] (accept or refuse the
//! peer's OPEN) and its result [`Negotiated`], including the [`CodecParams`] the session decodes
//! and encodes with once it is up.
//! Must not: do I/O, keep session state (that is `fsm`) or touch wire bytes beyond the data field
//! of an Unsupported Capability NOTIFICATION. Data enters as an [`OpenMsg`] decoded by `packet`
//! and leaves as a `Negotiated` value or the [`Notification`] to send.

use std::net::Ipv4Addr;

use crate::packet::notification::{code, open};
use crate::packet::{
    AfiSafi, BGP_VERSION, Capability, CodecParams, GracefulRestartCap, MAX_EXTENDED_MESSAGE_LEN,
    MAX_MESSAGE_LEN, Notification, OpenMsg,
};
use crate::types::{AS_TRANS, Asn, Family};

/// Capability code of Multiprotocol Extensions (RFC 4760), for the 2/7 data field.
const CAP_MULTIPROTOCOL: u8 = 1;

/// What we put in our OPEN, built from configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOpen {
    /// Our AS on this session.
    pub asn: Asn,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Hold time we propose (0 disables hold and keepalive timers, else at least 3).
    pub hold_time: u16,
    /// Families we advertise with the Multiprotocol capability.
    pub families: Vec<Family>,
    /// Graceful restart capability to advertise, if any.
    pub graceful_restart: Option<GracefulRestartCap>,
    /// Advertise Extended Message (RFC 8654).
    pub extended_message: bool,
    /// Advertise Enhanced Route Refresh (RFC 7313); only once the RIB handles BoRR/EoRR.
    pub enhanced_route_refresh: bool,
}

impl LocalOpen {
    /// An OPEN with the given identity, hold time and families, no graceful restart, no extended
    /// messages and no enhanced route refresh.
    pub fn new(asn: Asn, router_id: Ipv4Addr, hold_time: u16, families: Vec<Family>) -> LocalOpen {
        LocalOpen {
            asn,
            router_id,
            hold_time,
            families,
            graceful_restart: None,
            extended_message: false,
            enhanced_route_refresh: false,
        }
    }

    /// The OPEN message, capabilities in code order as BIRD sends them: Multiprotocol per family,
    /// Route Refresh, Extended Message, Graceful Restart, 4-octet AS, Enhanced Route Refresh.
    /// `my_as` is AS_TRANS when our AS needs four octets (RFC 6793 §4.1).
    pub fn to_open(&self) -> OpenMsg {
        let mut caps: Vec<Capability> = self
            .families
            .iter()
            .map(|&f| Capability::MultiProtocol(AfiSafi::of(f)))
            .collect();
        caps.push(Capability::RouteRefresh);
        if self.extended_message {
            caps.push(Capability::ExtendedMessage);
        }
        if let Some(gr) = &self.graceful_restart {
            caps.push(Capability::GracefulRestart(gr.clone()));
        }
        caps.push(Capability::FourOctetAs(self.asn));
        if self.enhanced_route_refresh {
            caps.push(Capability::EnhancedRouteRefresh);
        }
        OpenMsg {
            version: BGP_VERSION,
            my_as: two_octet_as(self.asn),
            hold_time: self.hold_time,
            bgp_id: self.router_id,
            capabilities: caps,
        }
    }
}

/// The 2-octet "My Autonomous System" value for an AS (RFC 6793 §4.1).
fn two_octet_as(asn: Asn) -> u16 {
    u16::try_from(asn).unwrap_or(AS_TRANS as u16)
}

/// What the session agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's real AS (from the 4-octet AS capability when sent).
    pub peer_asn: Asn,
    /// The peer's BGP Identifier.
    pub peer_id: Ipv4Addr,
    /// Negotiated hold time in seconds; 0 means no hold and no keepalive timer.
    pub hold_time: u16,
    /// Interval between our KEEPALIVEs in seconds; 0 when the hold time is 0.
    pub keepalive: u16,
    /// Families both sides advertised, in our configured order.
    pub families: Vec<Family>,
    /// Both sides support 4-octet AS numbers (RFC 6793).
    pub four_octet_as: bool,
    /// The peer accepts ROUTE-REFRESH (RFC 2918).
    pub route_refresh: bool,
    /// Both sides advertised Enhanced Route Refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// Both sides advertised Extended Message (RFC 8654).
    pub extended_message: bool,
    /// The peer's graceful restart capability, as sent (RFC 4724 §3).
    pub peer_graceful_restart: Option<GracefulRestartCap>,
    /// The peer's host name from the FQDN capability (FRR sends it).
    pub peer_hostname: Option<String>,
    /// What the codec uses on this session after Established.
    pub codec: CodecParams,
}

/// Check the peer's OPEN against ours and the expected remote AS (RFC 4271 §6.2) and agree on
/// capabilities.
///
/// `keepalive_cfg` is the configured keepalive interval: it is used when it is non-zero and
/// below the negotiated hold time, otherwise the keepalive is a third of the hold time.
///
/// `Err` is the NOTIFICATION to send: 2/1 unsupported version (data: our version, 2 octets),
/// 2/2 bad peer AS, 2/3 bad BGP Identifier (0.0.0.0, or ours on an iBGP session, RFC 6286 §2.2),
/// 2/6 hold time 1 or 2, 2/7 no family in common (data: our Multiprotocol capabilities,
/// RFC 5492 §5).
pub fn negotiate(
    local: &LocalOpen,
    expected_peer_asn: Asn,
    keepalive_cfg: Option<u16>,
    remote: &OpenMsg,
) -> Result<Negotiated, Notification> {
    // RFC 4271 §6.2: the data is the largest version we support.
    if remote.version != BGP_VERSION {
        return Err(open_error(
            open::UNSUPPORTED_VERSION,
            u16::from(BGP_VERSION).to_be_bytes().to_vec(),
        ));
    }

    let peer_asn = peer_asn(remote)?;
    if peer_asn != expected_peer_asn {
        return Err(bad_peer_as(remote));
    }

    // RFC 6286 §2.2: non-zero, and unique within the AS (so not ours on iBGP).
    let ibgp = peer_asn == local.asn;
    if remote.bgp_id.is_unspecified() || (ibgp && remote.bgp_id == local.router_id) {
        return Err(open_error(open::BAD_BGP_IDENTIFIER, Vec::new()));
    }

    // RFC 4271 §4.2: zero or at least three seconds.
    if remote.hold_time == 1 || remote.hold_time == 2 {
        return Err(open_error(
            open::UNACCEPTABLE_HOLD_TIME,
            remote.hold_time.to_be_bytes().to_vec(),
        ));
    }

    let families = common_families(local, remote);
    if families.is_empty() {
        return Err(open_error(
            open::UNSUPPORTED_CAPABILITY,
            multiprotocol_caps(&local.families),
        ));
    }

    let hold_time = local.hold_time.min(remote.hold_time);
    let keepalive = keepalive_for(hold_time, keepalive_cfg);
    let has = |want: fn(&Capability) -> bool| remote.capabilities.iter().any(want);
    let four_octet_as = has(|c| matches!(c, Capability::FourOctetAs(_)));
    let extended_message = local.extended_message && has(|c| *c == Capability::ExtendedMessage);
    let codec = CodecParams {
        four_octet_as,
        max_message_len: if extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        },
        local_asn: local.asn,
        families: families.clone(),
    };
    Ok(Negotiated {
        peer_asn,
        peer_id: remote.bgp_id,
        hold_time,
        keepalive,
        families,
        four_octet_as,
        route_refresh: has(|c| *c == Capability::RouteRefresh),
        enhanced_route_refresh: local.enhanced_route_refresh
            && has(|c| *c == Capability::EnhancedRouteRefresh),
        extended_message,
        // RFC 4724 §3: with several instances, all but the last are ignored.
        peer_graceful_restart: remote.capabilities.iter().rev().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        }),
        peer_hostname: remote.capabilities.iter().find_map(|c| match c {
            Capability::Fqdn { hostname, .. } => Some(hostname.clone()),
            _ => None,
        }),
        codec,
    })
}

/// The peer's AS: the 4-octet AS capability when present, which must agree with `my_as`
/// (AS_TRANS or the same number), else `my_as`. AS 0 is refused (RFC 7607).
fn peer_asn(remote: &OpenMsg) -> Result<Asn, Notification> {
    let four_octet = remote.capabilities.iter().find_map(|c| match c {
        Capability::FourOctetAs(a) => Some(*a),
        _ => None,
    });
    let asn = match four_octet {
        Some(asn) => {
            let consistent = Asn::from(remote.my_as) == AS_TRANS || Asn::from(remote.my_as) == asn;
            if !consistent {
                return Err(bad_peer_as(remote));
            }
            asn
        }
        None => Asn::from(remote.my_as),
    };
    if asn == 0 {
        return Err(bad_peer_as(remote));
    }
    Ok(asn)
}

/// 2/2 with the AS the peer claimed as data (4 octets when it sent the capability, like BIRD).
fn bad_peer_as(remote: &OpenMsg) -> Notification {
    let data = match remote.capabilities.iter().find_map(|c| match c {
        Capability::FourOctetAs(a) => Some(*a),
        _ => None,
    }) {
        Some(asn) => asn.to_be_bytes().to_vec(),
        None => remote.my_as.to_be_bytes().to_vec(),
    };
    open_error(open::BAD_PEER_AS, data)
}

/// Our families that the peer also advertised; a peer without any Multiprotocol capability does
/// IPv4 unicast only (RFC 4760 §8).
fn common_families(local: &LocalOpen, remote: &OpenMsg) -> Vec<Family> {
    let remote_mp: Vec<AfiSafi> = remote
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::MultiProtocol(a) => Some(*a),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for &family in &local.families {
        let offered = if remote_mp.is_empty() {
            family == Family::Ipv4Unicast
        } else {
            remote_mp.contains(&AfiSafi::of(family))
        };
        if offered && !out.contains(&family) {
            out.push(family);
        }
    }
    out
}

/// The keepalive interval: the configured one when non-zero and below the hold time, else a
/// third of the hold time; 0 when the hold time is 0 (RFC 4271 §4.4, §10).
fn keepalive_for(hold_time: u16, keepalive_cfg: Option<u16>) -> u16 {
    if hold_time == 0 {
        return 0;
    }
    match keepalive_cfg {
        Some(k) if k > 0 && k < hold_time => k,
        _ => (hold_time / 3).max(1),
    }
}

/// Our Multiprotocol capabilities as they appear in an OPEN (code, length, AFI, reserved, SAFI),
/// the data of a 2/7 NOTIFICATION (RFC 5492 §5).
fn multiprotocol_caps(families: &[Family]) -> Vec<u8> {
    let mut data = Vec::with_capacity(families.len() * 6);
    for family in families {
        let (afi, safi) = family.afi_safi();
        data.extend_from_slice(&[CAP_MULTIPROTOCOL, 4]);
        data.extend_from_slice(&afi.to_be_bytes());
        data.extend_from_slice(&[0, safi]);
    }
    data
}

/// An OPEN Message Error with the given subcode and data.
fn open_error(subcode: u8, data: Vec<u8>) -> Notification {
    Notification::new(code::OPEN_MESSAGE, subcode, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn local(asn: Asn) -> LocalOpen {
        LocalOpen::new(asn, LOCAL_ID, 240, vec![Family::Ipv4Unicast])
    }

    fn mp(f: Family) -> Capability {
        Capability::MultiProtocol(AfiSafi::of(f))
    }

    /// A peer OPEN as FRR or BIRD sends it: IPv4 unicast, route refresh, 4-octet AS.
    fn remote(asn: Asn, hold: u16) -> OpenMsg {
        OpenMsg {
            version: 4,
            my_as: two_octet_as(asn),
            hold_time: hold,
            bgp_id: PEER_ID,
            capabilities: vec![
                mp(Family::Ipv4Unicast),
                Capability::RouteRefresh,
                Capability::FourOctetAs(asn),
            ],
        }
    }

    fn gr(restart_time: u16, restarting: bool) -> GracefulRestartCap {
        GracefulRestartCap {
            restarting,
            notification: false,
            restart_time,
            families: vec![(AfiSafi::of(Family::Ipv4Unicast), true)],
        }
    }

    #[test]
    fn to_open_uses_as_trans_for_four_octet_asn() {
        // RFC 6793 §4.1: AS_TRANS in My AS, the real AS in the capability.
        let mut l = LocalOpen::new(4_200_000_001, LOCAL_ID, 90, Family::ALL.to_vec());
        l.graceful_restart = Some(gr(120, false));
        l.extended_message = true;
        let o = l.to_open();
        assert_eq!(o.my_as, 23456);
        assert_eq!(o.asn(), 4_200_000_001);
        assert_eq!(o.hold_time, 90);
        assert_eq!(o.bgp_id, LOCAL_ID);
        assert_eq!(
            o.capabilities,
            vec![
                mp(Family::Ipv4Unicast),
                mp(Family::Ipv6Unicast),
                Capability::RouteRefresh,
                Capability::ExtendedMessage,
                Capability::GracefulRestart(gr(120, false)),
                Capability::FourOctetAs(4_200_000_001),
            ]
        );
    }

    #[test]
    fn to_open_keeps_two_octet_asn_and_omits_optional_caps() {
        let mut l = local(64512);
        l.enhanced_route_refresh = true;
        let o = l.to_open();
        assert_eq!(o.my_as, 64512);
        assert_eq!(o.version, 4);
        assert_eq!(
            o.capabilities,
            vec![
                mp(Family::Ipv4Unicast),
                Capability::RouteRefresh,
                Capability::FourOctetAs(64512),
                Capability::EnhancedRouteRefresh,
            ]
        );
    }

    #[test]
    fn accepts_a_plain_ebgp_open() {
        let n = negotiate(&local(64512), 65001, None, &remote(65001, 90)).unwrap();
        assert_eq!(n.peer_asn, 65001);
        assert_eq!(n.peer_id, PEER_ID);
        assert_eq!((n.hold_time, n.keepalive), (90, 30));
        assert_eq!(n.families, vec![Family::Ipv4Unicast]);
        assert!(n.four_octet_as && n.route_refresh);
        assert!(!n.extended_message && !n.enhanced_route_refresh);
        assert_eq!(n.peer_graceful_restart, None);
        assert_eq!(
            n.codec,
            CodecParams {
                four_octet_as: true,
                max_message_len: 4096,
                local_asn: 64512,
                families: vec![Family::Ipv4Unicast],
            }
        );
    }

    #[test]
    fn hold_time_is_the_minimum_and_keepalive_follows() {
        // RFC 4271 §4.2: the smaller of the two; §4.4 keepalive a third of it by default.
        let cases: &[(u16, u16, Option<u16>, u16, u16)] = &[
            (240, 90, None, 90, 30),
            (9, 240, None, 9, 3),
            (240, 3, None, 3, 1),
            (240, 4, None, 4, 1),
            (240, 90, Some(10), 90, 10),
            (240, 90, Some(90), 90, 30), // not below hold: fall back to hold/3
            (240, 90, Some(0), 90, 30),
            (0, 90, Some(10), 0, 0), // RFC 4271 §4.4: zero disables both timers
            (240, 0, None, 0, 0),
        ];
        for &(ours, theirs, ka, hold, keepalive) in cases {
            let mut l = local(64512);
            l.hold_time = ours;
            let n = negotiate(&l, 64512, ka, &remote(64512, theirs)).unwrap();
            assert_eq!(
                (n.hold_time, n.keepalive),
                (hold, keepalive),
                "ours {ours} theirs {theirs} cfg {ka:?}"
            );
        }
    }

    #[test]
    fn refuses_other_versions_with_our_version_as_data() {
        // RFC 4271 §6.2: 2/1, data = largest supported version as 2 octets.
        let mut r = remote(65001, 90);
        r.version = 3;
        let e = negotiate(&local(64512), 65001, None, &r).unwrap_err();
        assert_eq!(e, Notification::new(2, 1, vec![0, 4]));
    }

    #[test]
    fn refuses_the_wrong_peer_as() {
        // RFC 4271 §6.2: 2/2 when My AS is not the expected one.
        let e = negotiate(&local(64512), 65002, None, &remote(65001, 90)).unwrap_err();
        assert_eq!(e, Notification::new(2, 2, 65001u32.to_be_bytes().to_vec()));
        let mut two_octet = remote(65001, 90);
        two_octet.capabilities.pop();
        let e = negotiate(&local(64512), 65002, None, &two_octet).unwrap_err();
        assert_eq!(e, Notification::new(2, 2, vec![0xfd, 0xe9]));
    }

    #[test]
    fn four_octet_peer_as_comes_from_the_capability() {
        // RFC 6793 §4.1: My AS is AS_TRANS, the capability carries the real AS.
        let n = negotiate(
            &local(64512),
            4_200_000_002,
            None,
            &remote(4_200_000_002, 90),
        )
        .unwrap();
        assert_eq!(n.peer_asn, 4_200_000_002);
        assert!(n.codec.four_octet_as);
    }

    #[test]
    fn inconsistent_my_as_and_capability_is_bad_peer_as() {
        // My AS must be AS_TRANS or the capability's value.
        let mut r = remote(4_200_000_002, 90);
        r.my_as = 65001;
        let e = negotiate(&local(64512), 4_200_000_002, None, &r).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 2));
        let mut r = remote(65001, 90);
        r.my_as = 23456; // AS_TRANS with a 2-octet capability value is allowed
        assert!(negotiate(&local(64512), 65001, None, &r).is_ok());
    }

    #[test]
    fn two_octet_peer_without_capability() {
        let mut r = remote(65001, 90);
        r.capabilities
            .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
        let n = negotiate(&local(64512), 65001, None, &r).unwrap();
        assert!(!n.four_octet_as && !n.codec.four_octet_as);
        // A 2-octet peer can never match a 4-octet expected AS (it sends AS_TRANS).
        r.my_as = 23456;
        let e = negotiate(&local(64512), 4_200_000_002, None, &r).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 2));
    }

    #[test]
    fn as_zero_is_refused() {
        // RFC 7607: AS 0 in OPEN is a Bad Peer AS.
        let mut r = remote(65001, 90);
        r.capabilities = vec![mp(Family::Ipv4Unicast)];
        r.my_as = 0;
        let e = negotiate(&local(64512), 0, None, &r).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 2));
    }

    #[test]
    fn bad_bgp_identifier() {
        // RFC 6286 §2.2: zero is invalid; equal to ours is invalid on iBGP only.
        let mut r = remote(64512, 90);
        r.bgp_id = Ipv4Addr::UNSPECIFIED;
        let e = negotiate(&local(64512), 64512, None, &r).unwrap_err();
        assert_eq!(e, Notification::new(2, 3, vec![]));
        let mut r = remote(64512, 90);
        r.bgp_id = LOCAL_ID;
        let e = negotiate(&local(64512), 64512, None, &r).unwrap_err();
        assert_eq!(e, Notification::new(2, 3, vec![]));
        let mut r = remote(65001, 90);
        r.bgp_id = LOCAL_ID;
        assert!(negotiate(&local(64512), 65001, None, &r).is_ok());
    }

    #[test]
    fn hold_time_one_or_two_is_unacceptable() {
        // RFC 4271 §6.2: 2/6 for a hold time of 1 or 2 seconds.
        for hold in [1u16, 2] {
            let e = negotiate(&local(64512), 65001, None, &remote(65001, hold)).unwrap_err();
            assert_eq!(e, Notification::new(2, 6, hold.to_be_bytes().to_vec()));
        }
    }

    #[test]
    fn families_are_the_intersection() {
        let l = LocalOpen::new(
            64512,
            LOCAL_ID,
            240,
            vec![Family::Ipv6Unicast, Family::Ipv4Unicast],
        );
        let mut r = remote(65001, 90);
        r.capabilities.push(mp(Family::Ipv6Unicast));
        r.capabilities
            .push(Capability::MultiProtocol(AfiSafi { afi: 1, safi: 128 }));
        let n = negotiate(&l, 65001, None, &r).unwrap();
        assert_eq!(n.families, vec![Family::Ipv6Unicast, Family::Ipv4Unicast]);
        assert_eq!(n.codec.families, n.families);
        r.capabilities.retain(|c| *c != mp(Family::Ipv4Unicast));
        let n = negotiate(&l, 65001, None, &r).unwrap();
        assert_eq!(n.families, vec![Family::Ipv6Unicast]);
    }

    #[test]
    fn no_multiprotocol_capability_means_ipv4_unicast() {
        // RFC 4760 §8: a peer without the capability does IPv4 unicast only.
        let l = LocalOpen::new(64512, LOCAL_ID, 240, Family::ALL.to_vec());
        let r = OpenMsg {
            capabilities: vec![],
            ..remote(65001, 90)
        };
        let n = negotiate(&l, 65001, None, &r).unwrap();
        assert_eq!(n.families, vec![Family::Ipv4Unicast]);
        assert!(!n.route_refresh && !n.four_octet_as);
    }

    #[test]
    fn no_common_family_is_unsupported_capability_with_our_mp_caps() {
        // RFC 5492 §5: 2/7, data lists the capabilities as encoded in our OPEN.
        let l = LocalOpen::new(64512, LOCAL_ID, 240, vec![Family::Ipv6Unicast]);
        let e = negotiate(&l, 65001, None, &remote(65001, 90)).unwrap_err();
        assert_eq!(e, Notification::new(2, 7, vec![1, 4, 0, 2, 0, 1]));
        let r = OpenMsg {
            capabilities: vec![],
            ..remote(65001, 90)
        };
        let e = negotiate(&l, 65001, None, &r).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 7));
    }

    #[test]
    fn extended_message_needs_both_sides() {
        // RFC 8654 §3: used only when both advertised it.
        let mut r = remote(65001, 90);
        r.capabilities.push(Capability::ExtendedMessage);
        let n = negotiate(&local(64512), 65001, None, &r).unwrap();
        assert!(!n.extended_message);
        assert_eq!(n.codec.max_message_len, 4096);
        let mut l = local(64512);
        l.extended_message = true;
        let n = negotiate(&l, 65001, None, &r).unwrap();
        assert!(n.extended_message);
        assert_eq!(n.codec.max_message_len, 65535);
        let n = negotiate(&l, 65001, None, &remote(65001, 90)).unwrap();
        assert!(!n.extended_message);
    }

    #[test]
    fn enhanced_route_refresh_needs_both_sides() {
        // RFC 7313 §3.
        let mut r = remote(65001, 90);
        r.capabilities.push(Capability::EnhancedRouteRefresh);
        assert!(
            !negotiate(&local(64512), 65001, None, &r)
                .unwrap()
                .enhanced_route_refresh
        );
        let mut l = local(64512);
        l.enhanced_route_refresh = true;
        assert!(
            negotiate(&l, 65001, None, &r)
                .unwrap()
                .enhanced_route_refresh
        );
    }

    #[test]
    fn peer_graceful_restart_is_recorded_even_when_restart_times_differ() {
        // RFC 4724 §3: restart time, R bit and per-family F bits; the last instance wins.
        let mut l = local(64512);
        l.graceful_restart = Some(gr(120, false));
        let mut r = remote(65001, 90);
        r.capabilities
            .push(Capability::GracefulRestart(gr(30, false)));
        r.capabilities
            .push(Capability::GracefulRestart(gr(300, true)));
        let n = negotiate(&l, 65001, None, &r).unwrap();
        assert_eq!(n.peer_graceful_restart, Some(gr(300, true)));
        let n = negotiate(&local(64512), 65001, None, &r).unwrap();
        assert_eq!(n.peer_graceful_restart, Some(gr(300, true)));
    }

    #[test]
    fn unknown_capabilities_are_ignored_and_hostname_recorded() {
        // RFC 5492 §3: a speaker ignores capabilities it does not understand.
        let mut r = remote(65001, 90);
        r.capabilities.push(Capability::Unknown {
            code: 200,
            value: vec![1, 2, 3],
        });
        r.capabilities.push(Capability::Fqdn {
            hostname: "tor1".into(),
            domain: "lab".into(),
        });
        let n = negotiate(&local(64512), 65001, None, &r).unwrap();
        assert_eq!(n.peer_hostname.as_deref(), Some("tor1"));
    }
}
