//! The duties RFC 6455 gives every connection, whatever it speaks: answering pings, pinging a
//! quiet peer, ending an idle or unwritable one, and the byte and rate budgets that keep one
//! peer from costing the server more than its share. [`serve`] runs a connection's whole life
//! up to its close; the close handshake itself is [`super::conn`]'s.
//!
//! A session (the chat, `/echo`) implements [`Session`] and sees only data messages and its own
//! outside events. Putting the duties here, once, is what lets a second wire protocol be added
//! without copying the ping timer.
//!
//! One task per connection, not a reader task and a writer task joined by a channel: half the
//! tasks, half the memory, and no second queue. It works because every branch of the loop's
//! `select!` is cancel-safe (see [`super::reader`] and [`super::writer`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::conn::{Ending, Socket, WebSocket};
use super::frame::{close_code, encode_frame, OpCode};
use super::reader::Message;
use super::writer::{FrameWriter, Outbox, WriteStats};

/// Why the connection layer ended a connection on its own initiative (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Over the frame rate for `strikes` frames in a row (close 1008).
    Flooding,
    /// Frames queued and the socket unwritable for the write timeout.
    SlowConsumer,
    /// Nothing from the peer, not even a pong, for the idle timeout (close 1001).
    Idle,
    /// The session's permission ended (a token's `exp`; the session's own
    /// [`Session::on_deadline`] reports it).
    Expired,
}

impl Dropped {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::Flooding => "flooding",
            Dropped::SlowConsumer => "slow_consumer",
            Dropped::Idle => "idle",
            Dropped::Expired => "expired",
        }
    }
}

/// A complete data message from the peer. Control frames never reach a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Text(String),
    Binary(Bytes),
}

/// The budgets and timers of one kind of connection. Built once per endpoint from the server's
/// configuration and shared by reference, so a connection copies none of it.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Bytes that may wait in the outbox. At or over it the connection takes neither frames from
    /// the peer nor events for it, so its memory is this budget plus one message in progress.
    pub write_budget: usize,
    /// Time the outbox may stay non-empty without a byte written before the peer is dropped.
    pub write_timeout: Duration,
    /// Time without a frame from the peer before we ping it.
    pub ping_interval: Duration,
    /// Time without a frame from the peer (a pong included) before we close with 1001.
    pub idle_timeout: Duration,
    /// Time to wait for the peer's half of the close handshake.
    pub close_timeout: Duration,
    /// Frames (data and control alike) the peer may send per second, sustained; 0 = no limit.
    pub rate: f64,
    /// Frames the peer may send at once above `rate`.
    pub burst: f64,
    /// Frames refused in a row after which the peer is closed with 1008.
    pub strikes: u32,
}

/// What a connection speaks on top of RFC 6455: it receives data messages and, optionally,
/// events from elsewhere (a room's broadcast), and queues frames in reply.
pub trait Session {
    /// Something from outside the connection to be turned into frames for the peer.
    type Event;

    /// Waits for the next outside event. Must be cancel-safe: the loop drops it whenever another
    /// branch is ready first. A session with no outside events returns `std::future::pending()`.
    fn next_event(&mut self) -> impl Future<Output = Self::Event> + Send;

    /// A complete data message from the peer. `None` carries on; `Some` ends the connection.
    fn on_data(&mut self, data: Data, out: &mut Outbox) -> Option<Ending>;

    /// An outside event. Not called while the outbox is over its budget.
    fn on_event(&mut self, event: Self::Event, out: &mut Outbox) -> Option<Ending>;

    /// A data message was refused by the rate limit, the first of a run of refusals: the session
    /// may tell the peer (once, so a flooder is not fed a reply per frame).
    fn on_rate_limited(&mut self, _out: &mut Outbox) {}

    /// The connection layer is ending the connection for `_why`.
    fn on_dropped(&mut self, _why: Dropped) {}

    /// Writes completed since the last call.
    fn on_written(&mut self, _stats: WriteStats) {}

    /// The session's own next deadline, if it keeps one (Socket.IO's heartbeat and connect
    /// timeout). It shares the connection's one timer rather than adding a second `Sleep` to
    /// every connection's future. It may move later freely; if a call moves it earlier, the
    /// timer is pulled in after that step.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// The timer fired at or after [`Session::deadline`]. `Some` ends the connection.
    fn on_deadline(&mut self, _now: Instant, _out: &mut Outbox) -> Option<Ending> {
        None
    }
}

