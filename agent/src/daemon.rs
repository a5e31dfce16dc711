//! `ginger-node`'s main loop: load the cluster file, start the BGP speaker, serve the control
//! socket, health and metrics, and apply every change of the file (or SIGHUP) as a diff.
//!
//! Owns: start-up order, reloads, and shutdown. Must not: hold protocol logic (the speaker),
//! parse resources (the datastore) or compute peers (desired); it only wires them.
//!
//! A reload reads and validates the whole file first; a bad file is logged with the document
//! and field at fault and the running configuration stays. A good one goes to the speaker as a
//! whole `SpeakerConfig`, which diffs it (adding a peer touches no other session).

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bgp::speaker::{Speaker, SpeakerError, SpeakerHandle};
use bgp::status::{PeerStatus, RouteStatus};
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::ctl::{self, AgentState, BgpPeerRow, NodeRow};
use crate::datastore::{self, ClusterConfig, ConfigError};
use crate::desired::{self, DesiredBgp};
use crate::health::{HealthConfig, HealthEndpoints};
use crate::http;
use crate::metrics::{Metrics, MetricsEndpoint, MetricsError};

/// How often the cluster file is checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Command-line settings of `ginger-node`.
#[derive(Clone, Debug)]
pub struct Options {
    /// The cluster file.
    pub config: PathBuf,
    /// This node's name (a `Node` in the file).
    pub node_name: String,
    /// Where the control socket lives.
    pub run_dir: PathBuf,
    /// Where persistent state lives.
    pub state_dir: PathBuf,
    /// `/liveness` and `/readiness`.
    pub health_listen: SocketAddr,
    /// `/metrics`.
    pub metrics_listen: SocketAddr,
}

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The cluster file is unusable at start-up.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The BGP speaker refused to start or stopped.
    #[error(transparent)]
    Speaker(#[from] SpeakerError),
    /// The control socket could not be created.
    #[error(transparent)]
    Socket(#[from] ctl::server::BindError),
    /// Metrics registry setup failed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A directory or listener could not be set up.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// What the control socket, health and metrics read from.
pub struct NodeState {
    speaker: SpeakerHandle,
    cluster: RwLock<Arc<ClusterConfig>>,
}

impl NodeState {
    fn cluster(&self) -> Arc<ClusterConfig> {
        self.cluster
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl AgentState for NodeState {
    fn peers(&self) -> impl Future<Output = Vec<PeerStatus>> + Send {
        let speaker = self.speaker.clone();
        async move {
            match speaker.peers().await {
                Ok(p) => p,
                // A stopped speaker does not answer: liveness times out and reports it.
                Err(_) => std::future::pending().await,
            }
        }
    }

    fn routes(&self, prefix: Option<IpNet>) -> impl Future<Output = Vec<RouteStatus>> + Send {
        let speaker = self.speaker.clone();
        async move {
            match speaker.routes(prefix).await {
                Ok(r) => r,
                Err(_) => std::future::pending().await,
            }
        }
    }

    fn loc_rib_prefixes(&self) -> impl Future<Output = Option<(u64, u64)>> + Send {
        let speaker = self.speaker.clone();
        async move { speaker.rib_size().await.ok() }
    }

    fn bgp_peer_rows(&self) -> Vec<BgpPeerRow> {
        desired::bgp_peer_rows(&self.cluster())
    }

    fn node_rows(&self) -> Vec<NodeRow> {
        desired::node_rows(&self.cluster())
    }
}

/// A cheap identity of the file's content, to notice changes (editors replace files, mtimes
/// are coarse: compare what is in it).
fn fingerprint(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

fn load(path: &Path, node: &str) -> Result<(ClusterConfig, DesiredBgp), ConfigError> {
    let cluster = datastore::load(path)?;
    let desired = desired::desired_bgp(&cluster, node)?;
    Ok((cluster, desired))
}

fn log_notes(cluster: &ClusterConfig, desired: &DesiredBgp) {
    for w in cluster.warnings() {
        tracing::warn!(warning = %w, "cluster file");
    }
    for s in &desired.skipped {
        tracing::warn!(peer = %s.name, reason = %s, "peer not configured");
    }
}

fn create_dir(path: &Path) -> Result<(), DaemonError> {
    std::fs::create_dir_all(path).map_err(|source| DaemonError::Io {
        what: "cannot create directory",
        path: path.display().to_string(),
        source,
    })
}

async fn bind_tcp(addr: SocketAddr, what: &'static str) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Io {
            what,
            path: addr.to_string(),
            source,
        })
}

async fn wait_stop(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Run the node agent until `shutdown` completes (or the speaker dies).
pub async fn run(opts: Options, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let (cluster, desired) = load(&opts.config, &opts.node_name)?;
    log_notes(&cluster, &desired);
    create_dir(&opts.run_dir)?;
    create_dir(&opts.state_dir)?;

    let speaker = Speaker::start(desired.speaker.clone()).await?;
    speaker.set_originated(desired.originated.clone()).await?;
    tracing::info!(
        node = %opts.node_name,
        router_id = %desired.speaker.router_id,
        asn = desired.speaker.local_asn,
        peers = desired.speaker.peers.len(),
        originated = desired.originated.len(),
        "ginger-node started"
    );

    let started = SystemTime::now();
    let metrics = Arc::new(Metrics::new()?);
    metrics.record_config_reload(true, started);
    let state = Arc::new(NodeState {
        speaker: speaker.clone(),
        cluster: RwLock::new(Arc::new(cluster)),
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    let socket = ctl::socket_path(&opts.run_dir);
    let ctl_listener = ctl::server::bind(&socket)?;
    let mut tasks = vec![tokio::spawn(ctl::server::serve(
        ctl_listener,
        state.clone(),
        wait_stop(stop_rx.clone()),
    ))];
    let health = HealthEndpoints::new(state.clone(), HealthConfig::new(started));
    let scrape = MetricsEndpoint::new(state.clone(), metrics.clone());
    if opts.health_listen == opts.metrics_listen {
        let l = bind_tcp(
            opts.health_listen,
            "cannot listen for health and metrics on",
        )
        .await?;
        tasks.push(tokio::spawn(http::serve(
            l,
            Arc::new((health, scrape)),
            wait_stop(stop_rx.clone()),
        )));
    } else {
        let l = bind_tcp(opts.health_listen, "cannot listen for health checks on").await?;
        tasks.push(tokio::spawn(http::serve(
            l,
            Arc::new(health),
            wait_stop(stop_rx.clone()),
        )));
        let l = bind_tcp(opts.metrics_listen, "cannot listen for metrics on").await?;
        tasks.push(tokio::spawn(http::serve(
            l,
            Arc::new(scrape),
            wait_stop(stop_rx.clone()),
        )));
    }

    let result = watch_config(&opts, &speaker, &state, &metrics, shutdown).await;

    // As for a restart: with graceful restart, sessions end without a NOTIFICATION, so peers
    // keep forwarding to this node's pods until it is back (Calico's BIRD is killed, likewise).
    tracing::info!("shutting down: leaving BGP sessions for a graceful restart; routes stay");
    let _ = speaker.shutdown_for_restart().await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(&socket);
    result
}

/// Apply the file on change and on SIGHUP until `shutdown`.
async fn watch_config(
    opts: &Options,
    speaker: &SpeakerHandle,
    state: &NodeState,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let mut hup = signal(SignalKind::hangup()).map_err(|source| DaemonError::Io {
        what: "cannot handle",
        path: "SIGHUP".into(),
        source,
    })?;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = fingerprint(&opts.config);
    let mut missing_logged = false;
    tokio::pin!(shutdown);
    loop {
        let why = tokio::select! {
            () = &mut shutdown => return Ok(()),
            _ = hup.recv() => "SIGHUP",
            _ = tick.tick() => {
                // A dead speaker means a dead agent: exit so the supervisor restarts us.
                if let Err(e) = speaker.peers().await {
                    return Err(e.into());
                }
                let now = fingerprint(&opts.config);
                match now {
                    None => {
                        if !missing_logged {
                            tracing::error!(file = %opts.config.display(),
                                "cluster file unreadable; keeping the running configuration");
                            missing_logged = true;
                        }
                        continue;
                    }
                    Some(_) if now == seen => continue,
                    Some(_) => {}
                }
                missing_logged = false;
                seen = now;
                "file changed"
            }
        };
        reload(opts, speaker, state, metrics, why).await;
    }
}

async fn reload(
    opts: &Options,
    speaker: &SpeakerHandle,
    state: &NodeState,
    metrics: &Metrics,
    why: &str,
) {
    let (cluster, desired) = match load(&opts.config, &opts.node_name) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(
                trigger = why,
                "configuration rejected, keeping the running one: {e}"
            );
            metrics.record_config_reload(false, SystemTime::now());
            return;
        }
    };
    log_notes(&cluster, &desired);
    match speaker.apply(desired.speaker).await {
        Ok(diff) => {
            if let Err(e) = speaker.set_originated(desired.originated).await {
                tracing::error!("originated routes not updated: {e}");
            }
            *state.cluster.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cluster);
            metrics.record_config_reload(true, SystemTime::now());
            tracing::info!(
                trigger = why,
                added = ?diff.added,
                removed = ?diff.removed,
                reset = ?diff.changed,
                restart_all = diff.restart_all,
                "configuration applied"
            );
        }
        Err(e) => {
            tracing::error!(
                trigger = why,
                "configuration rejected, keeping the running one: {e}"
            );
            metrics.record_config_reload(false, SystemTime::now());
        }
    }
}
