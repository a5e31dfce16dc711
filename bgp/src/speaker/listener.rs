//! The BGP listening sockets: accept connections and hand them to the core, which gives each to
//! the session of the peer with that address.
//!
//! Owns: binding (IPv4 and, where the namespace has it, IPv6), the accept loop. Must not: decide
//! whether a connection is wanted (the core and the peer's FSM do).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{CoreMsg, SpeakerError};

/// The running accept loops; dropping this stops them.
pub(crate) struct Listeners {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if addr.is_ipv6() {
        // Separate IPv4 and IPv6 sockets, so each family's bind stands alone.
        socket2_v6only(&socket)?;
    }
    socket.bind(addr)?;
    socket.listen(128)
}

/// Set IPV6_V6ONLY (tokio's `TcpSocket` has no setter for it).
#[allow(unsafe_code)]
fn socket2_v6only(socket: &TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: valid fd owned by `socket`, pointer and length describe a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bind on `address` (or on every IPv4 and IPv6 address) at `port` and start accepting.
pub(crate) fn start(
    address: Option<IpAddr>,
    port: u16,
    core: mpsc::Sender<CoreMsg>,
) -> Result<Listeners, SpeakerError> {
    let addrs: Vec<(SocketAddr, bool)> = match address {
        Some(a) => vec![(SocketAddr::new(a, port), true)],
        None => vec![
            (
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                true,
            ),
            // IPv6 may be disabled in the namespace; then IPv4 alone is fine.
            (
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                false,
            ),
        ],
    };
    let mut tasks = Vec::new();
    for (addr, required) in addrs {
        match bind(addr) {
            Ok(listener) => tasks.push(tokio::spawn(accept_loop(listener, core.clone()))),
            Err(e) if !required => {
                tracing::debug!(%addr, error = %e, "not listening on IPv6");
            }
            Err(source) => return Err(SpeakerError::Listen { addr, source }),
        }
    }
    tracing::info!(port, address = ?address, "listening for BGP connections");
    Ok(Listeners { tasks })
}

async fn accept_loop(listener: TcpListener, core: mpsc::Sender<CoreMsg>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
                if core
                    .send(CoreMsg::Accepted { stream, remote })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accepting a BGP connection failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