/// Serves one connection until it must end: frames from the peer go to `session` (control
/// frames are answered here), the session's events are queued, the outbox is written, and the
/// timers and budgets are kept. Returns how to close; the caller runs [`WebSocket::finish`]
/// after releasing whatever the session holds (a room membership should not wait for the close
/// handshake).
///
/// A plain function returning an `async move` block rather than an `async fn`: an `async fn`
/// keeps its arguments and its own copies of them side by side for the whole connection.
#[allow(clippy::manual_async_fn)] // on purpose: see the paragraph above
pub fn serve<'a, S, H>(
    ws: &'a mut WebSocket<S>,
    session: &'a mut H,
    limits: &'a ConnLimits,
    shutdown: &'a CancellationToken,
) -> impl Future<Output = Ending> + 'a
where
    S: Socket,
    H: Session,
{
    async move {
        let mut duties = Duties::new(limits);
        let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep_until(earliest(
            duties.next_deadline(limits, &ws.writer),
            session.deadline(),
        )));
        loop {
            // Section 5.5.3 lets an endpoint answer only the latest of several pings. The pong
            // waits outside the outbox until it is empty, so a peer that pings and never reads
            // holds at most one pong here, not one per ping.
            if ws.writer.is_empty() {
                if let Some(pong) = duties.pong.take() {
                    ws.writer.push(*pong);
                }
            }
            let queue_was_empty = ws.writer.is_empty();
            let under_budget = ws.writer.queued_bytes() < limits.write_budget;
            // `biased`: branches are polled in this order, every turn (without it `select!` starts
            // at a random branch, which is fair but makes the order, and so the batching, a matter
            // of chance). Shutdown and the timer come first so no stream of input can starve them
            // (the write-stall and idle deadlines fire however busy the peer keeps us); writing
            // comes before reading so a peer that sends without pause still gets its replies;
            // outside events come last, and `on_event` drains all that are waiting, so the next
            // turn writes them in one call. That is the batching: an event is never written on
            // the turn it is queued, but on the next, together with everything queued by then.
            // The socket's two directions, borrowed apart for this turn (see [`Socket`]) and
            // moved into the two futures that use them.
            let (from_peer, to_peer) = ws.io.halves();
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    Some(Ending::Close(close_code::GOING_AWAY, "server shutting down".into()))
                }
                _ = &mut timer => {
                    let ending = duties.on_timer(limits, &mut ws.writer);
                    if let Some((why, _)) = &ending {
                        session.on_dropped(*why);
                    }
                    let now = Instant::now();
                    let ending = match ending {
                        Some((_, ending)) => Some(ending),
                        None if session.deadline().is_some_and(|d| d <= now) => {
                            session.on_deadline(now, &mut ws.writer.outbox)
                        }
                        None => None,
                    };
                    timer.as_mut().reset(earliest(
                        duties.next_deadline(limits, &ws.writer),
                        session.deadline(),
                    ));
                    ending
                }
                written = ws.writer.flush(to_peer), if !ws.writer.is_empty() => {
                    written.err().map(|_| Ending::Gone("write failed"))
                }
                // Over budget, the peer's frames wait in its socket (and then in its own send
                // buffer): TCP's flow control, not our memory, holds what it sends.
                read = ws.reader.read_message(from_peer), if under_budget => {
                    duties.on_read(read, session, &mut ws.writer.outbox, limits)
                }
                event = session.next_event(), if under_budget => {
                    session.on_event(event, &mut ws.writer.outbox)
                }
            };
            if let Some(ending) = step {
                return ending;
            }
            let stats = ws.writer.take_stats();
            if stats.writes > 0 {
                session.on_written(stats);
            }
            duties.after_step(limits, stats, queue_was_empty, &ws.writer, &mut timer);
            if let Some(deadline) = session.deadline() {
                if deadline < timer.deadline() {
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// The state behind the connection's duties. Lives in [`serve`]'s future, so an idle connection
/// pays for it once, with no task or timer of its own besides the one `Sleep`.
struct Duties {
    /// When the peer last sent anything (a pong included).
    last_heard: Instant,
    /// A ping has been sent since `last_heard`.
    ping_sent: bool,
    /// When the outbox last shrank, or last became non-empty: the write-stall clock.
    last_write_progress: Instant,
    /// The answer to the latest ping, not yet queued. Boxed: pings are rare and the slot is in
    /// every connection's future (8 bytes, not 32).
    pong: Option<Box<Bytes>>,
    /// The rate limit's tokens; its clock is `last_heard`, which moves on every frame too.
    tokens: f64,
    /// Frames refused by the rate limit since the last one that passed.
    strikes: u32,
}

impl Duties {
    fn new(limits: &ConnLimits) -> Self {
        let now = Instant::now();
        Duties {
            last_heard: now,
            ping_sent: false,
            last_write_progress: now,
            pong: None,
            tokens: limits.burst.max(1.0),
            strikes: 0,
        }
    }

    fn on_read<H: Session>(
        &mut self,
        read: Result<Message, super::Error>,
        session: &mut H,
        out: &mut Outbox,
        limits: &ConnLimits,
    ) -> Option<Ending> {
        let message = match read {
            Ok(message) => message,
            Err(err) => return Some(err.into()),
        };
        let now = Instant::now();
        let since_last = now.saturating_duration_since(self.last_heard);
        self.last_heard = now;
        self.ping_sent = false;
        // Every frame costs a token, control frames included: pings cost a pong each, and a
        // limit that counted only data would leave a ping flood free.
        let allowed = matches!(message, Message::Close(_))
            || take_token(&mut self.tokens, since_last, limits.rate, limits.burst);
        if !allowed {
            self.strikes += 1;
            if self.strikes >= limits.strikes {
                session.on_dropped(Dropped::Flooding);
                return Some(Ending::Close(
                    close_code::POLICY_VIOLATION,
                    "rate limit exceeded".into(),
                ));
            }
            if self.strikes == 1 && matches!(message, Message::Text(_) | Message::Binary(_)) {
                session.on_rate_limited(out);
            }
            return None;
        }
        self.strikes = 0;
        match message {
            Message::Text(text) => session.on_data(Data::Text(text), out),
            Message::Binary(data) => session.on_data(Data::Binary(data), out),
            Message::Ping(payload) => {
                self.pong = Some(Box::new(encode_frame(OpCode::Pong, &payload)));
                None
            }
            Message::Pong(_) => None,
            Message::Close(received) => Some(Ending::PeerClosed(received)),
        }
    }

    /// Checks the deadlines; pings a quiet peer. Returns an ending and why, when one is due.
    fn on_timer(
        &mut self,
        limits: &ConnLimits,
        writer: &mut FrameWriter,
    ) -> Option<(Dropped, Ending)> {
        let now = Instant::now();
        if !writer.is_empty() && now >= self.last_write_progress + limits.write_timeout {
            return Some((
                Dropped::SlowConsumer,
                Ending::Gone("slow consumer: socket unwritable"),
            ));
        }
        if now >= self.last_heard + limits.idle_timeout {
            return Some((
                Dropped::Idle,
                Ending::Close(close_code::GOING_AWAY, "idle timeout".into()),
            ));
        }
        if !self.ping_sent && now >= self.last_heard + limits.ping_interval {
            writer.push(encode_frame(OpCode::Ping, b"wschat"));
            self.ping_sent = true;
        }
        None
    }

    /// The earliest moment the timer must look again. It may fire early (deadlines only move
    /// later as the peer talks and the outbox drains); it must never fire late.
    fn next_deadline(&self, limits: &ConnLimits, writer: &FrameWriter) -> Instant {
        let mut deadline = self.last_heard + limits.idle_timeout;
        if !self.ping_sent {
            deadline = deadline.min(self.last_heard + limits.ping_interval);
        }
        if !writer.is_empty() {
            deadline = deadline.min(self.last_write_progress + limits.write_timeout);
        }
        deadline
    }

    /// The write-stall clock: it restarts whenever bytes are written, and starts when the outbox
    /// stops being empty; the timer is pulled in if the stall deadline is now the earliest.
    ///
    /// The whole slow-consumer timeline: frames queue (clock starts here) → the socket takes
    /// nothing → at `write_budget` the connection stops taking events and frames (see [`serve`])
    /// → the timer fires at `last_write_progress + write_timeout` → [`Duties::on_timer`] drops
    /// the peer. Any byte written restarts the clock.
    fn after_step(
        &mut self,
        limits: &ConnLimits,
        stats: WriteStats,
        queue_was_empty: bool,
        writer: &FrameWriter,
        timer: &mut Pin<Box<Sleep>>,
    ) {
        if stats.writes > 0 {
            self.last_write_progress = Instant::now();
        } else if queue_was_empty && !writer.is_empty() {
            self.last_write_progress = Instant::now();
            let stall_deadline = self.last_write_progress + limits.write_timeout;
            if stall_deadline < timer.deadline() {
                timer.as_mut().reset(stall_deadline);
            }
        }
    }
}

/// The earlier of the connection's deadline and the session's, if it has one.
fn earliest(connection: Instant, session: Option<Instant>) -> Instant {
    session.map_or(connection, |session| session.min(connection))
}

/// The per-connection rate limit, a token bucket: `rate` tokens a second, up to `burst` saved;
/// `since_last` is the time since the last frame (when tokens were last counted). Takes one
/// token if there is one. The rate and burst come from [`ConnLimits`] at each call rather than
/// being copied into every connection.
fn take_token(tokens: &mut f64, since_last: Duration, rate: f64, burst: f64) -> bool {
    if rate <= 0.0 {
        return true; // no limit
    }
    *tokens = (*tokens + since_last.as_secs_f64() * rate).min(burst.max(1.0));
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests;
