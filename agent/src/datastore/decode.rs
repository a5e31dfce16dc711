//! One document of the cluster file into one typed resource, with Calico's per-resource rules.
//!
//! Owns: the schema of each kind (which fields exist, which Calico fields Ginger refuses and
//! why, their types, ranges and defaults) and the checks that involve only one document (e.g.
//! `node` and `nodeSelector` both set). Must not: compare documents (that is `validate`) or read
//! files. A `tree::YamlNode` enters; a `Resource` (or nothing) and the problems found leave. Every
//! problem found in a document is reported, not just the first.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use bgp::config::{DEFAULT_HOLD_TIME, NextHopMode};
use ipnet::IpNet;

use super::model::{
    AllowedUse, AssignmentMode, BgpConfiguration, BgpPeer, BindMode, CommunityValue, ConfigScope,
    DEFAULT_BLOCK_SIZE_V4, DEFAULT_BLOCK_SIZE_V6, IpPool, Kind, LogSeverity, Metadata,
    NamedCommunity, Node, NodeBgp, PeerScope, PeerTarget, PrefixAdvertisement, Resource,
    ReversePeering, SourceAddress,
};
use super::tree::{
    self, MapReader, Problems, Unsupported, Value, YamlNode, asn, boolean, closest, int_in, join,
    list, one_of, port, seconds_in, string, string_map,
};
use super::{DocRef, Problem};
use crate::selector::Selector;

/// The `apiVersion`s accepted (same schema).
pub const API_VERSIONS: [&str; 2] = ["ginger.dev/v1", "projectcalico.org/v3"];

/// IPv4 link-local addresses (RFC 3927): never a pool (pods would collide with 169.254.1.1).
const LINK_LOCAL_V4: IpNet =
    IpNet::new_assert(IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 0, 0)), 16);
/// IPv6 link-local unicast (RFC 4291 §2.5.6).
const LINK_LOCAL_V6: IpNet = IpNet::new_assert(
    IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
    10,
);

/// RFC 4724 §3: the Restart Time field is 12 bits.
const MAX_RESTART_TIME: u64 = 4095;

/// Fields of `metadata` the API server writes; a file copied from `kubectl get -o yaml` has them.
const SERVER_METADATA: &str =
    "written by the API server, not part of a configuration file; delete it";

/// Decode document number `index` (1-based). Returns the resource when it is valid, and every
/// problem found (also when it is valid there are none).
pub fn document(node: &YamlNode, index: usize) -> (Option<Resource>, Vec<Problem>) {
    let mut problems = Problems::new(DocRef {
        index,
        kind: None,
        name: None,
    });
    let resource = decode_document(node, index, &mut problems);
    (resource, problems.list)
}

fn decode_document(node: &YamlNode, index: usize, problems: &mut Problems) -> Option<Resource> {
    // Name the kind and name in every message, even those found before they are validated.
    let text = |n: &YamlNode| match &n.value {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    };
    problems.set_doc(DocRef {
        index,
        kind: entry(node, "kind").and_then(text),
        name: entry(node, "metadata")
            .and_then(|m| entry(m, "name"))
            .and_then(text),
    });

    let top = MapReader::new(
        node,
        "",
        &["apiVersion", "kind", "metadata", "spec"],
        &[],
        problems,
    )?;

    match top.get("apiVersion") {
        None => problems.push(
            "apiVersion",
            node.line,
            format!("missing; expected one of {}", API_VERSIONS.join(", ")),
        ),
        Some(v) => {
            if let Some(s) = string(v, "apiVersion", problems)
                && !API_VERSIONS.contains(&s.as_str())
            {
                problems.push(
                    "apiVersion",
                    v.line,
                    format!("expected one of {}, got {s:?}", API_VERSIONS.join(", ")),
                );
            }
        }
    }

    let kind_names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    let kind = match top.get("kind") {
        None => {
            problems.push(
                "kind",
                node.line,
                format!("missing; expected one of {}", kind_names.join(", ")),
            );
            None
        }
        Some(v) => string(v, "kind", problems).and_then(|s| {
            let found = Kind::ALL.iter().copied().find(|k| k.name() == s);
            if found.is_none() {
                let hint = closest(&s, &kind_names)
                    .map(|c| format!("; did you mean {c:?}?"))
                    .unwrap_or_default();
                problems.push(
                    "kind",
                    v.line,
                    format!("expected one of {}, got {s:?}{hint}", kind_names.join(", ")),
                );
            }
            found
        }),
    };

    let metadata = match top.get("metadata") {
        None => {
            problems.push(
                "metadata",
                node.line,
                "missing; every resource needs metadata.name",
            );
            None
        }
        Some(m) => read_metadata(m, kind, problems),
    };

    let spec = top.get("spec");
    let spec_line = top.line_of("spec").max(node.line);
    // The spec is checked even when the metadata is wrong, so one pass reports both.
    let (kind, metadata) = (kind?, metadata.unwrap_or_default());
    let resource = match kind {
        Kind::BgpConfiguration => {
            bgp_configuration(metadata, spec, problems).map(Resource::BgpConfiguration)
        }
        Kind::Node => node_resource(metadata, spec, problems).map(Resource::Node),
        Kind::BgpPeer => match spec {
            Some(s) => bgp_peer(metadata, s, problems).map(Resource::BgpPeer),
            None => {
                problems.push(
                    "spec",
                    spec_line,
                    "missing; a BGPPeer needs spec.peerIP or spec.peerSelector",
                );
                None
            }
        },
        Kind::IpPool => match spec {
            Some(s) => ip_pool(metadata, s, problems).map(Resource::IpPool),
            None => {
                problems.push("spec", spec_line, "missing; an IPPool needs spec.cidr");
                None
            }
        },
    };
    // A resource is only returned when nothing at all was wrong with its document.
    if problems.list.is_empty() {
        resource
    } else {
        None
    }
}

