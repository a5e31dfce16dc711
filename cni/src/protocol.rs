//! The plugin ↔ agent protocol on the agent's CNI socket.
//!
//! Owns: the request and reply types and their framing: one JSON object per line, one request
//! then one reply per connection. Must not: do I/O beyond framing helpers on `Read`/`Write`.
//!
//! An ADD is three steps, so that nothing leaks whichever step fails:
//! 1. `Assign` — the agent allocates addresses for the handle (IPAM) and records the pending
//!    endpoint; the plugin then builds the veth pair, addresses and routes.
//! 2. `EndpointReady` — the plugin reports what it built; from now on the agent (felix) owns the
//!    host route and neighbour entry, and the endpoint survives agent restarts.
//! 3. On any failure after step 1, the plugin undoes the plumbing and sends `Release`.
//!
//! DEL is `Release` after the plugin tore down the veth; it is idempotent (an unknown handle is
//! success). The agent may also release a pending `Assign` whose `EndpointReady` never came (after
//! a grace period) — that is how a killed plugin leaks nothing.

use std::io::{self, BufRead, Write};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The socket's file name inside the agent's run directory.
pub const SOCKET_NAME: &str = "cni.sock";

/// Bumped on incompatible changes; the agent refuses other versions with a clear error.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest request or reply line accepted.
pub const MAX_LINE: usize = 1 << 20;

/// A request with its protocol version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `PROTOCOL_VERSION` of the sender.
    pub version: u32,
    /// The request.
    pub request: Request,
}

/// What the plugin asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Allocate addresses for a pod (ADD, step 1).
    Assign(AssignRequest),
    /// The pod's plumbing is in place (ADD, step 2).
    EndpointReady(EndpointInfo),
    /// Release the handle's addresses and forget its endpoint (DEL, or undoing an ADD).
    Release {
        /// `<network>.<containerID>`.
        handle: String,
    },
    /// DEL: the agent removes the pod's veth (by the host link's recorded ifindex) and releases
    /// the handle's addresses once the link is gone. Answered `Queued`, or `NotQueued` when the
    /// agent has no endpoint with a known host link for the handle (the plugin then removes the
    /// veth itself and sends `Release`).
    Teardown {
        /// `<network>.<containerID>`.
        handle: String,
    },
    /// CHECK: does the agent still hold this handle with these addresses?
    Check {
        /// `<network>.<containerID>`.
        handle: String,
        /// The addresses the pod's result lists.
        ips: Vec<IpAddr>,
    },
    /// GC (CNI 1.1): release every allocation of `network` whose handle is not in `keep`.
    Gc {
        /// The network name of the conflist.
        network: String,
        /// Handles of attachments the runtime still uses.
        keep: Vec<String>,
    },
    /// STATUS (CNI 1.1): can the agent serve ADDs now?
    Status,
}

/// Step 1 of ADD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignRequest {
    /// `<network>.<containerID>`: the IPAM handle (Calico's `k8s-pod-network.<id>`).
    pub handle: String,
    /// The conflist's network name.
    pub network: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// Pod namespace (`K8S_POD_NAMESPACE` from `CNI_ARGS`), or empty outside Kubernetes.
    pub namespace: String,
    /// Pod name (`K8S_POD_NAME`), or empty.
    pub pod: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// Allocate an IPv4 address.
    pub ipv4: bool,
    /// Allocate an IPv6 address.
    pub ipv6: bool,
}

/// The agent's answer to `Assign`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assigned {
    /// The addresses, each with the prefix length of the block it came from (Calico's
    /// calico-ipam output; the plugin narrows them to /32 or /128 on the pod).
    pub ips: Vec<IpNet>,
    /// The host-side link name to create (`cali` + 11 hex of SHA-1("<namespace>.<pod>")).
    pub host_ifname: String,
    /// The MTU to use when the network config sets none (host MTU detection).
    pub mtu: u32,
}

/// Step 2 of ADD: what the plugin built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// `<network>.<containerID>`.
    pub handle: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// Pod-side link name.
    pub ifname: String,
    /// Host-side link name.
    pub host_ifname: String,
    /// Host-side link index in the node's namespace (the agent deletes the link by index at
    /// DEL, so a newer link of the same name is never touched). Absent from older plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ifindex: Option<u32>,
    /// Pod-side MAC (`aa:bb:cc:dd:ee:ff`).
    pub container_mac: String,
    /// The pod's addresses.
    pub ips: Vec<IpAddr>,
}

