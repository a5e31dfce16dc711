//! The real `ginger` binary, executed inside a node namespace with the environment and stdin a
//! runtime passes (CNI spec §2), against the test agent on a temporary socket. Pods are network
//! namespaces the tests create. Each test checks the kernel by listing (`ip -j`), not by
//! trusting the plugin's output.

mod common;

use std::path::Path;

use cni::protocol::Request;
use common::agent::{Allocation, TestAgent};
use common::{
    Attachment, NODE_ADDR, addresses, ginger, ip, ip_json, links, node_namespace, pod_namespace,
    route,
};
use felix::netns::Netns;
use serde_json::{Value, json};

const NET: &str = "k8s-pod-network";

fn conf(version: &str, run_dir: &Path) -> Value {
    json!({
        "cniVersion": version,
        "name": NET,
        "type": "ginger",
        "run_dir": run_dir,
        "log_level": "debug",
    })
}

fn with_prev(mut conf: Value, prev: &Value) -> Value {
    conf["prevResult"] = prev.clone();
    conf
}

fn env(att: &Attachment, command: &str) -> Vec<(String, String)> {
    att.env(command)
}

fn without(mut env: Vec<(String, String)>, key: &str) -> Vec<(String, String)> {
    env.retain(|(k, _)| k != key);
    env
}

fn with(mut env: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    env.retain(|(k, _)| k != key);
    env.push((key.into(), value.into()));
    env
}

fn mac_of(ns: &Netns, dev: &str) -> String {
    ip_json(ns, &["link", "show", "dev", dev])[0]["address"]
        .as_str()
        .expect("mac")
        .to_string()
}

/// Nothing of the pod exists: no pod link, no host link, no host route.
fn assert_pod_gone(node: &Netns, pod: &Netns, att: &Attachment, ip: &str) {
    assert_eq!(links(pod), ["lo"], "pod links left behind");
    assert!(
        !links(node).contains(&att.host_ifname()),
        "host link {} left behind",
        att.host_ifname()
    );
    assert!(
        route(node, "-4", ip).is_none(),
        "host route {ip} left behind"
    );
}

fn node_links_untouched(node: &Netns) {
    let mut names = links(node);
    names.sort();
    assert_eq!(names, ["lo", "up0", "up1"]);
}

