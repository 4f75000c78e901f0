//! A client that stops reading while its room is busy: it must not stall the room, nor make the
//! server's memory grow with the traffic it is not reading.
//!
//! In each test `ann` posts and `ann` and `bob` (well-behaved, reading on their own tasks) must
//! receive every message in order; at most [`WINDOW`] messages are unconfirmed at a time, so the
//! well-behaved clients never fall a channel behind themselves. `stall` is a raw client with a
//! small receive buffer that completes the handshake, reads its welcome and then reads nothing.
//! The server's limits are shrunk (`write_buffer`, `channel_capacity`, `write_timeout`) so the
//! stall bites after little traffic.

mod common;

use std::time::Duration;

use common::peer::Peer;
use common::raw::{upgrade_request, RawClient};
use common::TestServer;
use serde_json::Value;
use tokio::net::TcpSocket;
use wschat::Config;

/// Messages posted but not yet confirmed by both readers.
const WINDOW: usize = 4;

/// The resident memory of this process (server and clients alike), in bytes.
fn rss_bytes() -> u64 {
    common::vm_rss("self")
}

/// Joins `room` as `name` on a socket whose receive buffer is as small as the kernel allows, and
/// reads the welcome: from here on the test never reads it (until it chooses to).
async fn stalled_client(server: &TestServer, room: &str, name: &str) -> RawClient {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.addr).await.expect("connect");
    let mut raw = RawClient::from_stream(stream);
    let request = upgrade_request(server.addr, &format!("/ws?room={room}&name={name}"), "");
    raw.send(request.as_bytes()).await;
    assert_eq!(raw.response_head().await.status, 101);
    let welcome = raw.frame().await.expect("welcome");
    let welcome: Value = serde_json::from_slice(&welcome.payload).expect("JSON");
    assert_eq!(welcome["type"], "welcome");
    raw
}

/// Message `i` of the test: its number, then filler up to `size` bytes.
fn text(i: usize, size: usize) -> String {
    let mut text = format!("{i:08} ");
    text.push_str(&"x".repeat(size - text.len()));
    text
}

/// Reads `peer`'s events until the next chat message, which must be `expected`; hands every other
/// event to `other`.
async fn receive(peer: &mut Peer, expected: &str, other: &mut impl FnMut(&Value)) {
    for _ in 0..100_000 {
        let event = peer.event().await;
        if event["type"] != "message" {
            other(&event);
            continue;
        }
        let got = event["text"].as_str().unwrap_or_default();
        assert!(
            got == expected,
            "{} got {:?}... instead of {:?}...",
            peer.name,
            &got[..got.len().min(12)],
            &expected[..12]
        );
        return;
    }
}

/// The busy room: ann posts messages `0..count` of `size` bytes; ann and bob must each get every
/// one. Returns early, with how many were posted, once `done` holds after one of bob's non-message
/// events (checked after all posted messages were received).
async fn busy_room(
    ann: &mut Peer,
    bob: &mut Peer,
    count: usize,
    size: usize,
    mut done: impl FnMut(&Value) -> bool,
) -> usize {
    let mut finished = false;
    let mut confirmed = 0;
    for i in 0..count {
        ann.say(&text(i, size)).await;
        while i + 1 - confirmed > WINDOW || (i + 1 == count && confirmed < count) {
            let expected = text(confirmed, size);
            receive(ann, &expected, &mut |_| {}).await;
            receive(bob, &expected, &mut |event| finished |= done(event)).await;
            confirmed += 1;
        }
        if finished {
            while confirmed <= i {
                let expected = text(confirmed, size);
                receive(ann, &expected, &mut |_| {}).await;
                receive(bob, &expected, &mut |_| {}).await;
                confirmed += 1;
            }
            return i + 1;
        }
    }
    count
}

