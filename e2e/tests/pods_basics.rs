//! Issue 3, "How it must be shown", first point: a node namespace running `ginger-node` with an
//! IPPool, and two pods plumbed by executing the real `ginger` binary as containerd does. Each
//! pod gets its /32 from the node's block, the 169.254.1.1 gateway answers by proxy ARP,
//! pod↔pod and pod↔node ping work, the node holds the host routes (proto 97) and permanent
//! neighbour entries, `gingerctl` agrees with the kernel, and DEL removes all of it (also when
//! the runtime removed the pod's namespace first) — every claim checked by listing the kernel
//! (`ip -j`) and the agent. Run as root.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::pods::{
    GATEWAY_V4, HOST_MAC, NETWORK, Pod, PodBinaries, PodNode, ROUTE_PROTOCOL, addresses_of,
    ip_json, link_names, neighbours, ping, pod_cluster, route_to, routes_v4, uplinked_node,
};
use e2e::{Error, Result, scenario, wait_until, write_cluster};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);
const NODE_ADDR: &str = "10.99.0.1";

/// Calico's host link name, computed independently of Ginger: `cali` + the first 11 hex
/// digits of SHA-1("<namespace>.<pod>") (calico.md §1.2), by coreutils' `sha1sum`.
fn calico_host_link(namespace: &str, pod: &str) -> String {
    let mut child = Command::new("sha1sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha1sum");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{namespace}.{pod}").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    format!("cali{}", &String::from_utf8(out.stdout).unwrap()[..11])
}

fn fail(what: impl Into<String>) -> Error {
    Error::Invalid {
        what: "state",
        value: String::new(),
        reason: what.into(),
    }
}

