//! DEL: remove the pod's veth, then release its addresses. Idempotent.
//!
//! Owns: the DEL order — `teardown_workload` first (a missing namespace or link is success),
//! then `Release` (an unknown handle is success). When ginger-node is unreachable the veth is
//! still removed and DEL fails with code 11 so the runtime retries; the allocation does not
//! leak either way, because ginger-node's garbage collection also releases allocations whose
//! endpoint is gone. Must not: release an address whose veth could not be removed (the runtime
//! retries DEL instead, so an address is never reused while a route still points at the pod).

use felix::workload::teardown_workload;
use tracing::info;

use super::add::dataplane_error;
use super::netns_guard::{self, PodNetns};
use super::{refused, unexpected_reply};
use crate::client::AgentClient;
use crate::config::NetConf;
use crate::env::CniEnv;
use crate::error::CniError;
use crate::protocol::{Reply, Request};

/// Runs DEL.
pub fn del(env: &CniEnv, conf: &NetConf, agent: &AgentClient) -> Result<(), CniError> {
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
    let handle = conf.handle(&env.container_id);
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
        Err(e) => Err(e.to_cni().with_detail(format!(
            "the pod's veth is removed; {handle} stays allocated until DEL is retried or \
             ginger-node's garbage collection releases it"
        ))),
    }
}
