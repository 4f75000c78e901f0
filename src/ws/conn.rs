//! A WebSocket connection and the duties RFC 6455 gives every connection, whatever it speaks:
//! answering pings, pinging a quiet peer, ending an idle or unwritable one, the close handshake,
//! and the byte and rate budgets that keep one peer from costing the server more than its share.
//!
//! A session (the chat, `/echo`) implements [`Session`] and sees only data messages and its own
//! outside events; [`serve`] runs the loop that owns everything else. Putting the duties here,
//! once, is what lets a second wire protocol be added without copying the ping timer.
//!
//! One task per connection, not a reader task and a writer task joined by a channel: half the
//! tasks, half the memory, and no second queue. It works because every branch of the loop's
//! `select!` is cancel-safe (see [`super::reader`] and [`super::writer`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::frame::{close_code, encode_close, encode_frame, OpCode};
use super::reader::{Limits, Message, MessageReader};
use super::writer::{FrameWriter, Outbox, WriteStats};

/// How a session's loop ended, and so how its connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The peer sent a close frame (with its code and reason, if any): answer it.
    PeerClosed(Option<(u16, String)>),
    /// We close, with this code and reason.
    Close(u16, String),
    /// The socket is gone or unusable (reset, EOF, stalled writes): just drop it.
    Gone(&'static str),
}

impl From<super::Error> for Ending {
    /// A read error becomes the close its variant calls for (section 7.1.7: _Fail the
    /// WebSocket Connection_), or nothing if the socket itself failed.
    fn from(err: super::Error) -> Self {
        match err.close_code() {
            Some(code) => Ending::Close(code, err.to_string()),
            None => Ending::Gone("connection lost"),
        }
    }
}

/// Why the connection layer ended a connection on its own initiative (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Over the frame rate for `strikes` frames in a row (close 1008).
    Flooding,
    /// Frames queued and the socket unwritable for the write timeout.
    SlowConsumer,
    /// Nothing from the peer, not even a pong, for the idle timeout (close 1001).
    Idle,
}

impl Dropped {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::Flooding => "flooding",
            Dropped::SlowConsumer => "slow_consumer",
            Dropped::Idle => "idle",
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
}

pub struct WebSocket<S> {
    pub reader: MessageReader<ReadHalf<S>>,
    pub writer: FrameWriter<WriteHalf<S>>,
}

impl<S: AsyncRead + AsyncWrite> WebSocket<S> {
    /// Wraps an upgraded connection. `already_read`: bytes the HTTP layer read past the
    /// handshake, which belong to the first frame.
    pub fn new(io: S, already_read: &[u8], limits: Limits, trace: bool) -> Self {
        // `tokio::io::split` (not `TcpStream::into_split`) keeps this generic, so unit tests can
        // drive a connection with a scripted `tokio_test::io::Mock`.
        let (read, write) = tokio::io::split(io);
        WebSocket {
            reader: MessageReader::new(read, already_read, limits, trace),
            writer: FrameWriter::new(write, trace),
        }
    }

    /// Closes the connection the way `ending` calls for. Returns the close code sent, if any.
    pub async fn finish(&mut self, ending: Ending, timeout: Duration) -> Option<u16> {
        match ending {
            Ending::PeerClosed(received) => {
                let code = received.as_ref().map(|(code, _)| *code);
                self.answer_close(received, timeout).await;
                code
            }
            Ending::Close(code, reason) => {
                self.close(code, &reason, timeout).await;
                Some(code)
            }
            Ending::Gone(_) => None,
        }
    }

    /// Answers a close frame from the peer and closes the TCP connection.
    ///
    /// Section 5.5.1: "the endpoint MUST send a Close frame in response ... typically echoing the
    /// status code it received". Section 7.1.1: the server should close TCP first.
    pub async fn answer_close(&mut self, received: Option<(u16, String)>, timeout: Duration) {
        let frame = match received {
            Some((code, _)) => encode_close(code, ""),
            None => encode_frame(OpCode::Close, b""),
        };
        self.writer.push(frame);
        let _ = tokio::time::timeout(timeout, self.writer.shutdown()).await;
    }

