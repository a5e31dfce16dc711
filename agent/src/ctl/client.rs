//! The client side of the control socket, used by `gingerctl` (and tests): connect, send one
//! request line, read one response line, all under one deadline.
//!
//! Owns: turning socket failures into errors a user understands (agent not running, must be
//! root, no answer in time). Must not: format output (`render` does) or exit the process.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::timeout;

use super::protocol::{AgentError, ProtocolError, Reply, Request};
use super::protocol::{decode_response, encode_request};

/// Default time `gingerctl` waits for the whole exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response line accepted (a Loc-RIB of a million paths fits).
pub const MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket, or nobody listening on it (calicoctl's wording).
    #[error("Ginger process is not running.")]
    NotRunning {
        /// The socket tried.
        socket: PathBuf,
    },
    /// The socket exists but this user may not open it.
    #[error(
        "permission denied on the agent socket {socket}: gingerctl must run as root (try sudo)"
    )]
    PermissionDenied {
        /// The socket tried.
        socket: PathBuf,
    },
    /// The agent took too long.
    #[error("the agent did not answer within {} s (socket {socket})", .after.as_secs_f64())]
    Timeout {
        /// The socket tried.
        socket: PathBuf,
        /// The deadline that passed.
        after: Duration,
    },
    /// Any other socket failure.
    #[error("talking to the agent on {socket}: {source}")]
    Io {
        /// The socket tried.
        socket: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The agent closed the connection without answering.
    #[error("the agent closed the connection without answering (socket {socket})")]
    NoAnswer {
        /// The socket tried.
        socket: PathBuf,
    },
    /// The answer could not be decoded.
    #[error("{0}; gingerctl and ginger-node versions may differ")]
    Protocol(#[from] ProtocolError),
    /// The agent refused the request.
    #[error("the agent refused the request: {0}")]
    Refused(#[from] AgentError),
}

impl ClientError {
    /// Map a socket error on `socket` to what it means for the user.
    pub fn from_io(socket: &Path, source: io::Error) -> ClientError {
        let socket = socket.to_path_buf();
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning { socket }
            }
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { socket },
            _ => ClientError::Io { socket, source },
        }
    }
}

/// Send `request` to the agent on `socket` and return its reply, all within `deadline`.
pub async fn request(
    socket: &Path,
    request: &Request,
    deadline: Duration,
) -> Result<Reply, ClientError> {
    match timeout(deadline, exchange(socket, request)).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::Timeout {
            socket: socket.to_path_buf(),
            after: deadline,
        }),
    }
}

async fn exchange(socket: &Path, request: &Request) -> Result<Reply, ClientError> {
    let io_err = |e| ClientError::from_io(socket, e);
    let stream = UnixStream::connect(socket).await.map_err(io_err)?;
    let (read, mut write) = stream.into_split();
    // An agent that refuses the connection (Busy) answers and closes before reading: the
    // write then fails, but its answer is waiting to be read and says more.
    let written = write.write_all(&encode_request(request)).await;
    let mut line = Vec::new();
    let read = BufReader::new(read)
        .take(MAX_RESPONSE_BYTES)
        .read_until(b'\n', &mut line)
        .await;
    if line.is_empty() {
        written.map_err(io_err)?;
        read.map_err(io_err)?;
        return Err(ClientError::NoAnswer {
            socket: socket.to_path_buf(),
        });
    }
    Ok(decode_response(&line)??)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_errors_say_what_to_do() {
        let socket = Path::new("/var/run/ginger/ginger.sock");
        let e = ClientError::from_io(socket, io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(e.to_string(), "Ginger process is not running.");
        let e = ClientError::from_io(socket, io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!(e.to_string(), "Ginger process is not running.");
        let e = ClientError::from_io(socket, io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(
            e.to_string(),
            "permission denied on the agent socket /var/run/ginger/ginger.sock: \
             gingerctl must run as root (try sudo)"
        );
        assert!(!e.to_string().contains("os error"));
        let e = ClientError::Timeout {
            socket: socket.into(),
            after: Duration::from_secs(10),
        };
        assert_eq!(
            e.to_string(),
            "the agent did not answer within 10 s (socket /var/run/ginger/ginger.sock)"
        );
    }
}
