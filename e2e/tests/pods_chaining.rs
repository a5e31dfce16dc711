//! Issue 3, "How it must be shown", fourth point: the shipped conflist (`ginger` then Debian's
//! `portmap`) plus Debian's `tuning`, executed plugin by plugin as libcni does — ADD in order
//! with each result threaded into the next plugin's `prevResult` and `runtimeConfig` from the
//! declared capabilities, DEL in reverse order with the cached result — against the real
//! `ginger-node`. Checks what each plugin did in the kernel, that the port mapping carries a TCP
//! connection from the node to the pod, and that DEL undoes all of it; and that a pod whose MAC
//! `tuning` changed stays reachable. Run as root.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use e2e::pods::{
    ConfList, HOST_MAC, Pod, PodBinaries, PodNode, PodRef, ROUTE_PROTOCOL, ip_json, link_names,
    ping, pod_cluster, route_to, uplinked_node,
};
use e2e::{
    Error, Netns, Result, TestDir, scenario, spawn_in_netns, thread_in_netns, write_cluster,
};
use serde_json::{Value, json};

const TUNED_MAC: &str = "c2:aa:bb:cc:dd:ee";
const T: Duration = Duration::from_secs(5);

/// Runs the list's DEL (errors ignored) when dropped, so a failing test leaves no plugin state
/// outside its namespaces (`tuning` keeps a file per attachment under /run/cni).
struct DelOnDrop<'a> {
    node: &'a PodNode,
    list: &'a ConfList,
    pod: PodRef,
    result: Value,
}

impl Drop for DelOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self
            .node
            .cni()
            .run_list(self.list, "DEL", &self.pod, Some(&self.result));
    }
}

fn start_node(dir: &TestDir) -> Result<PodNode> {
    let yaml = pod_cluster(
        &[("node-1", "10.99.0.1/24")],
        &[("default-ipv4-ippool", "10.244.0.0/16", 26)],
        false,
    );
    let cluster = write_cluster(dir.path(), "cluster.yaml", &yaml)?;
    PodNode::start(
        uplinked_node("node", "10.99.0.1/24")?,
        dir.path(),
        PodBinaries::built()?,
        &cluster,
        "node-1",
        &[],
    )
}

/// The shipped list (ginger, portmap with the portMappings capability) plus `tuning`, with
/// kubelet's hostPort 8080 → containerPort 80.
fn chained_list(node: &PodNode, tuning: Value) -> Result<ConfList> {
    let mut list = node.shipped_conflist(&[tuning])?;
    let types: Vec<Value> = list.plugins().iter().map(|p| p["type"].clone()).collect();
    assert_eq!(types, ["ginger", "portmap", "tuning"]);
    list.capability_args = json!({
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    });
    Ok(list)
}

fn nat_rules(node: &Netns) -> Result<String> {
    node.run(&["iptables-save", "-t", "nat"])
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::Invalid {
        what: "connection",
        value: what.to_string(),
        reason: e.to_string(),
    }
}

/// Accept one TCP connection on port 80 inside `pod` (for at most `T`) and greet it.
fn greet_once(pod: &Netns) -> Result<std::thread::JoinHandle<std::io::Result<()>>> {
    let listener = thread_in_netns(pod, || TcpListener::bind("0.0.0.0:80"))?
        .map_err(|e| io_error("bind :80 in the pod", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| io_error("listener", e))?;
    spawn_in_netns(pod, move || {
        let end = Instant::now() + T;
        loop {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false)?;
                    return s.write_all(b"hello from the pod");
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
    })
}

/// Connect from inside `node` to `to` and read what the other side says.
fn fetch(node: &Netns, to: SocketAddr) -> Result<String> {
    thread_in_netns(node, move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&to, T)?;
        s.set_read_timeout(Some(T))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    })?
    .map_err(|e| io_error(&to.to_string(), e))
}

