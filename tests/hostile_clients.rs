//! One hostile client, by any sequence of frames, costs the server no more than its documented
//! budget (`--write-buffer` plus one message) and is ended by a documented rule: the rate limit
//! (1008) or the write timeout. Memory is read from `/proc` of the real server process.

mod common;

use std::time::{Duration, Instant};

use common::binary::Binary;
use common::peer::{chat_works, Peer};
use common::raw::{client_frame, upgrade_request, RawClient};
use common::TestServer;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use wschat::Config;

/// Headroom over the budget for what the allocator and the test's own timing add.
const SLACK: u64 = 8 * 1024 * 1024;

/// A raw client joined to `room` whose socket takes almost nothing in (it never reads).
async fn deaf_client(addr: std::net::SocketAddr, path: &str) -> RawClient {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(addr).await.expect("connect");
    let mut raw = RawClient::from_stream(stream);
    raw.send(upgrade_request(addr, path, "").as_bytes()).await;
    assert_eq!(raw.response_head().await.status, 101);
    raw
}

/// Writes `frame` up to `count` times or for `limit`, whichever ends first, until the server
/// stops taking bytes (the write fails). Calls `sample` every 1,000 frames. Returns how many
/// frames were written and whether a write failed.
async fn flood(
    raw: &mut RawClient,
    frame: &[u8],
    count: usize,
    limit: Duration,
    mut sample: impl FnMut(),
) -> (usize, bool) {
    let batch: Vec<u8> = frame.repeat(100);
    let start = Instant::now();
    let mut sent = 0;
    while sent < count && start.elapsed() < limit {
        let write = tokio::time::timeout(Duration::from_secs(1), raw.stream.write_all(&batch));
        match write.await {
            Ok(Ok(())) => sent += 100,
            Ok(Err(_)) => return (sent, true),
            // The server stopped reading (its budget is full): keep trying until the deadline.
            Err(_) => {}
        }
        if sent % 1_000 == 0 {
            sample();
        }
    }
    (sent, false)
}

/// The ping flood: 125-byte pings as fast as the client can send them, reading nothing. With the
/// default rate limit the client is closed (1008) after its burst; the server's memory stays
/// within its budget throughout, and the room carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_closed_by_the_rate_limit_within_budget() {
    let server = Binary::start(&["--close-timeout", "1s"]);
    let (mut ann, _) = Peer::connect(server.addr, "/ws?room=r&name=ann", &[]).await;
    let mut flooder = deaf_client(server.addr, "/ws?room=r&name=flood").await;
    let before = server.rss_bytes();
    let mut peak = before;
    let ping = client_frame(0x89, &[b'p'; 125]);
    let (sent, cut_off) = flood(
        &mut flooder,
        &ping,
        2_000_000,
        Duration::from_secs(20),
        || peak = peak.max(server.rss_bytes()),
    )
    .await;
    assert!(cut_off, "the server never stopped a flood of {sent} pings");
    let growth = peak.saturating_sub(before);
    assert!(growth < 256 * 1024 + SLACK, "grew by {growth} bytes");
    // Its socket is full of pongs it never read, so the 1008 may never reach it; the server
    // counts why it ended the connection.
    let metrics = reqwest_metrics(server.addr).await;
    assert!(
        metrics.contains("wschat_dropped_clients_total{reason=\"flooding\"} 1"),
        "{metrics}"
    );
    ann.expect_leave("flood").await;
    chat_works(&mut ann, &mut [], "after the flood").await;
}

/// Without a rate limit, a client that pings and never reads is still bounded: it holds at most
/// one pong, its socket stops being read while its outbox is over budget, and the write timeout
/// fires however fast it keeps sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_without_rate_limit_ends_at_the_write_timeout() {
    let server = Binary::start(&["--rate-limit", "0", "--write-timeout", "1s"]);
    let mut flooder = deaf_client(server.addr, "/ws?room=r&name=flood").await;
    let before = server.rss_bytes();
    let mut peak = before;
    let ping = client_frame(0x89, &[b'p'; 125]);
    let start = Instant::now();
    let (sent, cut_off) = flood(
        &mut flooder,
        &ping,
        5_000_000,
        Duration::from_secs(30),
        || peak = peak.max(server.rss_bytes()),
    )
    .await;
    assert!(cut_off, "the server never dropped a flood of {sent} pings");
    eprintln!("dropped after {sent} pings in {:?}", start.elapsed());
    let growth = peak.saturating_sub(before);
    assert!(growth < 256 * 1024 + SLACK, "grew by {growth} bytes");
    let metrics = reqwest_metrics(server.addr).await;
    assert!(
        metrics.contains("wschat_dropped_clients_total{reason=\"slow_consumer\"} 1"),
        "{metrics}"
    );
}

/// `/metrics` of a server by address, with a plain HTTP/1.1 request.
async fn reqwest_metrics(addr: std::net::SocketAddr) -> String {
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let (_, body) = common::raw::http_exchange(addr, request.as_bytes()).await;
    body
}

/// `/echo`: a client that sends big messages and reads none of the echoes holds the write budget
/// plus one message, not one echo per message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_client_that_never_reads_holds_one_message() {
    const MESSAGE: usize = 4 * 1024 * 1024;
    let server = Binary::start(&["--write-timeout", "2s"]);
    let mut deaf = deaf_client(server.addr, "/echo").await;
    let before = server.rss_bytes();
    let mut peak = before;
    let message = client_frame(0x82, &vec![7u8; MESSAGE]);
    let start = Instant::now();
    let mut sent = 0;
    // Until the server drops the client (its echo cannot be written for `--write-timeout`).
    while sent < 20 && start.elapsed() < Duration::from_secs(20) {
        let write = tokio::time::timeout(Duration::from_secs(1), deaf.stream.write_all(&message));
        match write.await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(_)) => break,
            Err(_) => {}
        }
        peak = peak.max(server.rss_bytes());
    }
    assert!(start.elapsed() < Duration::from_secs(20), "never dropped");
    let growth = peak.saturating_sub(before);
    // One message being read, one echo queued: two messages at most (the old server held one
    // echo copy per message the client sent).
    assert!(
        growth < 2 * MESSAGE as u64 + 256 * 1024 + SLACK,
        "grew by {growth} bytes after {sent} messages"
    );
}

/// `/echo` answers only with `--echo`.
#[tokio::test]
async fn echo_is_off_unless_asked_for() {
    let server = TestServer::start().await;
    let (status, _) = common::raw::http_exchange(
        server.addr,
        upgrade_request(server.addr, "/echo", "").as_bytes(),
    )
    .await;
    assert_eq!(status.status, 404);
}

/// `--typing-interval`: however fast a client sends `typing`, the room hears it at most once per
/// interval; the rest are dropped without a reply.
#[tokio::test]
async fn typing_is_relayed_at_most_once_per_interval() {
    let mut config = Config::for_tests();
    config.typing_interval = Duration::from_secs(3600);
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let (mut bob, _) = server.peer("r", "bob").await;
    ann.event_of("join").await;
    for _ in 0..20 {
        bob.send(tokio_tungstenite::tungstenite::Message::text(
            r#"{"type":"typing"}"#,
        ))
        .await;
    }
    bob.say("done typing").await;
    let mut typing = 0;
    loop {
        let event = ann.event().await;
        match event["type"].as_str() {
            Some("typing") => typing += 1,
            Some("message") => break,
            _ => {}
        }
    }
    assert_eq!(typing, 1, "one typing event per interval");
    // And bob got no error for the dropped ones: his next event is his own message.
    let event = bob.event().await;
    assert_eq!(event["type"], "message");
}
