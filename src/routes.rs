//! What each request gets: the page, `/healthz`, `/limits`, `/metrics`, or a WebSocket upgrade.
//! Decided once per request in [`route`]; each endpoint's parameters are parsed by its own module
//! (the chat's by [`crate::chat::Params`]).
//!
//! The upgrade is done by hand, in three steps a reader can follow in [`upgrade`]:
//! 1. validate the request ([`crate::ws::handshake`]) and answer `101 Switching Protocols` with
//!    `Sec-WebSocket-Accept` (and `Sec-WebSocket-Extensions` when permessage-deflate is agreed,
//!    [`crate::ws::extensions`]);
//! 2. once hyper has written the `101`, `hyper::upgrade::on` yields the connection;
//! 3. downcast it back to the `TcpStream` and hand the stream, plus any bytes hyper had already
//!    read past the request (a pipelined first frame), to the endpoint's session.
//!
//! Longer than most files here because every answer the server gives over HTTP is decided here,
//! the refusals with their statuses included: one place to read what a request can get.

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span};

use crate::auth::{self, AuthError, Grant};
use crate::chat::Params;
use crate::config::Switch;
use crate::state::{Shared, SlotGuard};
use crate::wire::socketio;
use crate::ws::handshake::{self, HandshakeError};
use crate::ws::trace;
use crate::ws::{extensions, Deflate};
use crate::{assets, chat, echo};

type Body = Full<Bytes>;

/// What an upgrade request asked for, decided once from its path and query.
enum Endpoint {
    /// A chat connection, and what its token grants when authentication is on.
    Chat(Params, Option<Grant>),
    /// Socket.IO, with the upgrade's query string: the chat's parameters are decided at the
    /// client's `CONNECT`, which may carry them in its auth object (and, with authentication
    /// on, its token).
    SocketIo(Box<str>),
    Echo,
}

/// Why an upgrade was refused: the WebSocket handshake's rules and the chat's parameters, or the
/// token. Two types because they live in two layers (`ws::handshake` knows nothing of tokens).
enum Refused {
    Handshake(HandshakeError),
    Auth(AuthError),
}

impl From<HandshakeError> for Refused {
    fn from(error: HandshakeError) -> Self {
        Refused::Handshake(error)
    }
}

impl From<AuthError> for Refused {
    fn from(error: AuthError) -> Self {
        Refused::Auth(error)
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The page, the WebSocket endpoints, `/healthz`, and `/metrics` unless it has its own.
    Main,
    /// `--metrics-addr`: `/metrics` and `/healthz` only.
    Metrics,
}

/// Routes one request. Every response, error or not, is built here or in [`upgrade`].
pub async fn route(
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
        "/ws" if kind == Listener::Main => upgrade(req, ip, shared).await,
        // Engine.IO's path; clients add the trailing slash. Anything but Engine.IO 4 over
        // WebSocket is refused with Engine.IO's JSON error, before the upgrade's own checks.
        "/socket.io/" | "/socket.io" if kind == Listener::Main => {
            match socketio::handshake::check_query(req.uri().query().unwrap_or("")) {
                Ok(()) => upgrade(req, ip, shared).await,
                Err(refusal) => {
                    shared
                        .metrics
                        .handshake_failures
                        .with_label_values(&[refusal.label()])
                        .inc();
                    let mut response = Response::new(Full::new(Bytes::from(refusal.body())));
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    closing(response)
                }
            }
        }
        "/echo" if kind == Listener::Main && config.echo => upgrade(req, ip, shared).await,
        _ if req.method() != Method::GET && req.method() != Method::HEAD => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        "/healthz" if shared.hub.engine().healthy() => text(StatusCode::OK, "ok"),
        "/healthz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "redis connection lost: reconnecting",
        ),
        "/auth/check" if kind == Listener::Main => match &shared.verifier {
            Some(verifier) => check_token(&req, verifier),
            None => text(StatusCode::NOT_FOUND, "not found"),
        },
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
///
/// With an engine that prepares rooms (`--redis`), a chat joiner's room is subscribed and loaded
/// here, before the `101`, and held for the session: a room that cannot be loaded is a `503` with
/// its reason, which a client and a load balancer understand, rather than an upgrade closed at
/// once with 1011. The request waits for the load meanwhile (at most the load's timeout).
async fn upgrade(mut req: Request<Incoming>, ip: IpAddr, shared: &Arc<Shared>) -> Response<Body> {
    let accepted = match accept_upgrade(&req, ip, shared) {
        Ok((accept_key, endpoint, slot, deflate)) => match prepare(&endpoint, shared).await {
            Ok(reserved) => Ok((accept_key, endpoint, slot, deflate, reserved)),
            Err(error) => Err(error),
        },
        Err(refused) => Err(refused),
    };
    let (accept_key, endpoint, slot, deflate, reserved) = match accepted {
        Ok(accepted) => accepted,
        Err(Refused::Handshake(error)) => {
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
        Err(Refused::Auth(error)) => {
            // The reason and label are fixed texts: nothing of the token reaches the answer,
            // the log or the metrics.
            shared
                .metrics
                .auth_refusals
                .with_label_values(&[error.label()])
                .inc();
            tracing::debug!(reason = error.label(), "upgrade refused: token");
            return closing(auth_refusal(error));
        }
    };

    let span = trace_span(&req, &accept_key, &endpoint, &slot, shared);
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
            Endpoint::Chat(params, grant) => spawn_session(
                &tasks,
                chat::session::run(
                    stream,
                    already_read,
                    chat::session::Joining {
                        params,
                        grant,
                        reserved,
                    },
                    slot,
                    shared,
                    deflate,
                ),
                span,
            ),
            Endpoint::Echo => spawn_session(
                &tasks,
                echo::run(stream, already_read, slot, shared, deflate),
                span,
            ),
            Endpoint::SocketIo(query) => spawn_session(
                &tasks,
                socketio::session::run(stream, already_read, query, slot, shared, deflate),
                span,
            ),
        };
    });

    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header("sec-websocket-accept", accept_key);
    if let Some(deflate) = deflate {
        response = response.header("sec-websocket-extensions", deflate.response());
    }
    response
        .body(Full::new(Bytes::new()))
        .expect("a valid response")
}

