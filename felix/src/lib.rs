//! felix: Ginger's dataplane reconciler and the only code that touches the kernel (routes,
//! neighbour entries, sysctls, links). Desired state (`model`) and a cache of the kernel
//! (`programmed`) meet in the pure `plan`; `dataplane` applies the resulting ops through batched
//! netlink (or an in-memory mock); `reconciler` runs the resync loop. `workload` and `netns` are
//! the plumbing the CNI plugin and tests use. See `felix/README.md` for ownership and defaults.

pub mod dataplane;
pub mod model;
pub mod monitor;
pub mod mtu;
pub mod netns;
pub mod nlsock;
pub mod ownership;
pub mod plan;
pub mod programmed;
pub mod reconciler;
pub mod sha1;
mod sys;
pub mod sysctl;
pub mod workload;

pub use dataplane::{Dataplane, DataplaneError, OpError};
pub use model::{
    DesiredChange, DesiredState, Link, MacAddr, Neighbour, NextHop, NextHopSet, RemoteRoute,
    Resolution, Route, RouteKind, WorkloadEndpoint,
};
pub use ownership::Ownership;
pub use plan::{Op, Plan, PlanContext, Reason, Rejected, RouteSource, plan};
pub use reconciler::{
    FibSnapshot, MetricsSnapshot, ReconcilerConfig, ReconcilerCore, ReconcilerHandle,
};
