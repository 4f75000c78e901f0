//! One chat connection, from welcome to close: a single task that selects on the client's
//! frames, the room's broadcasts, its write queue, its timers and the shutdown signal.
//!
//! One task rather than a reader task and a writer task: half the tasks and half the memory
//! per connection, and no channel between them. It works because every branch of the `select!`
//! is cancel-safe (see [`crate::ws::reader`] and [`crate::ws::writer`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::{Instant, Sleep};

use super::protocol::{parse_request, ClientRequest, RequestError, ServerEvent};
use super::room::{Delivery, Room, Subscription};
use crate::state::{Shared, SlotGuard};
use crate::ws::{close_code, encode_frame, Ending, Message, OpCode, WebSocket};

/// Who is connecting where, from the upgrade request's query string (already validated).
#[derive(Debug, Clone)]
pub struct Params {
    pub room: String,
    pub nick: String,
    /// The last message id the client has; it wants everything after it.
    pub since: Option<u64>,
}

/// Serves one upgraded chat connection until it closes.
///
/// A plain function returning the session's future, rather than an `async fn`: the set-up
/// (wrapping the socket, joining the room, queueing the welcome) runs now, and the future keeps
/// only what the connection needs while it lives. An `async fn` would keep its arguments *and*
/// the locals made from them for the whole connection, which idle connections pay for.
/// Must be called inside a tokio runtime (joining may create a room, which starts a task).
pub fn run<S>(
    io: S,
    already_read: Vec<u8>,
    params: Params,
    slot: SlotGuard,
    shared: Arc<Shared>,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let mut ws = shared.websocket(io, &already_read, shared.config.max_message_size);
    let (membership, entry) = shared.hub.join(&params.room, &params.nick, params.since);
    shared.metrics.rooms.set(shared.hub.room_count() as i64);
    tracing::info!(conn = slot.id, room = %params.room, nick = %params.nick, "chat connection open");
    // From here on the room and nickname live in `membership`; `params` is not kept.
    drop(params);
    // One frame in two pieces: this joiner's part, then the room's shared history.
    let [head, history] = entry.welcome;
    ws.writer.push(head);
    ws.writer.push(history);
    let mut events = entry.events;

    async move {
        let config = &shared.config;
        let mut session = Session {
            shared: &shared,
            conn_id: slot.id,
            nick: membership.nick(),
            room: membership.room(),
            bucket: TokenBucket::new(config.rate_burst),
            strikes: 0,
            last_heard: Instant::now(),
            ping_sent: false,
            last_write_progress: Instant::now(),
        };
        // The loop lives here rather than in a method: an `async fn` would keep its own copy
        // of its arguments, and this future is most of an idle connection's memory.
        let mut timer: Pin<Box<Sleep>> =
            Box::pin(tokio::time::sleep_until(session.next_deadline(&ws)));
        let ending = loop {
            let queue_was_empty = ws.writer.is_empty();
            let step = tokio::select! {
                biased;
                _ = shared.shutdown.cancelled() => {
                    Some(Ending::Close(close_code::GOING_AWAY, "server shutting down".into()))
                }
                read = ws.reader.read_message() => session.on_read(read, &mut ws),
                // Backpressure: a client whose queue is full takes no more events; the channel
                // holds them, and if it falls a whole channel behind it gets a `lagged` notice.
                event = events.recv(), if ws.writer.queued_bytes() < config.write_buffer => {
                    session.on_event(event, &mut events, &mut ws)
                }
                written = ws.writer.flush(), if !ws.writer.is_empty() => {
                    written.err().map(|_| Ending::Gone("write failed"))
                }
                _ = &mut timer => {
                    let ending = session.on_timer(&mut ws);
                    timer.as_mut().reset(session.next_deadline(&ws));
                    ending
                }
            };
            if let Some(ending) = step {
                break ending;
            }
            session.account(&mut ws, queue_was_empty, &mut timer);
        };
        drop(timer);

        // Leave the room before the close handshake, which may take seconds: the others should
        // see `leave` now, and the channel should not keep events for a receiver that is gone.
        tracing::info!(conn = slot.id, room = %membership.room().name(), nick = %membership.nick(), ?ending, "chat connection closed");
        drop(events);
        drop(membership);
        shared.metrics.rooms.set(shared.hub.room_count() as i64);
        // Boxed: the close handshake's state is needed once, at the end, and would otherwise
        // make every idle connection's task bigger by its size.
        let sent = Box::pin(ws.finish(ending.clone(), config.close_timeout)).await;
        if let Some(code) = sent {
            shared
                .metrics
                .close_codes_sent
                .with_label_values(&[&code.to_string()])
                .inc();
        }
        tracing::debug!(conn = slot.id, close_code = ?sent, "close handshake done");
        // Moved in whole by this `drop`: were only `slot.id` used, the block would capture just
        // that field, and the guard, with its connection slot, would be freed at once.
        drop(slot);
    }
}