    /// Starts the close handshake with `code`, waits up to `timeout` for the peer's answer, then
    /// closes the TCP connection.
    ///
    /// After a protocol error the reader is finished: then, instead of waiting for a close frame,
    /// it reads and discards until the peer hangs up. Dropping a socket with unread input makes
    /// the kernel send a reset, which can destroy our close frame before the peer reads it.
    pub async fn close(&mut self, code: u16, reason: &str, timeout: Duration) {
        self.writer.push(encode_close(code, reason));
        let handshake = async {
            if self.writer.flush().await.is_err() {
                return;
            }
            if self.reader.is_finished() {
                let _ = self.writer.shutdown().await;
                self.reader.discard_until_eof().await;
                return;
            }
            while let Ok(message) = self.reader.read_message().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
            let _ = self.writer.shutdown().await;
        };
        let _ = tokio::time::timeout(timeout, handshake).await;
    }
}

/// Serves one connection until it must end: frames from the peer go to `session` (control
/// frames are answered here), the session's events are queued, the outbox is written, and the
/// timers and budgets are kept. Returns how to close; the caller runs [`WebSocket::finish`]
/// after releasing whatever the session holds (a room membership should not wait for the close
/// handshake).
pub async fn serve<S, H>(
    ws: &mut WebSocket<S>,
    session: &mut H,
    limits: &ConnLimits,
    shutdown: &CancellationToken,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Session,
{
    let mut duties = Duties::new(limits);
    let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep_until(
        duties.next_deadline(limits, &ws.writer),
    ));
    loop {
        // Section 5.5.3 lets an endpoint answer only the latest of several pings. The pong
        // waits outside the outbox until it is empty, so a peer that pings and never reads
        // holds at most one pong here, not one per ping.
        if ws.writer.is_empty() {
            if let Some(pong) = duties.pong.take() {
                ws.writer.push(pong);
            }
        }
        let queue_was_empty = ws.writer.is_empty();
        let under_budget = ws.writer.queued_bytes() < limits.write_budget;
        // `biased`: branches are polled in this order, every turn. Shutdown and the timer come
        // first so no stream of input can starve them (the write-stall and idle deadlines fire
        // however busy the peer keeps us); writing comes before reading so a peer that sends
        // without pause still gets its replies; outside events come last, and `on_event` drains
        // all that are waiting, so the next turn writes them in one call.
        let step = tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                Some(Ending::Close(close_code::GOING_AWAY, "server shutting down".into()))
            }
            _ = &mut timer => {
                let ending = duties.on_timer(limits, &mut ws.writer);
                timer.as_mut().reset(duties.next_deadline(limits, &ws.writer));
                if let Some((why, _)) = &ending {
                    session.on_dropped(*why);
                }
                ending.map(|(_, ending)| ending)
            }
            written = ws.writer.flush(), if !ws.writer.is_empty() => {
                written.err().map(|_| Ending::Gone("write failed"))
            }
            // Over budget, the peer's frames wait in its socket (and then in its own send
            // buffer): TCP's flow control, not our memory, holds what it sends.
            read = ws.reader.read_message(), if under_budget => {
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
    /// The answer to the latest ping, not yet queued.
    pong: Option<Bytes>,
    bucket: TokenBucket,
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
            bucket: TokenBucket::new(limits.burst, now),
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
        self.last_heard = now;
        self.ping_sent = false;
        // Every frame costs a token, control frames included: pings cost a pong each, and a
        // limit that counted only data would leave a ping flood free.
        let allowed = matches!(message, Message::Close(_))
            || self.bucket.take(now, limits.rate, limits.burst);
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
                self.pong = Some(encode_frame(OpCode::Pong, &payload));
                None
            }
            Message::Pong(_) => None,
            Message::Close(received) => Some(Ending::PeerClosed(received)),
        }
    }

    /// Checks the deadlines; pings a quiet peer. Returns an ending and why, when one is due.
    fn on_timer<W>(
        &mut self,
        limits: &ConnLimits,
        writer: &mut FrameWriter<W>,
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
    fn next_deadline<W>(&self, limits: &ConnLimits, writer: &FrameWriter<W>) -> Instant {
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
    fn after_step<W>(
        &mut self,
        limits: &ConnLimits,
        stats: WriteStats,
        queue_was_empty: bool,
        writer: &FrameWriter<W>,
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

/// The per-connection rate limit: `rate` tokens a second, up to `burst` saved. The rate and
/// burst come from [`ConnLimits`] at each call rather than being copied into every connection.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(burst: f64, now: Instant) -> Self {
        TokenBucket {
            tokens: burst.max(1.0),
            last: now,
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
    use crate::ws::frame::{FrameHeader, OpCode};
    use crate::ws::mask::apply_mask_naive;
    use crate::ws::Error;
    use tokio_test::io::Builder;

    const LIMITS: Limits = Limits {
        max_message: 1024,
        max_frame: 0,
    };

    fn conn_limits() -> ConnLimits {
        ConnLimits {
            write_budget: 1024,
            write_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            close_timeout: Duration::from_secs(1),
            rate: 0.0,
            burst: 1.0,
            strikes: 3,
        }
    }

    fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut body = payload.to_vec();
        apply_mask_naive(&mut body, mask, 0);
        let mut out = Vec::new();
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(mask),
            payload_len: payload.len() as u64,
        }
        .encode(&mut out);
        out.extend(body);
        out
    }

    fn masked_close(code: u16) -> Vec<u8> {
        masked(OpCode::Close, &code.to_be_bytes())
    }

    /// Echoes text; counts what the connection layer tells it.
    #[derive(Default)]
    struct Echo {
        rate_limited: usize,
        dropped: Vec<Dropped>,
    }

    impl Session for Echo {
        type Event = std::convert::Infallible;
        fn next_event(&mut self) -> impl Future<Output = Self::Event> + Send {
            std::future::pending()
        }
        fn on_data(&mut self, data: Data, out: &mut Outbox) -> Option<Ending> {
            if let Data::Text(text) = data {
                out.push(encode_frame(OpCode::Text, text.as_bytes()));
            }
            None
        }
        fn on_event(&mut self, event: Self::Event, _: &mut Outbox) -> Option<Ending> {
            match event {}
        }
        fn on_rate_limited(&mut self, _: &mut Outbox) {
            self.rate_limited += 1;
        }
        fn on_dropped(&mut self, why: Dropped) {
            self.dropped.push(why);
        }
    }

    #[tokio::test]
    async fn answers_a_close_by_echoing_its_code() {
        let mock = Builder::new()
            .read(&masked_close(1000))
            .write(&encode_close(1000, ""))
            .build();
        let mut ws = WebSocket::new(mock, &[], LIMITS, false);
        let received = match ws.reader.read_message().await {
            Ok(Message::Close(received)) => received,
            other => panic!("expected close, got {other:?}"),
        };
        ws.answer_close(received, Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn server_close_waits_for_the_peer_answer() {
        let mock = Builder::new()
            .write(&encode_close(1001, "bye"))
            .read(&masked_close(1001))
            .build();
        let mut ws = WebSocket::new(mock, &[], LIMITS, false);
        ws.close(1001, "bye", Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn a_protocol_error_is_answered_with_its_code() {
        // An unmasked frame: the reader fails, the close frame carries 1002.
        let mock = Builder::new()
            .read(&[0x81, 0x00])
            .write(&encode_close(1002, "client frame not masked"))
            .build();
        let mut ws = WebSocket::new(mock, &[], LIMITS, false);
        let err = ws.reader.read_message().await.unwrap_err();
        assert_eq!(err, Error::UnmaskedFrame);
        ws.close(
            err.close_code().unwrap(),
            &err.to_string(),
            Duration::from_secs(1),
        )
        .await;
    }

    #[tokio::test]
    async fn serve_echoes_and_answers_pings_then_returns_the_peers_close() {
        let mut wire = masked(OpCode::Text, b"hi");
        wire.extend(masked(OpCode::Ping, b"p"));
        let mock = Builder::new()
            .read(&wire)
            .write(&encode_frame(OpCode::Text, b"hi"))
            .write(&encode_frame(OpCode::Pong, b"p"))
            .read(&masked_close(1000))
            .build();
        let mut ws = WebSocket::new(mock, &[], LIMITS, false);
        let ending = serve(
            &mut ws,
            &mut Echo::default(),
            &conn_limits(),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(ending, Ending::PeerClosed(Some((1000, String::new()))));
    }

    /// A peer that pings as fast as it can and reads nothing: the socket fills, and from then on
    /// each ping replaces the one pong waiting, so the outbox holds at most one.
    #[tokio::test]
    async fn a_ping_flood_without_reading_holds_one_pong() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server_io) = tokio::io::duplex(256);
        let server = tokio::spawn(async move {
            let mut ws = WebSocket::new(server_io, &[], LIMITS, false);
            let ending = serve(
                &mut ws,
                &mut Echo::default(),
                &conn_limits(),
                &CancellationToken::new(),
            )
            .await;
            (ending, ws.writer.queued_bytes())
        });
        for i in 0..1000u16 {
            client
                .write_all(&masked(OpCode::Ping, &i.to_be_bytes()))
                .await
                .unwrap();
        }
        client.write_all(&masked_close(1000)).await.unwrap();
        let (ending, queued) = server.await.unwrap();
        assert!(matches!(ending, Ending::PeerClosed(_)));
        let pong_len = encode_frame(OpCode::Pong, &[0, 0]).len();
        assert!(queued <= pong_len, "{queued} bytes queued");
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.unwrap();
        let pongs = written.len() / pong_len;
        assert!(pongs < 100, "{pongs} pongs for 1000 pings");
    }

    #[tokio::test]
    async fn control_frames_count_against_the_rate_limit() {
        let limits = ConnLimits {
            rate: 0.001,
            burst: 2.0,
            strikes: 3,
            ..conn_limits()
        };
        let mut wire = Vec::new();
        for _ in 0..10 {
            wire.extend(masked(OpCode::Ping, b""));
        }
        // Two pings pass and are answered, the next three are refused: 1008.
        let pong = encode_frame(OpCode::Pong, b"");
        let mock = Builder::new().read(&wire).write(&pong).write(&pong).build();
        let mut ws = WebSocket::new(mock, &[], LIMITS, false);
        let mut echo = Echo::default();
        let ending = serve(&mut ws, &mut echo, &limits, &CancellationToken::new()).await;
        assert_eq!(
            ending,
            Ending::Close(close_code::POLICY_VIOLATION, "rate limit exceeded".into())
        );
        assert_eq!(echo.dropped, [Dropped::Flooding]);
        assert_eq!(echo.rate_limited, 0, "control frames are refused silently");
    }

    #[tokio::test]
    async fn a_refused_data_message_is_reported_once_per_run() {
        let limits = ConnLimits {
            rate: 0.001,
            burst: 1.0,
            strikes: 100,
            ..conn_limits()
        };
        let mut wire = Vec::new();
        for _ in 0..5 {
            wire.extend(masked(OpCode::Text, b"x"));
        }
        let mock = Builder::new()
            .read(&wire)
            .write(&encode_frame(OpCode::Text, b"x"))
            .read(&masked_close(1000))
            .build();
        let mut ws = WebSocket::new(mock, &[], LIMITS, false);
        let mut echo = Echo::default();
        serve(&mut ws, &mut echo, &limits, &CancellationToken::new()).await;
        assert_eq!(echo.rate_limited, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_peer_is_pinged_then_closed_as_idle() {
        let limits = ConnLimits {
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            ..conn_limits()
        };
        let mock = Builder::new()
            .wait(Duration::from_secs(31))
            .write(&encode_frame(OpCode::Ping, b"wschat"))
            .wait(Duration::from_secs(60))
            .build();
        let mut ws = WebSocket::new(mock, &[], LIMITS, false);
        let mut echo = Echo::default();
        let ending = serve(&mut ws, &mut echo, &limits, &CancellationToken::new()).await;
        assert_eq!(
            ending,
            Ending::Close(close_code::GOING_AWAY, "idle timeout".into())
        );
        assert_eq!(echo.dropped, [Dropped::Idle]);
    }

    #[tokio::test]
    async fn shutdown_ends_the_loop_with_1001() {
        let mock = Builder::new().wait(Duration::from_secs(3600)).build();
        let mut ws = WebSocket::new(mock, &[], LIMITS, false);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let ending = serve(&mut ws, &mut Echo::default(), &conn_limits(), &shutdown).await;
        assert_eq!(
            ending,
            Ending::Close(close_code::GOING_AWAY, "server shutting down".into())
        );
    }

    #[test]
    fn token_bucket_allows_bursts_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5.0, start);
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
        let mut unlimited = TokenBucket::new(1.0, start);
        assert!((0..1000).all(|_| unlimited.take(start, 0.0, 1.0)));
    }
}
