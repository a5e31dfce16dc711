//! `ginger-node`'s main loop: load the cluster file, load the pod network (IPAM blocks and
//! endpoints), start felix and the BGP speaker, serve the CNI socket, the control socket,
//! health and metrics, and apply every change of the file (or SIGHUP) as a diff.
//!
//! Owns: start-up order, reloads, and shutdown. Must not: hold protocol logic (the speaker),
//! parse resources (the datastore), compute peers (desired), allocate addresses
//! (`pod_network`) or translate pods into routes (`dataplane`); it only wires them.
//!
//! Start-up order matters: endpoints and blocks are loaded (and garbage collected) before
//! felix gets its first desired state, and felix plans nothing before that, so a restart after
//! SIGKILL touches no live pod's route. Shutdown never flushes the dataplane.
//!
//! A reload reads and validates the whole file first; a bad file is logged with the document
//! and field at fault and the running configuration stays. A good one goes to the speaker as a
//! whole `SpeakerConfig`, which diffs it (adding a peer touches no other session); new pools
//! reach IPAM and the originated set is recomputed.

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bgp::speaker::{Speaker, SpeakerError, SpeakerHandle};
use bgp::status::{PeerStatus, RouteStatus};
use felix::{Ownership, ReconcilerConfig, ReconcilerHandle};
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::ctl::{
    self, AgentState, BgpPeerRow, EndpointRow, FibReport, IpLookup, IpamReport, NodeRow,
};
use crate::datastore::{self, ClusterConfig, ConfigError};
use crate::desired::{self, DesiredBgp};
use crate::endpoints::EndpointRegistry;
use crate::health::{HealthConfig, HealthEndpoints};
use crate::ipam::{FileStore, Ipam, IpamSettings};
use crate::learned;
use crate::metrics::{Metrics, MetricsEndpoint, MetricsError};
use crate::pod_network::{PodNetwork, PodNetworkConfig, PodNetworkError};
use crate::{cni_server, dataplane, http};

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
    /// Route protocol number on every route felix writes (97).
    pub route_protocol: u8,
    /// Workload link name prefix (`cali`).
    pub interface_prefix: String,
    /// How long an empty block stays with this node before it is given back, and how long
    /// another node's block must have been empty before this node may take it over.
    pub ipam_block_grace: Duration,
    /// How long an allocation may exist without an endpoint (an ADD in flight) before it is
    /// garbage-collected.
    pub ipam_leak_grace: Duration,
    /// Links whose MTU counts for host MTU detection (Calico's `MTUIfacePattern`).
    pub mtu_iface_pattern: String,
    /// Learned BGP routes go into the kernel (else they stay in the RIB).
    pub program_learned_routes: bool,
}

impl Options {
    /// Options with the defaults of everything but the files and the node.
    pub fn new(
        config: PathBuf,
        node_name: String,
        run_dir: PathBuf,
        state_dir: PathBuf,
    ) -> Options {
        Options {
            config,
            node_name,
            run_dir,
            state_dir,
            health_listen: SocketAddr::from(([127, 0, 0, 1], 9099)),
            metrics_listen: SocketAddr::from(([0, 0, 0, 0], 9091)),
            route_protocol: felix::ownership::DEFAULT_ROUTE_PROTOCOL,
            interface_prefix: felix::ownership::DEFAULT_IFACE_PREFIX.to_string(),
            ipam_block_grace: DEFAULT_IPAM_GRACE,
            ipam_leak_grace: DEFAULT_IPAM_GRACE,
            mtu_iface_pattern: felix::mtu::DEFAULT_MTU_IFACE_PATTERN.to_string(),
            program_learned_routes: true,
        }
    }

    /// `<state-dir>/nodes/<node>`: this node's own state (endpoints, `mtu`).
    pub fn node_dir(&self) -> PathBuf {
        self.state_dir.join("nodes").join(&self.node_name)
    }
}

