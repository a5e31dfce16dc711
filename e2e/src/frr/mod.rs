//! FRR 8 (zebra + bgpd) as a test peer: start it inside a namespace, query it over vtysh,
//! change what it originates.
//!
//! Owns: the `Frr` launcher. Every instance runs zebra and bgpd with their config, pid files and
//! vty sockets in `dir/frr-<router id>/` (`--vty_socket`, `-z`, vty TCP port off), so instances
//! never meet. zebra always runs: without it bgpd knows no interfaces and rejects IPv6 routes
//! whose next hop is link-local; with `install_fib` off bgpd runs `--no_kernel`, so nothing
//! reaches the FIB. zebra drops to the `frr` user (it insists on the `frrvty` group), bgpd runs
//! as root with `-S`. Runtime announce/withdraw are vtysh `network` / `no network` (attributes via
//! a per-prefix route-map). Must not: run vtysh against another instance's sockets.

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

const KIND: &str = "frr";
const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";
/// How long zebra and bgpd may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running FRR (zebra + bgpd).
#[derive(Debug)]
pub struct Frr {
    ns: String,
    dir: PathBuf,
    config: Mutex<RouterConfig>,
    // Field order is drop order: bgpd stops before zebra.
    bgpd: Proc,
    zebra: Proc,
}

