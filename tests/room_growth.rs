//! A room's channel starts small and grows while members join and messages flow; every member
//! receives every message posted after it joined exactly once, in id order, across every growth
//! step (the `Peer` client fails the test on a gap, a repeat or a `lagged` notice).
//!
//! Growth happens when some member falls half a ring behind. Well-behaved members on a quiet
//! machine may never do, so one member here stops reading. It stalls only once the kernel's
//! buffers for its socket are full as well (the server's send buffer grows to megabytes on
//! loopback), so the test first posts large messages until the room has grown twice, which
//! proves that member stalled, whatever the machine's timing. From then on the room must grow
//! with every few events while members join and the others keep up.

mod common;

use std::time::Duration;

use common::peer::within;
use common::raw::{upgrade_request, RawClient};
use common::TestServer;
use tokio::net::TcpSocket;
use wschat::chat::channel::INITIAL_CAPACITY;

/// Members that join one by one while messages flow.
const MEMBERS: usize = 300;

/// Messages posted while members join, at least (enough for several growth steps).
const LEAST_POSTED: usize = 64;

/// The size of the messages that fill the stalled member's buffers.
const LARGE: usize = 1 << 20;

#[tokio::test]
async fn growth_loses_repeats_and_reorders_nothing() {
    let config = wschat::Config {
        write_buffer: 2048,
        // The stalled member must stay until the end, not be dropped as a slow consumer.
        write_timeout: Duration::from_secs(300),
        max_message_size: 2 * LARGE,
        max_text_len: LARGE,
        ..wschat::Config::for_tests()
    };
    let server = TestServer::with_config(config).await;
    let (mut sender, _) = server.peer("g", "sender").await;
    let _stalled = stalled_member(&server).await;
    let room = server.shared.hub.room("g").unwrap();
    assert_eq!(room.channel_capacity(), INITIAL_CAPACITY);

    // Large messages, more bytes than every buffer between the server and the stalled member
    // can hold (the kernel's largest send buffer, its small receive buffer, a one-message
    // outbox): from the last of them on, that member reads nothing more from the room. The
    // sender's echo of the last says the server has handled them all.
    let large = "x".repeat(LARGE);
    for _ in 0..=largest_send_buffer() / LARGE + 2 {
        sender.say(&large).await;
    }
    sender.wait_echo(&large).await;
    let stalled_at = room.channel_capacity();

    // A steady stream of messages (100 a second) while members join.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let posting = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let (mut stop_asked, mut posted) = (false, 0);
        while !(stop_asked && posted >= LEAST_POSTED) {
            tokio::select! {
                _ = &mut stopped, if !stop_asked => stop_asked = true,
                _ = tick.tick() => {
                    sender.say(&format!("m{posted}")).await;
                    posted += 1;
                }
            }
        }
        sender.say("end").await;
        sender
    });
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        members.push(server.peer("g", &format!("member{i:03}")).await.0);
    }
    let _ = stop.send(());
    let _sender = within("the sender", posting).await.expect("sender task");

    let capacity = room.channel_capacity();
    assert!(
        capacity >= 4 * stalled_at,
        "the room grew at least twice while members joined (capacity {stalled_at} -> {capacity})"
    );
    for member in &mut members {
        // `event` checks each message id is the one after the last (from the welcome's
        // `last_id`): nothing missed, nothing twice, nothing out of order.
        while member.event_of("message").await["text"] != "end" {}
    }
}

/// A member that reads its welcome and then nothing, on a socket that takes little in.
async fn stalled_member(server: &TestServer) -> RawClient {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.addr).await.expect("connect");
    let mut raw = RawClient::from_stream(stream);
    let request = upgrade_request(server.addr, "/ws?room=g&name=stalled", "");
    raw.send(request.as_bytes()).await;
    assert_eq!(raw.response_head().await.status, 101);
    raw.frame().await.expect("welcome");
    raw
}

/// The most a socket's send buffer can grow to (`tcp_wmem`'s maximum), or a generous guess.
fn largest_send_buffer() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|text| text.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(16 << 20)
}
