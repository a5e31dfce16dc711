//! CHECK: is the pod's networking still what ADD reported?
//!
//! Owns: comparing `prevResult` with the kernel and with ginger-node (CNI spec §2 "CHECK"):
//! the pod link `CNI_IFNAME` exists in `CNI_NETNS`, is up, has the listed MAC and every listed
//! address; the host link listed just before it exists (with its listed MAC); the default
//! routes Ginger created are there; and ginger-node still holds the handle with those
//! addresses (`Check`). Later plugins may add routes or change the MAC (they then update the
//! result), so only what Ginger created and the result lists is checked. Must not: change
//! anything.

use std::net::IpAddr;

use felix::workload::{GATEWAY_V4, GATEWAY_V6, WorkloadState, inspect_workload};
use ipnet::IpNet;
use tracing::info;

use super::add::dataplane_error;
use super::{netns_guard, refused, unexpected_reply};
use crate::client::AgentClient;
use crate::config::NetConf;
use crate::env::CniEnv;
use crate::error::{CniError, ErrorCode};
use crate::protocol::{ErrorKind, Reply, Request};
use crate::result::CniResult;

fn failed(msg: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::CheckFailed, msg, "")
}

/// What CHECK expects, read from `prevResult`.
#[derive(Debug, PartialEq, Eq)]
pub struct Expected {
    pub host_ifname: String,
    pub host_mac: Option<String>,
    pub container_mac: Option<String>,
    pub addresses: Vec<IpNet>,
    /// Default routes via Ginger's gateways: (destination, gateway).
    pub routes: Vec<(IpNet, IpAddr)>,
}

/// Finds Ginger's attachment in a `prevResult`.
pub fn expected(prev: &CniResult, ifname: &str, netns: &str) -> Result<Expected, CniError> {
    let idx = prev
        .container_interface(ifname, netns)
        .ok_or_else(|| failed(format!("prevResult lists no interface {ifname} in {netns}")))?;
    // Ginger lists the host link right before the pod link; chained plugins keep that order.
    let host = idx
        .checked_sub(1)
        .and_then(|i| prev.interfaces.get(i))
        .filter(|i| i.sandbox.is_none())
        .ok_or_else(|| {
            failed(format!(
                "prevResult lists no host-side interface before {ifname}"
            ))
        })?;
    let addresses = prev.addresses_of(idx);
    if addresses.is_empty() {
        return Err(failed(format!("prevResult lists no address for {ifname}")));
    }
    let gateways = [IpAddr::V4(GATEWAY_V4), IpAddr::V6(GATEWAY_V6)];
    let routes = prev
        .routes
        .iter()
        .filter(|r| r.dst.prefix_len() == 0)
        .filter_map(|r| r.gw.filter(|g| gateways.contains(g)).map(|g| (r.dst, g)))
        .collect();
    Ok(Expected {
        host_ifname: host.name.clone(),
        host_mac: host.mac.clone(),
        container_mac: prev.interfaces[idx].mac.clone(),
        addresses,
        routes,
    })
}

fn same_mac(listed: &str, actual: Option<felix::MacAddr>) -> bool {
    match (listed.parse::<felix::MacAddr>(), actual) {
        (Ok(l), Some(a)) => l == a,
        _ => false,
    }
}

/// Compares the kernel's state with what `prevResult` lists; the first difference is the error.
pub fn compare(
    expected: &Expected,
    state: &WorkloadState,
    ifname: &str,
    netns: &str,
) -> Result<(), CniError> {
    let host = state
        .host
        .as_ref()
        .ok_or_else(|| failed(format!("host link {} is missing", expected.host_ifname)))?;
    if let Some(mac) = &expected.host_mac
        && !same_mac(mac, host.mac)
    {
        return Err(failed(format!(
            "host link {} has MAC {:?}, prevResult lists {mac}",
            expected.host_ifname, host.mac
        )));
    }
    let pod = state
        .container
        .as_ref()
        .ok_or_else(|| failed(format!("{ifname} is missing from {netns}")))?;
    if !pod.link.up {
        return Err(failed(format!("{ifname} in {netns} is down")));
    }
    if let Some(mac) = &expected.container_mac
        && !same_mac(mac, pod.link.mac)
    {
        return Err(failed(format!(
            "{ifname} has MAC {:?}, prevResult lists {mac}",
            pod.link.mac
        )));
    }
    for addr in &expected.addresses {
        if !pod.addresses.contains(addr) {
            return Err(failed(format!(
                "{ifname} in {netns} lacks address {addr} (it has {:?})",
                pod.addresses
            )));
        }
    }
    for (dst, gw) in &expected.routes {
        let present = pod
            .routes
            .iter()
            .any(|r| r.dst == *dst && r.next_hops.iter().any(|h| h.gateway == Some(*gw)));
        if !present {
            return Err(failed(format!(
                "route {dst} via {gw} is missing from {netns}"
            )));
        }
    }
    Ok(())
}

