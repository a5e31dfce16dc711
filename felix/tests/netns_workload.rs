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

/// ginger-node's teardown after DEL: several pods' host links removed together (one group
/// deletion), matched by index and name: a link whose index now carries another name, a link
/// that is gone, and links of other groups are untouched; with a foreign link already in the
/// teardown group, the links are deleted one by one and the foreign one stays.
#[test]
fn netns_host_links_are_removed_by_index_in_one_batch() {
    let host = Netns::create("fx-wl-batch").expect("host namespace");
    let pods: Vec<Netns> = (0..4)
        .map(|i| Netns::create(&format!("fx-wl-bp{i}")).expect("pod namespace"))
        .collect();
    for (i, pod) in pods.iter().enumerate() {
        ip(
            &host,
            &format!(
                "link add calibatch{i} type veth peer name eth0 netns {}",
                pod.name()
            ),
        );
    }
    ip(&host, "link add other0 type veth peer name other1");
    ip(&host, "link set other0 group 5");
    let index = |name: &str| -> u32 {
        ip_json(&host, &["link", "show", "dev", name])[0]["ifindex"]
            .as_u64()
            .expect("ifindex") as u32
    };
    let jobs = vec![
        ("calibatch0".to_string(), index("calibatch0")),
        ("calibatch1".to_string(), index("calibatch1")),
        ("calibatch2".to_string(), index("calibatch2")),
        // Index of calibatch3, recorded under another name: a newer pod owns it now.
        ("calistale".to_string(), index("calibatch3")),
        // Gone already.
        ("caligone".to_string(), 999_999),
    ];
    let removed = host
        .run(|| felix::workload::remove_host_links(&jobs))
        .unwrap()
        .expect("remove_host_links");
    assert_eq!(removed, 3);
    let left = links(&host);
    for gone in ["calibatch0", "calibatch1", "calibatch2"] {
        assert!(!left.iter().any(|l| l == gone), "{gone} left: {left:?}");
    }
    for kept in ["calibatch3", "other0", "other1"] {
        assert!(left.iter().any(|l| l == kept), "{kept} removed: {left:?}");
    }
    // The pods' ends went with them.
    assert_eq!(links(&pods[0]), ["lo"]);
    assert!(links(&pods[3]).iter().any(|l| l == "eth0"));

    // A foreign link in the teardown group: ours still go (one by one), it stays.
    ip(
        &host,
        &format!(
            "link set other0 group {}",
            felix::workload::TEARDOWN_LINK_GROUP
        ),
    );
    ip(&host, "link add calibatch4 type veth peer name calibatch5");
    let jobs = vec![
        ("calibatch3".to_string(), index("calibatch3")),
        ("calibatch4".to_string(), index("calibatch4")),
    ];
    let removed = host
        .run(|| felix::workload::remove_host_links(&jobs))
        .unwrap()
        .expect("remove_host_links");
    assert_eq!(removed, 2);
    let left = links(&host);
    assert!(left.iter().any(|l| l == "other0"), "{left:?}");
    assert!(!left.iter().any(|l| l.starts_with("calibatch")), "{left:?}");
}
