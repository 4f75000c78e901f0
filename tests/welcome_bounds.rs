//! What one room can make the server send, whatever its members post: history bounded in bytes
//! (`--history-bytes`), so every welcome within its documented size, and presence events with a
//! bounded list of names. (What joiners that never read cost: `welcome_memory.rs`.)

mod common;

use std::time::Duration;

use common::peer::within;
use common::TestServer;
use wschat::chat::protocol::welcome_size_limit;
use wschat::Config;

/// The costliest text a message can have: one visible letter (a text of nothing but invisible
/// characters is refused as empty) and 4,095 NUL characters, each 6 bytes of JSON (`\u0000`).
fn costliest_text(config: &Config) -> String {
    format!("a{}", "\0".repeat(config.max_text_len - 1))
}

#[tokio::test]
async fn a_welcome_never_exceeds_its_documented_size() {
    let config = Config::for_tests();
    let limit = welcome_size_limit(
        config.history_bytes,
        config.welcome_users,
        config.max_name_len,
        config.max_room_len,
    );
    let server = TestServer::with_config(config.clone()).await;
    let room = "r".repeat(config.max_room_len);
    // The longest name, of 4-byte characters (percent-encoded in the query).
    let name = "%F0%9F%98%80".repeat(config.max_name_len);
    let other = format!(
        "%F0%9F%98%81{}",
        "%F0%9F%98%80".repeat(config.max_name_len - 1)
    );
    let (mut poster, _) = server.peer(&room, &name).await;
    let text = costliest_text(&config);
    for _ in 0..config.history {
        poster.say(&text).await;
        poster.event_of("message").await;
    }
    let (mut client, _) =
        tokio_tungstenite::connect_async(server.url(&format!("/ws?room={room}&name={other}")))
            .await
            .expect("connect");
    use futures_util::StreamExt;
    let welcome = within("the welcome", client.next())
        .await
        .expect("open")
        .expect("a frame")
        .into_text()
        .expect("text");
    let parsed: serde_json::Value = serde_json::from_str(&welcome).expect("JSON");
    assert!(
        !parsed["history"].as_array().unwrap().is_empty(),
        "some history is held"
    );
    assert!(
        welcome.len() <= limit,
        "welcome of {} bytes over its limit of {limit}",
        welcome.len()
    );
}

#[tokio::test]
async fn presence_events_carry_a_bounded_list_of_names() {
    let mut config = Config::for_tests();
    config.presence_threshold = 2;
    config.welcome_users = 3;
    config.presence_interval = Duration::from_millis(300);
    let server = TestServer::with_config(config).await;
    let (mut watcher, _) = server.peer("p", "watcher").await;
    let mut others = Vec::new();
    for i in 0..20 {
        others.push(server.peer("p", &format!("n{i:02}")).await.0);
    }
    let mut announced = 0;
    while announced < 20 {
        let event = watcher.event().await;
        match event["type"].as_str() {
            Some("join") => announced += 1,
            Some("presence") => {
                let names = event["joined"].as_array().unwrap().len();
                assert!(names <= 3, "at most --welcome-users names: {event}");
                let count = event["joined_count"].as_u64().unwrap() as usize;
                assert!(count >= names);
                announced += count;
            }
            _ => {}
        }
    }
    assert_eq!(announced, 20, "the counts add up");
}
