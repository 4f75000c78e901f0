//! Signed tokens (`--auth-secret`, `--auth-public-key`): every answer before the upgrade, the
//! token's `sub` as the nickname, its `rooms` as the only rooms, the close when it expires, and
//! the token never repeated in an answer, a log line or a metric.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::binary::Binary;
use common::raw::{http_exchange, upgrade_request, RawClient};
use common::{close_code, next_event, TestServer, WAIT};
use serde_json::Value;
use wschat::auth::mint::{claims, sign_hs256, sign_with_pem};
use wschat::auth::{Claims, TOKEN_EXPIRED};
use wschat::Config;

const SECRET: &str = "a test secret of thirty-two bytes!";

fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

async fn server_with_secret() -> TestServer {
    TestServer::with_config(Config {
        auth_secret: Some(SECRET.parse().unwrap()),
        ..Config::for_tests()
    })
    .await
}

fn token(sub: &str, rooms: &[&str]) -> String {
    sign_hs256(
        SECRET.as_bytes(),
        &claims(sub, rooms, Duration::from_secs(600)),
    )
}

/// An upgrade request for `path` with `extra` header lines: status, body and `WWW-Authenticate`.
async fn try_upgrade(
    server: &TestServer,
    path: &str,
    extra: &str,
) -> (u16, String, Option<String>) {
    let request = upgrade_request(server.addr, path, extra);
    let (head, body) = http_exchange(server.addr, request.as_bytes()).await;
    let challenge = head.header("www-authenticate").map(str::to_owned);
    (head.status, body, challenge)
}

/// Connects with tokio-tungstenite and returns the welcome.
async fn join(server: &TestServer, query: &str) -> (common::Client, Value) {
    server.join(query).await
}

#[tokio::test]
async fn a_valid_token_joins_under_its_sub_whatever_name_says() {
    let server = server_with_secret().await;
    let (_alice, welcome) = join(
        &server,
        &format!(
            "room=lobby&name=mallory&token={}",
            token("alice", &["lobby"])
        ),
    )
    .await;
    assert_eq!(welcome["you"], "alice", "sub overrides name: {welcome}");
}

#[tokio::test]
async fn the_token_may_come_in_an_authorization_header() {
    let server = server_with_secret().await;
    let header = format!("Authorization: Bearer {}\r\n", token("bob", &["lobby"]));
    let mut raw = RawClient::connect(server.addr).await;
    raw.send(upgrade_request(server.addr, "/ws?room=lobby", &header).as_bytes())
        .await;
    assert_eq!(raw.response_head().await.status, 101);
    let welcome: Value =
        serde_json::from_slice(&raw.frame().await.expect("welcome").payload).expect("JSON");
    assert_eq!(welcome["you"], "bob");
}

#[tokio::test]
async fn a_prefix_pattern_grants_the_rooms_it_starts() {
    let server = server_with_secret().await;
    let token = token("alice", &["dm-alice-*"]);
    let (_c, welcome) = join(&server, &format!("room=dm-alice-bob&token={token}")).await;
    assert_eq!(welcome["room"], "dm-alice-bob");
    let (status, body, challenge) =
        try_upgrade(&server, &format!("/ws?room=dm-bob-alice&token={token}"), "").await;
    assert_eq!(
        (status, body.as_str()),
        (403, "token does not grant this room")
    );
    assert_eq!(challenge, None, "a 403 asks for no other credentials");
}

