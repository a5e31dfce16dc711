//! The only module with `unsafe`: thin, checked wrappers over the two syscalls that neither std
//! nor netlink-sys wraps safely — `setns(2)` (enter a network namespace on the calling thread) and
//! `setsockopt(SO_RCVBUFFORCE)` (a receive buffer above `rmem_max`, for netlink ACK bursts and
//! the link monitor) — and tokio's `AsyncFd` registration of an owned socket. Callers pass
//! borrowed or owned file descriptors, so no fd is used after close.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Moves the calling thread into the network namespace `ns` refers to.
pub(crate) fn setns_net(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `ns` is a live, borrowed descriptor for the duration of the call; setns only reads
    // the integer and changes the calling thread's namespace, touching no Rust-managed memory.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a socket's receive buffer to `bytes`, ignoring `rmem_max` (needs CAP_NET_ADMIN).
pub(crate) fn force_receive_buffer(sock: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let value: libc::c_int = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: the option value points at a live, properly aligned c_int whose size is passed
    // alongside; the kernel copies it before returning. `sock` is borrowed and open.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Registers an owned netlink socket with the current tokio reactor for readability.
pub(crate) fn register_readable(
    sock: rtnetlink::sys::Socket,
) -> io::Result<tokio::io::unix::AsyncFd<rtnetlink::sys::Socket>> {
    // SAFETY: the AsyncFd takes ownership of `sock`, whose fd is open, is closed only when the
    // socket is dropped (after the AsyncFd deregisters it), and `as_raw_fd` always returns it.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE)
            .map_err(|e| e.into_parts().1)
    }
}