/// Why the agent refused (mapped by the plugin to a CNI error code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Every pool this node may use is full and nothing can be borrowed.
    PoolExhausted,
    /// No IP pool is configured (or none allows this node).
    NoPool,
    /// The request is malformed or contradicts the agent's state.
    Invalid,
    /// The agent is not ready yet (starting, datastore not loaded): try again later.
    NotReady,
    /// The protocol version is not one this agent speaks.
    UnsupportedVersion,
    /// Anything else on the agent's side (storage I/O, …).
    Internal,
}

/// The agent's reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Answer to `Assign`.
    Assigned(Assigned),
    /// Answer to `EndpointReady`, `Release`, `Gc`, and a successful `Check`.
    Ok,
    /// Answer to `Teardown`: the agent removes the veth, then releases the addresses.
    Queued,
    /// Answer to `Teardown`: the agent has nothing to remove for the handle; the plugin
    /// removes the veth itself and sends `Release`.
    NotQueued {
        /// Why (for the plugin's log).
        reason: String,
    },
    /// Answer to `Status`.
    Status {
        /// The agent can serve ADDs.
        ready: bool,
        /// Why not, when not ready.
        message: String,
    },
    /// A refusal.
    Error {
        /// What kind of failure.
        kind: ErrorKind,
        /// A sentence for the user (it ends up in the CNI error `msg`).
        message: String,
    },
}

/// Framing or I/O failure on the socket.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The line is not the expected JSON.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The line exceeds `MAX_LINE`.
    #[error("message longer than {MAX_LINE} bytes")]
    TooLong,
    /// The peer closed the connection before a whole line arrived.
    #[error("connection closed before a complete message")]
    Closed,
}

/// Write one value as a JSON line.
pub fn write_line<T: Serialize>(w: &mut impl Write, value: &T) -> Result<(), FrameError> {
    let mut line = serde_json::to_vec(value).map_err(|e| FrameError::Malformed(e.to_string()))?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()?;
    Ok(())
}

/// Read one JSON line.
pub fn read_line<T: for<'de> Deserialize<'de>>(r: &mut impl BufRead) -> Result<T, FrameError> {
    let mut line = Vec::new();
    let mut limited = io::Read::take(&mut *r, MAX_LINE as u64 + 1);
    let n = limited.read_until(b'\n', &mut line)?;
    if n == 0 || !line.ends_with(b"\n") {
        return Err(if line.len() > MAX_LINE {
            FrameError::TooLong
        } else {
            FrameError::Closed
        });
    }
    serde_json::from_slice(&line).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_as_json_lines() {
        let req = Envelope {
            version: PROTOCOL_VERSION,
            request: Request::Assign(AssignRequest {
                handle: "k8s-pod-network.abc".into(),
                network: "k8s-pod-network".into(),
                container_id: "abc".into(),
                namespace: "default".into(),
                pod: "web-1".into(),
                ifname: "eth0".into(),
                netns: "/var/run/netns/cni-1".into(),
                ipv4: true,
                ipv6: false,
            }),
        };
        let mut buf = Vec::new();
        write_line(&mut buf, &req).unwrap();
        let reply = Reply::Error {
            kind: ErrorKind::PoolExhausted,
            message: "no free address".into(),
        };
        write_line(&mut buf, &reply).unwrap();
        let mut r = io::BufReader::new(&buf[..]);
        assert_eq!(read_line::<Envelope>(&mut r).unwrap(), req);
        assert_eq!(read_line::<Reply>(&mut r).unwrap(), reply);
        assert!(matches!(
            read_line::<Reply>(&mut r),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn malformed_and_oversized_lines_are_errors() {
        let mut r = io::BufReader::new(&b"{\"version\":1}\n"[..]);
        assert!(matches!(
            read_line::<Envelope>(&mut r),
            Err(FrameError::Malformed(_))
        ));
        let long = vec![b'x'; MAX_LINE + 10];
        let mut r = io::BufReader::new(&long[..]);
        assert!(matches!(
            read_line::<Reply>(&mut r),
            Err(FrameError::TooLong)
        ));
    }
}
