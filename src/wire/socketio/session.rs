//! One Socket.IO connection, from the Engine.IO open packet to close: the heartbeat, the
//! namespace handshake, and the chat's events as Socket.IO events.
//!
//! The life of a connection:
//! 1. on upgrade the server sends Engine.IO's open packet (`0{"sid",...,"pingInterval",...}`);
//! 2. the client sends `CONNECT` for `/` or `/chat` (`40` or `40/chat,{auth}`) within
//!    `--socketio-connect-timeout`; the server joins the room and answers `40{"sid"}` and then
//!    the `welcome` event (with `--redis`, once the engine has prepared the room and counted the
//!    connection in its presence: done by a task of its own, whose result the session awaits
//!    as it awaits room events, so a `CONNECT` is answered later but nothing else waits);
//! 3. events both ways (`42[...]`), the server pinging (`2`) every `--socketio-ping-interval` and
//!    ending a client that has not answered (`3`) within `--socketio-ping-timeout`.
//!
//! The RFC 6455 duties (WebSocket pings, idle, budgets, rate limits, the close handshake) stay
//! [`crate::ws::serve`]'s, as for a native connection; this file adds only what Engine.IO and
//! Socket.IO ask on top, using the connection's one timer through [`Session::deadline`].
//!
//! Long because it is one state machine (open, namespace, heartbeat, events, acks), whose
//! states read best in one place; the packets themselves are [`super::packet`]'s.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::frame::{socketio_frame, socketio_welcome, Namespace};
use super::packet::{encode, parse_engine, parse_socket, EnginePacket, Kind, Packet, PacketError};
use crate::auth::{self, AuthError, Grant};
use crate::chat::member::Member;
use crate::chat::protocol::{check_text, ClientRequest, RequestError, ServerEvent};
use crate::chat::redis::Unavailable;
use crate::chat::reply::Reply;
use crate::chat::{Delivery, Params, Reservation};
use crate::state::{Shared, SlotGuard};
use crate::ws::serve::{self, Data, Dropped, Session};
use crate::ws::{close_code, encode_frame, Deflate, Ending, OpCode, Outbox, WriteStats};

/// Serves one upgraded Socket.IO connection until it closes. `query` is the upgrade request's
/// query string, already checked (see `routes`); the chat's parameters in it are the defaults
/// for what the `CONNECT` auth object does not say.
pub fn run(
    io: TcpStream,
    already_read: Vec<u8>,
    query: Box<str>,
    slot: SlotGuard,
    shared: Arc<Shared>,
    deflate: Option<Deflate>,
) -> impl Future<Output = ()> + Send {
    // Compressed messages from the client are read when negotiated; what we send is not
    // compressed (Socket.IO frames are small, and the plain one is what every receiver shares).
    let mut ws = shared.chat_websocket(io, &already_read, slot.id, deflate, "socketio");
    let now = Instant::now();
    let config = &shared.config;
    let open = serde_json::json!({
        "sid": session_id(slot.id),
        // Never anything to upgrade to: this is the WebSocket transport already.
        "upgrades": [],
        "pingInterval": config.socketio_ping_interval.as_millis() as u64,
        "pingTimeout": config.socketio_ping_timeout.as_millis() as u64,
        "maxPayload": config.max_message_size,
    });
    ws.writer
        .push(encode_frame(OpCode::Text, format!("0{open}").as_bytes()));
    let mut sio = SocketIo {
        shared: Arc::clone(&shared),
        conn_id: slot.id,
        query,
        state: State::Opened {
            connect_by: now + config.socketio_connect_timeout,
        },
        next_ping: now + config.socketio_ping_interval,
        pong_by: None,
        expires: None,
        binary: None,
    };

    // Shaped as the native session's future is (see `chat::session::run`): the room is left
    // before the close handshake, and nothing but the handshake lives across its await.
    async move {
        let closing = {
            let ending =
                serve::serve(&mut ws, &mut sio, &shared.chat_limits, &shared.shutdown).await;
            tracing::debug!(conn = slot.id, ?ending, "socket.io connection closed");
            drop(sio);
            shared.metrics.rooms.set(shared.hub.room_count() as i64);
            Box::pin(shared.finish_websocket(&mut ws, ending, &shared.chat_limits))
        };
        closing.await;
        drop(slot);
    }
}

