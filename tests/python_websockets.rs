//! permessage-deflate with a real deflate peer: the Python `websockets` library
//! (`tests/python/deflate_peer.py`), which negotiates permessage-deflate by default and compresses
//! what it sends. Chat both ways and `/echo` up to 1 MB, compressed by a client whose DEFLATE is
//! not ours, and a server that compressed for it.
//!
//! Without `python3` and `websockets` the test prints `SKIPPED` and passes, unless
//! `WSCHAT_REQUIRE_PYTHON_WEBSOCKETS=1` (set by CI, whose `.ci/run` installs the package), which
//! turns the absence into a failure.

mod common;

use std::time::Duration;

use common::TestServer;
use serde_json::Value;
use wschat::Config;

fn websockets_installed() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import websockets.asyncio.client"])
        .output()
        .is_ok_and(|out| out.status.success())
}

#[tokio::test]
async fn python_websockets_negotiates_and_talks_compressed() {
    if !websockets_installed() {
        if std::env::var("WSCHAT_REQUIRE_PYTHON_WEBSOCKETS").is_ok_and(|v| v == "1") {
            panic!(
                "WSCHAT_REQUIRE_PYTHON_WEBSOCKETS=1 but python3 with `websockets` (13 or later) is \
                 not installed (python3 -m pip install websockets)"
            );
        }
        eprintln!("SKIPPED: python3 `websockets` not installed (python_websockets.rs)");
        return;
    }
    let server = TestServer::with_config(Config {
        echo: true,
        ..Config::for_tests()
    })
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/deflate_peer.py");
    let run = tokio::process::Command::new("python3")
        .arg(script)
        .arg(server.addr.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the Python peer finished within 120 s")
        .expect("python3 ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python peer failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(
        found["extensions"],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert_eq!(found["alice_welcome"], "welcome");
    assert_eq!(found["bob_welcome"], "welcome");
    assert_eq!(found["bob_got_text"], true);
    assert_eq!(found["alice_got_own"], true);
    assert_eq!(found["echo_ok"], true);

    // Both ways compressed: the server compressed (its count), and inflated what the client sent
    // (the chat message arrived; and websockets compresses every message once it is agreed).
    let metrics = server.metrics().await;
    assert_eq!(metrics.value("wschat_deflate_connections_total"), 3.0);
    assert!(metrics.value("wschat_deflate_compressions_total") >= 1.0);
    let (before, after) = (
        metrics.value("wschat_deflate_bytes_before_total"),
        metrics.value("wschat_deflate_bytes_after_total"),
    );
    assert!(after * 2.0 < before, "{after} of {before}");
    server.stop().await;
}
