//! Ginger's CNI contract and the thin `ginger` plugin.
//!
//! Layout:
//! - `protocol`: requests and replies on the agent's CNI socket (`<run-dir>/cni.sock`).
//! - `version`, `error`, `env`, `args`, `config`, `result`: the CNI types — spec versions, error
//!   codes and JSON, the `CNI_*` environment, `CNI_ARGS`, the network configuration, results in
//!   every supported version.
//! - `client`: the plugin's side of the agent socket.
//! - `plugin`: the `ginger` binary's logic (ADD, DEL, CHECK, VERSION, STATUS, GC); it calls
//!   felix's `workload` plumbing for the veth pair.
//!
//! Must not: depend on kube, the datastore or the BGP speaker, nor use an async runtime — the
//! plugin starts fast and stays small.

pub mod args;
pub mod client;
pub mod config;
pub mod env;
pub mod error;
pub mod plugin;
pub mod protocol;
pub mod result;
pub mod version;

pub use args::CniArgs;
pub use client::{AgentClient, AgentError};
pub use config::NetConf;
pub use env::{CniEnv, Command};
pub use error::{CniError, ErrorCode};
pub use result::CniResult;
pub use version::CniVersion;