/// An Engine.IO / Socket.IO session id. Over WebSocket only, it names nothing a second request
/// could resume (there are no polling sessions), so it need only be unique and not guessable
/// from outside: the connection id mixed with the process's random hash keys.
fn session_id(conn_id: u64) -> String {
    use base64::Engine as _;
    use std::hash::{BuildHasher, Hasher};
    let keys = std::collections::hash_map::RandomState::new();
    let mut bytes = [0u8; 15];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut hasher = keys.build_hasher();
        hasher.write_u64(conn_id);
        hasher.write_usize(i);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes()[..chunk.len()]);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// With authentication on, the token of a `CONNECT`: the auth object's `token`, else the
/// upgrade's `?token=` (browsers cannot set headers on a WebSocket; Socket.IO clients send the
/// auth object with every connect, which is where the README says to put it).
fn connect_token<'a>(
    auth: &'a serde_json::Map<String, Value>,
    query: &'a str,
) -> Option<Cow<'a, str>> {
    match auth.get("token").and_then(Value::as_str) {
        Some(token) => Some(Cow::Borrowed(token)),
        None => form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "token")
            .map(|(_, token)| token),
    }
}

/// The Socket.IO side of one connection.
struct SocketIo {
    shared: Arc<Shared>,
    /// The connection's id (its slot's): a room member's identity, and the seed of its sids.
    conn_id: u64,
    /// The upgrade's query string: the chat's parameters where the auth object gives none (kept
    /// for a `CONNECT` after a `DISCONNECT`, too).
    query: Box<str>,
    state: State,
    /// When the next Engine.IO ping is due (once the last one was answered).
    next_ping: Instant,
    /// A ping is out: the client must answer by then.
    pong_by: Option<Instant>,
    /// When the token of the connected namespace expires (authentication on): closed with
    /// [`auth::TOKEN_EXPIRED`] then, as a native connection is.
    expires: Option<Instant>,
    /// A binary packet waiting for its attachments (boxed: rare, and in every connection).
    binary: Option<Box<Pending>>,
}

enum State {
    /// Engine.IO is open; no namespace yet.
    Opened { connect_by: Instant },
    /// A `CONNECT` accepted, waiting for the engine to prepare its room (`--redis`); boxed:
    /// a moment in a connection's life, not worth its bytes in every connection.
    Joining(Box<Joining>),
    /// In a namespace, and so in a room.
    Connected { nsp: Namespace, member: Member },
}

/// A `CONNECT` waiting for its room (see [`State::Joining`]).
struct Joining {
    nsp: Namespace,
    params: Params,
    /// The token's `info`, for the `join` event.
    info: Option<Box<RawValue>>,
    /// The reservation, from the task that asks the engine.
    ready: oneshot::Receiver<Result<Reservation, Unavailable>>,
}

/// What the session waits for: its room's events, or (while joining) its room.
enum Waited {
    Room(Result<Delivery, RecvError>),
    Prepared(Result<Reservation, Unavailable>),
}

/// A binary event whose attachments are still arriving. The chat has no use for binary
/// arguments, so they are counted and bounded, not kept.
struct Pending {
    /// The event to handle once its attachments are in (namespace, ack id, name, arguments);
    /// `None` for an ack or an event outside the connection's namespace, only read and dropped.
    event: Option<(Namespace, Option<u64>, String, Vec<Value>)>,
    /// Binary frames still due.
    remaining: usize,
    /// Bytes of attachments so far: at most `--max-message-size` for the packet.
    bytes: usize,
}

impl SocketIo {
    fn close(&self, error: PacketError) -> Option<Ending> {
        self.shared
            .metrics
            .socketio_errors
            .with_label_values(&[error.reason()])
            .inc();
        Some(Ending::Close(
            close_code::POLICY_VIOLATION,
            error.reason().into(),
        ))
    }

    fn send(&self, out: &mut Outbox, kind: Kind, nsp: &str, ack: Option<u64>, json: &str) {
        out.push(encode_frame(
            OpCode::Text,
            encode(kind, nsp, ack, json).as_bytes(),
        ));
    }

    /// The connection's namespace and room member, if it is connected to `nsp`.
    fn connected(&mut self, nsp: &str) -> Option<(Namespace, &mut Member)> {
        match &mut self.state {
            State::Connected { nsp: ours, member } if ours.path() == nsp => Some((*ours, member)),
            _ => None,
        }
    }

