//! Accepting connections, speaking HTTP with hyper, shutting down. What a request gets is
//! [`crate::routes`]'s to decide; who may connect at all, [`crate::admission`]'s.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::admission::{self, HttpTicket};
use crate::routes::{route, Listener};
use crate::state::Shared;
use crate::Config;

/// Pending connections the kernel queues for us. tokio's `TcpListener::bind` uses 128, which
/// overflows when thousands of clients connect at once (each overflow costs a client a
/// one-second SYN retry).
const LISTEN_BACKLOG: u32 = 4096;

/// File descriptors kept free for everything that is not a client connection (the listeners,
/// logs, `/proc` reads) when the connection budget is derived from the open-file limit.
const FD_HEADROOM: u64 = 128;

/// After a failed `accept`, the first pause before trying again; it doubles on every failure
/// in a row, up to [`ACCEPT_BACKOFF_MAX`], so a spell of `EMFILE` costs no CPU.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// At most one log line per this interval about failed accepts (with the count since the last).
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port), and `--metrics-addr` if given, and raises
    /// the open-file limit as far as the system allows.
    pub async fn bind(config: Config) -> io::Result<Server> {
        // Keys first: a bad key file should stop the server before it listens, not after.
        let verifier = crate::auth::Verifier::from_config(&config)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // The engine next: with `--redis`, a Redis that cannot be reached stops the server
        // before it listens, with the reason.
        let engine = crate::chat::Engine::from_config(&config)
            .await
            .map_err(|e| io::Error::new(io::ErrorKind::ConnectionRefused, e))?;
        let listener = listen(config.addr)?;
        let metrics_listener = config.metrics_addr.map(listen).transpose()?;
        let files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
        let file_budget = files.saturating_sub(FD_HEADROOM).max(1) as usize;
        let max_connections = match config.max_connections {
            0 => file_budget,
            n => n,
        };
        Ok(Server {
            listener,
            metrics_listener,
            shared: Shared::new(config, max_connections, file_budget, verifier, engine),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The `--metrics-addr` listener's address, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The state every connection shares (for tests and benches that look inside).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serves until `shutdown` completes; then stops accepting, closes every WebSocket with
    /// 1001, waits for their close handshakes (up to `--shutdown-grace`) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        let Server {
            listener,
            metrics_listener,
            shared,
        } = self;
        tracing::info!(
            addr = %listener.local_addr()?,
            max_connections = shared.max_connections,
            "listening"
        );
        if let Some(metrics_listener) = metrics_listener {
            tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening");
            tokio::spawn(accept_loop(
                metrics_listener,
                Listener::Metrics,
                Arc::clone(&shared),
            ));
        }
        if !shared.config.log_summary_interval.is_zero() {
            tokio::spawn(log_summaries(Arc::clone(&shared)));
        }
        tokio::select! {
            _ = shutdown => {}
            _ = accept_loop(listener, Listener::Main, Arc::clone(&shared)) => {}
        }
        tracing::info!("shutting down: closing connections");
        shared.shutdown.cancel();
        shared.tasks.close();
        let deadline = shared.config.shutdown_grace;
        if tokio::time::timeout(deadline, shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = shared.tasks.len(),
                "shutdown grace period over; dropping connections"
            );
        }
        // Shared presence: whatever this process still counts leaves the others now.
        shared.hub.engine().depart().await;
        Ok(())
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts until shutdown. Every connection is admitted or refused here, before hyper reads a
/// byte of it; a failed `accept` (out of descriptors, a connection that died in the queue)
/// backs off instead of spinning, and is logged at most once per [`ACCEPT_LOG_INTERVAL`].
async fn accept_loop(listener: TcpListener, kind: Listener, shared: Arc<Shared>) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut failures_unlogged = 0u64;
    let mut last_log: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(err) => {
                failures_unlogged += 1;
                if due(last_log, ACCEPT_LOG_INTERVAL) {
                    tracing::warn!(%err, failures = failures_unlogged, "accept failed");
                    failures_unlogged = 0;
                    last_log = Some(Instant::now());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        if kind == Listener::Metrics {
            shared
                .tasks
                .spawn(serve_http(stream, peer, None, kind, Arc::clone(&shared)));
            continue;
        }
        match shared.admission.admit(peer.ip()) {
            Ok(ticket) => {
                let task = serve_http(stream, peer, Some(ticket), kind, Arc::clone(&shared));
                shared.tasks.spawn(task);
            }
            Err(refusal) => {
                shared
                    .metrics
                    .refused_connections
                    .with_label_values(&[refusal.reason()])
                    .inc();
                tracing::debug!(%peer, reason = refusal.reason(), "connection refused");
                tokio::spawn(admission::refuse(stream, refusal));
            }
        }
    }
}

/// Whether something last done at `last` (or never) may be done again after `interval`.
fn due(last: Option<Instant>, interval: Duration) -> bool {
    match last {
        Some(last) => last.elapsed() >= interval,
        None => true,
    }
}

/// The periodic `info` line: what is open, and who was refused since the last line. Connection
/// opens and closes are `debug`, so this (with the server's own events) is all a client's
/// traffic can add to an `info` log.
async fn log_summaries(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(shared.config.log_summary_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut last = shared.metrics.refusal_counts();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = shared.metrics.refusal_counts();
        let refused: Vec<String> = now
            .iter()
            .filter_map(|(reason, count)| {
                let new = count - last.get(reason).copied().unwrap_or(0);
                (new > 0).then(|| format!("{reason}: {new}"))
            })
            .collect();
        last = now;
        let (http, websockets, addresses) = shared.admission.open();
        tracing::info!(
            websockets,
            http,
            addresses,
            rooms = shared.hub.room_count(),
            refused = %if refused.is_empty() { "none".to_owned() } else { refused.join(", ") },
            "summary"
        );
    }
}

/// One TCP connection's HTTP/1.1 life: requests until it closes, upgrades, or we shut down.
/// `ticket` holds its place among the connections not yet upgraded.
async fn serve_http(
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Option<HttpTicket>,
    kind: Listener,
    shared: Arc<Shared>,
) {
    // Chat frames are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let service = {
        let shared = Arc::clone(&shared);
        service_fn(move |req| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(route(req, peer.ip(), kind, &shared).await) }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, %err, "http connection ended with an error");
    }
    drop(ticket);
}
