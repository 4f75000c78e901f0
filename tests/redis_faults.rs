//! `--redis` when Redis goes away: a process cut off from it says so (`/healthz` 503, new clients
//! 503 with the reason, posts answered `unavailable`), reconnects by itself, and its members get
//! exactly what they missed: the gap in order with no repeat, or `truncated` with the room's new
//! epoch when Redis came back without its data. `/metrics` counts it all.
//!
//! Each test starts its own `redis-server` (tests/common/redis.rs); without one installed they
//! print `SKIPPED` and pass, unless `WSCHAT_REQUIRE_REDIS=1` (CI). Every wait is a loop on a
//! condition bounded by `common::WAIT`, never a fixed sleep.

mod common;

use std::time::{Duration, Instant};

use common::redis::{Cuttable, RedisServer};
use common::{next_event, next_of_type, say, Client, TestServer, WAIT};
use serde_json::Value;
use wschat::Config;

async fn server_on(url: String) -> TestServer {
    TestServer::with_config(Config {
        redis: Some(url),
        ..Config::for_tests()
    })
    .await
}

/// Waits until `/healthz` answers `status`, for at most [`WAIT`].
async fn wait_for_health(server: &TestServer, status: u16) {
    wait_for_health_within(server, status, WAIT).await
}

async fn wait_for_health_within(server: &TestServer, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (now, body) = server.get("/healthz").await;
        if now == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz still {now} ({body}), waiting for {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next `message` events' `(id, text)`, failing on anything but messages and typing.
async fn messages(client: &mut Client, count: usize) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let event = next_event(client).await;
        match event["type"].as_str() {
            Some("message") => seen.push((
                event["id"].as_u64().unwrap(),
                event["text"].as_str().unwrap().to_owned(),
            )),
            Some("join" | "leave" | "typing") => {}
            _ => panic!("expected a message, got {event}"),
        }
    }
    seen
}

