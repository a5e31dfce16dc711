//! The Ginger node agent: wires the BGP speaker to its datastore, health, metrics and CLI.
//!
//! Layout:
//! - `datastore`: the cluster file (Kubernetes-style resources), parsed and validated.
//! - `selector`: Calico's label selector language.
//! - `desired`: what one node's BGP speaker should do, computed from the cluster.
//! - `ctl`: the control socket protocol, server, client and `gingerctl` renderers.
//! - `health`, `http`, `metrics`: liveness/readiness, the small HTTP responder, Prometheus.
//! - `daemon`: `ginger-node`'s main loop wiring all of it.

pub mod ctl;
pub mod daemon;
pub mod datastore;
pub mod desired;
pub mod health;
pub mod http;
pub mod metrics;
pub mod selector;