    fn on_packet(&mut self, packet: Packet, out: &mut Outbox) -> Option<Ending> {
        match packet {
            Packet::Connect { nsp, auth } => self.on_connect(nsp, auth, out),
            Packet::Disconnect { nsp } => {
                let joining = matches!(&self.state, State::Joining(j) if j.nsp.path() == nsp);
                if joining || self.connected(nsp).is_some() {
                    // The client left the namespace (and so the room); a client that stays on
                    // the connection must connect again in time, as after the open packet.
                    self.state = State::Opened {
                        connect_by: Instant::now() + self.shared.config.socketio_connect_timeout,
                    };
                }
                None
            }
            Packet::Event {
                nsp,
                ack,
                name,
                args,
                attachments,
            } => {
                // Not in this namespace: Socket.IO servers ignore the packet (its attachments
                // are still read, and dropped).
                let event = self
                    .connected(nsp)
                    .map(|(namespace, _)| (namespace, ack, name, args));
                if attachments > 0 {
                    self.binary = Some(Box::new(Pending {
                        event,
                        remaining: attachments,
                        bytes: 0,
                    }));
                    return None;
                }
                if let Some((namespace, ack, name, args)) = event {
                    self.on_event_packet(namespace, ack, &name, &args, out);
                }
                None
            }
            Packet::Ack { attachments, .. } => {
                // This server never asks for acks; an answer is dropped (with its attachments).
                if attachments > 0 {
                    self.binary = Some(Box::new(Pending {
                        event: None,
                        remaining: attachments,
                        bytes: 0,
                    }));
                }
                None
            }
        }
    }

    /// A `CONNECT` whose token is refused: a `connect_error` with the reason `/ws` would give
    /// in its `401`/`403` (never the token itself), counted as `/ws` refusals are.
    fn refuse_token(&self, error: AuthError, nsp: &str, out: &mut Outbox) -> Option<Ending> {
        self.shared
            .metrics
            .auth_refusals
            .with_label_values(&[error.label()])
            .inc();
        let json = serde_json::json!({ "message": error.reason() }).to_string();
        self.send(out, Kind::ConnectError, nsp, None, &json);
        None
    }

    fn on_connect(
        &mut self,
        nsp: &str,
        auth: Option<serde_json::Map<String, Value>>,
        out: &mut Outbox,
    ) -> Option<Ending> {
        let refuse = |this: &Self, out: &mut Outbox, message: &str| {
            let json = serde_json::json!({ "message": message }).to_string();
            this.send(out, Kind::ConnectError, nsp, None, &json);
            None
        };
        let Some(namespace) = Namespace::from_path(nsp) else {
            return refuse(self, out, "Invalid namespace");
        };
        let State::Opened { .. } = self.state else {
            return refuse(self, out, "wschat serves one namespace per connection");
        };
        let auth = auth.unwrap_or_default();
        // With authentication on, the token decides the name (`sub`) and the rooms, as on `/ws`.
        let grant: Option<Grant> = match &self.shared.verifier {
            None => None,
            Some(verifier) => {
                let verified = connect_token(&auth, &self.query)
                    .ok_or(AuthError::Missing)
                    .and_then(|token| verifier.verify_token(&token));
                match verified {
                    Ok(grant) => Some(grant),
                    Err(error) => return self.refuse_token(error, nsp, out),
                }
            }
        };
        let nick = grant.as_ref().map(|grant| grant.nick.as_str());
        let params = match connect_params(&self.query, &auth, nick, &self.shared) {
            Ok(params) => params,
            Err(reason) => return refuse(self, out, reason),
        };
        if let Some(grant) = &grant {
            if let Err(error) = grant.check_room(&params.room) {
                return self.refuse_token(error, nsp, out);
            }
        }
        if self.shared.hub.admit(&params.room).is_err() {
            return refuse(
                self,
                out,
                "server at its room limit: join an existing room or try later",
            );
        }
        let info = grant.as_ref().and_then(|grant| grant.info.as_deref());
        self.expires = grant.as_ref().map(Grant::deadline);
        if self.shared.hub.engine().needs_prepare() {
            // The engine's part of joining happens in a task; the session answers the
            // `CONNECT` when it is done (`on_event`, `Waited::Prepared`).
            let (done, ready) = oneshot::channel();
            let hub = Arc::clone(&self.shared.hub);
            let (room, nick, owned_info) = (
                params.room.clone(),
                params.nick.clone(),
                info.map(ToOwned::to_owned),
            );
            self.shared.tasks.spawn(async move {
                let reserved = hub
                    .reserve_prepared(&room, &nick, owned_info.as_deref())
                    .await;
                // A session gone meanwhile drops the reservation here: its place is given back.
                let _ = done.send(reserved);
            });
            self.state = State::Joining(Box::new(Joining {
                nsp: namespace,
                params,
                info: info.map(ToOwned::to_owned),
                ready,
            }));
            return None;
        }
        self.connect_member(namespace, &params, info, None, out);
        None
    }

