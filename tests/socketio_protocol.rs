//! `/socket.io/` packet by packet, from a plain WebSocket client that spells every Engine.IO and
//! Socket.IO packet out, beside native `/ws` clients in the same room. What the official client
//! libraries do with it is `socketio_clients.rs`; here each rule is shown on the wire, including
//! what no library would send (malformed packets, a client that never answers a ping).

mod common;

use std::time::Duration;

use common::{close_code, next_of_type, say, Client, TestServer, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use wschat::Config;

/// The path a Socket.IO client opens, with the chat's parameters after it.
fn sio_path(extra: &str) -> String {
    format!("/socket.io/?EIO=4&transport=websocket{extra}")
}

/// Connects at the Engine.IO level and returns the client and the open packet's JSON.
async fn open(server: &TestServer, extra: &str) -> (Client, Value) {
    let (mut client, _) = tokio_tungstenite::connect_async(server.url(&sio_path(extra)))
        .await
        .expect("connect");
    let open = next_text(&mut client).await;
    let json = open.strip_prefix('0').expect("the open packet comes first");
    (
        client,
        serde_json::from_str(json).expect("open packet JSON"),
    )
}

/// Connects and joins namespace `nsp` (`""` for `/`) with `auth`; returns the client and its
/// `welcome` event's object.
async fn connect(server: &TestServer, extra: &str, nsp: &str, auth: &str) -> (Client, Value) {
    let (mut client, _) = open(server, extra).await;
    send(&mut client, &format!("40{nsp}{auth}")).await;
    let answer = next_text(&mut client).await;
    assert!(answer.starts_with(&format!("40{nsp}")), "{answer}");
    let sid: Value = serde_json::from_str(&answer[2 + nsp.len()..]).unwrap();
    assert!(sid["sid"].is_string(), "{answer}");
    let welcome = next_sio_event(&mut client, nsp, "welcome").await;
    (client, welcome)
}

async fn send(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("send");
}

/// The next text frame, skipping WebSocket pings (Engine.IO pings are text, and returned).
async fn next_text(client: &mut Client) -> String {
    loop {
        let frame = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a frame before the timeout")
            .expect("connection open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next Socket.IO event named `name` on `nsp`, answering Engine.IO pings on the way; returns
/// its first argument.
async fn next_sio_event(client: &mut Client, nsp: &str, name: &str) -> Value {
    let prefix = format!("42{nsp}");
    loop {
        let text = next_text(client).await;
        if text == "2" {
            send(client, "3").await;
            continue;
        }
        let Some(array) = text.strip_prefix(&prefix) else {
            continue;
        };
        let array: Value = serde_json::from_str(array).expect("an event array");
        if array[0] == name {
            return array[1].clone();
        }
    }
}

/// Reads until the server's Engine.IO ping (`2`), skipping events.
async fn expect_ping(client: &mut Client) {
    loop {
        let text = next_text(client).await;
        if text == "2" {
            return;
        }
        assert!(text.starts_with("42"), "{text}");
    }
}

/// The next packet that is not an event or a ping.
async fn next_other(client: &mut Client) -> String {
    loop {
        let text = next_text(client).await;
        if !text.starts_with("42") && text != "2" {
            return text;
        }
    }
}

#[tokio::test]
async fn polling_and_engine_io_3_are_refused_with_their_reason() {
    let server = TestServer::start().await;
    for (query, code) in [
        ("EIO=4&transport=polling&t=abc", 0),
        ("EIO=3&transport=polling", 5),
        ("EIO=3&transport=websocket", 5),
        ("EIO=4&transport=websocket&sid=xyz", 1),
    ] {
        let (status, body) = server.get(&format!("/socket.io/?{query}")).await;
        assert_eq!(status, 400, "{query}");
        let body: Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(body["code"], code, "{query}");
        assert!(body["message"].is_string());
    }
    let (_, body) = server.get("/socket.io/?EIO=4&transport=polling").await;
    assert!(body.contains("transports: ['websocket']"), "{body}");
}

#[tokio::test]
async fn the_open_packet_names_the_heartbeat_and_the_limit() {
    let config = Config {
        socketio_ping_interval: Duration::from_millis(1500),
        socketio_ping_timeout: Duration::from_millis(700),
        ..Config::for_tests()
    };
    let server = TestServer::with_config(config).await;
    let (_client, open) = open(&server, "").await;
    assert!(open["sid"].as_str().is_some_and(|sid| !sid.is_empty()));
    assert_eq!(open["upgrades"], json!([]));
    assert_eq!(open["pingInterval"], 1500);
    assert_eq!(open["pingTimeout"], 700);
    assert_eq!(open["maxPayload"], Config::for_tests().max_message_size);
}

#[tokio::test]
async fn socketio_and_native_clients_chat_in_one_room_with_the_same_ids() {
    let server = TestServer::start().await;
    let (mut native, _) = server.join("room=mixed&name=nat").await;
    let (mut sio, welcome) = connect(&server, "&room=mixed&name=sio", "", "").await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["you"], "sio");
    assert_eq!(welcome["room"], "mixed");
    assert_eq!(next_of_type(&mut native, "join").await["name"], "sio");

    // A Socket.IO emit with an ack: the ack carries the id; both clients get the same message.
    send(&mut sio, r#"421["message","hello from sio"]"#).await;
    assert_eq!(next_other(&mut sio).await, r#"431[{"id":1}]"#);
    let seen_native = next_of_type(&mut native, "message").await;
    let seen_sio = next_sio_event(&mut sio, "", "message").await;
    assert_eq!(seen_native, seen_sio, "the same object on both wires");
    assert_eq!(seen_sio["id"], 1);
    assert_eq!(seen_sio["from"], "sio");
    assert_eq!(seen_sio["text"], "hello from sio");

    // `{text}` works too, and a native message reaches the Socket.IO client.
    send(&mut sio, r#"42["message",{"text":"object form"}]"#).await;
    assert_eq!(next_of_type(&mut native, "message").await["id"], 2);
    say(&mut native, "hello from native").await;
    let seen = next_sio_event(&mut sio, "", "message").await;
    let seen = if seen["id"] == 2 {
        next_sio_event(&mut sio, "", "message").await
    } else {
        seen
    };
    assert_eq!(
        (seen["id"].clone(), seen["from"].clone()),
        (json!(3), json!("nat"))
    );

    // Typing crosses too, and the native client sees the Socket.IO client leave.
    send(&mut sio, r#"42["typing"]"#).await;
    assert_eq!(next_of_type(&mut native, "typing").await["name"], "sio");
    send(&mut sio, "41").await;
    assert_eq!(next_of_type(&mut native, "leave").await["name"], "sio");
}

#[tokio::test]
async fn the_auth_object_chooses_room_and_name_in_the_chat_namespace() {
    let server = TestServer::start().await;
    let (mut native, _) = server.join("room=r2&name=nat").await;
    let (mut sio, welcome) = connect(
        &server,
        "&room=elsewhere",
        "/chat,",
        r#"{"room":"r2","name":"ann","token":"t"}"#,
    )
    .await;
    assert_eq!(
        (welcome["room"].clone(), welcome["you"].clone()),
        (json!("r2"), json!("ann"))
    );
    say(&mut native, "hi ann").await;
    let seen = next_sio_event(&mut sio, "/chat,", "message").await;
    assert_eq!(seen["text"], "hi ann");
    send(&mut sio, r#"42/chat,5["message","hi"]"#).await;
    assert_eq!(next_other(&mut sio).await, r#"43/chat,5[{"id":2}]"#);
}

#[tokio::test]
async fn bad_requests_are_answered_not_closed() {
    let config = Config {
        max_text_len: 10,
        ..Config::for_tests()
    };
    let server = TestServer::with_config(config).await;
    let (mut sio, _) = connect(&server, "", "", "").await;
    // Without an ack: an `error` event, as a native client gets.
    send(&mut sio, r#"42["message","far too long a text"]"#).await;
    let error = next_sio_event(&mut sio, "", "error").await;
    assert_eq!(error["code"], "too_long");
    send(&mut sio, r#"42["dance"]"#).await;
    assert_eq!(
        next_sio_event(&mut sio, "", "error").await["code"],
        "unknown_type"
    );
    // With an ack: the ack carries the error.
    send(&mut sio, r#"427["message","  "]"#).await;
    let ack = next_other(&mut sio).await;
    let ack: Value = serde_json::from_str(ack.strip_prefix("437").expect("ack 7")).unwrap();
    assert_eq!(ack[0]["error"]["code"], "empty");
    // A binary `message` is not text: bad_request; its attachment is read and dropped.
    send(
        &mut sio,
        r#"451-8["message",{"_placeholder":true,"num":0}]"#,
    )
    .await;
    sio.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let ack = next_other(&mut sio).await;
    assert!(
        ack.starts_with("438[{\"error\":{\"code\":\"bad_request\""),
        "{ack}"
    );
    // Still connected.
    send(&mut sio, r#"429["message","ok"]"#).await;
    assert_eq!(next_other(&mut sio).await, r#"439[{"id":1}]"#);
}

#[tokio::test]
async fn an_unknown_namespace_is_refused_and_the_connection_stays() {
    let server = TestServer::start().await;
    let (mut client, _) = open(&server, "").await;
    send(&mut client, "40/admin,").await;
    assert_eq!(
        next_text(&mut client).await,
        r#"44/admin,{"message":"Invalid namespace"}"#
    );
    send(&mut client, "40").await;
    assert!(next_text(&mut client).await.starts_with("40{\"sid\""));
}

#[tokio::test]
async fn a_bad_room_in_the_auth_object_is_a_connect_error() {
    let server = TestServer::start().await;
    let (mut client, _) = open(&server, "").await;
    send(&mut client, r#"40{"room":"no spaces"}"#).await;
    let answer = next_text(&mut client).await;
    assert!(
        answer.starts_with(r#"44{"message":"room must be"#),
        "{answer}"
    );
}

#[tokio::test]
async fn malformed_packets_close_the_connection() {
    let server = TestServer::start().await;
    for bad in [
        "42\"not an array\"",
        r#"42["connect"]"#,
        "4x",
        "0{}",
        "9",
        "40[1]",
        r#"455-["message"]"#,
    ] {
        let (mut client, _) = connect(&server, "", "", "").await;
        send(&mut client, bad).await;
        assert_eq!(close_code(&mut client).await, Some(1008), "{bad}");
    }
    // A binary frame nobody announced.
    let (mut client, _) = connect(&server, "", "", "").await;
    client.send(Message::binary(vec![0u8; 4])).await.unwrap();
    assert_eq!(close_code(&mut client).await, Some(1008));
    let metrics = server.metrics().await;
    assert!(
        metrics.value("wschat_socketio_errors_total{reason=\"socket.io: reserved event name\"}")
            >= 1.0
    );
}

#[tokio::test]
async fn the_server_pings_and_drops_a_client_that_does_not_answer() {
    let config = Config {
        socketio_ping_interval: Duration::from_millis(100),
        // Long beside the interval, so the answering client is never late on a loaded machine.
        socketio_ping_timeout: Duration::from_millis(1000),
        ..Config::for_tests()
    };
    let server = TestServer::with_config(config).await;
    let (mut native, _) = server.join("room=hb&name=nat").await;
    let (mut answering, _) = connect(&server, "&room=hb&name=answers", "", "").await;
    // The answering client answers on its own task, so it is never kept waiting by this one,
    // until told to stop; then it checks it is still in the room.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let answering = tokio::spawn(async move {
        let mut pings = 0;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                text = next_text(&mut answering) => {
                    if text == "2" {
                        pings += 1;
                        send(&mut answering, "3").await;
                    }
                }
            }
        }
        send(&mut answering, r#"421["message","still here"]"#).await;
        (pings, next_other(&mut answering).await)
    });
    let (mut silent, _) = connect(&server, "&room=hb&name=silent", "", "").await;
    // The silent one sees pings (`2`) and never answers: closed with 1001.
    expect_ping(&mut silent).await;
    assert_eq!(close_code(&mut silent).await, Some(1001));
    assert_eq!(next_of_type(&mut native, "leave").await["name"], "silent");
    // The answering one, connected before the silent one and so pinged as long, is still here.
    stop.send(()).unwrap();
    let (pings, ack) = answering.await.unwrap();
    assert!(pings >= 1);
    assert_eq!(ack, r#"431[{"id":1}]"#);
    server
        .expect_metric(
            "wschat_dropped_clients_total{reason=\"socketio_ping_timeout\"}",
            1.0,
        )
        .await;
}

#[tokio::test]
async fn a_client_that_connects_no_namespace_is_closed() {
    let config = Config {
        socketio_connect_timeout: Duration::from_millis(100),
        ..Config::for_tests()
    };
    let server = TestServer::with_config(config).await;
    let (mut client, _) = open(&server, "").await;
    assert_eq!(close_code(&mut client).await, Some(1008));
}

#[tokio::test]
async fn engine_close_ends_the_connection_and_leaves_the_room() {
    let server = TestServer::start().await;
    let (mut native, _) = server.join("room=bye&name=nat").await;
    let (mut sio, _) = connect(&server, "&room=bye&name=sio", "", "").await;
    send(&mut sio, "1").await;
    assert_eq!(close_code(&mut sio).await, Some(1000));
    assert_eq!(next_of_type(&mut native, "leave").await["name"], "sio");
    let metrics = server.metrics().await;
    assert_eq!(
        metrics.value("wschat_sessions_total{protocol=\"socketio\"}"),
        1.0
    );
    assert_eq!(
        metrics.value("wschat_sessions_total{protocol=\"native\"}"),
        1.0
    );
}

#[tokio::test]
async fn the_limits_of_ws_apply_to_socketio_too() {
    use common::raw::{http_exchange, upgrade_request};
    let config = Config {
        max_connections: 1,
        rate_limit: 1.0,
        rate_burst: 3.0,
        ..Config::for_tests()
    };
    let server = TestServer::with_config(config).await;
    let path = sio_path("");
    // The origin check.
    let request = upgrade_request(server.addr, &path, "Origin: http://elsewhere.example\r\n");
    let (head, _) = http_exchange(server.addr, request.as_bytes()).await;
    assert_eq!(head.status, 403);
    // The query's room and name, checked as on `/ws`.
    let request = upgrade_request(server.addr, &sio_path("&room=no%20spaces"), "");
    let (head, body) = http_exchange(server.addr, request.as_bytes()).await;
    assert_eq!(head.status, 400, "{body}");
    // The connection cap: the one slot is taken by the first client.
    let (mut sio, _) = connect(&server, "", "", "").await;
    let request = upgrade_request(server.addr, &path, "");
    let (head, _) = http_exchange(server.addr, request.as_bytes()).await;
    assert_eq!(head.status, 503);
    // The rate limit: past the burst, the `error` event `rate_limited`.
    for _ in 0..6 {
        send(&mut sio, r#"42["message","quick"]"#).await;
    }
    assert_eq!(
        next_sio_event(&mut sio, "", "error").await["code"],
        "rate_limited"
    );
}

#[tokio::test]
async fn disconnect_then_connect_again_on_one_connection() {
    let server = TestServer::start().await;
    let (mut native, _) = server.join("room=again&name=nat").await;
    let (mut sio, _) = connect(&server, "&room=again&name=sio", "", "").await;
    send(&mut sio, "41").await;
    assert_eq!(next_of_type(&mut native, "leave").await["name"], "sio");
    // Outside any namespace, an event (binary or not) is ignored, not fatal.
    send(&mut sio, r#"451-["message",{"_placeholder":true,"num":0}]"#).await;
    sio.send(Message::binary(vec![7u8])).await.unwrap();
    send(&mut sio, r#"42["message","into the void"]"#).await;
    // Connecting again joins the query's room again.
    send(&mut sio, "40").await;
    assert!(next_other(&mut sio).await.starts_with("40{\"sid\""));
    assert_eq!(next_of_type(&mut native, "join").await["name"], "sio");
    send(&mut sio, r#"421["message","back"]"#).await;
    assert_eq!(next_other(&mut sio).await, r#"431[{"id":1}]"#);
}

/// A room event is rewrapped for Socket.IO once per namespace, not once per receiver: three
/// Socket.IO members of one namespace cost one rewrap, a fourth in the other namespace one more.
#[tokio::test]
async fn a_room_event_is_rewrapped_once_per_namespace_whatever_the_receivers() {
    let server = TestServer::start().await;
    let mut root = Vec::new();
    for name in ["r1", "r2", "r3"] {
        root.push(
            connect(&server, &format!("&room=once&name={name}"), "", "")
                .await
                .0,
        );
    }
    let (mut chat, _) = connect(&server, "&room=once&name=c1", "/chat,", "").await;
    let (mut native, _) = server.join("room=once&name=nat").await;
    // Every join so far has been seen by everyone, so the count is settled before the message.
    for client in root.iter_mut() {
        while next_sio_event(client, "", "join").await["name"] != "nat" {}
    }
    while next_sio_event(&mut chat, "/chat,", "join").await["name"] != "nat" {}
    let encodings = || server.shared.metrics.socketio_encodings.get();
    let before = encodings();

    say(&mut native, "to everyone").await;
    for client in root.iter_mut() {
        assert_eq!(
            next_sio_event(client, "", "message").await["text"],
            "to everyone"
        );
    }
    assert_eq!(
        next_sio_event(&mut chat, "/chat,", "message").await["text"],
        "to everyone"
    );
    assert_eq!(
        next_of_type(&mut native, "message").await["text"],
        "to everyone"
    );
    assert_eq!(
        encodings() - before,
        2,
        "one rewrap for `/`, one for `/chat`"
    );
}
