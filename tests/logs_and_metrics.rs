//! What a client can make the server write: its log stays at a bounded rate (connections log at
//! `debug`, a periodic summary at `info`), without colour codes off a terminal, and `/metrics`
//! keeps a bounded set of series whatever close codes peers choose. `--metrics-addr` moves
//! `/metrics` off the public listener.

mod common;

use std::time::Duration;

use common::binary::Binary;
use common::raw::{client_frame, http_exchange, RawClient};
use common::TestServer;
use wschat::{Config, Server};

/// Connection churn from one client adds no log line per connection; a summary line comes
/// every `--log-summary-interval`; nothing carries ANSI escapes when stdout is a pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_does_not_grow_the_log() {
    let server = Binary::start_logging(&["--log-summary-interval", "300ms"], None);
    for i in 0..100 {
        let mut raw = RawClient::join(server.addr, "r", &format!("churn{i}")).await;
        raw.send(&client_frame(0x88, &1000u16.to_be_bytes())).await;
        raw.close_code().await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let lines = server.drain_lines();
    assert!(
        lines.iter().any(|l| l.contains("summary")),
        "a summary line: {lines:#?}"
    );
    assert!(
        lines.len() < 30,
        "{} lines for 100 connections: {lines:#?}",
        lines.len()
    );
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "colour codes in a pipe: {lines:#?}"
    );
}

/// Peers that close with 300 different application codes add one series, not 300.
#[tokio::test]
async fn close_codes_are_a_bounded_label_set() {
    let server = TestServer::start().await;
    let close_with = |code: u16| {
        let addr = server.addr;
        async move {
            let mut raw = RawClient::join(addr, "r", "closer").await;
            raw.send(&client_frame(0x88, &code.to_be_bytes())).await;
            assert_eq!(raw.close_code().await, Some(code), "the code is echoed");
        }
    };
    // The first close makes the series that any close makes (HTTP 101, close codes...).
    close_with(3000).await;
    let before = server.metrics().await.0.lines().count();
    for code in 3001..3300u16 {
        close_with(code).await;
    }
    let metrics = server.metrics().await;
    let after = metrics.0.lines().count();
    assert!(after <= before + 1, "{before} -> {after} lines");
    assert_eq!(
        metrics.value("wschat_close_codes_sent_total{code=\"other\"}"),
        300.0
    );
}

/// `--metrics-addr`: `/metrics` is served there and no longer on the main listener.
#[tokio::test]
async fn metrics_can_have_their_own_listener() {
    let config = Config {
        metrics_addr: Some(([127, 0, 0, 1], 0).into()),
        ..Config::for_tests()
    };
    let server = Server::bind(config).await.expect("bind");
    let (main, metrics) = (server.local_addr(), server.metrics_addr().expect("bound"));
    let handle = tokio::spawn(server.run(std::future::pending()));
    let get = |addr, path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        async move { http_exchange(addr, request.as_bytes()).await }
    };
    let (head, _) = get(main, "/metrics").await;
    assert_eq!(head.status, 404, "not on the main listener");
    let (head, body) = get(metrics, "/metrics").await;
    assert_eq!(head.status, 200);
    assert!(body.contains("wschat_connections_open"), "{body}");
    let (head, _) = get(metrics, "/").await;
    assert_eq!(head.status, 404, "only metrics and health there");
    let (head, _) = get(main, "/").await;
    assert_eq!(head.status, 200, "the page is still on the main one");
    handle.abort();
}
