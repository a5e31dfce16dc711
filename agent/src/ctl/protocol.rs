//! The control protocol between `gingerctl` and the agent: newline-delimited JSON, one request
//! line answered by one response line, over the root-only unix socket.
//!
//! Owns: the request and reply types, the envelope and its version rules, and encoding and
//! decoding of both directions. Must not: do I/O or answer requests (`server` does).
//!
//! Wire format (version 1):
//! ```text
//! → {"version":1,"request":"RouteShow","args":{"prefix":"10.0.0.0/24"}}
//! ← {"version":1,"reply":"Routes","data":[…]}
//! ← {"version":1,"error":{"code":"UnknownRequest","message":"…"}}
//! ```
//! Compatibility: a new request kind keeps the version (an older agent answers
//! `UnknownRequest`); changing the meaning or shape of an existing request or reply bumps
//! `PROTOCOL_VERSION`, and the agent keeps answering every version from
//! `MIN_PROTOCOL_VERSION`. The error envelope never changes, so any gingerctl can show any
//! agent's refusal. Adding a request (as `IpamShow`, `GetEndpoints`, `RouteShowFib` were) takes a
//! `Request` variant listed in `Request::KINDS`, a `Reply` variant, an `AgentState` method and a
//! `server` dispatch arm.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bgp::status::{PeerStatus, RouteStatus};
use bgp::types::Asn;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The oldest protocol version this agent still answers.
pub const MIN_PROTOCOL_VERSION: u32 = 1;
/// The version of the software (shown in version mismatch errors).
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `gingerctl` asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", content = "args")]
pub enum Request {
    /// BGP sessions (`gingerctl node status`).
    NodeStatus,
    /// Loc-RIB entries: all, the longest match for an address (a /32 or /128), or exactly one
    /// prefix.
    RouteShow {
        /// Filter; see `server::select_routes` for the matching rule.
        prefix: Option<IpNet>,
    },
    /// Configured BGPPeer resources (`gingerctl get bgppeers`).
    GetBgpPeers,
    /// Nodes (`gingerctl get nodes`).
    GetNodes,
    /// IP pool and block usage (`gingerctl ipam show [--show-blocks]`).
    IpamShow,
    /// Who holds one address (`gingerctl ipam show --ip IP`).
    IpamShowIp {
        /// The address.
        ip: IpAddr,
    },
    /// This node's pod endpoints (`gingerctl get endpoints`).
    GetEndpoints,
    /// What felix has programmed into the kernel (`gingerctl route show --fib`).
    RouteShowFib,
}

impl Request {
    /// Every request kind this build knows, as it appears in the `request` field.
    pub const KINDS: [&'static str; 8] = [
        "NodeStatus",
        "RouteShow",
        "GetBgpPeers",
        "GetNodes",
        "IpamShow",
        "IpamShowIp",
        "GetEndpoints",
        "RouteShowFib",
    ];

    /// The `request` field value of this request.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::NodeStatus => "NodeStatus",
            Request::RouteShow { .. } => "RouteShow",
            Request::GetBgpPeers => "GetBgpPeers",
            Request::GetNodes => "GetNodes",
            Request::IpamShow => "IpamShow",
            Request::IpamShowIp { .. } => "IpamShowIp",
            Request::GetEndpoints => "GetEndpoints",
            Request::RouteShowFib => "RouteShowFib",
        }
    }
}

/// One row of `gingerctl get bgppeers` (a BGPPeer resource, as calicoctl shows it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpPeerRow {
    /// Resource name.
    pub name: String,
    /// `spec.peerIP`; absent for a `peerSelector` peer.
    pub peer_ip: Option<IpAddr>,
    /// Port from `spec.peerIP` when it names one.
    pub port: Option<u16>,
    /// `spec.node`, when the peer applies to one node.
    pub node: Option<String>,
    /// `spec.nodeSelector`, when the peer applies to selected nodes.
    pub node_selector: Option<String>,
    /// `spec.asNumber`; absent for a `peerSelector` peer.
    pub asn: Option<Asn>,
}

/// The AS number column of a node row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeAsn {
    /// Set on the node (`spec.bgp.asNumber`).
    Explicit(Asn),
    /// The cluster default the node inherits (shown as `(64512)`).
    Inherited(Asn),
}

