//! Names, texts, origins and hosts: what a client claims about itself is checked before it
//! counts. Invisible names and texts are refused, an Origin must be an `http(s)` page of this
//! server, `--allowed-host` answers only for the named hosts, and query values are exact.

mod common;

use common::raw::{http_exchange, upgrade_request, RawClient};
use common::TestServer;
use wschat::Config;

/// The status of an upgrade request (the head only: a `101` has no end to read to).
async fn status(server: &TestServer, path: &str, extra: &str) -> u16 {
    let mut raw = RawClient::connect(server.addr).await;
    raw.send(upgrade_request(server.addr, path, extra).as_bytes())
        .await;
    raw.response_head().await.status
}

#[tokio::test]
async fn invisible_names_odd_cursors_and_dot_rooms_are_refused() {
    let server = TestServer::start().await;
    for path in [
        "/ws?room=r&name=%E3%85%A4",    // U+3164 Hangul filler
        "/ws?room=r&name=%E2%A0%80",    // U+2800 Braille blank
        "/ws?room=r&name=%F3%A0%81%81", // U+E0041 tag character
        "/ws?room=r&name=%C2%AD",       // U+00AD soft hyphen
        "/ws?room=r&since=%2B5",        // "+5"
        "/ws?room=.&name=x",
        "/ws?room=..&name=x",
    ] {
        assert_eq!(status(&server, path, "").await, 400, "{path}");
    }
    assert_eq!(status(&server, "/ws?room=r&since=5", "").await, 101);
}

#[tokio::test]
async fn an_invisible_message_is_empty() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.peer("r", "ann").await;
    ann.say("\u{3164}\u{200B}").await;
    let error = ann.event_of("error").await;
    assert_eq!(error["code"], "empty");
}

#[tokio::test]
async fn an_origin_must_be_an_http_page_of_this_server() {
    let server = TestServer::start().await;
    let host = server.addr;
    for (origin, expected) in [
        (format!("http://{host}"), 101),
        (format!("https://{host}"), 101),
        (format!("evil://{host}"), 403),
        (format!("file://{host}"), 403),
        ("null".to_owned(), 403),
    ] {
        let extra = format!("Origin: {origin}\r\n");
        assert_eq!(status(&server, "/ws", &extra).await, expected, "{origin}");
    }
}

/// `--allowed-host`: a request for another host name (DNS rebinding) gets `421`.
#[tokio::test]
async fn only_allowed_hosts_are_answered() {
    let mut config = Config::for_tests();
    config.allowed_hosts = vec!["chat.example:8080".into()];
    let server = TestServer::with_config(config).await;
    let get = |host: &str| format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let (head, _) = http_exchange(server.addr, get(&server.addr.to_string()).as_bytes()).await;
    assert_eq!(head.status, 421);
    let (head, body) = http_exchange(server.addr, get("chat.example:8080").as_bytes()).await;
    assert_eq!((head.status, body.as_str()), (200, "ok"));
}
