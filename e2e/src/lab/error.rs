//! The lab's one error type.
//!
//! Owns: `LabError`, whose messages tell the operator what to do next (which flag is wrong,
//! that a lab is already up and `down` comes first, which node's agent died and where its log
//! is). Harness errors (commands, timeouts) are wrapped with what the lab was doing. Must not:
//! print; the binary decides.

use std::io;
use std::path::PathBuf;

/// Something `ginger-lab` could not do.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command-line value the lab cannot build.
    #[error("{flag}: {reason}")]
    Options {
        /// The flag at fault.
        flag: &'static str,
        /// Why.
        reason: String,
    },
    /// A lab with other options (or a half-built one) is in the lab directory.
    #[error("{0}")]
    Occupied(String),
    /// There is no lab in the directory.
    #[error("no lab in {}: run `ginger-lab up` first", .0.display())]
    NoLab(PathBuf),
    /// The directory is not a lab directory, or another `ginger-lab` holds it.
    #[error("{}: {reason}", dir.display())]
    Directory {
        /// The lab directory.
        dir: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A harness step (a command, a daemon, a wait) failed.
    #[error("{context}: {source}")]
    Step {
        /// What the lab was doing.
        context: String,
        /// The harness's error.
        #[source]
        source: crate::Error,
    },
    /// A process the lab started exited when it should run.
    #[error("{label} exited during start-up ({status}); its log {}:\n{tail}", log.display())]
    Exited {
        /// Which process (`ginger-node on node-1`).
        label: String,
        /// How it ended.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// The `ginger` CNI plugin (or a chained plugin) refused an ADD.
    #[error("CNI ADD of pod {pod} on {node} failed: {detail}")]
    Cni {
        /// The pod.
        pod: String,
        /// Its node.
        node: String,
        /// The plugin's error (code, message) or why it could not run.
        detail: String,
    },
    /// The lab did not reach a state in time.
    #[error("{0}")]
    NotConverged(String),
}

impl LabError {
    /// An `Io` error with context.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> LabError {
        LabError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wrap a harness error with what the lab was doing.
    pub(crate) fn step(context: impl Into<String>, source: crate::Error) -> LabError {
        LabError::Step {
            context: context.into(),
            source,
        }
    }
}

/// Result of every lab operation.
pub type LabResult<T> = std::result::Result<T, LabError>;