impl Frr {
    /// Render `config`, start zebra and bgpd inside `ns` with their files in
    /// `dir/frr-<router id>/`, and wait until bgpd answers vtysh.
    pub fn start(ns: &Netns, dir: &Path, config: RouterConfig) -> Result<Frr> {
        let dir = dir.join(format!("frr-{}", config.router_id));
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        // zebra runs as `frr` and creates its sockets and pid file here.
        set_mode(&dir, 0o777)?;
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        fs::write(
            dir.join("zebra.conf"),
            format!("hostname zebra-{}\n", config.router_id),
        )
        .map_err(|e| Error::io(format!("writing {}", file("zebra.conf")), e))?;
        fs::write(dir.join("bgpd.conf"), conf::render(&config))
            .map_err(|e| Error::io(format!("writing {}", file("bgpd.conf")), e))?;
        let vty_dir = dir.to_string_lossy().into_owned();
        let zserv = file("zserv.api");
        let zebra = ns.spawn(
            &format!("zebra-{}", config.router_id),
            &[
                ZEBRA,
                "-f",
                &file("zebra.conf"),
                "-i",
                &file("zebra.pid"),
                "-z",
                &zserv,
                "--vty_socket",
                &vty_dir,
                "-P",
                "0",
                "-u",
                "frr",
                "-g",
                "frr",
            ],
            &dir,
        )?;
        wait_until(START_TIMEOUT, "zebra's zserv socket", || {
            if !zebra.is_running() {
                return Ok(Err(format!("zebra exited: {}", zebra.logs())));
            }
            if dir.join("zserv.api").exists() {
                Ok(Ok(()))
            } else {
                Err("no socket yet")
            }
        })?
        .map_err(|why| exited(&zebra, why))?;
        let port = config.listen_port.to_string();
        let mut args: Vec<String> = [BGPD, "-S"].iter().map(|s| s.to_string()).collect();
        if !config.install_fib {
            args.push("--no_kernel".into());
        }
        args.extend(
            [
                "-f",
                &file("bgpd.conf"),
                "-i",
                &file("bgpd.pid"),
                "-z",
                &zserv,
                "--vty_socket",
                &vty_dir,
                "-P",
                "0",
                "-u",
                "root",
                "-g",
                "root",
                "-p",
                &port,
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        if let Some(a) = config.listen_address {
            args.extend(["-l".to_string(), a.to_string()]);
        }
        let bgpd = ns.spawn(&format!("bgpd-{}", config.router_id), &args, &dir)?;
        let frr = Frr {
            ns: ns.name().to_string(),
            dir,
            config: Mutex::new(config),
            bgpd,
            zebra,
        };
        wait_until(START_TIMEOUT, "bgpd to answer vtysh", || {
            if !frr.bgpd.is_running() {
                return Ok(Err(format!("bgpd exited: {}", frr.bgpd.logs())));
            }
            frr.vtysh(&["show bgp summary json"])
                .map(|_| Ok(()))
                .map_err(|e| e.chain())
        })?
        .map_err(|why| exited(&frr.bgpd, why))?;
        Ok(frr)
    }

    /// Run vtysh commands in one session (`vtysh -c A -c B …`) and return the output.
    pub fn vtysh<S: AsRef<str>>(&self, commands: &[S]) -> Result<String> {
        let mut c = Command::new("vtysh");
        c.arg("--vty_socket").arg(&self.dir);
        for command in commands {
            c.arg("-c").arg(command.as_ref());
        }
        cmd::run(&mut c)
    }

    /// Run configuration commands (prefixed with `configure terminal`); any `%` line FRR prints
    /// is an error.
    pub fn configure<S: AsRef<str>>(&self, commands: &[S]) -> Result<()> {
        let mut all = vec!["configure terminal".to_string()];
        all.extend(commands.iter().map(|c| c.as_ref().to_string()));
        let joined = all.join("; ");
        let out = self.vtysh(&all).map_err(|e| match e {
            Error::Command { output, .. } => Error::Rejected {
                daemon: KIND,
                command: joined.clone(),
                output,
            },
            other => other,
        })?;
        if out.lines().any(|l| l.trim_start().starts_with('%')) {
            return Err(Error::Rejected {
                daemon: KIND,
                command: joined,
                output: out,
            });
        }
        Ok(())
    }

    /// The configuration FRR was started with, plus runtime announce/withdraw.
    pub fn config(&self) -> RouterConfig {
        self.lock().clone()
    }

    /// The zebra process.
    pub fn zebra(&self) -> &Proc {
        &self.zebra
    }

    /// Directory holding this instance's config, sockets and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Name of the namespace FRR runs in.
    pub fn netns_name(&self) -> &str {
        &self.ns
    }

    fn lock(&self) -> MutexGuard<'_, RouterConfig> {
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BgpDaemon for Frr {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn process(&self) -> &Proc {
        &self.bgpd
    }

    fn peer_state(&self, peer: IpAddr) -> Result<SessionState> {
        known_peer(KIND, &self.lock(), peer)?;
        let out = self.vtysh(&[format!("show bgp neighbors {peer} json")])?;
        let docs = show::json_stream(&out, "show bgp neighbors")?;
        let doc = docs.first().ok_or_else(|| {
            Error::parse("vtysh", "show bgp neighbors", "empty output".to_string())
        })?;
        // Configured but not yet known to bgpd (config still loading) counts as Idle.
        Ok(show::neighbor_state(doc, peer)?.unwrap_or(SessionState::Idle))
    }

    fn routes(&self) -> Result<Vec<Route>> {
        let mut prefixes = Vec::new();
        for f in Family::ALL {
            let out = self.vtysh(&[format!("show bgp {} json", conf::afi(f))])?;
            for doc in show::json_stream(&out, "show bgp json")? {
                prefixes.extend(show::table_prefixes(&doc)?);
            }
        }
        if prefixes.is_empty() {
            return Ok(Vec::new());
        }
        let commands: Vec<String> = prefixes
            .iter()
            .map(|p| format!("show bgp {} {p} json", conf::afi(Family::of(p))))
            .collect();
        let out = self.vtysh(&commands)?;
        let mut routes = Vec::new();
        for doc in show::json_stream(&out, "show bgp <prefix> json")? {
            routes.extend(show::prefix_paths(&doc)?);
        }
        Ok(routes)
    }

    fn announce(&self, prefix: IpNet, attrs: &RouteAttrs) -> Result<()> {
        let mut current = self.lock();
        let was = current.originate.iter().any(|o| o.prefix == prefix);
        let o = Originated {
            prefix,
            attrs: attrs.clone(),
        };
        self.configure(&conf::announce_commands(current.asn, &o, was))?;
        current.originate.retain(|x| x.prefix != prefix);
        current.originate.push(o);
        Ok(())
    }

    fn withdraw(&self, prefix: IpNet) -> Result<()> {
        let mut current = self.lock();
        if !current.originate.iter().any(|o| o.prefix == prefix) {
            return Ok(());
        }
        self.configure(&conf::withdraw_commands(current.asn, &prefix))?;
        current.originate.retain(|x| x.prefix != prefix);
        Ok(())
    }
}

fn exited(p: &Proc, why: String) -> Error {
    Error::Command {
        cmd: p.cmdline().to_string(),
        status: "exited during start".into(),
        output: why,
    }
}

fn set_mode(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))
}
