//! Cross-site WebSocket hijacking defence (RFC 6455 section 10.2): a browser's `Origin` must be
//! the server's own (`Host`) or listed with `--allowed-origin`; otherwise `403` before the
//! upgrade. A request without `Origin` (a non-browser client) is allowed.

mod common;

use common::peer::{chat_works, Peer};
use common::raw::{http_exchange, upgrade_request};
use common::TestServer;
use wschat::Config;

/// The status of an upgrade of `path` carrying `origin` (if any).
async fn status_with_origin(server: &TestServer, path: &str, origin: Option<&str>) -> u16 {
    let extra = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    let request = upgrade_request(server.addr, path, &extra);
    let mut raw = common::raw::RawClient::connect(server.addr).await;
    raw.send(request.as_bytes()).await;
    raw.response_head().await.status
}

#[tokio::test]
async fn foreign_origins_get_403_and_the_room_carries_on() {
    let mut config = Config::for_tests();
    config.allowed_origins = vec!["http://localhost:3000".into()];
    let server = TestServer::with_config(Config {
        echo: true,
        ..config
    })
    .await;
    let own = format!("http://{}", server.addr);
    let (mut ann, _) = server.peer("r", "ann").await;
    // A well-behaved client that sends an Origin, as a browser on the page would.
    let (mut bob, _) = Peer::connect(server.addr, "/ws?room=r&name=bob", &[("origin", &own)]).await;

    let other_port = format!("http://127.0.0.1:{}", server.addr.port() ^ 1);
    let cases: [(Option<&str>, u16); 9] = [
        (None, 101),
        (Some(&own), 101),
        (Some(&own.to_uppercase()), 101),
        (Some("http://localhost:3000"), 101),
        (Some("HTTP://LOCALHOST:3000"), 101),
        (Some("https://evil.example"), 403),
        (Some(&other_port), 403),
        (Some("http://localhost:3001"), 403),
        (Some("null"), 403),
    ];
    for path in ["/ws?room=r&name=probe", "/echo"] {
        for (origin, expected) in &cases {
            let got = status_with_origin(&server, path, *origin).await;
            assert_eq!(got, *expected, "{path} with Origin {origin:?}");
        }
    }
    let refused = 2 * cases.iter().filter(|(_, s)| *s == 403).count();

    // The refusal is a plain-text one-liner.
    let request = upgrade_request(server.addr, "/ws", "Origin: https://evil.example\r\n");
    let (head, body) = http_exchange(server.addr, request.as_bytes()).await;
    assert_eq!(head.status, 403);
    assert_eq!(body, "origin not allowed");

    chat_works(&mut ann, &mut [&mut bob], "hijack refused").await;
    server.assert_healthy().await;
    server
        .expect_metric(
            "wschat_handshake_failures_total{reason=\"origin not allowed\"}",
            (refused + 1) as f64,
        )
        .await;
}

/// Without `--allowed-origin`, only the server's own origin passes.
#[tokio::test]
async fn by_default_only_the_own_origin_passes() {
    let server = TestServer::with_config(Config::for_tests()).await;
    let own = format!("http://{}", server.addr);
    assert_eq!(status_with_origin(&server, "/ws", Some(&own)).await, 101);
    assert_eq!(
        status_with_origin(&server, "/ws", Some("http://localhost:3000")).await,
        403
    );
}