    /// Joins the room (held by `reserved` when the engine prepared it) and answers the
    /// `CONNECT`: `40{"sid"}`, then the welcome.
    fn connect_member(
        &mut self,
        namespace: Namespace,
        params: &Params,
        info: Option<&RawValue>,
        reserved: Option<Reservation>,
        out: &mut Outbox,
    ) {
        let nsp = namespace.path();
        let (member, welcome) = Member::join(
            Arc::clone(&self.shared),
            self.conn_id,
            params,
            info,
            reserved,
        );
        tracing::debug!(conn = self.conn_id, nsp, room = %params.room, nick = %params.nick, "socket.io namespace connected");
        let sid = serde_json::json!({ "sid": session_id(self.conn_id ^ u64::MAX) }).to_string();
        self.send(out, Kind::Connect, nsp, None, &sid);
        for piece in socketio_welcome(welcome.plain(), namespace) {
            out.push(piece);
        }
        self.state = State::Connected {
            nsp: namespace,
            member,
        };
    }

    /// The engine has prepared the room of a `CONNECT` (or could not).
    fn on_prepared(
        &mut self,
        reserved: Result<Reservation, Unavailable>,
        out: &mut Outbox,
    ) -> Option<Ending> {
        let connect_by = Instant::now() + self.shared.config.socketio_connect_timeout;
        let State::Joining(joining) =
            std::mem::replace(&mut self.state, State::Opened { connect_by })
        else {
            return None;
        };
        let Joining {
            nsp, params, info, ..
        } = *joining;
        match reserved {
            Ok(reserved) => {
                self.connect_member(nsp, &params, info.as_deref(), Some(reserved), out);
            }
            Err(error) => {
                tracing::error!(room = %params.room, %error, "cannot join: engine unavailable");
                let json = serde_json::json!({
                    "message": "room unavailable: the server cannot reach redis"
                });
                self.send(out, Kind::ConnectError, nsp.path(), None, &json.to_string());
            }
        }
        None
    }

    /// A client's event, in a connected namespace: `message` and `typing` are the chat's;
    /// anything else is answered with an `error` event. With an ack id, the ack carries the
    /// outcome instead: `{"id":N}` for a posted message, `{"error":{code,message}}` otherwise.
    fn on_event_packet(
        &mut self,
        nsp: Namespace,
        ack: Option<u64>,
        name: &str,
        args: &[Value],
        out: &mut Outbox,
    ) {
        let max_text_len = self.shared.config.max_text_len;
        let request = match name {
            "message" => match args.first() {
                Some(Value::String(text)) => Ok(ClientRequest::Message(text.as_str().into())),
                Some(Value::Object(map)) => match map.get("text") {
                    Some(Value::String(text)) => Ok(ClientRequest::Message(text.as_str().into())),
                    _ => Err(RequestError::BadRequest),
                },
                _ => Err(RequestError::BadRequest),
            },
            "typing" => Ok(ClientRequest::Typing),
            _ => Err(RequestError::UnknownType),
        };
        let request = request.and_then(|request| match &request {
            ClientRequest::Message(text) => check_text(text, max_text_len).map(|()| request),
            ClientRequest::Typing => Ok(request),
        });
        // With an engine that assigns ids later (Redis), a message's ack waits for its id: the
        // engine sends it, through the room, once Redis has answered (see `ack_reply`).
        let later = self.shared.hub.engine().needs_prepare();
        let deferred = match (ack, &request) {
            (Some(id), Ok(ClientRequest::Message(_))) if later => {
                Some(Box::new(ack_reply(nsp, id)))
            }
            _ => None,
        };
        let Some((_, member)) = self.connected(nsp.path()) else {
            return;
        };
        let waits = deferred.is_some();
        let outcome = request.and_then(|request| member.request_with_reply(request, deferred));
        let reply = match (ack, outcome) {
            (None, Ok(_)) => return,
            (Some(_), Ok(None)) if waits => return,
            (None, Err(error)) => {
                out.push(socketio_frame(&ServerEvent::error(error).to_frame(), nsp));
                self.shared.metrics.socketio_encodings.inc();
                return;
            }
            (Some(id), Ok(posted)) => (id, serde_json::json!([{ "id": posted }])),
            (Some(id), Err(error)) => (
                id,
                serde_json::json!([{ "error": { "code": error.code(), "message": error.message() } }]),
            ),
        };
        self.send(
            out,
            Kind::Ack,
            nsp.path(),
            Some(reply.0),
            &reply.1.to_string(),
        );
    }

