//! `--trace-frames` logs every frame in and out, annotated, from the real binary.

mod common;

use std::time::{Duration, Instant};

use common::binary::Binary;
use common::WAIT;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn every_frame_is_logged_with_its_annotations() {
    let server = Binary::start_logging(&["--trace-frames"], None);
    let addr = server.addr;

    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/echo"))
        .await
        .expect("connect");
    client.send(Message::text("hello tracer")).await.unwrap();
    let echoed = tokio::time::timeout(WAIT, client.next()).await.unwrap();
    assert!(matches!(echoed, Some(Ok(Message::Text(_)))));

    // An incoming masked text frame and the outgoing unmasked echo, each with length and bytes.
    let deadline = Instant::now() + WAIT;
    let (mut saw_in, mut saw_out) = (false, false);
    while !(saw_in && saw_out) && Instant::now() < deadline {
        let Ok(line) = server.lines.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if line.contains("len=12") && line.contains("|hello tracer|") && line.contains("Text") {
            saw_in |=
                line.contains(" in ") && line.contains("masked") && !line.contains("unmasked");
            saw_out |= line.contains("out") && line.contains("unmasked");
            assert!(line.contains("FIN") && line.contains("rsv=0"), "{line}");
            assert!(
                line.contains("68 65 6c 6c 6f"),
                "hex of the payload: {line}"
            );
        }
    }
    drop(server);
    assert!(saw_in, "no trace of the incoming frame");
    assert!(saw_out, "no trace of the outgoing frame");
}