/// A refused upgrade's status and body.
async fn refusal(server: &TestServer, query: &str) -> (u16, String) {
    match tokio_tungstenite::connect_async(server.url(&format!("/ws?{query}"))).await {
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
        Ok(_) => panic!("upgraded while redis is unreachable"),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn a_process_cut_off_from_redis_catches_up_with_what_others_posted_meanwhile() {
    let Some(redis) = RedisServer::start("redis_faults").await else {
        return;
    };
    let relay = Cuttable::to(&redis).await;
    // A reaches Redis through the relay, B directly: only A is cut off.
    let a = server_on(relay.url()).await;
    let b = server_on(redis.url()).await;
    let (mut ann, _) = a.join("room=gap&name=ann").await;
    let (mut bob, _) = b.join("room=gap&name=bob").await;
    say(&mut bob, "before").await;
    assert_eq!(messages(&mut ann, 1).await, [(1, "before".into())]);

    relay.cut();
    wait_for_health(&a, 503).await;
    // While cut off: new clients hear why, before any upgrade; a post is answered `unavailable`.
    let (status, reason) = refusal(&a, "room=gap&name=cat").await;
    assert_eq!(status, 503);
    assert!(reason.contains("redis"), "{reason}");
    say(&mut ann, "lost").await;
    assert_eq!(next_of_type(&mut ann, "error").await["code"], "unavailable");
    // The others go on.
    for n in 2..=6 {
        say(&mut bob, &format!("gap {n}")).await;
    }
    let on_b = messages(&mut bob, 6).await;
    assert_eq!(on_b.last().unwrap().0, 6);
    assert_eq!(b.get("/healthz").await.0, 200);

    relay.mend();
    wait_for_health(&a, 200).await;
    say(&mut bob, "after").await;
    // Ann gets the gap from the stream, then the live message: each once, in order.
    let expected: Vec<(u64, String)> = (2..=6)
        .map(|n| (n, format!("gap {n}")))
        .chain([(7, "after".into())])
        .collect();
    assert_eq!(messages(&mut ann, 6).await, expected);
    let (_cat, welcome) = a.join("room=gap&name=cat").await;
    assert_eq!(welcome["last_id"], 7, "joinable again, and up to date");

    let metrics = a.metrics().await;
    assert_eq!(metrics.value("wschat_redis_reconnects_total"), 1.0);
    assert_eq!(metrics.value("wschat_redis_backfilled_total"), 5.0);
    assert!(metrics.value("wschat_redis_post_failures_total") >= 1.0);
    assert!(metrics.value("wschat_redis_round_trip_seconds_count{kind=\"load\"}") >= 1.0);
    assert!(metrics.value("wschat_redis_round_trip_seconds_count{kind=\"backfill\"}") >= 1.0);
    let metrics = b.metrics().await;
    // One round trip per pipeline of waiting posts: at least one, at most one per post.
    let round_trips = metrics.value("wschat_redis_round_trip_seconds_count{kind=\"post\"}");
    assert!((1.0..=7.0).contains(&round_trips), "{round_trips}");
    assert_eq!(metrics.value("wschat_redis_reconnects_total"), 0.0);
}

#[tokio::test]
async fn a_gap_longer_than_the_stream_is_told_as_lagged() {
    let Some(redis) = RedisServer::start("redis_faults").await else {
        return;
    };
    let relay = Cuttable::to(&redis).await;
    let config = |url| Config {
        redis: Some(url),
        history: 2,
        ..Config::for_tests()
    };
    let a = TestServer::with_config(config(relay.url())).await;
    let b = TestServer::with_config(config(redis.url())).await;
    let (mut ann, _) = a.join("room=long&name=ann").await;
    let (mut bob, _) = b.join("room=long&name=bob").await;
    relay.cut();
    wait_for_health(&a, 503).await;
    for n in 1..=5 {
        say(&mut bob, &format!("m{n}")).await;
    }
    messages(&mut bob, 5).await;
    relay.mend();
    // Three are gone from a stream of two: said with their count, then the two held.
    let lagged = next_of_type(&mut ann, "lagged").await;
    assert_eq!(lagged["missed"], 3);
    assert_eq!(
        messages(&mut ann, 2).await,
        [(4, "m4".into()), (5, "m5".into())]
    );
}

#[tokio::test]
async fn a_redis_restarted_with_its_data_keeps_the_room_as_it_was() {
    let Some(mut redis) = RedisServer::start("redis_faults").await else {
        return;
    };
    let (a, b) = (server_on(redis.url()).await, server_on(redis.url()).await);
    let (mut ann, welcome) = a.join("room=kept&name=ann").await;
    let (mut bob, _) = b.join("room=kept&name=bob").await;
    say(&mut ann, "one").await;
    messages(&mut bob, 1).await;
    messages(&mut ann, 1).await;

    redis.restart(true).await;
    // Both processes reconnect (a post before they have would be answered `unavailable`).
    let deadline = Instant::now() + WAIT;
    while a.metrics().await.value("wschat_redis_reconnects_total") < 1.0
        || b.metrics().await.value("wschat_redis_reconnects_total") < 1.0
    {
        assert!(Instant::now() < deadline, "no reconnection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for_health(&a, 200).await;
    wait_for_health(&b, 200).await;
    say(&mut bob, "two").await;
    // Same life: no `truncated`, ids go on from 1.
    assert_eq!(messages(&mut ann, 1).await, [(2, "two".into())]);
    let (_cat, again) = b.join("room=kept&name=cat").await;
    assert_eq!(again["epoch"], welcome["epoch"]);
}

#[tokio::test]
async fn a_redis_restarted_without_its_data_is_told_as_a_new_life_of_the_room() {
    let Some(mut redis) = RedisServer::start("redis_faults").await else {
        return;
    };
    // Heartbeats far apart: presence must come back through the reconnect, not a heartbeat.
    let slow_heartbeat = || {
        TestServer::with_config(Config {
            redis: Some(redis.url()),
            presence_heartbeat: Duration::from_secs(600),
            presence_expiry: Duration::from_secs(1200),
            ..Config::for_tests()
        })
    };
    let (a, b) = (slow_heartbeat().await, slow_heartbeat().await);
    let (mut ann, welcome) = a.join("room=reborn&name=ann").await;
    let (mut bob, _) = b.join("room=reborn&name=bob").await;
    let old_epoch = welcome["epoch"].as_str().unwrap().to_owned();
    for text in ["one", "two", "three"] {
        say(&mut ann, text).await;
    }
    assert_eq!(messages(&mut ann, 3).await.last().unwrap().0, 3);
    messages(&mut bob, 3).await;

    redis.restart(false).await;
    // Each member hears the room's new life, with its epoch, before anything of that life.
    let told: Value = next_of_type(&mut ann, "truncated").await;
    let new_epoch = told["epoch"].as_str().expect("the new epoch").to_owned();
    assert_ne!(new_epoch, old_epoch);
    let told_bob = next_of_type(&mut bob, "truncated").await;
    assert_eq!(
        told_bob["epoch"],
        new_epoch.as_str(),
        "one new life on both"
    );
    wait_for_health(&a, 200).await;
    wait_for_health(&b, 200).await;

    say(&mut bob, "again").await;
    assert_eq!(messages(&mut ann, 1).await, [(1, "again".into())]);
    // A resume from the old life is answered from the new one, and says so.
    let (_cat, resumed) = a
        .join(&format!("room=reborn&name=cat&since=3&epoch={old_epoch}"))
        .await;
    assert_eq!(resumed["truncated"], true);
    assert_eq!(resumed["epoch"], new_epoch.as_str());
    assert_eq!(resumed["last_id"], 1);
    // Redis lost who was here too; each server registered its members again as it reconnected.
    assert_eq!(resumed["users"], serde_json::json!(["ann", "bob", "cat"]));
}

#[tokio::test]
async fn a_room_redis_cannot_load_is_refused_before_the_upgrade() {
    let Some(redis) = RedisServer::start("redis_faults").await else {
        return;
    };
    let server = server_on(redis.url()).await;
    // Out of memory, Redis refuses the load's write (the room's epoch) while pub/sub works.
    redis.command(&["CONFIG", "SET", "maxmemory", "1"]);
    let (status, reason) = refusal(&server, "room=full&name=ann").await;
    assert_eq!(status, 503);
    assert!(reason.contains("could not be loaded"), "{reason}");
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]);
    let (_ann, welcome) = server.join("room=full&name=ann").await;
    assert_eq!(
        welcome["last_id"], 0,
        "loaded once redis takes writes again"
    );
}

#[tokio::test]
async fn a_silent_partition_is_found_by_the_heartbeat() {
    let Some(redis) = RedisServer::start("redis_faults").await else {
        return;
    };
    let relay = Cuttable::to(&redis).await;
    let a = server_on(relay.url()).await;
    let b = server_on(redis.url()).await;
    let (mut ann, _) = a.join("room=quiet&name=ann").await;
    let (mut bob, _) = b.join("room=quiet&name=bob").await;
    // No connection closes: only the heartbeat's unanswered PING can tell, within 5 + 3 s (and
    // the usual margin for a loaded machine on top).
    relay.freeze();
    wait_for_health_within(&a, 503, Duration::from_secs(8) + WAIT).await;
    say(&mut bob, "while frozen").await;
    messages(&mut bob, 1).await;
    relay.mend();
    wait_for_health(&a, 200).await;
    assert_eq!(messages(&mut ann, 1).await, [(1, "while frozen".into())]);
}
