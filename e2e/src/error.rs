//! The harness's one error type.
//!
//! Owns: `Error` and the `Result` alias every harness function returns. Each variant carries what
//! a developer needs to act on a failure (the command line, the namespace, the daemon, what was
//! awaited and the last value seen). Must not: print or panic; callers decide.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Result of every fallible harness call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Something in the lab did not go as asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program could not be started at all (missing binary, permissions).
    #[error("could not start `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why the kernel refused.
        #[source]
        source: io::Error,
    },
    /// A command ran and failed.
    #[error("`{cmd}` failed ({status}): {output}")]
    Command {
        /// The command line.
        cmd: String,
        /// Exit status, or "timed out after …".
        status: String,
        /// Its stderr (or stdout when stderr was empty), trimmed.
        output: String,
    },
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path or address.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A system call made through `nix` failed.
    #[error("{context}: {source}")]
    Sys {
        /// What was being done (namespace, pid, signal).
        context: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// `wait_until` gave up.
    #[error("timed out after {waited:.1?} waiting for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        waited: Duration,
        /// The last value (or error) the poll returned.
        last: String,
    },
    /// A daemon's output did not have the expected shape.
    #[error("cannot parse {what} from {tool}: {detail}")]
    Parse {
        /// The program whose output it was.
        tool: &'static str,
        /// What was being parsed.
        what: String,
        /// The offending text or reason.
        detail: String,
    },
    /// An address, prefix or name given to the harness is not valid.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What kind of value ("address", "interface name", …).
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A workspace binary the test needs was not built.
    #[error("binary `{name}` is not built (looked for {path}); run `cargo build --bins` first")]
    BinaryMissing {
        /// Binary name.
        name: String,
        /// Where it was expected.
        path: PathBuf,
    },
    /// A daemon was asked about a neighbour it was not configured with.
    #[error("{daemon} has no neighbour {peer} configured")]
    UnknownPeer {
        /// "bird", "frr" or "gobgp".
        daemon: &'static str,
        /// The address asked about.
        peer: IpAddr,
    },
    /// A daemon cannot do what its config asks.
    #[error("{daemon} does not support {what}")]
    Unsupported {
        /// "bird", "frr" or "gobgp".
        daemon: &'static str,
        /// The unsupported feature.
        what: String,
    },
    /// A daemon refused a runtime command.
    #[error("{daemon} rejected `{command}`: {output}")]
    Rejected {
        /// "bird", "frr" or "gobgp".
        daemon: &'static str,
        /// The command sent.
        command: String,
        /// What the daemon answered.
        output: String,
    },
    /// The raw BGP peer saw something it cannot frame, or the connection ended.
    #[error("raw BGP peer {peer}: {detail}")]
    RawPeer {
        /// Remote address of the connection.
        peer: String,
        /// What went wrong.
        detail: String,
    },
}

impl Error {
    /// An `Io` error with context.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A `Sys` error with context.
    pub(crate) fn sys(context: impl Into<String>, source: nix::Error) -> Error {
        Error::Sys {
            context: context.into(),
            source,
        }
    }

    /// A `Parse` error.
    pub(crate) fn parse(
        tool: &'static str,
        what: impl Into<String>,
        detail: impl Into<String>,
    ) -> Error {
        Error::Parse {
            tool,
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// This error and its sources, joined with ": " (what a failing test prints).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let text = s.to_string();
            if !out.ends_with(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            source = s.source();
        }
        out
    }
}
