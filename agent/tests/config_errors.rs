//! Bad cluster files: one test per kind of mistake, each asserting that the message names the
//! file, the document (index, kind, name) and the field, and says what was expected.

use std::path::Path;

use agent::datastore::{ConfigError, load, parse};

const HEADER_PEER: &str = "apiVersion: ginger.dev/v1\nkind: BGPPeer\nmetadata: {name: tor-a}\n";

/// Parse `text` as `cluster.yaml` and return its messages (it must fail).
fn errors(text: &str) -> Vec<String> {
    match parse(text, "cluster.yaml") {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.problems(),
    }
}

/// `text` fails with exactly one message, equal to `want`.
fn fails_with(text: &str, want: &str) {
    let got = errors(text);
    assert_eq!(got, vec![want.to_string()], "for:\n{text}");
}

/// `text` fails with exactly one message that contains every part of `want`.
fn fails_containing(text: &str, want: &[&str]) {
    let got = errors(text);
    assert_eq!(got.len(), 1, "{got:#?}");
    for w in want {
        assert!(got[0].contains(w), "{:?} does not contain {w:?}", got[0]);
    }
}

#[test]
fn bad_as_number() {
    fails_with(
        &format!("{HEADER_PEER}spec:\n  peerIP: 192.0.2.1\n  asNumber: abc\n"),
        "cluster.yaml: document 1 (BGPPeer \"tor-a\"): spec.asNumber: expected an AS number (1-4294967295), got \"abc\" (line 6)",
    );
    fails_containing(
        &format!("{HEADER_PEER}spec:\n  peerIP: 192.0.2.1\n  asNumber: 4294967296\n"),
        &[
            "spec.asNumber: expected an AS number",
            "got the number 4294967296",
        ],
    );
}

#[test]
fn unknown_field_suggests_the_close_match() {
    fails_with(
        &format!(
            "{HEADER_PEER}spec:\n  peerIP: 192.0.2.1\n  asNumber: 65001\n  keepAliveTime: 10s\n"
        ),
        "cluster.yaml: document 1 (BGPPeer \"tor-a\"): spec.keepAliveTime: unknown field; did you mean \"keepaliveTime\"? (line 7)",
    );
}

#[test]
fn unknown_field_lists_the_valid_ones() {
    fails_with(
        "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {name: n1}\nspec:\n  bgp:\n    ipv4Address: 10.0.0.1/24\n    color: blue\n",
        "cluster.yaml: document 1 (Node \"n1\"): spec.bgp.color: unknown field; valid fields are asNumber, ipv4Address, ipv6Address, routeReflectorClusterID (line 7)",
    );
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {name: n1}\nstatus: {}\n",
        &[
            "document 1 (Node \"n1\"): status: unknown field; valid fields are apiVersion, kind, metadata, spec",
        ],
    );
}

#[test]
fn calico_fields_ginger_does_not_implement_say_so() {
    fails_containing(
        &format!(
            "{HEADER_PEER}spec:\n  peerIP: 192.0.2.1\n  asNumber: 65001\n  password:\n    secretKeyRef: {{name: s, key: k}}\n"
        ),
        &["(BGPPeer \"tor-a\"): spec.password: not supported by Ginger: BGP session passwords"],
    );
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {name: n1, uid: 1234}\n",
        &["metadata.uid: not supported by Ginger: written by the API server"],
    );
}

#[test]
fn duplicate_names_per_kind() {
    let peer = format!("{HEADER_PEER}spec: {{peerIP: 192.0.2.1, asNumber: 65001}}\n");
    fails_with(
        &format!("{peer}---\n{peer}"),
        "cluster.yaml: document 2 (BGPPeer \"tor-a\"): metadata.name: BGPPeer \"tor-a\" is already defined in document 1 (BGPPeer \"tor-a\")",
    );
    // The same name in different kinds is fine.
    let node = "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {name: tor-a}\n";
    assert!(parse(&format!("{peer}---\n{node}"), "cluster.yaml").is_ok());
}