/// One row of `gingerctl get nodes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    /// Node name.
    pub name: String,
    /// AS number; absent when the node has no BGP spec.
    pub asn: Option<NodeAsn>,
    /// `spec.bgp.ipv4Address` (address with its subnet length).
    pub ipv4: Option<IpNet>,
    /// `spec.bgp.ipv6Address`.
    pub ipv6: Option<IpNet>,
}

/// Usage of one IPAM block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockUsage {
    /// The block.
    pub cidr: IpNet,
    /// Addresses allocated in it.
    pub in_use: u64,
    /// The node it is affine to.
    pub affinity: Option<String>,
}

/// Usage of one IP pool and its blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolUsage {
    /// Pool name.
    pub name: String,
    /// Pool CIDR (its size is the pool's capacity).
    pub cidr: IpNet,
    /// Addresses allocated in the pool's blocks.
    pub in_use: u64,
    /// The pool's blocks, by CIDR.
    pub blocks: Vec<BlockUsage>,
}

/// Answer to `IpamShow`: pools by name, then blocks inside no pool (left by a removed pool).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamReport {
    /// Every pool.
    pub pools: Vec<PoolUsage>,
    /// Blocks outside every pool.
    pub orphan_blocks: Vec<BlockUsage>,
}

/// Answer to `IpamShowIp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpLookup {
    /// The address asked about.
    pub ip: IpAddr,
    /// Its allocation, if it is allocated.
    pub allocation: Option<IpAllocation>,
}

/// Who holds an address (Calico's handle and owner attributes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAllocation {
    /// The block it is in.
    pub block: IpNet,
    /// The handle (`<network>.<containerID>`).
    pub handle: String,
    /// Calico's attribute names: `namespace`, `node`, `pod`, `timestamp`.
    pub attributes: BTreeMap<String, String>,
}

/// One row of `gingerctl get endpoints`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRow {
    /// Pod namespace (empty outside Kubernetes).
    pub namespace: String,
    /// Pod name (empty outside Kubernetes).
    pub pod: String,
    /// The node.
    pub node: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// The pod's addresses.
    pub ips: Vec<IpAddr>,
    /// Host-side link.
    pub host_ifname: String,
    /// Pod-side MAC.
    pub mac: String,
    /// DEL handed the teardown to the agent; the row goes once the veth is removed.
    #[serde(default)]
    pub terminating: bool,
}

/// A permanent neighbour entry felix programmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighbourRow {
    /// The pod address.
    pub ip: IpAddr,
    /// The pod MAC.
    pub mac: String,
    /// The host-side link.
    pub ifname: String,
}

/// A desired route felix keeps out of the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRow {
    /// The destination.
    pub dst: IpNet,
    /// `workload <link>`, `blackhole` or `remote`.
    pub source: String,
    /// Why.
    pub reason: String,
}

/// Answer to `RouteShowFib`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibReport {
    /// Ginger's routes in the kernel, one `ip route`-style line each.
    pub routes: Vec<String>,
    /// Ginger's permanent neighbour entries.
    pub neighbours: Vec<NeighbourRow>,
    /// Desired routes not programmed, with the reason.
    pub rejected: Vec<RejectedRow>,
    /// False while felix has work pending or its last step failed (it retries).
    pub converged: bool,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "data")]
pub enum Reply {
    /// Answer to `NodeStatus`.
    NodeStatus(Vec<PeerStatus>),
    /// Answer to `RouteShow`.
    Routes(Vec<RouteStatus>),
    /// Answer to `GetBgpPeers`.
    BgpPeers(Vec<BgpPeerRow>),
    /// Answer to `GetNodes`.
    Nodes(Vec<NodeRow>),
    /// Answer to `IpamShow`.
    Ipam(IpamReport),
    /// Answer to `IpamShowIp`.
    IpamIp(IpLookup),
    /// Answer to `GetEndpoints`.
    Endpoints(Vec<EndpointRow>),
    /// Answer to `RouteShowFib`.
    Fib(FibReport),
}

