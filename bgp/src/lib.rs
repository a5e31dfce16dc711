//! Ginger's embedded BGP-4 speaker.
//!
//! Layout (one concern per module):
//! - `types`: address families, AS paths, path attributes (pure data).
//! - `packet`: the wire format, Ginger's guard around `zettabgp` (decode never panics).
//! - `negotiate`: our OPEN, and checking the peer's OPEN / agreeing on capabilities.
//! - `fsm`: the pure per-peer session state machine (RFC 4271 §8) with collision handling.
//! - `config`: the declarative configuration the agent hands over, and its diff.
//! - `rib`: Loc-RIB (holding every received path), decision process, Adj-RIB-Out.
//! - `policy`: import/export rules (loops, reflection, next hop, Calico's export filter).
//! - `intern`: shared attribute sets.
//! - `speaker`: the core task, the listener and `SpeakerHandle`, the agent's API.
//! - `session`: one driver task per peer: sockets, timers, framing, the FSM's outputs.
//! - `status`: snapshots and best-path change events for the agent, CLI and metrics.
//!
//! Must not: touch the kernel FIB, Kubernetes or files; the agent wires those.

pub mod config;
pub mod fsm;
pub mod intern;
pub mod negotiate;
pub mod packet;
pub mod policy;
pub mod rib;
mod session;
pub mod speaker;
pub mod status;
pub mod types;