#[test]
fn ginger_portmap_tuning_add_and_del_as_libcni_runs_them() {
    scenario("pods-chain", |dir| {
        let node = start_node(dir)?;
        let list = chained_list(
            &node,
            json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_local": "1"}}),
        )?;
        let mut pod = Pod::create("default", "chained")?;

        let run = node.cni().run_list(&list, "ADD", pod.reference(), None)?;
        run.check()?;
        let result = run.result.clone().expect("final result");
        let _cleanup = DelOnDrop {
            node: &node,
            list: &list,
            pod: pod.reference().clone(),
            result: result.clone(),
        };
        let order: Vec<&str> = run.steps.iter().map(|s| s.plugin.as_str()).collect();
        assert_eq!(order, ["ginger", "portmap", "tuning"]);
        // portmap got Ginger's result as prevResult; each plugin's output is the next input.
        pod.set_result(Some(result.clone()));
        let ip = pod.addresses()[0];
        let host = pod.host_link().expect("host link in the result");
        let mac = ip_json(pod.netns(), &["link", "show", "dev", "eth0"])?[0]["address"].clone();

        // The final result keeps Ginger's interfaces, address and route (Debian's plugins,
        // built on libcni 1.1, print an empty "dns").
        assert_eq!(
            result,
            json!({
                "cniVersion": "1.0.0",
                "dns": {},
                "interfaces": [
                    {"name": host, "mac": HOST_MAC},
                    {"name": "eth0", "mac": mac, "sandbox": pod.reference().netns}
                ],
                "ips": [{"address": format!("{ip}/32"), "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
            })
        );
        // Each plugin's work is in the kernel: Ginger's host route, tuning's sysctl inside the
        // pod, portmap's DNAT to the pod.
        let route = route_to(node.netns(), &ip.to_string())?.expect("host route");
        assert_eq!(route["protocol"], ROUTE_PROTOCOL);
        assert_eq!(route["dev"], host.as_str());
        assert_eq!(
            pod.netns().sysctl_get("net.ipv4.conf.eth0.accept_local")?,
            "1"
        );
        let nat = nat_rules(node.netns())?;
        assert!(
            nat.lines()
                .any(|l| l.contains("--dport 8080") && l.contains(&format!("{ip}:80"))),
            "no DNAT to the pod:\n{nat}"
        );
        assert_eq!(node.endpoints()?.len(), 1);

        // The port mapping works: node:8080 reaches the pod's port 80 through portmap's DNAT
        // and Ginger's route.
        let server = greet_once(pod.netns())?;
        let answer = fetch(node.netns(), "10.99.0.1:8080".parse().unwrap())?;
        assert_eq!(answer, "hello from the pod");
        server
            .join()
            .expect("server thread")
            .map_err(|e| io_error("the pod's server", e))?;

        // DEL in reverse order: tuning, portmap, ginger. Everything each made is gone.
        let del = node
            .cni()
            .run_list(&list, "DEL", pod.reference(), Some(&result))?;
        del.check()?;
        let order: Vec<&str> = del.steps.iter().map(|s| s.plugin.as_str()).collect();
        assert_eq!(order, ["tuning", "portmap", "ginger"]);
        node.wait_torn_down(pod.reference())?;
        assert_eq!(link_names(pod.netns())?, ["lo"]);
        assert!(!link_names(node.netns())?.contains(&host));
        assert!(route_to(node.netns(), &ip.to_string())?.is_none());
        let nat = nat_rules(node.netns())?;
        assert!(!nat.contains(&ip.to_string()), "portmap rules left:\n{nat}");
        assert_eq!(node.addresses_in_use()?, 0);
        assert!(node.endpoints()?.is_empty());
        // The runtime may repeat DEL; the whole list still succeeds.
        node.cni()
            .run_list(&list, "DEL", pod.reference(), Some(&result))?
            .check()?;
        Ok(())
    });
}

/// `tuning` with `mac` (a documented chaining, docs/cni.md) changes the pod's MAC after Ginger
/// reported the endpoint with the MAC of ADD time; felix's permanent neighbour entry on the node
/// follows the MAC the pod's end of the veth has, so the node still reaches the pod.
#[test]
fn a_pod_whose_mac_tuning_changed_stays_reachable() {
    scenario("pods-mac", |dir| {
        let node = start_node(dir)?;
        let list = chained_list(&node, json!({"type": "tuning", "mac": TUNED_MAC}))?;
        let mut pod = Pod::create("default", "tuned")?;
        let run = node.cni().run_list(&list, "ADD", pod.reference(), None)?;
        run.check()?;
        let result = run.result.clone().expect("final result");
        let _cleanup = DelOnDrop {
            node: &node,
            list: &list,
            pod: pod.reference().clone(),
            result: result.clone(),
        };
        pod.set_result(Some(result.clone()));
        let ip = pod.addresses()[0];
        assert_eq!(result["interfaces"][1]["mac"], TUNED_MAC);
        let pod_mac = ip_json(pod.netns(), &["link", "show", "dev", "eth0"])?[0]["address"].clone();
        assert_eq!(pod_mac, TUNED_MAC);
        // Give felix time to write its entry, then reach the pod from the node.
        node.wait_converged(Duration::from_secs(20))?;
        let neigh = node.netns().ip(&["neigh", "show", &ip.to_string()])?;
        assert!(
            neigh.contains(&format!("lladdr {TUNED_MAC}")) && neigh.contains("PERMANENT"),
            "the node's entry for the pod does not carry the tuned MAC: {neigh}"
        );
        assert!(
            ping(node.netns(), ip, 2, 2)?,
            "the node cannot reach the pod; its neighbour entry: {neigh}"
        );
        Ok(())
    });
}
