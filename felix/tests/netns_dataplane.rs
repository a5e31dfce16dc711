//! The batched netlink dataplane against a real kernel (in a namespace this test creates): every
//! reply is attributed to its own op across several `sendmsg` chunks, in both ACK modes; "already
//! gone" on delete and "already there, identical" on add succeed; a different route with the
//! same key is refused.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::ip;
use felix::dataplane::Dataplane;
use felix::dataplane::netlink::NetlinkDataplane;
use felix::netns::Netns;
use felix::nlsock::AckMode;
use felix::{NextHop, Op, Route};
use ipnet::IpNet;

fn host(i: u32) -> IpNet {
    IpNet::from(IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(10, 80, 0, 0)) + i,
    )))
}

fn check_mode(mode: AckMode) {
    let ns = Netns::create("fx-dp").expect("namespace");
    ip(&ns, "link add eth0 type veth peer name eth0p");
    ip(&ns, "addr add 192.0.2.10/24 dev eth0");
    ip(&ns, "link set eth0 up");
    ip(&ns, "link set eth0p up");
    ns.run(|| {
        let mut dp = NetlinkDataplane::open().expect("netlink");
        dp.set_ack_mode(mode);
        let eth0 = dp
            .list_links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == "eth0")
            .unwrap()
            .index;
        let via = |g: &str, i| {
            Route::via(
                host(i),
                vec![NextHop {
                    gateway: Some(g.parse().unwrap()),
                    ifindex: eth0,
                    onlink: false,
                }],
                97,
            )
        };
        // 3000 adds (three sendmsg chunks) with failures planted at known positions.
        let mut ops: Vec<Op> = (0..3000)
            .map(|i| Op::AddRoute(via("192.0.2.1", i)))
            .collect();
        ops[5] = Op::AddRoute(Route::workload("10.81.0.1".parse().unwrap(), 999_999, 97)); // no such link
        ops[2500] = Op::AddRoute(via("203.0.113.1", 2500)); // gateway not on-link
        let results = dp.apply(&ops);
        let failed: Vec<(usize, i32)> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e.errno)))
            .collect();
        assert_eq!(
            failed,
            vec![(5, libc::ENODEV), (2500, libc::ENETUNREACH)],
            "{mode:?}"
        );
        let routes = dp.list_routes(Some(eth0)).unwrap();
        assert_eq!(routes.iter().filter(|r| r.protocol == 97).count(), 2998);

        let second = vec![
            Op::AddRoute(via("192.0.2.1", 0)),     // identical: success
            Op::AddRoute(via("192.0.2.2", 1)),     // same key, different gateway: EEXIST
            Op::DeleteRoute(via("192.0.2.1", 5)),  // never added: success
            Op::ReplaceRoute(via("192.0.2.3", 2)), // replace: success
            Op::DeleteRoute(via("192.0.2.1", 3)),  // real delete
        ];
        let r = dp.apply(&second);
        let errnos: Vec<Option<i32>> = r
            .iter()
            .map(|x| x.as_ref().err().map(|e| e.errno))
            .collect();
        assert_eq!(
            errnos,
            vec![None, Some(libc::EEXIST), None, None, None],
            "{mode:?}"
        );
        let routes = dp.list_routes(None).unwrap();
        let find = |i| routes.iter().find(|r| r.dst == host(i)).cloned();
        assert_eq!(find(2), Some(via("192.0.2.3", 2)));
        assert_eq!(
            find(1),
            Some(via("192.0.2.1", 1)),
            "a refused add changes nothing"
        );
        assert_eq!(find(3), None);
        assert!(
            r[1].as_ref()
                .unwrap_err()
                .to_string()
                .contains("File exists"),
            "{:?}",
            r[1]
        );
    })
    .unwrap();
}

#[test]
fn netns_dataplane_batch_errors_per_op_errors_and_barrier() {
    check_mode(AckMode::ErrorsAndBarrier);
}

#[test]
fn netns_dataplane_batch_errors_per_op_every_request_acked() {
    check_mode(AckMode::EveryRequest);
}
