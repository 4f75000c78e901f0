//! The coordinator: starts the worker threads, walks the run through its phases, samples the
//! processes, and turns the merged results into a [`Report`].
//!
//! Phases: **connect** (every client on its ramp slot) → **settle** (`--settle`, so the server's
//! join and presence traffic has passed) → **steady** (senders follow the schedule; the only phase
//! that counts) → **drain** (wait for messages in flight, at most `--drain`, less when every owed
//! delivery has arrived) → **stop** (every client closes and hands in its result).
//!
//! Worker threads each run a single-threaded tokio runtime with their share of the clients; the
//! coordinator is plain blocking code on the calling thread. They meet in two channels: a `watch`
//! carries the phase out to every client, an `mpsc` brings a snapshot of each thread's counters
//! back five times a second. Nothing else is shared while the run lasts.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::cli::{Args, Protocol};
use crate::client::{self, Phase, Setup, Steady, ThreadCtx};
use crate::limits;
use crate::proc::{self, Sample};
use crate::progress::Progress;
use crate::report::{
    Percentiles, Report, ServerResources, SlowReaders, SwarmResources, TimelinePoint,
};
use crate::schedule::Plan;
use crate::stats::{ClientResult, ThreadStats};

/// How often worker threads send their counters to the coordinator.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(200);
/// Margin between deciding the steady start and the start itself, so every thread has the plan.
const STEADY_LEAD: Duration = Duration::from_millis(100);
/// A worker thread busier than this during the measured phases may have been the bottleneck.
const BUSY_THREAD: f64 = 0.9;
/// Threads that waited for a CPU longer than this fraction of the measured time were sharing
/// their cores with other work.
const WAITED: f64 = 0.05;
/// Sends later than this at the 99th percentile mean the swarm did not keep its schedule.
const LATE_SEND_MS: f64 = 5.0;

/// Set by the binary's SIGINT handler: stop the run early and report what was measured.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A finished run: the report, and the latency histogram it was computed from (for the plot).
pub struct Outcome {
    /// The figures.
    pub report: Report,
    /// Every delivery's latency, µs.
    pub latency: Histogram<u64>,
}

/// One worker thread's counters, sent to the coordinator.
struct Snapshot {
    /// Index of the worker thread.
    thread: usize,
    /// Its kernel thread id, to sample its CPU time from /proc.
    tid: i64,
    /// A copy of its counters.
    stats: ThreadStats,
}

/// What a worker thread hands back when its clients are done.
struct WorkerOut {
    /// Its final counters.
    stats: ThreadStats,
    /// One per client it ran.
    results: Vec<ClientResult>,
}

