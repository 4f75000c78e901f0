//! The HTTP side: the upgrade by hand, a pipelined first frame, refused handshakes, the page.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A masked client text frame.
fn client_text(text: &str) -> Vec<u8> {
    let mask = [7u8, 1, 9, 3];
    assert!(text.len() < 126);
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

fn upgrade_request(path: &str) -> String {
    common::raw::upgrade_request(std::net::SocketAddr::from(([127, 0, 0, 1], 80)), path, "")
}

#[tokio::test]
async fn a_frame_pipelined_behind_the_handshake_is_not_lost() {
    let server = TestServer::with_config(wschat::Config {
        echo: true,
        ..wschat::Config::for_tests()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // Handshake and first frame in one write: hyper reads both, and must hand the frame over.
    let mut bytes = upgrade_request("/echo").into_bytes();
    bytes.extend(client_text("pipelined"));
    stream.write_all(&bytes).await.unwrap();
    let mut received = Vec::new();
    let expected_tail = b"\x81\x09pipelined";
    let read = async {
        let mut buf = [0u8; 1024];
        while !received.ends_with(expected_tail) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "server closed: {:?}",
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("echo of the pipelined frame");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{text}");
}

/// Sends a raw request and returns the status code and the body's first line.
async fn status_of(server: &TestServer, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
            if let Some(end) = find(&response, b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&response[..end]).to_lowercase();
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if response.len() >= end + 4 + length {
                    break;
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn bad_handshakes_get_their_status() {
    let server = TestServer::start().await;
    let good = upgrade_request("/ws");
    let cases: Vec<(String, u16)> = vec![
        (good.replace("GET", "POST"), 405),
        (good.replace("HTTP/1.1", "HTTP/1.0"), 400),
        (good.replace("Upgrade: websocket\r\n", ""), 400),
        (
            good.replace("Connection: Upgrade", "Connection: keep-alive"),
            400,
        ),
        (good.replace("Version: 13", "Version: 8"), 426),
        (
            good.replace("dGhlIHNhbXBsZSBub25jZQ==", "dG9vIHNob3J0"),
            400,
        ),
        (good.replace("GET /ws", "GET /ws?name=%01bell"), 400),
        (
            good.replace("GET /ws", &format!("GET /ws?name={}", "n".repeat(33))),
            400,
        ),
        (good.replace("GET /ws", "GET /ws?room=no%20spaces"), 400),
        (good.replace("GET /ws", "GET /ws?since=abc"), 400),
        (
            good.replace(
                "Host: 127.0.0.1",
                "Host: 127.0.0.1\r\nOrigin: http://evil.example",
            ),
            403,
        ),
        (good.replace("GET /ws", "GET /nowhere"), 404),
    ];
    for (request, status) in cases {
        let (got, body) = status_of(&server, &request).await;
        assert_eq!(got, status, "{request:?} -> {body}");
        assert!(!body.is_empty(), "a one-line reason for {status}");
    }
    // The server is still up and chatting.
    let (mut ann, _) = server.join("name=ann").await;
    say(&mut ann, "still up").await;
    assert_eq!(next_event(&mut ann).await["text"], "still up");
}

#[tokio::test]
async fn wrong_version_names_the_supported_one() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = upgrade_request("/ws").replace("Version: 13", "Version: 7");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(head.starts_with("http/1.1 426"), "{head}");
    assert!(head.contains("sec-websocket-version: 13"), "{head}");
}

#[tokio::test]
async fn the_page_and_health_are_served() {
    let server = TestServer::start().await;
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let (status, body) = status_of(&server, &get("/")).await;
    assert_eq!(status, 200);
    assert!(body.contains("<html"), "{body}");
    assert_eq!(status_of(&server, &get("/app.js")).await.0, 200);
    assert_eq!(status_of(&server, &get("/style.css")).await.0, 200);
    assert_eq!(
        status_of(&server, &get("/healthz")).await,
        (200, "ok".into())
    );
    let (status, metrics) = status_of(&server, &get("/metrics")).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("wschat_connections_open"), "{metrics}");
    let post = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(status_of(&server, post).await.0, 405);
}

#[tokio::test]
async fn the_page_forbids_inline_script_and_foreign_sockets() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response).to_lowercase();
    let csp = text
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("a Content-Security-Policy header");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        csp.contains(&format!("connect-src 'self' ws://{}", server.addr)),
        "{csp}"
    );
}

/// `/limits` tells the page the limits in force, so it checks input as this server will.
#[tokio::test]
async fn the_page_learns_the_limits_in_force() {
    let mut config = wschat::Config::for_tests();
    config.max_name_len = 8;
    config.max_room_len = 6;
    config.max_text_len = 100;
    let server = TestServer::with_config(config).await;
    let get = "GET /limits HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let (status, body) = status_of(&server, get).await;
    assert_eq!(status, 200);
    let limits: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        limits,
        serde_json::json!({"max_room_len": 6, "max_name_len": 8, "max_text_len": 100})
    );
}
