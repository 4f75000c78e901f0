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
