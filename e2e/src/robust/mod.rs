//! What the robustness scenarios (`tests/robust_*.rs`) share: a lab of one `ginger-node`, a
//! well-behaved BIRD peer and a raw peer on one segment (`lab`), the witnesses that a bad input
//! disturbed nothing else (`witness`: session marks, memory, CPU, logs), plain HTTP and
//! Prometheus readers (`http`), `gingerctl` runs and a strict reader of `node status`
//! (`status`), the zettabgp case table (`cases`) and a seeded message mutator (`mutate`).
//!
//! Owns: those helpers and the lab's addresses. Must not: use Ginger's codec or reach into the
//! agent (everything is read through its control socket, HTTP endpoints, logs and `/proc`), or
//! touch the machine's own namespace: HTTP requests are made from a thread inside the node's
//! namespace, `gingerctl` only opens a unix socket. The `assert_*` functions panic with the
//! evidence, as test assertions do; everything else returns `Result`.

pub mod cases;
pub mod http;
pub mod lab;
pub mod mutate;
pub mod status;
pub mod witness;

pub use cases::{ZettaCase, hex, unhex, update_attr_bytes, zettabgp_cases};
pub use http::{HttpReply, MetricSamples, Sample, http_get};
pub use lab::*;
pub use mutate::{Framing, Rng, abuse_corpus, fix_length, mutate};
pub use status::{
    CtlRun, NodeStatusText, STATUS_TITLES, STATUS_WRAP, StatusRow, gingerctl, parse_node_status,
    utc_clock,
};
pub use witness::{
    BirdProtocol, MemoryBudget, SessionMark, bird_protocol, bird_route_counts, cpu_load, cpu_time,
    log_lines, rss_kib, strip_ansi, wait_log_lines,
};
