//! Ginger's embedded BGP-4 speaker.
//!
//! Layout (one concern per module):
//! - `types`: address families, AS paths, path attributes (pure data).
//! - `packet`: the wire format, Ginger's guard around `zettabgp` (decode never panics).
//! - `negotiate`: our OPEN, and checking the peer's OPEN / agreeing on capabilities.
//! - `fsm`: the pure per-peer session state machine (RFC 4271 §8) with collision handling.
//! - `config`: the declarative configuration the agent hands over, and its diff.
//! - `status`: snapshots and best-path change events for the agent, CLI and metrics.
//!
//! Must not: touch the kernel FIB, Kubernetes or files; the agent wires those.

pub mod config;
pub mod fsm;
pub mod negotiate;
pub mod packet;
pub mod status;
pub mod types;
