//! The file datastore: a multi-document YAML file of Kubernetes-style resources (the embedded
//! default the lab uses, and what an operator without a Kubernetes API writes by hand).
//!
//! Owns: reading the file and splitting it into documents with serde-saphyr (strict YAML 1.2
//! booleans, duplicate keys refused, alias budgets on). Must not: interpret fields (that is
//! `decode`/`validate`). Text or a path enters; a `ClusterConfig` or a `ConfigError` naming the
//! file leaves.

use std::path::Path;

use super::tree::YamlNode;
use super::{ClusterConfig, ConfigError, DocRef, decode, validate};

/// Parse the text of a cluster file; `source` names it in messages (usually the path).
pub fn parse(text: &str, source: &str) -> Result<ClusterConfig, ConfigError> {
    let options = serde_saphyr::options! {
        // YAML 1.2: `yes`/`on` are strings, not booleans (a `nodeToNodeMeshEnabled: yes` is
        // refused rather than guessed).
        strict_booleans: true,
        // `0755`-style numbers stay strings instead of silently becoming octal or decimal.
        leading_zero_numbers_as_strings: true,
        with_snippet: false,
    };
    let documents: Vec<YamlNode> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| ConfigError::Yaml {
            file: source.to_string(),
            // The library's hint names its own option, which a cluster file cannot set.
            message: e
                .to_string()
                .replace(", set DuplicateKeyPolicy in Options if acceptable", ""),
        })?;
    let mut resources = Vec::new();
    let mut problems = Vec::new();
    for (i, node) in documents.iter().enumerate() {
        let (resource, found) = decode::document(node, i + 1);
        problems.extend(found);
        if let Some(r) = resource {
            let doc = DocRef {
                index: i + 1,
                kind: Some(r.kind().name().to_string()),
                name: Some(r.name().to_string()),
            };
            resources.push((doc, r));
        }
    }
    validate::assemble(source, resources, problems)
}

/// Read and parse a cluster file.
pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text, &path.display().to_string())
}
