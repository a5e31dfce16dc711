//! The Ginger node agent: wires the BGP speaker to its datastore, health, metrics and CLI.

pub mod ctl;
pub mod health;
pub mod http;
pub mod metrics;
