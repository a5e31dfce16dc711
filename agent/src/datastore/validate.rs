//! Rules across documents, and the assembly of the validated resources into a `ClusterConfig`.
//!
//! Owns: duplicate names per kind, duplicate node addresses, overlapping IP pools, a second
//! global BGPConfiguration, and the warnings for references to nodes the file does not define.
//! Must not: look inside one document's fields beyond what these rules need (that is `decode`).
//! Validated resources enter with their document; a `ClusterConfig` or every problem leaves.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::model::{ConfigScope, PeerScope, Resource};
use super::{ClusterConfig, ConfigError, DocRef, Problem};

/// Build the configuration from every valid document; `problems` are those already found
/// inside documents. Fails with all problems, in document order, if there is any.
pub(crate) fn assemble(
    source: &str,
    resources: Vec<(DocRef, Resource)>,
    mut problems: Vec<Problem>,
) -> Result<ClusterConfig, ConfigError> {
    let mut config = ClusterConfig {
        source: source.to_string(),
        global: None,
        per_node: BTreeMap::new(),
        nodes: BTreeMap::new(),
        peers: BTreeMap::new(),
        pools: BTreeMap::new(),
        warnings: Vec::new(),
    };
    // First document of each (kind, name), to name it when a later one repeats it.
    let mut first: BTreeMap<(&'static str, String), DocRef> = BTreeMap::new();
    let mut node_addresses: BTreeMap<IpAddr, (String, DocRef)> = BTreeMap::new();
    let mut pools_seen: Vec<(ipnet::IpNet, String, DocRef)> = Vec::new();
    let problem = |doc: &DocRef, field: &str, message: String| Problem {
        document: Some(doc.clone()),
        field: Some(field.to_string()),
        message,
        line: None,
    };

    for (doc, resource) in resources {
        let kind = resource.kind().name();
        let name = resource.name().to_string();
        if let Some(earlier) = first.get(&(kind, name.clone())) {
            problems.push(problem(
                &doc,
                "metadata.name",
                format!("{kind} {name:?} is already defined in {earlier}"),
            ));
            continue;
        }
        first.insert((kind, name.clone()), doc.clone());
        match resource {
            Resource::BgpConfiguration(c) => match &c.scope {
                ConfigScope::Global => config.global = Some(c),
                ConfigScope::Node(node) => {
                    config.per_node.insert(node.clone(), c);
                }
            },
            Resource::Node(n) => {
                for addr in n.addresses() {
                    if let Some((other, other_doc)) = node_addresses.get(&addr) {
                        problems.push(problem(
                            &doc,
                            if addr.is_ipv4() {
                                "spec.bgp.ipv4Address"
                            } else {
                                "spec.bgp.ipv6Address"
                            },
                            format!(
                                "{addr} is already the address of Node {other:?} ({other_doc})"
                            ),
                        ));
                    } else {
                        node_addresses.insert(addr, (name.clone(), doc.clone()));
                    }
                }
                config.nodes.insert(name, n);
            }
            Resource::BgpPeer(p) => {
                config.peers.insert(name, p);
            }
            Resource::IpPool(pool) => {
                // Calico refuses overlapping pools: a block could belong to either.
                for (other, other_name, other_doc) in &pools_seen {
                    if other.contains(&pool.cidr) || pool.cidr.contains(other) {
                        problems.push(problem(
                            &doc,
                            "spec.cidr",
                            format!(
                                "{} overlaps IPPool {other_name:?} ({other}, {other_doc})",
                                pool.cidr
                            ),
                        ));
                    }
                }
                pools_seen.push((pool.cidr, name.clone(), doc.clone()));
                config.pools.insert(name, pool);
            }
        }
    }

    // References to nodes the file does not define are legal (nodes come and go) but usually a
    // typo in a static file: warn.
    for c in config.per_node.values() {
        if let ConfigScope::Node(node) = &c.scope
            && !config.nodes.contains_key(node)
        {
            config.warnings.push(Problem {
                document: first
                    .get(&("BGPConfiguration", c.metadata.name.clone()))
                    .cloned(),
                field: Some("metadata.name".into()),
                message: format!(
                    "there is no Node {node:?}; this configuration applies to no node"
                ),
                line: None,
            });
        }
    }
    for p in config.peers.values() {
        if let PeerScope::Node(node) = &p.scope
            && !config.nodes.contains_key(node)
        {
            config.warnings.push(Problem {
                document: first.get(&("BGPPeer", p.metadata.name.clone())).cloned(),
                field: Some("spec.node".into()),
                message: format!("there is no Node {node:?}; this peering applies to no node"),
                line: None,
            });
        }
    }

    if problems.is_empty() {
        Ok(config)
    } else {
        problems.sort_by_key(|p| p.document.as_ref().map_or(0, |d| d.index));
        Err(ConfigError::Invalid {
            file: source.to_string(),
            problems,
        })
    }
}