/// Runs CHECK.
pub fn check(env: &CniEnv, conf: &NetConf, agent: &AgentClient) -> Result<(), CniError> {
    let raw = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidConfig,
            "CHECK needs prevResult",
            "the runtime must pass the result of the ADD (CNI spec, section 2)",
        )
    })?;
    let prev = CniResult::from_value(raw)?;
    let netns = env.netns.as_deref().unwrap_or_default();
    netns_guard::require(netns)?;
    let expected = expected(&prev, &env.ifname, netns)?;
    let state = inspect_workload(netns, &env.ifname, &expected.host_ifname)
        .map_err(|e| dataplane_error("cannot read the pod's network", &e))?;
    compare(&expected, &state, &env.ifname, netns)?;

    let handle = conf.handle(&env.container_id);
    let ips = expected.addresses.iter().map(IpNet::addr).collect();
    match agent
        .call(Request::Check {
            handle: handle.clone(),
            ips,
        })
        .map_err(|e| e.to_cni())?
    {
        Reply::Ok => {
            info!(handle, "check passed");
            Ok(())
        }
        Reply::Error {
            kind: ErrorKind::Invalid,
            message,
        } => Err(failed(format!("ginger-node disagrees: {message}"))),
        Reply::Error { kind, message } => Err(refused("the check", kind, &message)),
        other => Err(unexpected_reply("Check", &other)),
    }
}

#[cfg(test)]
mod tests {
    use felix::workload::ContainerLinkState;
    use felix::{Link, MacAddr, NextHop, Route};
    use serde_json::json;

    use super::*;

    fn prev() -> CniResult {
        CniResult::from_value(&json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "calic440f455693", "mac": "ee:ee:ee:ee:ee:ee"},
                {"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/run/netns/p"}
            ],
            "ips": [{"address": "10.244.0.9/32", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "10.9.0.0/16"}]
        }))
        .unwrap()
    }

    fn link(name: &str, mac: [u8; 6]) -> Link {
        Link {
            index: 2,
            name: name.into(),
            up: true,
            running: true,
            mtu: 1500,
            mac: Some(MacAddr(mac)),
        }
    }

    fn state() -> WorkloadState {
        WorkloadState {
            host: Some(link("calic440f455693", [0xee; 6])),
            container: Some(ContainerLinkState {
                link: link("eth0", [2, 0, 0, 0, 0, 1]),
                addresses: vec!["10.244.0.9/32".parse().unwrap()],
                routes: vec![Route::via(
                    "0.0.0.0/0".parse().unwrap(),
                    vec![NextHop {
                        gateway: Some(IpAddr::V4(GATEWAY_V4)),
                        ifindex: 2,
                        onlink: false,
                    }],
                    3,
                )],
            }),
        }
    }

    #[test]
    fn expectations_come_from_prev_result() {
        let e = expected(&prev(), "eth0", "/run/netns/p").unwrap();
        assert_eq!(e.host_ifname, "calic440f455693");
        assert_eq!(e.container_mac.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(e.addresses, ["10.244.0.9/32".parse::<IpNet>().unwrap()]);
        // Only the default route via Ginger's gateway is Ginger's to check.
        assert_eq!(e.routes.len(), 1);
        let err = expected(&prev(), "eth1", "/run/netns/p").unwrap_err();
        assert_eq!(err.code, ErrorCode::CheckFailed);
    }

    #[test]
    fn matching_state_passes_and_each_difference_fails() {
        let e = expected(&prev(), "eth0", "/run/netns/p").unwrap();
        compare(&e, &state(), "eth0", "/run/netns/p").unwrap();

        let mut no_host = state();
        no_host.host = None;
        let mut no_pod = state();
        no_pod.container = None;
        let mut down = state();
        down.container.as_mut().unwrap().link.up = false;
        let mut other_mac = state();
        other_mac.container.as_mut().unwrap().link.mac = Some(MacAddr([2, 0, 0, 0, 0, 2]));
        let mut no_addr = state();
        no_addr.container.as_mut().unwrap().addresses.clear();
        let mut no_route = state();
        no_route.container.as_mut().unwrap().routes.clear();
        for (what, s) in [
            ("host link", no_host),
            ("pod link", no_pod),
            ("down", down),
            ("MAC", other_mac),
            ("address", no_addr),
            ("route", no_route),
        ] {
            let err = compare(&e, &s, "eth0", "/run/netns/p").unwrap_err();
            assert_eq!(err.code, ErrorCode::CheckFailed, "{what}");
        }
    }
}
