//! The Ginger node agent: wires the BGP speaker to its datastore, health, metrics and CLI.
//!
//! Layout:
//! - `datastore`: the cluster file (Kubernetes-style resources), parsed and validated.
//! - `selector`: Calico's label selector language.
//! - `desired`: what one node's BGP speaker should do, computed from the cluster.
//! - `ctl`: the control socket protocol, server, client and `gingerctl` renderers.
//! - `ipam`: Calico's IPAM (blocks, the pure allocator, the compare-and-swap block store).
//! - `endpoints`: the persisted registry of this node's pod endpoints.
//! - `pod_network`: what the CNI socket's requests do; garbage collection; the node's pod view.
//! - `cni_server`: the CNI plugin's socket.
//! - `dataplane`: pods → felix's desired state and the speaker's originated set.
//! - `learned`: BGP → kernel (best paths become felix remote routes) and restart recovery.
//! - `health`, `http`, `metrics`: liveness/readiness, the small HTTP responder, Prometheus.
//! - `daemon`: `ginger-node`'s main loop wiring all of it.

pub mod cni_server;
pub mod ctl;
pub mod daemon;
pub mod dataplane;
pub mod datastore;
pub mod desired;
pub mod endpoints;
pub mod health;
pub mod http;
pub mod ipam;
pub mod learned;
pub mod metrics;
pub mod pod_network;
pub mod selector;
pub mod teardown;
