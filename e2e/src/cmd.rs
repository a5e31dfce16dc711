//! Running short-lived helper commands (`ip`, `birdc`, `vtysh`, `gobgp`) with a deadline.
//!
//! Owns: spawning a command with piped output, killing it when it overruns (a control client
//! talking to a SIGSTOPped daemon would otherwise hang the test forever), and turning failures
//! into `Error::Command` with the command line and its stderr. Must not: run long-lived daemons
//! (that is `proc`), or decide what a command's output means.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a control command may run before it is killed.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// How long to wait for the output pipes to close once the command has exited.
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// The command line as a user would type it (for messages).
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '\'', '"']) {
            parts.push(format!("'{}'", a.replace('\'', r"'\''")));
        } else {
            parts.push(a.into_owned());
        }
    }
    parts.join(" ")
}

/// Run `cmd` to completion (or until `timeout`, then kill it) and return its output, whatever
/// the exit status.
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let line = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            cmd: line.clone(),
            source,
        })?;
    // Both pipes are drained on their own threads so a chatty command cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_deadline(&mut child, timeout, &line)?;
    // A grandchild that inherited the pipes (a daemonised helper) would keep them open forever:
    // take what arrived shortly after the exit and move on.
    let stdout = stdout.collect(PIPE_GRACE);
    let stderr = stderr.collect(PIPE_GRACE);
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(Error::Command {
            cmd: line,
            status: format!("timed out after {timeout:?}, killed"),
            output: String::from_utf8_lossy(&stderr).trim().to_string(),
        }),
    }
}

/// Run `cmd` with the default timeout; a non-zero exit is an error. Returns stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    run_with_timeout(cmd, DEFAULT_COMMAND_TIMEOUT)
}

/// Run `cmd` with `timeout`; a non-zero exit is an error. Returns stdout.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let out = output_with_timeout(cmd, timeout)?;
    check(cmd, out)
}

/// Turn a finished command's output into stdout, or an error naming the command.
pub fn check(cmd: &Command, out: Output) -> Result<String> {
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let output = if stderr.is_empty() {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    } else {
        stderr
    };
    Err(Error::Command {
        cmd: describe(cmd),
        status: out.status.to_string(),
        output,
    })
}

/// Output collected from a pipe by a reader thread, available even while the pipe stays open.
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Drain {
    /// What arrived, once the pipe closed or `grace` passed.
    fn collect(self, grace: Duration) -> Vec<u8> {
        let _ = self.done.recv_timeout(grace);
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Drain {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let (tx, done) = mpsc::channel();
    let sink = Arc::clone(&buf);
    thread::spawn(move || {
        if let Some(mut p) = pipe {
            let mut chunk = [0u8; 8192];
            // A read error just ends the capture; the exit status still tells the story.
            while let Ok(n) = p.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        }
        let _ = tx.send(());
    });
    Drain { buf, done }
}

/// Wait for `child` until `timeout`; on overrun kill and reap it and return `None`.
fn wait_deadline(child: &mut Child, timeout: Duration, line: &str) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            Ok(None) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::io(format!("waiting for `{line}`"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_command_reports_line_and_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo boom >&2; exit 3"]);
        let err = run(&mut cmd).unwrap_err().to_string();
        assert!(err.contains("sh -c 'echo boom >&2; exit 3'"), "{err}");
        assert!(err.contains("boom"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
    }

    #[test]
    fn overrunning_command_is_killed() {
        let start = Instant::now();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let err = run_with_timeout(&mut cmd, Duration::from_millis(200)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("timed out"), "{err}");
    }

    #[test]
    fn background_grandchild_holding_the_pipe_does_not_hang() {
        let start = Instant::now();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 5 & echo $!"]);
        let out = run(&mut cmd).unwrap();
        let elapsed = start.elapsed();
        let pid: i32 = out.trim().parse().unwrap();
        // The grandchild is ours to end.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    }

    #[test]
    fn stdout_is_returned() {
        let mut cmd = Command::new("printf");
        cmd.arg("a b");
        assert_eq!(run(&mut cmd).unwrap(), "a b");
    }
}