/// Runs the swarm as `args` says, blocking until the report is ready (and written to `--json`
/// and `--plot` if given). An `Err` is a message for the user: the run could not start.
pub fn run(args: &Args) -> Result<Outcome, String> {
    args.validate()?;
    let target = resolve(&args.url)?;
    let source_addrs = args.source_addrs.clone().map(|s| s.0).unwrap_or_default();
    let preflight = limits::preflight(args.clients, source_addrs.len());
    let server_idle = match args.server_pid {
        Some(pid) => Some(
            proc::sample(pid)
                .ok_or_else(|| format!("--server-pid {pid}: cannot read /proc/{pid}/stat"))?,
        ),
        None => None,
    };
    let self_idle = proc::sample_self();

    let plan = Plan {
        clients: args.clients,
        rooms: args.rooms,
        senders: args.senders,
        slow_readers: args.slow_readers,
        rate: if args.rate > 0.0 { args.rate } else { 1.0 },
        duration: args.duration,
        connect_rate: args.connect_rate,
    };
    let run = fresh_run_id();
    let epoch = Instant::now();
    let setup = Arc::new(Setup {
        plan: plan.clone(),
        run,
        epoch,
        connect_start: tokio::time::Instant::from_std(epoch + Duration::from_millis(20)),
        protocol: args.protocol,
        payload: args.payload,
        target,
        url: args.url.clone(),
        room_prefix: args
            .room_prefix
            .clone()
            .unwrap_or_else(|| format!("lt-{run:08x}")),
        source_addrs,
        ws_config: WebSocketConfig::default()
            .read_buffer_size(args.read_buffer)
            .write_buffer_size(0),
        connect_timeout: args.connect_timeout,
        close_timeout: args.close_timeout,
        no_echo: args.no_echo,
        slow_reader_rcvbuf: args.slow_reader_rcvbuf,
    });

    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
    let (snap_tx, snap_rx) = mpsc::channel::<Snapshot>();
    let mut workers = Vec::new();
    let shares = thread_shares(args.clients, args.senders, args.threads);
    let thread_count = shares.len();
    for (t, clients) in shares.into_iter().enumerate() {
        let (setup, phase, snaps) = (setup.clone(), phase_rx.clone(), snap_tx.clone());
        let handle = std::thread::Builder::new()
            .name(format!("swarm-{t}"))
            .spawn(move || worker(t, setup, clients, phase, snaps))
            .map_err(|e| format!("cannot start a worker thread: {e}"))?;
        workers.push(handle);
    }
    drop(snap_tx);

    let progress = Progress::new(args.quiet, args.clients as u64);
    let mut c = Coordinator {
        args,
        plan: &plan,
        latest: (0..thread_count).map(|_| None).collect(),
        tids: vec![None; thread_count],
        server_peak: server_idle.map_or(0, |s| s.rss_bytes),
        window: VecDeque::new(),
        timeline: Vec::new(),
    };
    let times = c.drive(&setup, &phase_tx, &snap_rx, &progress);
    progress.closing();

    let mut merged = ThreadStats::new(args.rooms);
    let mut results = Vec::with_capacity(args.clients);
    for w in workers {
        let out = w
            .join()
            .map_err(|_| "a worker thread panicked".to_string())?;
        merged.merge(&out.stats);
        results.extend(out.results);
    }
    progress.finish();

    let mut warnings = preflight.warnings.clone();
    warnings.extend(limits::advice(&merged.connect_errors, &preflight));
    if times.interrupted {
        warnings.push("interrupted: the run was stopped early, figures cover what ran".into());
    }
    let mut report = summarize(args, &plan, &merged, &results, &times, warnings);
    report.run_id = format!("{run:08x}");
    report.timeline = std::mem::take(&mut c.timeline);
    if let (Some(pid), Some(idle)) = (args.server_pid, server_idle) {
        report.server = Some(server_resources(pid, idle, &times, c.server_peak, &report));
    }
    report.swarm = swarm_resources(thread_count, self_idle, &times, &report, &merged);
    self_check(&mut report, times.interrupted);
    judge(args, &mut report);

    let outcome = Outcome {
        report,
        latency: merged.latency,
    };
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&outcome.report).expect("report serializes");
        std::fs::write(path, json + "\n")
            .map_err(|e| format!("cannot write --json {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        crate::plot::latency_svg(path, &outcome.latency, &outcome.report)
            .map_err(|e| format!("cannot write --plot {}: {e}", path.display()))?;
    }
    Ok(outcome)
}

/// The moments the coordinator marked, and the samples it took at them.
#[derive(Default)]
struct Times {
    /// Wall time of the connect ramp.
    connect_secs: f64,
    /// Start of the steady phase, µs since the epoch.
    steady_start_us: u64,
    /// End of the drain, µs since the epoch.
    stop_us: u64,
    /// The server after the ramp and settle (memory "connected").
    server_connected: Option<Sample>,
    /// The server at the steady start (CPU baseline).
    server_steady: Option<Sample>,
    /// The server at the end of the drain.
    server_stop: Option<Sample>,
    /// The swarm after the ramp (its memory per client).
    self_connected: Option<Sample>,
    /// The swarm at the steady start.
    self_steady: Option<Sample>,
    /// The swarm at the end of the drain.
    self_stop: Option<Sample>,
    /// The busiest worker thread's CPU share over steady phase and drain.
    busiest_thread: f64,
    /// Ctrl-C was pressed.
    interrupted: bool,
    /// Length of the steady phase as it ran (shorter than `--duration` when interrupted).
    steady_secs: f64,
}