    fn on_binary(&mut self, data: Bytes, out: &mut Outbox) -> Option<Ending> {
        let max = self.shared.config.max_message_size;
        let Some(pending) = self.binary.as_mut() else {
            return self.close(PacketError::UnexpectedBinary);
        };
        pending.bytes += data.len();
        if pending.bytes > max {
            return self.close(PacketError::AttachmentsTooLarge);
        }
        pending.remaining -= 1;
        if pending.remaining == 0 {
            let pending = self.binary.take()?;
            if let Some((nsp, ack, name, args)) = pending.event {
                self.on_event_packet(nsp, ack, &name, &args, out);
            }
        }
        None
    }
}

/// The ack of message-posting event `ack` on `nsp`, for an engine that assigns the id later:
/// `43/chat,ACK[{"id":N}]` once Redis has given the message its id, as the memory engine's
/// immediate ack reads; `[{"error":{...}}]` with code `unavailable` if Redis refused the post.
/// Sent through the room to the poster alone, so it may come before or after the `message`
/// event itself (they reach this process by two connections to Redis); the id is exact either way.
fn ack_reply(nsp: Namespace, ack: u64) -> Reply {
    let error = RequestError::Unavailable;
    let failed =
        serde_json::json!([{ "error": { "code": error.code(), "message": error.message() } }]);
    Reply {
        slot: nsp.form_slot(),
        before_id: encode(Kind::Ack, nsp.path(), Some(ack), r#"[{"id":"#),
        after_id: "}]".into(),
        failed: encode(Kind::Ack, nsp.path(), Some(ack), &failed.to_string()),
    }
}

/// The chat's parameters for a `CONNECT`: the upgrade's query string, overridden by the auth
/// object's `room`, `name` and `since`, checked by the same rules as `/ws`'s query string.
/// `token_nick`: the token's `sub` (authentication on), which replaces any `name`.
fn connect_params(
    query: &str,
    auth: &serde_json::Map<String, Value>,
    token_nick: Option<&str>,
    shared: &Shared,
) -> Result<Params, &'static str> {
    let mut merged = form_urlencoded::Serializer::new(query.to_owned());
    for key in ["room", "name", "since"] {
        match auth.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(value)) => {
                merged.append_pair(key, value);
            }
            Some(Value::Number(n)) if key == "since" => {
                merged.append_pair(key, &n.to_string());
            }
            Some(_) => return Err("room, name and since must be strings (since: a number)"),
        }
    }
    // Later pairs win in `Params::from_query`, so the auth object's come last.
    let merged = merged.finish();
    match token_nick {
        Some(nick) => Params::from_query_as(&merged, &shared.config, nick),
        None => Params::from_query(&merged, &shared.config, || shared.guest_name()),
    }
}

impl Session for SocketIo {
    type Event = Waited;

    /// Nothing to wait for until a namespace is connected (and so a room joined), but the room
    /// of a `CONNECT` the engine is preparing.
    async fn next_event(&mut self) -> Self::Event {
        match &mut self.state {
            State::Connected { member, .. } => Waited::Room(member.recv().await),
            State::Joining(joining) => Waited::Prepared(
                (&mut joining.ready)
                    .await
                    .unwrap_or_else(|_| Err(Unavailable("join task ended".into()))),
            ),
            State::Opened { .. } => std::future::pending().await,
        }
    }

