//! BIRD 2 as a test peer: start it inside a namespace, query it, change what it originates.
//!
//! Owns: the `Bird` launcher (per-instance config, control socket and pid file under the test
//! directory; `bird -f` in the foreground as a `Proc`), `birdc` as a raw escape hatch, and the
//! `BgpDaemon` view: routes from `show route all` (BGP and originated routes only), session
//! states from `show protocols all`, and runtime announce/withdraw by rewriting the static
//! protocols and the export filter, then `birdc configure` (a soft reconfiguration: sessions
//! stay up). Must not: run anything in the machine's own namespace (birdc only talks to the
//! control socket, a file).

mod conf;
mod show;

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bgp::status::SessionState;
use ipnet::IpNet;

use crate::cmd;
use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::proc::Proc;
use crate::router::{BgpDaemon, Originated, Route, RouteAttrs, RouterConfig, known_peer};
use crate::wait::wait_until;

const KIND: &str = "bird";
/// How long BIRD may take to open its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running BIRD.
#[derive(Debug)]
pub struct Bird {
    ns: String,
    dir: PathBuf,
    config: Mutex<RouterConfig>,
    proc: Proc,
}

impl Bird {
    /// Render `config`, check it with `bird -p`, start BIRD inside `ns` with its files in
    /// `dir/bird-<router id>/`, and wait until its control socket answers.
    pub fn start(ns: &Netns, dir: &Path, config: RouterConfig) -> Result<Bird> {
        let dir = dir.join(format!("bird-{}", config.router_id));
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let conf = dir.join("bird.conf");
        write_conf(&conf, &config)?;
        cmd::run(Command::new("bird").arg("-p").arg("-c").arg(&conf))?;
        let (ctl, pid) = (dir.join("bird.ctl"), dir.join("bird.pid"));
        let args = [
            "bird".to_string(),
            "-f".into(),
            "-c".into(),
            path_str(&conf),
            "-s".into(),
            path_str(&ctl),
            "-P".into(),
            path_str(&pid),
        ];
        let proc = ns.spawn(&format!("bird-{}", config.router_id), &args, &dir)?;
        let bird = Bird {
            ns: ns.name().to_string(),
            dir,
            config: Mutex::new(config),
            proc,
        };
        wait_until(START_TIMEOUT, "BIRD's control socket", || {
            if !bird.proc.is_running() {
                return Ok(Err(format!("BIRD exited: {}", bird.proc.logs())));
            }
            bird.birdc("show status").map(Ok).map_err(|e| e.chain())
        })?
        .map_err(|why| Error::Command {
            cmd: bird.proc.cmdline().to_string(),
            status: "exited during start".into(),
            output: why,
        })?;
        Ok(bird)
    }

    /// Run a birdc command (`show route all 10.0.0.0/24`) and return its output without the
    /// banner line.
    pub fn birdc(&self, command: &str) -> Result<String> {
        let out = cmd::run(
            Command::new("birdc")
                .arg("-s")
                .arg(self.dir.join("bird.ctl"))
                .arg(command),
        )?;
        Ok(out
            .lines()
            .filter(|l| !(l.starts_with("BIRD ") && l.ends_with("ready.")))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// The configuration BIRD runs now.
    pub fn config(&self) -> RouterConfig {
        self.lock().clone()
    }

    /// Replace the whole configuration (`birdc configure`: changed BGP protocols restart,
    /// the rest stays up).
    pub fn reconfigure(&self, config: RouterConfig) -> Result<()> {
        let mut current = self.lock();
        self.apply(&config)?;
        *current = config;
        Ok(())
    }

    /// Directory holding this instance's config, socket and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Name of the namespace BIRD runs in.
    pub fn netns_name(&self) -> &str {
        &self.ns
    }

    fn apply(&self, config: &RouterConfig) -> Result<()> {
        let conf = self.dir.join("bird.conf");
        write_conf(&conf, config)?;
        let out = self.birdc("configure")?;
        if out.lines().any(|l| l.trim() == "Reconfigured") {
            Ok(())
        } else {
            Err(Error::Rejected {
                daemon: KIND,
                command: "configure".into(),
                output: out,
            })
        }
    }

    fn lock(&self) -> MutexGuard<'_, RouterConfig> {
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BgpDaemon for Bird {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn process(&self) -> &Proc {
        &self.proc
    }

    fn peer_state(&self, peer: IpAddr) -> Result<SessionState> {
        let name = {
            let c = self.lock();
            conf::protocol_name(known_peer(KIND, &c, peer)?)
        };
        show::parse_bgp_state(&self.birdc(&format!("show protocols all {name}"))?)
    }

    fn routes(&self) -> Result<Vec<Route>> {
        let text = self.birdc("show route all")?;
        let shown = show::parse_show_route_all(&text)?;
        let c = self.lock();
        Ok(shown
            .into_iter()
            .filter_map(|s| {
                let mut route = s.route;
                if s.proto.starts_with(conf::STATIC_PREFIX) {
                    route.next_hop = None;
                    route.from = None;
                    return Some(route);
                }
                let n = c
                    .neighbors
                    .iter()
                    .find(|n| conf::protocol_name(n) == s.proto)?;
                route.from = Some(s.from.unwrap_or(n.address));
                Some(route)
            })
            .collect())
    }

    fn announce(&self, prefix: IpNet, attrs: &RouteAttrs) -> Result<()> {
        let mut current = self.lock();
        let mut next = current.clone();
        conf::set_originated(
            &mut next,
            Originated {
                prefix,
                attrs: attrs.clone(),
            },
        );
        self.apply(&next)?;
        *current = next;
        Ok(())
    }

    fn withdraw(&self, prefix: IpNet) -> Result<()> {
        let mut current = self.lock();
        let mut next = current.clone();
        if !conf::unset_originated(&mut next, prefix) {
            return Ok(());
        }
        self.apply(&next)?;
        *current = next;
        Ok(())
    }
}

fn write_conf(path: &Path, config: &RouterConfig) -> Result<()> {
    fs::write(path, conf::render(config))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
