//! Late joiners get the room's history; reconnecting clients resume after their last id.

mod common;

use common::*;

fn ids(welcome: &serde_json::Value) -> Vec<u64> {
    welcome["history"]
        .as_array()
        .expect("history array")
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_late_joiner_gets_history() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("room=h&name=ann").await;
    for text in ["one", "two", "three"] {
        say(&mut ann, text).await;
        next_event(&mut ann).await;
    }
    let (_bob, welcome) = server.join("room=h&name=bob").await;
    assert_eq!(ids(&welcome), [1, 2, 3]);
    assert_eq!(welcome["history"][2]["text"], "three");
    assert_eq!(welcome["history"][0]["from"], "ann");
    assert_eq!(welcome["last_id"], 3);
}

#[tokio::test]
async fn history_keeps_the_most_recent_messages() {
    let mut config = wschat::Config::for_tests();
    config.history = 2;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.join("name=ann").await;
    for i in 0..5 {
        say(&mut ann, &format!("m{i}")).await;
        next_event(&mut ann).await;
    }
    let (_bob, welcome) = server.join("name=bob").await;
    assert_eq!(ids(&welcome), [4, 5]);
}

#[tokio::test]
async fn since_resumes_with_no_gap_and_no_duplicate() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("room=s&name=ann").await;
    let (mut bob, _) = server.join("room=s&name=bob").await;
    next_event(&mut ann).await; // bob's join
    say(&mut ann, "m1").await;
    assert_eq!(next_event(&mut bob).await["id"], 1);
    // Bob's connection drops; ann keeps talking.
    drop(bob);
    assert_eq!(next_of_type(&mut ann, "message").await["id"], 1);
    for text in ["m2", "m3"] {
        say(&mut ann, text).await;
        next_of_type(&mut ann, "message").await;
    }
    let (mut bob, welcome) = server.join("room=s&name=bob&since=1").await;
    assert_eq!(ids(&welcome), [2, 3]);
    assert_eq!(welcome["truncated"], false);
    say(&mut ann, "m4").await;
    assert_eq!(
        next_of_type(&mut bob, "message").await["id"],
        4,
        "live traffic follows"
    );
}

#[tokio::test]
async fn since_older_than_history_says_truncated() {
    let mut config = wschat::Config::for_tests();
    config.history = 2;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.join("name=ann").await;
    for i in 0..4 {
        say(&mut ann, &format!("m{i}")).await;
        next_event(&mut ann).await;
    }
    let (_bob, welcome) = server.join("name=bob&since=0").await;
    assert_eq!(ids(&welcome), [3, 4]);
    assert_eq!(welcome["truncated"], true);
    assert_eq!(welcome["last_id"], 4);
}

#[tokio::test]
async fn a_cursor_from_another_epoch_is_truncated_and_replays_everything() {
    let server = TestServer::start().await;
    let (mut ann, welcome) = server.join("room=life&name=ann").await;
    let epoch = welcome["epoch"].as_str().expect("an epoch").to_owned();
    assert_eq!(epoch.len(), 16, "16 hexadecimal digits");
    for text in ["one", "two"] {
        say(&mut ann, text).await;
        next_of_type(&mut ann, "message").await;
    }
    let (_bob, welcome) = server
        .join(&format!("room=life&name=bob&since=1&epoch={epoch}"))
        .await;
    assert_eq!(ids(&welcome), [2], "the same life: exactly the gap");
    assert_eq!(welcome["truncated"], false);
    assert_eq!(welcome["epoch"], epoch.as_str());
    // Ids 1 and 2 of another life say nothing about this one's.
    let other = if epoch == "0000000000000001" {
        "2"
    } else {
        "1"
    };
    let (_cat, welcome) = server
        .join(&format!("room=life&name=cat&since=2&epoch={other}"))
        .await;
    assert_eq!(welcome["truncated"], true);
    assert_eq!(ids(&welcome), [1, 2]);
}

#[tokio::test]
async fn a_room_made_again_has_a_new_epoch() {
    let server = TestServer::start().await;
    let (ann, first) = server.join("room=again&name=ann").await;
    drop(ann);
    // The room is dropped with its last member; wait until it is, then make it again.
    let deadline = std::time::Instant::now() + WAIT;
    while server.shared.hub.room("again").is_some() {
        assert!(std::time::Instant::now() < deadline, "room not dropped");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (_bob, second) = server.join("room=again&name=bob").await;
    assert_ne!(first["epoch"], second["epoch"]);
}