#[test]
fn version_is_answered_without_a_config() {
    // CNI spec §2 "VERSION" and §5 "Version".
    let node = node_namespace();
    let env = vec![("CNI_COMMAND".to_string(), "VERSION".to_string())];
    let out = common::exec_in(&node, common::GINGER, &env, r#"{"cniVersion":"1.0.0"}"#);
    assert_eq!(
        out.ok(),
        json!({"cniVersion": "1.0.0",
               "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
    let out = common::exec_in(&node, common::GINGER, &env, "");
    assert_eq!(out.ok()["cniVersion"], "1.1.0");
}

#[test]
fn bad_input_is_refused_before_anything_is_created() {
    let node = node_namespace();
    let pod = pod_namespace();
    let run = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_in(run.path(), &["10.65.0.2/26"]);
    let att = Attachment::new(&pod, "bad-input");
    let good = conf("1.0.0", run.path());

    // Malformed stdin: code 6 saying what is wrong.
    let out = common::exec_in(
        &node,
        common::GINGER,
        &env(&att, "ADD"),
        r#"{"cniVersion": "1.0.0", "name": "#,
    );
    let e = out.err(6);
    assert!(e["details"].as_str().unwrap().contains("EOF"), "{e}");
    // Unsupported cniVersion: code 1 listing what is supported.
    let e = ginger(&node, &env(&att, "ADD"), &conf("0.2.0", run.path())).err(1);
    assert!(e["details"].as_str().unwrap().contains("1.1.0"), "{e}");
    // Missing CNI_NETNS: code 4 naming it.
    let e = ginger(&node, &without(env(&att, "ADD"), "CNI_NETNS"), &good).err(4);
    assert!(e["msg"].as_str().unwrap().contains("CNI_NETNS"), "{e}");
    // A namespace that does not exist: code 3.
    let gone = with(
        env(&att, "ADD"),
        "CNI_NETNS",
        "/var/run/netns/gcni-no-such-ns",
    );
    ginger(&node, &gone, &good).err(3);
    // The node's own namespace as the pod's: code 8, never a veth in the node.
    let own = with(
        env(&att, "ADD"),
        "CNI_NETNS",
        &node.path().to_string_lossy(),
    );
    ginger(&node, &own, &good).err(8);
    // Another IPAM plugin: code 2 naming the field.
    let mut foreign = good.clone();
    foreign["ipam"] = json!({"type": "host-local"});
    let e = ginger(&node, &env(&att, "ADD"), &foreign).err(2);
    assert!(e["msg"].as_str().unwrap().contains("ipam.type"), "{e}");
    // A bad value: code 7 naming the key.
    let mut bad_mtu = good.clone();
    bad_mtu["mtu"] = json!("jumbo");
    let e = ginger(&node, &env(&att, "ADD"), &bad_mtu).err(7);
    assert!(e["msg"].as_str().unwrap().contains("mtu"), "{e}");

    assert!(
        agent.state().requests.is_empty(),
        "no request may reach the agent"
    );
    assert_eq!(links(&pod), ["lo"]);
    node_links_untouched(&node);
}

#[test]
fn agent_absent_is_code_11_and_nothing_is_created() {
    let node = node_namespace();
    let pod = pod_namespace();
    let empty_run_dir = tempfile::tempdir().unwrap();
    let att = Attachment::new(&pod, "no-agent");
    let out = ginger(
        &node,
        &env(&att, "ADD"),
        &conf("1.0.0", empty_run_dir.path()),
    );
    let e = out.err(11);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("is ginger-node running?"),
        "{e}"
    );
    assert_eq!(e["cniVersion"], "1.0.0");
    assert_eq!(links(&pod), ["lo"]);
    node_links_untouched(&node);
}

#[test]
fn add_check_del_in_1_1_0() {
    let node = node_namespace();
    let pod = pod_namespace();
    let run = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_in(run.path(), &["10.65.0.2/26", "10.65.0.3/26"]);
    let att = Attachment::new(&pod, "web-0");
    let cali = att.host_ifname();
    let base = conf("1.1.0", run.path());

    let result = ginger(&node, &env(&att, "ADD"), &base).ok();

    // The result is Calico's shape in 1.1.0 (calico.md §1.3), with the pod's real MAC.
    let mac = mac_of(&pod, "eth0");
    assert_eq!(
        result,
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": cali, "mac": "ee:ee:ee:ee:ee:ee", "mtu": 1440},
                {"name": "eth0", "mac": mac, "mtu": 1440, "sandbox": att.netns}
            ],
            "ips": [{"address": "10.65.0.2/32", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
        })
    );

    // The pod: its /32, MTU from the agent, the gateway link route and the default route.
    assert_eq!(addresses(&pod, "eth0"), ["10.65.0.2/32"]);
    assert_eq!(
        ip_json(&pod, &["link", "show", "dev", "eth0"])[0]["mtu"],
        1440
    );
    let gw = route(&pod, "-4", "169.254.1.1").expect("gateway link route");
    assert_eq!(
        (gw["dev"].as_str(), gw["scope"].as_str()),
        (Some("eth0"), Some("link"))
    );
    assert_eq!(
        route(&pod, "-4", "default").expect("default route")["gateway"],
        "169.254.1.1"
    );
    // The node: the cali link with the fixed MAC and the host route with Ginger's protocol.
    assert_eq!(mac_of(&node, &cali), "ee:ee:ee:ee:ee:ee");
    let host_route = route(&node, "-4", "10.65.0.2").expect("host route");
    assert_eq!(
        (
            host_route["dev"].as_str(),
            host_route["scope"].as_str(),
            host_route["protocol"].as_str()
        ),
        (Some(cali.as_str()), Some("link"), Some("97"))
    );
    // Traffic flows: the pod reaches the node through 169.254.1.1 (proxy ARP).
    pod.exec("ping", &["-c", "1", "-W", "2", NODE_ADDR])
        .expect("pod pings the node");

    // The agent saw Assign then EndpointReady with what was built.
    {
        let s = agent.state();
        assert_eq!(s.requests.len(), 2, "{:?}", s.requests);
        let Request::Assign(a) = &s.requests[0] else {
            panic!("{:?}", s.requests[0])
        };
        assert_eq!(a.handle, att.handle(NET));
        assert_eq!((a.namespace.as_str(), a.pod.as_str()), ("default", "web-0"));
        assert!(a.ipv4 && !a.ipv6);
        let Request::EndpointReady(e) = &s.requests[1] else {
            panic!("{:?}", s.requests[1])
        };
        assert_eq!(e.host_ifname, cali);
        assert_eq!(e.container_mac, mac);
        assert!(s.allocations[&att.handle(NET)].ready);
    }

    // CHECK with the ADD's result passes; after the address is removed by hand it fails.
    let checked = with_prev(base.clone(), &result);
    assert_eq!(
        ginger(&node, &env(&att, "CHECK"), &checked).ok(),
        Value::Null
    );
    ip(&pod, "addr del 10.65.0.2/32 dev eth0");
    let e = ginger(&node, &env(&att, "CHECK"), &checked).err(106);
    assert!(e["msg"].as_str().unwrap().contains("10.65.0.2/32"), "{e}");

    // DEL removes everything and releases the handle; a second DEL is fine too.
    assert_eq!(ginger(&node, &env(&att, "DEL"), &checked).ok(), Value::Null);
    assert_pod_gone(&node, &pod, &att, "10.65.0.2");
    assert!(agent.state().allocations.is_empty());
    ginger(&node, &env(&att, "DEL"), &checked).ok();
    node_links_untouched(&node);
}

#[test]
fn add_and_del_in_0_3_1() {
    let node = node_namespace();
    let pod = pod_namespace();
    let run = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_in(run.path(), &["10.65.0.9/26"]);
    let att = Attachment::new(&pod, "legacy");
    let mut base = conf("0.3.1", run.path());
    base["mtu"] = json!(1400);

    let result = ginger(&node, &env(&att, "ADD"), &base).ok();
    // CNI 0.3.1: ips carry "version", interfaces no mtu, "dns" always printed.
    assert_eq!(
        result,
        json!({
            "cniVersion": "0.3.1",
            "interfaces": [
                {"name": att.host_ifname(), "mac": "ee:ee:ee:ee:ee:ee"},
                {"name": "eth0", "mac": mac_of(&pod, "eth0"), "sandbox": att.netns}
            ],
            "ips": [{"version": "4", "address": "10.65.0.9/32", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
            "dns": {}
        })
    );
    // The configured MTU wins over the agent's.
    assert_eq!(
        ip_json(&pod, &["link", "show", "dev", "eth0"])[0]["mtu"],
        1400
    );
    assert_eq!(addresses(&pod, "eth0"), ["10.65.0.9/32"]);
    // CHECK does not exist in 0.3.1.
    ginger(
        &node,
        &env(&att, "CHECK"),
        &with_prev(base.clone(), &result),
    )
    .err(1);

    ginger(&node, &env(&att, "DEL"), &with_prev(base, &result)).ok();
    assert_pod_gone(&node, &pod, &att, "10.65.0.9");
    assert!(agent.state().allocations.is_empty());
}

#[test]
fn endpoint_ready_failure_undoes_everything() {
    let node = node_namespace();
    let pod = pod_namespace();
    let run = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_in(run.path(), &["10.65.0.4/26"]);
    agent.state().fail_endpoint_ready = true;
    let att = Attachment::new(&pod, "doomed");

    let e = ginger(&node, &env(&att, "ADD"), &conf("1.0.0", run.path())).err(103);
    assert!(e["msg"].as_str().unwrap().contains("injected"), "{e}");
    assert_pod_gone(&node, &pod, &att, "10.65.0.4");
    node_links_untouched(&node);
    let s = agent.state();
    let kinds: Vec<&str> = s
        .requests
        .iter()
        .map(|r| match r {
            Request::Assign(_) => "Assign",
            Request::EndpointReady(_) => "EndpointReady",
            Request::Release { .. } => "Release",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["Assign", "EndpointReady", "Release"]);
    assert!(s.allocations.is_empty(), "the address must be released");
}

#[test]
fn pool_exhausted_is_code_100_and_leaves_nothing() {
    let node = node_namespace();
    let (pod1, pod2) = (pod_namespace(), pod_namespace());
    let run = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_in(run.path(), &["10.65.0.5/26"]);
    let base = conf("1.0.0", run.path());
    let (a1, a2) = (
        Attachment::new(&pod1, "first"),
        Attachment::new(&pod2, "second"),
    );

    ginger(&node, &env(&a1, "ADD"), &base).ok();
    let e = ginger(&node, &env(&a2, "ADD"), &base).err(100);
    assert!(
        e["msg"].as_str().unwrap().contains("no free address"),
        "{e}"
    );
    assert_eq!(links(&pod2), ["lo"]);
    assert!(!links(&node).contains(&a2.host_ifname()));
    // The runtime DELs after a failed ADD: that must succeed.
    ginger(&node, &env(&a2, "DEL"), &base).ok();
    ginger(&node, &env(&a1, "DEL"), &base).ok();
    assert!(agent.state().allocations.is_empty());
    node_links_untouched(&node);
}

#[test]
fn del_with_nothing_to_delete_succeeds() {
    // CNI spec §2 "DEL": repeated DELs and missing resources are success.
    let node = node_namespace();
    let pod = pod_namespace();
    let run = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_in(run.path(), &[]);
    let att = Attachment::new(&pod, "never-added");
    let base = conf("1.0.0", run.path());

    assert_eq!(ginger(&node, &env(&att, "DEL"), &base).ok(), Value::Null);
    let gone = with(
        env(&att, "DEL"),
        "CNI_NETNS",
        "/var/run/netns/gcni-no-such-ns",
    );
    ginger(&node, &gone, &base).ok();
    ginger(&node, &without(env(&att, "DEL"), "CNI_NETNS"), &base).ok();
    let releases = agent
        .state()
        .requests
        .iter()
        .filter(|r| matches!(r, Request::Release { handle } if *handle == att.handle(NET)))
        .count();
    assert_eq!(releases, 3);
    assert_eq!(links(&pod), ["lo"]);
    node_links_untouched(&node);
}

#[test]
fn del_with_agent_down_removes_the_veth_and_asks_for_a_retry() {
    let node = node_namespace();
    let pod = pod_namespace();
    let run = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_in(run.path(), &["10.65.0.6/26"]);
    let att = Attachment::new(&pod, "orphan");
    let base = conf("1.0.0", run.path());
    ginger(&node, &env(&att, "ADD"), &base).ok();

    let state = agent.stop();
    let e = ginger(&node, &env(&att, "DEL"), &base).err(11);
    assert!(
        e["details"].as_str().unwrap().contains("stays allocated"),
        "{e}"
    );
    assert_pod_gone(&node, &pod, &att, "10.65.0.6");

    // The runtime retries once the agent is back: the address is released then.
    let agent = TestAgent::restart(run.path(), state);
    assert!(agent.state().allocations.contains_key(&att.handle(NET)));
    ginger(&node, &env(&att, "DEL"), &base).ok();
    assert!(agent.state().allocations.is_empty());
}

#[test]
fn status_and_gc_speak_to_the_agent() {
    let node = node_namespace();
    let run = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_in(run.path(), &[]);
    let base = conf("1.1.0", run.path());
    let only = |cmd: &str| {
        vec![
            ("CNI_COMMAND".to_string(), cmd.to_string()),
            ("CNI_PATH".to_string(), "/usr/lib/cni".to_string()),
        ]
    };

    // STATUS (CNI 1.1): success with no output when ready, 50 when not.
    let out = ginger(&node, &only("STATUS"), &base);
    assert_eq!(out.ok(), Value::Null);
    agent.state().not_ready = true;
    let e = ginger(&node, &only("STATUS"), &base).err(50);
    assert!(e["msg"].as_str().unwrap().contains("not ready"), "{e}");
    // ADD while the agent is not ready: try again later.
    let pod = pod_namespace();
    let att = Attachment::new(&pod, "early");
    ginger(&node, &env(&att, "ADD"), &base).err(11);
    assert_eq!(links(&pod), ["lo"]);
    agent.state().not_ready = false;

    // GC releases exactly the allocations of attachments not listed.
    for (handle, network) in [
        ("k8s-pod-network.keep", NET),
        ("k8s-pod-network.stale", NET),
        ("other.x", "other"),
    ] {
        agent.state().allocations.insert(
            handle.to_string(),
            Allocation {
                network: network.into(),
                ips: vec!["10.65.0.40/26".parse().unwrap()],
                ready: true,
                host_ifname: "calix".into(),
            },
        );
    }
    // Without the attachment list nothing is released.
    ginger(&node, &only("GC"), &base).ok();
    assert_eq!(agent.state().allocations.len(), 3);
    let mut gc = base.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    assert_eq!(ginger(&node, &only("GC"), &gc).ok(), Value::Null);
    let left: Vec<String> = agent.state().allocations.keys().cloned().collect();
    assert_eq!(left, ["k8s-pod-network.keep", "other.x"]);
    // GC needs 1.1.0.
    ginger(&node, &only("GC"), &conf("1.0.0", run.path())).err(1);
}

#[test]
fn dual_stack_add_check_del() {
    let node = node_namespace();
    let pod = pod_namespace();
    let run = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_dual(run.path(), &["10.65.0.7/26"], &["fd00:65::7/122"]);
    let att = Attachment::new(&pod, "dual");
    let mut base = conf("1.1.0", run.path());
    base["ipam"] = json!({"assign_ipv4": "true", "assign_ipv6": "true"});

    let result = ginger(&node, &env(&att, "ADD"), &base).ok();
    // Each address narrowed to /32 and /128 on the pod link; one default route per family.
    assert_eq!(
        result["ips"],
        json!([{"address": "10.65.0.7/32", "interface": 1},
               {"address": "fd00:65::7/128", "interface": 1}])
    );
    assert_eq!(
        result["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
               {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"}])
    );
    assert_eq!(addresses(&pod, "eth0"), ["10.65.0.7/32", "fd00:65::7/128"]);
    assert_eq!(
        route(&pod, "-6", "default").expect("IPv6 default route")["gateway"],
        "fe80::ecee:eeff:feee:eeee"
    );
    assert!(
        route(&node, "-6", "fd00:65::7").is_some(),
        "IPv6 host route"
    );
    let asked_both = match &agent.state().requests[0] {
        Request::Assign(a) => a.ipv4 && a.ipv6,
        other => panic!("first request is {other:?}"),
    };
    assert!(asked_both, "Assign must ask for both families");

    let checked = with_prev(base, &result);
    ginger(&node, &env(&att, "CHECK"), &checked).ok();
    // Without the IPv6 default route the pod is cut off from IPv6: CHECK says so.
    ip(&pod, "-6 route del default");
    let e = ginger(&node, &env(&att, "CHECK"), &checked).err(106);
    assert!(e["msg"].as_str().unwrap().contains("::/0"), "{e}");

    ginger(&node, &env(&att, "DEL"), &checked).ok();
    assert_pod_gone(&node, &pod, &att, "10.65.0.7");
    assert!(route(&node, "-6", "fd00:65::7").is_none());
    assert!(agent.state().allocations.is_empty());
}

#[test]
fn add_after_another_plugin_carries_its_result() {
    // CNI spec §2 "ADD": a plugin given a prevResult must pass it through or modify it.
    let node = node_namespace();
    let pod = pod_namespace();
    let run = tempfile::tempdir().unwrap();
    let _agent = TestAgent::start_in(run.path(), &["10.65.0.8/26"]);
    let att = Attachment::new(&pod, "second-in-chain");
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net0", "mac": "02:00:00:00:00:aa", "sandbox": att.netns}],
        "ips": [{"address": "192.168.50.2/24", "gateway": "192.168.50.1", "interface": 0}],
        "routes": [{"dst": "192.168.0.0/16", "gw": "192.168.50.1"}],
        "dns": {"nameservers": ["192.168.50.1"]}
    });
    let base = with_prev(conf("1.0.0", run.path()), &prev);

    let result = ginger(&node, &env(&att, "ADD"), &base).ok();
    assert_eq!(
        result,
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "net0", "mac": "02:00:00:00:00:aa", "sandbox": att.netns},
                {"name": att.host_ifname(), "mac": "ee:ee:ee:ee:ee:ee"},
                {"name": "eth0", "mac": mac_of(&pod, "eth0"), "sandbox": att.netns}
            ],
            "ips": [
                {"address": "192.168.50.2/24", "gateway": "192.168.50.1", "interface": 0},
                {"address": "10.65.0.8/32", "interface": 2}
            ],
            "routes": [
                {"dst": "192.168.0.0/16", "gw": "192.168.50.1"},
                {"dst": "0.0.0.0/0", "gw": "169.254.1.1"}
            ],
            "dns": {"nameservers": ["192.168.50.1"]}
        })
    );
    // CHECK finds Ginger's part of the combined result.
    let checked = with_prev(conf("1.0.0", run.path()), &result);
    ginger(&node, &env(&att, "CHECK"), &checked).ok();
    ginger(&node, &env(&att, "DEL"), &checked).ok();
    assert_pod_gone(&node, &pod, &att, "10.65.0.8");
}
