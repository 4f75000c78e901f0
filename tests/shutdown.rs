//! Graceful shutdown of the real binary: SIGTERM with clients connected, every WebSocket client
//! gets close 1001 (chat and echo alike, including one that never answers the close), an idle HTTP
//! connection is let go, and the process exits 0.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::peer::{chat_works, Peer, WAIT};
use common::raw::RawClient;

/// The `wschat` binary, started by this test and killed (by its PID) if the test fails first.
struct Binary {
    child: Child,
    addr: SocketAddr,
}

impl Binary {
    /// Starts `wschat --addr 127.0.0.1:0 ARGS` and reads the address it bound from its first
    /// line of output (`wschat listening on http://ADDR/`).
    fn start(args: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
            .args(["--addr", "127.0.0.1:0", "--echo"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the wschat binary");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(WAIT)
            .expect("the binary prints its address");
        let addr = line
            .strip_prefix("wschat listening on http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("a socket address");
        Binary { child, addr }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    async fn exit_code(&mut self) -> Option<i32> {
        for _ in 0..(WAIT.as_millis() / 20) {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not exit within {WAIT:?} of SIGTERM");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

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
        let status = Command::new("kill")
            .args([signal, &server.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        assert_eq!(server.exit_code().await, Some(0), "after {signal}");
    }
}
