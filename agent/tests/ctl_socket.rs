//! The control server and client over a real unix socket in a temporary directory, against a
//! test `AgentState`: answers, socket creation rules, malformed input, limits, timeouts and
//! shutdown; and the `gingerctl` binary end to end.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agent::ctl::client::{self, ClientError};
use agent::ctl::protocol::{ErrorCode, decode_response};
use agent::ctl::server::{self, BindError, ServerLimits};
use agent::ctl::{Reply, Request};
use common::{TempDir, TestState};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(5);

struct Running {
    socket: PathBuf,
    state: Arc<TestState>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    dir: TempDir,
}

impl Running {
    async fn start(tag: &str, state: TestState, limits: ServerLimits) -> Running {
        let dir = TempDir::new(tag);
        let socket = dir.path().join("run").join("ginger.sock");
        let listener = server::bind(&socket).expect("bind");
        let state = Arc::new(state);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve_with(
            listener,
            state.clone(),
            async move {
                let _ = stopped.await;
            },
            limits,
        ));
        Running {
            socket,
            state,
            stop,
            task,
            dir,
        }
    }

    /// Stop the server and wait for it; the directory is handed back (removed when dropped).
    async fn shutdown(self) -> TempDir {
        let _ = self.stop.send(());
        timeout(DEADLINE, self.task)
            .await
            .expect("server drains in time")
            .expect("server task");
        self.dir
    }
}

async fn ask(socket: &Path, request: Request) -> Result<Reply, ClientError> {
    client::request(socket, &request, DEADLINE).await
}

/// Send raw bytes, return the response lines read until the server closes or 2 s pass.
async fn raw(socket: &Path, bytes: &[u8], lines: usize) -> Vec<String> {
    let stream = UnixStream::connect(socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(bytes).await.unwrap();
    let mut reader = BufReader::new(read);
    let mut out = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        match timeout(Duration::from_secs(2), reader.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => out.push(line),
            _ => break,
        }
    }
    out
}

