//! `--redis`: presence is one across processes. `join` for a nickname's first connection on any
//! server and `leave` for its last anywhere; welcomes list the users of every server; and a server
//! killed without cleaning up (`kill -9`) has its users leave on the others within
//! `--presence-expiry` plus `--presence-heartbeat`, announced once however many servers reap.
//!
//! Each test starts its own `redis-server` (tests/common/redis.rs); without one installed they
//! print `SKIPPED` and pass, unless `WSCHAT_REQUIRE_REDIS=1` (CI).

mod common;

use std::time::{Duration, Instant};

use common::binary::Binary;
use common::redis::RedisServer;
use common::{next_event, say, Client, TestServer, WAIT};
use serde_json::{json, Value};
use wschat::Config;

/// Every server beats (and reaps) often, so a killed one's users leave soon after its expiry.
const HEARTBEAT: Duration = Duration::from_millis(200);
/// The killed server's expiry: short, so the test is quick, but ten heartbeats, so a loaded
/// machine does not take it for dead before it is killed.
const EXPIRY: Duration = Duration::from_secs(2);

/// The servers that stay up keep the default expiry: however loaded the machine, none is taken
/// for dead (which would announce its users leaving and coming back).
fn config_on(redis: &RedisServer) -> Config {
    Config {
        redis: Some(redis.url()),
        presence_heartbeat: HEARTBEAT,
        ..Config::for_tests()
    }
}

async fn server_on(redis: &RedisServer) -> TestServer {
    TestServer::with_config(config_on(redis)).await
}

/// The next event that says who is here or what was said (`join`, `leave`, `presence`,
/// `message`), skipping `typing`.
async fn next_said(client: &mut Client) -> Value {
    loop {
        let event = next_event(client).await;
        if ["join", "leave", "presence", "message"].contains(&event["type"].as_str().unwrap_or(""))
        {
            return event;
        }
    }
}

/// Asserts that `client` hears nothing about presence before `text` (posted by someone after
/// the change that must not be announced): presence changes and messages reach every process
/// in the order Redis published them, so an announcement would come first.
async fn expect_silence_before(client: &mut Client, text: &str) {
    let event = next_said(client).await;
    assert_eq!(
        (event["type"].as_str(), event["text"].as_str()),
        (Some("message"), Some(text)),
        "expected no presence event, got {event}"
    );
}

