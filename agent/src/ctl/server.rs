//! The control-socket server: binds `<run-dir>/ginger.sock` (mode 0600) and answers one JSON
//! line with one JSON line, on one task per connection.
//!
//! Owns: socket creation (stale-file cleanup, refusing to start when another agent answers),
//! the accept loop, connection and size limits, timeouts, the route matching rule, and
//! broadcast-and-drain shutdown. Must not: compute anything itself; answers come from
//! `AgentState` snapshots. Requests enter as lines on the socket; responses leave the same way.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bgp::status::RouteStatus;
use ipnet::IpNet;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, warn};

use super::AgentState;
use super::protocol::{AgentError, ErrorCode, Reply, Request, Response};
use super::protocol::{decode_request, encode_response};

/// Limits that keep a misbehaving client from holding the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; more are refused with `Busy`.
    pub max_connections: usize,
    /// How long a connection may take to send a complete request line (also the idle limit).
    pub read_timeout: Duration,
    /// How long the agent may take to compute one answer.
    pub answer_timeout: Duration,
    /// How long writing one response may take (a client that stops reading is dropped).
    pub write_timeout: Duration,
    /// Longest accepted request line, in bytes.
    pub max_request_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 16,
            read_timeout: Duration::from_secs(5),
            answer_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_request_bytes: 64 * 1024,
        }
    }
}

/// Why the control socket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live agent already answers on the socket.
    #[error("another ginger agent is already serving {path}; refusing to start a second one")]
    AlreadyRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// Something that is not a socket sits where the socket belongs.
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Creating, probing or binding the socket failed.
    #[error("cannot create the control socket {path}: {source}")]
    Io {
        /// The path involved (the socket or its directory).
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
}

/// Create the control socket at `path` with mode 0600, creating its directory if needed. A
/// stale socket file (nobody answers) is removed; a live one makes this fail. Must be called
/// within a tokio runtime. The file is left in place when the listener is dropped; the next
/// `bind` clears it.
pub fn bind(path: &Path) -> Result<UnixListener, BindError> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| BindError::Io { path: p, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(BindError::AlreadyRunning {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    debug!(path = %path.display(), "removing stale control socket");
                    std::fs::remove_file(path).map_err(io_err(path))?;
                }
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        Ok(_) => {
            return Err(BindError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    // Bind under a private name and rename into place, so the socket is never reachable
    // before its mode is 0600.
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ginger.sock".into());
    let staging = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let listener = std::os::unix::net::UnixListener::bind(&staging).map_err(io_err(&staging))?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(io_err(path)(e));
    }
    listener.set_nonblocking(true).map_err(io_err(path))?;
    UnixListener::from_std(listener).map_err(io_err(path))
}

/// Serve the control protocol on `listener` until `shutdown` completes, then stop accepting,
/// let in-flight requests finish, and return once every connection task has ended.
pub async fn serve<S: AgentState>(listener: UnixListener, state: Arc<S>, shutdown: impl Future) {
    serve_with(listener, state, shutdown, ServerLimits::default()).await
}

/// `serve` with explicit limits.
pub async fn serve_with<S: AgentState>(
    listener: UnixListener,
    state: Arc<S>,
    shutdown: impl Future,
    limits: ServerLimits,
) {
    let (stop, _) = broadcast::channel::<()>(1);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        refuse_busy(&stream, limits.max_connections);
                        continue;
                    };
                    let state = state.clone();
                    let stop = stop.subscribe();
                    connections.spawn(async move {
                        serve_connection(stream, state.as_ref(), stop, limits).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning on the error.
                    warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    debug!(
        connections = connections.len(),
        "control socket: shutting down"
    );
    let _ = stop.send(());
    while connections.join_next().await.is_some() {}
}

/// Answer a connection over the limit with `Busy` without waiting on it.
fn refuse_busy(stream: &UnixStream, max: usize) {
    let response: Response = Err(AgentError::new(
        ErrorCode::Busy,
        format!("the agent is already serving {max} control connections; try again"),
    ));
    // A fresh socket's send buffer takes this small line without blocking.
    let _ = stream.try_write(&encode_response(&response));
}

enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// Read one line of at most `max` bytes into `buf` (without its line ending).
async fn read_line_limited<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    (&mut *reader).take(limit).read_until(b'\n', buf).await?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(LineRead::Line);
    }
    if buf.len() > max {
        return Ok(LineRead::TooLong);
    }
    // End of stream: a last request without its newline still counts.
    Ok(if buf.is_empty() {
        LineRead::Eof
    } else {
        LineRead::Line
    })
}

async fn serve_connection<S: AgentState>(
    stream: UnixStream,
    state: &S,
    mut stop: broadcast::Receiver<()>,
    limits: ServerLimits,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let read = tokio::select! {
            _ = stop.recv() => return,
            r = timeout(limits.read_timeout, read_line_limited(&mut reader, &mut line, limits.max_request_bytes)) => r,
        };
        let (response, keep_open) = match read {
            Err(_) if line.is_empty() => return,
            Err(_) => (
                Err(AgentError::new(
                    ErrorCode::Timeout,
                    format!(
                        "no complete request line within {} s",
                        limits.read_timeout.as_secs_f64()
                    ),
                )),
                false,
            ),
            Ok(Err(e)) => {
                debug!(error = %e, "control socket: read failed");
                return;
            }
            Ok(Ok(LineRead::Eof)) => return,
            Ok(Ok(LineRead::TooLong)) => (
                Err(AgentError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "request line longer than {} bytes",
                        limits.max_request_bytes
                    ),
                )),
                false,
            ),
            Ok(Ok(LineRead::Line)) => (answer(state, &line, limits.answer_timeout).await, true),
        };
        if let Err(e) = &response {
            debug!(code = ?e.code, message = %e.message, "control socket: request refused");
        }
        let bytes = encode_response(&response);
        match timeout(limits.write_timeout, write.write_all(&bytes)).await {
            Ok(Ok(())) if keep_open => {}
            _ => return,
        }
    }
}

