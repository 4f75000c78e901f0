//! Accepting connections, speaking HTTP with hyper, upgrading to WebSocket, shutting down.
//!
//! The upgrade is done by hand, in three steps a reader can follow in [`upgrade`]:
//! 1. validate the request ([`crate::ws::handshake`]) and answer `101 Switching Protocols` with
//!    `Sec-WebSocket-Accept`;
//! 2. once hyper has written the `101`, `hyper::upgrade::on` yields the connection;
//! 3. downcast it back to the `TcpStream` and hand the stream, plus any bytes hyper had already
//!    read past the request (a pipelined first frame), to a chat or echo session.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
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

use crate::chat::session::Params;
use crate::state::{Shared, SlotGuard};
use crate::ws::handshake::{self, HandshakeError};
use crate::{assets, chat, echo, Config};

/// Pending connections the kernel queues for us. tokio's `TcpListener::bind` uses 128, which
/// overflows when thousands of clients connect at once (each overflow costs a client a
/// one-second SYN retry).
const LISTEN_BACKLOG: u32 = 4096;

/// File descriptors kept free for everything that is not a WebSocket (HTTP requests, logs,
/// the listener itself) when the connection limit is derived from the open-file limit.
const FD_HEADROOM: u64 = 128;

type Body = Full<Bytes>;

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port) and raises the open-file limit as far as
    /// the system allows.
    pub async fn bind(config: Config) -> io::Result<Server> {
        let socket = match config.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(config.addr)?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let max_connections = match config.max_connections {
            0 => {
                let files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
                files.saturating_sub(FD_HEADROOM).max(1) as usize
            }
            n => n,
        };
        Ok(Server {
            listener,
            shared: Shared::new(config, max_connections),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The state every connection shares (for tests and benches that look inside).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serves until `shutdown` completes; then stops accepting, closes every WebSocket with
    /// 1001, waits for their close handshakes (up to `--shutdown-grace`) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        let Server { listener, shared } = self;
        tracing::info!(
            addr = %listener.local_addr()?,
            max_connections = shared.max_connections,
            "listening"
        );
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let shared2 = Arc::clone(&shared);
                    shared.tasks.spawn(serve_http(stream, peer, shared2));
                }
                // Out of file descriptors (EMFILE/ENFILE) or a connection that died in the
                // queue: keep the server up, and give descriptors a moment to come back.
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        drop(listener);
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

/// One TCP connection's HTTP/1.1 life: requests until it closes, upgrades, or we shut down.
async fn serve_http(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    // Chat frames are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let service = {
        let shared = Arc::clone(&shared);
        service_fn(move |req| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(route(req, &shared)) }
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
}

/// Routes one request. Every response, error or not, is built here or in [`upgrade`].
fn route(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    let path = req.uri().path();
    let response = match path {
        "/ws" | "/echo" => upgrade(req, shared),
        _ if req.method() != Method::GET && req.method() != Method::HEAD => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok"),
        "/metrics" => {
            shared.metrics.rooms.set(shared.hub.room_count() as i64);
            let mut response = Response::new(Full::new(Bytes::from(shared.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        _ => match assets::find(path) {
            Some(asset) => page(asset, req.headers().get(header::HOST)),
            None => text(StatusCode::NOT_FOUND, "not found"),
        },
    };
    shared
        .metrics
        .http_requests
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

/// Answers an upgrade request with `101` and starts its session, or refuses it.
fn upgrade(mut req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    let accepted = accept_upgrade(&req, shared);
    let (accept_key, params, slot) = match accepted {
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
            return response;
        }
    };

    let on_upgrade = hyper::upgrade::on(&mut req);
    let shared2 = Arc::clone(shared);
    shared.tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(%err, "upgrade failed after 101");
                return;
            }
        };
        // The session gets a task of its own, sized for exactly its future: awaited here, it
        // would also carry this task's own state (the arguments, the upgrade's result) for the
        // life of the connection, and this task is most of what an idle connection costs.
        let tasks = shared2.tasks.clone();
        match (into_tcp(upgraded), params) {
            (Ok((stream, already_read)), Some(params)) => tasks.spawn(chat::session::run(
                stream,
                already_read,
                params,
                slot,
                shared2,
            )),
            (Ok((stream, already_read)), None) => {
                tasks.spawn(echo::run(stream, already_read, slot, shared2))
            }
            (Err(upgraded), Some(params)) => {
                let io = TokioIo::new(upgraded);
                tasks.spawn(chat::session::run(io, Vec::new(), params, slot, shared2))
            }
            (Err(upgraded), None) => {
                tasks.spawn(echo::run(TokioIo::new(upgraded), Vec::new(), slot, shared2))
            }
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

/// Every check an upgrade must pass, in order: the RFC's rules, the origin, the chat's query
/// parameters, and last the connection limit (so a malformed request hears what is wrong).
/// Returns the accept key, the chat parameters (`None` for `/echo`) and the claimed slot.
fn accept_upgrade(
    req: &Request<Incoming>,
    shared: &Arc<Shared>,
) -> Result<(String, Option<Params>, SlotGuard), HandshakeError> {
    let accept_key = handshake::validate(req)?;
    handshake::check_origin(req.headers(), &shared.config.allowed_origins)?;
    let params = match req.uri().path() {
        "/ws" => Some(chat_params(req.uri().query().unwrap_or(""), shared)?),
        _ => None,
    };
    if let Some(params) = &params {
        shared
            .hub
            .admit(&params.room)
            .map_err(|chat::RoomLimit| HandshakeError::RoomLimit)?;
    }
    let slot = shared.claim_slot().ok_or(HandshakeError::ServerFull)?;
    Ok((accept_key, params, slot))
}

/// Reads `room`, `name` and `since` from the query string. Room names are what fits in a URL
/// fragment unescaped; nicknames may be any printable text.
fn chat_params(query: &str, shared: &Shared) -> Result<Params, HandshakeError> {
    let config = &shared.config;
    let (mut room, mut nick, mut since) = (None, None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "room" => room = Some(value.into_owned()),
            "name" => nick = Some(value.trim().to_owned()),
            "since" => {
                let id = value
                    .parse::<u64>()
                    .map_err(|_| HandshakeError::BadParameter("since must be a message id"))?;
                since = Some(id);
            }
            _ => {}
        }
    }
    let room = room.unwrap_or_else(|| "lobby".to_owned());
    let room_ok = (1..=config.max_room_len).contains(&room.chars().count())
        && room
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !room_ok {
        return Err(HandshakeError::BadParameter(
            "room must be letters, digits, '-', '_' or '.', at most --max-room-len characters (default 64)",
        ));
    }
    let nick = match nick {
        Some(nick) if !nick.is_empty() => nick,
        _ => shared.guest_name(),
    };
    let nick_ok = nick.chars().count() <= config.max_name_len
        && nick.chars().all(|c| !c.is_control() && !is_invisible(c));
    if !nick_ok {
        return Err(HandshakeError::BadParameter(
            "name must be printable, at most --max-name-len characters (default 32)",
        ));
    }
    Ok(Params { room, nick, since })
}

/// Format characters that would let one nickname impersonate another (zero-width space,
/// direction overrides, byte-order mark).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
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

/// An embedded file, with the page's security headers.
fn page(asset: &'static assets::Asset, host: Option<&HeaderValue>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(asset.body)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // No inline script, nothing from elsewhere, and sockets only to this server. Older browsers
    // do not count ws: as 'self', so the host is named too (only if it is a plain host[:port]).
    let host = host
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("");
    let sockets = if host.is_empty() {
        String::new()
    } else {
        format!(" ws://{host} wss://{host}")
    };
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{sockets}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}
