//! Every time limit of `wschat::Config`, set short so it is reached at once: the header read
//! timeout (slowloris), the idle timeout with its pings, and the close-handshake timeout. Each
//! test asserts what happens, never how fast: the bounds are only there to stop a hang.
//! (The write timeout has its own file, `slow_consumer.rs`.)

mod common;

use std::time::Duration;

use common::peer::{chat_works, within, WAIT};
use common::raw::{client_frame, RawClient};
use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wschat::Config;

fn config() -> Config {
    let mut config = Config::for_tests();
    config.header_timeout = Duration::from_millis(300);
    config
}

/// `--header-timeout`: a client that sends part of its request headers and then nothing is
/// disconnected, while the room's clients carry on.
#[tokio::test]
async fn partial_headers_are_dropped_after_the_header_timeout() {
    let server = TestServer::with_config(config()).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let (mut bob, _) = server.peer("r", "bob").await;
    let mut slow = RawClient::connect(server.addr).await;
    slow.send(b"GET /ws?room=r&name=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web")
        .await;
    slow.expect_eof().await;
    chat_works(&mut ann, &mut [&mut bob], "slowloris gone").await;
    server.assert_healthy().await;
}

/// The slowloris proper: headers trickle in a byte at a time, each byte well inside any per-read
/// timeout, and the connection is still dropped because the whole head took too long.
#[tokio::test]
async fn trickled_headers_are_dropped_too() {
    let server = TestServer::with_config(config()).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let mut slow = RawClient::connect(server.addr).await;
    slow.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await;
    let trickle = async {
        let mut buf = [0u8; 256];
        // Bounded: at 50 ms a byte this gives up after about WAIT.
        for _ in 0..(WAIT.as_millis() / 50) {
            if slow.stream.write_all(b"z").await.is_err() {
                return true;
            }
            match tokio::time::timeout(Duration::from_millis(50), slow.stream.read(&mut buf)).await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) | Err(_) => {} // an error response, or nothing yet
            }
        }
        false
    };
    assert!(trickle.await, "a trickling client was never dropped");
    chat_works(&mut ann, &mut [], "still up").await;
    server.assert_healthy().await;
}

/// `--ping-interval` and `--idle-timeout`: a peer that answers no ping is pinged, then closed with
/// 1001 and announced as left. Clients that answer pings (tokio-tungstenite does) stay, however
/// quiet they are otherwise.
#[tokio::test]
async fn a_peer_that_answers_no_ping_is_closed_and_announced() {
    let mut config = config();
    // The well-behaved clients have the 1.8 s between ping and deadline to answer: plenty on a
    // loaded machine, and still a short test.
    config.ping_interval = Duration::from_millis(200);
    config.idle_timeout = Duration::from_secs(2);
    config.close_timeout = Duration::from_millis(300);
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let (mut bob, _) = server.peer("r", "bob").await;
    let mut sleepy = RawClient::join(server.addr, "r", "sleepy").await;

    // The raw client reads (so it sees the ping) but never answers.
    let ping = loop {
        let frame = sleepy.frame().await.expect("a ping before the close");
        if frame.opcode == 0x9 {
            break frame;
        }
        assert_ne!(frame.opcode, 0x8, "closed without a ping first");
    };
    assert!(ping.payload.len() <= 125);
    assert_eq!(sleepy.close_code().await, Some(1001), "idle close code");
    // It does not answer the close either: the close timeout ends the connection.
    sleepy.expect_eof().await;
    bob.expect_leave("sleepy").await;

    // Ann and Bob were as quiet as sleepy for as long, but answered every ping.
    chat_works(&mut ann, &mut [&mut bob], "we answered").await;
    server
        .expect_metric("wschat_dropped_clients_total{reason=\"idle\"}", 1.0)
        .await;
    server
        .expect_metric("wschat_close_codes_sent_total{code=\"1001\"}", 1.0)
        .await;
}

/// `/echo` has the same idle timeout.
#[tokio::test]
async fn an_idle_echo_client_is_closed() {
    let mut config = config();
    config.idle_timeout = Duration::from_millis(300);
    config.close_timeout = Duration::from_millis(300);
    let server = TestServer::with_config(Config {
        echo: true,
        ..config
    })
    .await;
    let mut idle = RawClient::upgrade(server.addr, "/echo").await;
    assert_eq!(idle.close_code().await, Some(1001));
    idle.expect_eof().await;
    server.assert_healthy().await;
}

/// `--close-timeout`: after the server closes (here 1003 for a binary message), a client that
/// neither answers the close frame nor hangs up is disconnected anyway, and its slot freed.
#[tokio::test]
async fn a_close_that_is_never_answered_times_out() {
    let mut config = config();
    config.close_timeout = Duration::from_millis(300);
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let mut mute = RawClient::join(server.addr, "r", "mute").await;
    mute.send(&client_frame(0x82, b"binary")).await;
    assert_eq!(mute.close_code().await, Some(1003));
    // No close frame from us, and we keep our end open: the server must hang up by itself.
    within("the server to hang up", mute.expect_eof()).await;
    server.expect_metric("wschat_connections_open", 1.0).await;
    ann.expect_leave("mute").await;
    chat_works(&mut ann, &mut [], "after the mute one").await;
}

/// After a protocol error the server only drains the socket until the client hangs up; a client
/// that never does is still let go after the close timeout (the slot comes back while the test
/// keeps its end of the connection open).
#[tokio::test]
async fn draining_after_a_protocol_error_is_bounded() {
    let mut config = config();
    config.close_timeout = Duration::from_millis(300);
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let mut bad = RawClient::join(server.addr, "r", "bad").await;
    bad.send(&[0x81, 0x00]).await; // unmasked
    assert_eq!(bad.close_code().await, Some(1002));
    server.expect_metric("wschat_connections_open", 1.0).await;
    server
        .expect_metric("wschat_close_codes_sent_total{code=\"1002\"}", 1.0)
        .await;
    chat_works(&mut ann, &mut [], "drained").await;
    drop(bad);
}

/// A connection that never sends a byte holds a file descriptor just the same: the header timeout
/// covers it too.
#[tokio::test]
async fn a_connection_that_sends_nothing_is_dropped() {
    let server = TestServer::with_config(config()).await;
    let mut silent = RawClient::connect(server.addr).await;
    silent.expect_eof().await;
    server.assert_healthy().await;
}

/// Between two requests on a kept-alive connection the same limit applies.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_dropped() {
    let server = TestServer::with_config(config()).await;
    let mut idle = RawClient::connect(server.addr).await;
    idle.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let head = idle.response_head().await;
    assert_eq!(head.status, 200);
    idle.expect_eof().await;
}
