//! `ginger-node` as a test process: start it inside a namespace with its own run and state
//! directories, and read its state through the real control socket (the same client
//! `gingerctl` uses), so tests see exactly what an operator sees.
//!
//! Owns: launching, the control-socket queries, waits on sessions and routes, and `gingerctl`
//! runs. Must not: reach into the agent's memory or bypass its socket.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent::ctl::client;
use agent::ctl::{Reply, Request};
use bgp::status::{PeerStatus, RouteStatus, SessionState};
use ipnet::IpNet;

use crate::bins::bin_path;
use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::proc::Proc;
use crate::wait::wait_for;

/// How long one control-socket query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Write a cluster file (YAML documents) into `dir` and return its path.
pub fn write_cluster(dir: &Path, name: &str, yaml: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, yaml).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

/// A running `ginger-node`.
pub struct GingerNode {
    node: String,
    run_dir: PathBuf,
    proc: Proc,
}

impl GingerNode {
    /// Start `ginger-node --config <cluster> --node-name <node>` inside `ns`, with run and
    /// state directories under `dir/ginger-<node>/`. `extra` is appended to the command line.
    pub fn start(
        ns: &Netns,
        dir: &Path,
        cluster: &Path,
        node: &str,
        extra: &[&str],
    ) -> Result<GingerNode> {
        GingerNode::start_binary(ns, dir, &bin_path("ginger-node")?, cluster, node, extra)
    }

    /// `start` with an explicit `ginger-node` binary (the benchmark runs the release build
    /// whatever profile the harness itself was built with).
    pub fn start_binary(
        ns: &Netns,
        dir: &Path,
        bin: &Path,
        cluster: &Path,
        node: &str,
        extra: &[&str],
    ) -> Result<GingerNode> {
        let base = dir.join(format!("ginger-{node}"));
        let run_dir = base.join("run");
        let state_dir = base.join("state");
        for d in [&run_dir, &state_dir] {
            fs::create_dir_all(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        }
        let mut args: Vec<String> = vec![
            bin.display().to_string(),
            "--config".into(),
            cluster.display().to_string(),
            "--node-name".into(),
            node.into(),
            "--run-dir".into(),
            run_dir.display().to_string(),
            "--state-dir".into(),
            state_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = ns.command(&args);
        cmd.env(
            "RUST_LOG",
            std::env::var("GINGER_TEST_LOG").unwrap_or("info".into()),
        );
        let proc = Proc::spawn(cmd, &format!("ginger-{node}"), &base)?;
        Ok(GingerNode {
            node: node.to_string(),
            run_dir,
            proc,
        })
    }

    /// The node name it runs as.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Its run directory (control socket inside).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The process.
    pub fn process(&self) -> &Proc {
        &self.proc
    }

    /// The process, for signals.
    pub fn process_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// stdout + stderr so far.
    pub fn logs(&self) -> String {
        self.proc.logs()
    }

    fn query(&self, request: Request) -> Result<Reply> {
        let socket = agent::ctl::socket_path(&self.run_dir);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting a runtime for a control query", e))?;
        runtime
            .block_on(client::request(&socket, &request, QUERY_TIMEOUT))
            .map_err(|e| Error::Rejected {
                daemon: "ginger-node",
                command: format!("{request:?}"),
                output: e.to_string(),
            })
    }

    /// Every configured peer (`gingerctl node status` data).
    pub fn peers(&self) -> Result<Vec<PeerStatus>> {
        match self.query(Request::NodeStatus)? {
            Reply::NodeStatus(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    /// The peer with this address.
    pub fn peer(&self, address: IpAddr) -> Result<PeerStatus> {
        self.peers()?
            .into_iter()
            .find(|p| p.address == address)
            .ok_or(Error::UnknownPeer {
                daemon: "ginger-node",
                peer: address,
            })
    }

    /// Loc-RIB entries (all, or matching `prefix` as `gingerctl route show` does).
    pub fn routes(&self, prefix: Option<IpNet>) -> Result<Vec<RouteStatus>> {
        match self.query(Request::RouteShow { prefix })? {
            Reply::Routes(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// The entry for exactly `prefix`, if any.
    pub fn route(&self, prefix: IpNet) -> Result<Option<RouteStatus>> {
        Ok(self
            .routes(Some(prefix))?
            .into_iter()
            .find(|r| r.prefix == prefix))
    }

    /// Wait for the session with `address` to be Established.
    pub fn wait_established(&self, address: IpAddr, timeout: Duration) -> Result<PeerStatus> {
        wait_for(
            timeout,
            &format!(
                "ginger-node {}: session with {address} Established",
                self.node
            ),
            || self.peer(address),
            |p| p.state == SessionState::Established,
        )
    }

    /// Wait for the session with `address` to be in some state other than Established.
    pub fn wait_not_established(&self, address: IpAddr, timeout: Duration) -> Result<PeerStatus> {
        wait_for(
            timeout,
            &format!("ginger-node {}: session with {address} down", self.node),
            || self.peer(address),
            |p| p.state != SessionState::Established,
        )
    }

    /// Wait for `prefix` to have a best path satisfying `check`.
    pub fn wait_route(
        &self,
        prefix: IpNet,
        timeout: Duration,
        check: &dyn Fn(&RouteStatus) -> bool,
    ) -> Result<RouteStatus> {
        wait_for(
            timeout,
            &format!("ginger-node {}: route {prefix}", self.node),
            || self.route(prefix),
            |r| {
                r.as_ref()
                    .is_some_and(|r| r.paths.iter().any(|p| p.best) && check(r))
            },
        )
        .map(|r| r.expect("checked"))
    }

    /// Wait for `prefix` to have no path at all.
    pub fn wait_no_route(&self, prefix: IpNet, timeout: Duration) -> Result<()> {
        wait_for(
            timeout,
            &format!("ginger-node {}: no route {prefix}", self.node),
            || self.route(prefix),
            |r| r.is_none(),
        )
        .map(|_| ())
    }

    /// Run `gingerctl --run-dir <ours> <args>`; returns (exit code, stdout, stderr).
    pub fn gingerctl(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let bin = bin_path("gingerctl")?;
        let out = Command::new(&bin)
            .arg("--run-dir")
            .arg(&self.run_dir)
            .args(args)
            .output()
            .map_err(|e| Error::io(format!("running {}", bin.display()), e))?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

fn unexpected(reply: Reply) -> Error {
    Error::Rejected {
        daemon: "ginger-node",
        command: "control query".into(),
        output: format!("unexpected reply {reply:?}"),
    }
}