/// The value under `key` when `node` is a mapping.
fn entry<'a>(node: &'a YamlNode, key: &str) -> Option<&'a YamlNode> {
    match &node.value {
        Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
        _ => None,
    }
}

/// Kubernetes names (RFC 1123 subdomain): lowercase letters, digits, '-' and '.', starting and
/// ending with a letter or digit, at most 253 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

const NAME_RULE: &str =
    "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit";

fn name_field(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<String> {
    let name = string(node, path, problems)?;
    if valid_name(&name) {
        Some(name)
    } else {
        problems.push(
            path,
            node.line,
            format!("expected a name of {NAME_RULE} (at most 253), got {name:?}"),
        );
        None
    }
}

const LABEL_KEY_RULE: &str =
    "expected [prefix/]name, the name at most 63 letters, digits, '-', '_', '.'";
const LABEL_VALUE_RULE: &str = "expected at most 63 letters, digits, '-', '_', '.', \
     starting and ending with a letter or digit";

/// A label key: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters
/// of letters, digits, '-', '_', '.', starting and ending with a letter or digit.
fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(valid_name) && valid_label_value(name) && !name.is_empty()
}

/// A label value: empty, or at most 63 letters, digits, '-', '_', '.', starting and ending with a
/// letter or digit.
fn valid_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && value
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric()))
}

fn read_metadata(node: &YamlNode, kind: Option<Kind>, problems: &mut Problems) -> Option<Metadata> {
    let unsupported: &[Unsupported] = &[
        (
            "namespace",
            "these resources are cluster-wide and have no namespace",
        ),
        ("uid", SERVER_METADATA),
        ("resourceVersion", SERVER_METADATA),
        ("creationTimestamp", SERVER_METADATA),
        ("generation", SERVER_METADATA),
        ("managedFields", SERVER_METADATA),
        ("selfLink", SERVER_METADATA),
    ];
    let r = MapReader::new(
        node,
        "metadata",
        &["name", "labels", "annotations"],
        unsupported,
        problems,
    )?;
    let name = match r.get("name") {
        None => {
            problems.push(
                "metadata.name",
                node.line,
                "missing; every resource needs a name",
            );
            None
        }
        // BGPConfiguration names (`node.<name>`) are checked with the kind's own rule.
        Some(n) if kind == Some(Kind::BgpConfiguration) => string(n, "metadata.name", problems),
        Some(n) => name_field(n, "metadata.name", problems),
    };
    let labels = r.read("labels", problems, string_map).unwrap_or_default();
    for (k, v) in &labels {
        let path = join("metadata.labels", k);
        let line = r.get("labels").map_or(node.line, |l| l.line);
        if !valid_label_key(k) {
            problems.push(&path, line, format!("invalid label key: {LABEL_KEY_RULE}"));
        }
        if !valid_label_value(v) {
            problems.push(
                &path,
                line,
                format!("invalid label value {v:?}: {LABEL_VALUE_RULE}"),
            );
        }
    }
    let annotations = r
        .read("annotations", problems, string_map)
        .unwrap_or_default();
    Some(Metadata {
        name: name?,
        labels,
        annotations,
    })
}

// ---------------------------------------------------------------------------------------------
// BGPConfiguration

const BGP_CONFIG_FIELDS: &[&str] = &[
    "asNumber",
    "bindMode",
    "communities",
    "listenPort",
    "logSeverityScreen",
    "nodeMeshMaxRestartTime",
    "nodeToNodeMeshEnabled",
    "prefixAdvertisements",
    "serviceClusterIPs",
    "serviceExternalIPs",
    "serviceLoadBalancerIPs",
];

const BGP_CONFIG_UNSUPPORTED: &[Unsupported] = &[
    (
        "nodeMeshPassword",
        "BGP session passwords (TCP MD5) are not implemented",
    ),
    (
        "ignoredInterfaces",
        "Ginger does not import interface routes, so there is nothing to ignore",
    ),
    (
        "serviceLoadBalancerAggregation",
        "per-service /32 advertisement is not implemented; LoadBalancer ranges are \
            advertised whole",
    ),
    (
        "localWorkloadPeeringIPV4",
        "BGP peering with local workloads is not implemented",
    ),
    (
        "localWorkloadPeeringIPV6",
        "BGP peering with local workloads is not implemented",
    ),
    (
        "programClusterRoutes",
        "Ginger programs the routes to other nodes itself, always without encapsulation",
    ),
    (
        "ipv4NormalRoutePriority",
        "route metrics belong to Ginger's dataplane settings",
    ),
    (
        "ipv6NormalRoutePriority",
        "route metrics belong to Ginger's dataplane settings",
    ),
];

