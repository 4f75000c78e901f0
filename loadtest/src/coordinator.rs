//! The coordinator: walks the run through its phases, watching the worker threads' counters,
//! and marks the moments the report is computed from.
//!
//! Phases: **connect** (every client on its ramp slot) → **settle** (`--settle`, so the server's
//! join and presence traffic has passed) → **steady** (senders follow the schedule; the only phase
//! that counts) → **drain** (wait for messages in flight, at most `--drain`, less when every owed
//! delivery has arrived) → **stop** (every client closes and hands in its result).
//!
//! It is plain blocking code on the calling thread, which wakes at least every [`TICK`]: a worker
//! thread's snapshot arrives every [`SNAPSHOT_EVERY`](crate::worker::SNAPSHOT_EVERY), and
//! between snapshots nothing it decides can change except the clock and Ctrl-C. Sampling /proc
//! at the same pace is what catches the server's memory peak.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::watch;

use crate::cli::Args;
use crate::interrupt;
use crate::phase::{Phase, Steady};
use crate::proc::{self, Sample};
use crate::progress::Progress;
use crate::report::TimelinePoint;
use crate::setup::Setup;
use crate::stats::{self, ThreadStats};
use crate::worker::Snapshot;

/// Longest the coordinator waits for a snapshot before looking at the clock: bounds how late it
/// notices the end of the settle or the drain, and Ctrl-C, at a tenth of a second, well under
/// what a person notices and far under any phase's length.
pub const TICK: Duration = Duration::from_millis(100);
/// Margin between deciding the steady start and the start itself, so every sender has the plan
/// before its first message is due (otherwise the first sends would start late, and their lag
/// would be the swarm's, reported as latency).
pub const STEADY_LEAD: Duration = Duration::from_millis(100);
/// Windows shorter than this give no rate: a snapshot arrives only every 200 ms, so a rate over
/// a few milliseconds is noise. It applies to the live rates and to a last, partial second of the
/// timeline, seconds.
pub const SHORTEST_WINDOW_SECS: f64 = 0.05;

/// The moments the coordinator marked, and the samples it took at them.
#[derive(Default)]
pub struct Times {
    /// Wall time of the connect ramp.
    pub connect_secs: f64,
    /// Start of the steady phase, µs since the epoch.
    pub steady_start_us: u64,
    /// End of the drain, µs since the epoch.
    pub stop_us: u64,
    /// The server after the ramp and settle (memory "connected").
    pub server_connected: Option<Sample>,
    /// The server at the steady start (CPU baseline).
    pub server_steady: Option<Sample>,
    /// The server at the end of the drain.
    pub server_stop: Option<Sample>,
    /// The swarm after the ramp (its memory per client).
    pub self_connected: Option<Sample>,
    /// The swarm at the steady start.
    pub self_steady: Option<Sample>,
    /// The swarm at the end of the drain.
    pub self_stop: Option<Sample>,
    /// The busiest worker thread's CPU share over steady phase and drain.
    pub busiest_thread: f64,
    /// Ctrl-C was pressed.
    pub interrupted: bool,
    /// Length of the steady phase as it ran (shorter than `--duration` when interrupted).
    pub steady_secs: f64,
}

impl Times {
    /// Wall time of the steady phase and drain, seconds: what CPU times are shares of.
    pub fn measured_secs(&self) -> f64 {
        self.stop_us.saturating_sub(self.steady_start_us) as f64 / 1e6
    }
}

/// The coordinator's state while the run lasts.
pub struct Coordinator<'a> {
    /// The run's flags.
    args: &'a Args,
    /// The latest snapshot of each worker thread.
    latest: Vec<Option<ThreadStats>>,
    /// Kernel ids of the worker threads.
    tids: Vec<Option<i64>>,
    /// Highest server resident memory sampled.
    pub server_peak: u64,
    /// Recent (time, merged counters) for the live rates and p99, about one second's worth.
    window: VecDeque<(Instant, u64, u64, Histogram<u64>)>,
    /// One point per second of steady phase and drain.
    pub timeline: Vec<TimelinePoint>,
}

