//! GoBGP 3 as a test peer: start `gobgpd` inside a namespace, query and drive it with the
//! `gobgp` CLI.
//!
//! Owns: the `Gobgp` launcher. The gRPC API listens on a unix socket in the instance directory
//! (`--api-hosts unix://…`), so instances never share a port and the CLI needs no namespace.
//! GoBGP originates nothing from its config file: prefixes in `RouterConfig::originate` are added
//! with `gobgp global rib add` once the API answers, as `announce` does later. GoBGP is slow on
//! large tables (measured ~29 s for 2×100k routes): keep its tables small.
//! Must not: offer FIB installation. GoBGP can only program the FIB through a zebra, and GoBGP
//! 3.10's zebra client panics on FRR 8.4's ZAPI (measured: `interfaceAdd` decode, slice out of
//! range), so `install_fib` is an `Unsupported` error rather than a silent no-op.

mod conf;
mod show;

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bgp::status::SessionState;
use bgp::types::Family;
use ipnet::IpNet;

use crate::cmd;
use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::proc::Proc;
use crate::router::{BgpDaemon, Originated, Route, RouteAttrs, RouterConfig, known_peer};
use crate::wait::wait_until;

const KIND: &str = "gobgp";
/// How long gobgpd may take to open its API.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running GoBGP.
#[derive(Debug)]
pub struct Gobgp {
    ns: String,
    dir: PathBuf,
    target: String,
    config: Mutex<RouterConfig>,
    proc: Proc,
}

impl Gobgp {
    /// Render `config`, check it (`gobgpd --dry-run`), start gobgpd inside `ns` with its files
    /// in `dir/gobgp-<router id>/`, wait for its API, then originate `config.originate`.
    pub fn start(ns: &Netns, dir: &Path, config: RouterConfig) -> Result<Gobgp> {
        if config.install_fib {
            return Err(Error::Unsupported {
                daemon: KIND,
                what: "installing routes into the FIB (it needs an external zebra)".into(),
            });
        }
        let dir = dir.join(format!("gobgp-{}", config.router_id));
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let conf = dir.join("gobgpd.toml");
        fs::write(&conf, conf::render(&config))
            .map_err(|e| Error::io(format!("writing {}", conf.display()), e))?;
        let conf = conf.to_string_lossy().into_owned();
        cmd::run(Command::new("gobgpd").args(["-f", &conf, "-t", "toml", "--dry-run"]))?;
        let target = format!("unix://{}", dir.join("gobgp.sock").display());
        let proc = ns.spawn(
            &format!("gobgpd-{}", config.router_id),
            &[
                "gobgpd",
                "-f",
                &conf,
                "-t",
                "toml",
                "-l",
                "info",
                "-p",
                "--api-hosts",
                &target,
                "--pprof-disable",
            ],
            &dir,
        )?;
        let originate = config.originate.clone();
        let gobgp = Gobgp {
            ns: ns.name().to_string(),
            dir,
            target,
            config: Mutex::new(RouterConfig {
                originate: Vec::new(),
                ..config
            }),
            proc,
        };
        wait_until(START_TIMEOUT, "gobgpd's API", || {
            if !gobgp.proc.is_running() {
                return Ok(Err(format!("gobgpd exited: {}", gobgp.proc.logs())));
            }
            gobgp
                .cli(&["global"])
                .map(|_| Ok(()))
                .map_err(|e| e.chain())
        })?
        .map_err(|why| Error::Command {
            cmd: gobgp.proc.cmdline().to_string(),
            status: "exited during start".into(),
            output: why,
        })?;
        for o in originate {
            gobgp.announce(o.prefix, &o.attrs)?;
        }
        Ok(gobgp)
    }

    /// Run the gobgp CLI against this instance (`gobgp --target unix://… ARGS`).
    pub fn cli<S: AsRef<str>>(&self, args: &[S]) -> Result<String> {
        let mut c = Command::new("gobgp");
        c.args(["--target", &self.target]);
        c.args(args.iter().map(|a| a.as_ref()));
        cmd::run(&mut c)
    }

    /// The configuration GoBGP runs, with what it originates now.
    pub fn config(&self) -> RouterConfig {
        self.lock().clone()
    }

    /// Directory holding this instance's config, socket and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Name of the namespace GoBGP runs in.
    pub fn netns_name(&self) -> &str {
        &self.ns
    }

    fn lock(&self) -> MutexGuard<'_, RouterConfig> {
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rib_command(&self, args: Vec<String>) -> Result<()> {
        let mut all = vec!["global".to_string(), "rib".to_string()];
        all.extend(args);
        self.cli(&all).map(|_| ()).map_err(|e| match e {
            Error::Command { output, .. } => Error::Rejected {
                daemon: KIND,
                command: format!("gobgp {}", all.join(" ")),
                output,
            },
            other => other,
        })
    }
}

impl BgpDaemon for Gobgp {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn process(&self) -> &Proc {
        &self.proc
    }

    fn peer_state(&self, peer: IpAddr) -> Result<SessionState> {
        known_peer(KIND, &self.lock(), peer)?;
        show::neighbor_state(&self.cli(&["-j".to_string(), "neighbor".into(), peer.to_string()])?)
    }

    fn routes(&self) -> Result<Vec<Route>> {
        let mut out = Vec::new();
        for f in Family::ALL {
            let text = self.cli(&["-j", "global", "rib", "-a", conf::cli_family(f)])?;
            out.extend(show::parse_rib(&text)?);
        }
        Ok(out)
    }

    fn announce(&self, prefix: IpNet, attrs: &RouteAttrs) -> Result<()> {
        let mut current = self.lock();
        if current.originate.iter().any(|o| o.prefix == prefix) {
            self.rib_command(conf::del_args(&prefix))?;
            current.originate.retain(|o| o.prefix != prefix);
        }
        self.rib_command(conf::add_args(&prefix, attrs))?;
        current.originate.push(Originated {
            prefix,
            attrs: attrs.clone(),
        });
        Ok(())
    }

    fn withdraw(&self, prefix: IpNet) -> Result<()> {
        let mut current = self.lock();
        if !current.originate.iter().any(|o| o.prefix == prefix) {
            return Ok(());
        }
        self.rib_command(conf::del_args(&prefix))?;
        current.originate.retain(|o| o.prefix != prefix);
        Ok(())
    }
}
