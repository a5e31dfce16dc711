//! The speaker: one core task that owns the RIB and the peers, one session task per peer, one
//! listener task; and `SpeakerHandle`, the declarative API the agent uses.
//!
//! Owns: starting and stopping all of those tasks, and the messages between them. Must not:
//! touch the kernel or read configuration sources (the agent hands over a whole
//! `SpeakerConfig` and the whole originated route set; the speaker diffs them).
//!
//! ```text
//!   agent ── SpeakerHandle ──► core task ◄── session task (per peer) ◄─► TCP ◄─► peer
//!                 ▲   apply/originate/   │ owns Rib, Adj-RIB-Out,      ▲ owns FSM, timers,
//!                 │   snapshot/subscribe │ export, best-path changes   │ codec, socket I/O
//!                 └──── RouteChange ◄────┘          ▲                  │
//!                                       listener ───┴── accepted streams go to their session
//! ```
//! Inbound UPDATEs are decoded in the session task (in parallel with the core) and reach the
//! core in batches over a bounded channel, so a core that falls behind slows the peers' TCP
//! instead of growing memory. Outbound, the core keeps a de-duplicated pending set per peer and
//! hands a session a new batch only when it has written the previous ones.

mod core;
mod listener;

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use crate::config::{ConfigDiff, ConfigError, OriginatedRoute, SpeakerConfig};
use crate::negotiate::Negotiated;
use crate::packet::{Notification, UpdateMsg};
use crate::rib::SourceId;
use crate::status::{PeerStatus, RouteChange, RouteStatus, SessionState};
use crate::types::Family;

pub(crate) use self::core::OutBatch;

/// Errors of the speaker API.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// The configuration was refused; the running one stays.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Binding the BGP listening socket failed.
    #[error("cannot listen for BGP on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The speaker has stopped.
    #[error("the BGP speaker has stopped")]
    Stopped,
}

/// A request from the agent.
pub(crate) enum ApiCmd {
    Apply(
        Box<SpeakerConfig>,
        oneshot::Sender<Result<ConfigDiff, SpeakerError>>,
    ),
    Originate(BTreeSet<OriginatedRoute>, oneshot::Sender<()>),
    Subscribe(mpsc::UnboundedSender<Vec<RouteChange>>),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    RibSize(oneshot::Sender<(u64, u64)>),
    Routes(Option<IpNet>, oneshot::Sender<Vec<RouteStatus>>),
    Shutdown {
        /// Leave without NOTIFICATIONs so that graceful-restart helpers keep our routes.
        for_restart: bool,
        reply: oneshot::Sender<()>,
    },
}

/// What a session task reports to the core.
pub(crate) enum SessionEvent {
    /// The peer's displayed state or last error changed.
    State {
        state: SessionState,
        last_error: Option<String>,
    },
    /// An FSM transition (for counters).
    Transition {
        from: SessionState,
        to: SessionState,
    },
    /// The session is up.
    Established {
        negotiated: Box<Negotiated>,
        local: SocketAddr,
    },
    /// UPDATEs received, in order.
    Updates(Vec<UpdateMsg>),
    /// An UPDATE that failed decoding (the session resets; counted as received).
    MalformedUpdate,
    /// The peer asked for our routes again (RFC 2918).
    RouteRefresh(Family),
    /// The session left Established; `graceful` when the peer's routes may be kept as stale
    /// (connection lost or hold timer expired, RFC 4724 §4.2).
    Down { reason: String, graceful: bool },
    /// A batch was written to the socket (`messages` UPDATEs).
    Written { messages: u64 },
    /// A NOTIFICATION went out.
    NotificationSent(Notification),
    /// A NOTIFICATION came in.
    NotificationReceived(Notification),
}

/// Everything the core task receives.
pub(crate) enum CoreMsg {
    Api(ApiCmd),
    Session {
        slot: SourceId,
        generation: u64,
        event: SessionEvent,
    },
    Accepted {
        stream: tokio::net::TcpStream,
        remote: SocketAddr,
    },
}

/// What the core tells a session task.
pub(crate) enum SessionCmd {
    /// The peer connected to us.
    Incoming(tokio::net::TcpStream),
    /// Send these UPDATEs (the session encodes them).
    Send(OutBatch),
    /// Close with this NOTIFICATION and end the task.
    Stop(Notification),
    /// Drop the connections without a NOTIFICATION and end the task.
    Abandon,
}

