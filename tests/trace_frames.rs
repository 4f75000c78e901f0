//! `--trace-frames` logs every frame in and out, annotated, from the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn every_frame_is_logged_with_its_annotations() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["--addr", "127.0.0.1:0", "--trace-frames", "--echo"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wschat");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(WAIT).expect("the address line");
    let addr = first
        .strip_prefix("wschat listening on http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .expect("address line")
        .to_string();

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
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
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
    let _ = child.kill();
    let _ = child.wait();
    assert!(saw_in, "no trace of the incoming frame");
    assert!(saw_out, "no trace of the outgoing frame");
}