fn error_code(line: &str) -> ErrorCode {
    match decode_response(line.as_bytes()).unwrap() {
        Err(e) => e.code,
        Ok(reply) => panic!("expected an error, got {reply:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_every_request() {
    let server = Running::start("answers", TestState::new(), ServerLimits::default()).await;
    let mode = std::fs::metadata(&server.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket must be root-only");

    let Reply::NodeStatus(peers) = ask(&server.socket, Request::NodeStatus).await.unwrap() else {
        panic!("wrong reply");
    };
    assert_eq!(peers, server.state.peers);

    let lookup = Request::RouteShow {
        prefix: Some("10.244.1.9/32".parse().unwrap()),
    };
    let Reply::Routes(routes) = ask(&server.socket, lookup).await.unwrap() else {
        panic!("wrong reply");
    };
    let prefixes: Vec<String> = routes.iter().map(|r| r.prefix.to_string()).collect();
    assert_eq!(
        prefixes,
        ["10.244.1.0/26"],
        "longest match, not every route"
    );
    assert_eq!(
        server.state.route_queries.lock().unwrap().as_slice(),
        [Some("10.244.1.9/32".parse().unwrap())]
    );

    let Reply::Routes(all) = ask(&server.socket, Request::RouteShow { prefix: None })
        .await
        .unwrap()
    else {
        panic!("wrong reply");
    };
    assert_eq!(all.len(), 3);

    let Reply::BgpPeers(rows) = ask(&server.socket, Request::GetBgpPeers).await.unwrap() else {
        panic!("wrong reply");
    };
    assert_eq!(rows, server.state.bgp_peers);
    let Reply::Nodes(rows) = ask(&server.socket, Request::GetNodes).await.unwrap() else {
        panic!("wrong reply");
    };
    assert_eq!(rows, server.state.nodes);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_errors_and_the_connection_survives() {
    let server = Running::start("malformed", TestState::new(), ServerLimits::default()).await;
    let lines = raw(
        &server.socket,
        b"garbage\n{\"version\":1,\"request\":\"IpamSplit\"}\n{\"version\":9,\"request\":\"NodeStatus\"}\n\
          {\"version\":1,\"request\":\"GetNodes\"}\n",
        4,
    )
    .await;
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(error_code(&lines[0]), ErrorCode::Malformed);
    assert_eq!(error_code(&lines[1]), ErrorCode::UnknownRequest);
    assert_eq!(error_code(&lines[2]), ErrorCode::UnsupportedVersion);
    assert!(matches!(
        decode_response(lines[3].as_bytes()).unwrap(),
        Ok(Reply::Nodes(_))
    ));
    // The server still serves others.
    assert!(ask(&server.socket, Request::GetNodes).await.is_ok());
    // An agent without IPAM or felix says so instead of answering empty.
    for request in [
        Request::IpamShow,
        Request::GetEndpoints,
        Request::RouteShowFib,
    ] {
        match ask(&server.socket, request).await {
            Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::Unavailable),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_incomplete_requests_are_cut_off() {
    let limits = ServerLimits {
        max_request_bytes: 1024,
        read_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let server = Running::start("limits", TestState::new(), limits).await;
    let mut big = vec![b'x'; 4096];
    big.push(b'\n');
    let lines = raw(&server.socket, &big, 2).await;
    assert_eq!(lines.len(), 1, "closed after the error: {lines:?}");
    assert_eq!(error_code(&lines[0]), ErrorCode::TooLarge);

    let lines = raw(&server.socket, b"{\"version\":1", 2).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(error_code(&lines[0]), ErrorCode::Timeout);

    // An idle connection is closed without a word.
    assert!(raw(&server.socket, b"", 1).await.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_times_out() {
    let limits = ServerLimits {
        answer_timeout: Duration::from_millis(100),
        ..ServerLimits::default()
    };
    let server = Running::start("slow", TestState::slow(Duration::from_secs(3)), limits).await;
    let err = ask(&server.socket, Request::NodeStatus).await.unwrap_err();
    let ClientError::Refused(refusal) = err else {
        panic!("expected a refusal, got {err:?}");
    };
    assert_eq!(refusal.code, ErrorCode::Timeout);
    assert!(refusal.message.contains("0.1 s"), "{}", refusal.message);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_busy() {
    let limits = ServerLimits {
        max_connections: 1,
        read_timeout: Duration::from_secs(10),
        ..ServerLimits::default()
    };
    let server = Running::start("busy", TestState::new(), limits).await;
    let holder = UnixStream::connect(&server.socket).await.unwrap();
    // Let the server accept the first connection and take its permit.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = ask(&server.socket, Request::GetNodes).await.unwrap_err();
    match err {
        ClientError::Refused(e) => assert_eq!(e.code, ErrorCode::Busy),
        other => panic!("expected Busy, got {other:?}"),
    }
    drop(holder);
    // The permit comes back once the server has seen the holder leave.
    let mut served = false;
    for _ in 0..50 {
        if ask(&server.socket, Request::GetNodes).await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the freed slot is served again");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_then_stops() {
    let server = Running::start(
        "drain",
        TestState::slow(Duration::from_millis(500)),
        ServerLimits::default(),
    )
    .await;
    let socket = server.socket.clone();
    let in_flight = tokio::spawn(async move { ask(&socket, Request::NodeStatus).await });
    // Shut down only once the request is being answered.
    while server.state.peer_queries.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let socket = server.socket.clone();
    server.shutdown().await;
    let reply = in_flight.await.unwrap();
    assert!(matches!(reply, Ok(Reply::NodeStatus(_))), "{reply:?}");
    // Nobody listens any more: the client says the agent is not running.
    let err = ask(&socket, Request::NodeStatus).await.unwrap_err();
    assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_refuses_a_live_agent_and_replaces_a_stale_socket() {
    let server = Running::start("bind", TestState::new(), ServerLimits::default()).await;
    match server::bind(&server.socket) {
        Err(BindError::AlreadyRunning { path }) => assert_eq!(path, server.socket),
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    // The live agent is untouched.
    assert!(ask(&server.socket, Request::GetNodes).await.is_ok());
    let socket = server.socket.clone();
    let _dir = server.shutdown().await;

    // The old socket file stays behind; nobody answers it, so it is stale and replaced.
    assert!(socket.exists());
    let listener = server::bind(&socket).expect("stale socket is replaced");
    drop(listener);

    let dir = TempDir::new("notsocket");
    let file = dir.path().join("ginger.sock");
    std::fs::write(&file, b"not a socket").unwrap();
    assert!(matches!(
        server::bind(&file),
        Err(BindError::NotASocket { .. })
    ));
    assert_eq!(std::fs::read(&file).unwrap(), b"not a socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_name_the_problem() {
    let dir = TempDir::new("client");
    let missing = dir.path().join("ginger.sock");
    let err = ask(&missing, Request::NodeStatus).await.unwrap_err();
    assert_eq!(err.to_string(), "Ginger process is not running.");

    // A listener that accepts but never answers.
    let silent_path = dir.path().join("silent.sock");
    let silent = tokio::net::UnixListener::bind(&silent_path).unwrap();
    let holder = tokio::spawn(async move {
        let (stream, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(stream);
    });
    let err = client::request(
        &silent_path,
        &Request::NodeStatus,
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("the agent did not answer within 0.2 s"),
        "{err}"
    );
    holder.abort();
}

fn gingerctl(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gingerctl"))
        .args(args)
        .env_remove("GINGER_RUN_DIR")
        .output()
        .expect("run gingerctl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gingerctl_end_to_end() {
    let server = Running::start("cli", TestState::new(), ServerLimits::default()).await;
    let socket = server.socket.to_str().unwrap().to_string();
    let run_dir = server
        .socket
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();

    let out = {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || gingerctl(&["--socket", &socket, "node", "status"]))
            .await
            .unwrap()
    };
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("Ginger process is running.\n\nIPv4 BGP status\n+"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| 10.0.0.2     | node-to-node mesh | up    |"),
        "{stdout}"
    );
    assert!(stdout.contains("| Active Socket: Connection"), "{stdout}");
    assert!(
        stdout.ends_with("IPv6 BGP status\nNo IPv6 peers found.\n\n"),
        "{stdout}"
    );

    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gingerctl"))
            .args(["route", "show", "10.244.1.9"])
            .env("GINGER_RUN_DIR", &run_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("10.244.1.0/26   10.0.0.2"),
        "{stdout}"
    );

    let out = {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || {
            gingerctl(&["--socket", &socket, "get", "nodes", "-o", "wide"])
        })
        .await
        .unwrap()
    };
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "NAME     ASN       IPV4          IPV6   \nnode-1   (64512)   10.0.0.1/24          \n\n"
    );
    let out = {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || gingerctl(&["--socket", &socket, "get", "bgppeers"]))
            .await
            .unwrap()
    };
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("tor    192.0.2.1   (global)   65001")
    );
    server.shutdown().await;

    // The agent is gone: calicoctl's message on stderr, exit status 1, nothing on stdout.
    let out =
        tokio::task::spawn_blocking(move || gingerctl(&["--socket", &socket, "node", "status"]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "Ginger process is not running.\n"
    );

    // A bad prefix is a usage error, not a panic.
    let out = gingerctl(&["--socket", "/nonexistent", "route", "show", "10.0.0.300"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("neither an IP address nor a prefix")
    );
}
