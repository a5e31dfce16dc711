//! The teardown worker: removes the veths of pods whose DEL handed their teardown to the agent
//! (`Teardown` on the CNI socket), then has `PodNetwork::finish_teardown` release their
//! addresses — so an address is never reused while a link or route still points at the old pod.
//!
//! Owns: one thread, its queue and its retries (a failed removal or release is retried with
//! backoff, up to 30 s apart, until it succeeds). Must not: decide what to remove (the pod
//! network queues jobs for endpoints it recorded) or touch any link but the job's: felix's
//! `remove_host_link` deletes by index and only when that index still carries the recorded
//! name. Why a worker at all: the kernel's veth removal blocks its caller for ~18 ms of RCU
//! grace periods, which DEL no longer waits for. Runs in the agent's (the node's) namespace.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ipam::BlockStore;
use crate::pod_network::{PodNetwork, TeardownJob};

/// First retry delay after a failure; doubled per failure up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the worker thread; it ends when every sender of `jobs` is gone.
pub fn spawn<S>(
    pods: Arc<PodNetwork<S>>,
    jobs: Receiver<TeardownJob>,
) -> std::io::Result<JoinHandle<()>>
where
    S: BlockStore + Send + Sync + 'static,
{
    std::thread::Builder::new()
        .name("teardown".into())
        .spawn(move || run(&pods, &jobs))
}

struct Retry {
    job: TeardownJob,
    at: Instant,
    backoff: Duration,
}

fn run<S: BlockStore>(pods: &PodNetwork<S>, jobs: &Receiver<TeardownJob>) {
    let mut retries: VecDeque<Retry> = VecDeque::new();
    loop {
        let next = match retries.iter().map(|r| r.at).min() {
            None => match jobs.recv() {
                Ok(job) => Some((job, FIRST_BACKOFF)),
                Err(_) => return,
            },
            Some(at) => match jobs.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(job) => Some((job, FIRST_BACKOFF)),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        let due: Vec<Retry> = {
            let now = Instant::now();
            let (due, later): (Vec<Retry>, Vec<Retry>) =
                retries.drain(..).partition(|r| r.at <= now);
            retries.extend(later);
            due
        };
        let work = next
            .into_iter()
            .chain(due.into_iter().map(|r| (r.job, r.backoff)));
        for (job, backoff) in work {
            if let Err(e) = tear_down(pods, &job) {
                tracing::warn!(
                    handle = %job.handle,
                    link = %job.host_ifname,
                    retry_in = ?backoff,
                    "teardown failed: {e}"
                );
                retries.push_back(Retry {
                    at: Instant::now() + backoff,
                    job,
                    backoff: (backoff * 2).min(MAX_BACKOFF),
                });
            }
        }
    }
}

fn tear_down<S: BlockStore>(pods: &PodNetwork<S>, job: &TeardownJob) -> Result<(), String> {
    let removed = felix::workload::remove_host_link(&job.host_ifname, job.host_ifindex)
        .map_err(|e| e.to_string())?;
    tracing::debug!(handle = %job.handle, link = %job.host_ifname, removed, "host link removed");
    pods.finish_teardown(&job.handle).map_err(|e| e.to_string())
}