#[test]
fn bad_peer_ip() {
    fails_with(
        &format!("{HEADER_PEER}spec:\n  peerIP: 192.0.2.300\n  asNumber: 65001\n"),
        "cluster.yaml: document 1 (BGPPeer \"tor-a\"): spec.peerIP: expected an IP address, ip:port or [ipv6]:port, got \"192.0.2.300\" (line 5)",
    );
    fails_containing(
        &format!("{HEADER_PEER}spec:\n  peerIP: 192.0.2.1:0\n  asNumber: 65001\n"),
        &["spec.peerIP: port 0"],
    );
}

#[test]
fn bad_selector_points_at_the_column() {
    fails_with(
        &format!(
            "{HEADER_PEER}spec:\n  nodeSelector: rack = 'a'\n  peerIP: 192.0.2.1\n  asNumber: 65001\n"
        ),
        "cluster.yaml: document 1 (BGPPeer \"tor-a\"): spec.nodeSelector: invalid selector \"rack = 'a'\": at column 6: expected '==' (a single '=' is not an operator) (line 5)",
    );
}

#[test]
fn cidr_with_host_bits() {
    fails_with(
        "apiVersion: ginger.dev/v1\nkind: IPPool\nmetadata: {name: pods}\nspec:\n  cidr: 10.244.0.1/16\n",
        "cluster.yaml: document 1 (IPPool \"pods\"): spec.cidr: \"10.244.0.1/16\" has host bits set; the network is 10.244.0.0/16 (line 5)",
    );
}

#[test]
fn overlapping_pools() {
    let pool = |name: &str, cidr: &str| {
        format!(
            "apiVersion: ginger.dev/v1\nkind: IPPool\nmetadata: {{name: {name}}}\nspec: {{cidr: {cidr}}}\n"
        )
    };
    fails_with(
        &format!(
            "{}---\n{}---\n{}",
            pool("a", "10.244.0.0/16"),
            pool("b", "10.245.0.0/16"),
            pool("c", "10.244.64.0/18")
        ),
        "cluster.yaml: document 3 (IPPool \"c\"): spec.cidr: 10.244.64.0/18 overlaps IPPool \"a\" (10.244.0.0/16, document 1 (IPPool \"a\"))",
    );
}

#[test]
fn default_route_pool_or_service_range() {
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: IPPool\nmetadata: {name: all}\nspec: {cidr: 0.0.0.0/0}\n",
        &[
            "document 1 (IPPool \"all\"): spec.cidr: \"0.0.0.0/0\" is the default route, which Ginger never exports",
        ],
    );
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  serviceExternalIPs:\n    - cidr: ::/0\n",
        &[
            "document 1 (BGPConfiguration \"default\"): spec.serviceExternalIPs[0].cidr: \"::/0\" is the default route",
            "(line 6)",
        ],
    );
}

#[test]
fn bad_durations() {
    fails_containing(
        &format!(
            "{HEADER_PEER}spec:\n  peerIP: 192.0.2.1\n  asNumber: 65001\n  maxRestartTime: 90\n"
        ),
        &[
            "(BGPPeer \"tor-a\"): spec.maxRestartTime: expected a duration like \"90s\" or \"1m30s\", got the number 90 (add a unit, e.g. \"90s\")",
        ],
    );
    // RFC 4724 §3: 12 bits of restart time.
    fails_containing(
        &format!(
            "{HEADER_PEER}spec:\n  peerIP: 192.0.2.1\n  asNumber: 65001\n  maxRestartTime: 2h\n"
        ),
        &["spec.maxRestartTime: expected a duration between 0s and 4095s, got 7200s"],
    );
    fails_containing(
        &format!(
            "{HEADER_PEER}spec:\n  peerIP: 192.0.2.1\n  asNumber: 65001\n  keepaliveTime: 90s\n  holdTime: 60s\n"
        ),
        &["spec.keepaliveTime: 90s must be below the hold time (60s)"],
    );
}

