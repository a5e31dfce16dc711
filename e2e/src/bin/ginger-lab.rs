//! `ginger-lab`: build a small Ginger cluster out of network namespaces on this machine
//! (`up`), show it (`status`), remove it (`down`). Runs as root. The logic is `e2e::lab`; this
//! file parses the command line and prints.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use e2e::lab::{self, LabConfig, LabError, LabOptions, TorKind, UpOutcome};

const ABOUT: &str = "A small Ginger cluster in network namespaces: nodes running ginger-node, \
pods created through the real ginger CNI plugin, BIRD/FRR top-of-rack routers (run as root)";

const LONG_ABOUT: &str = "\
A small Ginger cluster in network namespaces: nodes running ginger-node, pods created through
the real ginger CNI plugin, BIRD/FRR top-of-rack routers. Runs as root; everything lives in
namespaces named <prefix>-* that have no link to this machine's own network, and in the lab
directory (configs, logs, sockets), so `status` and `down` work from any shell.

One rack (default): the nodes (10.0.0.11, .12, …, AS 64512, node-to-node mesh) and the ToR
(10.0.0.1, AS 65000, peered by a global BGPPeer) on one segment; pool 10.244.0.0/16.
--racks 2 (up to 4): Calico's AS-per-rack model. Rack a (10.0.1.0/24) has a BIRD ToR in
AS 65101 and nodes in AS 65001, rack b (10.0.2.0/24) an FRR ToR in AS 65102 and nodes in
AS 65002 (racks c, d: BIRD, FRR; 65103/65003, 65104/65004); the mesh is off; each node peers
eBGP with its own ToR (BGPPeer with nodeSelector rack == '<r>'); the ToRs peer eBGP over
links of their own (10.0.254.0/24) and override the rack AS towards their nodes.
Each node's default route is its uplink without a gateway (proxy ARP needs a route to the
pods' gateway 169.254.1.1), so every path to another node's pods is a route BGP installed.";

#[derive(Parser, Debug)]
#[command(name = "ginger-lab", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    /// The lab directory (journal, configs, logs, sockets).
    #[arg(long, global = true, env = "GINGER_LAB_DIR", default_value = lab::DEFAULT_DIR, value_name = "DIR")]
    dir: PathBuf,
    /// Prefix of the lab's namespace names (two labs need two prefixes and two directories).
    #[arg(long, global = true, env = "GINGER_LAB_PREFIX", default_value = lab::DEFAULT_PREFIX, value_name = "PREFIX")]
    prefix: String,
    /// Where ginger-node, gingerctl and the ginger plugin are (default: next to ginger-lab).
    #[arg(long, global = true, env = "GINGER_LAB_BIN_DIR", value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build the lab (a second `up` with the same options finds it in place), then show it.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Pods created on each node.
        #[arg(long, default_value_t = 2)]
        pods_per_node: usize,
        /// The ToR's daemon (one rack; with several racks they alternate BIRD, FRR).
        #[arg(long, value_enum)]
        tor: Option<Tor>,
        /// Racks (1 to 4); more than one is Calico's AS-per-rack model.
        #[arg(long, default_value_t = 1)]
        racks: usize,
        /// Do not end with the status (for scripts that run `status` next).
        #[arg(long)]
        no_status: bool,
    },
    /// Each node's sessions, the ToRs' view, blocks, pods, and who reaches whom.
    Status,
    /// Remove every namespace, link, process and file of the lab (also after a failed `up`).
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Tor {
    /// BIRD 2.
    Bird,
    /// FRR 8.
    Frr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ginger-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let bin_dir = match cli.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()
            .context("locating ginger-lab")?
            .parent()
            .map(PathBuf::from)
            .context("ginger-lab has no parent directory")?,
    };
    let cfg = LabConfig {
        dir: cli.dir,
        prefix: cli.prefix,
        bin_dir,
    };
    let mut out = io::stdout();
    match cli.command {
        Command::Up {
            nodes,
            pods_per_node,
            tor,
            racks,
            no_status,
        } => {
            if racks > 1 && tor.is_some() {
                anyhow::bail!(
                    "--tor: with --racks {racks} the racks' ToRs alternate BIRD (a, c) and FRR (b, d); leave --tor out"
                );
            }
            let options = LabOptions {
                nodes,
                pods_per_node,
                tor: match tor {
                    Some(Tor::Frr) => TorKind::Frr,
                    Some(Tor::Bird) | None => TorKind::Bird,
                },
                racks,
            };
            match lab::up(&cfg, &options, &mut out) {
                Ok(UpOutcome::Built | UpOutcome::AlreadyUp) => {}
                Err(e) => {
                    eprintln!("ginger-lab: up failed: {e}");
                    let built_something = !matches!(
                        e,
                        LabError::Options { .. }
                            | LabError::Occupied(_)
                            | LabError::Directory { .. }
                    );
                    if built_something && cfg.dir.join(lab::journal::JOURNAL).exists() {
                        eprintln!(
                            "ginger-lab: what was built stays for its logs ({}); `ginger-lab down` removes it",
                            cfg.dir.display()
                        );
                    }
                    return Ok(ExitCode::FAILURE);
                }
            }
            if no_status {
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(out)?;
            let (text, _) = lab::status(&cfg)?;
            out.write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let (text, _) = lab::status(&cfg)?;
            out.write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Down => {
            lab::down(&cfg, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
