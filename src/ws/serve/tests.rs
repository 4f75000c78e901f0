//! [`super::serve`] driven over scripted and in-memory sockets: pongs, the ping flood, the rate
//! limit, timers and shutdown.

use super::*;
use crate::ws::frame::masked_client_frame;
use crate::ws::frame::OpCode;
use crate::ws::reader::Limits;
use tokio_test::io::Builder;

const LIMITS: Limits = Limits {
    max_message: 1024,
    max_frame: 0,
};

fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    masked_client_frame(opcode, payload)
}

fn masked_close(code: u16) -> Vec<u8> {
    masked(OpCode::Close, &code.to_be_bytes())
}

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
async fn serve_echoes_and_answers_pings_then_returns_the_peers_close() {
    let mut wire = masked(OpCode::Text, b"hi");
    wire.extend(masked(OpCode::Ping, b"p"));
    let mock = Builder::new()
        .read(&wire)
        .write(&encode_frame(OpCode::Text, b"hi"))
        .write(&encode_frame(OpCode::Pong, b"p"))
        .read(&masked_close(1000))
        .build();
    let mut ws = WebSocket::new(tokio::io::split(mock), &[], LIMITS, false);
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
        let mut ws = WebSocket::new(tokio::io::split(server_io), &[], LIMITS, false);
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
    let mut ws = WebSocket::new(tokio::io::split(mock), &[], LIMITS, false);
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
    let mut ws = WebSocket::new(tokio::io::split(mock), &[], LIMITS, false);
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
    let mut ws = WebSocket::new(tokio::io::split(mock), &[], LIMITS, false);
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
    let mut ws = WebSocket::new(tokio::io::split(mock), &[], LIMITS, false);
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
    let ms = Duration::from_millis;
    let mut tokens = 5.0;
    let passed = (0..20)
        .filter(|_| take_token(&mut tokens, ms(0), 10.0, 5.0))
        .count();
    assert_eq!(passed, 5, "the burst");
    assert!(!take_token(&mut tokens, ms(50), 10.0, 5.0), "half a token");
    assert!(
        take_token(&mut tokens, ms(50), 10.0, 5.0),
        "one token after 1/rate"
    );
    let mut none = 1.0;
    assert!((0..1000).all(|_| take_token(&mut none, ms(0), 0.0, 1.0)));
}

/// Keeps a deadline of its own (as Socket.IO's heartbeat does): at each one it queues a text
/// frame and sets the next one 5 s later; at the third it ends the connection.
struct Ticker {
    next: Instant,
    ticks: u32,
}

impl Session for Ticker {
    type Event = std::convert::Infallible;
    fn next_event(&mut self) -> impl Future<Output = Self::Event> + Send {
        std::future::pending()
    }
    fn on_data(&mut self, _: Data, _: &mut Outbox) -> Option<Ending> {
        None
    }
    fn on_event(&mut self, event: Self::Event, _: &mut Outbox) -> Option<Ending> {
        match event {}
    }
    fn deadline(&self) -> Option<Instant> {
        Some(self.next)
    }
    fn on_deadline(&mut self, now: Instant, out: &mut Outbox) -> Option<Ending> {
        self.ticks += 1;
        if self.ticks == 3 {
            return Some(Ending::Close(close_code::NORMAL, "done".into()));
        }
        out.push(encode_frame(OpCode::Text, b"tick"));
        self.next = now + Duration::from_secs(5);
        None
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_deadline_runs_on_the_connections_timer() {
    let mock = Builder::new()
        .wait(Duration::from_secs(5))
        .write(&encode_frame(OpCode::Text, b"tick"))
        .wait(Duration::from_secs(5))
        .write(&encode_frame(OpCode::Text, b"tick"))
        // Nothing from the peer meanwhile (without this the script would end: EOF).
        .wait(Duration::from_secs(60))
        .build();
    let mut ws = WebSocket::new(tokio::io::split(mock), &[], LIMITS, false);
    let start = Instant::now();
    let mut ticker = Ticker {
        next: start + Duration::from_secs(5),
        ticks: 0,
    };
    let ending = serve(
        &mut ws,
        &mut ticker,
        &conn_limits(),
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(ending, Ending::Close(close_code::NORMAL, "done".into()));
    assert_eq!(ticker.ticks, 3);
    // The WebSocket's own timers (ping at 30 s) never fired: the third deadline came first.
    assert!(Instant::now() < start + Duration::from_secs(30));
}

/// A session that must end at a fixed moment (a token's `exp`), through the same deadline.
struct Expiring {
    at: Instant,
}

impl Session for Expiring {
    type Event = std::convert::Infallible;
    fn next_event(&mut self) -> impl Future<Output = Self::Event> + Send {
        std::future::pending()
    }
    fn on_data(&mut self, _: Data, _: &mut Outbox) -> Option<Ending> {
        None
    }
    fn on_event(&mut self, event: Self::Event, _: &mut Outbox) -> Option<Ending> {
        match event {}
    }
    fn deadline(&self) -> Option<Instant> {
        Some(self.at)
    }
    fn on_deadline(&mut self, now: Instant, _: &mut Outbox) -> Option<Ending> {
        (now >= self.at).then(|| Ending::Close(4001, "token expired".into()))
    }
}

#[tokio::test(start_paused = true)]
async fn the_session_ends_at_its_expiry_with_its_own_close_even_while_the_peer_talks() {
    let start = Instant::now();
    // The peer talks every 10 s up to the expiry at 45 s, then stays quiet for an hour: only
    // the expiry can end the loop at 45 s (the idle timeout would be at 40 + 75 s).
    let mut builder = Builder::new();
    for _ in 0..4 {
        builder
            .wait(Duration::from_secs(10))
            .read(&masked(OpCode::Text, b"still here"));
    }
    builder.wait(Duration::from_secs(3600));
    let mut ws = WebSocket::new(tokio::io::split(builder.build()), &[], LIMITS, false);
    let mut session = Expiring {
        at: start + Duration::from_secs(45),
    };
    let ending = serve(
        &mut ws,
        &mut session,
        &conn_limits(),
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(ending, Ending::Close(4001, "token expired".into()));
    assert_eq!(
        Instant::now() - start,
        Duration::from_secs(45),
        "on time (tokio's clock is paused: no real waiting)"
    );
}
