//! A room's channel starts small and grows while members join and messages flow; every member
//! receives every message posted after it joined exactly once, in id order, across every growth
//! step (the `Peer` client fails the test on a gap, a repeat or a `lagged` notice).
//!
//! Growth happens when some member falls half a ring behind. Well-behaved members on a quiet
//! machine may never do, so one member here stops reading (a small `--write-buffer` makes its
//! outbox fill after a few messages): from then on the room must grow, step by step, while the
//! others keep up.

mod common;

use std::time::Duration;

use common::peer::within;
use common::raw::{upgrade_request, RawClient};
use common::TestServer;
use tokio::net::TcpSocket;
use wschat::chat::channel::INITIAL_CAPACITY;

/// Members that join one by one while messages flow.
const MEMBERS: usize = 300;

#[tokio::test]
async fn growth_loses_repeats_and_reorders_nothing() {
    let config = wschat::Config {
        write_buffer: 2048,
        ..wschat::Config::for_tests()
    };
    let server = TestServer::with_config(config).await;
    let (mut sender, _) = server.peer("g", "sender").await;
    let _stalled = stalled_member(&server).await;
    assert_eq!(
        server.shared.hub.room("g").unwrap().channel_capacity(),
        INITIAL_CAPACITY
    );

    // A steady stream of messages (100 a second, under the rate limit) while members join.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let posting = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for i in 0.. {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => sender.say(&format!("m{i}")).await,
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

    let capacity = server.shared.hub.room("g").unwrap().channel_capacity();
    assert!(
        capacity >= 4 * INITIAL_CAPACITY,
        "the room grew several times while this ran (capacity {capacity})"
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
