//! The plugin's side of the agent socket: one request, one reply, one connection.
//!
//! Owns: connecting to `<run_dir>/cni.sock` with a deadline, framing through `protocol`, and
//! turning transport failures into `AgentError` (unreachable, timed out, garbled). Must not:
//! interpret replies — the plugin maps them to CNI results and errors.

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{CniError, ErrorCode};
use crate::protocol::{self, Envelope, FrameError, PROTOCOL_VERSION, Reply, Request};

/// Talking to ginger-node failed before a reply arrived.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Nothing listens on the socket (absent file, refused connection, no permission).
    #[error("cannot reach ginger-node at {socket}: {source}")]
    Unreachable {
        socket: PathBuf,
        source: std::io::Error,
    },
    /// The agent accepted but did not answer within the deadline.
    #[error("ginger-node at {socket} did not answer within {timeout:?}")]
    TimedOut { socket: PathBuf, timeout: Duration },
    /// The connection broke or carried something that is not a reply.
    #[error("bad exchange with ginger-node at {socket}: {source}")]
    Exchange { socket: PathBuf, source: FrameError },
}

impl AgentError {
    /// The CNI error for this failure: transient ones are code 11 so the runtime retries.
    pub fn to_cni(&self) -> CniError {
        match self {
            AgentError::Unreachable { .. } | AgentError::TimedOut { .. } => CniError::new(
                ErrorCode::TryAgainLater,
                format!("{self}: is ginger-node running?"),
                "",
            ),
            AgentError::Exchange {
                source: FrameError::Malformed(_),
                ..
            } => CniError::new(
                ErrorCode::AgentProtocol,
                self.to_string(),
                "the plugin and ginger-node may be different versions; install matching versions",
            ),
            AgentError::Exchange { .. } => CniError::new(
                ErrorCode::TryAgainLater,
                format!("{self}: did ginger-node restart?"),
                "",
            ),
        }
    }
}

/// A client for ginger-node's CNI socket.
#[derive(Clone, Debug)]
pub struct AgentClient {
    socket: PathBuf,
    timeout: Duration,
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

impl AgentClient {
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> Self {
        AgentClient {
            socket: socket.into(),
            timeout,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `request` on a fresh connection and returns the agent's reply.
    pub fn call(&self, request: Request) -> Result<Reply, AgentError> {
        let unreachable = |source| AgentError::Unreachable {
            socket: self.socket.clone(),
            source,
        };
        let stream = UnixStream::connect(&self.socket).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .map_err(unreachable)?;
        let classify = |source: FrameError| match &source {
            FrameError::Io(e) if is_timeout(e) => AgentError::TimedOut {
                socket: self.socket.clone(),
                timeout: self.timeout,
            },
            _ => AgentError::Exchange {
                socket: self.socket.clone(),
                source,
            },
        };
        let envelope = Envelope {
            version: PROTOCOL_VERSION,
            request,
        };
        let mut writer = &stream;
        protocol::write_line(&mut writer, &envelope).map_err(classify)?;
        let mut reader = BufReader::new(&stream);
        protocol::read_line::<Reply>(&mut reader).map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, Write};
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn absent_socket_is_try_again_later() {
        let dir = tempfile::tempdir().unwrap();
        let client = AgentClient::new(dir.path().join("cni.sock"), Duration::from_secs(1));
        let err = client.call(Request::Status).unwrap_err();
        assert!(matches!(err, AgentError::Unreachable { .. }), "{err}");
        let cni = err.to_cni();
        assert_eq!(cni.code, ErrorCode::TryAgainLater);
        assert!(cni.msg.contains("is ginger-node running?"), "{}", cni.msg);
    }

    #[test]
    fn one_request_one_reply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cni.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = std::io::BufReader::new(&s);
            let env: Envelope = protocol::read_line(&mut r).unwrap();
            let mut w = &s;
            protocol::write_line(
                &mut w,
                &Reply::Status {
                    ready: false,
                    message: "loading".into(),
                },
            )
            .unwrap();
            env
        });
        let client = AgentClient::new(&path, Duration::from_secs(5));
        let reply = client.call(Request::Status).unwrap();
        assert_eq!(
            reply,
            Reply::Status {
                ready: false,
                message: "loading".into()
            }
        );
        let seen = server.join().unwrap();
        assert_eq!(seen.version, PROTOCOL_VERSION);
        assert_eq!(seen.request, Request::Status);
    }

    #[test]
    fn silent_agent_times_out_and_garbage_is_a_protocol_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cni.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            // First connection: read the request, never answer.
            let (silent, _) = listener.accept().unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&silent)
                .read_line(&mut line)
                .unwrap();
            // Second: answer garbage.
            let (s, _) = listener.accept().unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&s).read_line(&mut line).unwrap();
            (&s).write_all(b"hello\n").unwrap();
            drop(silent);
        });
        let client = AgentClient::new(&path, Duration::from_millis(200));
        let err = client.call(Request::Status).unwrap_err();
        assert!(matches!(err, AgentError::TimedOut { .. }), "{err}");
        assert_eq!(err.to_cni().code, ErrorCode::TryAgainLater);
        let err = client.call(Request::Status).unwrap_err();
        assert_eq!(err.to_cni().code, ErrorCode::AgentProtocol, "{err}");
        server.join().unwrap();
    }
}
