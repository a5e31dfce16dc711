//! Finding the workspace's own binaries (`ginger-node`, `gingerctl`, `ginger`) from a test.
//!
//! Owns: `bin_path`, which looks next to the running test binary (`target/<profile>/deps/…`
//! → `target/<profile>/<name>`), so it follows `CARGO_TARGET_DIR` and the profile without
//! configuration. Must not: build anything (the test script builds `--bins` first).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The path of workspace binary `name`, or `Error::BinaryMissing` naming where it was expected.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let exe =
        std::env::current_exe().map_err(|e| Error::io("locating the running test binary", e))?;
    let path = profile_dir(&exe).join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::BinaryMissing {
            name: name.to_string(),
            path,
        })
    }
}

/// `target/<profile>` for an executable in it or in its `deps/` (or `examples/`) folder.
fn profile_dir(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("."));
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("deps") | Some("examples") => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_binaries_live_in_deps() {
        let p = profile_dir(Path::new("/w/target/debug/deps/harness-0123abcd"));
        assert_eq!(p, Path::new("/w/target/debug"));
        let p = profile_dir(Path::new("/w/target/debug/ginger-lab"));
        assert_eq!(p, Path::new("/w/target/debug"));
    }

    #[test]
    fn missing_binary_says_how_to_build_it() {
        let err = bin_path("no-such-ginger-binary").unwrap_err().to_string();
        assert!(err.contains("no-such-ginger-binary"), "{err}");
        assert!(err.contains("cargo build --bins"), "{err}");
    }
}
