//! Randomized live abuse: for about 20 s a raw peer connects to a running `ginger-node` again
//! and again, sometimes with a mutated OPEN, otherwise completes the handshake and sends a burst
//! of mutated valid messages (UPDATEs with every attribute the node handles, withdrawals,
//! End-of-RIB, KEEPALIVE, ROUTE-REFRESH). The node must stay up, keep its BIRD session (never
//! reset), stay within 64 MiB of its baseline RSS, end or keep every raw connection cleanly, and
//! afterwards still accept a clean session from the same peer and idle.
//!
//! Reproducible: the seed is printed and `GINGER_ABUSE_SEED=<n>` replays a run.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use e2e::rawpeer::msg::{self, msg_type};
use e2e::robust::{
    self, Framing, MemoryBudget, RAW_ADDR, RawLab, Rng, abuse_corpus, mutate, raw_announce,
    raw_open,
};
use e2e::{BgpDaemon, RawMessage, RawPeer, scenario};
use ipnet::{IpNet, Ipv4Net};

/// Per-step deadline.
const T: Duration = Duration::from_secs(20);
/// How long the abuse runs.
const ABUSE_FOR: Duration = Duration::from_secs(20);
/// How long to listen after a burst before ending the connection ourselves.
const LISTEN: Duration = Duration::from_millis(150);
/// RSS growth allowed over the baseline.
const RSS_ALLOWANCE_MIB: u64 = 64;
/// The seed when `GINGER_ABUSE_SEED` is not set.
const DEFAULT_SEED: u64 = 0x6769_6e67_6572_2101;

/// What one run did.
#[derive(Debug, Default)]
struct Tally {
    connections: u64,
    refused: u64,
    handshakes: u64,
    mutated_opens: u64,
    messages: u64,
    mutants: u64,
    /// The node ended the connection (with a NOTIFICATION or without).
    closed_by_node: u64,
    /// We ended it with a Cease after the node had accepted everything.
    ended_by_us: u64,
    /// Connections still open after our Cease: the node lost the framing.
    lingering: u64,
    /// NOTIFICATIONs the node sent, by `code/subcode`.
    notifications: BTreeMap<String, u64>,
}

impl Tally {
    fn saw(&mut self, got: &[RawMessage]) {
        for m in got
            .iter()
            .filter(|m| m.msg_type() == msg_type::NOTIFICATION)
        {
            let key = match m.notification() {
                Ok((c, s, _)) => format!("{c}/{s}"),
                Err(_) => "malformed".to_string(),
            };
            *self.notifications.entry(key).or_default() += 1;
        }
    }
}

/// Read until the node closes or `quiet` passes without a message; `Ok(true)` if it closed.
fn drain(raw: &mut RawPeer, quiet: Duration, tally: &mut Tally) -> bool {
    let mut got = Vec::new();
    let closed = loop {
        match raw.recv(quiet) {
            Ok(m) => got.push(m),
            Err(e2e::Error::Timeout { .. }) => break false,
            Err(_) => break true,
        }
    };
    tally.saw(&got);
    closed
}

/// End a connection the node kept: Cease, then expect the node to close.
fn end(mut raw: RawPeer, tally: &mut Tally) {
    if raw.send(&msg::notification(6, 2, &[])).is_err() {
        tally.closed_by_node += 1;
        return;
    }
    if drain(&mut raw, Duration::from_secs(2), tally) {
        tally.ended_by_us += 1;
    } else {
        tally.lingering += 1;
    }
}

/// One abusive connection.
fn abuse_once(lab: &RawLab, rng: &mut Rng, framing: Framing, tally: &mut Tally) {
    tally.connections += 1;
    let Ok(mut raw) = lab.connect_raw() else {
        tally.refused += 1;
        return;
    };
    if rng.chance(10) {
        tally.mutated_opens += 1;
        tally.messages += 1;
        if raw.send(&mutate(rng, &raw_open(), framing)).is_err() {
            return;
        }
        if drain(&mut raw, LISTEN, tally) {
            tally.closed_by_node += 1;
        } else {
            end(raw, tally);
        }
        return;
    }
    if raw.handshake(&raw_open(), Duration::from_secs(5)).is_err() {
        // The node refused the connection (its previous one was still being torn down).
        tally.refused += 1;
        return;
    }
    tally.handshakes += 1;
    let corpus = abuse_corpus(rng);
    for _ in 0..=rng.below(30) {
        let base = &corpus[rng.below(corpus.len())];
        let bytes = if rng.chance(70) {
            tally.mutants += 1;
            mutate(rng, base, framing)
        } else {
            base.clone()
        };
        tally.messages += 1;
        if raw.send(&bytes).is_err() {
            break;
        }
    }
    if drain(&mut raw, LISTEN, tally) {
        tally.closed_by_node += 1;
    } else {
        end(raw, tally);
    }
}

