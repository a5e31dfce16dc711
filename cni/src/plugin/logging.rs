//! Where the plugin's logs go: stderr, or `log_file_path` (appended, rotated to `<path>.1` once
//! it exceeds `log_file_max_size` MiB). Never stdout, which carries only the result or error.
//!
//! Owns: installing the process's `tracing` subscriber once per invocation, at `log_level`.
//! felix's own events (e.g. an optional sysctl it could not set) land in the same log. Must not:
//! fail the invocation — if the file cannot be opened, logs go to stderr with a note.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::{LogLevel, NetConf};

fn filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    }
}

fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Opens the log file for appending, rotating it first when it is too big.
fn open_log(path: &Path, max_size_mb: u64) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() > max_size_mb.saturating_mul(1 << 20)
    {
        // Concurrent plugins may race here; losing a few lines beats growing without bound.
        let _ = std::fs::rename(path, rotated(path));
    }
    OpenOptions::new().create(true).append(true).open(path)
}

fn install(writer: BoxMakeWriter, level: LevelFilter) {
    // A second call in one process (unit tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false)
        .with_max_level(level)
        .try_init();
}

/// Logs to stderr at info (before the configuration could be read).
pub fn init_stderr() {
    install(BoxMakeWriter::new(io::stderr), LevelFilter::INFO);
}

/// Logs as the configuration says.
pub fn init(conf: &NetConf) {
    let level = filter(conf.log_level);
    let Some(path) = &conf.log_file_path else {
        install(BoxMakeWriter::new(io::stderr), level);
        return;
    };
    match open_log(path, conf.log_file_max_size_mb) {
        Ok(file) => install(BoxMakeWriter::new(Mutex::new(file)), level),
        Err(e) => {
            install(BoxMakeWriter::new(io::stderr), level);
            tracing::warn!(path = %path.display(), error = %e, "cannot open log_file_path; logging to stderr");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn big_log_files_are_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cni.log");
        let mut f = open_log(&path, 1).unwrap();
        f.write_all(&vec![b'x'; (1 << 20) + 1]).unwrap();
        drop(f);
        let mut f = open_log(&path, 1).unwrap();
        f.write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        assert_eq!(
            std::fs::metadata(rotated(&path)).unwrap().len(),
            (1 << 20) + 1
        );
        // Below the limit the file is appended to.
        let mut f = open_log(&path, 1).unwrap();
        f.write_all(b"more\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new\nmore\n");
    }
}
