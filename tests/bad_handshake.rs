//! Every way an upgrade request can be wrong (RFC 6455 section 4.2.1), and HTTP the server cannot
//! parse at all: each gets its documented status and a one-line reason, each refused upgrade is
//! counted under its reason in `/metrics`, the server stays up, and a room's clients keep every
//! message throughout. The well-formed variants browsers and tools really send are accepted.

mod common;

use common::peer::chat_works;
use common::raw::{http_exchange, upgrade_request, RawClient};
use common::TestServer;
use wschat::Config;

/// The metrics label of each refusal, as `/metrics` shows it.
const NOT_GET: &str = "websocket upgrade must use GET";
const OLD_HTTP: &str = "websocket upgrade needs HTTP/1.1";
const NO_UPGRADE: &str = "missing 'Upgrade: websocket' header";
const NO_CONNECTION: &str = "missing 'Connection: upgrade' header";
const VERSION: &str = "unsupported Sec-WebSocket-Version (this server speaks 13)";
const BAD_KEY: &str = "Sec-WebSocket-Key must be base64 of 16 bytes";

#[tokio::test]
async fn each_bad_upgrade_gets_its_status_and_the_room_carries_on() {
    let server = TestServer::with_config(Config {
        echo: true,
        ..Config::for_tests()
    })
    .await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let (mut bob, _) = server.peer("r", "bob").await;
    let good = upgrade_request(server.addr, "/ws?room=r&name=probe", "");
    let key = "dGhlIHNhbXBsZSBub25jZQ==";

    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        ("POST", good.replacen("GET", "POST", 1), 405, Some(NOT_GET)),
        (
            "PUT /echo",
            good.replacen("GET /ws?room=r&name=probe", "PUT /echo", 1),
            405,
            Some(NOT_GET),
        ),
        (
            "HTTP/1.0",
            good.replace("HTTP/1.1", "HTTP/1.0"),
            400,
            Some(OLD_HTTP),
        ),
        (
            "no Upgrade",
            good.replace("Upgrade: websocket\r\n", ""),
            400,
            Some(NO_UPGRADE),
        ),
        (
            "Upgrade: h2c",
            good.replace("Upgrade: websocket", "Upgrade: h2c"),
            400,
            Some(NO_UPGRADE),
        ),
        (
            "Connection: keep-alive",
            good.replace("Connection: Upgrade", "Connection: keep-alive"),
            400,
            Some(NO_CONNECTION),
        ),
        (
            "Connection: upgraded",
            good.replace("Connection: Upgrade", "Connection: upgraded"),
            400,
            Some(NO_CONNECTION),
        ),
        (
            "no version",
            good.replace("Sec-WebSocket-Version: 13\r\n", ""),
            426,
            Some(VERSION),
        ),
        (
            "version 8",
            good.replace("Version: 13", "Version: 8"),
            426,
            Some(VERSION),
        ),
        (
            "version 13, 8",
            good.replace("Version: 13", "Version: 13, 8"),
            426,
            Some(VERSION),
        ),
        (
            "no key",
            good.replace(&format!("Sec-WebSocket-Key: {key}\r\n"), ""),
            400,
            Some(BAD_KEY),
        ),
        (
            "key of 15 bytes",
            good.replace(key, "AAAAAAAAAAAAAAAAAAAA"),
            400,
            Some(BAD_KEY),
        ),
        (
            "key of 17 bytes",
            good.replace(key, "AAAAAAAAAAAAAAAAAAAAAAA="),
            400,
            Some(BAD_KEY),
        ),
        (
            "key not base64",
            good.replace(key, "!!!!!!!!!!!!!!!!!!!!!!=="),
            400,
            Some(BAD_KEY),
        ),
        ("empty key", good.replace(key, ""), 400, Some(BAD_KEY)),
        (
            "unknown path",
            good.replacen("/ws?room=r&name=probe", "/nowhere", 1),
            404,
            None,
        ),
        ("not HTTP", "HELLO THERE\r\n\r\n".into(), 400, None),
    ];

    for (what, request, status, _) in &cases {
        let (head, body) = http_exchange(server.addr, request.as_bytes()).await;
        assert_eq!(head.status, *status, "{what}: {body}");
        if *status == 426 {
            // Section 4.4: the answer names the versions the server speaks.
            assert_eq!(head.header("sec-websocket-version"), Some("13"), "{what}");
        }
        if *status != 400 || !what.starts_with("not") {
            assert!(
                !body.is_empty() && !body.contains('\n'),
                "{what}: one-line reason {body:?}"
            );
        }
        // Refused before any WebSocket byte: the room never heard of the client.
        chat_works(&mut ann, &mut [&mut bob], what).await;
    }

    let metrics = server.metrics().await;
    for label in [
        NOT_GET,
        OLD_HTTP,
        NO_UPGRADE,
        NO_CONNECTION,
        VERSION,
        BAD_KEY,
    ] {
        let expected = cases.iter().filter(|c| c.3 == Some(label)).count() as f64;
        let series = format!("wschat_handshake_failures_total{{reason=\"{label}\"}}");
        assert_eq!(metrics.value(&series), expected, "{series}");
    }
    assert_eq!(
        metrics.value("wschat_connections_total"),
        2.0,
        "only ann and bob got in"
    );
    server.assert_healthy().await;
}

/// The variants real clients send: token lists, any case, extra headers.
#[tokio::test]
async fn well_formed_variants_are_accepted() {
    let server = TestServer::with_config(Config {
        echo: true,
        ..Config::for_tests()
    })
    .await;
    let good = upgrade_request(server.addr, "/echo", "");
    let variants = [
        good.replace("Connection: Upgrade", "Connection: keep-alive, Upgrade"),
        good.replace("Connection: Upgrade", "Connection: UPGRADE"),
        good.replace("Upgrade: websocket", "Upgrade: WebSocket"),
        good.replace("Upgrade: websocket", "upgrade: websocket"),
        good.replace(
            "Host:",
            "User-Agent: test\r\nSec-WebSocket-Protocol: chat\r\nHost:",
        ),
    ];
    for request in variants {
        let mut raw = RawClient::connect(server.addr).await;
        raw.send(request.as_bytes()).await;
        let head = raw.response_head().await;
        assert_eq!(head.status, 101, "{request:?}");
        assert_eq!(
            head.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "the RFC's own example key and answer"
        );
    }
}

/// Requests hyper refuses before the server sees them: too many headers, or a head too large.
/// They get a 4xx (hyper's choice) and the server stays up.
#[tokio::test]
async fn oversized_heads_are_refused() {
    let server = TestServer::with_config(Config::for_tests()).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let huge = format!("X-Big: {}\r\n", "b".repeat(1 << 20));
    for (extra, may_reset) in [(many, false), (huge, true)] {
        let request = upgrade_request(server.addr, "/ws", &extra);
        let mut raw = RawClient::connect(server.addr).await;
        // The server may answer and close before reading all of it.
        let _ = tokio::io::AsyncWriteExt::write_all(&mut raw.stream, request.as_bytes()).await;
        match raw.try_response_head().await {
            Some(head) => assert!(
                (400..500).contains(&head.status),
                "{} header bytes: {head:?}",
                extra.len()
            ),
            // Closing with a megabyte unread makes the kernel reset the connection, which can
            // destroy the answer before it is read: then the connection must at least be gone.
            None => assert!(may_reset, "no answer to {} header bytes", extra.len()),
        }
        chat_works(&mut ann, &mut [], "still up").await;
    }
    server.assert_healthy().await;
}
