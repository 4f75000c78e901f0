//! Every size and count limit of `wschat::Config`, each set small so it is reached at once: the
//! documented answer (an HTTP status before the upgrade, an `error` event, a close code), the
//! server still up, and the room's other clients missing nothing.

mod common;

use std::time::Duration;

use common::peer::{chat_works, Incoming};
use common::raw::{client_frame, http_exchange, upgrade_request, RawClient};
use common::TestServer;
use wschat::Config;

/// The status of an upgrade request for `path` on a fresh connection.
async fn upgrade_status(server: &TestServer, path: &str) -> u16 {
    let request = upgrade_request(server.addr, path, "");
    let mut raw = RawClient::connect(server.addr).await;
    raw.send(request.as_bytes()).await;
    raw.response_head().await.status
}

/// `--max-connections`: one more upgrade gets `503` before any WebSocket byte, plain HTTP is still
/// served, the connected clients keep chatting, and a freed slot can be taken again.
#[tokio::test]
async fn max_connections_answers_503_and_frees_slots() {
    let mut config = Config::for_tests();
    config.max_connections = 3;
    let server = TestServer::with_config(Config {
        echo: true,
        ..config
    })
    .await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let (mut bob, _) = server.peer("r", "bob").await;
    let echo = RawClient::upgrade(server.addr, "/echo").await;

    for path in ["/ws?room=r&name=late", "/echo"] {
        let (head, body) = http_exchange(
            server.addr,
            upgrade_request(server.addr, path, "").as_bytes(),
        )
        .await;
        assert_eq!(head.status, 503, "{path}: {body}");
        assert!(!body.is_empty(), "a one-line reason");
    }
    server.assert_healthy().await;
    chat_works(&mut ann, &mut [&mut bob], "still here").await;
    let metrics = server.metrics().await;
    assert_eq!(
        metrics.value("wschat_handshake_failures_total{reason=\"server at its connection limit\"}"),
        2.0
    );
    assert_eq!(metrics.value("wschat_connections_open"), 3.0);

    // The slot frees when the echo session has finished its close handshake.
    drop(echo);
    let mut status = 0;
    for _ in 0..500 {
        status = upgrade_status(&server, "/ws?room=r&name=carol").await;
        if status == 101 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 101, "a freed slot can be taken again");
    bob.event_of("join").await;
    chat_works(&mut ann, &mut [&mut bob], "carol came").await;
}

