//! `--redis`: two servers on one Redis serve the same rooms, with one id sequence, the history in
//! Redis (so it outlives a server) and the room's epoch in every welcome.
//!
//! Each test starts its own `redis-server` (tests/common/redis.rs); without one installed they
//! print `SKIPPED` and pass, unless `WSCHAT_REQUIRE_REDIS=1` (CI).

mod common;

use common::redis::RedisServer;
use common::{next_of_type, say, TestServer};
use serde_json::Value;
use wschat::Config;

async fn server_on(redis: &RedisServer) -> TestServer {
    TestServer::with_config(Config {
        redis: Some(redis.url()),
        ..Config::for_tests()
    })
    .await
}

fn ids(history: &Value) -> Vec<u64> {
    history
        .as_array()
        .expect("history is a list")
        .iter()
        .map(|m| m["id"].as_u64().expect("an id"))
        .collect()
}

#[tokio::test]
async fn a_message_reaches_both_servers_with_one_id_sequence() {
    let Some(redis) = RedisServer::start("redis_rooms").await else {
        return;
    };
    let (a, b) = (server_on(&redis).await, server_on(&redis).await);
    let (mut ann, ann_welcome) = a.join("room=shared&name=ann").await;
    let (mut bob, bob_welcome) = b.join("room=shared&name=bob").await;
    assert_eq!(ann_welcome["epoch"], bob_welcome["epoch"], "one room");
    assert_eq!(ann_welcome["epoch"].as_str().map(str::len), Some(16));

    say(&mut ann, "from a").await;
    say(&mut bob, "from b").await;
    say(&mut ann, "from a again").await;
    let mut orders = Vec::new();
    for client in [&mut ann, &mut bob] {
        // Each message exactly once, ids one sequence: a repeat or a gap would show here.
        let mut seen = Vec::new();
        for _ in 0..3 {
            let message = next_of_type(client, "message").await;
            seen.push((message["id"].as_u64().unwrap(), message["text"].clone()));
        }
        assert_eq!(
            seen.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        orders.push(seen);
    }
    // One order on both servers. Which of two processes' posts Redis ran first is theirs to
    // race (each process pipelines its own), but one sender's posts keep their order.
    assert_eq!(orders[0], orders[1], "both servers deliver one order");
    let texts: Vec<_> = orders[0].iter().map(|(_, text)| text.clone()).collect();
    let first = texts.iter().position(|t| t == "from a").unwrap();
    let again = texts.iter().position(|t| t == "from a again").unwrap();
    assert!(first < again, "ann's posts in her order: {texts:?}");
}

#[tokio::test]
async fn history_outlives_the_server_and_resume_follows_the_epoch() {
    let Some(redis) = RedisServer::start("redis_rooms").await else {
        return;
    };
    let a = server_on(&redis).await;
    let (mut ann, welcome) = a.join("room=kept&name=ann").await;
    let epoch = welcome["epoch"].as_str().unwrap().to_owned();
    for text in ["one", "two", "three"] {
        say(&mut ann, text).await;
    }
    let mut last = Value::Null;
    for _ in 0..3 {
        last = next_of_type(&mut ann, "message").await;
    }
    assert_eq!(last["id"], 3);
    drop(ann);
    a.stop().await;

    // Another process, started after the first is gone: the room is Redis's, not a process's.
    let b = server_on(&redis).await;
    let (_cat, welcome) = b.join("room=kept&name=cat").await;
    assert_eq!(
        welcome["epoch"],
        epoch.as_str(),
        "the same life of the room"
    );
    assert_eq!(welcome["last_id"], 3);
    assert_eq!(ids(&welcome["history"]), [1, 2, 3]);
    assert_eq!(welcome["history"][2]["text"], "three");

    let (_dan, welcome) = b
        .join(&format!("room=kept&name=dan&since=1&epoch={epoch}"))
        .await;
    assert_eq!(ids(&welcome["history"]), [2, 3], "exactly the gap");
    assert_eq!(welcome["truncated"], false);

    // A cursor from another life of the room counts nothing here.
    let (_eve, welcome) = b.join("room=kept&name=eve&since=3&epoch=1").await;
    assert_eq!(welcome["truncated"], true);
    assert_eq!(ids(&welcome["history"]), [1, 2, 3]);

    // The ids go on from Redis's count, not from 1.
    let (mut fay, _) = b.join("room=kept&name=fay").await;
    say(&mut fay, "four").await;
    assert_eq!(next_of_type(&mut fay, "message").await["id"], 4);
}

#[tokio::test]
async fn history_is_as_long_as_the_flag_says() {
    let Some(redis) = RedisServer::start("redis_rooms").await else {
        return;
    };
    let server = TestServer::with_config(Config {
        redis: Some(redis.url()),
        history: 2,
        ..Config::for_tests()
    })
    .await;
    let (mut ann, _) = server.join("room=short&name=ann").await;
    for text in ["one", "two", "three"] {
        say(&mut ann, text).await;
    }
    for _ in 0..3 {
        next_of_type(&mut ann, "message").await;
    }
    let (_bob, welcome) = server.join("room=short&name=bob&since=0").await;
    assert_eq!(ids(&welcome["history"]), [2, 3]);
    assert_eq!(welcome["truncated"], true, "message 1 is gone");
}

/// The next text frame of a raw Engine.IO client, answering the server's pings (`2`).
async fn sio_next(client: &mut common::Client) -> String {
    loop {
        let frame = tokio::time::timeout(common::WAIT, futures_util::StreamExt::next(client))
            .await
            .expect("a frame before the timeout")
            .expect("connection open")
            .expect("a valid frame");
        match frame {
            tungstenite::Message::Text(text) if text.as_str() == "2" => {
                futures_util::SinkExt::send(client, tungstenite::Message::text("3"))
                    .await
                    .unwrap();
            }
            tungstenite::Message::Text(text) => return text.to_string(),
            _ => {}
        }
    }
}

async fn sio_send(client: &mut common::Client, packet: &str) {
    futures_util::SinkExt::send(client, tungstenite::Message::text(packet))
        .await
        .unwrap();
}

/// Reads `/chat` packets until both the ack of `ack` and the `message` event with `text` have
/// come (in either order: see `ack_reply` in src/wire/socketio/session.rs); returns them.
async fn sio_ack_and_message(client: &mut common::Client, ack: u64, text: &str) -> (Value, Value) {
    let (mut acked, mut message) = (None, None);
    let ack_prefix = format!("43/chat,{ack}");
    while acked.is_none() || message.is_none() {
        let packet = sio_next(client).await;
        if let Some(args) = packet.strip_prefix(&ack_prefix) {
            acked = Some(serde_json::from_str::<Value>(args).unwrap()[0].clone());
        } else if let Some(event) = packet.strip_prefix("42/chat,") {
            let event: Value = serde_json::from_str(event).unwrap();
            if event[0] == "message" && event[1]["text"] == text {
                message = Some(event[1].clone());
            }
        }
    }
    (acked.unwrap(), message.unwrap())
}

#[tokio::test]
async fn a_socket_io_client_and_a_native_client_share_a_room_across_servers() {
    let Some(redis) = RedisServer::start("redis_rooms").await else {
        return;
    };
    let (a, b) = (server_on(&redis).await, server_on(&redis).await);
    let (mut bob, _) = b.join("room=mixed&name=bob").await;

    // Socket.IO on server a, spelled out packet by packet.
    let (mut sio, _) =
        tokio_tungstenite::connect_async(a.url("/socket.io/?EIO=4&transport=websocket"))
            .await
            .expect("socket.io is served under --redis");
    assert!(
        sio_next(&mut sio).await.starts_with("0{"),
        "the open packet"
    );
    sio_send(&mut sio, r#"40/chat,{"room":"mixed","name":"sio"}"#).await;
    assert!(sio_next(&mut sio).await.starts_with("40/chat,{\"sid\""));
    let welcome = sio_next(&mut sio).await;
    let welcome: Value = serde_json::from_str(welcome.strip_prefix("42/chat,").unwrap()).unwrap();
    assert_eq!(welcome[0], "welcome");
    assert_eq!(
        (welcome[1]["users"].clone(), welcome[1]["count"].clone()),
        (serde_json::json!(["bob", "sio"]), serde_json::json!(2)),
        "the users of both servers"
    );
    assert_eq!(next_of_type(&mut bob, "join").await["name"], "sio");

    // One id sequence: the ack carries the id Redis gave the message, which bob sees too.
    sio_send(&mut sio, r#"42/chat,1["message","hello from socket.io"]"#).await;
    let (ack, message) = sio_ack_and_message(&mut sio, 1, "hello from socket.io").await;
    assert_eq!(ack, serde_json::json!({"id": 1}));
    assert_eq!(message["id"], 1);
    let seen = next_of_type(&mut bob, "message").await;
    assert_eq!(seen, message, "one object on both wires");

    say(&mut bob, "hello back").await;
    let (_, from_bob) = {
        let mut seen = Value::Null;
        while seen["text"] != "hello back" {
            let packet = sio_next(&mut sio).await;
            if let Some(event) = packet.strip_prefix("42/chat,") {
                let event: Value = serde_json::from_str(event).unwrap();
                if event[0] == "message" {
                    seen = event[1].clone();
                }
            }
        }
        ((), seen)
    };
    assert_eq!(
        (from_bob["id"].as_u64(), from_bob["from"].as_str()),
        (Some(2), Some("bob"))
    );

    // A post Redis refuses is acked with the error, to the poster alone.
    redis.command(&["CONFIG", "SET", "maxmemory", "1"]);
    sio_send(&mut sio, r#"42/chat,2["message","lost"]"#).await;
    loop {
        let packet = sio_next(&mut sio).await;
        if let Some(args) = packet.strip_prefix("43/chat,2") {
            let args: Value = serde_json::from_str(args).unwrap();
            assert_eq!(args[0]["error"]["code"], "unavailable", "{packet}");
            break;
        }
    }
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]);
    sio_send(&mut sio, r#"42/chat,3["message","kept"]"#).await;
    let (ack, _) = sio_ack_and_message(&mut sio, 3, "kept").await;
    assert_eq!(ack, serde_json::json!({"id": 3}));

    // Leaving is announced on the other server as well.
    drop(sio);
    let left = next_of_type(&mut bob, "leave").await;
    assert_eq!(left["name"], "sio");
}

#[tokio::test]
async fn a_redis_that_cannot_be_reached_stops_the_server_before_it_listens() {
    // A port nobody listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let result = wschat::Server::bind(Config {
        redis: Some(format!("redis://127.0.0.1:{port}/")),
        ..Config::for_tests()
    })
    .await;
    let error = result.err().expect("no server without its redis");
    assert!(error.to_string().contains("--redis"), "{error}");
}

#[tokio::test]
async fn a_lost_redis_is_said_on_healthz_and_to_new_clients() {
    let Some(redis) = RedisServer::start("redis_rooms").await else {
        return;
    };
    let server = server_on(&redis).await;
    let (_ann, _) = server.join("room=down&name=ann").await;
    assert_eq!(server.get("/healthz").await.0, 200);
    drop(redis);
    // The subscription notices the closed connection by itself; wait for it, within WAIT.
    let deadline = std::time::Instant::now() + common::WAIT;
    while server.get("/healthz").await.0 != 503 {
        assert!(
            std::time::Instant::now() < deadline,
            "/healthz still says ok"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for path in [
        "/ws?room=down&name=bob",
        "/socket.io/?EIO=4&transport=websocket",
    ] {
        match tokio_tungstenite::connect_async(server.url(path)).await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
            other => panic!("{path}: expected a 503, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn typing_reaches_the_other_server_and_not_the_typist() {
    let Some(redis) = RedisServer::start("redis_rooms").await else {
        return;
    };
    let (a, b) = (server_on(&redis).await, server_on(&redis).await);
    let (mut ann, _) = a.join("room=typing&name=ann").await;
    let (mut bob, _) = b.join("room=typing&name=bob").await;
    let typing = serde_json::json!({"type": "typing"}).to_string();
    futures_util::SinkExt::send(&mut ann, tungstenite::Message::text(typing))
        .await
        .unwrap();
    say(&mut ann, "done typing").await;
    let event = common::next_event(&mut bob).await;
    assert_eq!(
        (event["type"].as_str(), event["name"].as_str()),
        (Some("typing"), Some("ann"))
    );
    assert_eq!(next_of_type(&mut bob, "message").await["id"], 1);
    // Ann's typing came back to her process too, after which her message did: skipped by origin.
    // (Bob's `join` reached her before either: presence is shared too.)
    let event = loop {
        let event = common::next_event(&mut ann).await;
        if event["type"] != "join" {
            break event;
        }
    };
    assert_eq!(
        event["type"], "message",
        "the typist does not hear herself: {event}"
    );
}

#[tokio::test]
async fn a_post_redis_refuses_is_answered_to_its_sender_alone() {
    let Some(redis) = RedisServer::start("redis_rooms").await else {
        return;
    };
    let server = server_on(&redis).await;
    let (mut ann, _) = server.join("room=full&name=ann").await;
    let (mut bob, _) = server.join("room=full&name=bob").await;
    next_of_type(&mut ann, "join").await;
    // A Redis out of memory refuses every write (the post's script) but still publishes.
    redis.command(&["CONFIG", "SET", "maxmemory", "1"]);
    say(&mut ann, "lost").await;
    let error = next_of_type(&mut ann, "error").await;
    assert_eq!(error["code"], "unavailable");
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]);
    say(&mut ann, "delivered").await;
    // Bob saw neither the error nor the lost message: his next event is the one delivered.
    let event = common::next_event(&mut bob).await;
    assert_eq!(
        (event["id"].as_u64(), event["text"].as_str()),
        (Some(1), Some("delivered")),
        "{event}"
    );
}

#[tokio::test]
async fn a_socket_io_connect_redis_cannot_serve_is_a_connect_error() {
    let Some(redis) = RedisServer::start("redis_rooms").await else {
        return;
    };
    let server = server_on(&redis).await;
    // Out of memory, Redis refuses the scripts that load the room and count the joiner.
    redis.command(&["CONFIG", "SET", "maxmemory", "1"]);
    let (mut sio, _) =
        tokio_tungstenite::connect_async(server.url("/socket.io/?EIO=4&transport=websocket"))
            .await
            .expect("upgraded");
    assert!(
        sio_next(&mut sio).await.starts_with("0{"),
        "the open packet"
    );
    sio_send(&mut sio, r#"40/chat,{"room":"refused","name":"sio"}"#).await;
    let answer = sio_next(&mut sio).await;
    let error: Value = serde_json::from_str(
        answer
            .strip_prefix("44/chat,")
            .unwrap_or_else(|| panic!("a connect_error, got {answer}")),
    )
    .unwrap();
    assert!(
        error["message"].as_str().unwrap().contains("redis"),
        "{error}"
    );
    // Redis serves again: the same connection may connect now.
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]);
    sio_send(&mut sio, r#"40/chat,{"room":"refused","name":"sio"}"#).await;
    assert!(sio_next(&mut sio).await.starts_with("40/chat,"));
}

#[tokio::test]
async fn each_server_receives_a_message_once_whatever_its_number_of_members() {
    let Some(redis) = RedisServer::start("redis_rooms").await else {
        return;
    };
    let (a, b) = (server_on(&redis).await, server_on(&redis).await);
    let mut crowd = Vec::new();
    for name in ["ann", "bob", "cat", "dan"] {
        crowd.push(a.join(&format!("room=count&name={name}")).await.0);
    }
    let (mut eve, _) = b.join("room=count&name=eve").await;
    // Everyone has everyone's join behind them before the count starts.
    for client in crowd.iter_mut() {
        say(client, "hello").await;
    }
    for _ in 0..4 {
        next_of_type(&mut eve, "message").await;
    }
    let received = |metrics: &common::raw::Metrics| metrics.value("wschat_redis_received_total");
    let (before_a, before_b) = (received(&a.metrics().await), received(&b.metrics().await));
    for i in 0..10 {
        say(&mut eve, &format!("m{i}")).await;
    }
    for client in crowd.iter_mut().chain([&mut eve]) {
        let mut seen = 0;
        while seen < 10 {
            if next_of_type(client, "message").await["from"] == "eve" {
                seen += 1;
            }
        }
    }
    // Ten posts: ten published messages on each server, four members or one.
    assert_eq!(received(&a.metrics().await) - before_a, 10.0);
    assert_eq!(received(&b.metrics().await) - before_b, 10.0);
}