/// What a `node.<name>` BGPConfiguration may set (confd reads only these per node).
const PER_NODE_FIELDS: &[&str] = &[
    "communities",
    "listenPort",
    "logSeverityScreen",
    "prefixAdvertisements",
];

fn bgp_configuration(
    metadata: Metadata,
    spec: Option<&YamlNode>,
    problems: &mut Problems,
) -> Option<BgpConfiguration> {
    let scope = if metadata.name.is_empty() {
        None // a missing or unreadable name is already reported
    } else if metadata.name == "default" {
        Some(ConfigScope::Global)
    } else if let Some(node) = metadata.name.strip_prefix("node.") {
        if valid_name(node) {
            Some(ConfigScope::Node(node.to_string()))
        } else {
            problems.push(
                "metadata.name",
                0,
                format!("{node:?} after \"node.\" is not a node name ({NAME_RULE})"),
            );
            None
        }
    } else {
        problems.push(
            "metadata.name",
            0,
            format!(
                "expected \"default\" (cluster-wide) or \"node.<nodename>\" (one node), got {:?}",
                metadata.name
            ),
        );
        None
    };

    let mut config = BgpConfiguration {
        metadata,
        scope: ConfigScope::Global,
        as_number: None,
        node_to_node_mesh_enabled: None,
        listen_port: None,
        log_severity_screen: None,
        bind_mode: None,
        service_cluster_ips: Vec::new(),
        service_external_ips: Vec::new(),
        service_load_balancer_ips: Vec::new(),
        communities: Vec::new(),
        prefix_advertisements: None,
        node_mesh_max_restart_time: None,
    };
    let Some(spec) = spec else {
        config.scope = scope?;
        return Some(config);
    };
    let r = MapReader::new(
        spec,
        "spec",
        BGP_CONFIG_FIELDS,
        BGP_CONFIG_UNSUPPORTED,
        problems,
    )?;

    if let Some(ConfigScope::Node(_)) = &scope {
        for field in BGP_CONFIG_FIELDS {
            if r.get(field).is_some() && !PER_NODE_FIELDS.contains(field) {
                let elsewhere = if *field == "asNumber" {
                    "BGPConfiguration \"default\" or the Node's spec.bgp.asNumber"
                } else {
                    "BGPConfiguration \"default\""
                };
                problems.push(
                    &r.path(field),
                    r.line_of(field),
                    format!(
                        "cannot be set per node (a node.<name> BGPConfiguration may set \
                            only {}); set it in {elsewhere}",
                        PER_NODE_FIELDS.join(", ")
                    ),
                );
            }
        }
    }

    config.as_number = r.read("asNumber", problems, asn);
    config.node_to_node_mesh_enabled = r.read("nodeToNodeMeshEnabled", problems, boolean);
    config.listen_port = r.read("listenPort", problems, port);
    config.log_severity_screen = r.read("logSeverityScreen", problems, log_severity);
    config.bind_mode = r.read("bindMode", problems, |n, p, pr| {
        one_of(
            n,
            p,
            pr,
            &[("None", BindMode::None), ("NodeIP", BindMode::NodeIP)],
        )
    });
    for (field, out) in [
        ("serviceClusterIPs", &mut config.service_cluster_ips),
        ("serviceExternalIPs", &mut config.service_external_ips),
        (
            "serviceLoadBalancerIPs",
            &mut config.service_load_balancer_ips,
        ),
    ] {
        *out = r
            .read(field, problems, |n, p, pr| list(n, p, pr, service_block))
            .unwrap_or_default();
    }
    config.communities = r
        .read("communities", problems, communities)
        .unwrap_or_default();
    config.prefix_advertisements = r.read("prefixAdvertisements", problems, |n, p, pr| {
        list(n, p, pr, |item, path, pr| {
            prefix_advertisement(item, path, pr, &config.communities)
        })
    });
    let no_advertisements = match r.get("prefixAdvertisements") {
        None => true,
        Some(YamlNode {
            value: Value::Seq(items),
            ..
        }) => items.is_empty(),
        Some(_) => false,
    };
    if !config.communities.is_empty() && no_advertisements {
        problems.push(
            "spec.communities",
            r.line_of("communities"),
            "communities are defined but not used in spec.prefixAdvertisements",
        );
    }
    config.node_mesh_max_restart_time = r.read("nodeMeshMaxRestartTime", problems, |n, p, pr| {
        seconds_in(n, p, pr, 0, MAX_RESTART_TIME)
    });
    if config.node_mesh_max_restart_time.is_some()
        && config.node_to_node_mesh_enabled == Some(false)
    {
        problems.push(
            "spec.nodeMeshMaxRestartTime",
            r.line_of("nodeMeshMaxRestartTime"),
            "cannot be set when nodeToNodeMeshEnabled is false",
        );
    }
    config.scope = scope?;
    Some(config)
}

