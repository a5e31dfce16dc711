//! Running Rust code inside a lab namespace: a fresh thread that has `setns(2)`'d into it.
//!
//! Owns: `thread_in_netns` (run a closure there and return its result) and `spawn_in_netns`
//! (a long-lived thread, e.g. a listener). Sockets created on such a thread belong to the
//! namespace for their whole life, so they can be handed back and used from any thread.
//! Must not: switch the calling thread (it may be the test's main thread, and `Netns::drop`
//! kills every process whose main thread is inside the namespace), or enter any namespace but
//! a network one. `nix` wraps the system call, so the crate needs no `unsafe`.

use std::fs::File;
use std::sync::mpsc;
use std::thread;

use nix::sched::{CloneFlags, setns};

use crate::error::{Error, Result};
use crate::netns::Netns;

/// Run `f` on a new thread inside `ns` and return what it returns. A panic in `f` is
/// propagated to the caller.
pub fn thread_in_netns<T, F>(ns: &Netns, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let handle = open(ns)?;
    let name = ns.name().to_string();
    thread::scope(|scope| {
        let joined = scope
            .spawn(move || -> Result<T> {
                enter(&handle, &name)?;
                Ok(f())
            })
            .join();
        match joined {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Start `f` on a new thread inside `ns` and return its handle once the thread is inside.
pub fn spawn_in_netns<T, F>(ns: &Netns, f: F) -> Result<thread::JoinHandle<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let handle = open(ns)?;
    let name = ns.name().to_string();
    let (entered_tx, entered_rx) = mpsc::channel::<Result<()>>();
    let thread = thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            let entered = enter(&handle, &name);
            let ok = entered.is_ok();
            let _ = entered_tx.send(entered);
            if !ok {
                // The caller gets the error from the channel; this thread has nothing to run.
                std::panic::resume_unwind(Box::new("setns failed"));
            }
            f()
        })
        .map_err(|e| Error::io(format!("starting a thread for namespace {}", ns.name()), e))?;
    match entered_rx.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(Error::Sys {
            context: format!(
                "thread for namespace {} ended before entering it",
                ns.name()
            ),
            source: nix::Error::ECHILD,
        }),
    }
}

fn open(ns: &Netns) -> Result<File> {
    let path = ns.path();
    File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

fn enter(handle: &File, name: &str) -> Result<()> {
    setns(handle, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::sys(format!("entering network namespace {name}"), e))
}