impl<'a> Coordinator<'a> {
    /// A coordinator for `threads` worker threads; `server_idle` is the server's memory before.
    pub fn new(args: &'a Args, threads: usize, server_idle: Option<Sample>) -> Coordinator<'a> {
        Coordinator {
            args,
            latest: (0..threads).map(|_| None).collect(),
            tids: vec![None; threads],
            server_peak: server_idle.map_or(0, |s| s.rss_bytes),
            window: VecDeque::new(),
            timeline: Vec::new(),
        }
    }

    /// Walks the phases until stop; returns what it marked on the way.
    pub fn drive(
        &mut self,
        setup: &Setup,
        phase_tx: &watch::Sender<Phase>,
        snaps: &mpsc::Receiver<Snapshot>,
        progress: &Progress,
    ) -> Times {
        let args = self.args;
        let mut times = Times::default();
        let mut settle_until: Option<Instant> = None;
        let mut interrupted_at: Option<Instant> = None;
        let mut steady: Option<(Instant, Arc<Steady>)> = None;
        let mut threads_steady: Vec<Option<Sample>> = Vec::new();
        let mut next_second = 1u64;
        let mut last_point = (0u64, 0u64, stats::micros_histogram());
        loop {
            match snaps.recv_timeout(TICK) {
                Ok(s) => self.take(s),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Every worker is gone (they only end after stop): nothing more to wait for.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(s) = snaps.try_recv() {
                self.take(s);
            }
            let now = Instant::now();
            let total = self.merged();
            if let Some(pid) = args.server_pid {
                if let Some(s) = proc::sample(pid) {
                    self.server_peak = self.server_peak.max(s.rss_bytes);
                }
            }
            let interrupted = interrupt::requested();

            let Some((start, plan)) = &steady else {
                // Connect ramp, then settle.
                let errors: u64 = total.connect_errors.values().sum();
                progress.connecting(total.connect_done, total.connected, errors);
                if settle_until.is_none() && total.connect_done >= args.clients {
                    times.connect_secs = setup.connect_start.into_std().elapsed().as_secs_f64();
                    settle_until = Some(now + args.settle);
                    progress.settling();
                }
                if interrupted {
                    times.interrupted = true;
                    break;
                }
                if settle_until.is_some_and(|t| now >= t) {
                    times.server_connected = args.server_pid.and_then(proc::sample);
                    times.self_connected = proc::sample_self();
                    let start = now + STEADY_LEAD;
                    times.steady_start_us = (start - setup.epoch).as_micros() as u64;
                    let plan = Arc::new(Steady {
                        start_us: times.steady_start_us,
                        room_receivers: total.room_receivers.clone(),
                    });
                    let _ = phase_tx.send(Phase::Steady(plan.clone()));
                    times.server_steady = args.server_pid.and_then(proc::sample);
                    times.self_steady = proc::sample_self();
                    threads_steady = self.thread_samples();
                    steady = Some((start, plan));
                }
                continue;
            };
            let start = *start;

            // Steady phase and drain. Ctrl-C ends the steady phase now (the senders stop too)
            // but still drains what is in flight, so an interrupted run reports no false loss.
            if interrupted && interrupted_at.is_none() {
                interrupted_at = Some(now);
                times.interrupted = true;
                let _ = phase_tx.send(Phase::Draining(plan.clone()));
            }
            let end =
                interrupted_at.map_or(start + args.duration, |t| t.min(start + args.duration));
            let (rate_sent, rate_delivered, p99) = self.window_rates(now, &total);
            let in_drain = now >= end;
            let total_ms = (args.duration + args.drain).as_millis() as u64;
            let done_ms = now.saturating_duration_since(start).as_millis() as u64;
            progress.running(
                if in_drain { "draining" } else { "running" },
                done_ms,
                total_ms,
                total.connected,
                rate_sent,
                rate_delivered,
                p99,
            );
            while now >= start + Duration::from_secs(next_second) {
                self.timeline_point(next_second as f64, &total, &mut last_point);
                next_second += 1;
            }
            let all_arrived = total.senders_done >= setup.plan.senders
                && total.connect_done >= args.clients
                && total.delivered >= total.owed;
            if (in_drain && all_arrived) || now >= end + args.drain {
                times.steady_secs = end.saturating_duration_since(start).as_secs_f64();
                let t = now.saturating_duration_since(start).as_secs_f64();
                if t > (next_second - 1) as f64 + SHORTEST_WINDOW_SECS {
                    self.timeline_point(t, &total, &mut last_point);
                }
                break;
            }
        }
        times.stop_us = setup.epoch.elapsed().as_micros() as u64;
        times.server_stop = args.server_pid.and_then(proc::sample);
        times.self_stop = proc::sample_self();
        let wall = times.measured_secs();
        for (before, after) in threads_steady.iter().zip(self.thread_samples()) {
            if let (Some(b), Some(a)) = (before, after) {
                let busy = stats::per_sec(a.cpu.saturating_sub(b.cpu).as_secs_f64(), wall);
                times.busiest_thread = times.busiest_thread.max(busy);
            }
        }
        let _ = phase_tx.send(Phase::Stop);
        times
    }

    fn take(&mut self, s: Snapshot) {
        self.tids[s.thread] = Some(s.tid);
        self.latest[s.thread] = Some(s.stats);
    }

    fn merged(&self) -> ThreadStats {
        let mut total = ThreadStats::new(self.args.rooms);
        for s in self.latest.iter().flatten() {
            total.merge(s);
        }
        total
    }

    fn thread_samples(&self) -> Vec<Option<Sample>> {
        self.tids
            .iter()
            .map(|t| t.and_then(proc::sample_thread))
            .collect()
    }

    /// Sends and deliveries per second, and p99 in ms, over about the last second.
    fn window_rates(&mut self, now: Instant, total: &ThreadStats) -> (f64, f64, f64) {
        self.window
            .push_back((now, total.sent, total.delivered, total.latency.clone()));
        while self.window.len() > 2 && now - self.window[1].0 >= Duration::from_secs(1) {
            self.window.pop_front();
        }
        let (t0, sent0, delivered0, h0) = &self.window[0];
        let secs = (now - *t0).as_secs_f64();
        if secs < SHORTEST_WINDOW_SECS {
            return (0.0, 0.0, 0.0);
        }
        let mut recent = total.latency.clone();
        let _ = recent.subtract(h0);
        (
            (total.sent - sent0) as f64 / secs,
            (total.delivered - delivered0) as f64 / secs,
            p99_ms(&recent),
        )
    }

    fn timeline_point(
        &mut self,
        t: f64,
        total: &ThreadStats,
        last: &mut (u64, u64, Histogram<u64>),
    ) {
        let mut recent = total.latency.clone();
        let _ = recent.subtract(&last.2);
        self.timeline.push(TimelinePoint {
            t,
            sent: total.sent - last.0,
            delivered: total.delivered - last.1,
            p99_ms: p99_ms(&recent),
        });
        *last = (total.sent, total.delivered, total.latency.clone());
    }
}

/// The 99th percentile of a histogram of µs, in ms (0 when empty).
fn p99_ms(h: &Histogram<u64>) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(0.99) as f64 / 1000.0
    }
}
