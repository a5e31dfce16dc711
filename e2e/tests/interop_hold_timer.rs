//! A frozen peer is detected at hold-time expiry (RFC 4271 §4.4, §6.5, §8.2.2 HoldTimer_Expires
//! in Established): `ginger-node` peers with BIRD with `holdTime: 9s` and `keepaliveTime: 3s`;
//! BIRD is stopped with SIGSTOP (its kernel keeps the TCP connection open, so only the hold timer
//! can notice); ginger-node must leave Established when 9 s have passed since BIRD's last
//! message, send a Hold Timer Expired NOTIFICATION (4/0), and withdraw BIRD's routes, also from
//! a second, healthy eBGP peer (another BIRD) whose session stays up throughout. After SIGCONT
//! the session comes back by itself and the routes return, to the second peer as well.
//!
//! BIRD sends a KEEPALIVE every second here (its own keepalive time, a local matter), so its
//! last message precedes the stop by under a second and expiry falls 8–9 s after the stop; the
//! window checked is 8–12 s (polling granularity and scheduling on a loaded machine).

use std::time::{Duration, Instant};

use e2e::scenarios::{Cluster, best_path, ip, net};
use e2e::*;

const T: Duration = Duration::from_secs(20);
const NODE: &str = "10.87.0.2";
const BIRD_ADDR: &str = "10.87.0.1";
const OTHER_NODE: &str = "10.87.1.2";
const OTHER_ADDR: &str = "10.87.1.1";
/// What the frozen BIRD originates (inside the pool, so ginger-node passes it on).
const BIRD_NET: &str = "10.244.7.0/24";

#[test]
fn sigstopped_bird_is_dropped_at_hold_expiry_and_comes_back_after_sigcont() {
    scenario("frozen", |dir| {
        let (node_ns, bird_ns, other_ns) = (
            Netns::new("node")?,
            Netns::new("bird")?,
            Netns::new("other")?,
        );
        Veth::new(&node_ns, "eth0", &bird_ns, "eth0")
            .addr_a(&format!("{NODE}/24"))
            .addr_b(&format!("{BIRD_ADDR}/24"))
            .create()?;
        Veth::new(&node_ns, "eth1", &other_ns, "eth0")
            .addr_a(&format!("{OTHER_NODE}/24"))
            .addr_b(&format!("{OTHER_ADDR}/24"))
            .create()?;
        let bird = Bird::start(
            &bird_ns,
            dir.path(),
            RouterConfig::parse(BIRD_ADDR, 65001)
                .neighbor(Neighbor::parse(NODE, 64512).timers(9, 1))
                .originate(BIRD_NET, RouteAttrs::new()),
        )?;
        let other = Bird::start(
            &other_ns,
            dir.path(),
            RouterConfig::parse(OTHER_ADDR, 65002).neighbor(Neighbor::parse(OTHER_NODE, 64512)),
        )?;
        let file = Cluster::new()
            .bgp_configuration("default", "{asNumber: 64512}")
            .node("n1", &format!("{NODE}/24"), &[], "")
            .bgp_peer(
                "bird",
                &format!(
                    "{{peerIP: {BIRD_ADDR}, asNumber: 65001, holdTime: 9s, keepaliveTime: 3s}}"
                ),
            )
            .bgp_peer(
                "other",
                &format!("{{peerIP: {OTHER_ADDR}, asNumber: 65002, sourceAddress: None}}"),
            )
            .ip_pool("pods", "10.244.0.0/16")
            .write(&dir.join("cluster.yaml"))?;
        let ginger = GingerNode::start(&node_ns, dir.path(), &file, "n1", &[])?;
        let up = ginger.wait_established(ip(BIRD_ADDR), T)?;
        assert_eq!(up.hold_time, Some(9), "{up:?}");
        ginger.wait_route(net(BIRD_NET), T, &|_| true)?;
        other.wait_route(net(BIRD_NET), T, &|r| r.as_path == [64512, 65001])?;

        let stopped_at = Instant::now();
        bird.process().sigstop()?;
        let down = ginger.wait_not_established(ip(BIRD_ADDR), Duration::from_secs(15))?;
        let after = stopped_at.elapsed();
        assert!(
            (Duration::from_secs(8)..=Duration::from_secs(12)).contains(&after),
            "left Established {after:.1?} after SIGSTOP (hold time 9 s): {down:?}"
        );
        // We sent it (RFC 4271 §4.5: error code 4, Hold Timer Expired).
        let why = down.last_error.clone().unwrap_or_default().to_lowercase();
        assert!(
            why.starts_with("sent: ") && why.contains("hold timer expired"),
            "{down:?}"
        );
        assert_eq!(
            down.counters.notifications_out.get("4/0"),
            Some(&1),
            "{down:?}"
        );
        // The frozen peer's routes go with the session, also from the healthy peer, whose
        // session is untouched.
        ginger.wait_no_route(net(BIRD_NET), Duration::from_secs(2))?;
        other.wait_no_route(net(BIRD_NET), Duration::from_secs(5))?;
        let healthy = ginger.peer(ip(OTHER_ADDR))?;
        assert_eq!(healthy.state, SessionState::Established, "{healthy:?}");
        assert_eq!(healthy.counters.established_count, 1, "{healthy:?}");

        let continued_at = Instant::now();
        bird.process().sigcont()?;
        let back = ginger.wait_established(ip(BIRD_ADDR), Duration::from_secs(30))?;
        eprintln!(
            "frozen: down {after:.1?} after SIGSTOP; up again {:.1?} after SIGCONT",
            continued_at.elapsed()
        );
        assert_eq!(back.counters.established_count, 2, "{back:?}");
        let r = ginger.wait_route(net(BIRD_NET), T, &|_| true)?;
        assert_eq!(
            best_path(&r).map(|p| p.from.as_str()),
            Some("Global_10_87_0_1")
        );
        bird.wait_established(ip(NODE), T)?;
        other.wait_route(net(BIRD_NET), T, &|r| r.as_path == [64512, 65001])?;
        assert_eq!(ginger.peer(ip(OTHER_ADDR))?.counters.established_count, 1);
        Ok(())
    });
}
