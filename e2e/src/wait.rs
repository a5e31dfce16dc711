//! Polling with a deadline and a failure message a developer can act on.
//!
//! Owns: `wait_until` (poll until a closure says done) and `wait_for` (poll a value until a
//! predicate holds). The timeout error names what was awaited and the last value or error seen.
//! Must not: sleep a fixed time and hope; every wait in the harness goes through here.

use std::fmt::{Debug, Display};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// First pause between polls; it doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
/// Longest pause between polls.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// Call `poll` until it returns `Ok`, or fail after `timeout`. `Err(e)` means "not yet"; the
/// last `e` is quoted in the timeout error, so make it describe the current state.
///
/// ```no_run
/// # use std::time::Duration;
/// # use e2e::{BgpDaemon, wait_until};
/// # fn f(bird: &e2e::Bird, p: ipnet::IpNet) -> e2e::Result<()> {
/// wait_until(Duration::from_secs(10), "the route to vanish", || match bird.route(p) {
///     Ok(None) => Ok(()),
///     Ok(Some(r)) => Err(format!("still there: {r}")),
///     Err(e) => Err(e.chain()),
/// })?;
/// # Ok(())
/// # }
/// ```
pub fn wait_until<T, E: Display>(
    timeout: Duration,
    what: &str,
    mut poll: impl FnMut() -> Result<T, E>,
) -> Result<T> {
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let last = match poll() {
            Ok(v) => return Ok(v),
            Err(e) => e.to_string(),
        };
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::Timeout {
                what: what.to_string(),
                waited,
                last,
            });
        }
        thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Call `probe` until its value satisfies `done`, or fail after `timeout` quoting the last
/// value (or the last error, if probing failed).
pub fn wait_for<V: Debug>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<V>,
    mut done: impl FnMut(&V) -> bool,
) -> Result<V> {
    wait_until(timeout, what, || match probe() {
        Ok(v) if done(&v) => Ok(v),
        Ok(v) => Err(format!("{v:?}")),
        Err(e) => Err(format!("error: {}", e.chain())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_ready() {
        let mut n = 0;
        let v = wait_until(Duration::from_secs(5), "three polls", || {
            n += 1;
            if n == 3 { Ok(n) } else { Err(format!("n={n}")) }
        })
        .unwrap();
        assert_eq!(v, 3);
    }

    #[test]
    fn timeout_names_what_and_last_value() {
        let start = Instant::now();
        let err = wait_for(
            Duration::from_millis(150),
            "the answer",
            || Ok(41),
            |v| *v == 42,
        )
        .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert!(start.elapsed() < Duration::from_secs(2));
        let msg = err.to_string();
        assert!(msg.contains("waiting for the answer"), "{msg}");
        assert!(msg.contains("last seen: 41"), "{msg}");
    }

    #[test]
    fn probe_errors_are_quoted() {
        let err = wait_for(
            Duration::from_millis(50),
            "a daemon",
            || -> Result<u8> {
                Err(Error::Unsupported {
                    daemon: "bird",
                    what: "telepathy".into(),
                })
            },
            |_| true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("telepathy"), "{err}");
    }
}
