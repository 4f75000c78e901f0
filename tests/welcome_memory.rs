//! 1,000 clients join a room whose history is as large as `--history-bytes` lets it be, and never
//! read: each costs a few KiB (its connection and the head of its welcome), not a copy of the
//! history. Memory is read from `/proc` of this process, where the server runs; the only test in
//! its file, so no other test's allocations are counted.

mod common;

use std::time::Duration;

use common::peer::within;
use common::raw::upgrade_request;
use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use wschat::Config;

/// The costliest text a message can have: one visible letter (a text of nothing but invisible
/// characters is refused as empty) and 4,095 NUL characters, each 6 bytes of JSON (`\u0000`).
fn costliest_text(config: &Config) -> String {
    format!("a{}", "\0".repeat(config.max_text_len - 1))
}

/// Resident memory of this process (server and clients both live here), in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// 1,000 clients join a room whose history is as large as it can be, then never read: each costs
/// the server a few KiB (its connection and the head of its welcome), not a copy of the history.
#[tokio::test(flavor = "current_thread")]
async fn joiners_that_never_read_share_one_history() {
    const JOINERS: usize = 1000;
    // All 1,051 clients come from 127.0.0.1: this test is about memory, not the per-address cap.
    let config = Config {
        max_connections_per_ip: 0,
        ..Config::for_tests()
    };
    let server = TestServer::with_config(config.clone()).await;
    let (mut poster, _) = server.peer("big", "poster").await;
    let text = costliest_text(&config);
    for _ in 0..20 {
        poster.say(&text).await;
        poster.event_of("message").await;
    }
    // Warm up: the first connections set up the allocator's and runtime's own structures.
    let mut joiners = Vec::new();
    let connect = |i: usize| {
        let addr = server.addr;
        async move {
            let socket = TcpSocket::new_v4().unwrap();
            // A small receive window, so the kernel takes little and the rest waits in the
            // server's queue, where it is counted.
            socket.set_recv_buffer_size(4096).unwrap();
            let mut stream = socket.connect(addr).await.expect("connect");
            let request = upgrade_request(addr, &format!("/ws?room=big&name=j{i}"), "");
            stream.write_all(request.as_bytes()).await.unwrap();
            // Read just the `101` head, byte by byte, and never anything after it.
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(stream.read_u8().await.unwrap());
            }
            assert!(head.starts_with(b"HTTP/1.1 101"));
            stream
        }
    };
    for i in 0..50 {
        joiners.push(within("a warm-up joiner", connect(i)).await);
    }
    let before = rss();
    for i in 50..50 + JOINERS {
        joiners.push(within("a joiner", connect(i)).await);
    }
    // Every session has queued its welcome once it has joined.
    within("every joiner in the room", async {
        while server.shared.hub.room("big").unwrap().user_count() < JOINERS + 51 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let per_joiner = rss().saturating_sub(before) / JOINERS;
    println!("{per_joiner} bytes per non-reading joiner");
    assert!(
        per_joiner <= 8 * 1024,
        "{per_joiner} bytes per non-reading joiner (client side included)"
    );
    drop(joiners);
}