fn seed() -> u64 {
    std::env::var("GINGER_ABUSE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

fn abuse(label: &str, framing: Framing) {
    scenario(label, |dir| {
        let lab = RawLab::start(dir.path())?;
        let mark = lab.bird_mark()?;
        let pid = lab.ginger.process().pid();
        let budget = MemoryBudget::new(pid, RSS_ALLOWANCE_MIB)?;
        let seed = seed();
        eprintln!("abuse seed {seed} (replay: GINGER_ABUSE_SEED={seed})");
        let mut rng = Rng::new(seed);
        let mut tally = Tally::default();
        let started = Instant::now();
        while started.elapsed() < ABUSE_FOR {
            abuse_once(&lab, &mut rng, framing, &mut tally);
            if tally.connections % 25 == 0 {
                lab.assert_undisturbed(&mark, &budget, &format!("seed {seed}, {tally:?}"));
            }
        }
        eprintln!("abuse tally: {tally:#?}");
        let context = format!("seed {seed}, {tally:?}");
        lab.assert_undisturbed(&mark, &budget, &context);

        // The abuse was real: it reached the handshake, the attribute checks and the resets.
        assert!(tally.connections >= 30, "{context}");
        assert!(tally.handshakes >= 20, "{context}");
        assert!(tally.mutants >= 200, "{context}");
        let sent: u64 = tally.notifications.values().sum();
        assert!(
            sent >= 10,
            "{context}: the node sent only {sent} NOTIFICATIONs"
        );
        let raw_status = lab.raw_status()?;
        assert!(
            raw_status.counters.treat_as_withdraw > 0,
            "{context}: no mutant reached treat-as-withdraw: {raw_status:?}"
        );
        // The node took every connection (a refusal means a dead one still occupies the slot)
        // and every one ended cleanly: the node closed it or honoured our Cease.
        assert!(
            tally.refused * 20 <= tally.connections,
            "{context}: the node refused {} of {} connections",
            tally.refused,
            tally.connections
        );
        // With intact framing every connection ends at once. With broken framing a truncated
        // message leaves the node waiting for its remaining bytes (our Cease becomes part of
        // them): only the hold timer or our close ends those, as with any BGP speaker. They
        // must stay rare, and closing them must free the slot (the clean session below).
        match framing {
            Framing::Keep => assert_eq!(tally.lingering, 0, "{context}"),
            Framing::MayBreak => assert!(
                tally.lingering * 100 <= tally.connections,
                "{context}: too many lingering connections"
            ),
        }
        assert!(
            !lab.ginger.logs().contains("panicked"),
            "{context}: a panic was logged"
        );

        // Afterwards the peer gets a clean session and is heard, and the node idles.
        let p: Ipv4Net = "100.127.1.0/24".parse().expect("literal");
        let raw_ip = IpAddr::V4(RAW_ADDR);
        lab.ginger.wait_not_established(raw_ip, T)?;
        let mut raw = lab.raw_session()?;
        raw.send(&raw_announce(p))?;
        lab.ginger.wait_route(IpNet::V4(p), T, &|_| true)?;
        lab.bird().wait_any_route(IpNet::V4(p), T)?;
        let load = robust::cpu_load(pid, Duration::from_secs(1))?;
        assert!(
            load < 0.3,
            "{context}: the node is busy ({:.0}%)",
            load * 100.0
        );
        lab.assert_undisturbed(&mark, &budget, &context);
        Ok(())
    });
}

/// Mutants that keep the message framing; every connection ends with the node's close or our
/// Cease.
#[test]
fn randomized_abuse_live() {
    abuse("abuse", Framing::Keep);
}

/// The same with lying length fields and short messages: connections then also end with the
/// node waiting for bytes that never come, and the peer hanging up on it.
#[test]
fn randomized_abuse_with_broken_framing_live() {
    abuse("abuse-frames", Framing::MayBreak);
}