/// Why the agent refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Not JSON, or fields missing or of the wrong type.
    Malformed,
    /// The request's protocol version is not one this agent answers.
    UnsupportedVersion,
    /// The request kind is unknown to this agent (a newer gingerctl).
    UnknownRequest,
    /// The request line exceeds the size limit.
    TooLarge,
    /// The agent already serves its maximum number of connections.
    Busy,
    /// The request did not arrive, or could not be answered, in time.
    Timeout,
    /// An error inside the agent.
    Internal,
    /// This agent does not run the part that answers (no IPAM, no felix).
    Unavailable,
    /// A code added by a newer agent.
    #[serde(other)]
    Other,
}

/// The agent's refusal, with a message meant for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// What went wrong, for the user.
    pub message: String,
}

impl AgentError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AgentError {
        AgentError {
            code,
            message: message.into(),
        }
    }
}

/// One response line: an answer or a refusal.
pub type Response = Result<Reply, AgentError>;

/// A response line the client cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Not a JSON object.
    #[error("the agent's answer is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not a reply this build knows.
    #[error("the agent's answer (protocol version {version}) could not be understood: {detail}")]
    UnknownReply {
        /// Version the agent stated, 0 if none.
        version: u64,
        /// What did not fit.
        detail: String,
    },
}

#[derive(Serialize)]
struct RequestLine<'a> {
    version: u32,
    #[serde(flatten)]
    request: &'a Request,
}

#[derive(Serialize)]
struct ReplyLine<'a> {
    version: u32,
    #[serde(flatten)]
    reply: &'a Reply,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    version: u32,
    error: &'a AgentError,
}

/// The request as one line, newline included.
pub fn encode_request(request: &Request) -> Vec<u8> {
    line(&RequestLine {
        version: PROTOCOL_VERSION,
        request,
    })
}

/// The response as one line, newline included.
pub fn encode_response(response: &Response) -> Vec<u8> {
    match response {
        Ok(reply) => line(&ReplyLine {
            version: PROTOCOL_VERSION,
            reply,
        }),
        Err(error) => line(&ErrorLine {
            version: PROTOCOL_VERSION,
            error,
        }),
    }
}

fn line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these types cannot fail: every map key is a string and no value is exotic.
    let mut bytes = serde_json::to_vec(value).unwrap_or_else(|e| {
        format!(r#"{{"version":{PROTOCOL_VERSION},"error":{{"code":"Internal","message":"encoding failed: {e}"}}}}"#)
            .into_bytes()
    });
    bytes.push(b'\n');
    bytes
}

/// Parse a request line (without or with its newline), checking version and kind first so an
/// old agent answers a new gingerctl with a clear `UnsupportedVersion` or `UnknownRequest`.
pub fn decode_request(line: &[u8]) -> Result<Request, AgentError> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        AgentError::new(
            ErrorCode::Malformed,
            format!("request is not valid JSON: {e}"),
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(AgentError::new(
            ErrorCode::Malformed,
            "request must be a JSON object",
        ));
    };
    let version = object
        .get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            AgentError::new(
                ErrorCode::Malformed,
                "request has no numeric \"version\" field",
            )
        })?;
    if version < u64::from(MIN_PROTOCOL_VERSION) || version > u64::from(PROTOCOL_VERSION) {
        return Err(AgentError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "this agent (ginger {SOFTWARE_VERSION}) speaks control protocol versions \
                 {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}, the client sent version {version}; \
                 use the gingerctl that ships with this ginger-node"
            ),
        ));
    }
    let kind = object
        .get("request")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            AgentError::new(
                ErrorCode::Malformed,
                "request has no string \"request\" field",
            )
        })?;
    if !Request::KINDS.contains(&kind) {
        return Err(AgentError::new(
            ErrorCode::UnknownRequest,
            format!(
                "this agent (ginger {SOFTWARE_VERSION}) does not know the request {kind:?}; \
                 upgrade ginger-node or use the gingerctl that ships with it"
            ),
        ));
    }
    Request::deserialize(&value).map_err(|e| {
        AgentError::new(
            ErrorCode::Malformed,
            format!("bad arguments for {kind}: {e}"),
        )
    })
}