#[test]
fn bad_allowed_local_as_numbers() {
    let peer = |v: &str| {
        format!(
            "{HEADER_PEER}spec:\n  peerIP: 192.0.2.1\n  asNumber: 65001\n  numAllowedLocalASNumbers: {v}\n"
        )
    };
    fails_with(
        &peer("-1"),
        "cluster.yaml: document 1 (BGPPeer \"tor-a\"): spec.numAllowedLocalASNumbers: -1 is negative; give how many times our AS may appear in a received AS path (0-10; 0, the default, accepts none) (line 7)",
    );
    fails_containing(
        &peer("11"),
        &[
            "(BGPPeer \"tor-a\"): spec.numAllowedLocalASNumbers: 11 is more than 10",
            "(line 7)",
        ],
    );
    fails_containing(
        &peer("two"),
        &[
            "(BGPPeer \"tor-a\"): spec.numAllowedLocalASNumbers: expected a whole number (0-10), got \"two\"",
        ],
    );
    // In range it is accepted (it used to be refused as unsupported).
    for ok in ["0", "1", "10"] {
        assert!(parse(&peer(ok), "cluster.yaml").is_ok(), "{ok} refused");
    }
}

#[test]
fn encapsulation_is_refused_with_the_reason() {
    fails_with(
        "apiVersion: ginger.dev/v1\nkind: IPPool\nmetadata: {name: pods}\nspec:\n  cidr: 10.244.0.0/16\n  vxlanMode: CrossSubnet\n",
        "cluster.yaml: document 1 (IPPool \"pods\"): spec.vxlanMode: Ginger routes pod traffic without encapsulation; only \"Never\" is supported (got \"CrossSubnet\") (line 6)",
    );
}

#[test]
fn block_size_range_and_pool_size() {
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: IPPool\nmetadata: {name: pods}\nspec: {cidr: 10.244.0.0/16, blockSize: 19}\n",
        &["spec.blockSize: expected a block size for an IPv4 pool (20-32), got the number 19"],
    );
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: IPPool\nmetadata: {name: pods}\nspec: {cidr: 'fd00::/124'}\n",
        &["spec.cidr: the pool /124 is smaller than one block (/122); use blockSize 124 or more"],
    );
}

#[test]
fn unknown_kind_and_api_version() {
    fails_with(
        "apiVersion: ginger.dev/v1\nkind: BgpPeer\nmetadata: {name: x}\n",
        "cluster.yaml: document 1 (BgpPeer \"x\"): kind: expected one of BGPConfiguration, BGPPeer, IPPool, Node, got \"BgpPeer\"; did you mean \"BGPPeer\"? (line 2)",
    );
    fails_with(
        "apiVersion: crd.projectcalico.org/v1\nkind: Node\nmetadata: {name: x}\n",
        "cluster.yaml: document 1 (Node \"x\"): apiVersion: expected one of ginger.dev/v1, projectcalico.org/v3, got \"crd.projectcalico.org/v1\" (line 1)",
    );
}

#[test]
fn missing_and_invalid_names() {
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {labels: {a: b}}\n",
        &["document 1 (Node): metadata.name: missing"],
    );
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {name: Node_1}\n",
        &["document 1 (Node \"Node_1\"): metadata.name: expected a name of lowercase letters"],
    );
    fails_with(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {name: global}\n",
        "cluster.yaml: document 1 (BGPConfiguration \"global\"): metadata.name: expected \"default\" (cluster-wide) or \"node.<nodename>\" (one node), got \"global\"",
    );
}

#[test]
fn duplicate_node_addresses() {
    let node = |name: &str| {
        format!(
            "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{bgp: {{ipv4Address: 10.0.0.1/24}}}}\n"
        )
    };
    fails_with(
        &format!("{}---\n{}", node("a"), node("b")),
        "cluster.yaml: document 2 (Node \"b\"): spec.bgp.ipv4Address: 10.0.0.1 is already the address of Node \"a\" (document 1 (Node \"a\"))",
    );
}

