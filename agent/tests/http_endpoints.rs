//! The HTTP responder with the health and metrics endpoints, over 127.0.0.1 on ephemeral
//! ports: probe answers, scrapes, and what bad or slow clients get.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agent::health::{HealthConfig, HealthEndpoints};
use agent::http::{self, HttpLimits};
use agent::metrics::{Metrics, MetricsEndpoint};
use bgp::status::SessionState;
use common::{TestState, peer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

struct Running {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        timeout(Duration::from_secs(5), self.task)
            .await
            .expect("http server drains in time")
            .unwrap();
    }
}

async fn start<H: http::HttpHandler>(handler: H, limits: HttpLimits) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(http::serve_with(
        listener,
        Arc::new(handler),
        async move {
            let _ = stopped.await;
        },
        limits,
    ));
    Running { addr, stop, task }
}

/// Health and metrics on one listener, the agent started `age` ago.
async fn start_both(state: TestState, age: Duration, limits: HttpLimits) -> Running {
    let state = Arc::new(state);
    let config = HealthConfig {
        status_deadline: Duration::from_millis(300),
        ..HealthConfig::new(SystemTime::now() - age)
    };
    let health = HealthEndpoints::new(state.clone(), config);
    let metrics = MetricsEndpoint::new(state, Arc::new(Metrics::new().unwrap()))
        .with_snapshot_deadline(Duration::from_millis(300));
    start((health, metrics), limits).await
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Send raw bytes and read the whole answer (the server closes the connection).
async fn send(addr: std::net::SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes))
        .await
        .expect("server closes the connection")
        .unwrap();
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Answer {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "Content-Length matches the body");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> Answer {
    send(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_follow_calicos_rules() {
    // Just started with one peer down: not ready, the down peer named.
    let server = start_both(TestState::new(), Duration::ZERO, HttpLimits::default()).await;
    let live = get(server.addr, "/liveness").await;
    assert_eq!((live.status, live.body.as_str()), (200, "live\n"));
    let ready = get(server.addr, "/readiness").await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.body,
        "ginger-node is not ready: BGP not established with 10.0.0.3\n"
    );
    server.shutdown().await;

    // An hour later one Established peer is enough.
    let server = start_both(
        TestState::new(),
        Duration::from_secs(3600),
        HttpLimits::default(),
    )
    .await;
    let ready = get(server.addr, "/readiness?verbose").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    server.shutdown().await;

    // Other components can hold readiness back.
    let mut state = TestState::new();
    state.peers = vec![peer("10.0.0.2", SessionState::Established, None)];
    state.not_ready = vec!["datastore not synced".into()];
    let server = start_both(state, Duration::ZERO, HttpLimits::default()).await;
    let ready = get(server.addr, "/readiness").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (503, "ginger-node is not ready: datastore not synced\n")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_speaker_fails_liveness() {
    let server = start_both(
        TestState::slow(Duration::from_secs(10)),
        Duration::from_secs(3600),
        HttpLimits::default(),
    )
    .await;
    let live = get(server.addr, "/liveness").await;
    assert_eq!(live.status, 503);
    assert_eq!(
        live.body,
        "ginger-node is not live: the BGP speaker did not answer a status query within 0.3 s\n"
    );
    let ready = get(server.addr, "/readiness").await;
    assert_eq!(ready.status, 503);
    // Metrics still answer, saying the speaker did not.
    let metrics = get(server.addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("\nginger_bgp_speaker_responsive 0\n"),
        "{}",
        metrics.body
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_from_a_fresh_snapshot() {
    let server = start_both(TestState::new(), Duration::ZERO, HttpLimits::default()).await;
    let metrics = get(server.addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .head
            .contains("Content-Type: text/plain; version=0.0.4"),
        "{}",
        metrics.head
    );
    for line in [
        "ginger_bgp_peer_established{address=\"10.0.0.2\",peer=\"Mesh_10_0_0_2\",type=\"mesh\"} 1",
        "ginger_bgp_peer_established{address=\"10.0.0.3\",peer=\"Mesh_10_0_0_3\",type=\"mesh\"} 0",
        "ginger_bgp_peer_updates_received_total{address=\"10.0.0.2\",peer=\"Mesh_10_0_0_2\",type=\"mesh\"} 9",
        "ginger_bgp_loc_rib_prefixes{family=\"ipv4\"} 2",
        "ginger_bgp_peers_configured 2",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "missing {line}\n{}",
            metrics.body
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_status_codes() {
    let limits = HttpLimits {
        read_timeout: Duration::from_millis(300),
        max_request_bytes: 1024,
        ..HttpLimits::default()
    };
    let server = start_both(TestState::new(), Duration::ZERO, limits).await;
    assert_eq!(get(server.addr, "/nope").await.status, 404);
    let post = send(
        server.addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(post.status, 405);
    assert!(post.head.contains("\r\nAllow: GET"), "{}", post.head);
    assert_eq!(send(server.addr, b"garbage\r\n\r\n").await.status, 400);
    assert_eq!(
        send(server.addr, b"GET /metrics HTTP/2.0\r\n\r\n")
            .await
            .status,
        505
    );
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(4096)
    );
    assert_eq!(send(server.addr, huge.as_bytes()).await.status, 431);
    // A request head that never ends.
    assert_eq!(
        send(server.addr, b"GET /liveness HTTP/1.1\r\n")
            .await
            .status,
        408
    );
    // A connection that sends nothing is closed without an answer.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut bytes = Vec::new();
    timeout(Duration::from_secs(5), silent.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    assert!(bytes.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_listeners_serve_only_their_paths_and_limit_connections() {
    let state = Arc::new(TestState::new());
    let health = HealthEndpoints::new(state.clone(), HealthConfig::new(SystemTime::now()));
    let limits = HttpLimits {
        max_connections: 1,
        ..HttpLimits::default()
    };
    let health_server = start(health, limits).await;
    let metrics = MetricsEndpoint::new(state, Arc::new(Metrics::new().unwrap()));
    let metrics_server = start(metrics, HttpLimits::default()).await;
    assert_eq!(get(health_server.addr, "/metrics").await.status, 404);
    assert_eq!(get(metrics_server.addr, "/liveness").await.status, 404);
    assert_eq!(get(metrics_server.addr, "/metrics").await.status, 200);

    // One connection holds the only slot; the next is turned away with 503.
    let holder = TcpStream::connect(health_server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The refusal comes at once, before any request is read (sending one could race the
    // close and reset the connection).
    let mut turned_away = TcpStream::connect(health_server.addr).await.unwrap();
    let mut bytes = Vec::new();
    timeout(Duration::from_secs(5), turned_away.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    let busy = parse(&bytes);
    assert_eq!(
        (busy.status, busy.body.as_str()),
        (503, "too many connections\n")
    );
    drop(holder);
    health_server.shutdown().await;
    metrics_server.shutdown().await;
}
