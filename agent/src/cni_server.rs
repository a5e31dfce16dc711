//! The CNI socket server: `<run-dir>/cni.sock` (mode 0600), where the `ginger` plugin asks for
//! addresses and reports endpoints (`cni::protocol`: one JSON request line, one JSON reply line,
//! one exchange per connection).
//!
//! Owns: the socket (created with the control socket's rules: stale-file cleanup, refusal when
//! another agent answers), framing, version checks, per-connection limits and shutdown. Must
//! not: decide anything; a `CniHandler` (the `pod_network`) answers each request, on a blocking
//! thread because it does file I/O. Many connections are served at once; the handler
//! serialises what must be serialised.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cni::protocol::{Envelope, ErrorKind, MAX_LINE, PROTOCOL_VERSION, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinSet;
use tokio::time::timeout;

pub use crate::ctl::server::BindError;

/// Answers CNI socket requests; called on a blocking thread.
pub trait CniHandler: Send + Sync + 'static {
    /// The reply to one request.
    fn handle(&self, request: Request) -> Reply;
}

/// Limits that keep a misbehaving client from holding the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CniLimits {
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// How long a client may take to send its request line.
    pub read_timeout: Duration,
    /// How long writing the reply may take.
    pub write_timeout: Duration,
}

impl Default for CniLimits {
    fn default() -> Self {
        CniLimits {
            max_connections: 512,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// The CNI socket path inside `run_dir`.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(cni::protocol::SOCKET_NAME)
}

/// Create the socket at `path`, mode 0600 (see `ctl::server::bind`).
pub fn bind(path: &Path) -> Result<UnixListener, BindError> {
    crate::ctl::server::bind(path)
}

/// Serve `handler` on `listener` until `shutdown` completes, then let requests in flight
/// finish and return.
pub async fn serve<H: CniHandler>(listener: UnixListener, handler: Arc<H>, shutdown: impl Future) {
    serve_with(listener, handler, shutdown, CniLimits::default()).await
}

/// `serve` with explicit limits.
pub async fn serve_with<H: CniHandler>(
    listener: UnixListener,
    handler: Arc<H>,
    shutdown: impl Future,
    limits: CniLimits,
) {
    let (stop, _) = broadcast::channel::<()>(1);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // Wait for a free slot first: excess clients queue in the kernel's backlog.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    let stop = stop.subscribe();
                    connections.spawn(async move {
                        serve_connection(stream, handler, stop, limits).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "CNI socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    let _ = stop.send(());
    while connections.join_next().await.is_some() {}
}

fn refusal(kind: ErrorKind, message: impl Into<String>) -> Reply {
    Reply::Error {
        kind,
        message: message.into(),
    }
}

/// The request on a line, or the reply refusing it.
pub fn decode(line: &[u8]) -> Result<Request, Reply> {
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| refusal(ErrorKind::Invalid, format!("malformed request: {e}")))?;
    // Check the version before the shape, so a newer plugin hears what is wrong.
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(refusal(
                ErrorKind::UnsupportedVersion,
                format!(
                    "this ginger-node speaks CNI socket protocol version {PROTOCOL_VERSION}, the \
                     plugin sent version {v}; install the plugin that ships with this agent"
                ),
            ));
        }
        None => {
            return Err(refusal(
                ErrorKind::Invalid,
                "malformed request: no numeric \"version\" field",
            ));
        }
    }
    serde_json::from_value::<Envelope>(value)
        .map(|e| e.request)
        .map_err(|e| refusal(ErrorKind::Invalid, format!("malformed request: {e}")))
}

async fn read_request(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    (&mut *reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    Ok(line)
}

async fn serve_connection<H: CniHandler>(
    stream: UnixStream,
    handler: Arc<H>,
    mut stop: broadcast::Receiver<()>,
    limits: CniLimits,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let read = tokio::select! {
        _ = stop.recv() => return,
        r = timeout(limits.read_timeout, read_request(&mut reader)) => r,
    };
    let reply = match read {
        Err(_) => refusal(
            ErrorKind::Invalid,
            format!(
                "no complete request within {} s",
                limits.read_timeout.as_secs()
            ),
        ),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "CNI socket: read failed");
            return;
        }
        Ok(Ok(line)) if line.is_empty() => return,
        Ok(Ok(line)) if line.len() > MAX_LINE => refusal(
            ErrorKind::Invalid,
            format!("request longer than {MAX_LINE} bytes"),
        ),
        Ok(Ok(line)) => match decode(&line) {
            Err(reply) => reply,
            Ok(request) => {
                let handler = handler.clone();
                match tokio::task::spawn_blocking(move || handler.handle(request)).await {
                    Ok(reply) => reply,
                    Err(e) => refusal(ErrorKind::Internal, format!("the request failed: {e}")),
                }
            }
        },
    };
    if let Reply::Error { kind, message } = &reply {
        tracing::debug!(kind = ?kind, message = %message, "CNI socket: request refused");
    }
    let mut bytes = serde_json::to_vec(&reply).unwrap_or_else(|e| {
        format!(r#"{{"Error":{{"kind":"Internal","message":"encoding failed: {e}"}}}}"#)
            .into_bytes()
    });
    bytes.push(b'\n');
    let _ = timeout(limits.write_timeout, write.write_all(&bytes)).await;
}
