//! `ginger-lab`: a small Ginger cluster on one machine, built from network namespaces and real
//! processes, and shown the way an operator looks at a Calico cluster.
//!
//! Owns: the lab's plan (`plan`: names, addresses, AS numbers, sessions, the cluster file), the
//! ToRs' configuration (`tor`: BIRD or FRR), the lab directory and its journal (`journal`),
//! the system actions (`host`: namespaces, links, detached daemons), pods through the real CNI
//! plugins (`cni`), the read-only probes (`probe`: control sockets, `gingerctl`, ToR CLIs and
//! FIBs, the ping matrix), the text (`report`) and the three verbs (`ops`: `up`, `status`,
//! `down`). Data enters as `LabOptions` and a `LabConfig` (directory, name prefix, binaries)
//! and leaves as text and the journal `lab.json`, which lets `status` and `down` work from
//! another shell. Must not: add any address, route, link or sysctl in the machine's own
//! namespace, or send a packet from it — every daemon, plugin and ping runs inside a lab
//! namespace, and the lab's namespaces have no link to the machine's. Unlike the test
//! harness's guards, what `up` builds outlives the process: `down` removes it.

mod error;

pub mod cni;
pub mod host;
pub mod journal;
pub mod ops;
pub mod plan;
pub mod probe;
pub mod report;
pub mod tor;

pub use error::{LabError, LabResult};
pub use ops::{DEFAULT_DIR, DEFAULT_PREFIX, DownReport, LabConfig, UpOutcome, down, status, up};
pub use plan::{LabOptions, Plan, TorKind};
