//! Checks on `CNI_NETNS` before anything is built or torn down.
//!
//! Owns: telling whether the pod's namespace exists and whether it is the plugin's own
//! namespace (a runtime bug that would make DEL delete a node link; libcni's skel refuses it
//! with code 8 too). Reads file metadata only. Must not: enter or change any namespace.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use felix::netns::netns_path;

use crate::error::{CniError, ErrorCode};

/// What `CNI_NETNS` refers to.
#[derive(Debug, PartialEq, Eq)]
pub enum PodNetns {
    /// A namespace other than the plugin's.
    Exists,
    /// Nothing at that path.
    Missing,
}

fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    let (ma, mb) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

/// Classifies `CNI_NETNS`; the plugin's own namespace or an unreadable path is an error.
pub fn classify(netns: &str) -> Result<PodNetns, CniError> {
    let path = netns_path(netns);
    match std::fs::metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PodNetns::Missing),
        Err(e) => {
            return Err(CniError::new(
                ErrorCode::IoFailure,
                format!("cannot read network namespace {}", path.display()),
                e.to_string(),
            ));
        }
    }
    let own = same_file(&path, Path::new("/proc/self/ns/net")).map_err(|e| {
        CniError::new(
            ErrorCode::IoFailure,
            "cannot compare CNI_NETNS with the plugin's own network namespace",
            e.to_string(),
        )
    })?;
    if own {
        return Err(CniError::new(
            ErrorCode::InvalidNetns,
            "CNI_NETNS is the plugin's own network namespace",
            format!(
                "{} is where ginger runs (the node); a pod needs its own namespace",
                path.display()
            ),
        ));
    }
    Ok(PodNetns::Exists)
}

/// For ADD and CHECK: the namespace must exist (code 3 otherwise).
pub fn require(netns: &str) -> Result<(), CniError> {
    match classify(netns)? {
        PodNetns::Exists => Ok(()),
        PodNetns::Missing => Err(CniError::new(
            ErrorCode::UnknownContainer,
            format!("network namespace {netns} does not exist"),
            "the container is gone or CNI_NETNS is wrong",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_is_refused_and_missing_is_reported() {
        let e = classify("/proc/self/ns/net").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetns);
        assert_eq!(classify("/nonexistent/ns/path").unwrap(), PodNetns::Missing);
        assert_eq!(
            require("/nonexistent/ns/path").unwrap_err().code,
            ErrorCode::UnknownContainer
        );
    }
}
