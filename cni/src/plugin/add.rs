//! ADD: addresses from ginger-node, the pod's veth from felix, the result for the runtime.
//!
//! Owns: the three-step ADD of `protocol` (`Assign`, plumbing, `EndpointReady`) and its undo:
//! once `Assign` succeeded, any failure removes what was built and sends `Release`, so no
//! address, veth or route leaks. Builds the result Calico prints (calico.md §1.3): host link
//! then pod link (with `sandbox`), each address as /32 or /128 on interface 1, default routes
//! via the gateways; appended to a `prevResult` when Ginger is not first in the chain.
//! Must not: touch links other than the pod's veth (felix's `workload` does the plumbing).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use felix::workload::{
    GATEWAY_V4, GATEWAY_V6, WorkloadError, WorkloadInfo, WorkloadSpec, setup_workload,
    teardown_workload,
};
use ipnet::IpNet;
use tracing::{info, warn};

use super::{netns_guard, refused, unexpected_reply};
use crate::client::AgentClient;
use crate::config::NetConf;
use crate::env::CniEnv;
use crate::error::{CniError, ErrorCode};
use crate::protocol::{AssignRequest, Assigned, EndpointInfo, Reply, Request};
use crate::result::{CniResult, Interface, IpConfig, Route};

const DEFAULT_V4: IpNet = IpNet::new_assert(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
const DEFAULT_V6: IpNet = IpNet::new_assert(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);

/// The CNI error for a plumbing failure (felix has already undone its part).
pub(super) fn dataplane_error(what: &str, e: &WorkloadError) -> CniError {
    let code = match e {
        WorkloadError::InvalidName { .. } => ErrorCode::InvalidEnvironment,
        _ => ErrorCode::Dataplane,
    };
    CniError::new(code, format!("{what}: {e}"), "")
}

fn assign(
    env: &CniEnv,
    conf: &NetConf,
    netns: &str,
    agent: &AgentClient,
) -> Result<Assigned, CniError> {
    let request = Request::Assign(AssignRequest {
        handle: conf.handle(&env.container_id),
        network: conf.name.clone(),
        container_id: env.container_id.clone(),
        namespace: env.args.pod_namespace.clone(),
        pod: env.args.pod_name.clone(),
        ifname: env.ifname.clone(),
        netns: netns.to_string(),
        ipv4: conf.assign_ipv4,
        ipv6: conf.assign_ipv6,
    });
    match agent.call(request).map_err(|e| e.to_cni())? {
        Reply::Assigned(a) => Ok(a),
        Reply::Error { kind, message } => Err(refused("the address assignment", kind, &message)),
        other => Err(unexpected_reply("Assign", &other)),
    }
}

/// Sends `Release` after a failed ADD and returns the original error (noting a failed release).
fn release_after(agent: &AgentClient, handle: &str, err: CniError) -> CniError {
    let outcome = match agent.call(Request::Release {
        handle: handle.to_string(),
    }) {
        Ok(Reply::Ok) => return err,
        Ok(other) => format!("{other:?}"),
        Err(e) => e.to_string(),
    };
    warn!(
        handle,
        outcome, "could not release the addresses of a failed ADD"
    );
    err.with_detail(format!(
        "releasing {handle} also failed ({outcome}); ginger-node releases an assignment whose \
         endpoint never became ready after its grace period"
    ))
}

/// The pod's own part of the result (host link first, so the pod link is interface 1).
fn attachment_result(
    conf: &NetConf,
    netns: &str,
    info: &WorkloadInfo,
    ips: &[IpAddr],
    mtu: u32,
) -> CniResult {
    let mtu = (mtu > 0).then_some(mtu);
    let interfaces = vec![
        Interface {
            name: info.host_ifname.clone(),
            mac: Some(info.host_mac.to_string()),
            mtu,
            ..Interface::default()
        },
        Interface {
            name: info.container_ifname.clone(),
            mac: Some(info.container_mac.to_string()),
            mtu,
            sandbox: Some(netns.to_string()),
            ..Interface::default()
        },
    ];
    let ips_out = ips
        .iter()
        .map(|ip| IpConfig {
            address: IpNet::from(*ip),
            gateway: None,
            interface: Some(1),
        })
        .collect();
    let mut routes = Vec::new();
    if ips.iter().any(IpAddr::is_ipv4) {
        routes.push(Route::new(DEFAULT_V4, Some(IpAddr::V4(GATEWAY_V4))));
    }
    if ips.iter().any(IpAddr::is_ipv6) {
        routes.push(Route::new(DEFAULT_V6, Some(IpAddr::V6(GATEWAY_V6))));
    }
    CniResult {
        interfaces,
        ips: ips_out,
        routes,
        dns: conf.dns.clone(),
    }
}

/// Runs ADD and returns the result to print.
pub fn add(env: &CniEnv, conf: &NetConf, agent: &AgentClient) -> Result<CniResult, CniError> {
    // Decode everything that can be wrong before asking for an address.
    let prev = conf
        .prev_result
        .as_ref()
        .map(CniResult::from_value)
        .transpose()?;
    let netns = env.netns.as_deref().unwrap_or_default();
    netns_guard::require(netns)?;

    let handle = conf.handle(&env.container_id);
    let assigned = assign(env, conf, netns, agent)?;
    info!(handle, ips = ?assigned.ips, host_ifname = %assigned.host_ifname, "addresses assigned");
    match plumb(env, conf, netns, &handle, &assigned, agent) {
        Ok(ours) => {
            let result = match prev {
                Some(mut prev) => {
                    prev.append(ours);
                    prev
                }
                None => ours,
            };
            Ok(result)
        }
        Err(e) => Err(release_after(agent, &handle, e)),
    }
}

/// Steps 2 and 3 of ADD; on failure nothing built by this function is left behind.
fn plumb(
    env: &CniEnv,
    conf: &NetConf,
    netns: &str,
    handle: &str,
    assigned: &Assigned,
    agent: &AgentClient,
) -> Result<CniResult, CniError> {
    let ips: Vec<IpAddr> = assigned.ips.iter().map(IpNet::addr).collect();
    if ips.is_empty() {
        return Err(CniError::new(
            ErrorCode::AgentProtocol,
            "ginger-node assigned no address",
            format!("handle {handle}"),
        ));
    }
    let mtu = if conf.mtu > 0 { conf.mtu } else { assigned.mtu };
    let spec = WorkloadSpec::new(netns, &env.ifname, &assigned.host_ifname, ips.clone(), mtu);
    // On error felix has already removed whatever it created.
    let info = setup_workload(&spec)
        .map_err(|e| dataplane_error("cannot set up the pod's network", &e))?;
    info!(host_ifname = %info.host_ifname, mac = %info.container_mac, mtu, "veth ready");

    let ready = Request::EndpointReady(EndpointInfo {
        handle: handle.to_string(),
        namespace: env.args.pod_namespace.clone(),
        pod: env.args.pod_name.clone(),
        container_id: env.container_id.clone(),
        netns: netns.to_string(),
        ifname: env.ifname.clone(),
        host_ifname: info.host_ifname.clone(),
        host_ifindex: Some(info.host_ifindex),
        container_mac: info.container_mac.to_string(),
        ips: ips.clone(),
    });
    let reported = match agent.call(ready) {
        Ok(Reply::Ok) => Ok(()),
        Ok(Reply::Error { kind, message }) => Err(refused("the endpoint", kind, &message)),
        Ok(other) => Err(unexpected_reply("EndpointReady", &other)),
        Err(e) => Err(e.to_cni()),
    };
    if let Err(e) = reported {
        if let Err(undo) = teardown_workload(netns, &env.ifname) {
            warn!(error = %undo, "could not remove the veth of a failed ADD");
            return Err(e.with_detail(format!("removing the pod's veth also failed: {undo}")));
        }
        return Err(e);
    }
    Ok(attachment_result(conf, netns, &info, &ips, mtu))
}

#[cfg(test)]
mod tests {
    use felix::MacAddr;
    use serde_json::json;

    use super::*;
    use crate::version::CniVersion;

    #[test]
    fn result_is_calicos_shape() {
        // calico.md §1.3: [host link, pod link with sandbox], ips /32 on interface 1.
        let conf = NetConf::parse(
            json!({"cniVersion": "1.1.0", "name": "k8s-pod-network", "type": "ginger"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let info = WorkloadInfo {
            host_ifname: "calic440f455693".into(),
            host_ifindex: 7,
            host_mac: MacAddr::HOST_SIDE,
            container_ifname: "eth0".into(),
            container_ifindex: 2,
            container_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        };
        let ips = ["10.244.0.9".parse().unwrap()];
        let r = attachment_result(&conf, "/var/run/netns/p", &info, &ips, 1450);
        assert_eq!(
            r.to_value(CniVersion::V1_1_0),
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [
                    {"name": "calic440f455693", "mac": "ee:ee:ee:ee:ee:ee", "mtu": 1450},
                    {"name": "eth0", "mac": "02:00:00:00:00:01", "mtu": 1450,
                     "sandbox": "/var/run/netns/p"}
                ],
                "ips": [{"address": "10.244.0.9/32", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
            })
        );
        let v6 = ["fd00::9".parse().unwrap()];
        let r = attachment_result(&conf, "/var/run/netns/p", &info, &v6, 0);
        assert_eq!(r.ips[0].address.to_string(), "fd00::9/128");
        assert_eq!(r.routes[0].gw, Some(IpAddr::V6(GATEWAY_V6)));
        assert_eq!(r.interfaces[1].mtu, None);
    }
}