/// `--rate-limit`/`--rate-burst`/`--rate-strikes`: a burst passes, the first message over it is
/// answered with an `error` event `rate_limited` and dropped, and a client that keeps flooding is
/// closed with 1008. The others see only the messages that passed.
#[tokio::test]
async fn flooding_gets_rate_limited_then_1008() {
    let mut config = Config::for_tests();
    // A token a thousand seconds: after the burst, nothing refills during the test.
    config.rate_limit = 0.001;
    config.rate_burst = 3.0;
    config.rate_strikes = 4;
    let server = TestServer::with_config(config).await;
    let (mut flood, _) = server.peer("r", "flood").await;
    let (mut bob, _) = server.peer("r", "bob").await;

    for i in 1..=3 {
        chat_works(&mut flood, &mut [&mut bob], &format!("burst {i}")).await;
    }
    flood.say("one too many").await;
    let error = flood.event_of("error").await;
    assert_eq!(error["code"], "rate_limited", "{error}");
    // Three more strikes make four in a row: closed, with no second error event before.
    for i in 0..3 {
        flood.say(&format!("still flooding {i}")).await;
    }
    loop {
        match flood.next().await {
            Incoming::Close(code) => {
                assert_eq!(code, Some(1008), "close code");
                break;
            }
            Incoming::Event(event) => {
                assert_ne!(event["type"], "error", "one warning only: {event}");
                assert_ne!(
                    event["type"], "message",
                    "a dropped message was posted: {event}"
                );
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }
    bob.expect_leave("flood").await;

    // None of the dropped messages reached the room: bob's next message is carol's, with the
    // next id.
    let (mut carol, _) = server.peer("r", "carol").await;
    chat_works(&mut carol, &mut [&mut bob], "calm").await;
    server.assert_healthy().await;
    server
        .expect_metric("wschat_dropped_clients_total{reason=\"flooding\"}", 1.0)
        .await;
}

/// `--max-name-len`, `--max-room-len` and the character rules: `400` before the upgrade.
/// Lengths count characters, not bytes.
#[tokio::test]
async fn names_and_rooms_are_checked_before_the_upgrade() {
    let mut config = Config::for_tests();
    config.max_name_len = 8;
    config.max_room_len = 6;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let (mut bob, _) = server.peer("r", "bob").await;

    let e8 = "%C3%A9".repeat(8); // "é" eight times: 8 characters, 16 bytes
    let e9 = "%C3%A9".repeat(9);
    let cases = [
        (format!("/ws?room=r&name={e8}"), 101),
        (format!("/ws?room=r&name={e9}"), 400),
        ("/ws?room=r&name=ninechar".into(), 101),
        ("/ws?room=r&name=ninechars".into(), 400),
        ("/ws?room=sixsix&name=x".into(), 101),
        ("/ws?room=sevense&name=x".into(), 400),
        ("/ws?room=&name=x".into(), 400),
        ("/ws?room=a%2Fb&name=x".into(), 400),
        ("/ws?room=a%20b&name=x".into(), 400),
        ("/ws?room=%C3%A9&name=x".into(), 400),
        ("/ws?room=a-b_c.&name=x".into(), 101),
        ("/ws?room=r&name=bell%07".into(), 400),
        ("/ws?room=r&name=tab%09x".into(), 400),
        ("/ws?room=r&name=a%E2%80%8Bb".into(), 400), // zero-width space
        ("/ws?room=r&name=%E2%80%AEevil".into(), 400), // right-to-left override
        ("/ws?room=r&name=%EF%BB%BFbom".into(), 400), // byte-order mark
        ("/ws?room=r&name=Zo%C3%AB%20K".into(), 101),
        ("/ws?room=r&since=x".into(), 400),
        ("/ws?room=r&since=-1".into(), 400),
    ];
    for (path, expected) in &cases {
        assert_eq!(upgrade_status(&server, path).await, *expected, "{path}");
    }
    server.assert_healthy().await;
    chat_works(&mut ann, &mut [&mut bob], "names checked").await;
    let refused = cases.iter().filter(|(_, status)| *status == 400).count();
    let metrics = server.metrics().await;
    let failures: f64 = metrics
        .0
        .lines()
        .filter(|l| l.starts_with("wschat_handshake_failures_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(failures, refused as f64, "every refusal counted");
}

/// `--max-message-size`: a message of exactly the limit is taken, one byte more is 1009, and the
/// room carries on.
#[tokio::test]
async fn max_message_size_is_exact() {
    let mut config = Config::for_tests();
    config.max_message_size = 1000;
    config.max_text_len = 1000;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let (mut bob, _) = server.peer("r", "bob").await;
    let mut raw = RawClient::join(server.addr, "r", "big").await;

    let exact = "x".repeat(1000); // a plain-text frame is a message of that text
    raw.send(&client_frame(0x81, exact.as_bytes())).await;
    for peer in [&mut ann, &mut bob] {
        peer.expect_message("big", &exact).await;
    }
    raw.send(&client_frame(0x81, "y".repeat(1001).as_bytes()))
        .await;
    assert_eq!(raw.finish_close().await, Some(1009));
    bob.expect_leave("big").await;
    chat_works(&mut ann, &mut [&mut bob], "after 1009").await;
    server.assert_healthy().await;
}

/// The chat's default limit is 64 KiB: a 64 KiB frame is read whole (and, being far over
/// `--max-text-len`, answered with `too_long` on a connection that stays open).
#[tokio::test]
async fn default_message_limit_takes_64_kib() {
    let server = TestServer::with_config(Config::for_tests()).await;
    let (mut bob, _) = server.peer("r", "bob").await;
    let mut raw = RawClient::join(server.addr, "r", "big").await;
    bob.event_of("join").await;
    raw.send(&client_frame(0x81, &[b'z'; 64 * 1024])).await;
    let reply = raw.frame().await.expect("an error event");
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).expect("JSON");
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("too_long"))
    );
    raw.send(&common::raw::chat_frame("short")).await;
    bob.expect_message("big", "short").await;
}

/// `--max-frame-size`: a frame over it is 1009 even though the message limit would allow it,
/// while the same bytes in smaller fragments are fine.
#[tokio::test]
async fn max_frame_size_limits_each_frame() {
    let mut config = Config::for_tests();
    config.max_frame_size = 100;
    let server = TestServer::with_config(config).await;
    let (mut bob, _) = server.peer("r", "bob").await;
    let mut raw = RawClient::join(server.addr, "r", "frag").await;
    bob.event_of("join").await;

    let text = "f".repeat(150);
    let mut wire = client_frame(0x01, &text.as_bytes()[..100]);
    wire.extend(client_frame(0x80, &text.as_bytes()[100..]));
    raw.send(&wire).await;
    bob.expect_message("frag", &text).await;

    raw.send(&client_frame(0x81, "g".repeat(101).as_bytes()))
        .await;
    assert_eq!(raw.finish_close().await, Some(1009));
    bob.expect_leave("frag").await;
    server.assert_healthy().await;
}

/// `--max-text-len`: over it, an `error` event `too_long`; the connection stays open and the
/// message is not posted.
#[tokio::test]
async fn max_text_len_is_an_error_event() {
    let mut config = Config::for_tests();
    config.max_text_len = 10;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let (mut bob, _) = server.peer("r", "bob").await;
    ann.say("eleven char").await;
    assert_eq!(ann.event_of("error").await["code"], "too_long");
    chat_works(&mut ann, &mut [&mut bob], "ten chars!").await;
}

/// `--echo-max-message-size`: `/echo` has its own limit.
#[tokio::test]
async fn echo_has_its_own_message_limit() {
    let mut config = Config::for_tests();
    config.echo_max_message_size = 200;
    let server = TestServer::with_config(Config {
        echo: true,
        ..config
    })
    .await;
    let mut raw = RawClient::upgrade(server.addr, "/echo").await;
    raw.send(&client_frame(0x82, &[7; 200])).await;
    let echo = raw.frame().await.expect("the echo");
    assert_eq!((echo.opcode, echo.payload.len()), (0x2, 200));
    raw.send(&client_frame(0x82, &[7; 201])).await;
    assert_eq!(raw.finish_close().await, Some(1009));
    server.assert_healthy().await;
}

/// `--history`: a late joiner's welcome holds only the most recent messages.
#[tokio::test]
async fn history_is_bounded() {
    let mut config = Config::for_tests();
    config.history = 3;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    for i in 1..=7 {
        chat_works(&mut ann, &mut [], &format!("m{i}")).await;
    }
    let (_late, welcome) = server.peer("r", "late").await;
    let texts: Vec<&str> = welcome["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["m5", "m6", "m7"]);
    assert_eq!(welcome["last_id"], 7);
}
