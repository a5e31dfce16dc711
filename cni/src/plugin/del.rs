//! DEL: hand the pod's teardown to ginger-node, or remove the veth here and release. Idempotent.
//!
//! Owns: the DEL order. First `Teardown`: when ginger-node knows the pod's host link, it
//! answers `Queued` and removes the veth after DEL has returned (the kernel's veth removal
//! blocks for ~18 ms of RCU grace periods, more than the rest of DEL together), releasing the
//! addresses only once the link is gone. Otherwise (`NotQueued`, an older agent) the plugin does
//! it itself: `teardown_workload` (a missing namespace or link is success), then `Release` (an
//! unknown handle is success). When ginger-node is unreachable the veth is still removed and DEL
//! fails with code 11 so the runtime retries; the allocation does not leak either way, because
//! ginger-node's garbage collection also releases allocations whose endpoint is gone. Must not:
//! release an address whose veth could not be removed (the runtime retries DEL instead, so an
//! address is never reused while a route still points at the pod).

use felix::workload::teardown_workload;
use tracing::info;

use super::add::dataplane_error;
use super::netns_guard::{self, PodNetns};
use super::{refused, unexpected_reply};
use crate::client::{AgentClient, AgentError};
use crate::config::NetConf;
use crate::env::CniEnv;
use crate::error::CniError;
use crate::protocol::{Reply, Request};

/// Runs DEL.
pub fn del(env: &CniEnv, conf: &NetConf, agent: &AgentClient) -> Result<(), CniError> {
    let handle = conf.handle(&env.container_id);
    let unreachable = match agent.call(Request::Teardown {
        handle: handle.clone(),
    }) {
        Ok(Reply::Queued) => {
            info!(
                handle,
                "ginger-node removes the veth, then releases the addresses"
            );
            return Ok(());
        }
        Ok(Reply::NotQueued { reason }) => {
            info!(handle, reason, "removing the veth here");
            None
        }
        // An agent from before `Teardown`, or one refusing it: the plugin's own path decides.
        Ok(other) => {
            info!(handle, reply = ?other, "teardown not queued; removing the veth here");
            None
        }
        Err(e) => Some(e),
    };
    match env.netns.as_deref() {
        Some(netns) => match netns_guard::classify(netns)? {
            PodNetns::Exists => {
                teardown_workload(netns, &env.ifname)
                    .map_err(|e| dataplane_error("cannot remove the pod's veth", &e))?;
                info!(netns, ifname = %env.ifname, "veth removed");
            }
            PodNetns::Missing => info!(netns, "network namespace already gone"),
        },
        None => info!("no CNI_NETNS: nothing to tear down"),
    }
    if let Some(e) = unreachable {
        return Err(veth_removed_but(&e, &handle));
    }
    let reply = agent.call(Request::Release {
        handle: handle.clone(),
    });
    match reply {
        Ok(Reply::Ok) => {
            info!(handle, "addresses released");
            Ok(())
        }
        Ok(Reply::Error { kind, message }) => Err(refused("the release", kind, &message)),
        Ok(other) => Err(unexpected_reply("Release", &other)),
        Err(e) => Err(veth_removed_but(&e, &handle)),
    }
}

/// The CNI error (code 11) for an agent that could not be reached after the veth went.
fn veth_removed_but(e: &AgentError, handle: &str) -> CniError {
    e.to_cni().with_detail(format!(
        "the pod's veth is removed; {handle} stays allocated until DEL is retried or \
         ginger-node's garbage collection releases it"
    ))
}