/// The engine's part of joining (Redis: subscribe this process to the room and load it), for a
/// chat endpoint whose engine needs it: the room, held for the session. `None` otherwise.
async fn prepare(
    endpoint: &Endpoint,
    shared: &Arc<Shared>,
) -> Result<Option<chat::Reservation>, Refused> {
    match endpoint {
        Endpoint::Chat(params, grant) if shared.hub.engine().needs_prepare() => {
            let info = grant.as_ref().and_then(|grant| grant.info.as_deref());
            match shared
                .hub
                .reserve_prepared(&params.room, &params.nick, info)
                .await
            {
                Ok(reserved) => Ok(Some(reserved)),
                Err(error) => {
                    tracing::warn!(room = %params.room, %error, "join refused: room not loaded");
                    Err(HandshakeError::RoomUnavailable.into())
                }
            }
        }
        _ => Ok(None),
    }
}

/// `--trace-frames`: logs the handshake (the client's key and the accept computed from it) of
/// every connection, in a `conn{id=… nick=…}` span; returns the span if the connection's frames
/// are followed, for its task to run in. `None` (no span, no cost) when tracing is off.
fn trace_span<B>(
    req: &Request<B>,
    accept_key: &str,
    endpoint: &Endpoint,
    slot: &SlotGuard,
    shared: &Shared,
) -> Option<Span> {
    shared.config.trace_frames?;
    let span = match endpoint {
        Endpoint::Chat(params, _) => {
            tracing::info_span!(target: trace::TARGET, "conn", id = slot.id, nick = %params.nick)
        }
        Endpoint::SocketIo(_) | Endpoint::Echo => {
            tracing::info_span!(target: trace::TARGET, "conn", id = slot.id)
        }
    };
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|key| key.to_str().ok())
        .unwrap_or("");
    span.in_scope(|| trace::trace_handshake(key, accept_key));
    shared.traces(slot.id).then_some(span)
}

/// Spawns a session's task, inside its trace span if it has one. Untraced, the task is the bare
/// session future: an `Instrumented` wrapper would cost every idle connection a span's bytes.
fn spawn_session<F>(tasks: &TaskTracker, session: F, span: Option<Span>)
where
    F: Future<Output = ()> + Send + 'static,
{
    match span {
        Some(span) => tasks.spawn(session.instrument(span)),
        None => tasks.spawn(session),
    };
}

/// Takes the `TcpStream` back from hyper, with the bytes hyper read past the request (a
/// pipelined first frame). Getting the stream back drops hyper's buffers and its boxed I/O.
/// `read_buf` is a view into hyper's whole read buffer, so what it holds is copied out and the
/// view dropped here: kept, it would pin that buffer for the life of the connection.
fn into_tcp(upgraded: Upgraded) -> Result<(TcpStream, Vec<u8>), Upgraded> {
    let parts = upgraded.downcast::<TokioIo<TcpStream>>()?;
    Ok((parts.io.into_inner(), parts.read_buf.to_vec()))
}

