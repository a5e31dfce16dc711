//! Long-running child processes (daemons, Ginger binaries) as guards.
//!
//! Owns: starting a prepared `Command` (normally `ip netns exec NS …`, which execs the program
//! in place, so the child's pid is the daemon's) with stdout/stderr in log files, signalling it
//! by PID (stop/continue for failure injection), telling whether it still runs, reading its logs,
//! and on drop: SIGCONT (a stopped process cannot act on SIGTERM), SIGTERM, a short grace, then
//! SIGKILL, and reaping. Must not: signal anything it did not start, or send a signal after the
//! child was reaped (the pid may belong to someone else by then).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::kill;
use nix::unistd::Pid;

pub use nix::sys::signal::Signal;

use crate::cmd;
use crate::error::{Error, Result};

/// Grace between SIGTERM and SIGKILL when a `Proc` is dropped.
const DROP_GRACE: Duration = Duration::from_secs(2);
/// Grace `stop` gives before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A started child process, killed and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    label: String,
    cmdline: String,
    pid: u32,
    child: Mutex<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    /// Start `cmd` with stdout/stderr in `log_dir/<label>.stdout|.stderr` (stdin closed).
    pub fn spawn(mut cmd: Command, label: &str, log_dir: &Path) -> Result<Proc> {
        fs::create_dir_all(log_dir)
            .map_err(|e| Error::io(format!("creating {}", log_dir.display()), e))?;
        let stdout = log_dir.join(format!("{label}.stdout"));
        let stderr = log_dir.join(format!("{label}.stderr"));
        let open = |p: &Path| {
            File::create(p).map_err(|e| Error::io(format!("creating {}", p.display()), e))
        };
        let cmdline = cmd::describe(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(open(&stdout)?)
            .stderr(open(&stderr)?)
            .spawn()
            .map_err(|source| Error::Spawn {
                cmd: cmdline.clone(),
                source,
            })?;
        Ok(Proc {
            label: label.to_string(),
            cmdline,
            pid: child.id(),
            child: Mutex::new(child),
            stdout,
            stderr,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The label its log files are named after.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The command line it was started with.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// Path of the stdout log.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    /// Path of the stderr log.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// Whether the process has not exited yet (a stopped process is still running).
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// The exit status, once it has exited (reaps it).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut child = self.lock();
        child.try_wait().ok().flatten()
    }

    /// Send `sig` (no-op error if it already exited).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        let child = &mut *self.lock();
        signal_child(child, sig, &self.label)
    }

    /// Freeze the process (SIGSTOP): its sockets stay open but it answers nothing.
    pub fn sigstop(&self) -> Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    /// Resume a frozen process (SIGCONT).
    pub fn sigcont(&self) -> Result<()> {
        self.signal(Signal::SIGCONT)
    }

    /// Send `sig` and wait for the exit; SIGKILL after 5 s. Returns the exit status.
    pub fn stop(&self, sig: Signal) -> Result<ExitStatus> {
        let child = &mut *self.lock();
        if let Some(status) = try_wait(child, &self.label)? {
            return Ok(status);
        }
        signal_child(child, sig, &self.label)?;
        if sig != Signal::SIGCONT {
            // A stopped process acts on nothing but SIGKILL until continued.
            let _ = signal_child(child, Signal::SIGCONT, &self.label);
        }
        finish(child, STOP_GRACE, &self.label)
    }

    /// Wait up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = try_wait(&mut self.lock(), &self.label)? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{} (pid {}) to exit", self.label, self.pid),
                    waited: timeout,
                    last: "still running".into(),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it wrote so far: stdout, then stderr.
    pub fn logs(&self) -> String {
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        let (out, err) = (read(&self.stdout), read(&self.stderr));
        match (out.is_empty(), err.is_empty()) {
            (_, true) => out,
            (true, false) => err,
            (false, false) => format!("{out}\n--- stderr ---\n{err}"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Child> {
        // A panic while holding the lock leaves the Child intact; keep using it.
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let label = self.label.clone();
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let result = (|| -> Result<ExitStatus> {
            if let Some(status) = try_wait(child, &label)? {
                return Ok(status);
            }
            let _ = signal_child(child, Signal::SIGCONT, &label);
            signal_child(child, Signal::SIGTERM, &label)?;
            finish(child, DROP_GRACE, &label)
        })();
        if let Err(e) = result {
            eprintln!(
                "e2e: stopping {label} (pid {}) failed: {}",
                self.pid,
                e.chain()
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn try_wait(child: &mut Child, label: &str) -> Result<Option<ExitStatus>> {
    child
        .try_wait()
        .map_err(|e| Error::io(format!("waiting for {label}"), e))
}

fn signal_child(child: &mut Child, sig: Signal, label: &str) -> Result<()> {
    if try_wait(child, label)?.is_some() {
        return Err(Error::Sys {
            context: format!("sending {sig} to {label}: it already exited"),
            source: nix::Error::ESRCH,
        });
    }
    let pid = child.id();
    kill(Pid::from_raw(pid as i32), sig)
        .map_err(|e| Error::sys(format!("sending {sig} to {label} (pid {pid})"), e))
}

/// Wait `grace` for an exit, then SIGKILL and reap.
fn finish(child: &mut Child, grace: Duration, label: &str) -> Result<ExitStatus> {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = try_wait(child, label)? {
            return Ok(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child
        .wait()
        .map_err(|e| Error::io(format!("reaping {label}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::is_alive;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn logs_land_in_files_and_drop_kills() {
        let dir = tmp();
        let mut c = Command::new("sh");
        c.args(["-c", "echo hello; echo oops >&2; exec sleep 60"]);
        let p = Proc::spawn(c, "sleeper", dir.path()).unwrap();
        let pid = p.pid() as i32;
        let start = Instant::now();
        while !p.logs().contains("oops") && start.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(p.logs().contains("hello"));
        assert!(p.logs().contains("oops"));
        assert!(p.is_running());
        drop(p);
        assert!(!is_alive(pid), "pid {pid} survived the drop");
        assert!(dir.path().join("sleeper.stdout").exists());
    }

    #[test]
    fn stopped_process_still_runs_and_is_killed_on_drop() {
        let dir = tmp();
        let mut c = Command::new("sleep");
        c.arg("60");
        let p = Proc::spawn(c, "frozen", dir.path()).unwrap();
        let pid = p.pid() as i32;
        p.sigstop().unwrap();
        assert!(p.is_running());
        let start = Instant::now();
        drop(p);
        assert!(!is_alive(pid));
        // SIGCONT then SIGTERM ends `sleep` at once; it must not need the SIGKILL grace.
        assert!(start.elapsed() < DROP_GRACE, "{:?}", start.elapsed());
    }

    #[test]
    fn stop_returns_the_exit_status_and_signals_after_exit_fail() {
        let dir = tmp();
        let mut c = Command::new("sleep");
        c.arg("60");
        let p = Proc::spawn(c, "term", dir.path()).unwrap();
        let status = p.stop(Signal::SIGTERM).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert!(!p.is_running());
        assert!(p.signal(Signal::SIGTERM).is_err());
        assert!(p.wait_exit(Duration::from_millis(10)).is_ok());
    }
}
