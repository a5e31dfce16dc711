//! `ginger-node`: the Ginger node agent (the DaemonSet's main process).
//!
//! Parses the command line, sets up logging, and runs `agent::daemon::run` until SIGTERM or
//! SIGINT. Exits non-zero with a one-line reason when the configuration is unusable at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent::ctl::DEFAULT_RUN_DIR;
use agent::daemon::{self, Options};
use agent::http::{DEFAULT_HEALTH_ADDR, DEFAULT_METRICS_ADDR};
use clap::{Parser, ValueEnum};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Parser, Debug)]
#[command(
    name = "ginger-node",
    version,
    // A later flag wins, so a launcher can append overrides (e.g. a shared --state-dir).
    args_override_self = true,
    about = "Ginger node agent: pod IPAM, the CNI socket, felix (kernel routes) and the BGP speaker \
             (Calico-compatible configuration)"
)]
struct Cli {
    /// Cluster file: Kubernetes-style YAML documents (Node, BGPPeer, BGPConfiguration, IPPool).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// This node's name, as in the cluster file.
    #[arg(long, env = "NODENAME", value_name = "NAME")]
    node_name: String,
    /// Directory for the control socket (ginger.sock) and the CNI socket (cni.sock).
    #[arg(long, env = "GINGER_RUN_DIR", default_value = DEFAULT_RUN_DIR, value_name = "DIR")]
    run_dir: PathBuf,
    /// Directory for persistent state: ipam/ (blocks, shared by every node of the machine
    /// that uses the same directory) and nodes/<node>/ (endpoints, mtu).
    #[arg(long, default_value = "/var/lib/ginger", value_name = "DIR")]
    state_dir: PathBuf,
    /// Address for /liveness and /readiness.
    #[arg(long, default_value = DEFAULT_HEALTH_ADDR, value_name = "ADDR")]
    health_listen: SocketAddr,
    /// Address for Prometheus /metrics.
    #[arg(long, default_value = DEFAULT_METRICS_ADDR, value_name = "ADDR")]
    metrics_listen: SocketAddr,
    /// Log format (level from RUST_LOG, default info).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Route protocol number on every route felix programs (`ip route` shows `proto 97`).
    #[arg(long, default_value_t = felix::ownership::DEFAULT_ROUTE_PROTOCOL, value_name = "N")]
    route_protocol: u8,
    /// Name prefix of pod host links; routes on these links are Ginger's whatever their protocol.
    #[arg(long, default_value = felix::ownership::DEFAULT_IFACE_PREFIX, value_name = "PREFIX")]
    interface_prefix: String,
    /// How long an empty IPAM block stays with this node before it is given back (a node keeps
    /// one block per family); also how long another node's block must have been empty before
    /// this node may take it over. Go duration; 0 never releases.
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    ipam_block_grace: Duration,
    /// How long an address may stay allocated without a pod endpoint (an ADD in flight) before
    /// garbage collection releases it. Go duration.
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    ipam_leak_grace: Duration,
    /// Links whose MTU counts for host MTU detection (Calico's MTUIfacePattern).
    #[arg(long, default_value = felix::mtu::DEFAULT_MTU_IFACE_PATTERN, value_name = "REGEX")]
    mtu_iface_pattern: String,
    /// Put learned BGP routes into the kernel (`false`: keep them in the RIB only, e.g. on a
    /// dedicated route reflector or to benchmark the speaker alone; pods and blocks are still
    /// programmed).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    program_learned_routes: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    agent::datastore::duration::parse_go_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 90s or 15m: {e}"))
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn terminated() {
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let opts = Options {
        config: cli.config,
        node_name: cli.node_name,
        run_dir: cli.run_dir,
        state_dir: cli.state_dir,
        health_listen: cli.health_listen,
        metrics_listen: cli.metrics_listen,
        route_protocol: cli.route_protocol,
        interface_prefix: cli.interface_prefix,
        ipam_block_grace: cli.ipam_block_grace,
        ipam_leak_grace: cli.ipam_leak_grace,
        mtu_iface_pattern: cli.mtu_iface_pattern,
        program_learned_routes: cli.program_learned_routes,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ginger-node")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ginger-node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(opts, terminated())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ginger-node: {e}");
            ExitCode::FAILURE
        }
    }
}
