//! `--max-rooms`: an upgrade that would create a room beyond the cap gets `503` with a one-line
//! reason before any WebSocket byte; existing rooms stay joinable, their members carry on, and a
//! room that empties frees its place.

mod common;

use std::time::Duration;

use common::peer::chat_works;
use common::raw::{http_exchange, upgrade_request, RawClient};
use common::TestServer;
use wschat::Config;

const REASON: &str = "server at its room limit: join an existing room or try later";

#[tokio::test]
async fn max_rooms_refuses_a_new_room_and_keeps_the_others() {
    let mut config = Config::for_tests();
    config.max_rooms = 2;
    let server = TestServer::with_config(config).await;
    let (mut ann, _) = server.peer("a", "ann").await;
    let (bob, _) = server.peer("b", "bob").await;

    let (head, body) = http_exchange(
        server.addr,
        upgrade_request(server.addr, "/ws?room=c&name=cat", "").as_bytes(),
    )
    .await;
    assert_eq!((head.status, body.as_str()), (503, REASON));

    // An existing room is still joinable, and works.
    let (mut carol, _) = server.peer("a", "carol").await;
    chat_works(&mut ann, &mut [&mut carol], "still here").await;
    let metrics = server.metrics().await;
    assert_eq!(
        metrics.value(&format!(
            "wschat_handshake_failures_total{{reason=\"{REASON}\"}}"
        )),
        1.0
    );

    // Room b empties and is dropped: c can be created.
    bob.close().await;
    let mut status = 0;
    for _ in 0..500 {
        let mut raw = RawClient::connect(server.addr).await;
        raw.send(upgrade_request(server.addr, "/ws?room=c&name=cat", "").as_bytes())
            .await;
        status = raw.response_head().await.status;
        if status == 101 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 101, "a dropped room frees its place");
}
