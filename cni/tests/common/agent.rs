//! A small ginger-node stand-in for the plugin's tests: it speaks `cni::protocol` on a socket in
//! a temporary run directory and keeps real state (allocations by handle from a fixed list of
//! addresses, endpoints, the requests it saw). It is the protocol peer the plugin talks to while
//! the real agent is written in parallel. Knobs inject failures: refuse `EndpointReady`, report
//! not ready. Dropping it stops the server and removes the socket.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::IpAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cni::protocol::{
    self, Assigned, Envelope, ErrorKind, PROTOCOL_VERSION, Reply, Request, SOCKET_NAME,
};
use ipnet::IpNet;

/// One allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub network: String,
    pub ips: Vec<IpNet>,
    /// `EndpointReady` arrived.
    pub ready: bool,
    pub host_ifname: String,
}

#[derive(Default)]
pub struct State {
    /// Free IPv4 addresses, handed out front first.
    pub free: Vec<IpNet>,
    /// Free IPv6 addresses, for requests that ask for IPv6.
    pub free_v6: Vec<IpNet>,
    pub allocations: BTreeMap<String, Allocation>,
    pub requests: Vec<Request>,
    pub fail_endpoint_ready: bool,
    pub not_ready: bool,
    pub mtu: u32,
}

impl State {
    /// Returns released addresses to the front of their family's free list.
    fn give_back(&mut self, ips: Vec<IpNet>) {
        for ip in ips.into_iter().rev() {
            let pool = if ip.addr().is_ipv4() {
                &mut self.free
            } else {
                &mut self.free_v6
            };
            pool.insert(0, ip);
        }
    }
}

pub struct TestAgent {
    dir: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn answer(state: &Mutex<State>, envelope: Envelope) -> Reply {
    let mut s = state.lock().unwrap();
    s.requests.push(envelope.request.clone());
    if envelope.version != PROTOCOL_VERSION {
        return Reply::Error {
            kind: ErrorKind::UnsupportedVersion,
            message: format!("protocol {}", envelope.version),
        };
    }
    match envelope.request {
        Request::Assign(a) => {
            if s.not_ready {
                return Reply::Error {
                    kind: ErrorKind::NotReady,
                    message: "datastore not loaded".into(),
                };
            }
            if let Some(existing) = s.allocations.get(&a.handle) {
                return Reply::Assigned(Assigned {
                    ips: existing.ips.clone(),
                    host_ifname: existing.host_ifname.clone(),
                    mtu: s.mtu,
                });
            }
            if (a.ipv4 && s.free.is_empty()) || (a.ipv6 && s.free_v6.is_empty()) {
                return Reply::Error {
                    kind: ErrorKind::PoolExhausted,
                    message: "no free address in pool 10.65.0.0/26".into(),
                };
            }
            let mut ips = Vec::new();
            if a.ipv4 {
                ips.push(s.free.remove(0));
            }
            if a.ipv6 {
                ips.push(s.free_v6.remove(0));
            }
            let host_ifname = felix::workload::host_ifname(&a.namespace, &a.pod);
            s.allocations.insert(
                a.handle.clone(),
                Allocation {
                    network: a.network.clone(),
                    ips: ips.clone(),
                    ready: false,
                    host_ifname: host_ifname.clone(),
                },
            );
            Reply::Assigned(Assigned {
                ips,
                host_ifname,
                mtu: s.mtu,
            })
        }
        Request::EndpointReady(e) => {
            if s.fail_endpoint_ready {
                return Reply::Error {
                    kind: ErrorKind::Internal,
                    message: "injected: cannot store the endpoint".into(),
                };
            }
            match s.allocations.get_mut(&e.handle) {
                Some(a) => {
                    a.ready = true;
                    Reply::Ok
                }
                None => Reply::Error {
                    kind: ErrorKind::Invalid,
                    message: format!("no assignment for {}", e.handle),
                },
            }
        }
        // The stand-in never removes veths: the plugin's own DEL path runs.
        Request::Teardown { .. } => Reply::NotQueued {
            reason: "the test agent removes no veths".into(),
        },
        Request::Release { handle } => {
            if let Some(a) = s.allocations.remove(&handle) {
                s.give_back(a.ips);
            }
            Reply::Ok
        }
        Request::Check { handle, ips } => match s.allocations.get(&handle) {
            Some(a) if a.ips.iter().map(IpNet::addr).collect::<Vec<IpAddr>>() == ips => Reply::Ok,
            Some(a) => Reply::Error {
                kind: ErrorKind::Invalid,
                message: format!("{handle} holds {:?}, not {ips:?}", a.ips),
            },
            None => Reply::Error {
                kind: ErrorKind::Invalid,
                message: format!("no allocation for {handle}"),
            },
        },
        Request::Gc { network, keep } => {
            let stale: Vec<String> = s
                .allocations
                .iter()
                .filter(|(h, a)| a.network == network && !keep.contains(h))
                .map(|(h, _)| h.clone())
                .collect();
            for h in stale {
                if let Some(a) = s.allocations.remove(&h) {
                    s.give_back(a.ips);
                }
            }
            Reply::Ok
        }
        Request::Status => Reply::Status {
            ready: !s.not_ready,
            message: if s.not_ready {
                "datastore not loaded".into()
            } else {
                String::new()
            },
        },
    }
}

fn serve(stream: UnixStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(&stream);
    let Ok(envelope) = protocol::read_line::<Envelope>(&mut reader) else {
        return;
    };
    let reply = answer(state, envelope);
    let mut writer = &stream;
    let _ = protocol::write_line(&mut writer, &reply);
}

impl TestAgent {
    /// Starts an agent whose socket lives in `dir` (an existing directory), handing out the
    /// IPv4 `addresses` in order.
    pub fn start_in(dir: &Path, addresses: &[&str]) -> TestAgent {
        Self::start_dual(dir, addresses, &[])
    }

    /// Like `start_in`, with IPv6 addresses too.
    pub fn start_dual(dir: &Path, v4: &[&str], v6: &[&str]) -> TestAgent {
        let parse = |list: &[&str]| list.iter().map(|a| a.parse().unwrap()).collect();
        let state = State {
            free: parse(v4),
            free_v6: parse(v6),
            mtu: 1440,
            ..State::default()
        };
        Self::start_with(dir, state)
    }

    fn start_with(dir: &Path, state: State) -> TestAgent {
        let socket = dir.join(SOCKET_NAME);
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).expect("bind test agent socket");
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = conn {
                        serve(stream, &state);
                    }
                }
            })
        };
        TestAgent {
            dir: dir.to_path_buf(),
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// The run directory (the plugin's `run_dir`).
    pub fn run_dir(&self) -> &Path {
        &self.dir
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Stops serving and removes the socket (the agent is "down"), keeping the directory and
    /// returning the state so a restarted agent can carry it on.
    pub fn stop(mut self) -> State {
        self.shutdown();
        std::mem::take(&mut *self.state.lock().unwrap())
    }

    /// Starts again in the same directory with `state`.
    pub fn restart(dir: &Path, state: State) -> TestAgent {
        Self::start_with(dir, state)
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let socket = self.dir.join(SOCKET_NAME);
        // Wake the accept loop so it sees the stop flag.
        let _ = UnixStream::connect(&socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&socket);
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.shutdown();
    }
}