struct Coordinator<'a> {
    /// The run's flags.
    args: &'a Args,
    /// Roles and schedule.
    plan: &'a Plan,
    /// The latest snapshot of each worker thread.
    latest: Vec<Option<ThreadStats>>,
    /// Kernel ids of the worker threads.
    tids: Vec<Option<i64>>,
    /// Highest server resident memory sampled.
    server_peak: u64,
    /// Recent (time, merged counters) for the live rates and p99, about one second's worth.
    window: VecDeque<(Instant, u64, u64, Histogram<u64>)>,
    /// One point per second of steady phase and drain.
    timeline: Vec<TimelinePoint>,
}

impl Coordinator<'_> {
    /// Walks the phases until stop; returns what it marked on the way.
    fn drive(
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
        let mut steady_at: Option<Instant> = None;
        let mut threads_steady: Vec<Option<Sample>> = Vec::new();
        let mut next_second = 1u64;
        let mut last_point = (0u64, 0u64, crate::stats::micros_histogram());
        loop {
            match snaps.recv_timeout(Duration::from_millis(100)) {
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
            let interrupted = INTERRUPTED.load(Ordering::Relaxed);

            let Some(start) = steady_at else {
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
                    let _ = phase_tx.send(Phase::Steady(Arc::new(Steady {
                        start_us: times.steady_start_us,
                        room_receivers: total.room_receivers.clone(),
                    })));
                    times.server_steady = args.server_pid.and_then(proc::sample);
                    times.self_steady = proc::sample_self();
                    threads_steady = self.thread_samples();
                    steady_at = Some(start);
                }
                continue;
            };

            // Steady phase and drain. Ctrl-C ends the steady phase now (the senders stop too)
            // but still drains what is in flight, so an interrupted run reports no false loss.
            if interrupted && interrupted_at.is_none() {
                interrupted_at = Some(now);
                times.interrupted = true;
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
            let all_arrived = total.senders_done >= self.plan.senders
                && total.connect_done >= args.clients
                && total.delivered >= total.owed;
            if (in_drain && all_arrived) || now >= end + args.drain {
                times.steady_secs = end.saturating_duration_since(start).as_secs_f64();
                let t = now.saturating_duration_since(start).as_secs_f64();
                if t > (next_second - 1) as f64 + 0.05 {
                    self.timeline_point(t, &total, &mut last_point);
                }
                break;
            }
        }
        times.stop_us = setup.epoch.elapsed().as_micros() as u64;
        times.server_stop = args.server_pid.and_then(proc::sample);
        times.self_stop = proc::sample_self();
        let wall = times.stop_us.saturating_sub(times.steady_start_us) as f64 / 1e6;
        for (before, after) in threads_steady.iter().zip(self.thread_samples()) {
            if let (Some(b), Some(a)) = (before, after) {
                let busy = (a.cpu.saturating_sub(b.cpu)).as_secs_f64() / wall.max(1e-3);
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
        if secs < 0.05 {
            return (0.0, 0.0, 0.0);
        }
        let mut recent = total.latency.clone();
        let _ = recent.subtract(h0);
        let p99 = if recent.is_empty() {
            0.0
        } else {
            recent.value_at_quantile(0.99) as f64 / 1000.0
        };
        (
            (total.sent - sent0) as f64 / secs,
            (total.delivered - delivered0) as f64 / secs,
            p99,
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
            p99_ms: if recent.is_empty() {
                0.0
            } else {
                recent.value_at_quantile(0.99) as f64 / 1000.0
            },
        });
        *last = (total.sent, total.delivered, total.latency.clone());
    }
}

/// Which clients each worker thread runs: the senders on a thread of their own, the receivers
/// round-robin over `--threads` threads.
///
/// Senders get their own thread because their timing is the measurement's zero: on a shared
/// thread a send due now waits behind the hundreds of receiver tasks a burst of deliveries has
/// just woken, and that wait would be reported as server latency. Alone, the sender thread
/// sleeps between sends, and the kernel runs it as soon as it wakes.
fn thread_shares(clients: usize, senders: usize, threads: usize) -> Vec<Vec<usize>> {
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
fn worker(
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

/// The exact accounting: what every measured receiver was owed and got.
///
/// A receiver is owed every message its room's senders sent and the server accepted. A client
/// cannot see acceptance directly, and a server may announce a run of refusals with a single
/// `error` event, so for a sender that received any refusal notice, "accepted" is "reached at
/// least one receiver" (the union of the room's bit sets); a message nobody got is then counted
/// as refused, not lost. For a sender never told of a refusal, everything it sent is owed, and a
/// message nobody got is loss.
fn summarize(
    args: &Args,
    plan: &Plan,
    merged: &ThreadStats,
    results: &[ClientResult],
    times: &Times,
    warnings: Vec<String>,
) -> Report {
    // Union over each room's receivers of which messages arrived, per sender slot.
    let mut reached: Vec<Vec<Vec<u64>>> = (0..plan.rooms)
        .map(|room| vec![Vec::new(); plan.senders_in_room(room)])
        .collect();
    for c in results.iter().filter(|c| c.connected) {
        for (slot, bits) in c.seen.iter().enumerate() {
            let union = &mut reached[c.role.room][slot];
            if union.len() < bits.len() {
                union.resize(bits.len(), 0);
            }
            for (u, b) in union.iter_mut().zip(bits) {
                *u |= b;
            }
        }
    }
    let mut accepted_of = vec![0u64; plan.senders];
    let mut accepted_in_room = vec![0u64; plan.rooms];
    let mut r = Report {
        protocol: match args.protocol {
            Protocol::Chat => "chat".into(),
            Protocol::Raw => "raw".into(),
        },
        url: args.url.clone(),
        clients_requested: args.clients,
        rooms: args.rooms,
        senders: args.senders,
        rate: args.rate,
        payload_bytes: args.payload,
        duration_secs: args.duration.as_secs_f64(),
        connect_secs: times.connect_secs,
        connect_ms: Percentiles::from_micros(&merged.connect_time),
        connect_error_kinds: merged.connect_errors.clone(),
        connect_errors: merged.connect_errors.values().sum(),
        warnings,
        ..Report::default()
    };
    for c in results.iter().filter(|c| c.connected && c.role.sender) {
        let accepted = if c.refusal_notices.is_empty() {
            c.sent
        } else {
            let union = &reached[c.role.room][plan.slot_of(c.index)];
            union
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum::<u64>()
                .min(c.sent)
        };
        accepted_of[c.index] = accepted;
        accepted_in_room[c.role.room] += accepted;
        r.senders_connected += 1;
        r.scheduled += plan.messages_of(c.index);
        r.sent += c.sent;
        r.refused += c.sent - accepted;
        for (code, n) in &c.refusal_notices {
            *r.refused_codes.entry(code.clone()).or_default() += n;
            r.refusal_notices += n;
        }
    }
    let mut slow = SlowReaders::default();
    for c in results.iter().filter(|c| c.connected) {
        r.clients_connected += 1;
        let own = if args.no_echo && c.role.sender {
            accepted_of[c.index]
        } else {
            0
        };
        let expected = accepted_in_room[c.role.room].saturating_sub(own);
        if c.role.slow {
            slow.clients += 1;
            slow.expected += expected;
            slow.delivered += c.delivered;
            slow.lagged_notices += c.lagged_notices;
            slow.lagged_missed += c.lagged_missed;
            *slow.close_codes.entry(c.closed.key()).or_default() += 1;
            slow.closed_by_server += u64::from(c.closed_early);
            continue;
        }
        let lost = expected.saturating_sub(c.delivered);
        let declared = lost.min(c.lagged_missed);
        r.expected += expected;
        r.delivered += c.delivered;
        r.lost += lost;
        r.lost_lagged += declared;
        r.lost_silent += lost - declared;
        r.lagged_notices += c.lagged_notices;
        r.duplicates += c.duplicates;
        r.out_of_order += c.out_of_order;
        r.unexpected += c.unexpected;
        r.foreign += c.foreign;
        *r.close_codes.entry(c.closed.key()).or_default() += 1;
        r.closed_early += u64::from(c.closed_early);
    }
    if args.slow_readers > 0 {
        r.slow_readers = Some(slow);
    }
    r.latency_ms = Percentiles::from_micros(&merged.latency);
    let last = merged
        .last_delivery_us
        .saturating_sub(times.steady_start_us) as f64
        / 1e6;
    let steady = if times.steady_secs > 0.0 {
        times.steady_secs
    } else {
        r.duration_secs
    };
    r.throughput_window_secs = last.max(steady).max(1e-3);
    r.deliveries_per_sec = r.delivered as f64 / r.throughput_window_secs;
    r.sends_per_sec = r.sent as f64 / steady.max(1e-3);
    r
}

fn server_resources(
    pid: u32,
    idle: Sample,
    times: &Times,
    peak: u64,
    report: &Report,
) -> ServerResources {
    let connected = times.server_connected.unwrap_or(idle);
    let steady = times.server_steady.unwrap_or(connected);
    let stop = times.server_stop.unwrap_or(steady);
    let cpu = stop.cpu.saturating_sub(steady.cpu).as_secs_f64();
    let wall = times.stop_us.saturating_sub(times.steady_start_us) as f64 / 1e6;
    ServerResources {
        pid,
        rss_idle_bytes: idle.rss_bytes,
        rss_connected_bytes: connected.rss_bytes,
        rss_peak_bytes: peak.max(connected.rss_bytes).max(stop.rss_bytes),
        bytes_per_connection: (connected.rss_bytes as f64 - idle.rss_bytes as f64)
            / report.clients_connected.max(1) as f64,
        cpu_seconds: cpu,
        cpu_seconds_connect: connected.cpu.saturating_sub(idle.cpu).as_secs_f64(),
        cpu_utilization: cpu / wall.max(1e-3),
        cpu_wait_fraction: stop.waited.saturating_sub(steady.waited).as_secs_f64() / wall.max(1e-3),
        deliveries_per_cpu_second: if cpu > 0.0 {
            report.delivered as f64 / cpu
        } else {
            0.0
        },
    }
}

fn swarm_resources(
    threads: usize,
    idle: Option<Sample>,
    times: &Times,
    report: &Report,
    merged: &ThreadStats,
) -> SwarmResources {
    let cpu = match (times.self_steady, times.self_stop) {
        (Some(a), Some(b)) => b.cpu.saturating_sub(a.cpu).as_secs_f64(),
        _ => 0.0,
    };
    let rss = times.self_connected.map_or(0, |s| s.rss_bytes);
    let wall = times.stop_us.saturating_sub(times.steady_start_us) as f64 / 1e6;
    let waited = match (times.self_steady, times.self_stop) {
        (Some(a), Some(b)) => b.waited.saturating_sub(a.waited).as_secs_f64(),
        _ => 0.0,
    };
    SwarmResources {
        threads,
        cpu_seconds: cpu,
        busiest_thread_utilization: times.busiest_thread,
        deliveries_per_cpu_second: if cpu > 0.0 {
            report.delivered as f64 / cpu
        } else {
            0.0
        },
        cpu_wait_fraction: waited / wall.max(1e-3),
        rss_bytes: rss,
        bytes_per_client: (rss as f64 - idle.map_or(0, |s| s.rss_bytes) as f64)
            / report.clients_connected.max(1) as f64,
        send_lag_ms: Percentiles::from_micros(&merged.send_lag),
    }
}

/// Warns where the swarm, not the server, may have shaped the figures.
fn self_check(r: &mut Report, interrupted: bool) {
    let w = &r.swarm;
    if w.busiest_thread_utilization >= BUSY_THREAD {
        r.warnings.push(format!(
            "a swarm thread was {:.0}% busy during the measured phases: the swarm itself may have \
             limited throughput and added latency (give it its own core, or more --threads)",
            w.busiest_thread_utilization * 100.0
        ));
    }
    if w.cpu_wait_fraction > WAITED {
        r.warnings.push(format!(
            "the swarm's threads waited for a CPU {:.0}% of the measured time: other work shares its \
             cores (pin it with taskset to a free core)",
            w.cpu_wait_fraction * 100.0
        ));
    }
    if let Some(s) = &r.server {
        if s.cpu_wait_fraction > WAITED {
            r.warnings.push(format!(
                "the server waited for a CPU {:.0}% of the measured time: other work shares its \
                 cores, so its latency and throughput here are the machine's, not its own",
                s.cpu_wait_fraction * 100.0
            ));
        }
    }
    if w.send_lag_ms.p99 > LATE_SEND_MS {
        r.warnings.push(format!(
            "sends fell behind schedule (p99 {:.1} ms late, max {:.1} ms): a busy swarm, or a server \
             that stopped reading; latency is still measured from the schedule",
            w.send_lag_ms.p99, w.send_lag_ms.max
        ));
    }
    if r.sent < r.scheduled && !interrupted {
        r.warnings.push(format!(
            "{} scheduled messages were not sent (their sender's connection ended)",
            r.scheduled - r.sent
        ));
    }
    if r.duplicates + r.out_of_order + r.unexpected > 0 {
        r.warnings.push(format!(
            "the server delivered {} duplicates, {} out of order and {} unexpected messages",
            r.duplicates, r.out_of_order, r.unexpected
        ));
    }
    if r.foreign > 0 {
        r.warnings.push(format!(
            "{} messages of another swarm run arrived: another run shares these rooms",
            r.foreign
        ));
    }
    if let Some(slow) = &r.slow_readers {
        if slow.clients > 0
            && slow.lagged_notices == 0
            && slow.closed_by_server == 0
            && slow.delivered == slow.expected
        {
            r.warnings.push(
                "the slow readers lost nothing: the server buffered everything for them (the run may be too short to fill its buffers)"
                    .into(),
            );
        }
    }
}

/// Pass or fail against `--max-loss` and `--max-connect-errors`.
fn judge(args: &Args, r: &mut Report) {
    let requested = r.clients_requested.max(1) as f64;
    let failed = (r.clients_requested - r.clients_connected) as f64 / requested;
    if r.clients_connected == 0 {
        r.failures.push("no client connected".into());
    } else if failed > args.max_connect_errors {
        r.failures.push(format!(
            "{} of {} clients failed to connect ({:.2}% > --max-connect-errors {:.2}%)",
            r.clients_requested - r.clients_connected,
            r.clients_requested,
            failed * 100.0,
            args.max_connect_errors * 100.0
        ));
    }
    if r.expected > 0 {
        let loss = r.lost as f64 / r.expected as f64;
        if loss > args.max_loss {
            r.failures.push(format!(
                "lost {} of {} deliveries ({:.4}% > --max-loss {:.4}%)",
                r.lost,
                r.expected,
                loss * 100.0,
                args.max_loss * 100.0
            ));
        }
    } else if args.senders > 0 && r.clients_connected > 0 {
        r.failures
            .push("no message was accepted by the server".into());
    }
    r.passed = r.failures.is_empty();
}

/// The server's address from a `ws://host:port/...` URL.
fn resolve(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("--url must start with ws:// (got {url:?})"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    let with_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority:?} resolves to no address"))
}

/// A run id that differs between runs and processes: wall-clock nanoseconds mixed with the pid.
fn fresh_run_id() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_urls() {
        assert_eq!(
            resolve("ws://127.0.0.1:9/ws").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert_eq!(
            resolve("ws://127.0.0.1/x?y").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(resolve("ws://[::1]:7").unwrap(), "[::1]:7".parse().unwrap());
        assert!(resolve("http://x").is_err());
    }

    #[test]
    fn senders_get_a_thread_of_their_own() {
        assert_eq!(thread_shares(5, 2, 1), [vec![2, 3, 4], vec![0, 1]]);
        assert_eq!(thread_shares(6, 1, 2), [vec![1, 3, 5], vec![2, 4], vec![0]]);
        assert_eq!(thread_shares(2, 0, 1), [vec![0, 1]]);
        assert_eq!(thread_shares(2, 2, 1), [vec![0, 1]]);
    }

    #[test]
    fn run_ids_differ() {
        let a = fresh_run_id();
        std::thread::sleep(Duration::from_millis(1));
        assert_ne!(a, fresh_run_id());
    }
}
