//! Graceful shutdown of the real binary: SIGTERM with clients connected, every WebSocket client
//! gets close 1001 (chat and echo alike, including one that never answers the close), an idle HTTP
//! connection is let go, and the process exits 0.

mod common;

use common::binary::Binary;
use common::peer::{chat_works, Peer};
use common::raw::RawClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let mut server = Binary::start(&["--close-timeout", "1s", "--shutdown-grace", "5s"]);
    let addr = server.addr;
    let (mut ann, _) = Peer::connect(addr, "/ws?room=r&name=ann", &[]).await;
    let (mut bob, _) = Peer::connect(addr, "/ws?room=r&name=bob", &[]).await;
    chat_works(&mut ann, &mut [&mut bob], "before the signal").await;
    let mut echo = RawClient::upgrade(addr, "/echo").await;
    // Reads its frames but will never answer the server's close.
    let mut mute = RawClient::join(addr, "quiet", "mute").await;
    // A kept-alive HTTP connection between requests.
    let mut http = RawClient::connect(addr).await;
    http.send(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(http.response_head().await.status, 200);

    server.sigterm();

    assert_eq!(ann.closed().await, Some(1001), "ann");
    assert_eq!(bob.closed().await, Some(1001), "bob");
    assert_eq!(echo.finish_close().await, Some(1001), "echo");
    assert_eq!(mute.close_code().await, Some(1001), "mute");
    mute.expect_eof().await;
    http.expect_eof().await;
    assert_eq!(server.exit_code().await, Some(0), "exit code");
}

/// With nobody connected, SIGTERM (and SIGINT) exit at once, with 0.
#[tokio::test]
async fn signals_with_no_clients_exit_0() {
    for signal in ["-TERM", "-INT"] {
        let mut server = Binary::start(&[]);
        server.signal(signal);
        assert_eq!(server.exit_code().await, Some(0), "after {signal}");
    }
}

/// A second signal during the grace period exits at once (status 130), even with a client that
/// never answers its close; one signal alone waits for it (up to `--shutdown-grace`).
#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let mut server = Binary::start(&["--close-timeout", "60s", "--shutdown-grace", "60s"]);
    // Reads its frames but will never answer the server's close.
    let mut mute = RawClient::join(server.addr, "quiet", "mute").await;
    server.sigterm();
    assert_eq!(
        mute.close_code().await,
        Some(1001),
        "the first signal closes"
    );
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "one signal waits for the grace period"
    );
    server.signal("-INT");
    assert_eq!(server.exit_code().await, Some(130), "exit code");
}