/// Calico's leak grace period (`KubeControllersConfiguration` `leakGracePeriod`).
pub const DEFAULT_IPAM_GRACE: Duration = Duration::from_secs(15 * 60);

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
    /// The IPAM store or the endpoint registry could not be loaded.
    #[error("cannot load the pod network: {0}")]
    PodNetwork(#[from] PodNetworkError),
    /// felix could not start.
    #[error("cannot start the dataplane (felix): {0}")]
    Felix(#[from] felix::reconciler::ReconcilerError),
    /// Host MTU detection failed.
    #[error("cannot detect the host MTU: {0}")]
    Mtu(#[from] felix::mtu::MtuError),
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
    pods: Arc<PodNetwork<FileStore>>,
    felix: Arc<ReconcilerHandle>,
    /// `true` while restart recovery keeps the remote routes of the previous run.
    recovering: Arc<watch::Sender<bool>>,
}

/// Run blocking pod-network work off the async threads.
async fn blocking<T: Send + 'static>(
    pods: &Arc<PodNetwork<FileStore>>,
    f: impl FnOnce(&PodNetwork<FileStore>) -> T + Send + 'static,
) -> Result<T, String> {
    let pods = pods.clone();
    tokio::task::spawn_blocking(move || f(&pods))
        .await
        .map_err(|e| format!("the IPAM task failed: {e}"))
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
    fn not_ready_reasons(&self) -> Vec<String> {
        if *self.recovering.borrow() {
            vec!["graceful restart in progress (waiting for End-of-RIB from BGP peers)".into()]
        } else {
            Vec::new()
        }
    }

    fn fib_not_installed(&self) -> BTreeMap<IpNet, String> {
        let rejected = self.felix.rejected().borrow().clone();
        rejected
            .iter()
            .filter(|r| r.source == felix::plan::RouteSource::Remote)
            .map(|r| (r.dst, r.reason.to_string()))
            .collect()
    }

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

    fn ipam_report(&self) -> impl Future<Output = Result<IpamReport, String>> + Send {
        let pods = self.pods.clone();
        async move { blocking(&pods, |p| p.ipam_report().map_err(|e| e.to_string())).await? }
    }

    fn ipam_lookup(&self, ip: IpAddr) -> impl Future<Output = Result<IpLookup, String>> + Send {
        let pods = self.pods.clone();
        async move { blocking(&pods, move |p| p.ipam_lookup(ip).map_err(|e| e.to_string())).await? }
    }

    fn endpoint_rows(&self) -> Result<Vec<EndpointRow>, String> {
        Ok(self.pods.endpoint_rows())
    }

    fn fib(&self) -> impl Future<Output = Result<FibReport, String>> + Send {
        let felix = self.felix.clone();
        async move {
            match felix.snapshot().await {
                Some(s) => Ok(dataplane::fib_report(&s)),
                None => Err("felix is not running".to_string()),
            }
        }
    }

    fn dataplane_metrics(&self) -> Option<felix::MetricsSnapshot> {
        Some(self.felix.metrics())
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

/// Detect the host MTU (Calico's rule) and write it to `<node-dir>/mtu` for the plugin.
fn write_mtu(opts: &Options) -> Result<u32, DaemonError> {
    let mtu = felix::mtu::detect_host_mtu(&opts.mtu_iface_pattern)?;
    let path = opts.node_dir().join("mtu");
    // Calico writes the bare number (`/var/lib/calico/mtu`).
    std::fs::write(&path, mtu.to_string()).map_err(|source| DaemonError::Io {
        what: "cannot write",
        path: path.display().to_string(),
        source,
    })?;
    Ok(mtu)
}

/// IPAM's view of the cluster for this node.
fn ipam_settings(cluster: &ClusterConfig, opts: &Options) -> IpamSettings {
    IpamSettings {
        node: opts.node_name.clone(),
        labels: node_labels(cluster, &opts.node_name),
        pools: cluster.ip_pools().values().cloned().collect(),
        block_grace: opts.ipam_block_grace.as_secs(),
    }
}

fn node_labels(cluster: &ClusterConfig, node: &str) -> BTreeMap<String, String> {
    cluster
        .node(node)
        .map(|n| n.labels().clone())
        .unwrap_or_default()
}

/// Open the IPAM store (shared by the machine's nodes) and this node's endpoints, and load
/// them: garbage collection runs before anything is served or programmed.
async fn load_pod_network(
    opts: &Options,
    cluster: &ClusterConfig,
    mtu: u32,
    metrics: &Metrics,
) -> Result<Arc<PodNetwork<FileStore>>, DaemonError> {
    let store = FileStore::open(&opts.state_dir.join("ipam"))
        .map_err(|e| DaemonError::PodNetwork(PodNetworkError::Ipam(e.into())))?;
    let endpoints = EndpointRegistry::open(&opts.node_dir().join("endpoints"))
        .map_err(|e| DaemonError::PodNetwork(e.into()))?;
    let config = PodNetworkConfig {
        node: opts.node_name.clone(),
        iface_prefix: opts.interface_prefix.clone(),
        mtu,
        leak_grace: opts.ipam_leak_grace,
    };
    let ipam = Ipam::new(store, ipam_settings(cluster, opts));
    let (teardowns, teardown_jobs) = std::sync::mpsc::channel();
    let pods = Arc::new(
        PodNetwork::new(ipam, endpoints, config, Box::new(dataplane::host_links))
            .with_metrics(metrics.pods())
            .with_teardowns(teardowns),
    );
    crate::teardown::spawn(pods.clone(), teardown_jobs).map_err(|source| DaemonError::Io {
        what: "cannot start the teardown thread",
        path: opts.state_dir.display().to_string(),
        source,
    })?;
    let loading = pods.clone();
    tokio::task::spawn_blocking(move || loading.load())
        .await
        .map_err(|e| DaemonError::Io {
            what: "pod network load task failed",
            path: opts.state_dir.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })??;
    Ok(pods)
}

/// Run the node agent until `shutdown` completes (or the speaker dies).
pub async fn run(opts: Options, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let (cluster, desired) = load(&opts.config, &opts.node_name)?;
    log_notes(&cluster, &desired);
    create_dir(&opts.run_dir)?;
    create_dir(&opts.state_dir)?;
    create_dir(&opts.node_dir())?;
    let started = SystemTime::now();
    let metrics = Arc::new(Metrics::new()?);

    // Sockets first: a second agent for this node stops here, before it touches any state.
    // Clients queue in the listen backlog until the sockets are served below.
    let socket = ctl::socket_path(&opts.run_dir);
    let ctl_listener = ctl::server::bind(&socket)?;
    let cni_socket = cni_server::socket_path(&opts.run_dir);
    let cni_listener = cni_server::bind(&cni_socket)?;

    let mtu = write_mtu(&opts)?;
    let pods = load_pod_network(&opts, &cluster, mtu, &metrics).await?;
    let network = pods.current();
    tracing::info!(
        mtu,
        endpoints = network.endpoints.len(),
        blocks = network.owned.len(),
        borrowed = network.borrowed.len(),
        "pod network loaded"
    );
    // Ginger routes in the kernel mean this agent restarted: keep the remote ones (stale)
    // until BGP has relearned them, and say so in the OPEN (RFC 4724 restart state).
    let protocol = opts.route_protocol;
    let previous = tokio::task::spawn_blocking(move || learned::previous_run(protocol))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .unwrap_or_else(|e| {
            tracing::warn!("cannot list the kernel's routes; starting as fresh: {e}");
            learned::PreviousRun::default()
        });
    let mut desired = desired;
    let gr = &mut desired.speaker.graceful_restart;
    gr.restarting = gr.enabled && previous.routes > 0;
    let restarting = gr.restarting;
    let restart_time = Duration::from_secs(gr.restart_time.into());
    if restarting {
        tracing::info!(
            routes = previous.routes,
            remote = previous.remote,
            restart_time_s = restart_time.as_secs(),
            "graceful restart: routes of a previous run found; remote routes stay until \
             every peer has sent End-of-RIB"
        );
    }
    let recovering = Arc::new(watch::channel(restarting).0);

    // felix waits for its first desired state, which `dataplane::follow` sends below.
    let felix = Arc::new(ReconcilerHandle::spawn(ReconcilerConfig {
        ownership: Ownership {
            protocol: opts.route_protocol,
            iface_prefixes: vec![opts.interface_prefix.clone()],
        },
        ..ReconcilerConfig::default()
    })?);

    // The pod blocks are in the originated set before any session can send its table.
    let first_originated = dataplane::originated(&desired, &network);
    let speaker = Speaker::start_originating(desired.speaker.clone(), first_originated).await?;
    let learned_routes = if opts.program_learned_routes {
        speaker.subscribe().await?
    } else {
        tracing::info!("learned routes stay in the RIB (--program-learned-routes false)");
        tokio::sync::mpsc::unbounded_channel().1
    };
    tracing::info!(
        node = %opts.node_name,
        router_id = %desired.speaker.router_id,
        asn = desired.speaker.local_asn,
        peers = desired.speaker.peers.len(),
        services = desired.originated.len(),
        "ginger-node started"
    );

    metrics.record_config_reload(true, started);
    let (bgp_tx, bgp_rx) = watch::channel(Arc::new(desired));
    let state = Arc::new(NodeState {
        speaker: speaker.clone(),
        cluster: RwLock::new(Arc::new(cluster)),
        pods: pods.clone(),
        felix: felix.clone(),
        recovering: recovering.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    let inputs = dataplane::Inputs {
        network: pods.subscribe(),
        bgp: bgp_rx,
        learned: learned_routes,
        recovering: recovering.subscribe(),
    };
    let mut tasks = vec![tokio::spawn(dataplane::follow(
        inputs,
        felix.clone(),
        speaker.clone(),
        wait_stop(stop_rx.clone()),
    ))];
    if restarting {
        tasks.push(tokio::spawn(learned::recover(
            speaker.clone(),
            restart_time,
            recovering.clone(),
            wait_stop(stop_rx.clone()),
        )));
    }
    tasks.push(tokio::spawn(cni_server::serve(
        cni_listener,
        pods.clone(),
        wait_stop(stop_rx.clone()),
    )));
    tasks.push(tokio::spawn(crate::pod_network::sweep_periodically(
        pods.clone(),
        crate::pod_network::sweep_interval(opts.ipam_block_grace, opts.ipam_leak_grace),
        wait_stop(stop_rx.clone()),
    )));

    tasks.push(tokio::spawn(ctl::server::serve(
        ctl_listener,
        state.clone(),
        wait_stop(stop_rx.clone()),
    )));
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

    let result = watch_config(&opts, &speaker, &state, &metrics, &bgp_tx, shutdown).await;

    // As for a restart: with graceful restart, sessions end without a NOTIFICATION, so peers
    // keep forwarding to this node's pods until it is back (Calico's BIRD is killed, likewise).
    tracing::info!("shutting down: leaving BGP sessions for a graceful restart; routes stay");
    let _ = speaker.shutdown_for_restart().await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&cni_socket);
    // Stops felix's thread; the kernel keeps every route (felix never flushes).
    drop(state);
    drop(felix);
    result
}

/// Apply the file on change and on SIGHUP until `shutdown`.
async fn watch_config(
    opts: &Options,
    speaker: &SpeakerHandle,
    state: &NodeState,
    metrics: &Metrics,
    bgp: &watch::Sender<Arc<DesiredBgp>>,
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
                if let Err(e) = speaker.rib_size().await {
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
        reload(opts, speaker, state, metrics, bgp, why).await;
    }
}

async fn reload(
    opts: &Options,
    speaker: &SpeakerHandle,
    state: &NodeState,
    metrics: &Metrics,
    bgp: &watch::Sender<Arc<DesiredBgp>>,
    why: &str,
) {
    let (cluster, mut desired) = match load(&opts.config, &opts.node_name) {
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
    desired.speaker.graceful_restart.restarting = *state.recovering.borrow();
    match speaker.apply(desired.speaker.clone()).await {
        Ok(diff) => {
            let settings = ipam_settings(&cluster, opts);
            state.pods.set_pools(settings.pools, settings.labels);
            // `dataplane::follow` recomputes the originated set (services + pod blocks).
            bgp.send_replace(Arc::new(desired));
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
