//! What every connection shares: settings, rooms, metrics, admission and the shutdown signal.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, AdmissionLimits, WebSocketTicket};
use crate::auth::Verifier;
use crate::chat::{Engine, Hub, RoomConfig};
use crate::metrics::Metrics;
use crate::ws::{ConnLimits, Deflate, Ending, Limits, Socket, WebSocket};
use crate::Config;

pub struct Shared {
    pub config: Config,
    pub hub: Arc<Hub>,
    pub metrics: Metrics,
    /// Cancelled once when the server starts shutting down; every task selects on it.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them to finish their close handshakes.
    /// Upgraded connections are outside hyper's graceful shutdown: this is how we find them.
    pub tasks: TaskTracker,
    /// The WebSocket connection limit in force (`--max-connections`, or the file budget).
    pub max_connections: usize,
    /// Connection counts by kind and address, checked at accept.
    pub admission: Arc<Admission>,
    /// Budgets and timers of a chat connection, and of an `/echo` one. Built once here so that
    /// no connection holds a copy.
    pub chat_limits: ConnLimits,
    pub echo_limits: ConnLimits,
    /// Checks tokens when authentication is on (`--auth-secret`, `--auth-public-key`); `None`
    /// when it is off, and every connection is taken at its word.
    pub verifier: Option<Verifier>,
    next_conn_id: AtomicU64,
    next_guest: AtomicU64,
}

impl Shared {
    /// `file_budget`: connections of every kind the process can hold (derived from its
    /// open-file limit); `max_connections`: the WebSocket cap within it.
    pub fn new(
        config: Config,
        max_connections: usize,
        file_budget: usize,
        verifier: Option<Verifier>,
        engine: Engine,
    ) -> Arc<Shared> {
        let room_config = RoomConfig::from(&config);
        let chat_limits = ConnLimits {
            write_budget: config.write_buffer,
            write_timeout: config.write_timeout,
            ping_interval: config.ping_interval,
            idle_timeout: config.idle_timeout,
            close_timeout: config.close_timeout,
            rate: config.rate_limit,
            burst: config.rate_burst,
            strikes: config.rate_strikes,
        };
        // `/echo` is the conformance suite's endpoint: its cases send thousands of frames as
        // fast as they can, so no rate limit; its memory is bounded by the same write budget.
        let echo_limits = ConnLimits {
            rate: 0.0,
            ..chat_limits.clone()
        };
        let admission = Admission::new(AdmissionLimits {
            file_budget,
            max_websockets: max_connections,
            max_http: config.max_http_connections,
            per_ip: config.max_connections_per_ip,
            handshakes_per_ip: config.max_handshakes_per_ip,
        });
        let metrics = Metrics::new();
        if let Engine::Redis(redis) = &engine {
            metrics.add_redis(redis.metrics());
        }
        Arc::new(Shared {
            hub: Hub::with_engine(
                room_config,
                config.presence_interval,
                config.max_rooms,
                engine,
            ),
            metrics,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            max_connections,
            admission,
            chat_limits,
            echo_limits,
            verifier,
            next_conn_id: AtomicU64::new(1),
            next_guest: AtomicU64::new(1),
            config,
        })
    }

    /// Claims a WebSocket slot for a client at `ip`, or `None` at the limit. The slot is freed
    /// when the guard drops.
    pub fn claim_slot(self: &Arc<Self>, ip: IpAddr) -> Option<SlotGuard> {
        let ticket = self.admission.upgraded(ip)?;
        self.metrics.connections_open.inc();
        self.metrics.connections_total.inc();
        Some(SlotGuard {
            shared: Arc::clone(self),
            id: self.next_conn_id.fetch_add(1, Ordering::Relaxed),
            ticket: Some(ticket),
        })
    }

    /// WebSocket connections open now.
    pub fn websockets_open(&self) -> usize {
        self.admission.open().1
    }

    /// Whether `--trace-frames` follows connection `id`.
    pub fn traces(&self, id: u64) -> bool {
        self.config.trace_frames.is_some_and(|t| t.follows(id))
    }

    /// Wraps upgraded connection `id`'s socket with this server's frame limits and tracing.
    /// `max_message` differs per endpoint (chat 64 KiB, echo 16 MiB); the rest is shared.
    /// `deflate`: what the handshake agreed, if permessage-deflate was negotiated.
    pub fn websocket<S: Socket>(
        &self,
        io: S,
        already_read: &[u8],
        max_message: usize,
        id: u64,
        deflate: Option<Deflate>,
    ) -> WebSocket<S> {
        let limits = Limits {
            max_message,
            max_frame: self.config.max_frame_size,
        };
        let mut ws = WebSocket::new(io, already_read, limits, self.traces(id));
        if deflate.is_some() {
            self.metrics.deflate_connections.inc();
            ws.reader.accept_compressed();
        }
        ws
    }

    /// A chat session's socket (native or Socket.IO, named by `protocol` in `/metrics`): the
    /// chat's message limit, and the session counted, in one place for both wire protocols.
    pub fn chat_websocket<S: Socket>(
        &self,
        io: S,
        already_read: &[u8],
        id: u64,
        deflate: Option<Deflate>,
        protocol: &str,
    ) -> WebSocket<S> {
        let ws = self.websocket(io, already_read, self.config.max_message_size, id, deflate);
        self.metrics.sessions.with_label_values(&[protocol]).inc();
        ws
    }

    /// Closes a connection the way `ending` calls for, and counts the close code sent.
    pub async fn finish_websocket<S: Socket>(
        &self,
        ws: &mut WebSocket<S>,
        ending: Ending,
        limits: &ConnLimits,
    ) {
        if let Some(code) = ws.finish(ending, limits.close_timeout).await {
            self.metrics.count_close_sent(code);
        }
    }

    /// A fresh `guest-<n>` nickname.
    pub fn guest_name(&self) -> String {
        format!("guest-{}", self.next_guest.fetch_add(1, Ordering::Relaxed))
    }
}

/// One open WebSocket connection's place under the connection limits; also its id.
pub struct SlotGuard {
    shared: Arc<Shared>,
    pub id: u64,
    /// Its place in the per-address count (an `Option` only so `drop` can move it out).
    ticket: Option<WebSocketTicket>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.shared.metrics.connections_open.dec();
        if let Some(ticket) = self.ticket.take() {
            self.shared.admission.release(ticket);
        }
    }
}