/// Decode one request line and compute its answer.
pub async fn answer<S: AgentState>(state: &S, line: &[u8], deadline: Duration) -> Response {
    let request = decode_request(line)?;
    debug!(request = request.kind(), "control socket: request");
    timeout(deadline, dispatch(state, request))
        .await
        .map_err(|_| {
            AgentError::new(
                ErrorCode::Timeout,
                format!(
                    "the agent could not compute the answer within {} s",
                    deadline.as_secs_f64()
                ),
            )
        })?
}

async fn dispatch<S: AgentState>(state: &S, request: Request) -> Response {
    let unavailable = |message: String| AgentError::new(ErrorCode::Unavailable, message);
    Ok(match request {
        Request::NodeStatus => Reply::NodeStatus(state.peers().await),
        Request::RouteShow { prefix } => {
            let mut routes = select_routes(prefix, state.routes(prefix).await);
            note_not_installed(&mut routes, &state.fib_not_installed());
            Reply::Routes(routes)
        }
        Request::GetBgpPeers => Reply::BgpPeers(state.bgp_peer_rows()),
        Request::GetNodes => Reply::Nodes(state.node_rows()),
        Request::IpamShow => Reply::Ipam(state.ipam_report().await.map_err(unavailable)?),
        Request::IpamShowIp { ip } => {
            Reply::IpamIp(state.ipam_lookup(ip).await.map_err(unavailable)?)
        }
        Request::GetEndpoints => Reply::Endpoints(state.endpoint_rows().map_err(unavailable)?),
        Request::RouteShowFib => Reply::Fib(state.fib().await.map_err(unavailable)?),
    })
}

