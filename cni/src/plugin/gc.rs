//! GC (CNI 1.1): release the allocations of attachments the runtime no longer has.
//!
//! Owns: turning `cni.dev/valid-attachments` into the handles to keep (`<network>.<containerID>`)
//! and sending `Gc`. Without that key the runtime said nothing about what is valid, so nothing
//! is released (an empty list, by contrast, means every attachment of this network is stale).
//! Network namespaces are gone by GC time (CNI spec §2 "GC"), so no veth is touched. Must not:
//! release anything the list names.

use std::collections::BTreeSet;

use tracing::{info, warn};

use super::{refused, unexpected_reply};
use crate::client::AgentClient;
use crate::config::NetConf;
use crate::error::CniError;
use crate::protocol::{Reply, Request};

/// The handles to keep, sorted and deduplicated (one container may have several interfaces).
pub fn keep_handles(conf: &NetConf) -> Option<Vec<String>> {
    let attachments = conf.valid_attachments.as_ref()?;
    let set: BTreeSet<String> = attachments
        .iter()
        .map(|a| conf.handle(&a.container_id))
        .collect();
    Some(set.into_iter().collect())
}

/// Runs GC.
pub fn gc(conf: &NetConf, agent: &AgentClient) -> Result<(), CniError> {
    let Some(keep) = keep_handles(conf) else {
        warn!("GC without cni.dev/valid-attachments: nothing released");
        return Ok(());
    };
    info!(network = %conf.name, keep = keep.len(), "garbage-collecting allocations");
    match agent.call(Request::Gc {
        network: conf.name.clone(),
        keep,
    }) {
        Ok(Reply::Ok) => Ok(()),
        Ok(Reply::Error { kind, message }) => Err(refused("garbage collection", kind, &message)),
        Ok(other) => Err(unexpected_reply("Gc", &other)),
        Err(e) => Err(e.to_cni()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn handles_come_from_valid_attachments() {
        let conf = NetConf::parse(
            json!({"cniVersion": "1.1.0", "name": "k8s-pod-network",
                   "cni.dev/valid-attachments": [
                       {"containerID": "b", "ifname": "eth0"},
                       {"containerID": "a", "ifname": "eth0"},
                       {"containerID": "a", "ifname": "net1"}]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            keep_handles(&conf).unwrap(),
            ["k8s-pod-network.a", "k8s-pod-network.b"]
        );
        let none = NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n"}"#).unwrap();
        assert_eq!(keep_handles(&none), None);
        let empty =
            NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[]}"#)
                .unwrap();
        assert_eq!(keep_handles(&empty), Some(vec![]));
    }
}
