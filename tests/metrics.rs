//! `GET /metrics` counts what happened: a scripted session of joins, messages, a refused upgrade,
//! a protocol error and a clean close, and the exact counters it must leave behind.

mod common;

use common::peer::chat_works;
use common::raw::{http_exchange, upgrade_request, RawClient};
use common::TestServer;
use wschat::Config;

#[tokio::test]
async fn metrics_count_connections_messages_failures_and_closes() {
    let server = TestServer::with_config(Config::for_tests()).await;
    let before = server.metrics().await;
    assert_eq!(before.get("wschat_connections_open"), Some(0.0));
    assert_eq!(before.get("wschat_connections_total"), Some(0.0));

    let (mut ann, _) = server.peer("r", "ann").await;
    let (mut bob, _) = server.peer("r", "bob").await;
    let (mut cat, _) = server.peer("elsewhere", "cat").await;
    for text in ["one", "two", "three"] {
        chat_works(&mut ann, &mut [&mut bob], text).await;
    }
    chat_works(&mut cat, &mut [], "alone").await;

    // Two refused upgrades, each counted under its reason.
    let foreign = upgrade_request(server.addr, "/ws", "Origin: https://evil.example\r\n");
    assert_eq!(
        http_exchange(server.addr, foreign.as_bytes())
            .await
            .0
            .status,
        403
    );
    let old = upgrade_request(server.addr, "/ws", "").replace("Version: 13", "Version: 8");
    assert_eq!(
        http_exchange(server.addr, old.as_bytes()).await.0.status,
        426
    );

    // A protocol error (1002).
    let mut bad = RawClient::join(server.addr, "r", "bad").await;
    bad.send(&[0x81, 0x00]).await;
    assert_eq!(bad.finish_close().await, Some(1002));
    drop(bad);

    // Bob leaves cleanly (the server echoes his 1000).
    bob.close().await;
    server.expect_metric("wschat_connections_open", 2.0).await;
    server
        .expect_metric("wschat_close_codes_sent_total{code=\"1002\"}", 1.0)
        .await;
    server
        .expect_metric("wschat_close_codes_sent_total{code=\"1000\"}", 1.0)
        .await;

    let m = server.metrics().await;
    assert_eq!(m.get("wschat_connections_total"), Some(4.0), "{}", m.0);
    assert_eq!(m.get("wschat_rooms"), Some(2.0));
    assert_eq!(m.get("wschat_messages_received_total"), Some(4.0));
    let text_bytes = ["one", "two", "three", "alone"]
        .iter()
        .map(|t| format!(r#"{{"text":"{t}","type":"message"}}"#).len())
        .sum::<usize>();
    // Bytes in counts the text frames' payloads; the JSON keys may come in any order.
    assert_eq!(m.get("wschat_bytes_in_total"), Some(text_bytes as f64));
    assert_eq!(
        m.get("wschat_handshake_failures_total{reason=\"origin not allowed\"}"),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "wschat_handshake_failures_total{reason=\"unsupported Sec-WebSocket-Version (this \
             server speaks 13)\"}"
        ),
        Some(1.0)
    );
    // Every client got at least its welcome and the messages of its room; a write carries at
    // least one frame.
    let deliveries = m.value("wschat_deliveries_total");
    let writes = m.value("wschat_write_calls_total");
    assert!(deliveries >= 4.0 + 2.0 * 3.0 + 1.0, "{deliveries}");
    assert!(writes >= 1.0 && writes <= deliveries, "{writes} writes");
    assert!(m.value("wschat_bytes_out_total") > 0.0);
    assert_eq!(
        m.get("wschat_http_requests_total{status=\"101\"}"),
        Some(4.0)
    );
    assert_eq!(
        m.get("wschat_http_requests_total{status=\"403\"}"),
        Some(1.0)
    );
    // The process collector (CPU seconds give deliveries per CPU-second).
    assert!(m.get("process_cpu_seconds_total").is_some(), "{}", m.0);
    assert!(m.get("process_resident_memory_bytes").is_some());

    ann.close().await;
    cat.close().await;
    server.expect_metric("wschat_connections_open", 0.0).await;
    server.expect_metric("wschat_rooms", 0.0).await;
}

/// The page is served as Prometheus text.
#[tokio::test]
async fn metrics_are_prometheus_text() {
    let server = TestServer::with_config(Config::for_tests()).await;
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    let (head, body) = http_exchange(server.addr, request.as_bytes()).await;
    assert_eq!(head.status, 200);
    assert!(
        head.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{head:?}"
    );
    assert!(
        body.contains("# TYPE wschat_connections_open gauge"),
        "{body}"
    );
    assert!(body.contains("# TYPE wschat_deliveries_total counter"));
    assert!(body.contains("# HELP wschat_write_calls_total "));
}