/// A best path felix keeps out of the kernel carries the reason in `reason` (which for best
/// paths is otherwise empty): `route show` prints `best, not in the FIB: <reason>`.
pub fn note_not_installed(routes: &mut [RouteStatus], notes: &BTreeMap<IpNet, String>) {
    for r in routes.iter_mut() {
        if let Some(note) = notes.get(&r.prefix)
            && let Some(best) = r.paths.iter_mut().find(|p| p.best)
        {
            best.reason = Some(format!("not in the FIB: {note}"));
        }
    }
}

/// The `route show` matching rule, sorted by prefix: no filter gives every route; a full-length
/// prefix (an address: /32, /128) gives the longest prefix containing it, as a FIB lookup
/// would; any other prefix gives exactly that prefix (host bits ignored).
pub fn select_routes(query: Option<IpNet>, routes: Vec<RouteStatus>) -> Vec<RouteStatus> {
    let mut selected: Vec<RouteStatus> = match query {
        None => routes,
        Some(q) if q.prefix_len() == q.max_prefix_len() => {
            let addr = q.addr();
            let covering = routes.into_iter().filter(|r| r.prefix.contains(&addr));
            let mut best: Vec<RouteStatus> = Vec::new();
            for r in covering {
                match best.first().map(|b| b.prefix.prefix_len()) {
                    Some(len) if len > r.prefix.prefix_len() => {}
                    Some(len) if len == r.prefix.prefix_len() => best.push(r),
                    _ => best = vec![r],
                }
            }
            best
        }
        Some(q) => {
            let wanted = q.trunc();
            routes
                .into_iter()
                .filter(|r| r.prefix.trunc() == wanted)
                .collect()
        }
    };
    selected.sort_by_key(|r| r.prefix);
    selected
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(prefix: &str) -> RouteStatus {
        RouteStatus {
            prefix: prefix.parse().unwrap(),
            paths: Vec::new(),
        }
    }

    fn prefixes(routes: &[RouteStatus]) -> Vec<String> {
        routes.iter().map(|r| r.prefix.to_string()).collect()
    }

    fn table() -> Vec<RouteStatus> {
        vec![
            r("10.244.1.0/26"),
            r("0.0.0.0/0"),
            r("10.244.0.0/16"),
            r("fd00::/64"),
            r("10.244.1.7/32"),
        ]
    }

    #[test]
    fn no_filter_returns_everything_sorted() {
        assert_eq!(
            prefixes(&select_routes(None, table())),
            [
                "0.0.0.0/0",
                "10.244.0.0/16",
                "10.244.1.0/26",
                "10.244.1.7/32",
                "fd00::/64"
            ]
        );
    }

    #[test]
    fn an_address_finds_its_longest_prefix() {
        let q = |s: &str| Some(s.parse::<IpNet>().unwrap());
        assert_eq!(
            prefixes(&select_routes(q("10.244.1.9/32"), table())),
            ["10.244.1.0/26"]
        );
        assert_eq!(
            prefixes(&select_routes(q("10.244.1.7/32"), table())),
            ["10.244.1.7/32"]
        );
        assert_eq!(
            prefixes(&select_routes(q("10.244.9.9/32"), table())),
            ["10.244.0.0/16"]
        );
        assert_eq!(
            prefixes(&select_routes(q("192.0.2.1/32"), table())),
            ["0.0.0.0/0"]
        );
        assert_eq!(
            prefixes(&select_routes(q("fd00::5/128"), table())),
            ["fd00::/64"]
        );
        assert!(select_routes(q("fd01::5/128"), table()).is_empty());
    }

    #[test]
    fn a_prefix_matches_exactly() {
        let q = |s: &str| Some(s.parse::<IpNet>().unwrap());
        assert_eq!(
            prefixes(&select_routes(q("10.244.0.0/16"), table())),
            ["10.244.0.0/16"]
        );
        // Host bits are ignored, a shorter or longer prefix does not match.
        assert_eq!(
            prefixes(&select_routes(q("10.244.1.5/26"), table())),
            ["10.244.1.0/26"]
        );
        assert!(select_routes(q("10.244.1.0/25"), table()).is_empty());
    }
}