#[tokio::test]
async fn every_refusal_is_answered_before_the_upgrade_and_counted() {
    let server = server_with_secret().await;
    let mut expired = claims("a", &["*"], Duration::from_secs(600));
    expired.exp -= 1200;
    let mut early = claims("a", &["*"], Duration::from_secs(600));
    early.nbf = Some(early.exp);
    let eddsa = sign_with_pem(
        &std::fs::read(key_file("ed25519_private.pem")).unwrap(),
        &claims("a", &["*"], Duration::from_secs(600)),
    )
    .unwrap();
    let forged = sign_hs256(
        b"not the server's secret, but as long",
        &claims("a", &["*"], Duration::from_secs(600)),
    );
    let cases = [
        (
            "",
            401,
            "token required: pass ?token= or an Authorization: Bearer header",
            "missing",
        ),
        (
            &*forged,
            401,
            "token signature does not verify",
            "bad_signature",
        ),
        (
            &eddsa,
            401,
            "token algorithm not accepted by this server",
            "wrong_algorithm",
        ),
        (
            &sign_hs256(SECRET.as_bytes(), &expired),
            401,
            "token expired",
            "expired",
        ),
        (
            &sign_hs256(SECRET.as_bytes(), &early),
            401,
            "token not yet valid (its nbf is in the future)",
            "not_yet_valid",
        ),
        (
            "abc.def",
            401,
            "token is not a well-formed wschat token",
            "malformed",
        ),
        (
            &token("a", &[]),
            403,
            "token does not grant this room",
            "room_not_allowed",
        ),
    ];
    for (token, status, reason, label) in cases {
        let (got_status, body, challenge) =
            try_upgrade(&server, &format!("/ws?room=lobby&token={token}"), "").await;
        assert_eq!((got_status, body.as_str()), (status, reason), "{label}");
        if status == 401 {
            assert_eq!(
                challenge.as_deref(),
                Some("Bearer realm=\"wschat\""),
                "{label}"
            );
        }
        server
            .expect_metric(
                &format!("wschat_auth_refusals_total{{reason=\"{label}\"}}"),
                1.0,
            )
            .await;
    }
    assert_eq!(
        server.metrics().await.value("wschat_connections_total"),
        0.0,
        "no refused request was upgraded"
    );
}

#[tokio::test]
async fn a_public_key_verifies_eddsa_tokens_and_refuses_hmac_ones() {
    let server = TestServer::with_config(Config {
        auth_public_key: Some(key_file("ed25519_public.pem")),
        ..Config::for_tests()
    })
    .await;
    let claims = claims("carol", &["lobby"], Duration::from_secs(600));
    let eddsa = sign_with_pem(
        &std::fs::read(key_file("ed25519_private.pem")).unwrap(),
        &claims,
    )
    .unwrap();
    let (_c, welcome) = join(&server, &format!("token={eddsa}")).await;
    assert_eq!(welcome["you"], "carol");
    // An HS256 token "signed" with the public key's text: the algorithm-confusion attack.
    let public_pem = std::fs::read(key_file("ed25519_public.pem")).unwrap();
    let confused = sign_hs256(&public_pem, &claims);
    let (status, body, _) = try_upgrade(&server, &format!("/ws?token={confused}"), "").await;
    assert_eq!(
        (status, body.as_str()),
        (401, "token algorithm not accepted by this server")
    );
}

#[tokio::test]
async fn a_connection_is_closed_with_4001_when_its_token_expires() {
    let server = server_with_secret().await;
    // Two seconds ahead: `exp` is in whole seconds, so at least one second of life.
    let short = sign_hs256(
        SECRET.as_bytes(),
        &claims("dave", &["lobby"], Duration::from_secs(2)),
    );
    let long = token("erin", &["lobby"]);
    let (mut dave, _) = join(&server, &format!("token={short}")).await;
    let (mut erin, _) = join(&server, &format!("token={long}")).await;
    assert_eq!(close_code(&mut dave).await, Some(TOKEN_EXPIRED));
    let leave = loop {
        let event = next_event(&mut erin).await;
        if event["type"] == "leave" {
            break event;
        }
    };
    assert_eq!(
        leave["name"], "dave",
        "the others see the expired user leave"
    );
    server
        .expect_metric("wschat_close_codes_sent_total{code=\"4001\"}", 1.0)
        .await;
    server
        .expect_metric("wschat_dropped_clients_total{reason=\"expired\"}", 1.0)
        .await;
}

