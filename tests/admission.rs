//! Who may open a connection: the per-address caps, the cap on connections not yet upgraded, and
//! that every refusal (at accept or at the upgrade) is an answer followed at once by a close, so
//! a refused client holds no descriptor.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::peer::{chat_works, within};
use common::raw::{upgrade_request, RawClient};
use common::TestServer;
use tokio::net::TcpSocket;
use wschat::Config;

/// Long enough that only an explicit close, never the idle timeout, ends a connection here.
fn config() -> Config {
    let mut config = Config::for_tests();
    config.header_timeout = Duration::from_secs(60);
    config
}

/// A TCP connection from the loopback address `127.0.0.N`.
async fn connect_from(n: u8, server: SocketAddr) -> RawClient {
    let socket = TcpSocket::new_v4().expect("socket");
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)), 0);
    socket.bind(local).expect("bind a loopback source address");
    RawClient::from_stream(socket.connect(server).await.expect("connect"))
}

/// A refused connection: `503`, the reason as its body, and the connection closed.
async fn expect_refused(raw: &mut RawClient, reason: &str) {
    let head = raw.response_head().await;
    assert_eq!(head.status, 503);
    assert_eq!(head.header("connection"), Some("close"));
    let body = raw.read_to_end().await;
    assert_eq!(String::from_utf8_lossy(&body), reason);
}

/// `--max-connections-per-ip`: the next connection from a full address is refused and closed,
/// other addresses are not affected, and a freed place is taken again.
#[tokio::test]
async fn connections_per_address_are_capped() {
    let mut config = config();
    config.max_connections_per_ip = 3;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("r", "ann").await;
    let (mut bob, _) = server.peer("r", "bob").await;
    let idle = connect_from(1, server.addr).await;
    let mut fourth = connect_from(1, server.addr).await;
    expect_refused(&mut fourth, "too many connections from your address").await;
    let mut elsewhere = connect_from(2, server.addr).await;
    elsewhere
        .send(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .await;
    assert_eq!(elsewhere.response_head().await.status, 200);
    chat_works(&mut ann, &mut [&mut bob], "not affected").await;
    // Read from another address: this one is full.
    let mut metrics = connect_from(2, server.addr).await;
    metrics
        .send(
            format!(
                "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                server.addr
            )
            .as_bytes(),
        )
        .await;
    let text = String::from_utf8_lossy(&metrics.read_to_end().await).into_owned();
    assert!(
        text.contains(
            "wschat_refused_connections_total{reason=\"too many connections from your address\"} 1"
        ),
        "{text}"
    );
    drop(idle);
    within("a freed place", async {
        loop {
            let mut again = connect_from(1, server.addr).await;
            again
                .send(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
                .await;
            if again.response_head().await.status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// `--max-handshakes-per-ip`: connections that have not upgraded (a slowloris sends nothing)
/// are capped per address; an upgraded client from the same address is not counted among them.
#[tokio::test]
async fn unfinished_handshakes_per_address_are_capped() {
    let mut config = config();
    config.max_handshakes_per_ip = 2;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("r", "ann").await; // upgraded: not a handshake any more
    let slow1 = connect_from(1, server.addr).await;
    let _slow2 = connect_from(1, server.addr).await;
    let mut third = connect_from(1, server.addr).await;
    expect_refused(
        &mut third,
        "too many unfinished handshakes from your address",
    )
    .await;
    // A freed handshake place is taken again, and the client it lets in chats as usual.
    drop(slow1);
    let mut bob = within("a freed handshake place", async {
        loop {
            let mut raw = connect_from(1, server.addr).await;
            raw.send(upgrade_request(server.addr, "/ws?room=r&name=bob", "").as_bytes())
                .await;
            if raw.response_head().await.status == 101 {
                break raw;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    bob.frame().await.expect("welcome");
    ann.event_of("join").await;
    ann.say("upgraded ones carry on").await;
    ann.expect_message("ann", "upgraded ones carry on").await;
}

/// `--max-http-connections`: connections not yet upgraded have their own cap.
#[tokio::test]
async fn connections_not_yet_upgraded_are_capped() {
    let mut config = config();
    config.max_http_connections = 2;
    let server = TestServer::with_config(config).await;
    let _a = connect_from(1, server.addr).await;
    let _b = connect_from(2, server.addr).await;
    let mut c = connect_from(3, server.addr).await;
    expect_refused(&mut c, "too many connections waiting to upgrade").await;
}

/// A refused upgrade (`400`, `403`, `426`, `503`) closes the connection at once rather than
/// keeping it open for more requests.
#[tokio::test]
async fn a_refused_upgrade_is_followed_by_a_close() {
    let server = TestServer::with_config(config()).await;
    let requests = [
        upgrade_request(server.addr, "/ws?room=..", ""),
        upgrade_request(server.addr, "/ws", "Origin: https://evil.example\r\n"),
        upgrade_request(server.addr, "/ws", "")
            .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
    ];
    for request in &requests {
        let mut raw = RawClient::connect(server.addr).await;
        raw.send(request.as_bytes()).await;
        let head = raw.response_head().await;
        assert!(head.status >= 400, "{head:?}");
        assert_eq!(head.header("connection"), Some("close"), "{head:?}");
        raw.read_to_end().await; // EOF well before the 60 s header timeout
    }
}
