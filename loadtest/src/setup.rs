//! What every client reads and nobody changes: the run's settings, fixed before the first
//! thread starts, and the per-thread state its clients share.
//!
//! [`Setup`] is built once by [`swarm::run`](crate::swarm::run) and shared through an `Arc`;
//! [`ThreadCtx`] is one per worker thread, reached through an `Rc` and `RefCell`s because only
//! that thread's single-threaded runtime ever touches it (see [`stats`](crate::stats) for why
//! no atomics).

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::cli::Protocol;
use crate::phase::Steady;
use crate::schedule::Plan;
use crate::stats::{ClientResult, ThreadStats};
use crate::target::Targets;

/// Everything a client needs that is the same for the whole run.
#[derive(Debug)]
pub struct Setup {
    /// Roles and schedules.
    pub plan: Plan,
    /// This run's id, in every stamp.
    pub run: u32,
    /// The instant stamps count microseconds from.
    pub epoch: Instant,
    /// Start of the connect ramp.
    pub connect_start: tokio::time::Instant,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Text bytes per message.
    pub payload: usize,
    /// The servers, resolved, and each client's URL.
    pub targets: Targets,
    /// Local addresses to bind to, round-robin by client index; empty = let the kernel choose.
    pub source_addrs: Vec<IpAddr>,
    /// tungstenite settings (read buffer).
    pub ws_config: WebSocketConfig,
    /// Limit on one connect attempt.
    pub connect_timeout: Duration,
    /// Limit on the close handshake.
    pub close_timeout: Duration,
    /// Senders do not receive their own messages.
    pub no_echo: bool,
    /// `SO_RCVBUF` of slow readers (0 = kernel default).
    pub slow_reader_rcvbuf: u32,
}

impl Setup {
    /// The URL client `i` connects to.
    pub fn url_for(&self, i: usize) -> String {
        self.targets.url_for(i, self.plan.role(i).room)
    }

    /// Microseconds since the run's epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Deliveries one message of sender `k` is owed.
    pub fn owed_per_message(&self, steady: &Steady, k: usize) -> u64 {
        let room = self.plan.role(k).room;
        let echo_excluded = u64::from(self.no_echo);
        steady.room_receivers[room].saturating_sub(echo_excluded)
    }
}

/// The state one worker thread's clients share. Only its own thread touches it.
pub struct ThreadCtx {
    /// Run-wide settings.
    pub setup: Arc<Setup>,
    /// This thread's counters.
    pub stats: RefCell<ThreadStats>,
    /// Finished clients.
    pub results: RefCell<Vec<ClientResult>>,
}