#[test]
fn node_address_of_the_wrong_family() {
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {name: n}\nspec: {bgp: {ipv4Address: 'fd00::1/64'}}\n",
        &[
            "(Node \"n\"): spec.bgp.ipv4Address: expected the node's IPv4 address with its subnet length, like \"10.0.0.5/24\", got \"fd00::1/64\"",
        ],
    );
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: Node\nmetadata: {name: n}\nspec: {bgp: {}}\n",
        &["(Node \"n\"): spec.bgp: is empty"],
    );
}

#[test]
fn per_node_configuration_sets_a_global_field() {
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {name: node.n1}\nspec: {asNumber: 65000, listenPort: 1179}\n",
        &[
            "(BGPConfiguration \"node.n1\"): spec.asNumber: cannot be set per node",
            "the Node's spec.bgp.asNumber",
        ],
    );
}

#[test]
fn communities() {
    fails_with(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  communities: [{name: a, value: '65000:1'}]\n  prefixAdvertisements:\n    - cidr: 10.96.0.0/12\n      communities: [b]\n",
        "cluster.yaml: document 1 (BGPConfiguration \"default\"): spec.prefixAdvertisements[0].communities[0]: \"b\" is neither a community value (aa:nn, aa:nn:mm) nor a name from spec.communities (defined: a) (line 8)",
    );
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  prefixAdvertisements:\n    - cidr: 10.96.0.0/12\n      communities: ['70000:1']\n",
        &[
            "spec.prefixAdvertisements[0].communities[0]: \"70000:1\": each part of a standard community aa:nn must be 0-65535",
        ],
    );
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  communities: [{name: a, value: '65000:1'}]\n",
        &["spec.communities: communities are defined but not used in spec.prefixAdvertisements"],
    );
}

#[test]
fn conflicting_peer_fields() {
    fails_containing(
        &format!(
            "{HEADER_PEER}spec:\n  node: n1\n  nodeSelector: all()\n  peerIP: 192.0.2.1\n  asNumber: 65001\n"
        ),
        &[
            "(BGPPeer \"tor-a\"): spec.nodeSelector: node and nodeSelector cannot both be set (line 6)",
        ],
    );
    fails_containing(
        &format!("{HEADER_PEER}spec:\n  peerSelector: all()\n  asNumber: 65001\n"),
        &["spec.asNumber: must be empty when peerSelector is set"],
    );
    fails_containing(
        &format!("{HEADER_PEER}spec:\n  peerIP: 192.0.2.1\n"),
        &["spec.asNumber: missing; a peerIP peer needs the peer's AS number"],
    );
    fails_containing(
        &format!("{HEADER_PEER}spec:\n  node: n1\n"),
        &["(BGPPeer \"tor-a\"): spec: set peerIP (with asNumber) or peerSelector"],
    );
    fails_containing(
        &format!(
            "{HEADER_PEER}spec: {{peerIP: 192.0.2.1, asNumber: 65001, keepOriginalNextHop: true, nextHopMode: Keep}}\n"
        ),
        &["spec.keepOriginalNextHop: keepOriginalNextHop and nextHopMode cannot both be set"],
    );
}

#[test]
fn types_are_not_guessed() {
    // YAML 1.2: `yes` is a string, not a boolean.
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: yes}\n",
        &["spec.nodeToNodeMeshEnabled: expected true or false, got \"yes\""],
    );
    fails_containing(
        "apiVersion: ginger.dev/v1\nkind: Node\nmetadata:\n  name: n\n  labels: {rack: 1}\n",
        &[
            "(Node \"n\"): metadata.labels.rack: expected a string, got the number 1 (quote it to make it a string)",
        ],
    );
}