/// `--write-timeout`: the stalled client is dropped as a slow consumer and announced as left,
/// while ann and bob receive every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_socket_stays_unwritable_is_dropped() {
    let mut config = Config::for_tests();
    config.write_buffer = 16 * 1024;
    config.channel_capacity = 32;
    config.write_timeout = Duration::from_millis(300);
    config.max_text_len = 16 * 1024;
    config.rate_limit = 0.0;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("busy", "ann").await;
    let (mut bob, _) = server.peer("busy", "bob").await;
    let _stall = stalled_client(&server, "busy", "stall").await;

    // Bounded: 20,000 messages of 8 KiB is 160 MB, far past any socket buffer.
    let posted = busy_room(&mut ann, &mut bob, 20_000, 8 * 1024, |event| {
        event["type"] == "leave" && event["name"] == "stall"
    })
    .await;
    assert!(posted < 20_000, "the stalled client was never dropped");
    eprintln!("the stalled client was dropped after {posted} messages");
    server
        .expect_metric(
            "wschat_dropped_clients_total{reason=\"slow_consumer\"}",
            1.0,
        )
        .await;
    // The room goes on as before.
    busy_room(&mut ann, &mut bob, 10, 100, |_| false).await;
    server.assert_healthy().await;
}

/// `--write-buffer` and `--channel-capacity`: a stalled client that is never dropped (the write
/// timeout is an hour here) costs the server a bounded amount of memory however much the room
/// says, and when it reads again it gets the lag notice of the documented policy: a `lagged`
/// event counting exactly the messages it skipped, then every message still held, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_costs_bounded_memory_and_then_lags() {
    const COUNT: usize = 800;
    const SIZE: usize = 60 * 1024;
    let mut config = Config::for_tests();
    config.write_buffer = 64 * 1024;
    config.channel_capacity = 32;
    config.write_timeout = Duration::from_secs(3600);
    config.idle_timeout = Duration::from_secs(3600);
    config.ping_interval = Duration::from_secs(3600);
    config.max_text_len = SIZE;
    config.rate_limit = 0.0;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("busy", "ann").await;
    let (mut bob, _) = server.peer("busy", "bob").await;
    let mut stall = stalled_client(&server, "busy", "stall").await;

    // Warm up (allocator arenas, buffers) before the baseline.
    busy_room(&mut ann, &mut bob, 50, SIZE, |_| false).await;
    let before = rss_bytes();
    busy_room(&mut ann, &mut bob, COUNT, SIZE, |_| false).await;
    let growth = rss_bytes().saturating_sub(before);
    let traffic = (COUNT * SIZE) as u64;
    eprintln!("memory grew by {growth} bytes for {traffic} bytes of traffic");
    // Holding the stalled client's share would cost the whole traffic (about 50 MB); the bound
    // leaves the allocator plenty of slack while still catching that.
    assert!(
        growth < traffic / 2,
        "memory grew by {growth} bytes for {traffic} bytes of traffic"
    );
    server.assert_healthy().await;

    // The stalled client reads again: what was already in flight, then one `lagged` notice, then
    // the rest with no further gap. Ids: 50 warm-up messages plus COUNT, so the last is 50+COUNT.
    let last_id = (50 + COUNT) as u64;
    let mut seen = 0u64;
    let mut lagged = None;
    let mut jump = 0;
    for _ in 0..(COUNT * 2) {
        let frame = stall.frame().await.expect("the stalled client's backlog");
        let event: Value = serde_json::from_slice(&frame.payload).expect("JSON");
        match event["type"].as_str() {
            Some("message") => {
                let id = event["id"].as_u64().expect("id");
                assert_eq!(id, seen + 1 + jump, "after {seen} (lagged: {lagged:?})");
                seen = id;
                jump = 0;
                if id == last_id {
                    break;
                }
            }
            Some("lagged") => {
                assert!(lagged.is_none(), "a second lagged notice: {event}");
                let missed = event["missed"].as_u64().expect("missed");
                assert!(missed > 0);
                lagged = Some(missed);
                jump = missed;
            }
            _ => {}
        }
    }
    assert_eq!(
        seen, last_id,
        "the stalled client caught up to the last message"
    );
    let missed = lagged.expect("a lagged notice");
    eprintln!("the stalled client skipped {missed} messages");
    assert!(
        server.metrics().await.value("wschat_lagged_events_total") >= missed as f64,
        "lagged events counted"
    );
}