/// Waits until Redis counts `count` connections of `nick` in `room` (0: none).
async fn wait_for_count(redis: &RedisServer, room: &str, nick: &str, count: u64) {
    let key = format!("wschat:room:{room}:users");
    let deadline = Instant::now() + WAIT;
    loop {
        let said = redis.query(&["HGET", &key, nick]);
        let now = said.parse::<u64>().unwrap_or(0);
        if now == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{nick} in {room}: {now} connections, not {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_nickname_on_two_servers_joins_once_and_leaves_at_its_last_connection() {
    let Some(redis) = RedisServer::start("redis_presence").await else {
        return;
    };
    let (a, b) = (server_on(&redis).await, server_on(&redis).await);
    let (mut ann, _) = a.join("room=tabs&name=ann").await;
    let (bob_on_b, _) = b.join("room=tabs&name=bob").await;
    assert_eq!(
        next_said(&mut ann).await,
        json!({"type": "join", "name": "bob"})
    );

    // Bob's second tab, on the other server: one presence, so no second `join`.
    let (bob_on_a, welcome) = a.join("room=tabs&name=bob").await;
    assert_eq!(welcome["users"], json!(["ann", "bob"]));
    say(&mut ann, "after the second tab").await;
    expect_silence_before(&mut ann, "after the second tab").await;

    // His first tab closes: he is still here, on server a.
    drop(bob_on_b);
    wait_for_count(&redis, "tabs", "bob", 1).await;
    say(&mut ann, "after one tab closed").await;
    expect_silence_before(&mut ann, "after one tab closed").await;

    // His last tab closes: now he leaves, once.
    drop(bob_on_a);
    assert_eq!(
        next_said(&mut ann).await,
        json!({"type": "leave", "name": "bob"})
    );
    let (_cat, welcome) = b.join("room=tabs&name=cat").await;
    assert_eq!(
        (welcome["users"].clone(), welcome["count"].clone()),
        (json!(["ann", "cat"]), json!(2))
    );
}

#[tokio::test]
async fn a_welcome_lists_the_users_of_every_server() {
    let Some(redis) = RedisServer::start("redis_presence").await else {
        return;
    };
    let (a, b) = (server_on(&redis).await, server_on(&redis).await);
    let (_ann, _) = a.join("room=everyone&name=ann").await;
    let (_bob, _) = b.join("room=everyone&name=bob").await;
    let (_cat, _) = a.join("room=everyone&name=cat").await;
    let (_dan, welcome) = b.join("room=everyone&name=dan").await;
    assert_eq!(welcome["users"], json!(["ann", "bob", "cat", "dan"]));
    assert_eq!(welcome["count"], 4);
    let (_eve, welcome) = a.join("room=everyone&name=eve").await;
    assert_eq!(welcome["count"], 5);
}

#[tokio::test]
async fn large_rooms_coalesce_presence_from_other_servers() {
    let Some(redis) = RedisServer::start("redis_presence").await else {
        return;
    };
    let coalescing = Config {
        presence_threshold: 1,
        presence_interval: Duration::from_millis(100),
        ..config_on(&redis)
    };
    let a = TestServer::with_config(coalescing.clone()).await;
    let b = TestServer::with_config(coalescing).await;
    let (mut ann, _) = a.join("room=big&name=ann").await;
    let (_bob, _) = b.join("room=big&name=bob").await;
    let (_cat, _) = b.join("room=big&name=cat").await;
    // Over the threshold, bob's and cat's arrivals come as `presence` events, not `join`s.
    let mut joined = Vec::new();
    while joined.len() < 2 {
        let event = next_said(&mut ann).await;
        match event["type"].as_str() {
            Some("presence") => joined.extend(
                event["joined"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_owned()),
            ),
            Some("join") if event["name"] == "bob" => joined.push("bob".into()),
            _ => panic!("unexpected {event}"),
        }
    }
    joined.sort();
    assert_eq!(joined, ["bob", "cat"]);
}

#[tokio::test]
async fn a_killed_server_s_users_leave_the_others_within_the_expiry() {
    let Some(redis) = RedisServer::start("redis_presence").await else {
        return;
    };
    let (a, c) = (server_on(&redis).await, server_on(&redis).await);
    let heartbeat = format!("{}ms", HEARTBEAT.as_millis());
    let expiry = format!("{}ms", EXPIRY.as_millis());
    let mut doomed = Binary::start(&[
        "--redis",
        &redis.url(),
        "--presence-heartbeat",
        &heartbeat,
        "--presence-expiry",
        &expiry,
    ]);
    let (mut ann, _) = a.join("room=doomed&name=ann").await;
    let (mut cat, _) = c.join("room=doomed&name=cat").await;
    assert_eq!(next_said(&mut ann).await["name"], "cat");
    let (mut carl, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?room=doomed&name=carl", doomed.addr))
            .await
            .expect("connect to the doomed server");
    let welcome = next_event(&mut carl).await;
    assert_eq!(welcome["users"], json!(["ann", "carl", "cat"]));
    for client in [&mut ann, &mut cat] {
        assert_eq!(
            next_said(client).await,
            json!({"type": "join", "name": "carl"})
        );
    }

    // SIGKILL: the server leaves nothing behind but its entries in Redis.
    doomed.child.kill().expect("kill -9");
    let killed = Instant::now();
    doomed.child.wait().expect("reaped");
    for client in [&mut ann, &mut cat] {
        assert_eq!(
            next_said(client).await,
            json!({"type": "leave", "name": "carl"})
        );
    }
    let took = killed.elapsed();
    // The bound is the expiry plus one heartbeat; a loaded machine gets a few seconds more.
    assert!(
        took < EXPIRY + HEARTBEAT + Duration::from_secs(5),
        "carl left {took:?} after the kill"
    );
    // Two live servers reaped, one announced: no second `leave` before the next message.
    say(&mut ann, "after the kill").await;
    expect_silence_before(&mut ann, "after the kill").await;
    expect_silence_before(&mut cat, "after the kill").await;
    // And one of them took the dead server back, once (each counts what it reaped, after the
    // script that published the leave returned: wait for it).
    let reaped = || async {
        let metric = "wschat_redis_reaped_processes_total";
        a.metrics().await.value(metric) + c.metrics().await.value(metric)
    };
    let deadline = Instant::now() + WAIT;
    while reaped().await < 1.0 {
        assert!(Instant::now() < deadline, "no server counted the reaping");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reaped().await, 1.0, "one server reaped the dead one");
    let (_dan, welcome) = a.join("room=doomed&name=dan").await;
    assert_eq!(welcome["users"], json!(["ann", "cat", "dan"]));
}

#[tokio::test]
async fn a_redis_that_lost_its_data_gets_the_users_back() {
    let Some(redis) = RedisServer::start("redis_presence").await else {
        return;
    };
    let (a, b) = (server_on(&redis).await, server_on(&redis).await);
    let (_ann, _) = a.join("room=amnesia&name=ann").await;
    let (mut bob, _) = b.join("room=amnesia&name=bob").await;
    // What a Redis restarted without persistence holds: nothing.
    redis.command(&["FLUSHALL"]);
    // Each server finds itself gone at its next heartbeat and registers its users again.
    wait_for_count(&redis, "amnesia", "ann", 1).await;
    wait_for_count(&redis, "amnesia", "bob", 1).await;
    let (_cat, welcome) = a.join("room=amnesia&name=cat").await;
    assert_eq!(welcome["users"], json!(["ann", "bob", "cat"]));
    // And presence goes on: bob hears cat, announced under the fresh version count (before it,
    // he may hear ann leave and come back: the servers re-register one after the other).
    loop {
        let event = next_said(&mut bob).await;
        if event == json!({"type": "join", "name": "cat"}) {
            break;
        }
        assert_eq!(event["name"], "ann", "{event}");
    }
}

#[tokio::test]
async fn a_server_stopped_gracefully_has_its_users_leave_at_once() {
    let Some(redis) = RedisServer::start("redis_presence").await else {
        return;
    };
    let a = server_on(&redis).await;
    // The default expiry (30 s) is far past any wait here: the leave must come from the stop.
    let mut stopping = Binary::start(&["--redis", &redis.url(), "--shutdown-grace", "200ms"]);
    let (mut ann, _) = a.join("room=stopping&name=ann").await;
    // Carl never reads again, so he never answers the close: his connection outlives the grace.
    let (mut carl, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/ws?room=stopping&name=carl",
        stopping.addr
    ))
    .await
    .expect("connect to the stopping server");
    next_event(&mut carl).await;
    assert_eq!(
        next_said(&mut ann).await,
        json!({"type": "join", "name": "carl"})
    );
    stopping.sigterm();
    assert_eq!(stopping.exit_code().await, Some(0));
    assert_eq!(
        next_said(&mut ann).await,
        json!({"type": "leave", "name": "carl"})
    );
    // And it departed: nothing of it is left for the others to reap (server a alone beats).
    assert_eq!(redis.query(&["ZCARD", "wschat:processes"]), "1");
    drop(carl);
}

#[tokio::test]
async fn restore_presence_registers_a_server_s_users_again_at_once() {
    let Some(redis) = RedisServer::start("redis_presence").await else {
        return;
    };
    // Heartbeats far apart: only the call can bring the users back within this test.
    let slow = Config {
        redis: Some(redis.url()),
        presence_heartbeat: Duration::from_secs(600),
        presence_expiry: Duration::from_secs(1200),
        ..Config::for_tests()
    };
    let a = TestServer::with_config(slow).await;
    let (_ann, _) = a.join("room=restored&name=ann").await;
    let (_ann2, _) = a.join("room=restored&name=ann").await;
    redis.command(&["FLUSHALL"]);
    let wschat::chat::Engine::Redis(engine) = a.shared.hub.engine() else {
        panic!("a redis engine");
    };
    // What the reconnect path calls once Redis answers again.
    engine.restore_presence().await.expect("restored");
    assert_eq!(
        redis.query(&["HGET", "wschat:room:restored:users", "ann"]),
        "2"
    );
    assert_eq!(redis.query(&["ZCARD", "wschat:processes"]), "1");
}

#[tokio::test]
async fn a_token_s_info_travels_with_the_join_to_the_other_server() {
    use wschat::auth::mint::{claims, sign_hs256};
    let Some(redis) = RedisServer::start("redis_presence").await else {
        return;
    };
    const SECRET: &str = "a test secret of thirty-two bytes!";
    let with_auth = Config {
        auth_secret: Some(SECRET.parse().unwrap()),
        ..config_on(&redis)
    };
    let a = TestServer::with_config(with_auth.clone()).await;
    let b = TestServer::with_config(with_auth).await;
    let hour = Duration::from_secs(3600);
    let gina = sign_hs256(SECRET.as_bytes(), &claims("gina", &["lobby"], hour));
    let (mut gina, _) = a.join(&format!("token={gina}")).await;
    let mut hal = claims("hal", &["lobby"], hour);
    hal.info = Some(
        serde_json::value::RawValue::from_string(r#"{"display":"Hal: 9000 \"x\""}"#.into())
            .unwrap(),
    );
    let hal = sign_hs256(SECRET.as_bytes(), &hal);
    let (_hal, _) = b.join(&format!("token={hal}")).await;
    let event = next_said(&mut gina).await;
    assert_eq!(
        event,
        json!({"type": "join", "name": "hal", "info": {"display": "Hal: 9000 \"x\""}})
    );
}
