//! What every connection shares: settings, rooms, metrics and the shutdown signal.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::{Hub, RoomConfig};
use crate::metrics::Metrics;
use crate::ws::{Limits, WebSocket};
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
    /// The connection limit in force (`--max-connections`, or derived from the file limit).
    pub max_connections: usize,
    websockets_open: AtomicUsize,
    next_conn_id: AtomicU64,
    next_guest: AtomicU64,
}

impl Shared {
    pub fn new(config: Config, max_connections: usize) -> Arc<Shared> {
        let room_config = RoomConfig {
            history: config.history,
            history_bytes: config.history_bytes,
            channel_capacity: config.channel_capacity,
            presence_threshold: config.presence_threshold,
            welcome_users: config.welcome_users,
        };
        Arc::new(Shared {
            hub: Hub::with_max_rooms(room_config, config.presence_interval, config.max_rooms),
            metrics: Metrics::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            max_connections,
            websockets_open: AtomicUsize::new(0),
            next_conn_id: AtomicU64::new(1),
            next_guest: AtomicU64::new(1),
            config,
        })
    }

    /// Claims a WebSocket slot, or `None` at the limit. The slot is freed when the guard drops.
    pub fn claim_slot(self: &Arc<Self>) -> Option<SlotGuard> {
        let taken =
            self.websockets_open
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                    (open < self.max_connections).then_some(open + 1)
                });
        taken.ok().map(|_| {
            self.metrics.connections_open.inc();
            self.metrics.connections_total.inc();
            SlotGuard {
                shared: Arc::clone(self),
                id: self.next_conn_id.fetch_add(1, Ordering::Relaxed),
            }
        })
    }

    /// Wraps an upgraded socket with this server's frame limits and tracing. `max_message`
    /// differs per endpoint (chat 64 KiB, echo 16 MiB); the rest is shared.
    pub fn websocket<S: AsyncRead + AsyncWrite>(
        &self,
        io: S,
        already_read: &[u8],
        max_message: usize,
    ) -> WebSocket<S> {
        let limits = Limits {
            max_message,
            max_frame: self.config.max_frame_size,
        };
        WebSocket::new(io, already_read, limits, self.config.trace_frames)
    }

    /// A fresh `guest-<n>` nickname.
    pub fn guest_name(&self) -> String {
        format!("guest-{}", self.next_guest.fetch_add(1, Ordering::Relaxed))
    }
}

/// One open WebSocket connection's place under the connection limit; also its id.
pub struct SlotGuard {
    shared: Arc<Shared>,
    pub id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.shared.websockets_open.fetch_sub(1, Ordering::AcqRel);
        self.shared.metrics.connections_open.dec();
    }
}
