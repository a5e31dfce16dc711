//! The Ginger node agent: wires the BGP speaker to its datastore, health, metrics and CLI.

pub mod datastore;
pub mod desired;
pub mod selector;