/// Every check an upgrade must pass, in order: the RFC's rules, the origin, the token (when
/// authentication is on), the endpoint's own parameters, the room the token grants, and last the
/// connection limit (so a malformed request hears what is wrong). Returns the accept key, the
/// endpoint, the claimed slot, and the permessage-deflate agreement if any (`--deflate`; never a
/// reason to refuse: an offer we cannot take is declined).
fn accept_upgrade(
    req: &Request<Incoming>,
    ip: IpAddr,
    shared: &Arc<Shared>,
) -> Result<(String, Endpoint, SlotGuard, Option<Deflate>), Refused> {
    let accept_key = handshake::validate(req)?;
    handshake::check_origin(req.headers(), &shared.config.allowed_origins)?;
    let endpoint = match req.uri().path() {
        "/ws" => {
            let query = req.uri().query().unwrap_or("");
            let (params, grant) = match &shared.verifier {
                None => {
                    let params = Params::from_query(query, &shared.config, || shared.guest_name())
                        .map_err(HandshakeError::BadParameter)?;
                    (params, None)
                }
                Some(verifier) => {
                    let token =
                        auth::request_token(req.headers(), query).ok_or(AuthError::Missing)?;
                    let grant = verifier.verify_token(&token)?;
                    let params = Params::from_query_as(query, &shared.config, &grant.nick)
                        .map_err(HandshakeError::BadParameter)?;
                    grant.check_room(&params.room)?;
                    (params, Some(grant))
                }
            };
            if !shared.hub.engine().healthy() {
                return Err(HandshakeError::EngineDown.into());
            }
            // A new room beyond `--max-rooms` is refused before the upgrade; existing rooms stay
            // joinable.
            shared
                .hub
                .admit(&params.room)
                .map_err(|chat::RoomLimit| HandshakeError::RoomLimit)?;
            Endpoint::Chat(params, grant)
        }
        "/socket.io/" | "/socket.io" => {
            // As on `/ws`: a process that no longer hears the others takes no new members.
            if !shared.hub.engine().healthy() {
                return Err(HandshakeError::EngineDown.into());
            }
            // The query's own room and name are checked now, so a bad one is a `400` as on
            // `/ws`; the auth object's are checked at `CONNECT`. A guest name is not drawn
            // here: the one the connection keeps is drawn then.
            let query = req.uri().query().unwrap_or("");
            let params = Params::from_query(query, &shared.config, || "guest".into())
                .map_err(HandshakeError::BadParameter)?;
            if form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "room") {
                shared
                    .hub
                    .admit(&params.room)
                    .map_err(|chat::RoomLimit| HandshakeError::RoomLimit)?;
            }
            Endpoint::SocketIo(query.into())
        }
        _ => Endpoint::Echo,
    };
    let slot = shared.claim_slot(ip).ok_or(HandshakeError::ServerFull)?;
    let deflate = match shared.config.deflate {
        Switch::On => extensions::negotiate(
            req.headers()
                .get_all("sec-websocket-extensions")
                .iter()
                .map(HeaderValue::as_bytes),
        ),
        Switch::Off => None,
    };
    Ok((accept_key, endpoint, slot, deflate))
}

/// A token refused: `401` or `403` with its one-line reason.
fn auth_refusal(error: AuthError) -> Response<Body> {
    let mut response = text(error.status(), error.reason());
    if error.status() == StatusCode::UNAUTHORIZED {
        // RFC 6750 section 3: a 401 names the scheme the client should authenticate with.
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"wschat\""),
        );
    }
    response
}

/// `GET /auth/check?room=R` with the token as for `/ws`: `204` if the token would be let into
/// room `R`, else the same `401`/`403` and reason an upgrade would get. A browser cannot read the
/// status of a refused WebSocket handshake (it sees only "closed"), so this is how the page learns
/// why, and can say it in words. Not counted in the refusal metrics: it refuses no connection.
fn check_token<B>(req: &Request<B>, verifier: &auth::Verifier) -> Response<Body> {
    let query = req.uri().query().unwrap_or("");
    let room = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "room")
        .map_or(Cow::Borrowed(chat::params::DEFAULT_ROOM), |(_, room)| room);
    let checked = auth::request_token(req.headers(), query)
        .ok_or(AuthError::Missing)
        .and_then(|token| verifier.verify(&token, &room));
    match checked {
        Ok(_) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err(error) => auth_refusal(error),
    }
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