fn mac_of(ns: &e2e::Netns, dev: &str) -> Result<String> {
    Ok(ip_json(ns, &["link", "show", "dev", dev])?[0]["address"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// The node's permanent neighbour entry for `ip`, if any.
fn permanent_neighbour(node: &PodNode, ip: IpAddr) -> Result<Option<Value>> {
    Ok(neighbours(node.netns())?.into_iter().find(|n| {
        n["dst"] == ip.to_string()
            && n["state"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s == "PERMANENT"))
    }))
}

#[test]
fn pods_get_their_addresses_talk_and_leave_nothing_behind() {
    scenario("pods-basics", |dir| {
        let yaml = pod_cluster(
            &[("node-1", "10.99.0.1/24")],
            &[("default-ipv4-ippool", "10.244.0.0/16", 26)],
            false,
        );
        let cluster = write_cluster(dir.path(), "cluster.yaml", &yaml)?;
        let node = PodNode::start(
            uplinked_node("node", "10.99.0.1/24")?,
            dir.path(),
            PodBinaries::built()?,
            &cluster,
            "node-1",
            &[],
        )?;
        let mut pods = [
            Pod::create("default", "web-0")?,
            Pod::create("shop", "cart-7")?,
        ];
        for pod in &mut pods {
            node.add(pod)?.result()?;
        }

        // The results: Calico's shape, the host link named by Calico's rule, one /32 each.
        let mut ips = Vec::new();
        for pod in &pods {
            let r = pod.reference();
            let result = pod.result().unwrap();
            let link = calico_host_link(&r.namespace, &r.name);
            let ip = pod.addresses()[0];
            let mac = mac_of(pod.netns(), "eth0")?;
            assert_eq!(
                result,
                &json!({
                    "cniVersion": "1.0.0",
                    "interfaces": [
                        {"name": link, "mac": HOST_MAC},
                        {"name": "eth0", "mac": mac, "sandbox": r.netns}
                    ],
                    "ips": [{"address": format!("{ip}/32"), "interface": 1}],
                    "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY_V4}]
                })
            );
            // The pod: its /32, the gateway's link route and the default route via it.
            assert_eq!(addresses_of(pod.netns(), "eth0")?, [format!("{ip}/32")]);
            let gw = route_to(pod.netns(), GATEWAY_V4)?.expect("gateway route in the pod");
            assert_eq!(
                (gw["dev"].as_str(), gw["scope"].as_str()),
                (Some("eth0"), Some("link"))
            );
            let default = route_to(pod.netns(), "default")?.expect("default route in the pod");
            assert_eq!(default["gateway"], GATEWAY_V4);
            ips.push(ip);
        }
        assert_ne!(ips[0], ips[1]);

        // Both addresses come from the one block the node claimed in the pool.
        let ipam = node.ipam()?;
        let blocks = &ipam.pools[0].blocks;
        assert_eq!(blocks.len(), 1, "{ipam:?}");
        assert_eq!(blocks[0].affinity.as_deref(), Some("node-1"));
        assert_eq!(blocks[0].in_use, 2);
        for ip in &ips {
            assert!(
                blocks[0].cidr.contains(ip),
                "{ip} outside {}",
                blocks[0].cidr
            );
        }

        // The node: host routes `<ip>/32 dev caliX scope link proto 97` (the plugin writes them,
        // felix owns them), a permanent neighbour entry with the pod's MAC (felix), and the
        // block's blackhole.
        for (pod, ip) in pods.iter().zip(&ips) {
            let link = pod.host_link().unwrap();
            assert_eq!(mac_of(node.netns(), &link)?, HOST_MAC);
            let route = route_to(node.netns(), &ip.to_string())?.expect("host route");
            assert_eq!(
                (
                    route["dev"].as_str(),
                    route["scope"].as_str(),
                    route["protocol"].as_str()
                ),
                (Some(link.as_str()), Some("link"), Some(ROUTE_PROTOCOL)),
                "{route}"
            );
            let mac = mac_of(pod.netns(), "eth0")?;
            let entry = wait_until(T, &format!("felix's neighbour entry for {ip}"), || {
                permanent_neighbour(&node, *ip)?.ok_or_else(|| fail("not yet"))
            })?;
            assert_eq!(
                (entry["dev"].as_str(), entry["lladdr"].as_str()),
                (Some(link.as_str()), Some(mac.as_str()))
            );
        }
        let blackhole = routes_v4(node.netns())?
            .into_iter()
            .find(|r| r["type"] == "blackhole")
            .expect("the block's blackhole");
        assert_eq!(blackhole["dst"], blocks[0].cidr.to_string());
        assert_eq!(blackhole["protocol"], ROUTE_PROTOCOL);

        // Traffic: pod → node, pod ↔ pod, node → pod.
        let node_addr: IpAddr = NODE_ADDR.parse().unwrap();
        for pod in &pods {
            assert!(
                ping(pod.netns(), node_addr, 2, 2)?,
                "{} cannot ping the node",
                pod.reference().name
            );
        }
        assert!(
            ping(pods[0].netns(), ips[1], 2, 2)?,
            "pod 0 cannot ping pod 1"
        );
        assert!(
            ping(pods[1].netns(), ips[0], 2, 2)?,
            "pod 1 cannot ping pod 0"
        );
        for ip in &ips {
            assert!(ping(node.netns(), *ip, 2, 2)?, "the node cannot ping {ip}");
        }
        // The gateway was answered by proxy ARP with the host link's MAC.
        for pod in &pods {
            let gw = neighbours(pod.netns())?
                .into_iter()
                .find(|n| n["dst"] == GATEWAY_V4)
                .ok_or_else(|| fail("no neighbour entry for the gateway in the pod"))?;
            assert_eq!(gw["lladdr"], HOST_MAC, "{gw}");
            assert_eq!(gw["dev"], "eth0");
        }

        // What the operator sees agrees with the kernel.
        let agent = node.agent()?;
        let (code, eps, _) = agent.gingerctl(&["get", "endpoints"])?;
        assert_eq!(code, 0);
        let (code, show, _) = agent.gingerctl(&["ipam", "show", "--show-blocks"])?;
        assert_eq!(code, 0);
        let (code, fib, _) = agent.gingerctl(&["route", "show", "--fib"])?;
        assert_eq!(code, 0);
        for (pod, ip) in pods.iter().zip(&ips) {
            let r = pod.reference();
            let link = pod.host_link().unwrap();
            let mac = mac_of(pod.netns(), "eth0")?;
            let row = [
                r.namespace.as_str(),
                &r.name,
                "node-1",
                &format!("{ip}/32"),
                &link,
                &mac,
            ];
            assert!(
                eps.lines()
                    .any(|l| l.split_whitespace().eq(row.iter().copied())),
                "no endpoint row {row:?} in:\n{eps}"
            );
            assert!(
                fib.contains(&format!("{ip}/32 dev {link} scope link proto 97\n")),
                "{fib}"
            );
            assert!(
                fib.contains(&format!("{ip} dev {link} lladdr {mac} PERMANENT\n")),
                "{fib}"
            );
            let (_, lookup, _) = agent.gingerctl(&["ipam", "show", "--ip", &ip.to_string()])?;
            assert!(
                lookup.contains(&format!("Handle ID: {}", r.handle(NETWORK))),
                "{lookup}"
            );
        }
        let block_row = format!("| Block    | {} |", blocks[0].cidr);
        assert!(
            show.lines()
                .any(|l| l.starts_with(&block_row) && l.contains("| 2 (3%)")),
            "{show}"
        );
        assert!(
            fib.contains(&format!("blackhole {} proto 97\n", blocks[0].cidr)),
            "{fib}"
        );
        let endpoint_ips: BTreeSet<IpAddr> = node
            .endpoints()?
            .iter()
            .flat_map(|e| e.ips.clone())
            .collect();
        assert_eq!(endpoint_ips, ips.iter().copied().collect());

        // DEL: the pod's links, addresses, routes, neighbour entries and allocation are gone.
        for pod in &pods {
            assert_eq!(node.del(pod)?.result()?, Value::Null);
        }
        for (pod, ip) in pods.iter().zip(&ips) {
            assert_eq!(link_names(pod.netns())?, ["lo"]);
            assert!(route_to(node.netns(), &ip.to_string())?.is_none());
            assert!(
                permanent_neighbour(&node, *ip)?.is_none(),
                "neighbour {ip} left"
            );
            let lookup = node.ipam_ip(*ip)?;
            assert!(lookup.allocation.is_none(), "{lookup:?}");
        }
        let cali: Vec<String> = link_names(node.netns())?
            .into_iter()
            .filter(|l| l.starts_with("cali"))
            .collect();
        assert!(cali.is_empty(), "{cali:?}");
        assert!(
            neighbours(node.netns())?
                .iter()
                .all(|n| !n["dev"].as_str().unwrap_or("").starts_with("cali"))
        );
        assert_eq!(node.addresses_in_use()?, 0);
        assert!(node.endpoints()?.is_empty());
        let fib = wait_until(T, "felix to forget the pods", || {
            let f = node.fib()?;
            if f.routes.iter().all(|r| !r.contains("dev cali")) && f.neighbours.is_empty() {
                Ok(f)
            } else {
                Err(fail(format!("{f:?}")))
            }
        })?;
        assert!(
            fib.routes.iter().any(|r| r.starts_with("blackhole")),
            "{fib:?}"
        );
        // A repeated DEL (the runtime retries) is still a success.
        for pod in &pods {
            node.del(pod)?.result()?;
        }

        // The runtime removed the sandbox's namespace before DEL (kubelet's cleanup after a
        // crash): DEL still succeeds and releases the address; the kernel takes the veth away
        // with the namespace, and the host route and neighbour entry go with it.
        let mut gone = Pod::create("default", "gone-0")?;
        node.add(&mut gone)?.result()?;
        let ip = gone.addresses()[0];
        let link = gone.host_link().unwrap();
        wait_until(T, "felix's neighbour entry", || {
            permanent_neighbour(&node, ip)?.ok_or_else(|| fail("not yet"))
        })?;
        e2e::cmd::run(Command::new("ip").args(["netns", "del", gone.netns().name()]))?;
        assert_eq!(node.del(&gone)?.result()?, Value::Null);
        assert!(node.ipam_ip(ip)?.allocation.is_none());
        assert!(node.endpoints()?.is_empty());
        wait_until(T, "the host link, route and neighbour entry to go", || {
            let left = (
                link_names(node.netns())?.contains(&link),
                route_to(node.netns(), &ip.to_string())?.is_some(),
                permanent_neighbour(&node, ip)?.is_some(),
            );
            if left == (false, false, false) {
                Ok(())
            } else {
                Err(fail(format!("(link, route, neighbour) left: {left:?}")))
            }
        })?;
        Ok(())
    });
}
