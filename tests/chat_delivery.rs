//! Messages reach everyone in the room, in order, with ids, and nobody outside it.

mod common;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn two_clients_chat() {
    let server = TestServer::start().await;
    let (mut ann, welcome) = server.join("room=r1&name=ann").await;
    assert_eq!(welcome["you"], "ann");
    assert_eq!(welcome["room"], "r1");
    assert_eq!(welcome["last_id"], 0);
    let (mut bob, welcome) = server.join("room=r1&name=bob").await;
    assert_eq!(welcome["users"], serde_json::json!(["ann", "bob"]));
    assert_eq!(
        next_event(&mut ann).await,
        serde_json::json!({"type":"join","name":"bob"})
    );

    say(&mut ann, "hello bob").await;
    for client in [&mut ann, &mut bob] {
        let message = next_event(client).await;
        assert_eq!(message["type"], "message");
        assert_eq!(message["id"], 1);
        assert_eq!(message["from"], "ann");
        assert_eq!(message["room"], "r1");
        assert_eq!(message["text"], "hello bob");
        assert!(message["ts"].as_u64().unwrap() > 1_600_000_000_000);
    }
    say(&mut bob, "hi ann").await;
    assert_eq!(next_event(&mut ann).await["id"], 2);
    assert_eq!(next_event(&mut bob).await["text"], "hi ann");
}

#[tokio::test]
async fn rooms_are_isolated() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("room=a&name=ann").await;
    let (mut bob, _) = server.join("room=b&name=bob").await;
    say(&mut bob, "only for b").await;
    assert_eq!(next_event(&mut bob).await["text"], "only for b");
    say(&mut ann, "only for a").await;
    // Ann's next event is her own message: nothing from room b came first.
    let event = next_event(&mut ann).await;
    assert_eq!(
        (event["text"].as_str(), event["id"].as_u64()),
        (Some("only for a"), Some(1))
    );
}

#[tokio::test]
async fn plain_text_frames_are_messages() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("name=ann").await;
    ann.send(Message::text("just words")).await.unwrap();
    let event = next_event(&mut ann).await;
    assert_eq!(
        (event["type"].as_str(), event["text"].as_str()),
        (Some("message"), Some("just words"))
    );
    assert_eq!(event["room"], "lobby", "the default room");
}

#[tokio::test]
async fn unservable_requests_get_an_error_and_the_connection_stays() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("name=ann").await;
    for (request, code) in [
        (r#"{"type":"message","text":""}"#.to_string(), "empty"),
        (
            serde_json::json!({"type":"message","text":"x".repeat(5000)}).to_string(),
            "too_long",
        ),
        (r#"{"type":"dance"}"#.to_string(), "unknown_type"),
        (r#"{"type":"message"}"#.to_string(), "bad_request"),
    ] {
        ann.send(Message::text(request)).await.unwrap();
        let error = next_event(&mut ann).await;
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str()),
            (Some("error"), Some(code))
        );
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    say(&mut ann, "still here").await;
    assert_eq!(next_event(&mut ann).await["text"], "still here");
}

#[tokio::test]
async fn typing_reaches_others_but_not_the_typist() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("name=ann").await;
    let (mut bob, _) = server.join("name=bob").await;
    next_event(&mut ann).await; // bob's join
    ann.send(Message::text(r#"{"type":"typing"}"#))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut bob).await,
        serde_json::json!({"type":"typing","name":"ann"})
    );
    // If ann had been sent her own typing event it would arrive before this message.
    say(&mut ann, "done typing").await;
    assert_eq!(next_event(&mut ann).await["type"], "message");
}

#[tokio::test]
async fn guests_get_distinct_names() {
    let server = TestServer::start().await;
    let (_a, first) = server.join("").await;
    let (_b, second) = server.join("room=lobby").await;
    let (a, b) = (
        first["you"].as_str().unwrap(),
        second["you"].as_str().unwrap(),
    );
    assert!(
        a.starts_with("guest-") && b.starts_with("guest-") && a != b,
        "{a} {b}"
    );
}
