//! Test harness: network namespaces, veth links, real BGP daemons and Ginger processes.
//!
//! Everything a scenario test, the `ginger-lab` demo and the BGP benchmark stand on: lab hosts
//! are network namespaces (`Netns`, deleted with everything in them when dropped), wired by veth
//! pairs or shared L2 segments (`Veth`, `Segment`); BIRD, FRR and GoBGP play the peers (`Bird`,
//! `Frr`, `Gobgp`, all `BgpDaemon`s, configured from one `RouterConfig`); `RawPeer` speaks
//! hand-built BGP bytes; `Proc` guards every child process; `TestDir`/`scenario` keep the logs
//! of a failed test; `bench` is the BGP benchmark behind `ginger-bench`, `converge` the route
//! convergence benchmark behind `converge-bench`; `pods` executes CNI
//! plugins (the real `ginger`, Debian's) into pod namespaces as containerd does. Nothing here
//! touches the machine's own namespace. See `e2e/README.md`.

pub mod bench;
pub mod bins;
pub mod bird;
pub mod cmd;
pub mod converge;
pub mod error;
pub mod fabric;
pub mod frr;
pub mod ginger;
pub mod gobgp;
pub mod lab;
pub mod link;
pub mod netns;
pub mod pods;
pub mod proc;
pub mod rawpeer;
pub mod robust;
pub mod router;
pub mod scenarios;
pub mod setns;
pub mod testdir;
pub mod wait;

pub use bins::bin_path;
pub use bird::Bird;
pub use error::{Error, Result};
pub use frr::Frr;
pub use ginger::{GingerNode, write_cluster};
pub use gobgp::Gobgp;
pub use link::{End, Link, Segment, Veth};
pub use netns::{Netns, list_namespaces, sweep_stale};
pub use proc::{Proc, Signal};
pub use rawpeer::{RawListener, RawMessage, RawPeer};
pub use router::{BgpDaemon, Neighbor, Originated, Route, RouteAttrs, RouterConfig};
pub use setns::{spawn_in_netns, thread_in_netns};
pub use testdir::{TestDir, scenario};
pub use wait::{wait_for, wait_until};

/// Ginger's own types that harness routes and states are expressed in.
pub use bgp::status::SessionState;
pub use bgp::types::{AsSegment, Asn, Community, Family, LargeCommunity, Origin};