#[tokio::test]
async fn info_reaches_the_room_with_the_join() {
    let server = server_with_secret().await;
    let (mut watcher, _) = join(&server, &format!("token={}", token("gina", &["lobby"]))).await;
    let mut with_info = claims("hal", &["lobby"], Duration::from_secs(600));
    with_info.info = Some(
        serde_json::value::RawValue::from_string(
            r##"{"display":"Hal 9000","color":"#c0392b"}"##.into(),
        )
        .unwrap(),
    );
    let signed = sign_hs256(SECRET.as_bytes(), &with_info);
    let (_hal, _) = join(&server, &format!("token={signed}")).await;
    let event = next_event(&mut watcher).await;
    assert_eq!(event["type"], "join");
    assert_eq!(event["name"], "hal");
    assert_eq!(event["info"]["display"], "Hal 9000");
    assert_eq!(event["info"]["color"], "#c0392b");
}

#[tokio::test]
async fn with_auth_off_a_token_changes_nothing() {
    let server = TestServer::start().await;
    let (_c, welcome) = join(&server, "name=zoe&token=whatever").await;
    assert_eq!(welcome["you"], "zoe");
}

/// The token appears in no log line (debug level, frame tracing on), no answer and no metric,
/// whether it was accepted or refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_reaches_a_log_an_answer_or_a_metric() {
    let server = Binary::start_logging(
        &[
            "--auth-secret",
            SECRET,
            "--trace-frames",
            "--log-summary-interval",
            "100ms",
        ],
        Some("debug"),
    );
    let good = token("frank", &["lobby"]);
    let mut expired: Claims = claims("frank", &["lobby"], Duration::from_secs(600));
    expired.exp -= 1200;
    let expired = sign_hs256(SECRET.as_bytes(), &expired);
    let forbidden = token("frank", &["elsewhere"]);
    let mut bodies = String::new();
    for bad in [&expired, &forbidden] {
        let request = upgrade_request(server.addr, &format!("/ws?room=lobby&token={bad}"), "");
        let (head, body) = http_exchange(server.addr, request.as_bytes()).await;
        assert!(head.status == 401 || head.status == 403);
        bodies.push_str(&body);
    }
    let mut raw = RawClient::upgrade(server.addr, &format!("/ws?room=lobby&token={good}")).await;
    raw.frame().await.expect("welcome");
    raw.send(&common::raw::chat_frame("hello")).await;
    raw.frame().await.expect("the message back");
    let (_, metrics) = http_exchange(
        server.addr,
        format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .await;
    assert!(
        metrics.contains("wschat_auth_refusals_total"),
        "refusals were counted"
    );
    // Wait for a summary line, so the log has caught up with everything above.
    let deadline = std::time::Instant::now() + WAIT;
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("summary")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no summary line: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        lines.extend(server.drain_lines());
    }
    assert!(
        lines.iter().any(|l| l.contains("frank")),
        "the connection was logged: {lines:#?}"
    );
    for token in [&good, &expired, &forbidden] {
        // Any of its three parts would do: the signature is what must never leak, the claims
        // part is the user's data.
        for part in token.split('.') {
            assert!(!bodies.contains(part), "an answer holds a token");
            assert!(!metrics.contains(part), "/metrics holds a token");
            for line in &lines {
                assert!(!line.contains(part), "a log line holds a token: {line}");
            }
        }
    }
}

/// `GET /auth/check` tells a browser why its upgrade was refused (it cannot read the status of a
/// refused handshake): the same answers, and `204` for a token that would be let in.
#[tokio::test]
async fn auth_check_answers_as_the_upgrade_would() {
    let server = server_with_secret().await;
    let check = |room: &str, token: Option<String>| {
        let addr = server.addr;
        let header = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /auth/check?room={room} HTTP/1.1\r\nHost: {addr}\r\n{header}Connection: close\r\n\r\n"
        );
        async move {
            let (head, body) = http_exchange(addr, request.as_bytes()).await;
            (head.status, body)
        }
    };
    assert_eq!(check("tea", Some(token("a", &["tea"]))).await.0, 204);
    assert_eq!(
        check("coffee", Some(token("a", &["tea"]))).await,
        (403, "token does not grant this room".to_owned())
    );
    assert_eq!(check("tea", None).await.0, 401);
    let off = TestServer::start().await;
    assert_eq!(
        off.get("/auth/check").await.0,
        404,
        "no such page with auth off"
    );
}
