//! `--trace-frames` on the real binary: what a learner reads in the log. Every line names its
//! connection; the handshake shows the key and the accept; text shows as text; a close shows its
//! code and reason; an outgoing frame is logged with the write that carried it; and
//! `--trace-frames=ID` follows one connection.

mod common;

use std::time::{Duration, Instant};

use common::binary::Binary;
use common::WAIT;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `path`; returns the client and the `Sec-WebSocket-Accept` the server answered.
async fn connect(server: &Binary, path: &str) -> (Client, String) {
    let (client, response) =
        tokio_tungstenite::connect_async(format!("ws://{}{path}", server.addr))
            .await
            .expect("connect");
    let accept = response.headers()["sec-websocket-accept"]
        .to_str()
        .unwrap()
        .to_owned();
    (client, accept)
}

/// Reads text frames until one contains `needle`.
async fn read_until(client: &mut Client, needle: &str) {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = client.next().await {
            if let Message::Text(text) = message {
                if text.contains(needle) {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "never received {needle:?}");
}

/// Collects log lines until every predicate has matched one (or [`WAIT`] passes); returns them.
fn collect_until(server: &Binary, wanted: &[&dyn Fn(&str) -> bool]) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut lines = Vec::new();
    while Instant::now() < deadline
        && !wanted
            .iter()
            .all(|want| lines.iter().any(|l: &String| want(l)))
    {
        if let Ok(line) = server.lines.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
    }
    lines
}

#[tokio::test]
async fn one_message_can_be_followed_to_every_member_of_the_room() {
    let server = Binary::start_logging(&["--trace-frames"], None);
    let (mut alice, alice_accept) = connect(&server, "/ws?room=lesson&name=alice").await;
    read_until(&mut alice, "welcome").await;
    let (mut bob, _) = connect(&server, "/ws?room=lesson&name=bob").await;
    read_until(&mut bob, "welcome").await;

    alice
        .send(Message::text(
            r#"{"type":"message","text":"hello \"bob\""}"#,
        ))
        .await
        .unwrap();
    read_until(&mut bob, "hello").await;
    alice
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();

    let handshake = |l: &str| {
        l.contains("conn{id=1 nick=alice}")
            && l.contains("handshake key=")
            && l.contains(&format!("accept={alice_accept}"))
    };
    // The text itself, escaped as it is in the JSON, on alice's line and on bob's.
    let text = r#""text":"hello \"bob\"""#;
    let alice_in =
        |l: &str| l.contains("conn{id=1 nick=alice}") && l.contains("in  FIN") && l.contains(text);
    let bob_out = |l: &str| {
        l.contains("conn{id=2 nick=bob}")
            && l.contains("out FIN")
            && l.contains("unmasked")
            && l.contains(text)
            && l.contains("(write #")
    };
    // The welcome is queued in two pieces (bob's part, the room's shared history): one frame.
    let welcome = |l: &str| {
        l.contains("conn{id=2 nick=bob}")
            && l.contains("out FIN")
            && l.contains(r#"|{"type":"welcome""#)
    };
    let bob_write = |l: &str| l.contains("conn{id=2 nick=bob}") && l.contains(" complete");
    let close_in = |l: &str| {
        l.contains("conn{id=1 nick=alice}")
            && l.contains("in ")
            && l.contains("Close")
            && l.contains(r#"code=1000 reason="bye""#)
    };
    let close_out = |l: &str| {
        l.contains("conn{id=1 nick=alice}") && l.contains("out ") && l.contains("code=1000")
    };
    let wanted: [&dyn Fn(&str) -> bool; 7] = [
        &handshake, &welcome, &alice_in, &bob_out, &bob_write, &close_in, &close_out,
    ];
    let lines = collect_until(&server, &wanted);
    drop(server);
    let log = lines.join("\n");
    for (i, want) in wanted.iter().enumerate() {
        assert!(
            lines.iter().any(|l| want(l)),
            "line {i} missing from:\n{log}"
        );
    }
    // The number in `out … (write #N)` names a `write #N` line of the same connection.
    let out = lines.iter().find(|l| bob_out(l)).unwrap();
    let number = out.rsplit("(write #").next().unwrap().trim_end_matches(')');
    assert!(
        lines
            .iter()
            .any(|l| l.contains("conn{id=2 nick=bob}") && l.contains(&format!("write #{number}:"))),
        "no write #{number} line:\n{log}"
    );
    assert!(!log.contains("not a frame"), "{log}");
    assert_eq!(
        lines.iter().filter(|l| welcome(l)).count(),
        1,
        "one welcome frame for bob:\n{log}"
    );
    // Piped to a test, not a terminal: no colour codes.
    assert!(!log.contains('\x1b'), "colour codes in:\n{log}");
}

#[tokio::test]
async fn trace_frames_with_an_id_follows_that_connection_only() {
    let server = Binary::start_logging(&["--trace-frames=2"], None);
    let (mut first, _) = connect(&server, "/echo").await;
    let (mut second, _) = connect(&server, "/echo").await;
    for (client, text) in [(&mut first, "to the first"), (&mut second, "to the second")] {
        client.send(Message::text(text)).await.unwrap();
        read_until(client, text).await;
    }

    let second_echo = |l: &str| l.contains("conn{id=2}") && l.contains(r#"out FIN"#);
    let lines = collect_until(&server, &[&second_echo]);
    drop(server);
    let log = lines.join("\n");
    assert!(lines.iter().any(|l| second_echo(l)), "{log}");
    // Every handshake is logged (that is where a learner reads the id to follow) ...
    assert!(
        lines
            .iter()
            .any(|l| l.contains("conn{id=1}") && l.contains("handshake")),
        "{log}"
    );
    // ... but no frame of the first connection.
    assert!(!log.contains("to the first"), "{log}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("conn{id=1}") && !l.contains("handshake")),
        "{log}"
    );
}

/// With permessage-deflate, a compressed frame's line shows RSV1 (`rsv=4`) and both sizes: the
/// compressed `len` on the wire and what it `inflated` to, with the inflated text as preview.
#[tokio::test]
async fn compressed_frames_show_rsv1_and_both_sizes() {
    use common::raw::{client_frame, upgrade_request, RawClient};
    let server = Binary::start_logging(&["--trace-frames"], None);
    let mut raw = RawClient::connect(server.addr).await;
    let offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    raw.send(upgrade_request(server.addr, "/ws?room=zip&name=zoe", offer).as_bytes())
        .await;
    assert_eq!(raw.response_head().await.status, 101);
    raw.frame().await.expect("welcome");
    let text = "squeeze me ".repeat(20);
    let json = format!(r#"{{"type":"message","text":"{text}"}}"#);
    let mut compress = flate2::Compress::new(flate2::Compression::default(), false);
    let mut compressed = Vec::with_capacity(json.len() + 64);
    compress
        .compress_vec(
            json.as_bytes(),
            &mut compressed,
            flate2::FlushCompress::Sync,
        )
        .unwrap();
    compressed.truncate(compressed.len() - 4); // RFC 7692 section 7.2.1
    raw.send(&client_frame(0xC1, &compressed)).await;
    let echo = raw.frame().await.expect("the message back");
    assert!(echo.rsv1);

    let inbound = format!(
        "in  FIN  rsv=4 Text   masked   len={} inflated={} |{{\"type\":\"message\"",
        compressed.len(),
        json.len()
    );
    let outbound = format!(
        "out FIN  rsv=4 Text   unmasked len={} inflated=",
        echo.payload.len()
    );
    let lines = collect_until(
        &server,
        &[&|l: &str| l.contains(&inbound), &|l: &str| {
            l.contains(&outbound) && l.contains("squeeze me")
        }],
    );
    assert!(
        lines.iter().any(|l| l.contains(&inbound)),
        "{inbound}\n{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(&outbound)),
        "{outbound}\n{lines:#?}"
    );
}
