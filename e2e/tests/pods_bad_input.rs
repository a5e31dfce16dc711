//! Issue 3, "How it must be shown", third point: bad input to the real `ginger` binary against
//! the real `ginger-node` — malformed stdin JSON, an unsupported cniVersion, a missing netns
//! (variable absent, or naming no namespace), the agent down, the pool exhausted — each gets a
//! CNI error with the spec's code (docs/cni.md's table) and a message that says what to fix,
//! and leaves nothing behind: no link in the pod or the node, no route, no allocation, no
//! endpoint (listed after each attempt). Run as root.

use e2e::pods::{
    CniErrorReply, CniOutput, Pod, PodBinaries, PodNode, link_names, pod_cluster, routes_v4,
    uplinked_node,
};
use e2e::{Result, Signal, scenario, write_cluster};
use serde_json::json;

/// A pool of one /30 block: four addresses.
const POOL: &str = "10.244.7.0/30";
const CAPACITY: usize = 4;

/// What a bad ADD must leave: the sandbox empty, the node's pod links, pod routes and
/// allocations exactly as before.
struct Baseline {
    cali: Vec<String>,
    routes: Vec<String>,
    in_use: u64,
    endpoints: usize,
}

fn cali_links(node: &PodNode) -> Result<Vec<String>> {
    let mut l: Vec<String> = link_names(node.netns())?
        .into_iter()
        .filter(|l| l.starts_with("cali"))
        .collect();
    l.sort();
    Ok(l)
}

fn route_lines(node: &PodNode) -> Result<Vec<String>> {
    let mut r: Vec<String> = routes_v4(node.netns())?
        .iter()
        .map(|r| r.to_string())
        .collect();
    r.sort();
    Ok(r)
}

fn baseline(node: &PodNode) -> Result<Baseline> {
    Ok(Baseline {
        cali: cali_links(node)?,
        routes: route_lines(node)?,
        in_use: node.addresses_in_use()?,
        endpoints: node.endpoints()?.len(),
    })
}

/// Asserts the failed ADD for `pod` changed nothing since `before`.
fn assert_nothing_left(node: &PodNode, pod: &Pod, before: &Baseline, case: &str) -> Result<()> {
    assert_eq!(link_names(pod.netns())?, ["lo"], "{case}: pod links");
    assert_eq!(cali_links(node)?, before.cali, "{case}: node links");
    assert_eq!(route_lines(node)?, before.routes, "{case}: node routes");
    assert_eq!(
        node.addresses_in_use()?,
        before.in_use,
        "{case}: allocations"
    );
    assert_eq!(
        node.endpoints()?.len(),
        before.endpoints,
        "{case}: endpoints"
    );
    Ok(())
}

/// The CNI error of `out`, which must carry `code` and the list's version.
fn cni_error(out: &CniOutput, code: u64, case: &str) -> CniErrorReply {
    let e = out
        .error()
        .unwrap_or_else(|e| panic!("{case}: {}", e.chain()));
    assert_eq!(e.code, code, "{case}: {e:?}\nstderr: {}", out.stderr);
    assert!(!e.msg.is_empty(), "{case}");
    e
}

