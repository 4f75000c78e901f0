//! A whole run, from flags to [`Outcome`]: the one entry point, [`run`].
//!
//! It reads as the run goes: check the flags and resolve the servers; fix the roles and the
//! schedule; start the worker threads ([`worker`](crate::worker)); let the
//! [`coordinator`](crate::coordinator) walk the phases; merge what the threads hand back; and
//! compute the report: exact counts ([`tally`](crate::tally)), resources
//! ([`resources`](crate::resources)), warnings ([`warnings`](crate::warnings)) and the verdict
//! ([`verdict`](crate::verdict)). Worker threads and coordinator share nothing else while the
//! run lasts than the phase they watch and the snapshots they send.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::cli::Args;
use crate::coordinator::Coordinator;
use crate::limits;
use crate::phase::Phase;
use crate::proc;
use crate::progress::Progress;
use crate::report::Report;
use crate::resources::{server_resources, swarm_resources};
use crate::rooms::Layout;
use crate::schedule::Plan;
use crate::setup::Setup;
use crate::stats::ThreadStats;
use crate::tally::summarize;
use crate::target::{fresh_run_id, Targets};
use crate::verdict::judge;
use crate::warnings::self_check;
use crate::worker::{thread_shares, worker, Snapshot};

/// Time between building the setup and the first connect slot, so the worker threads have
/// started their runtimes before the ramp begins: a client that starts late still connects at
/// once, but then the first slots of the ramp are bunched together.
const CONNECT_LEAD: Duration = Duration::from_millis(20);

/// A finished run: the report, and the latency histogram it was computed from (for the plot).
pub struct Outcome {
    /// The figures.
    pub report: Report,
    /// Every delivery's latency, µs.
    pub latency: Histogram<u64>,
}

/// Runs the swarm as `args` says, blocking until the report is ready (and written to `--json`
/// and `--plot` if given). An `Err` is a message for the user: the run could not start.
pub fn run(args: &Args) -> Result<Outcome, String> {
    args.validate()?;
    let run = fresh_run_id();
    let room_prefix = args
        .room_prefix
        .clone()
        .unwrap_or_else(|| format!("lt-{run:08x}"));
    let mut targets = Targets::resolve(&args.url, args.protocol, room_prefix)?;
    targets.tokens = args.token_secret.as_deref().map(crate::token::Minter::new);
    let source_addrs = match &args.source_addrs {
        Some(given) => given.0.clone(),
        None => limits::default_source_addrs(args.clients, &targets.addrs()),
    };
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
        layout: Arc::new(Layout::new(
            args.clients,
            args.rooms,
            args.senders,
            args.room_sizes,
        )),
    };
    let epoch = Instant::now();
    let setup = Arc::new(Setup {
        plan: plan.clone(),
        run,
        epoch,
        connect_start: tokio::time::Instant::from_std(epoch + CONNECT_LEAD),
        protocol: args.protocol,
        payload: args.payload,
        targets,
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
    let mut c = Coordinator::new(args, thread_count, server_idle);
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
    report.source_addrs = setup.source_addrs.len();
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
