//! The agent's view of the cluster: Nodes, BGPPeers, BGPConfigurations and IPPools, validated
//! into one immutable `ClusterConfig`.
//!
//! Owns: `ClusterConfig` (the validated resources and Calico's rules for effective values: global
//! vs per-node settings, defaults), `ConfigError`/`Problem` (every message names the file, the
//! document and the field), and the submodules that get there — `file` (read the multi-document
//! YAML), `tree` (a document as a line-numbered tree), `decode` (one document into a typed
//! resource), `validate` (rules across documents), `duration` (Go durations), `model` (the
//! types). Must not: compute a node's BGP sessions (that is `crate::desired`) or talk to
//! Kubernetes. Data enters as YAML text (`parse`, `load`) and leaves as a `ClusterConfig`.

pub mod decode;
pub mod duration;
pub mod file;
pub mod model;
pub mod tree;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use bgp::config::DEFAULT_PORT;
use bgp::types::Asn;

pub use file::{load, parse};
use model::{BgpConfiguration, BgpPeer, BindMode, IpPool, Node, PrefixAdvertisement};

use crate::selector::Selector;

/// Which document of the file a problem is in: its 1-based index among the non-empty documents,
/// and its kind and name once they could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocRef {
    /// 1-based position among the file's non-empty documents.
    pub index: usize,
    /// `kind`, if readable.
    pub kind: Option<String>,
    /// `metadata.name`, if readable.
    pub name: Option<String>,
}

impl fmt::Display for DocRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.index)?;
        match (&self.kind, &self.name) {
            (Some(k), Some(n)) => write!(f, " ({k} {n:?})"),
            (Some(k), None) => write!(f, " ({k})"),
            (None, Some(n)) => write!(f, " ({n:?})"),
            (None, None) => Ok(()),
        }
    }
}

/// One thing wrong with the cluster file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The document, when the problem is inside one.
    pub document: Option<DocRef>,
    /// The field path (`spec.asNumber`, `spec.communities[2].value`).
    pub field: Option<String>,
    /// What was expected and what was found.
    pub message: String,
    /// The 1-based line in the file, when known.
    pub line: Option<u32>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.document {
            write!(f, "{d}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Why a cluster file (or a node's view of it) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the cluster file: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// The text is not YAML.
    #[error("{file}: not valid YAML: {message}")]
    Yaml {
        /// The file name used in messages.
        file: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The YAML holds invalid resources; every problem found, one per line.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        /// The file name used in messages.
        file: String,
        /// Every problem, in file order.
        problems: Vec<Problem>,
    },
    /// The node asked for cannot run BGP with this configuration.
    #[error("{file}: Node {node:?}: {message}")]
    Node {
        /// The file name used in messages.
        file: String,
        /// The node's name.
        node: String,
        /// What is missing.
        message: String,
    },
}

impl ConfigError {
    /// The individual problems (one for the single-problem variants).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { file, problems } => {
                problems.iter().map(|p| format!("{file}: {p}")).collect()
            }
            other => vec![other.to_string()],
        }
    }
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{file}: {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The validated, immutable cluster configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    source: String,
    global: Option<BgpConfiguration>,
    per_node: BTreeMap<String, BgpConfiguration>,
    nodes: BTreeMap<String, Node>,
    peers: BTreeMap<String, BgpPeer>,
    pools: BTreeMap<String, IpPool>,
    warnings: Vec<Problem>,
}

impl ClusterConfig {
    /// The file name this configuration was read from (used in messages).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `default` BGPConfiguration, if the file has one.
    pub fn global_bgp(&self) -> Option<&BgpConfiguration> {
        self.global.as_ref()
    }

    /// The `node.<name>` BGPConfiguration of a node, if any.
    pub fn node_bgp(&self, node: &str) -> Option<&BgpConfiguration> {
        self.per_node.get(node)
    }

    /// Every BGPConfiguration, the global one first.
    pub fn bgp_configurations(&self) -> impl Iterator<Item = &BgpConfiguration> {
        self.global.iter().chain(self.per_node.values())
    }

    /// Nodes by name.
    pub fn nodes(&self) -> &BTreeMap<String, Node> {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// BGPPeers by name.
    pub fn bgp_peers(&self) -> &BTreeMap<String, BgpPeer> {
        &self.peers
    }

    /// IPPools by name.
    pub fn ip_pools(&self) -> &BTreeMap<String, IpPool> {
        &self.pools
    }

    /// Things that are valid but probably not meant (a BGPPeer for a node that does not exist).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// The cluster's AS number (`default` BGPConfiguration's `asNumber`, else 64512).
    pub fn as_number(&self) -> Asn {
        self.global
            .as_ref()
            .and_then(|g| g.as_number)
            .unwrap_or(model::DEFAULT_AS_NUMBER)
    }

    /// A node's AS: its own `asNumber`, else the cluster's.
    pub fn node_as_number(&self, node: &Node) -> Asn {
        node.as_number().unwrap_or_else(|| self.as_number())
    }

    /// Whether the node-to-node mesh is on (default true).
    pub fn mesh_enabled(&self) -> bool {
        self.global
            .as_ref()
            .and_then(|g| g.node_to_node_mesh_enabled)
            .unwrap_or(true)
    }

    /// `nodeMeshMaxRestartTime` in seconds, if set.
    pub fn mesh_restart_time(&self) -> Option<u16> {
        self.global.as_ref()?.node_mesh_max_restart_time
    }

    /// `bindMode` (global only, as in confd).
    pub fn bind_mode(&self) -> BindMode {
        self.global
            .as_ref()
            .and_then(|g| g.bind_mode)
            .unwrap_or_default()
    }

    /// The port a node listens on: its `node.<name>` `listenPort`, else the global one, else 179.
    pub fn listen_port(&self, node: &str) -> u16 {
        self.per_node
            .get(node)
            .and_then(|c| c.listen_port)
            .or_else(|| self.global.as_ref().and_then(|g| g.listen_port))
            .unwrap_or(DEFAULT_PORT)
    }

    /// The prefix advertisements that apply on a node: its `node.<name>` list if that sets one,
    /// else the global list (confd reads the node key first, then the global one).
    pub fn prefix_advertisements(&self, node: &str) -> &[PrefixAdvertisement] {
        self.per_node
            .get(node)
            .and_then(|c| c.prefix_advertisements.as_deref())
            .or_else(|| {
                self.global
                    .as_ref()
                    .and_then(|g| g.prefix_advertisements.as_deref())
            })
            .unwrap_or(&[])
    }

    /// Nodes whose labels match `selector`, by name.
    pub fn nodes_matching<'a>(&'a self, selector: &'a Selector) -> impl Iterator<Item = &'a Node> {
        self.nodes
            .values()
            .filter(move |n| selector.matches(n.labels()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_display_names_document_field_and_line() {
        let p = Problem {
            document: Some(DocRef {
                index: 3,
                kind: Some("BGPPeer".into()),
                name: Some("tor-a".into()),
            }),
            field: Some("spec.asNumber".into()),
            message: "expected an AS number (1-4294967295), got \"abc\"".into(),
            line: Some(14),
        };
        let e = ConfigError::Invalid {
            file: "cluster.yaml".into(),
            problems: vec![p.clone(), p],
        };
        let text = e.to_string();
        assert_eq!(
            text.lines().next(),
            Some(
                "cluster.yaml: document 3 (BGPPeer \"tor-a\"): spec.asNumber: expected an AS \
                 number (1-4294967295), got \"abc\" (line 14)"
            )
        );
        assert_eq!(text.lines().count(), 2);
        assert_eq!(e.problems().len(), 2);
    }
}
