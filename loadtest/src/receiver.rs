//! The counting side of a client: read frames, tell stamps from notices, count each once.
//!
//! Reading stays cheap: tungstenite reads up to `--read-buffer` bytes per system call and hands
//! out the frames in it without copying; [`payload`] finds the stamp with a
//! byte search; counting is a bit set ([`Account`]) and a histogram record on the thread's own
//! stats. Everything a client learns ends in its [`ClientResult`], for the exact accounting
//! across receivers at the end ([`tally::summarize`](crate::tally::summarize)).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, Stream, StreamExt};
use tokio::sync::watch;
use tokio::time::sleep;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::accounting::{Account, Verdict};
use crate::cli::Protocol;
use crate::connection::{error_kind, SharedSink};
use crate::payload::{self, Incoming, Stamp};
use crate::phase::Phase;
use crate::schedule::Role;
use crate::setup::ThreadCtx;
use crate::stats::{ClientResult, Closed};

/// The counting side of a client.
pub struct Receiver<'a> {
    /// The thread's shared state (settings, counters).
    ctx: &'a ThreadCtx,
    /// This client's room and role.
    role: Role,
    /// This client's index (its sender id, if it sends).
    index: usize,
    /// Whether it is a measured receiver of the largest room of several, whose latency is also
    /// recorded apart.
    in_largest_room: bool,
    /// Created at the first stamped message: the plan is fixed by then, since senders only
    /// send once the steady plan is published.
    account: Option<Account>,
    /// Stamped messages of another run.
    foreign: u64,
    /// `lagged` notices received.
    lagged_notices: u64,
    /// Sum of their `missed`.
    lagged_missed: u64,
    /// `error` events received, by code.
    refused: BTreeMap<String, u64>,
    /// How the connection ended.
    pub closed: Closed,
    /// Whether it ended before the swarm closed it.
    pub closed_early: bool,
    /// The run's phase, read when a refusal needs the steady plan.
    phase: watch::Receiver<Phase>,
}

impl<'a> Receiver<'a> {
    /// A receiver for client `index` that has counted nothing yet.
    pub fn new(
        ctx: &'a ThreadCtx,
        role: Role,
        index: usize,
        phase: watch::Receiver<Phase>,
    ) -> Receiver<'a> {
        let layout = &ctx.setup.plan.layout;
        Receiver {
            ctx,
            role,
            index,
            in_largest_room: ctx.setup.plan.rooms > 1
                && role.room == layout.largest()
                && !role.slow,
            account: None,
            foreign: 0,
            lagged_notices: 0,
            lagged_missed: 0,
            refused: BTreeMap::new(),
            closed: Closed::NotConnected,
            closed_early: false,
            phase,
        }
    }

    /// Counts one text (or binary) frame. Returns whether it was a Socket.IO ping, which the
    /// client must answer.
    fn on_frame(&mut self, frame: &[u8]) -> bool {
        let setup = &*self.ctx.setup;
        let incoming = match (setup.protocol, std::str::from_utf8(frame)) {
            (Protocol::Raw, _) => payload::parse_raw(frame),
            (Protocol::Chat, Ok(s)) => payload::parse_chat(s),
            (Protocol::Socketio, Ok(s)) => payload::parse_socketio(s),
            (_, Err(_)) => Incoming::Other,
        };
        match incoming {
            Incoming::Stamp(stamp) => self.on_stamp(stamp),
            Incoming::Lagged(n) => {
                self.lagged_notices += 1;
                self.lagged_missed += n;
            }
            Incoming::Error(code) => self.on_refused(&code),
            Incoming::Ping => return true,
            Incoming::Other => {}
        }
        false
    }

    fn on_stamp(&mut self, stamp: Stamp) {
        let setup = &*self.ctx.setup;
        if stamp.run != setup.run {
            self.foreign += 1;
            return;
        }
        let plan = &setup.plan;
        let account = self
            .account
            .get_or_insert_with(|| Account::new(plan, self.role.room));
        let verdict = account.record(plan, stamp.sender as usize, stamp.seq);
        if verdict == Verdict::Fresh && !self.role.slow {
            let now = setup.now_us();
            let latency = now.saturating_sub(stamp.due_us).max(1);
            let mut stats = self.ctx.stats.borrow_mut();
            stats.delivered += 1;
            stats.latency.saturating_record(latency);
            if self.in_largest_room {
                if let Some(h) = &mut stats.largest_room_latency {
                    h.saturating_record(latency);
                }
            }
            stats.last_delivery_us = now;
        }
    }

    /// The server refused at least one of our messages: its receivers are owed at least one
    /// message less (the exact count is settled at the end, see `tally::summarize`).
    fn on_refused(&mut self, code: &str) {
        *self.refused.entry(code.to_string()).or_default() += 1;
        if !self.role.sender {
            return;
        }
        let setup = &*self.ctx.setup;
        let steady = self.phase.borrow().steady().cloned();
        if let Some(steady) = steady {
            let owed = setup.owed_per_message(&steady, self.index);
            let mut stats = self.ctx.stats.borrow_mut();
            stats.owed = stats.owed.saturating_sub(owed);
        }
    }

    /// Hands what this receiver counted to the client's result.
    pub fn into_result(self, r: &mut ClientResult) {
        if let Some(a) = self.account {
            r.delivered = a.delivered;
            r.duplicates = a.duplicates;
            r.out_of_order = a.out_of_order;
            r.unexpected = a.unexpected;
            r.seen = a.into_seen();
        }
        r.foreign = self.foreign;
        r.lagged_notices = self.lagged_notices;
        r.lagged_missed = self.lagged_missed;
        r.refusal_notices = self.refused;
        r.closed = self.closed;
        r.closed_early = self.closed_early;
    }
}

/// Reads until the server's close reply or `limit`.
pub async fn finish<S>(stream: &mut S, rx: &mut Receiver<'_>, limit: Duration) -> Closed
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    read_until(stream, rx, sleep(limit), None)
        .await
        .unwrap_or(Closed::Timeout)
}

/// Reads and counts frames until the stream ends (returns how) or `until` resolves (`None`).
/// With `pongs` (`--protocol socketio`), each Engine.IO ping is answered on it.
pub async fn read_until<S>(
    stream: &mut S,
    rx: &mut Receiver<'_>,
    until: impl Future<Output = ()>,
    pongs: Option<&SharedSink>,
) -> Option<Closed>
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    tokio::pin!(until);
    let mut close_code = None;
    loop {
        tokio::select! {
            // The socket first; tokio's cooperative budget still makes a busy socket yield now
            // and then, so `until` is seen within a few hundred frames.
            biased;
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if rx.on_frame(t.as_bytes()) {
                        if let Some(mut sink) = pongs.cloned() {
                            // A failed pong shows up as the read error that follows.
                            let _ = sink.send(Message::text("3")).await;
                        }
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    rx.on_frame(&b);
                }
                Some(Ok(Message::Close(frame))) => {
                    // tungstenite queues the reply; keep polling so it is written.
                    close_code = Some(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => {} // ping, pong: tungstenite answers pings itself
                Some(Err(WsError::ConnectionClosed)) | None => {
                    return Some(close_code.map_or(Closed::Eof, Closed::Code));
                }
                Some(Err(e)) => {
                    return Some(match close_code {
                        Some(code) => Closed::Code(code),
                        None => Closed::Error(error_kind(&e)),
                    });
                }
            },
            _ = &mut until => return None,
        }
    }
}