fn log_severity(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<LogSeverity> {
    // Calico's pattern is case-insensitive: ^(?i)(Trace|Debug|Info|Warning|Error|Fatal)?$
    let choices = [
        ("Trace", LogSeverity::Trace),
        ("Debug", LogSeverity::Debug),
        ("Info", LogSeverity::Info),
        ("Warning", LogSeverity::Warning),
        ("Error", LogSeverity::Error),
        ("Fatal", LogSeverity::Fatal),
    ];
    if let Value::Str(s) = &node.value
        && let Some((_, v)) = choices.iter().find(|(n, _)| n.eq_ignore_ascii_case(s))
    {
        return Some(*v);
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    problems.expected(path, node, &format!("one of {}", names.join(", ")));
    None
}

fn service_block(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<IpNet> {
    let r = MapReader::new(node, path, &["cidr"], &[], problems)?;
    match r.get("cidr") {
        Some(c) => tree::cidr(c, &r.path("cidr"), problems, false),
        None => {
            problems.push(
                &r.path("cidr"),
                node.line,
                "missing; expected a CIDR like \"10.96.0.0/12\"",
            );
            None
        }
    }
}

/// The valid entries of `communities`; bad ones are reported and left out, so that the names
/// the good ones define still resolve in `prefixAdvertisements` (no follow-on errors).
fn communities(
    node: &YamlNode,
    path: &str,
    problems: &mut Problems,
) -> Option<Vec<NamedCommunity>> {
    let YamlNode {
        value: Value::Seq(entries),
        ..
    } = node
    else {
        problems.expected(path, node, "a list of {name, value}");
        return None;
    };
    let read_one = |item: &YamlNode, path: &str, problems: &mut Problems| {
        let r = MapReader::new(item, path, &["name", "value"], &[], problems)?;
        let name = match r.get("name") {
            Some(n) => string(n, &r.path("name"), problems),
            None => {
                problems.push(
                    &r.path("name"),
                    item.line,
                    "missing; a community needs a name",
                );
                None
            }
        };
        let value = match r.get("value") {
            Some(v) => string(v, &r.path("value"), problems).and_then(|s| {
                CommunityValue::parse(&s)
                    .map_err(|e| problems.push(&r.path("value"), v.line, e))
                    .ok()
            }),
            None => {
                problems.push(
                    &r.path("value"),
                    item.line,
                    "missing; expected aa:nn or aa:nn:mm",
                );
                None
            }
        };
        Some(NamedCommunity {
            name: name?,
            value: value?,
        })
    };
    let items: Vec<NamedCommunity> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, item)| read_one(item, &format!("{path}[{i}]"), problems))
        .collect();
    let mut seen = BTreeSet::new();
    for (i, c) in items.iter().enumerate() {
        if !seen.insert(c.name.clone()) {
            problems.push(
                &format!("{path}[{i}].name"),
                node.line,
                format!("community name {:?} is defined twice", c.name),
            );
        }
    }
    Some(items)
}

fn prefix_advertisement(
    node: &YamlNode,
    path: &str,
    problems: &mut Problems,
    defined: &[NamedCommunity],
) -> Option<PrefixAdvertisement> {
    let r = MapReader::new(node, path, &["cidr", "communities"], &[], problems)?;
    // A /0 here is legitimate: it tags every exported route.
    let cidr = match r.get("cidr") {
        Some(c) => tree::cidr(c, &r.path("cidr"), problems, true),
        None => {
            problems.push(&r.path("cidr"), node.line, "missing; expected a CIDR");
            None
        }
    };
    let communities = match r.get("communities") {
        Some(c) => list(
            c,
            &r.path("communities"),
            problems,
            |item, path, problems| {
                let text = string(item, path, problems)?;
                // Calico reads anything shaped like a value as a value, else looks the name up.
                if CommunityValue::looks_like_value(&text) {
                    return CommunityValue::parse(&text)
                        .map_err(|e| problems.push(path, item.line, e))
                        .ok();
                }
                match defined.iter().find(|d| d.name == text) {
                    Some(d) => Some(d.value),
                    None => {
                        let names: Vec<&str> = defined.iter().map(|d| d.name.as_str()).collect();
                        let known = if names.is_empty() {
                            "no communities are defined in spec.communities".to_string()
                        } else {
                            format!("defined: {}", names.join(", "))
                        };
                        problems.push(
                            path,
                            item.line,
                            format!(
                                "{text:?} is neither a community value (aa:nn, aa:nn:mm) \
                            nor a name from spec.communities ({known})"
                            ),
                        );
                        None
                    }
                }
            },
        ),
        None => {
            problems.push(
                &r.path("communities"),
                node.line,
                "missing; expected a list of community names or values",
            );
            None
        }
    };
    Some(PrefixAdvertisement {
        cidr: cidr?,
        communities: communities?,
    })
}

// ---------------------------------------------------------------------------------------------
// Node

const NODE_SPEC_UNSUPPORTED: &[Unsupported] = &[
    (
        "addresses",
        "Ginger takes the node's addresses from spec.bgp",
    ),
    (
        "orchRefs",
        "Ginger matches Nodes to Kubernetes nodes by name",
    ),
    (
        "ipv4VXLANTunnelAddr",
        "Ginger routes without encapsulation (no VXLAN)",
    ),
    (
        "ipv6VXLANTunnelAddr",
        "Ginger routes without encapsulation (no VXLAN)",
    ),
    (
        "vxlanTunnelMACAddr",
        "Ginger routes without encapsulation (no VXLAN)",
    ),
    (
        "vxlanTunnelMACAddrV6",
        "Ginger routes without encapsulation (no VXLAN)",
    ),
    ("wireguard", "WireGuard encryption is not implemented"),
];

fn node_resource(
    metadata: Metadata,
    spec: Option<&YamlNode>,
    problems: &mut Problems,
) -> Option<Node> {
    let Some(spec) = spec else {
        return Some(Node {
            metadata,
            bgp: None,
        });
    };
    let r = MapReader::new(spec, "spec", &["bgp"], NODE_SPEC_UNSUPPORTED, problems)?;
    let bgp = match r.get("bgp") {
        None => None,
        Some(b) => Some(node_bgp(b, "spec.bgp", problems)?),
    };
    Some(Node { metadata, bgp })
}

fn node_bgp(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<NodeBgp> {
    let r = MapReader::new(
        node,
        path,
        &[
            "asNumber",
            "ipv4Address",
            "ipv6Address",
            "routeReflectorClusterID",
        ],
        &[(
            "ipv4IPIPTunnelAddr",
            "Ginger routes without encapsulation (no IPIP)",
        )],
        problems,
    )?;
    let before = problems.list.len();
    let bgp = NodeBgp {
        ipv4_address: r.read("ipv4Address", problems, |n, p, pr| match interface_address(
            n, p, pr, true,
        )? {
            IpNet::V4(v4) => Some(v4),
            IpNet::V6(_) => None,
        }),
        ipv6_address: r.read("ipv6Address", problems, |n, p, pr| match interface_address(
            n, p, pr, false,
        )? {
            IpNet::V6(v6) => Some(v6),
            IpNet::V4(_) => None,
        }),
        as_number: r.read("asNumber", problems, asn),
        route_reflector_cluster_id: r.read("routeReflectorClusterID", problems, |n, p, pr| {
            let s = string(n, p, pr)?;
            match std::net::Ipv4Addr::from_str(s.trim()) {
                Ok(id) if !id.is_unspecified() => Some(id),
                _ => {
                    pr.push(
                        p,
                        n.line,
                        format!(
                            "expected a cluster id in IPv4 form such as \"244.0.0.1\", got {s:?}"
                        ),
                    );
                    None
                }
            }
        }),
    };
    if bgp == NodeBgp::default() && problems.list.len() == before {
        problems.push(
            path,
            node.line,
            "is empty; set ipv4Address and/or ipv6Address (or remove spec.bgp)",
        );
        return None;
    }
    Some(bgp)
}

/// A node address with its subnet length (`10.0.0.5/24`); a bare address means a /32 or /128.
fn interface_address(
    node: &YamlNode,
    path: &str,
    problems: &mut Problems,
    v4: bool,
) -> Option<IpNet> {
    let s = string(node, path, problems)?;
    let text = s.trim();
    let parsed = IpNet::from_str(text)
        .ok()
        .or_else(|| IpAddr::from_str(text).ok().map(IpNet::from));
    let family = if v4 { "IPv4" } else { "IPv6" };
    let example = if v4 { "10.0.0.5/24" } else { "fd00::5/64" };
    match parsed {
        Some(net) if net.addr().is_ipv4() == v4 => {
            let a = net.addr();
            if a.is_unspecified() || a.is_multicast() || a == IpAddr::from([255, 255, 255, 255]) {
                problems.push(
                    path,
                    node.line,
                    format!("{text:?} cannot be a node address"),
                );
                None
            } else {
                Some(net)
            }
        }
        _ => {
            problems.push(
                path,
                node.line,
                format!(
                    "expected the node's {family} address with its subnet length, like \
                    \"{example}\", got {s:?}"
                ),
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// BGPPeer

const BGP_PEER_FIELDS: &[&str] = &[
    "asNumber",
    "holdTime",
    "keepOriginalNextHop",
    "keepaliveTime",
    "localASNumber",
    "maxRestartTime",
    "nextHopMode",
    "node",
    "nodeSelector",
    "numAllowedLocalASNumbers",
    "peerIP",
    "peerSelector",
    "reversePeering",
    "sourceAddress",
];

/// Most occurrences of our AS `numAllowedLocalASNumbers` may allow. Calico (int32) and BIRD
/// (`allow local as <n>`) set no bound; FRR's and Cisco's `allowas-in` take 1-10, and more
/// than that is a misconfiguration rather than a topology.
pub const MAX_ALLOWED_LOCAL_AS: u8 = 10;

const BGP_PEER_UNSUPPORTED: &[Unsupported] = &[
    (
        "password",
        "BGP session passwords (TCP MD5) are not implemented",
    ),
    ("ttlSecurity", "GTSM (ttlSecurity) is not implemented"),
    (
        "reachableBy",
        "static routes towards peers are not implemented",
    ),
    ("filters", "BGPFilter resources are not implemented"),
    (
        "localWorkloadSelector",
        "BGP peering with local workloads is not implemented",
    ),
];

/// `numAllowedLocalASNumbers`: 0..=`MAX_ALLOWED_LOCAL_AS`.
fn allowed_local_as(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<u8> {
    let max = MAX_ALLOWED_LOCAL_AS;
    match &node.value {
        Value::Int(i) if *i < 0 => {
            problems.push(
                path,
                node.line,
                format!(
                    "{i} is negative; give how many times our AS may appear in a received AS \
                    path (0-{max}; 0, the default, accepts none)"
                ),
            );
            None
        }
        Value::Int(i) if *i > i128::from(max) => {
            problems.push(
                path,
                node.line,
                format!(
                    "{i} is more than {max}: a path with our AS that often is a loop, not a \
                    rack topology (FRR's allowas-in stops at 10 too)"
                ),
            );
            None
        }
        Value::Int(i) => u8::try_from(*i).ok(),
        _ => {
            problems.expected(path, node, &format!("a whole number (0-{max})"));
            None
        }
    }
}

/// Parse `ip`, `ip:port` or `[v6]:port`.
pub fn parse_peer_ip(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    let t = text.trim();
    let (ip, port) = if let Ok(ip) = IpAddr::from_str(t) {
        (ip, None)
    } else if let Ok(sa) = SocketAddr::from_str(t) {
        if sa.port() == 0 {
            return Err(format!("port 0 in {t:?} is not a valid port"));
        }
        (sa.ip(), Some(sa.port()))
    } else {
        return Err(format!(
            "expected an IP address, ip:port or [ipv6]:port, got {t:?}"
        ));
    };
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a BGP peer address"));
    }
    Ok((ip, port))
}

fn bgp_peer(metadata: Metadata, spec: &YamlNode, problems: &mut Problems) -> Option<BgpPeer> {
    let r = MapReader::new(
        spec,
        "spec",
        BGP_PEER_FIELDS,
        BGP_PEER_UNSUPPORTED,
        problems,
    )?;
    let line = |f: &str| r.line_of(f).max(spec.line);

    let node = r.read("node", problems, name_field);
    let node_selector = r.read("nodeSelector", problems, tree::selector);
    let peer_ip = r.read("peerIP", problems, |n, p, pr| {
        let s = string(n, p, pr)?;
        parse_peer_ip(&s)
            .map(|(ip, port)| (ip, port, s))
            .map_err(|e| pr.push(p, n.line, e))
            .ok()
    });
    let peer_selector = r.read("peerSelector", problems, tree::selector);
    let as_number = r.read("asNumber", problems, asn);
    let local_as_number = r.read("localASNumber", problems, asn);
    let keepalive_time = r.read("keepaliveTime", problems, |n, p, pr| {
        seconds_in(n, p, pr, 1, 65535)
    });
    let hold_time = r.read("holdTime", problems, |n, p, pr| {
        let h = seconds_in(n, p, pr, 0, 65535)?;
        if h == 1 || h == 2 {
            pr.push(
                p,
                n.line,
                format!("{h}s is not allowed: the hold time is 0 or at least 3s (RFC 4271 §4.2)"),
            );
            return None;
        }
        Some(h)
    });
    let next_hop_mode = r.read("nextHopMode", problems, |n, p, pr| {
        one_of(
            n,
            p,
            pr,
            &[
                ("Auto", NextHopMode::Auto),
                ("Self", NextHopMode::SelfAddr),
                ("Keep", NextHopMode::Keep),
            ],
        )
    });
    let keep_original_next_hop = r
        .read("keepOriginalNextHop", problems, boolean)
        .unwrap_or(false);
    let source_address = r
        .read("sourceAddress", problems, |n, p, pr| {
            one_of(
                n,
                p,
                pr,
                &[
                    ("UseNodeIP", SourceAddress::UseNodeIP),
                    ("None", SourceAddress::None),
                ],
            )
        })
        .unwrap_or_default();
    let max_restart_time = r.read("maxRestartTime", problems, |n, p, pr| {
        seconds_in(n, p, pr, 0, MAX_RESTART_TIME)
    });
    let allowed_local_as = r
        .read("numAllowedLocalASNumbers", problems, allowed_local_as)
        .unwrap_or(0);
    let reverse_peering = r
        .read("reversePeering", problems, |n, p, pr| {
            one_of(
                n,
                p,
                pr,
                &[
                    ("Auto", ReversePeering::Auto),
                    ("Manual", ReversePeering::Manual),
                ],
            )
        })
        .unwrap_or_default();

    let mut ok = true;
    let mut fail = |problems: &mut Problems, field: &str, message: &str| {
        problems.push(field, line(field.trim_start_matches("spec.")), message);
        ok = false;
    };
    if r.get("node").is_some() && r.get("nodeSelector").is_some() {
        fail(
            problems,
            "spec.nodeSelector",
            "node and nodeSelector cannot both be set",
        );
    }
    if r.get("peerIP").is_some() && r.get("peerSelector").is_some() {
        fail(
            problems,
            "spec.peerSelector",
            "peerIP and peerSelector cannot both be set",
        );
    }
    if r.get("peerIP").is_none() && r.get("peerSelector").is_none() {
        fail(
            problems,
            "spec",
            "set peerIP (with asNumber) or peerSelector",
        );
    }
    if r.get("peerSelector").is_some() && r.get("asNumber").is_some() {
        fail(
            problems,
            "spec.asNumber",
            "must be empty when peerSelector is set: each selected node's own AS is used",
        );
    }
    if r.get("peerIP").is_some() && r.get("asNumber").is_none() {
        fail(
            problems,
            "spec.asNumber",
            "missing; a peerIP peer needs the peer's AS number",
        );
    }
    if keep_original_next_hop && r.get("nextHopMode").is_some() {
        fail(
            problems,
            "spec.keepOriginalNextHop",
            "keepOriginalNextHop and nextHopMode cannot both be set; keepOriginalNextHop is \
                deprecated, use nextHopMode: Keep",
        );
    }
    if let Some(k) = keepalive_time {
        let hold = hold_time.unwrap_or(DEFAULT_HOLD_TIME);
        if hold != 0 && k >= hold {
            fail(
                problems,
                "spec.keepaliveTime",
                &format!("{k}s must be below the hold time ({hold}s); a third of it is usual"),
            );
        }
    }
    if !ok {
        return None;
    }

    let scope = match (node, node_selector, r.get("node"), r.get("nodeSelector")) {
        (Some(n), _, _, _) => PeerScope::Node(n),
        (None, Some(s), _, _) => PeerScope::Selector(s),
        (None, None, None, None) => PeerScope::Global,
        _ => return None,
    };
    let target = match (peer_ip, peer_selector) {
        (Some((ip, port, text)), None) => PeerTarget::Address {
            ip,
            port,
            as_number: as_number?,
            text,
        },
        (None, Some(sel)) => PeerTarget::Nodes(sel),
        _ => return None,
    };
    Some(BgpPeer {
        metadata,
        scope,
        target,
        local_as_number,
        keepalive_time,
        hold_time,
        next_hop_mode,
        keep_original_next_hop,
        source_address,
        max_restart_time,
        allowed_local_as,
        reverse_peering,
    })
}

// ---------------------------------------------------------------------------------------------
// IPPool

const IP_POOL_FIELDS: &[&str] = &[
    "allowedUses",
    "assignmentMode",
    "blockSize",
    "cidr",
    "disableBGPExport",
    "disabled",
    "ipipMode",
    "natOutgoing",
    "nodeSelector",
    "vxlanMode",
];

fn ip_pool(metadata: Metadata, spec: &YamlNode, problems: &mut Problems) -> Option<IpPool> {
    let r = MapReader::new(
        spec,
        "spec",
        IP_POOL_FIELDS,
        &[(
            "namespaceSelector",
            "choosing pools by namespace is not implemented",
        )],
        problems,
    )?;
    let cidr = match r.get("cidr") {
        Some(c) => tree::cidr(c, "spec.cidr", problems, false),
        None => {
            problems.push(
                "spec.cidr",
                spec.line,
                "missing; expected the pool's CIDR, like \"10.244.0.0/16\"",
            );
            None
        }
    };
    if let Some(net) = cidr {
        let link_local = match net {
            IpNet::V4(_) => LINK_LOCAL_V4,
            IpNet::V6(_) => LINK_LOCAL_V6,
        };
        if link_local.contains(&net) || net.contains(&link_local) {
            problems.push(
                "spec.cidr",
                r.line_of("cidr"),
                format!("{net} overlaps the link-local range {link_local}"),
            );
        }
    }
    let is_v4 = cidr.is_none_or(|c| c.addr().is_ipv4());
    let block_size = r
        .read("blockSize", problems, |n, p, pr| {
            let (lo, hi) = if is_v4 { (20, 32) } else { (116, 128) };
            let family = if is_v4 { "IPv4" } else { "IPv6" };
            int_in(
                n,
                p,
                pr,
                lo,
                hi,
                &format!("a block size for an {family} pool"),
            )
            .and_then(|b| u8::try_from(b).ok())
        })
        .unwrap_or(if is_v4 {
            DEFAULT_BLOCK_SIZE_V4
        } else {
            DEFAULT_BLOCK_SIZE_V6
        });
    for field in ["ipipMode", "vxlanMode"] {
        r.read(field, problems, |n, p, pr| {
            match &n.value {
                Value::Str(s) if s == "Never" => {}
                Value::Str(s) if s == "Always" || s == "CrossSubnet" => pr.push(
                    p,
                    n.line,
                    format!(
                        "Ginger routes pod traffic without encapsulation; only \
                        \"Never\" is supported (got {s:?})"
                    ),
                ),
                _ => pr.expected(
                    p,
                    n,
                    "\"Never\" (Ginger routes pod traffic without \
                    encapsulation)",
                ),
            }
            Some(())
        });
    }
    let nat_outgoing = r.read("natOutgoing", problems, boolean).unwrap_or(false);
    let disabled = r.read("disabled", problems, boolean).unwrap_or(false);
    let disable_bgp_export = r
        .read("disableBGPExport", problems, boolean)
        .unwrap_or(false);
    let node_selector_written = r.get("nodeSelector").is_some();
    let node_selector = r
        .read("nodeSelector", problems, tree::selector)
        .unwrap_or_else(Selector::all);
    let allowed_uses = r
        .read("allowedUses", problems, |n, p, pr| {
            list(n, p, pr, |item, path, pr| {
                one_of(
                    item,
                    path,
                    pr,
                    &[
                        ("Workload", AllowedUse::Workload),
                        ("Tunnel", AllowedUse::Tunnel),
                        ("LoadBalancer", AllowedUse::LoadBalancer),
                    ],
                )
            })
        })
        .unwrap_or_else(|| vec![AllowedUse::Workload, AllowedUse::Tunnel]);
    let assignment_mode = r
        .read("assignmentMode", problems, |n, p, pr| {
            one_of(
                n,
                p,
                pr,
                &[
                    ("Automatic", AssignmentMode::Automatic),
                    ("Manual", AssignmentMode::Manual),
                ],
            )
        })
        .unwrap_or_default();

    if let Some(net) = cidr
        && !disabled
        && net.prefix_len() > block_size
    {
        problems.push(
            "spec.cidr",
            r.line_of("cidr"),
            format!(
                "the pool /{} is smaller than one block (/{block_size}); use blockSize \
                        {} or more, or a larger pool",
                net.prefix_len(),
                net.prefix_len()
            ),
        );
    }
    if allowed_uses.contains(&AllowedUse::LoadBalancer) {
        let line = r.line_of("allowedUses");
        if allowed_uses.iter().any(|u| *u != AllowedUse::LoadBalancer) {
            problems.push(
                "spec.allowedUses",
                line,
                "LoadBalancer cannot be combined with Workload or Tunnel",
            );
        }
        if disable_bgp_export {
            problems.push(
                "spec.disableBGPExport",
                r.line_of("disableBGPExport"),
                "a LoadBalancer pool cannot disable BGP export",
            );
        }
        if node_selector_written && node_selector.as_str().trim() != "all()" {
            problems.push(
                "spec.nodeSelector",
                r.line_of("nodeSelector"),
                "a LoadBalancer pool must have nodeSelector all()",
            );
        }
    }

    Some(IpPool {
        metadata,
        cidr: cidr?,
        block_size,
        disabled,
        disable_bgp_export,
        node_selector,
        nat_outgoing,
        allowed_uses,
        assignment_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(yaml: &str) -> (Option<Resource>, Vec<String>) {
        let node: YamlNode = serde_saphyr::from_str(yaml).unwrap();
        let (r, p) = document(&node, 1);
        (r, p.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn peer_ip_forms() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse_peer_ip("192.0.2.1"), Ok((v4, None)));
        assert_eq!(parse_peer_ip("192.0.2.1:1179"), Ok((v4, Some(1179))));
        assert_eq!(parse_peer_ip("2001:db8::1"), Ok((v6, None)));
        assert_eq!(parse_peer_ip("[2001:db8::1]:1179"), Ok((v6, Some(1179))));
        assert!(parse_peer_ip("192.0.2.1:0").unwrap_err().contains("port 0"));
        assert!(
            parse_peer_ip("192.0.2.300")
                .unwrap_err()
                .contains("expected an IP address")
        );
        assert!(
            parse_peer_ip("0.0.0.0")
                .unwrap_err()
                .contains("cannot be a BGP peer")
        );
        assert!(parse_peer_ip("tor-a").is_err());
    }

    #[test]
    fn names() {
        assert!(valid_name("node-1"));
        assert!(valid_name("a.b-c"));
        assert!(!valid_name("Node1"));
        assert!(!valid_name("-a"));
        assert!(!valid_name(""));
        assert!(valid_label_key("route-reflector"));
        assert!(valid_label_key("topology.kubernetes.io/zone"));
        assert!(!valid_label_key("a b"));
        assert!(!valid_label_key("/x"));
        assert!(valid_label_value(""));
        assert!(!valid_label_value("-x"));
    }

    #[test]
    fn a_minimal_peer_decodes_with_defaults() {
        let (r, p) = decode(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec:\n  peerIP: 192.0.2.1\n  asNumber: 65001\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let Some(Resource::BgpPeer(peer)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(peer.scope, PeerScope::Global);
        assert_eq!(peer.source_address, SourceAddress::UseNodeIP);
        assert_eq!(peer.reverse_peering, ReversePeering::Auto);
        assert!(matches!(
            peer.target,
            PeerTarget::Address {
                as_number: 65001,
                port: None,
                ..
            }
        ));
    }

    #[test]
    fn every_problem_of_a_document_is_reported() {
        let (r, p) = decode(
            "apiVersion: ginger.dev/v1\nkind: BGPPeer\nmetadata: {name: tor}\nspec:\n  peerIP: nope\n  asNumber: abc\n  holdTime: 2s\n  nextHopMode: self\n",
        );
        assert!(r.is_none());
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(
            p[0].starts_with("document 1 (BGPPeer \"tor\"): spec.peerIP: expected an IP address")
        );
        assert!(
            p[1].contains(
                "spec.asNumber: expected an AS number (1-4294967295), got \"abc\" (line 6)"
            )
        );
        assert!(p[2].contains("spec.holdTime: 2s is not allowed"));
        assert!(p[3].contains("spec.nextHopMode: expected one of Auto, Self, Keep, got \"self\"; did you mean \"Self\"?"));
    }

    #[test]
    fn ip_pool_defaults() {
        let (r, p) = decode(
            "apiVersion: ginger.dev/v1\nkind: IPPool\nmetadata: {name: v6}\nspec: {cidr: 'fd00:10::/48'}\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let Some(Resource::IpPool(pool)) = r else {
            panic!()
        };
        assert_eq!(pool.block_size, 122);
        assert_eq!(pool.node_selector, Selector::all());
        assert_eq!(
            pool.allowed_uses,
            vec![AllowedUse::Workload, AllowedUse::Tunnel]
        );
        assert!(!pool.disable_bgp_export);
    }
}
