//! permessage-deflate (RFC 7692) against the real server: what the `101` answers to each offer,
//! compressed messages both ways, one compression per broadcast however many receive it, the
//! compressed welcome, and the limits on what a compressed message inflates to. The client here
//! is raw bytes plus `flate2`, independent of the server's own code; `python_websockets.rs` and
//! the browser test talk to it with real deflate clients.

mod common;

use std::net::SocketAddr;

use common::raw::{client_frame, upgrade_request, RawClient, RawFrame};
use common::TestServer;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::Value;
use wschat::config::Switch;
use wschat::Config;

/// What Chromium and Firefox offer.
const BROWSER_OFFER: &str =
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// Upgrades `path` with `extra` headers; returns the client and the `Sec-WebSocket-Extensions`
/// answer, if any.
async fn upgrade(addr: SocketAddr, path: &str, extra: &str) -> (RawClient, Option<String>) {
    let mut raw = RawClient::connect(addr).await;
    raw.send(upgrade_request(addr, path, extra).as_bytes())
        .await;
    let head = raw.response_head().await;
    assert_eq!(head.status, 101, "{head:?}");
    let answer = head.header("sec-websocket-extensions").map(str::to_owned);
    (raw, answer)
}

/// Joins `room` offering deflate as a browser does; returns the client and its welcome.
async fn join_deflate(addr: SocketAddr, room: &str, name: &str) -> (RawClient, Value) {
    let path = format!("/ws?room={room}&name={name}");
    let (mut raw, answer) = upgrade(addr, &path, BROWSER_OFFER).await;
    assert!(answer.is_some(), "deflate negotiated");
    let welcome = json(&message(&mut raw).await);
    assert_eq!(welcome["type"], "welcome");
    (raw, welcome)
}

/// The next data frame's payload, inflated if it has RSV1.
async fn message(raw: &mut RawClient) -> Vec<u8> {
    let frame = raw.frame().await.expect("a frame");
    payload(&frame)
}

fn payload(frame: &RawFrame) -> Vec<u8> {
    assert!(frame.fin, "the server sends whole messages");
    if frame.rsv1 {
        inflate(&frame.payload)
    } else {
        frame.payload.clone()
    }
}

fn json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).expect("JSON")
}