#[test]
fn bad_input_gets_the_right_code_and_leaves_nothing() {
    scenario("pods-bad", |dir| {
        let yaml = pod_cluster(&[("node-1", "10.99.0.1/24")], &[("tiny", POOL, 30)], false);
        let cluster = write_cluster(dir.path(), "cluster.yaml", &yaml)?;
        let mut node = PodNode::start(
            uplinked_node("node", "10.99.0.1/24")?,
            dir.path(),
            PodBinaries::built()?,
            &cluster,
            "node-1",
            &[],
        )?;
        let list = node.ginger_only()?;
        let entry = list.plugins()[0].clone();
        let good_conf = list.plugin_config(&entry, None);
        let plugin = node.plugin_binary().to_path_buf();
        let pod = Pod::create("default", "bad")?;
        let cni = node.cni();
        let before = baseline(&node)?;

        // Malformed stdin (a truncated object): code 6 (decoding failed), saying where.
        let out = cni.exec(
            &plugin,
            &pod.reference().env("ADD", "/usr/lib/cni"),
            br#"{"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "gin"#,
        )?;
        let e = cni_error(&out, 6, "malformed JSON");
        let text = format!("{} {}", e.msg, e.details.clone().unwrap_or_default());
        assert!(text.contains("EOF") && text.contains("line 1"), "{e:?}");
        assert_nothing_left(&node, &pod, &before, "malformed JSON")?;

        // An unsupported cniVersion: code 1, the details list what is supported.
        let mut old = good_conf.clone();
        old["cniVersion"] = json!("0.2.0");
        let out = cni.plugin(&plugin, "ADD", pod.reference(), &old)?;
        let e = cni_error(&out, 1, "cniVersion 0.2.0");
        assert!(e.msg.contains("0.2.0"), "{e:?}");
        assert!(
            e.details
                .as_deref()
                .is_some_and(|d| d.contains("1.0.0") && d.contains("1.1.0")),
            "{e:?}"
        );
        assert_nothing_left(&node, &pod, &before, "cniVersion 0.2.0")?;

        // CNI_NETNS naming no namespace: code 3. CNI_NETNS absent: code 4 naming it.
        let mut env = pod.reference().env("ADD", "/usr/lib/cni");
        for (k, v) in &mut env {
            if k == "CNI_NETNS" {
                *v = "/run/netns/gng-no-such-namespace".into();
            }
        }
        let out = cni.exec(&plugin, &env, good_conf.to_string().as_bytes())?;
        let e = cni_error(&out, 3, "netns gone");
        assert!(e.msg.contains("/run/netns/gng-no-such-namespace"), "{e:?}");
        assert_nothing_left(&node, &pod, &before, "netns gone")?;
        env.retain(|(k, _)| k != "CNI_NETNS");
        let out = cni.exec(&plugin, &env, good_conf.to_string().as_bytes())?;
        let e = cni_error(&out, 4, "no CNI_NETNS");
        assert!(e.msg.contains("CNI_NETNS"), "{e:?}");
        assert_nothing_left(&node, &pod, &before, "no CNI_NETNS")?;

        // The agent down: code 11 (try again later) asking whether ginger-node runs — after a
        // clean stop (the socket is gone) and after SIGKILL (a stale socket nobody answers).
        for signal in [Signal::SIGTERM, Signal::SIGKILL] {
            let case = format!("agent down ({signal})");
            node.stop(signal)?;
            let socket = node.run_dir().join("cni.sock");
            assert_eq!(
                socket.exists(),
                signal == Signal::SIGKILL,
                "{case}: cni.sock"
            );
            let out = node
                .cni()
                .plugin(&plugin, "ADD", pod.reference(), &good_conf)?;
            let e = cni_error(&out, 11, &case);
            assert!(e.msg.contains("is ginger-node running?"), "{e:?}");
            assert_eq!(link_names(pod.netns())?, ["lo"], "{case}: pod links");
            assert_eq!(cali_links(&node)?, before.cali, "{case}: node links");
            assert_eq!(route_lines(&node)?, before.routes, "{case}: node routes");
            node.restart()?;
            assert_nothing_left(&node, &pod, &before, &case)?;
        }

        // The pool exhausted: four pods fill it, the fifth gets code 100.
        let mut filled = Vec::new();
        for i in 0..CAPACITY {
            let mut p = Pod::create("default", &format!("fill-{i}"))?;
            node.add(&mut p)?.result()?;
            filled.push(p);
        }
        let full = baseline(&node)?;
        assert_eq!(full.in_use, CAPACITY as u64);
        let out = node
            .cni()
            .plugin(&plugin, "ADD", pod.reference(), &good_conf)?;
        let e = cni_error(&out, 100, "pool exhausted");
        assert!(
            e.msg.contains(&format!("pool tiny ({POOL}) is full")) && e.msg.contains("node-1"),
            "{e:?}"
        );
        assert_nothing_left(&node, &pod, &full, "pool exhausted")?;

        // DEL with the agent down: the veth goes and DEL fails with code 11 so the runtime
        // retries. The restarted agent's start-up sweep releases the address (its endpoint's
        // link is gone: nothing can route to the old pod any more), and the retry succeeds.
        let victim = &filled[0];
        let ip = victim.addresses()[0];
        node.stop(Signal::SIGTERM)?;
        let out = node.del(victim)?;
        let e = cni_error(&out, 11, "DEL with the agent down");
        assert!(e.msg.contains("ginger-node"), "{e:?}");
        assert_eq!(link_names(victim.netns())?, ["lo"]);
        assert!(!cali_links(&node)?.contains(&victim.host_link().unwrap()));
        assert!(
            routes_v4(node.netns())?
                .iter()
                .all(|r| r["dst"] != ip.to_string())
        );
        node.restart()?;
        assert!(node.ipam_ip(ip)?.allocation.is_none());
        assert!(
            node.logs().contains(
                "endpoint's host link is gone; forgetting it and releasing its addresses"
            ),
            "{}",
            node.logs()
        );
        node.del(victim)?.result()?;
        assert_eq!(node.addresses_in_use()?, CAPACITY as u64 - 1);
        for p in &filled[1..] {
            node.del(p)?.result()?;
        }
        assert_eq!(node.addresses_in_use()?, 0);
        assert!(cali_links(&node)?.is_empty());
        Ok(())
    });
}
