//! Ginger first in a conflist, Debian's `portmap`, `bandwidth` and `tuning` after it, executed plugin by
//! plugin exactly as libcni does (CNI spec §3): ADD in order with each result threaded into the
//! next plugin's `prevResult` and `runtimeConfig` built from `capabilities`; CHECK in order and
//! DEL in reverse order, both with the final result. The conflist is the shipped
//! `manifests/cni/10-ginger.conflist` (paths pointed at the test's run directory) plus `bandwidth`
//! and `tuning`.

mod common;

use common::agent::TestAgent;
use common::{
    Attachment, CNI_PLUGIN_DIR, GINGER, exec_in, ip_json, links, node_namespace, pod_namespace,
    route,
};
use felix::netns::Netns;
use serde_json::{Map, Value, json};

/// The capability arguments the runtime has for this pod (kubelet's hostPort mapping).
fn capability_args() -> Value {
    json!({
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 10_000_000, "ingressBurst": 100_000,
                      "egressRate": 10_000_000, "egressBurst": 100_000}
    })
}

/// libcni `buildOneConfig`: inject name, cniVersion, prevResult and runtimeConfig.
fn plugin_config(list: &Value, plugin: &Value, prev: Option<&Value>) -> Value {
    let mut conf: Map<String, Value> = plugin.as_object().unwrap().clone();
    conf.insert("name".into(), list["name"].clone());
    conf.insert("cniVersion".into(), list["cniVersion"].clone());
    if let Some(p) = prev {
        conf.insert("prevResult".into(), p.clone());
    }
    let mut rc = Map::new();
    if let Some(caps) = plugin["capabilities"].as_object() {
        for (cap, on) in caps {
            if on.as_bool() == Some(true)
                && let Some(arg) = capability_args().get(cap)
            {
                rc.insert(cap.clone(), arg.clone());
            }
        }
    }
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    Value::Object(conf)
}

fn binary(plugin: &Value) -> String {
    match plugin["type"].as_str().unwrap() {
        "ginger" => GINGER.to_string(),
        other => format!("{CNI_PLUGIN_DIR}/{other}"),
    }
}

/// Runs `command` over the list; ADD threads results, CHECK/DEL pass `cached`.
fn run_list(
    node: &Netns,
    list: &Value,
    att: &Attachment,
    command: &str,
    cached: Option<&Value>,
) -> Option<Value> {
    let mut plugins: Vec<&Value> = list["plugins"].as_array().unwrap().iter().collect();
    if command == "DEL" {
        plugins.reverse();
    }
    let mut result = cached.cloned();
    for plugin in plugins {
        let conf = plugin_config(list, plugin, result.as_ref());
        let out = exec_in(node, &binary(plugin), &att.env(command), &conf.to_string());
        assert_eq!(
            out.code, 0,
            "{} {command} failed: {}\nstderr: {}",
            plugin["type"], out.stdout, out.stderr
        );
        if command == "ADD" {
            result = Some(out.json());
        } else {
            assert!(
                out.stdout.trim().is_empty(),
                "{} {command} printed {}",
                plugin["type"],
                out.stdout
            );
        }
    }
    result
}

/// Runs the list's DEL (errors ignored) when dropped, so a failing test leaves no plugin state
/// outside its namespaces (tuning keeps a file per attachment under /run/cni).
struct DelOnDrop<'a> {
    node: &'a Netns,
    list: &'a Value,
    att: &'a Attachment,
    result: &'a Value,
}

impl Drop for DelOnDrop<'_> {
    fn drop(&mut self) {
        for plugin in self.list["plugins"].as_array().into_iter().flatten().rev() {
            let conf = plugin_config(self.list, plugin, Some(self.result));
            let _ = exec_in(
                self.node,
                &binary(plugin),
                &self.att.env("DEL"),
                &conf.to_string(),
            );
        }
    }
}

fn iptables_nat(node: &Netns) -> String {
    node.exec("iptables-save", &["-t", "nat"])
        .expect("iptables-save in the node namespace")
}