/// RFC 7692 section 7.2.2: append `00 00 ff ff`, inflate.
fn inflate(compressed: &[u8]) -> Vec<u8> {
    let mut input = compressed.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut inflate = Decompress::new(false);
    let mut out = Vec::with_capacity(input.len() * 8 + 64);
    loop {
        let at = inflate.total_in() as usize;
        inflate
            .decompress_vec(&input[at..], &mut out, FlushDecompress::Sync)
            .expect("valid DEFLATE from the server");
        if inflate.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// Section 7.2.1: DEFLATE, sync flush, drop the `00 00 ff ff`.
fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    loop {
        let at = compress.total_in() as usize;
        compress
            .compress_vec(&payload[at..], &mut out, FlushCompress::Sync)
            .unwrap();
        if compress.total_in() as usize == payload.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A compressed client text frame (RSV1 set).
fn compressed_text(text: &str) -> Vec<u8> {
    client_frame(0xC1, &deflate(text.as_bytes()))
}

#[tokio::test]
async fn the_101_answers_each_offer() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let answer =
        |extra: &'static str| async move { upgrade(addr, "/ws?room=n&name=x", extra).await.1 };
    let full = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    assert_eq!(answer(BROWSER_OFFER).await.as_deref(), Some(full));
    assert_eq!(answer("").await, None, "no offer, no extension");
    assert_eq!(
        answer("Sec-WebSocket-Extensions: permessage-deflate; bogus=1\r\n").await,
        None,
        "an offer it cannot accept is declined"
    );
    assert_eq!(
        answer("Sec-WebSocket-Extensions: x-unknown, permessage-deflate; bogus\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=\"10\"\r\n")
            .await
            .as_deref(),
        Some(&*format!("{full}; server_max_window_bits=10")),
        "the first acceptable offer of all the headers, its window limit repeated"
    );
    server.stop().await;

    let server = TestServer::with_config(Config {
        deflate: Switch::Off,
        ..Config::for_tests()
    })
    .await;
    let (_, answer) = upgrade(server.addr, "/ws?room=n&name=x", BROWSER_OFFER).await;
    assert_eq!(answer, None, "--deflate off");
    server.stop().await;
}

/// The property the design is for: one compression per room event, whatever the number of
/// receivers that negotiated deflate, and none for receivers that did not.
#[tokio::test]
async fn a_broadcast_is_compressed_once_for_every_receiver() {
    let server = TestServer::start().await;
    let mut deflaters = Vec::new();
    for i in 0..5 {
        deflaters.push(join_deflate(server.addr, "once", &format!("d{i}")).await.0);
        // Each joiner's `join` reaches those already in: read it so the room is quiet.
        for earlier in deflaters.iter_mut().take(i) {
            assert_eq!(json(&message(earlier).await)["type"], "join");
        }
    }
    let mut plain = RawClient::join(server.addr, "once", "plain").await;
    for d in &mut deflaters {
        assert_eq!(json(&message(d).await)["type"], "join");
    }
    let before = server.metrics().await;
    let compressions = before.value("wschat_deflate_compressions_total");
    let bytes_before = before.value("wschat_deflate_bytes_before_total");

    let text = "a chat message long enough to be worth compressing, ".repeat(4);
    plain
        .send(&client_frame(
            0x81,
            format!(r#"{{"type":"message","text":"{text}"}}"#).as_bytes(),
        ))
        .await;
    let mut seen = Vec::new();
    for d in &mut deflaters {
        let frame = d.frame().await.expect("the message");
        assert!(
            frame.rsv1,
            "compressed for a receiver that negotiated deflate"
        );
        seen.push(frame.payload.clone());
        let event = json(&payload(&frame));
        assert_eq!(
            (event["type"].as_str(), event["text"].as_str()),
            (Some("message"), Some(&*text))
        );
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "the same bytes for all"
    );
    let echo = plain.frame().await.expect("the sender's own copy");
    assert!(!echo.rsv1, "plain for a receiver that did not negotiate it");
    assert_eq!(json(&echo.payload)["text"], text);

    let after = server.metrics().await;
    assert_eq!(
        after.value("wschat_deflate_compressions_total") - compressions,
        1.0
    );
    let compressed_len = seen[0].len() as f64;
    assert_eq!(
        after.value("wschat_deflate_bytes_before_total") - bytes_before,
        echo.payload.len() as f64
    );
    assert!(compressed_len < echo.payload.len() as f64 / 2.0);
    server.stop().await;
}

#[tokio::test]
async fn compressed_messages_from_a_client_reach_the_room() {
    let server = TestServer::start().await;
    let (mut alice, _) = join_deflate(server.addr, "in", "alice").await;
    let mut bob = RawClient::join(server.addr, "in", "bob").await;
    assert_eq!(json(&message(&mut alice).await)["type"], "join");
    // Unfragmented, then fragmented with a ping between the fragments.
    alice
        .send(&compressed_text(
            r#"{"type":"message","text":"hello, compressed"}"#,
        ))
        .await;
    assert_eq!(
        json(&bob.frame().await.unwrap().payload)["text"],
        "hello, compressed"
    );
    let compressed = deflate(br#"{"type":"message","text":"in two frames"}"#);
    let (a, b) = compressed.split_at(compressed.len() / 2);
    let mut wire = client_frame(0x41, a);
    wire.extend(client_frame(0x89, b"mid"));
    wire.extend(client_frame(0x80, b));
    alice.send(&wire).await;
    assert_eq!(
        json(&bob.frame().await.unwrap().payload)["text"],
        "in two frames"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_welcome_with_a_long_history_arrives_compressed_and_whole() {
    let server = TestServer::start().await;
    let mut poster = RawClient::join(server.addr, "hist", "poster").await;
    for i in 0..100 {
        let text = format!("message number {i} of the history, with some words to compress");
        poster
            .send(&client_frame(
                0x81,
                format!(r#"{{"type":"message","text":"{text}"}}"#).as_bytes(),
            ))
            .await;
        assert_eq!(json(&poster.frame().await.unwrap().payload)["id"], i + 1);
    }
    for name in ["late1", "late2"] {
        let path = format!("/ws?room=hist&name={name}");
        let (mut raw, _) = upgrade(server.addr, &path, BROWSER_OFFER).await;
        let frame = raw.frame().await.expect("welcome");
        assert!(frame.rsv1, "the welcome is compressed");
        let inflated = inflate(&frame.payload);
        assert!(
            frame.payload.len() * 4 < inflated.len(),
            "{} of {}",
            frame.payload.len(),
            inflated.len()
        );
        let welcome = json(&inflated);
        assert_eq!(welcome["you"], name);
        let history = welcome["history"].as_array().unwrap();
        assert_eq!(history.len(), 100);
        assert_eq!(
            history[99]["text"],
            "message number 99 of the history, with some words to compress"
        );
    }
    server.stop().await;
}

/// A decompression bomb: about 8 KB on the wire that would inflate to 8 MiB. The chat's limit
/// (64 KiB) applies to the inflated bytes: 1009.
#[tokio::test]
async fn a_compressed_message_inflating_past_the_limit_is_1009() {
    let server = TestServer::start().await;
    let (mut raw, _) = join_deflate(server.addr, "bomb", "b").await;
    let bomb = deflate(&vec![b' '; 8 << 20]);
    assert!(bomb.len() < 20_000, "{}", bomb.len());
    raw.send(&client_frame(0xC1, &bomb)).await;
    assert_eq!(raw.finish_close().await, Some(1009));
    server.stop().await;
}

#[tokio::test]
async fn protocol_errors_of_compressed_messages() {
    let server = TestServer::start().await;
    // RSV1 on a control frame, on a continuation, and DEFLATE that is not.
    for (wire, code) in [
        (client_frame(0xC9, b""), 1002),
        (
            [client_frame(0x01, b"{"), client_frame(0xC0, b"}")].concat(),
            1002,
        ),
        (client_frame(0xC1, &[0xff, 0xff, 0xff]), 1007),
        // Inflated text that is not UTF-8.
        (client_frame(0xC1, &deflate(b"\xff\xfe not text")), 1007),
    ] {
        let (mut raw, _) = join_deflate(server.addr, "errors", "e").await;
        raw.send(&wire).await;
        assert_eq!(raw.finish_close().await, Some(code), "{wire:x?}");
    }
    // Without negotiation, RSV1 is a protocol error.
    let mut raw = RawClient::join(server.addr, "errors", "plain").await;
    raw.send(&compressed_text("{}")).await;
    assert_eq!(raw.finish_close().await, Some(1002));
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_limits_our_window_gets_plain_frames() {
    let server = TestServer::start().await;
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n";
    let (mut limited, answer) = upgrade(server.addr, "/ws?room=w&name=w9", offer).await;
    assert!(answer.unwrap().ends_with("server_max_window_bits=9"));
    let welcome = limited.frame().await.unwrap();
    assert!(!welcome.rsv1);
    // It may still send compressed messages.
    let text = "x".repeat(300);
    limited
        .send(&compressed_text(&format!(
            r#"{{"type":"message","text":"{text}"}}"#
        )))
        .await;
    let echo = limited.frame().await.unwrap();
    assert!(!echo.rsv1);
    assert_eq!(json(&echo.payload)["text"], text);
    server.stop().await;
}

#[tokio::test]
async fn echo_compresses_per_message() {
    let server = TestServer::with_config(Config {
        echo: true,
        ..Config::for_tests()
    })
    .await;
    let (mut raw, answer) = upgrade(server.addr, "/echo", BROWSER_OFFER).await;
    assert!(answer.is_some());
    let big = "echo ".repeat(1000);
    raw.send(&compressed_text(&big)).await;
    let frame = raw.frame().await.unwrap();
    assert!(frame.rsv1);
    assert_eq!(inflate(&frame.payload), big.as_bytes());
    // Under the threshold: plain.
    raw.send(&compressed_text("tiny")).await;
    let frame = raw.frame().await.unwrap();
    assert!(!frame.rsv1);
    assert_eq!(frame.payload, b"tiny");
    server.stop().await;
}
