//! Two `ginger-node`s in a node-to-node mesh: the launcher, the control socket and
//! `gingerctl node status` work end to end.

use std::time::Duration;

use e2e::*;

const T: Duration = Duration::from_secs(30);

const CLUSTER: &str = r#"
apiVersion: ginger.dev/v1
kind: BGPConfiguration
metadata: {name: default}
spec:
  asNumber: 64512
  serviceClusterIPs: [{cidr: 10.96.1.0/24}]
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: n1}
spec: {bgp: {ipv4Address: 10.70.0.1/24}}
---
apiVersion: ginger.dev/v1
kind: Node
metadata: {name: n2}
spec: {bgp: {ipv4Address: 10.70.0.2/24}}
"#;

#[test]
fn two_node_mesh_exchanges_routes_and_reports_status() {
    scenario("mesh2", |dir| {
        let (a, b) = (Netns::new("n1")?, Netns::new("n2")?);
        Veth::new(&a, "eth0", &b, "eth0")
            .addr_a("10.70.0.1/24")
            .addr_b("10.70.0.2/24")
            .create()?;
        let cluster = write_cluster(dir.path(), "cluster.yaml", CLUSTER)?;
        let n1 = GingerNode::start(&a, dir.path(), &cluster, "n1", &[])?;
        let n2 = GingerNode::start(&b, dir.path(), &cluster, "n2", &[])?;
        n2.wait_established("10.70.0.1".parse().unwrap(), T)?;
        // Both originate the service range; n2 also holds n1's path, which loses to its own.
        let r = n2.wait_route("10.96.1.0/24".parse().unwrap(), T, &|r| r.paths.len() == 2)?;
        let from_n1 = r.paths.iter().find(|p| p.from == "Mesh_10_70_0_1").unwrap();
        assert_eq!(from_n1.next_hop, Some("10.70.0.1".parse().unwrap()));
        assert_eq!(
            from_n1.reason.as_deref(),
            Some("locally originated route preferred")
        );
        let (code, out, err) = n1.gingerctl(&["node", "status"])?;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with("Ginger process is running.\n\nIPv4 BGP status\n"),
            "{out}"
        );
        assert!(
            out.contains("| 10.70.0.2    | node-to-node mesh | up    |"),
            "{out}"
        );
        Ok(())
    });
}