#[test]
fn yaml_syntax_and_duplicate_keys() {
    let e = parse("apiVersion: ginger.dev/v1\nkind: [Node\n", "cluster.yaml").unwrap_err();
    assert!(matches!(e, ConfigError::Yaml { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with("cluster.yaml: not valid YAML: "),
        "{e}"
    );
    assert!(e.to_string().contains("line"), "{e}");
    let e = parse(
        "apiVersion: ginger.dev/v1\nkind: Node\nkind: Node\nmetadata: {name: a}\n",
        "cluster.yaml",
    )
    .unwrap_err();
    assert!(matches!(e, ConfigError::Yaml { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "cluster.yaml: not valid YAML: duplicate mapping key: kind at line 3, column 1"
    );
}

#[test]
fn a_document_that_is_not_a_resource() {
    fails_with(
        "- a\n- b\n",
        "cluster.yaml: document 1: expected a mapping (a Kubernetes-style resource), got a list (line 1)",
    );
}

#[test]
fn every_problem_in_a_file_is_reported_in_order() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-many.yaml");
    let e = load(&path).unwrap_err();
    let file = path.display().to_string();
    let got = e.problems();
    let want = [
        "document 1 (BGPConfiguration \"default\"): spec.nodeToNodeMeshEnabled: expected true or false, got \"yes\" (line 7)",
        "document 2 (BGPPeer \"tor-a\"): spec.asNumber: expected an AS number (1-4294967295), got \"abc\" (line 16)",
        "document 3 (IPPool \"pods\"): spec.ipipMode: Ginger routes pod traffic without encapsulation; only \"Never\" is supported (got \"Always\") (line 23)",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, &format!("{file}: {w}"));
    }
    // Only valid documents take part in cross-document checks: pool "more-pods" overlaps the
    // invalid "pods", which is reported for its own mistake instead.
    assert_eq!(e.to_string().lines().count(), 3);
}

#[test]
fn a_missing_file_names_the_path() {
    let e = load(Path::new("/nonexistent/ginger-cluster.yaml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/ginger-cluster.yaml: cannot read the cluster file: "),
        "{e}"
    );
}

#[test]
fn metadata_and_spec_problems_are_reported_together() {
    let got = errors(
        "apiVersion: ginger.dev/v1\nkind: IPPool\nmetadata: {name: Pods}\nspec: {cidr: 10.244.0.1/16}\n",
    );
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].contains("(IPPool \"Pods\"): metadata.name: expected a name"),
        "{}",
        got[0]
    );
    assert!(
        got[1].contains("(IPPool \"Pods\"): spec.cidr: \"10.244.0.1/16\" has host bits set"),
        "{}",
        got[1]
    );
}

#[test]
fn a_bad_community_does_not_hide_the_good_names() {
    let got = errors(
        "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  communities:\n    - {name: good, value: '65000:1'}\n    - {name: bad, value: 'x:y'}\n  prefixAdvertisements:\n    - {cidr: 10.96.0.0/12, communities: [good]}\n",
    );
    assert_eq!(
        got,
        vec![
            "cluster.yaml: document 1 (BGPConfiguration \"default\"): spec.communities[1].value: \"x:y\" is not a community value (aa:nn or aa:nn:mm) (line 7)"
        ]
    );
}

#[test]
fn a_missing_name_is_reported_once() {
    assert_eq!(
        errors(
            "apiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {}\nspec: {listenPort: 0}\n"
        ),
        vec![
            "cluster.yaml: document 1 (BGPConfiguration): metadata.name: missing; every resource needs a name (line 3)",
            "cluster.yaml: document 1 (BGPConfiguration): spec.listenPort: expected a TCP port (1-65535), got the number 0 (line 4)",
        ]
    );
}

#[test]
fn references_to_missing_nodes_are_warnings() {
    let c = parse(
        "apiVersion: ginger.dev/v1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {node: nod-1, peerIP: 192.0.2.1, asNumber: 65001}\n---\napiVersion: ginger.dev/v1\nkind: BGPConfiguration\nmetadata: {name: node.nod-2}\nspec: {listenPort: 1179}\n",
        "cluster.yaml",
    )
    .unwrap();
    let warnings: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "document 2 (BGPConfiguration \"node.nod-2\"): metadata.name: there is no Node \"nod-2\"; this configuration applies to no node",
            "document 1 (BGPPeer \"p\"): spec.node: there is no Node \"nod-1\"; this peering applies to no node",
        ]
    );
}
