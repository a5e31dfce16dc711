//! Pod plumbing against a real kernel: a "host" and a "pod" namespace made by the test. The pod
//! gets its /32 (and /128), the gateway routes and a working path to the host through the
//! proxy-ARP gateway 169.254.1.1; a failure midway leaves nothing behind; teardown is idempotent
//! and leaves nothing behind.

mod common;

use std::net::IpAddr;

use common::{ip, ip_json, route, sysctl};
use felix::netns::Netns;
use felix::workload::{
    WorkloadError, WorkloadSpec, host_ifname, setup_workload, teardown_workload,
};

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A host namespace with an uplink and a default route (proxy ARP answers only for addresses
/// the host can route elsewhere) and forwarding on (as felix sets it).
fn host_namespace() -> Netns {
    let host = Netns::create("fx-wl-host").expect("host namespace");
    ip(&host, "link add up0 type veth peer name up1");
    ip(&host, "link set up0 up");
    ip(&host, "link set up1 up");
    ip(&host, "route add default dev up0");
    ip(&host, "addr add 10.99.0.1/32 dev lo");
    host.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
        .expect("ip_forward");
    host
}

fn links(ns: &Netns) -> Vec<String> {
    ip_json(ns, &["link", "show"])
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(String::from))
        .collect()
}

#[test]
fn netns_workload_setup_ping_and_teardown() {
    let host = host_namespace();
    let pod = Netns::create("fx-wl-pod").expect("pod namespace");
    let cali = host_ifname("default", &format!("pod-{}", pod.name()));
    let spec = WorkloadSpec::new(
        &pod.path().to_string_lossy(),
        "eth0",
        &cali,
        vec![addr("10.0.0.5"), addr("fd00::5")],
        1400,
    );
    let info = host
        .run(|| setup_workload(&spec))
        .unwrap()
        .expect("setup_workload");
    assert_eq!(info.host_ifname, cali);

    // Container side: /32 and /128, gateway routes, MTU, up.
    let eth0 = ip_json(&pod, &["addr", "show", "dev", "eth0"])
        .pop()
        .expect("eth0 in the pod");
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["address"], info.container_mac.to_string());
    let addrs: Vec<String> = eth0["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert_eq!(addrs, ["10.0.0.5/32", "fd00::5/128"]);
    let gw = route(&pod, "-4", "169.254.1.1").expect("link route to the gateway");
    assert_eq!(
        (gw["dev"].as_str(), gw["scope"].as_str()),
        (Some("eth0"), Some("link"))
    );
    assert_eq!(
        route(&pod, "-4", "default").expect("default route")["gateway"],
        "169.254.1.1"
    );
    assert_eq!(
        route(&pod, "-6", "default").expect("IPv6 default route")["gateway"],
        "fe80::ecee:eeff:feee:eeee"
    );

    // Host side: MAC, MTU, host route with Ginger's protocol, sysctls.
    let host_link = ip_json(&host, &["link", "show", "dev", &cali])
        .pop()
        .expect("host link");
    assert_eq!(host_link["address"], "ee:ee:ee:ee:ee:ee");
    assert_eq!(host_link["mtu"], 1400);
    assert_eq!(host_link["ifindex"], info.host_ifindex);
    let r = route(&host, "-4", "10.0.0.5").expect("host route");
    assert_eq!(
        (
            r["dev"].as_str(),
            r["scope"].as_str(),
            r["protocol"].as_str()
        ),
        (Some(cali.as_str()), Some("link"), Some("97"))
    );
    assert_eq!(
        route(&host, "-6", "fd00::5").expect("host IPv6 route")["dev"],
        cali.as_str()
    );
    for (key, value) in felix::sysctl::workload_link_sysctls(&cali) {
        assert_eq!(sysctl(&host, &key), value, "{key}");
    }

    // The pod reaches the host through 169.254.1.1, answered by proxy ARP with the host MAC.
    pod.exec("ping", &["-c", "1", "-W", "2", "10.99.0.1"])
        .expect("pod pings the host through its gateway");
    let neigh = ip_json(&pod, &["neigh", "show", "dev", "eth0"]);
    let gw_neigh = neigh
        .iter()
        .find(|n| n["dst"] == "169.254.1.1")
        .expect("gateway resolved by ARP");
    assert_eq!(gw_neigh["lladdr"], "ee:ee:ee:ee:ee:ee");

    // Teardown removes both ends and the host routes; repeating it is fine.
    teardown_workload(&pod.path().to_string_lossy(), "eth0").expect("teardown");
    assert!(!links(&host).contains(&cali), "host link left behind");
    assert!(
        !links(&pod).contains(&"eth0".to_string()),
        "pod link left behind"
    );
    assert!(
        route(&host, "-4", "10.0.0.5").is_none(),
        "host route left behind"
    );
    teardown_workload(&pod.path().to_string_lossy(), "eth0").expect("second teardown");
    teardown_workload("/var/run/netns/fx-no-such-namespace", "eth0")
        .expect("teardown of a missing namespace");
}

#[test]
fn netns_workload_failure_midway_leaves_nothing() {
    let host = host_namespace();
    let pod = Netns::create("fx-wl-pod").expect("pod namespace");
    // Another link already holds a route to the pod's address: Calico refuses, so do we.
    ip(&host, "route add 10.0.0.6/32 dev up0 proto static");
    let cali = host_ifname("default", &format!("conflict-{}", pod.name()));
    let spec = WorkloadSpec::new(
        &pod.path().to_string_lossy(),
        "eth0",
        &cali,
        vec![addr("10.0.0.6")],
        0,
    );
    let err = host
        .run(|| setup_workload(&spec))
        .unwrap()
        .expect_err("conflicting route must fail");
    assert!(matches!(err, WorkloadError::RouteConflict { .. }), "{err}");
    assert!(!links(&host).contains(&cali), "host link left behind");
    assert!(
        !links(&pod).contains(&"eth0".to_string()),
        "pod link left behind"
    );
    assert_eq!(
        route(&host, "-4", "10.0.0.6").expect("foreign route kept")["dev"],
        "up0"
    );

    // A missing pod namespace fails before anything is created.
    let gone = WorkloadSpec::new(
        "/var/run/netns/fx-no-such-namespace",
        "eth0",
        &cali,
        vec![addr("10.0.0.7")],
        0,
    );
    assert!(matches!(
        host.run(|| setup_workload(&gone)).unwrap(),
        Err(WorkloadError::Netns(_))
    ));
    assert!(!links(&host).contains(&cali));
}
