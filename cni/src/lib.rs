//! Ginger's CNI contract: what the `ginger` plugin and the node agent say to each other.
//!
//! Layout:
//! - `protocol`: requests and replies on the agent's CNI socket (`<run-dir>/cni.sock`).
//!
//! Must not: depend on tokio, kube, the datastore or the BGP speaker — the plugin that links this
//! crate stays small and starts fast.

pub mod protocol;
