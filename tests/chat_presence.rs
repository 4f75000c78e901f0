//! Who is online: joins and leaves per nickname, and coalesced presence in large rooms.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn leave_is_announced_when_a_client_closes() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("room=p&name=ann").await;
    let (mut bob, _) = server.join("room=p&name=bob").await;
    next_event(&mut ann).await;
    bob.close(None).await.unwrap();
    assert_eq!(
        next_event(&mut ann).await,
        serde_json::json!({"type":"leave","name":"bob"})
    );
}

#[tokio::test]
async fn leave_is_announced_when_tcp_drops_mid_frame() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("room=p&name=ann").await;
    let mut raw = raw_handshake(&server, "/ws?room=p&name=bob").await;
    next_event(&mut ann).await; // bob's join
                                // Half a frame header, then the connection is gone.
    raw.write_all(&[0x81]).await.unwrap();
    drop(raw);
    assert_eq!(
        next_event(&mut ann).await,
        serde_json::json!({"type":"leave","name":"bob"})
    );
    // Nothing leaked: the room has only ann.
    let room = server.shared.hub.room("p").expect("room");
    assert_eq!(room.user_count(), 1);
}

#[tokio::test]
async fn a_second_tab_shares_the_nickname_without_flapping() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("room=t&name=ann").await;
    let (bob1, _) = server.join("room=t&name=bob").await;
    assert_eq!(next_event(&mut ann).await["type"], "join");
    let (bob2, welcome) = server.join("room=t&name=bob").await;
    assert_eq!(welcome["users"], serde_json::json!(["ann", "bob"]));
    drop(bob1);
    // No leave for bob yet: prove it by a message arriving first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    say(&mut ann, "marker").await;
    assert_eq!(next_event(&mut ann).await["text"], "marker");
    drop(bob2);
    assert_eq!(
        next_event(&mut ann).await,
        serde_json::json!({"type":"leave","name":"bob"})
    );
}

#[tokio::test]
async fn large_rooms_get_coalesced_presence() {
    let mut config = wschat::Config::for_tests();
    config.presence_threshold = 3;
    config.presence_interval = Duration::from_millis(200);
    config.welcome_users = 2;
    let server = TestServer::with_config(config).await;
    let (mut watcher, _) = server.join("room=big&name=a").await;
    let mut others = Vec::new();
    for nick in ["b", "c"] {
        others.push(server.join(&format!("room=big&name={nick}")).await.0);
        assert_eq!(next_event(&mut watcher).await["type"], "join");
    }
    for nick in ["d", "e", "f"] {
        others.push(server.join(&format!("room=big&name={nick}")).await.0);
    }
    let presence = next_event(&mut watcher).await;
    assert_eq!(presence["type"], "presence", "{presence}");
    // At most --welcome-users names, and how many there were.
    assert_eq!(presence["joined"], serde_json::json!(["d", "e"]));
    assert_eq!(presence["joined_count"], 3);
    assert_eq!(presence["count"], 6);
    let (_g, welcome) = server.join("room=big&name=g").await;
    assert_eq!(
        welcome["users"].as_array().unwrap().len(),
        2,
        "a bounded first page"
    );
    assert_eq!(welcome["count"], 7);
    others[0].close(None).await.unwrap();
    let presence = next_of_type(&mut watcher, "presence").await;
    assert_eq!(presence["joined"], serde_json::json!(["g"]));
    assert_eq!(presence["left"], serde_json::json!(["b"]));
}
