//! `gingerctl`: shows what the Ginger agent on this node is doing, over its control socket.
//!
//! Parses the command line, sends one request with `agent::ctl::client`, prints the answer
//! with `agent::ctl::render`. Errors go to stderr with exit status 1 (as calicoctl does), never
//! as a panic.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use agent::ctl::client::{self, ClientError};
use agent::ctl::{DEFAULT_RUN_DIR, Reply, Request, render, render_pods, socket_path};
use clap::{Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

#[derive(Parser, Debug)]
#[command(
    name = "gingerctl",
    version,
    about = "Inspect the Ginger node agent running on this node (run as root)"
)]
struct Cli {
    /// Directory holding the agent's sockets.
    #[arg(long, env = "GINGER_RUN_DIR", default_value = DEFAULT_RUN_DIR, value_name = "DIR")]
    run_dir: PathBuf,
    /// Path of the agent's control socket (overrides --run-dir).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Seconds to wait for the agent's answer.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// This node's agent.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// The BGP routing table.
    Route {
        #[command(subcommand)]
        command: RouteCommand,
    },
    /// List resources.
    Get {
        #[command(subcommand)]
        resource: Resource,
    },
    /// IP address management.
    Ipam {
        #[command(subcommand)]
        command: IpamCommand,
    },
}

#[derive(Subcommand, Debug)]
enum IpamCommand {
    /// IP pool usage, as `calicoctl ipam show` prints it.
    Show {
        /// Also one row per block.
        #[arg(long)]
        show_blocks: bool,
        /// Whether this address is in use, and by whom.
        #[arg(long, value_name = "IP", conflicts_with = "show_blocks")]
        ip: Option<IpAddr>,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// BGP sessions of this node, as `calicoctl node status` shows them.
    Status,
}

#[derive(Subcommand, Debug)]
enum RouteCommand {
    /// Loc-RIB paths: all, the longest match for an ADDRESS, or exactly a PREFIX; with
    /// --fib, the routes felix has programmed into the kernel instead.
    Show {
        /// An address (longest-prefix match) or a prefix (exact match).
        #[arg(value_parser = parse_prefix, value_name = "PREFIX")]
        prefix: Option<IpNet>,
        /// Show the kernel routes and neighbour entries Ginger owns (felix).
        #[arg(long, conflicts_with = "prefix")]
        fib: bool,
    },
}

#[derive(Subcommand, Debug)]
enum Resource {
    /// BGPPeer resources.
    #[command(visible_alias = "bgppeer", alias = "bgpp", alias = "bp")]
    Bgppeers {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<Output>,
    },
    /// Nodes.
    #[command(visible_alias = "node", alias = "no")]
    Nodes {
        /// Output format (`wide` adds ASN, IPV4 and IPV6).
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<Output>,
    },
    /// This node's pod endpoints (pod, addresses, host link, MAC).
    #[command(
        visible_alias = "endpoint",
        alias = "workloadendpoints",
        alias = "workloadendpoint",
        alias = "wep"
    )]
    Endpoints,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// More columns.
    Wide,
}

/// `10.0.0.0/24` as a prefix, `10.0.0.5` as a host prefix (a lookup).
fn parse_prefix(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a prefix"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| socket_path(&cli.run_dir));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("gingerctl: cannot start: {e}")),
    };
    let request = match &cli.command {
        Command::Node {
            command: NodeCommand::Status,
        } => Request::NodeStatus,
        Command::Route {
            command: RouteCommand::Show { fib: true, .. },
        } => Request::RouteShowFib,
        Command::Route {
            command: RouteCommand::Show { prefix, .. },
        } => Request::RouteShow { prefix: *prefix },
        Command::Get {
            resource: Resource::Bgppeers { .. },
        } => Request::GetBgpPeers,
        Command::Get {
            resource: Resource::Nodes { .. },
        } => Request::GetNodes,
        Command::Get {
            resource: Resource::Endpoints,
        } => Request::GetEndpoints,
        Command::Ipam {
            command: IpamCommand::Show { ip: Some(ip), .. },
        } => Request::IpamShowIp { ip: *ip },
        Command::Ipam {
            command: IpamCommand::Show { ip: None, .. },
        } => Request::IpamShow,
    };
    let deadline = Duration::from_secs(cli.timeout);
    let reply = runtime.block_on(client::request(&socket, &request, deadline));
    match reply.map(|reply| output(&cli.command, reply)) {
        Ok(Some(text)) => {
            // A closed pipe (`gingerctl … | head`) is not an error worth a message.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Ok(None) => fail("gingerctl: the agent answered a different question; versions may differ"),
        Err(e @ ClientError::NotRunning { .. }) => fail(&e.to_string()),
        Err(e) => fail(&format!("gingerctl: {e}")),
    }
}

/// The text for `reply`, or `None` if it does not answer `command`.
fn output(command: &Command, reply: Reply) -> Option<String> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = match (command, reply) {
        (Command::Node { .. }, Reply::NodeStatus(peers)) => {
            render::node_status(&peers, now, &jiff::tz::TimeZone::system())
        }
        (
            Command::Route {
                command: RouteCommand::Show { prefix, .. },
            },
            Reply::Routes(routes),
        ) => render::routes(&routes, *prefix),
        (Command::Route { .. }, Reply::Fib(report)) => render_pods::fib(&report),
        (Command::Get { .. }, Reply::Endpoints(rows)) => render_pods::endpoints(&rows),
        (
            Command::Ipam {
                command: IpamCommand::Show { show_blocks, .. },
            },
            Reply::Ipam(report),
        ) => render_pods::ipam_show(&report, *show_blocks),
        (Command::Ipam { .. }, Reply::IpamIp(lookup)) => render_pods::ipam_ip(&lookup),
        (Command::Get { .. }, Reply::BgpPeers(rows)) => render::bgp_peers(&rows),
        (
            Command::Get {
                resource: Resource::Nodes { output },
            },
            Reply::Nodes(rows),
        ) => render::nodes(&rows, *output == Some(Output::Wide)),
        _ => return None,
    };
    Some(text)
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{message}");
    ExitCode::FAILURE
}
