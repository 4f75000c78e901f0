//! Accepting connections, speaking HTTP with hyper, routing, upgrading to WebSocket, shutting
//! down. What each endpoint means lives elsewhere: the chat in [`crate::chat`], the page in
//! [`crate::assets`], who may connect at all in [`crate::admission`].
//!
//! The upgrade is done by hand, in three steps a reader can follow in [`upgrade`]:
//! 1. validate the request ([`crate::ws::handshake`]) and answer `101 Switching Protocols` with
//!    `Sec-WebSocket-Accept`;
//! 2. once hyper has written the `101`, `hyper::upgrade::on` yields the connection;
//! 3. downcast it back to the `TcpStream` and hand the stream, plus any bytes hyper had already
//!    read past the request (a pipelined first frame), to the endpoint's session.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::admission::{self, HttpTicket};
use crate::chat::Params;
use crate::state::{Shared, SlotGuard};
use crate::ws::handshake::{self, HandshakeError};
use crate::{assets, chat, echo, Config};

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

type Body = Full<Bytes>;

/// What an upgrade request asked for, decided once from its path and query.
enum Endpoint {
    Chat(Params),
    Echo,
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// The page, the WebSocket endpoints, `/healthz`, and `/metrics` unless it has its own.
    Main,
    /// `--metrics-addr`: `/metrics` and `/healthz` only.
    Metrics,
}

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
            shared: Shared::new(config, max_connections, file_budget),
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
                if last_log.is_none_or_elapsed(ACCEPT_LOG_INTERVAL) {
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

/// `Option<Instant>` as "when did this last happen": true if never, or at least `interval` ago.
trait Elapsed {
    fn is_none_or_elapsed(&self, interval: Duration) -> bool;
}

impl Elapsed for Option<Instant> {
    fn is_none_or_elapsed(&self, interval: Duration) -> bool {
        match self {
            Some(last) => last.elapsed() >= interval,
            None => true,
        }
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
            async move { Ok::<_, Infallible>(route(req, peer.ip(), kind, &shared)) }
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

/// Routes one request. Every response, error or not, is built here or in [`upgrade`].
fn route(
    req: Request<Incoming>,
    ip: IpAddr,
    kind: Listener,
    shared: &Arc<Shared>,
) -> Response<Body> {
    let config = &shared.config;
    let path = req.uri().path();
    let metrics_here = match kind {
        Listener::Main => config.metrics_addr.is_none(),
        Listener::Metrics => true,
    };
    let response = match path {
        _ if !host_allowed(&req, &config.allowed_hosts) => {
            closing(text(StatusCode::MISDIRECTED_REQUEST, "unknown host"))
        }
        "/ws" if kind == Listener::Main => upgrade(req, ip, shared),
        "/echo" if kind == Listener::Main && config.echo => upgrade(req, ip, shared),
        _ if req.method() != Method::GET && req.method() != Method::HEAD => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok"),
        "/limits" if kind == Listener::Main => {
            let mut response =
                Response::new(Full::new(Bytes::from(chat::params::page_limits(config))));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        "/metrics" if metrics_here => {
            shared.metrics.rooms.set(shared.hub.room_count() as i64);
            let mut response = Response::new(Full::new(Bytes::from(shared.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        _ if kind == Listener::Main => match assets::find(path) {
            Some(asset) => assets::response(asset, req.headers().get(header::HOST)),
            None => text(StatusCode::NOT_FOUND, "not found"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    shared
        .metrics
        .http_requests
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

/// `--allowed-host`: with a list, only requests whose `Host` is on it are served.
fn host_allowed<B>(req: &Request<B>, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    host.is_some_and(|host| allowed.iter().any(|a| a.eq_ignore_ascii_case(host)))
}

/// Answers an upgrade request with `101` and starts its session, or refuses it.
fn upgrade(mut req: Request<Incoming>, ip: IpAddr, shared: &Arc<Shared>) -> Response<Body> {
    let (accept_key, endpoint, slot) = match accept_upgrade(&req, ip, shared) {
        Ok(accepted) => accepted,
        Err(error) => {
            shared
                .metrics
                .handshake_failures
                .with_label_values(&[error.reason()])
                .inc();
            tracing::debug!(reason = error.reason(), "upgrade refused");
            let mut response = text(error.status(), error.reason());
            if error == HandshakeError::UnsupportedVersion {
                // Section 4.4: tell the client which versions we speak.
                response
                    .headers_mut()
                    .insert("sec-websocket-version", HeaderValue::from_static("13"));
            }
            // A refused upgrade ends the connection: a client that was refused has nothing more
            // to ask, and keeping its socket for the keep-alive timeout would cost a descriptor.
            return closing(response);
        }
    };

    let on_upgrade = hyper::upgrade::on(&mut req);
    let shared = Arc::clone(shared);
    let tasks = shared.tasks.clone();
    tasks.spawn(async move {
        let (stream, already_read) = match on_upgrade.await.map(into_tcp) {
            Ok(Ok(upgraded)) => upgraded,
            Ok(Err(_)) => {
                // Only if hyper were handed something other than a `TcpStream`, which
                // `serve_http` never does.
                tracing::error!("upgraded connection is not a TcpStream");
                return;
            }
            Err(err) => {
                tracing::debug!(%err, "upgrade failed after 101");
                return;
            }
        };
        // The session gets a task of its own, sized for exactly its future: awaited here, it
        // would also carry this task's own state (the arguments, the upgrade's result) for the
        // life of the connection, and this task is most of what an idle connection costs.
        let tasks = shared.tasks.clone();
        match endpoint {
            Endpoint::Chat(params) => tasks.spawn(chat::session::run(
                stream,
                already_read,
                params,
                slot,
                shared,
            )),
            Endpoint::Echo => tasks.spawn(echo::run(stream, already_read, slot, shared)),
        };
    });

    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header("sec-websocket-accept", accept_key)
        .body(Full::new(Bytes::new()))
        .expect("a valid response")
}

/// Takes the `TcpStream` back from hyper, with the bytes hyper read past the request (a
/// pipelined first frame). Getting the stream back drops hyper's buffers and its boxed I/O.
/// `read_buf` is a view into hyper's whole read buffer, so what it holds is copied out and the
/// view dropped here: kept, it would pin that buffer for the life of the connection.
fn into_tcp(upgraded: Upgraded) -> Result<(TcpStream, Vec<u8>), Upgraded> {
    let parts = upgraded.downcast::<TokioIo<TcpStream>>()?;
    Ok((parts.io.into_inner(), parts.read_buf.to_vec()))
}

/// Every check an upgrade must pass, in order: the RFC's rules, the origin, the endpoint's own
/// parameters, and last the connection limit (so a malformed request hears what is wrong).
/// Returns the accept key, the endpoint and the claimed slot.
fn accept_upgrade(
    req: &Request<Incoming>,
    ip: IpAddr,
    shared: &Arc<Shared>,
) -> Result<(String, Endpoint, SlotGuard), HandshakeError> {
    let accept_key = handshake::validate(req)?;
    handshake::check_origin(req.headers(), &shared.config.allowed_origins)?;
    let endpoint = match req.uri().path() {
        "/ws" => {
            let query = req.uri().query().unwrap_or("");
            let params = Params::from_query(query, &shared.config, || shared.guest_name())
                .map_err(HandshakeError::BadParameter)?;
            Endpoint::Chat(params)
        }
        _ => Endpoint::Echo,
    };
    let slot = shared.claim_slot(ip).ok_or(HandshakeError::ServerFull)?;
    Ok((accept_key, endpoint, slot))
}

/// Marks a response as the connection's last (hyper closes after writing it).
fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A plain-text response (every error: one line saying what is wrong).
fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