/// Capacity of the core's input channel: enough for bursts, small enough that a busy core
/// pushes back on the sessions (and through them on the peers' TCP windows).
const CORE_CHANNEL: usize = 256;

/// The running speaker.
pub struct Speaker;

impl Speaker {
    /// Validate `config`, bind the listener, start the core and one session per peer.
    /// Must be called inside a tokio runtime.
    pub async fn start(config: SpeakerConfig) -> Result<SpeakerHandle, SpeakerError> {
        Speaker::start_originating(config, BTreeSet::new()).await
    }

    /// `start`, originating `routes` from the first moment: no session can send its initial
    /// table and End-of-RIB before they are in it, so after a restart the helpers sweep
    /// nothing this node still has (RFC 4724 §4.2).
    pub async fn start_originating(
        config: SpeakerConfig,
        routes: BTreeSet<OriginatedRoute>,
    ) -> Result<SpeakerHandle, SpeakerError> {
        config.validate()?;
        let (tx, rx) = mpsc::channel(CORE_CHANNEL);
        let mut core = core::Core::new(tx.clone(), config).await?;
        core.originate(routes);
        tokio::spawn(core.run(rx));
        Ok(SpeakerHandle { tx })
    }
}

/// A cheap, cloneable handle to the speaker.
#[derive(Clone, Debug)]
pub struct SpeakerHandle {
    tx: mpsc::Sender<CoreMsg>,
}

impl SpeakerHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ApiCmd,
    ) -> Result<T, SpeakerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(CoreMsg::Api(make(reply)))
            .await
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Replace the whole configuration. Router id / AS / cluster id changes restart every
    /// session; a changed peer is reset alone; policy changes re-evaluate what was advertised.
    /// A configuration that fails validation is refused and the running one stays.
    pub async fn apply(&self, config: SpeakerConfig) -> Result<ConfigDiff, SpeakerError> {
        config.validate()?;
        self.ask(|r| ApiCmd::Apply(Box::new(config), r)).await?
    }

    /// Replace the whole set of routes this speaker originates.
    pub async fn set_originated(
        &self,
        routes: BTreeSet<OriginatedRoute>,
    ) -> Result<(), SpeakerError> {
        self.ask(|r| ApiCmd::Originate(routes, r)).await
    }

    /// Best-path changes of learned routes: first the whole current table, then deltas.
    pub async fn subscribe(
        &self,
    ) -> Result<mpsc::UnboundedReceiver<Vec<RouteChange>>, SpeakerError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx
            .send(CoreMsg::Api(ApiCmd::Subscribe(tx)))
            .await
            .map_err(|_| SpeakerError::Stopped)?;
        Ok(rx)
    }

    /// Every configured peer, now.
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        self.ask(ApiCmd::Peers).await
    }

    /// Number of prefixes in the Loc-RIB: (IPv4, IPv6).
    pub async fn rib_size(&self) -> Result<(u64, u64), SpeakerError> {
        self.ask(ApiCmd::RibSize).await
    }

    /// The Loc-RIB: every prefix, or the one matching `filter` (an address matches by longest
    /// prefix, a prefix exactly), each with all its paths and why they lost.
    pub async fn routes(&self, filter: Option<IpNet>) -> Result<Vec<RouteStatus>, SpeakerError> {
        self.ask(|r| ApiCmd::Routes(filter, r)).await
    }

    /// Close every session with Cease / Administrative Shutdown and stop the speaker: peers
    /// remove our routes at once.
    pub async fn shutdown(&self) -> Result<(), SpeakerError> {
        self.ask(|reply| ApiCmd::Shutdown {
            for_restart: false,
            reply,
        })
        .await
    }

    /// Stop the speaker as for a restart: with graceful restart enabled, sessions are dropped
    /// without a NOTIFICATION, so peers that help (RFC 4724) keep forwarding to us until we are
    /// back; without it, the same as `shutdown`.
    pub async fn shutdown_for_restart(&self) -> Result<(), SpeakerError> {
        self.ask(|reply| ApiCmd::Shutdown {
            for_restart: true,
            reply,
        })
        .await
    }
}
