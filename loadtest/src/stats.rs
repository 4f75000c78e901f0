//! Counters and histograms: per thread while running, merged once at the end.
//!
//! Every worker thread owns one [`ThreadStats`] that its clients update through a `RefCell`: the
//! thread runs one single-threaded runtime, so a delivery costs a plain increment and a histogram
//! record, with no atomic, lock or cross-core cache line per message (a shared `AtomicU64` per
//! delivery was the rejected alternative: a million contended increments a second). A ticker
//! task copies the counters to the coordinator a few times a second for the progress display and
//! the drain decision, and each client leaves one [`ClientResult`] for the exact accounting.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::schedule::Role;

/// The shortest time a rate is divided by, seconds: a run stopped at once, or a phase that never
/// ran, then reports rates near zero instead of infinity or NaN (which JSON cannot even carry).
pub const SHORTEST_DIVISOR_SECS: f64 = 1e-3;

/// `n` per second over `secs`, with `secs` floored at [`SHORTEST_DIVISOR_SECS`].
pub fn per_sec(n: f64, secs: f64) -> f64 {
    n / secs.max(SHORTEST_DIVISOR_SECS)
}

/// A histogram of microseconds from 1 µs to one hour at 3 significant digits (about 180 KB).
pub fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What one worker thread's clients have done so far.
#[derive(Clone)]
pub struct ThreadStats {
    /// Latency of every first arrival at a measured receiver, in µs from the scheduled send time.
    pub latency: Histogram<u64>,
    /// The same for the receivers of the largest room; `None` with one room (it would be a
    /// copy of `latency`, recorded twice per delivery).
    pub largest_room_latency: Option<Histogram<u64>>,
    /// How late senders were against their schedule, in µs: the swarm's own delay.
    pub send_lag: Histogram<u64>,
    /// TCP connect plus WebSocket handshake, in µs.
    pub connect_time: Histogram<u64>,
    /// Messages written by this thread's senders.
    pub sent: u64,
    /// First arrivals at this thread's measured receivers.
    pub delivered: u64,
    /// Deliveries owed, summed over the whole room, for what this thread's senders sent less
    /// what the server refused: when every thread's `delivered` adds up to the sum of these, the
    /// drain can end early.
    pub owed: u64,
    /// Clients whose connect attempt is over (connected or failed).
    pub connect_done: usize,
    /// Clients connected.
    pub connected: usize,
    /// Failed connect attempts by kind (see `connection::ConnectError`).
    pub connect_errors: BTreeMap<String, u64>,
    /// Senders that finished their schedule (or died).
    pub senders_done: usize,
    /// Connected measured receivers (slow readers excluded) per room.
    pub room_receivers: Vec<u64>,
    /// Time of the latest first arrival, µs since the run's epoch.
    pub last_delivery_us: u64,
}

impl ThreadStats {
    /// Empty stats for a run with `rooms` rooms.
    pub fn new(rooms: usize) -> ThreadStats {
        ThreadStats {
            latency: micros_histogram(),
            largest_room_latency: (rooms > 1).then(micros_histogram),
            send_lag: micros_histogram(),
            connect_time: micros_histogram(),
            sent: 0,
            delivered: 0,
            owed: 0,
            connect_done: 0,
            connected: 0,
            connect_errors: BTreeMap::new(),
            senders_done: 0,
            room_receivers: vec![0; rooms],
            last_delivery_us: 0,
        }
    }

    /// Adds another thread's figures to these.
    pub fn merge(&mut self, other: &ThreadStats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        if let (Some(mine), Some(theirs)) =
            (&mut self.largest_room_latency, &other.largest_room_latency)
        {
            let _ = mine.add(theirs);
        }
        let _ = self.send_lag.add(&other.send_lag);
        let _ = self.connect_time.add(&other.connect_time);
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.owed += other.owed;
        self.connect_done += other.connect_done;
        self.connected += other.connected;
        for (kind, n) in &other.connect_errors {
            *self.connect_errors.entry(kind.clone()).or_default() += n;
        }
        self.senders_done += other.senders_done;
        for (mine, theirs) in self.room_receivers.iter_mut().zip(&other.room_receivers) {
            *mine += theirs;
        }
        self.last_delivery_us = self.last_delivery_us.max(other.last_delivery_us);
    }
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Never connected.
    NotConnected,
    /// A close frame arrived with this code (1005 when it had none).
    Code(u16),
    /// The TCP stream ended without a close frame.
    Eof,
    /// A read or protocol error, by kind.
    Error(String),
    /// No close reply within `--close-timeout`.
    Timeout,
}

impl Closed {
    /// The key this outcome is tallied under in the report.
    pub fn key(&self) -> String {
        match self {
            Closed::NotConnected => "not_connected".into(),
            Closed::Code(c) => c.to_string(),
            Closed::Eof => "eof_without_close".into(),
            Closed::Error(kind) => format!("error_{kind}"),
            Closed::Timeout => "close_timeout".into(),
        }
    }
}

/// Everything one client saw, for the exact accounting at the end.
#[derive(Clone, Debug)]
pub struct ClientResult {
    /// Client index.
    pub index: usize,
    /// What it was asked to do.
    pub role: Role,
    /// Whether its connection was established.
    pub connected: bool,
    /// Messages it wrote (senders).
    pub sent: u64,
    /// `error` events the server sent it, by code. Not one per refused message: a server may
    /// announce a run of refusals once (wschat says `rate_limited` once per run of strikes).
    pub refusal_notices: BTreeMap<String, u64>,
    /// Per sender slot of its room, which messages arrived (see `Account::into_seen`).
    pub seen: Vec<Vec<u64>>,
    /// First arrivals of scheduled messages.
    pub delivered: u64,
    /// Repeated arrivals.
    pub duplicates: u64,
    /// Arrivals after a later message of the same sender.
    pub out_of_order: u64,
    /// Stamped messages of this run outside its room's schedule.
    pub unexpected: u64,
    /// Stamped messages of another run (another swarm on the same server).
    pub foreign: u64,
    /// `lagged` notices received, and the events they said were skipped.
    pub lagged_notices: u64,
    /// Sum of `missed` over the lagged notices.
    pub lagged_missed: u64,
    /// How the connection ended.
    pub closed: Closed,
    /// Whether it ended before the swarm's own close at the end of the run.
    pub closed_early: bool,
}

impl ClientResult {
    /// A client that has not connected yet.
    pub fn new(index: usize, role: Role) -> ClientResult {
        ClientResult {
            index,
            role,
            connected: false,
            sent: 0,
            refusal_notices: BTreeMap::new(),
            seen: Vec::new(),
            delivered: 0,
            duplicates: 0,
            out_of_order: 0,
            unexpected: 0,
            foreign: 0,
            lagged_notices: 0,
            lagged_missed: 0,
            closed: Closed::NotConnected,
            closed_early: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = ThreadStats::new(2);
        let mut b = ThreadStats::new(2);
        a.latency.record(100).unwrap();
        b.latency.record(200).unwrap();
        a.delivered = 1;
        b.delivered = 2;
        b.room_receivers[1] = 5;
        b.connect_errors.insert("refused".into(), 3);
        b.last_delivery_us = 9;
        a.merge(&b);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.delivered, 3);
        assert_eq!(a.room_receivers, [0, 5]);
        assert_eq!(a.connect_errors["refused"], 3);
        assert_eq!(a.last_delivery_us, 9);
    }
}
