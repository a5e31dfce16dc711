//! Per-test scratch directories that survive a failure, and the `scenario` runner.
//!
//! Owns: `TestDir` (a temp dir removed when the test passes, kept and printed when it fails, or
//! always kept with `GNG_KEEP=1`) and `scenario(label, body)` which turns a body's `Err` into a
//! panic while the directory is still alive, so daemon logs are kept for the developer.
//! Must not: hold namespaces or processes (the body's guards are dropped before the verdict).

use std::env;
use std::path::{Path, PathBuf};
use std::thread;

use crate::error::{Error, Result};

/// Environment variable that keeps every test directory, passed or failed.
pub const KEEP_ENV: &str = "GNG_KEEP";

/// A scratch directory for one test's configs, sockets and logs.
#[derive(Debug)]
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    keep: bool,
}

impl TestDir {
    /// A new directory `gng-<label>-XXXXXX` under the system temp dir, mode 0755.
    pub fn new(label: &str) -> Result<TestDir> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("gng-{label}-"))
            .tempdir()
            .map_err(|e| Error::io(format!("creating a temp dir for {label}"), e))?;
        let path = dir.path().to_path_buf();
        // Daemons that drop privileges must be able to reach their subdirectories.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
        Ok(TestDir {
            dir: Some(dir),
            path,
            keep: env::var_os(KEEP_ENV).is_some_and(|v| v != "0"),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Create (if needed) and return a subdirectory, world-writable so daemons that drop
    /// privileges (FRR's zebra runs as `frr`) can create their sockets in it.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path.join(name);
        std::fs::create_dir_all(&p)
            .map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| Error::io(format!("chmod {}", p.display()), e))?;
        Ok(p)
    }

    /// Keep the directory after the test whatever its outcome.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !(self.keep || thread::panicking()) {
            return;
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.keep();
            eprintln!("e2e: test files kept in {}", path.display());
        }
    }
}

/// Run a test body with a fresh `TestDir`. An `Err` from the body fails the test (a panic with
/// the error chain) while the directory still exists, so it is kept with the daemons' logs;
/// the body's own guards (namespaces, daemons) have been dropped by then.
#[track_caller]
pub fn scenario<F>(label: &str, body: F)
where
    F: FnOnce(&TestDir) -> Result<()>,
{
    let dir = match TestDir::new(label) {
        Ok(d) => d,
        Err(e) => panic!("{label}: {}", e.chain()),
    };
    if let Err(e) = body(&dir) {
        panic!(
            "{label} failed: {}\n(logs in {})",
            e.chain(),
            dir.path().display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_when_the_test_passes() {
        let d = TestDir::new("pass").unwrap();
        let p = d.path().to_path_buf();
        std::fs::write(d.join("x.log"), "x").unwrap();
        drop(d);
        if env::var_os(KEEP_ENV).is_none() {
            assert!(!p.exists());
        }
    }

    #[test]
    fn kept_when_the_body_fails() {
        let seen = std::sync::Mutex::new(None);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scenario("fail", |dir| {
                std::fs::write(dir.join("daemon.log"), "why it failed").unwrap();
                *seen.lock().unwrap() = Some(dir.path().to_path_buf());
                Err(Error::Unsupported {
                    daemon: "bird",
                    what: "this".into(),
                })
            })
        }));
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        let path = seen.lock().unwrap().take().unwrap();
        assert!(msg.contains("bird does not support this"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert_eq!(
            std::fs::read_to_string(path.join("daemon.log")).unwrap(),
            "why it failed"
        );
        std::fs::remove_dir_all(path).unwrap();
    }
}
