//! The swarm's worker threads: which clients each runs, and the runtime it runs them on.
//!
//! Each worker thread runs one single-threaded tokio runtime with its share of the clients, so
//! a delivery is counted with no atomic, lock or cross-core cache line (see
//! [`stats`](crate::stats)). The thread meets the coordinator in two channels only: it watches
//! the [`Phase`], and it sends a [`Snapshot`] of its counters every [`SNAPSHOT_EVERY`].

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tokio::sync::watch;

use crate::client;
use crate::phase::Phase;
use crate::proc;
use crate::setup::{Setup, ThreadCtx};
use crate::stats::{ClientResult, ThreadStats};

/// How often worker threads send their counters to the coordinator: often enough for a live
/// display and a prompt end of the drain, rarely enough that copying the histograms (a few
/// hundred KB) costs nothing measurable.
pub const SNAPSHOT_EVERY: Duration = Duration::from_millis(200);

/// One worker thread's counters, sent to the coordinator.
pub struct Snapshot {
    /// Index of the worker thread.
    pub thread: usize,
    /// Its kernel thread id, to sample its CPU time from /proc.
    pub tid: i64,
    /// A copy of its counters.
    pub stats: ThreadStats,
}

/// What a worker thread hands back when its clients are done.
pub struct WorkerOut {
    /// Its final counters.
    pub stats: ThreadStats,
    /// One per client it ran.
    pub results: Vec<ClientResult>,
}

/// Which clients each worker thread runs: the senders on a thread of their own, the receivers
/// round-robin over `--threads` threads.
///
/// Senders get their own thread because their timing is the measurement's zero: on a shared
/// thread a send due now waits behind the hundreds of receiver tasks a burst of deliveries has
/// just woken, and that wait would be reported as server latency. Alone, the sender thread
/// sleeps between sends, and the kernel runs it as soon as it wakes.
pub fn thread_shares(clients: usize, senders: usize, threads: usize) -> Vec<Vec<usize>> {
    let mut shares: Vec<Vec<usize>> = (0..threads)
        .map(|t| (senders + t..clients).step_by(threads).collect())
        .collect();
    if senders > 0 {
        shares.push((0..senders).collect());
    }
    shares.retain(|s| !s.is_empty());
    shares
}

/// One worker thread: a single-threaded runtime running its clients to the end.
pub fn worker(
    t: usize,
    setup: Arc<Setup>,
    clients: Vec<usize>,
    phase: watch::Receiver<Phase>,
    snaps: mpsc::Sender<Snapshot>,
) -> WorkerOut {
    let tid = proc::thread_id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let local = tokio::task::LocalSet::new();
    let ctx = Rc::new(ThreadCtx {
        stats: RefCell::new(ThreadStats::new(setup.plan.rooms)),
        results: RefCell::new(Vec::with_capacity(clients.len())),
        setup,
    });
    local.block_on(&rt, async {
        let handles: Vec<_> = clients
            .into_iter()
            .map(|i| tokio::task::spawn_local(client::run_client(ctx.clone(), i, phase.clone())))
            .collect();
        let ticker = {
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                let mut every = tokio::time::interval(SNAPSHOT_EVERY);
                loop {
                    every.tick().await;
                    let stats = ctx.stats.borrow().clone();
                    if snaps
                        .send(Snapshot {
                            thread: t,
                            tid,
                            stats,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            })
        };
        for h in handles {
            let _ = h.await;
        }
        ticker.abort();
    });
    // The aborted ticker may still hold a handle until the LocalSet drops: take, don't unwrap.
    WorkerOut {
        stats: ctx.stats.replace(ThreadStats::new(0)),
        results: ctx.results.take(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_get_a_thread_of_their_own() {
        assert_eq!(thread_shares(5, 2, 1), [vec![2, 3, 4], vec![0, 1]]);
        assert_eq!(thread_shares(6, 1, 2), [vec![1, 3, 5], vec![2, 4], vec![0]]);
        assert_eq!(thread_shares(2, 0, 1), [vec![0, 1]]);
        assert_eq!(thread_shares(2, 2, 1), [vec![0, 1]]);
    }
}
