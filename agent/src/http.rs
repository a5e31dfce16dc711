//! A small HTTP/1.1 responder for probes and scrapes: GET only, one request per connection
//! (`Connection: close`), bounded request size, time and connection count.
//!
//! Owns: the TCP accept loop, request-line parsing, status lines and broadcast-and-drain
//! shutdown. Must not: know what a path means; `HttpHandler`s (health, metrics) answer paths,
//! and a pair of handlers serves both on one listener. Requests enter on a `TcpListener`;
//! responses leave on the same connection, which is then closed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, warn};

/// Default address of `/liveness` and `/readiness` (Felix's health port).
pub const DEFAULT_HEALTH_ADDR: &str = "127.0.0.1:9099";
/// Default address of `/metrics` (Felix's Prometheus port).
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9091";
/// Content type of plain-text answers.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// One answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> HttpResponse {
        HttpResponse {
            status,
            content_type: TEXT_PLAIN,
            body: body.into().into_bytes(),
        }
    }
}

/// Answers GET requests for the paths it knows.
pub trait HttpHandler: Send + Sync + 'static {
    /// The answer for `path` (query string removed), or `None` if this handler does not serve
    /// it (the server answers 404).
    fn get(&self, path: &str) -> impl Future<Output = Option<HttpResponse>> + Send;
}

/// Two handlers on one listener: the first that knows the path answers.
impl<A: HttpHandler, B: HttpHandler> HttpHandler for (A, B) {
    async fn get(&self, path: &str) -> Option<HttpResponse> {
        match self.0.get(path).await {
            Some(response) => Some(response),
            None => self.1.get(path).await,
        }
    }
}

/// Limits that keep probes and scrapers from holding the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; more get 503 straight away.
    pub max_connections: usize,
    /// Time allowed to receive the request head.
    pub read_timeout: Duration,
    /// Time allowed to compute and write the answer.
    pub answer_timeout: Duration,
    /// Largest accepted request head (request line and headers), bytes.
    pub max_request_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 32,
            read_timeout: Duration::from_secs(5),
            answer_timeout: Duration::from_secs(20),
            max_request_bytes: 8 * 1024,
        }
    }
}

/// Serve `handler` on `listener` until `shutdown` completes, then finish in-flight requests.
pub async fn serve<H: HttpHandler>(listener: TcpListener, handler: Arc<H>, shutdown: impl Future) {
    serve_with(listener, handler, shutdown, HttpLimits::default()).await
}

/// `serve` with explicit limits.
pub async fn serve_with<H: HttpHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future,
    limits: HttpLimits,
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
                        let busy = HttpResponse::text(503, "too many connections\n");
                        let _ = stream.try_write(&encode_response(&busy));
                        continue;
                    };
                    let handler = handler.clone();
                    let stop = stop.subscribe();
                    connections.spawn(async move {
                        serve_connection(stream, handler.as_ref(), stop, limits).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    let _ = stop.send(());
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<H: HttpHandler>(
    mut stream: TcpStream,
    handler: &H,
    mut stop: broadcast::Receiver<()>,
    limits: HttpLimits,
) {
    let mut head = Vec::new();
    let read = tokio::select! {
        _ = stop.recv() => return,
        r = timeout(limits.read_timeout, read_head(&mut stream, &mut head, limits.max_request_bytes)) => r,
    };
    let response = match read {
        Err(_) if head.is_empty() => return,
        Err(_) => HttpResponse::text(408, "request not received in time\n"),
        Ok(Err(e)) => {
            debug!(error = %e, "http: read failed");
            return;
        }
        Ok(Ok(HeadRead::Closed)) => return,
        Ok(Ok(HeadRead::TooLarge)) => HttpResponse::text(431, "request head too large\n"),
        Ok(Ok(HeadRead::Complete)) => match parse_request_line(&head) {
            Ok(path) => match timeout(limits.answer_timeout, handler.get(&path)).await {
                Ok(Some(response)) => response,
                Ok(None) => HttpResponse::text(404, "not found\n"),
                Err(_) => HttpResponse::text(503, "answer not ready in time\n"),
            },
            Err(response) => response,
        },
    };
    let bytes = encode_response(&response);
    if timeout(limits.answer_timeout, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await
    .is_err()
    {
        debug!("http: client did not take the answer in time");
    }
}

enum HeadRead {
    Complete,
    TooLarge,
    Closed,
}

/// Read until the blank line that ends the request head, or `max` bytes.
async fn read_head(
    stream: &mut TcpStream,
    head: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<HeadRead> {
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(HeadRead::Closed);
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(HeadRead::Complete);
        }
        if head.len() > max {
            return Ok(HeadRead::TooLarge);
        }
    }
}

/// The path of a `GET <path> HTTP/1.x` request, or the error answer.
fn parse_request_line(head: &[u8]) -> Result<String, HttpResponse> {
    let bad = |why: &str| HttpResponse::text(400, format!("bad request: {why}\n"));
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = std::str::from_utf8(&head[..line_end])
        .map_err(|_| bad("request line is not UTF-8"))?
        .trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("request line is not `METHOD TARGET VERSION`"));
    };
    if !version.starts_with("HTTP/") {
        return Err(bad("not an HTTP request"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpResponse::text(505, "only HTTP/1.0 and HTTP/1.1\n"));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("invalid method"));
    }
    if method != "GET" {
        return Err(HttpResponse::text(405, "only GET is allowed\n"));
    }
    if !target.starts_with('/') {
        return Err(bad("target must be a path"));
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Ok(path.to_string())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// The whole response: status line, headers and body.
fn encode_response(response: &HttpResponse) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    if response.status == 405 {
        head.push_str("Allow: GET\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&response.body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let ok = |head: &str| parse_request_line(head.as_bytes());
        assert_eq!(
            ok("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap(),
            "/metrics"
        );
        assert_eq!(
            ok("GET /readiness?verbose=1 HTTP/1.0\n\n").unwrap(),
            "/readiness"
        );
        let status = |head: &str| ok(head).unwrap_err().status;
        assert_eq!(status("POST /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(status("HEAD /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(status("GET /metrics HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status("GET /metrics\r\n\r\n"), 400);
        assert_eq!(status("GET  /metrics HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("get /metrics HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET metrics HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("\u{1}\u{2} garbage\r\n\r\n"), 400);
        assert_eq!(
            parse_request_line(b"GET /\xff HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn responses_close_the_connection_and_state_their_length() {
        let bytes = encode_response(&HttpResponse::text(405, "only GET\n"));
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 9\r\nConnection: close\r\nAllow: GET\r\n\r\nonly GET\n"
        );
    }
}