/// Parse a response line. An error envelope is understood from any protocol version.
pub fn decode_response(line: &[u8]) -> Result<Response, ProtocolError> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| ProtocolError::NotJson(e.to_string()))?;
    let version = value.get("version").and_then(Value::as_u64).unwrap_or(0);
    if let Some(error) = value.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the agent refused the request without a reason")
            .to_string();
        let code = error
            .get("code")
            .cloned()
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or(ErrorCode::Other);
        return Ok(Err(AgentError { code, message }));
    }
    if version != u64::from(PROTOCOL_VERSION) {
        return Err(ProtocolError::UnknownReply {
            version,
            detail: format!(
                "this gingerctl (ginger {SOFTWARE_VERSION}) speaks version {PROTOCOL_VERSION}"
            ),
        });
    }
    Reply::deserialize(&value)
        .map(Ok)
        .map_err(|e| ProtocolError::UnknownReply {
            version,
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bgp::config::PeerKind;
    use bgp::status::{PathStatus, PeerCounters, SessionState};

    use super::*;

    fn peer() -> PeerStatus {
        PeerStatus {
            name: "Mesh_10_0_0_2".into(),
            kind: PeerKind::Mesh,
            address: "10.0.0.2".parse().unwrap(),
            port: 179,
            remote_asn: 64512,
            local_asn: 64512,
            state: SessionState::Established,
            since_unix: 1_700_000_000,
            last_error: None,
            peer_router_id: Some("10.0.0.2".parse().unwrap()),
            hold_time: Some(240),
            families: vec![bgp::types::Family::Ipv4Unicast],
            prefixes_received: 3,
            prefixes_accepted: 3,
            prefixes_advertised: 1,
            end_of_rib_received: Vec::new(),
            peer_graceful_restart: false,
            stale_paths: 0,
            counters: PeerCounters {
                updates_in: 4,
                notifications_in: BTreeMap::from([("6/2".to_string(), 1)]),
                ..PeerCounters::default()
            },
        }
    }

    fn route() -> RouteStatus {
        RouteStatus {
            prefix: "10.244.1.0/26".parse().unwrap(),
            paths: vec![PathStatus {
                from: "Mesh_10_0_0_2".into(),
                peer_address: Some("10.0.0.2".parse().unwrap()),
                next_hop: Some("10.0.0.2".parse().unwrap()),
                as_path: String::new(),
                origin: "IGP".into(),
                med: None,
                local_pref: Some(100),
                communities: vec![],
                originator_id: None,
                cluster_list: vec![],
                best: true,
                multipath: true,
                stale: false,
                reason: None,
            }],
        }
    }

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::NodeStatus,
            Request::RouteShow { prefix: None },
            Request::RouteShow {
                prefix: Some("10.0.0.0/24".parse().unwrap()),
            },
            Request::GetBgpPeers,
            Request::GetNodes,
            Request::IpamShow,
            Request::IpamShowIp {
                ip: "10.244.0.5".parse().unwrap(),
            },
            Request::GetEndpoints,
            Request::RouteShowFib,
        ] {
            let line = encode_request(&request);
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
            assert_eq!(decode_request(&line).unwrap(), request);
            assert!(Request::KINDS.contains(&request.kind()));
        }
    }

    #[test]
    fn request_wire_format_is_stable() {
        let line = encode_request(&Request::RouteShow {
            prefix: Some("10.0.0.0/24".parse().unwrap()),
        });
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"version\":1,\"request\":\"RouteShow\",\"args\":{\"prefix\":\"10.0.0.0/24\"}}\n"
        );
        let line = encode_request(&Request::NodeStatus);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"version\":1,\"request\":\"NodeStatus\"}\n"
        );
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Ok(Reply::NodeStatus(vec![peer()])),
            Ok(Reply::Routes(vec![route()])),
            Ok(Reply::BgpPeers(vec![BgpPeerRow {
                name: "tor".into(),
                peer_ip: Some("192.0.2.1".parse().unwrap()),
                port: Some(1179),
                node: None,
                node_selector: Some("rack == 'a'".into()),
                asn: Some(65001),
            }])),
            Ok(Reply::Nodes(vec![NodeRow {
                name: "node-1".into(),
                asn: Some(NodeAsn::Inherited(64512)),
                ipv4: Some("10.0.0.1/24".parse().unwrap()),
                ipv6: None,
            }])),
            Ok(Reply::Ipam(IpamReport {
                pools: vec![PoolUsage {
                    name: "default-ipv4-ippool".into(),
                    cidr: "10.244.0.0/16".parse().unwrap(),
                    in_use: 1,
                    blocks: vec![BlockUsage {
                        cidr: "10.244.0.0/26".parse().unwrap(),
                        in_use: 1,
                        affinity: Some("node-1".into()),
                    }],
                }],
                orphan_blocks: vec![],
            })),
            Ok(Reply::IpamIp(IpLookup {
                ip: "10.244.0.5".parse().unwrap(),
                allocation: Some(IpAllocation {
                    block: "10.244.0.0/26".parse().unwrap(),
                    handle: "k8s-pod-network.abc".into(),
                    attributes: BTreeMap::from([("node".to_string(), "node-1".to_string())]),
                }),
            })),
            Ok(Reply::Endpoints(vec![EndpointRow {
                namespace: "default".into(),
                pod: "web-1".into(),
                node: "node-1".into(),
                container_id: "abc".into(),
                ips: vec!["10.244.0.5".parse().unwrap()],
                host_ifname: "cali0123456789a".into(),
                mac: "0a:58:0a:f4:00:05".into(),
                terminating: false,
            }])),
            Ok(Reply::Fib(FibReport {
                routes: vec!["blackhole 10.244.0.0/26 proto 97".into()],
                neighbours: vec![],
                rejected: vec![RejectedRow {
                    dst: "10.244.0.9/32".parse().unwrap(),
                    source: "workload cali1".into(),
                    reason: "link cali1 does not exist".into(),
                }],
                converged: true,
            })),
            Err(AgentError::new(ErrorCode::Busy, "too many connections")),
            Err(AgentError::new(ErrorCode::Unavailable, "no IPAM")),
        ];
        for response in replies {
            let line = encode_response(&response);
            assert_eq!(decode_response(&line).unwrap(), response);
        }
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        let cases: [(&[u8], ErrorCode, &str); 8] = [
            (b"not json", ErrorCode::Malformed, "not valid JSON"),
            (b"[1,2]", ErrorCode::Malformed, "JSON object"),
            (
                br#"{"request":"NodeStatus"}"#,
                ErrorCode::Malformed,
                "version",
            ),
            (br#"{"version":1}"#, ErrorCode::Malformed, "\"request\""),
            (
                br#"{"version":2,"request":"NodeStatus"}"#,
                ErrorCode::UnsupportedVersion,
                "client sent version 2",
            ),
            (
                br#"{"version":0,"request":"NodeStatus"}"#,
                ErrorCode::UnsupportedVersion,
                "versions 1 to 1",
            ),
            (
                br#"{"version":1,"request":"IpamSplit"}"#,
                ErrorCode::UnknownRequest,
                "\"IpamSplit\"",
            ),
            (
                br#"{"version":1,"request":"RouteShow","args":{"prefix":"nope"}}"#,
                ErrorCode::Malformed,
                "bad arguments for RouteShow",
            ),
        ];
        for (line, code, text) in cases {
            let err = decode_request(line).unwrap_err();
            assert_eq!(err.code, code, "{}", String::from_utf8_lossy(line));
            assert!(err.message.contains(text), "{}", err.message);
        }
    }

    #[test]
    fn errors_from_any_version_are_understood() {
        // A future agent's error envelope with a code this build does not know.
        let line = br#"{"version":7,"error":{"code":"QuotaExceeded","message":"slow down"}}"#;
        let response = decode_response(line).unwrap();
        assert_eq!(
            response,
            Err(AgentError::new(ErrorCode::Other, "slow down"))
        );
    }

    #[test]
    fn replies_from_another_version_are_reported_not_misread() {
        let line = br#"{"version":2,"reply":"NodeStatus","data":[]}"#;
        let err = decode_response(line).unwrap_err();
        assert!(err.to_string().contains("protocol version 2"), "{err}");
        let line = br#"{"version":1,"reply":"IpamSplit","data":{}}"#;
        assert!(matches!(
            decode_response(line),
            Err(ProtocolError::UnknownReply { .. })
        ));
        assert!(matches!(
            decode_response(b"{oops"),
            Err(ProtocolError::NotJson(_))
        ));
    }
}