struct Session<'a> {
    shared: &'a Shared,
    conn_id: u64,
    nick: &'a str,
    room: &'a Arc<Room>,
    bucket: TokenBucket,
    /// Messages dropped for the rate limit since the last one that passed.
    strikes: u32,
    /// When the client last sent anything (a pong included).
    last_heard: Instant,
    /// A ping has been sent since `last_heard`.
    ping_sent: bool,
    /// When the write queue last shrank (or last became non-empty).
    last_write_progress: Instant,
}

impl Session<'_> {
    fn on_read<S>(
        &mut self,
        read: Result<Message, crate::ws::Error>,
        ws: &mut WebSocket<S>,
    ) -> Option<Ending>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let message = match read {
            Ok(message) => message,
            Err(err) => return Some(err.into()),
        };
        self.last_heard = Instant::now();
        self.ping_sent = false;
        match message {
            Message::Text(text) => return self.on_text(&text, ws),
            Message::Binary(_) => {
                return Some(Ending::Close(
                    close_code::UNSUPPORTED_DATA,
                    "chat messages are text".into(),
                ))
            }
            Message::Ping(payload) => ws.writer.push(encode_frame(OpCode::Pong, &payload)),
            Message::Pong(_) => {}
            Message::Close(received) => return Some(Ending::PeerClosed(received)),
        }
        None
    }

    fn on_text<S>(&mut self, text: &str, ws: &mut WebSocket<S>) -> Option<Ending>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = self.shared;
        shared.metrics.messages_received.inc();
        shared.metrics.bytes_in.inc_by(text.len() as u64);
        let (rate, burst) = (shared.config.rate_limit, shared.config.rate_burst);
        if !self.bucket.take(Instant::now(), rate, burst) {
            self.strikes += 1;
            if self.strikes >= shared.config.rate_strikes {
                shared
                    .metrics
                    .dropped_clients
                    .with_label_values(&["flooding"])
                    .inc();
                return Some(Ending::Close(
                    close_code::POLICY_VIOLATION,
                    "rate limit exceeded".into(),
                ));
            }
            if self.strikes == 1 {
                ws.writer
                    .push(ServerEvent::error(RequestError::RateLimited).to_frame());
            }
            return None;
        }
        self.strikes = 0;
        let room = self.room;
        match parse_request(text, shared.config.max_text_len) {
            Ok(ClientRequest::Message(text)) => {
                room.post(self.nick, &text);
            }
            Ok(ClientRequest::Typing) => room.typing(self.nick, self.conn_id),
            Err(error) => ws.writer.push(ServerEvent::error(error).to_frame()),
        }
        None
    }

    /// Queues `first` and everything else already waiting, so one write carries them all.
    fn on_event<S>(
        &mut self,
        first: Result<Delivery, RecvError>,
        events: &mut Subscription,
        ws: &mut WebSocket<S>,
    ) -> Option<Ending>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let write_buffer = self.shared.config.write_buffer;
        let mut next = first;
        loop {
            match next {
                Ok(delivery) if delivery.skip != self.conn_id => ws.writer.push(delivery.frame),
                Ok(_) => {}
                // The channel overwrote `missed` events this client had not read yet. Tell it,
                // and carry on from the oldest event still held (the documented lag policy).
                Err(RecvError::Lagged(missed)) => {
                    self.shared.metrics.lagged_events.inc_by(missed);
                    ws.writer.push(ServerEvent::Lagged { missed }.to_frame());
                }
                Err(RecvError::Closed) => {
                    return Some(Ending::Close(close_code::GOING_AWAY, "room closed".into()))
                }
            }
            if ws.writer.queued_bytes() >= write_buffer {
                return None;
            }
            next = match events.try_recv() {
                Ok(delivery) => Ok(delivery),
                Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
                Err(TryRecvError::Empty) => return None,
            };
        }
    }

    fn on_timer<S>(&mut self, ws: &mut WebSocket<S>) -> Option<Ending>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = &self.shared.config;
        let now = Instant::now();
        if !ws.writer.is_empty() && now >= self.last_write_progress + config.write_timeout {
            self.shared
                .metrics
                .dropped_clients
                .with_label_values(&["slow_consumer"])
                .inc();
            return Some(Ending::Gone("slow consumer: socket unwritable"));
        }
        if now >= self.last_heard + config.idle_timeout {
            self.shared
                .metrics
                .dropped_clients
                .with_label_values(&["idle"])
                .inc();
            return Some(Ending::Close(close_code::GOING_AWAY, "idle timeout".into()));
        }
        if !self.ping_sent && now >= self.last_heard + config.ping_interval {
            ws.writer.push(encode_frame(OpCode::Ping, b"wschat"));
            self.ping_sent = true;
        }
        None
    }

    /// The earliest moment the timer must look again. It may fire early (deadlines only move
    /// later as the client talks and the queue drains); it must never fire late.
    fn next_deadline<S>(&self, ws: &WebSocket<S>) -> Instant {
        let config = &self.shared.config;
        let mut deadline = self.last_heard + config.idle_timeout;
        if !self.ping_sent {
            deadline = deadline.min(self.last_heard + config.ping_interval);
        }
        if !ws.writer.is_empty() {
            deadline = deadline.min(self.last_write_progress + config.write_timeout);
        }
        deadline
    }

    /// Turns the writer's counters into metrics, and starts the write-stall clock when the
    /// queue stops being empty.
    fn account<S>(
        &mut self,
        ws: &mut WebSocket<S>,
        queue_was_empty: bool,
        timer: &mut Pin<Box<Sleep>>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stats = ws.writer.take_stats();
        if stats.writes > 0 {
            let metrics = &self.shared.metrics;
            metrics.write_calls.inc_by(stats.writes);
            metrics.deliveries.inc_by(stats.frames);
            metrics.bytes_out.inc_by(stats.bytes);
            self.last_write_progress = Instant::now();
        } else if queue_was_empty && !ws.writer.is_empty() {
            self.last_write_progress = Instant::now();
            let stall_deadline = self.last_write_progress + self.shared.config.write_timeout;
            if stall_deadline < timer.deadline() {
                timer.as_mut().reset(stall_deadline);
            }
        }
    }
}

/// The per-connection rate limit: `rate` tokens a second, up to `burst` saved. The rate and
/// burst come from the config at each call rather than being copied into every connection.
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(burst: f64) -> Self {
        TokenBucket {
            tokens: burst.max(1.0),
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        if rate <= 0.0 {
            return true; // no limit
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn token_bucket_allows_bursts_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5.0);
        bucket.last = start;
        let passed = (0..20).filter(|_| bucket.take(start, 10.0, 5.0)).count();
        assert_eq!(passed, 5, "the burst");
        assert!(
            !bucket.take(start + Duration::from_millis(50), 10.0, 5.0),
            "half a token"
        );
        assert!(
            bucket.take(start + Duration::from_millis(100), 10.0, 5.0),
            "one token after 1/rate"
        );
        let mut unlimited = TokenBucket::new(1.0);
        assert!((0..1000).all(|_| unlimited.take(start, 0.0, 1.0)));
    }
}