    fn on_data(&mut self, data: Data, out: &mut Outbox) -> Option<Ending> {
        let metrics = &self.shared.metrics;
        metrics.messages_received.inc();
        let text = match data {
            Data::Text(text) => text,
            Data::Binary(data) => {
                metrics.bytes_in.inc_by(data.len() as u64);
                return self.on_binary(data, out);
            }
        };
        metrics.bytes_in.inc_by(text.len() as u64);
        let packet = match parse_engine(&text) {
            Ok(packet) => packet,
            Err(error) => return self.close(error),
        };
        match packet {
            EnginePacket::Pong => {
                let now = Instant::now();
                self.pong_by = None;
                self.next_ping = now + self.shared.config.socketio_ping_interval;
                None
            }
            EnginePacket::Ping(data) => {
                out.push(encode_frame(OpCode::Text, format!("3{data}").as_bytes()));
                None
            }
            EnginePacket::Noop => None,
            EnginePacket::Close => {
                Some(Ending::Close(close_code::NORMAL, "engine.io close".into()))
            }
            EnginePacket::Message(sio) => {
                if self.binary.is_some() {
                    return self.close(PacketError::MissingAttachments);
                }
                match parse_socket(sio, self.shared.config.socketio_max_attachments) {
                    Ok(packet) => self.on_packet(packet, out),
                    Err(error) => self.close(error),
                }
            }
        }
    }

    fn on_event(&mut self, event: Self::Event, out: &mut Outbox) -> Option<Ending> {
        let first = match event {
            Waited::Room(first) => first,
            Waited::Prepared(reserved) => return self.on_prepared(reserved, out),
        };
        let State::Connected { nsp, member } = &mut self.state else {
            return None;
        };
        let nsp = *nsp;
        let encodings = &self.shared.metrics.socketio_encodings;
        member.drain(first, out, |event| {
            event.wire_form(nsp.form_slot(), |native| {
                encodings.inc();
                socketio_frame(native, nsp)
            })
        })
    }

    fn on_rate_limited(&mut self, out: &mut Outbox) {
        if let State::Connected { nsp, .. } = self.state {
            let native = ServerEvent::error(RequestError::RateLimited).to_frame();
            out.push(socketio_frame(&native, nsp));
        }
    }

    fn on_dropped(&mut self, why: Dropped) {
        self.shared.metrics.count_drop(why);
    }

    fn on_written(&mut self, stats: WriteStats) {
        self.shared.metrics.count_writes(stats);
    }

    fn deadline(&self) -> Option<Instant> {
        let heartbeat = self.pong_by.unwrap_or(self.next_ping);
        let next = match self.state {
            State::Opened { connect_by, .. } => heartbeat.min(connect_by),
            State::Joining(_) | State::Connected { .. } => heartbeat,
        };
        Some(self.expires.map_or(next, |expires| next.min(expires)))
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Outbox) -> Option<Ending> {
        if self.expires.is_some_and(|expires| now >= expires) {
            self.on_dropped(Dropped::Expired);
            return Some(Ending::Close(auth::TOKEN_EXPIRED, "token expired".into()));
        }
        if let State::Opened { connect_by, .. } = self.state {
            if now >= connect_by {
                self.shared
                    .metrics
                    .dropped_clients
                    .with_label_values(&["socketio_connect_timeout"])
                    .inc();
                return Some(Ending::Close(
                    close_code::POLICY_VIOLATION,
                    "socket.io: no namespace connected in time".into(),
                ));
            }
        }
        match self.pong_by {
            Some(by) if now >= by => {
                self.shared
                    .metrics
                    .dropped_clients
                    .with_label_values(&["socketio_ping_timeout"])
                    .inc();
                Some(Ending::Close(
                    close_code::GOING_AWAY,
                    "engine.io: ping timeout".into(),
                ))
            }
            Some(_) => None,
            None if now >= self.next_ping => {
                out.push(Bytes::from_static(PING_FRAME));
                self.pong_by = Some(now + self.shared.config.socketio_ping_timeout);
                None
            }
            None => None,
        }
    }
}

/// Engine.IO's ping, `2`, as a whole text frame (`0x81`: FIN and text; length 1).
const PING_FRAME: &[u8] = &[0x81, 0x01, b'2'];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ping_frame_is_a_text_frame_of_2() {
        assert_eq!(PING_FRAME, &encode_frame(OpCode::Text, b"2")[..]);
    }

    #[test]
    fn session_ids_differ() {
        let a = session_id(1);
        assert_eq!(a.len(), 20);
        assert_ne!(a, session_id(2));
    }
}
