//! The teardown worker: removes the veths of pods whose DEL handed their teardown to the agent
//! (`Teardown` on the CNI socket), then has `PodNetwork::finish_teardown` release their
//! addresses — so an address is never reused while a link or route still points at the old pod.
//!
//! Owns: one thread, its queue, batching and retries. Every job queued while a batch was being
//! removed goes into the next batch, which felix's `remove_host_links` deletes in one kernel
//! unregistration; a failed removal or release is retried with backoff, up to 30 s apart, until
//! it succeeds. Must not: decide what to remove (the pod network queues jobs for endpoints it
//! recorded) or touch any link but the jobs': felix deletes by index and only when that index
//! still carries the recorded name. Why a worker at all: the kernel's veth removal blocks its
//! caller for ~18 ms of RCU grace periods, which DEL no longer waits for. Runs in the agent's
//! (the node's) namespace.

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
    let mut retries: Vec<Retry> = Vec::new();
    loop {
        let first = match retries.iter().map(|r| r.at).min() {
            None => match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            },
            Some(at) => match jobs.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        // Everything queued meanwhile goes in the same batch: one kernel unregistration.
        let mut batch: Vec<(TeardownJob, Duration)> = first
            .into_iter()
            .chain(std::iter::from_fn(|| jobs.try_recv().ok()))
            .map(|job| (job, FIRST_BACKOFF))
            .collect();
        let now = Instant::now();
        let (due, later): (Vec<Retry>, Vec<Retry>) = retries.drain(..).partition(|r| r.at <= now);
        retries = later;
        batch.extend(due.into_iter().map(|r| (r.job, r.backoff)));
        if batch.is_empty() {
            continue;
        }
        for (job, backoff, e) in tear_down(pods, batch) {
            tracing::warn!(
                handle = %job.handle,
                link = %job.host_ifname,
                retry_in = ?backoff,
                "teardown failed: {e}"
            );
            retries.push(Retry {
                at: Instant::now() + backoff,
                job,
                backoff: (backoff * 2).min(MAX_BACKOFF),
            });
        }
    }
}

/// Removes the batch's links, then releases each job's addresses; returns the jobs that failed.
fn tear_down<S: BlockStore>(
    pods: &PodNetwork<S>,
    batch: Vec<(TeardownJob, Duration)>,
) -> Vec<(TeardownJob, Duration, String)> {
    let links: Vec<(String, u32)> = batch
        .iter()
        .map(|(j, _)| (j.host_ifname.clone(), j.host_ifindex))
        .collect();
    match felix::workload::remove_host_links(&links) {
        Ok(removed) => {
            tracing::debug!(links = links.len(), removed, "host links removed");
        }
        Err(e) => {
            let e = e.to_string();
            return batch.into_iter().map(|(j, b)| (j, b, e.clone())).collect();
        }
    }
    batch
        .into_iter()
        .filter_map(|(job, backoff)| match pods.finish_teardown(&job.handle) {
            Ok(()) => None,
            Err(e) => Some((job, backoff, e.to_string())),
        })
        .collect()
}