#[test]
fn ginger_then_portmap_bandwidth_tuning_add_check_del() {
    let node = node_namespace();
    let pod = pod_namespace();
    let run = tempfile::tempdir().unwrap();
    let agent = TestAgent::start_in(run.path(), &["10.65.0.20/26"]);
    let att = Attachment::new(&pod, "chained");
    let log = run.path().join("log/cni.log");

    let shipped: Value =
        serde_json::from_str(include_str!("../../manifests/cni/10-ginger.conflist"))
            .expect("the shipped conflist is JSON");
    assert_eq!(shipped["name"], "k8s-pod-network");
    assert_eq!(shipped["cniVersion"], "1.0.0");
    assert_eq!(shipped["plugins"][1]["type"], "portmap");
    let mut list = shipped.clone();
    list["plugins"][0]["run_dir"] = json!(run.path());
    list["plugins"][0]["log_file_path"] = json!(log);
    let plugins = list["plugins"].as_array_mut().unwrap();
    plugins.push(json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}));
    plugins.push(json!({"type": "tuning", "mac": "c2:aa:bb:cc:dd:ee",
                        "sysctl": {"net.ipv4.conf.eth0.accept_local": "1"}}));

    let result = run_list(&node, &list, &att, "ADD", None).expect("final result");
    let _cleanup = DelOnDrop {
        node: &node,
        list: &list,
        att: &att,
        result: &result,
    };

    // bandwidth appended its ifb device (a host interface) to the result.
    let mut ours = result.clone();
    let ifb = ours["interfaces"].as_array_mut().unwrap().pop().unwrap();
    assert!(ifb["name"].as_str().unwrap().starts_with("bwp"), "{ifb}");
    assert!(ifb.get("sandbox").is_none(), "{ifb}");

    // portmap, bandwidth and tuning kept Ginger's interfaces, addresses and routes; tuning updated the MAC
    // (Debian's plugins, built on libcni 1.1, print an empty "dns" that Ginger leaves out).
    assert_eq!(
        ours,
        json!({
            "cniVersion": "1.0.0",
            "dns": {},
            "interfaces": [
                {"name": att.host_ifname(), "mac": "ee:ee:ee:ee:ee:ee"},
                {"name": "eth0", "mac": "c2:aa:bb:cc:dd:ee", "sandbox": att.netns}
            ],
            "ips": [{"address": "10.65.0.20/32", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
        })
    );
    // What each plugin did is in the kernel: the pod's MAC and sysctl, portmap's DNAT to the pod.
    assert_eq!(
        ip_json(&pod, &["link", "show", "dev", "eth0"])[0]["address"],
        "c2:aa:bb:cc:dd:ee"
    );
    let accept_local = pod
        .exec("cat", &["/proc/sys/net/ipv4/conf/eth0/accept_local"])
        .unwrap();
    assert_eq!(accept_local.trim(), "1");
    let nat = iptables_nat(&node);
    assert!(
        nat.lines()
            .any(|l| l.contains("--dport 8080") && l.contains("10.65.0.20:80")),
        "no DNAT to the pod:\n{nat}"
    );
    assert!(route(&node, "-4", "10.65.0.20").is_some());
    // bandwidth found Ginger's host link (the pod link's peer, listed without a sandbox): it
    // shaped it and redirected its ingress to an ifb device.
    let cali = att.host_ifname();
    let qdiscs = node.exec("tc", &["qdisc", "show", "dev", &cali]).unwrap();
    assert!(qdiscs.contains("tbf"), "no rate limit on {cali}:\n{qdiscs}");
    let ifbs = || -> Vec<String> {
        links(&node)
            .into_iter()
            .filter(|l| l.starts_with("bwp"))
            .collect()
    };
    assert_eq!(ifbs().len(), 1, "{:?}", links(&node));
    // The plugin logged to log_file_path, not to stdout.
    let logged = std::fs::read_to_string(&log).expect("log file written");
    assert!(logged.contains("addresses assigned"), "{logged}");

    // CHECK every plugin with the cached result (Ginger accepts tuning's MAC change). Debian's
    // portmap 1.1.1 also looks for an IPv6 DNAT chain an IPv4-only pod never has
    // (containernetworking/plugins#819); only that known failure is tolerated.
    for plugin in list["plugins"].as_array().unwrap() {
        let conf = plugin_config(&list, plugin, Some(&result));
        let out = exec_in(&node, &binary(plugin), &att.env("CHECK"), &conf.to_string());
        let known_portmap_bug = plugin["type"] == "portmap"
            && out.code != 0
            && out.json()["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("could not check ipv6 dnat"));
        assert!(
            out.code == 0 || known_portmap_bug,
            "{} CHECK failed: {}\n{}",
            plugin["type"],
            out.stdout,
            out.stderr
        );
    }

    // DEL in reverse order removes everything each plugin made.
    run_list(&node, &list, &att, "DEL", Some(&result));
    assert_eq!(links(&pod), ["lo"]);
    assert!(!links(&node).contains(&att.host_ifname()));
    assert!(ifbs().is_empty(), "bandwidth's ifb left behind");
    assert!(route(&node, "-4", "10.65.0.20").is_none());
    let nat = iptables_nat(&node);
    assert!(!nat.contains("10.65.0.20"), "portmap rules left:\n{nat}");
    assert!(agent.state().allocations.is_empty());
    // A repeated DEL of the whole list still succeeds.
    run_list(&node, &list, &att, "DEL", Some(&result));
}
