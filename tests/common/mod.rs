//! Helpers shared by the integration tests: a real server on an ephemeral port, a real client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wschat::{Config, Server};

/// The real binary as a child process: signals, exit codes, its log and its memory.
pub mod binary;
/// A client that reads on its own task and checks it misses no message (the bad-input tests).
pub mod peer;
/// Raw bytes: malformed handshakes and frames, raw HTTP, `/metrics`.
pub mod raw;
/// A `redis-server` of the test's own (the `--redis` tests).
pub mod redis;

/// How long any single wait may take before a test gives up: long enough for a loaded CI
/// machine, and free when green (a passing wait returns as soon as its condition holds).
pub const WAIT: Duration = Duration::from_secs(10);

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server running in this process; dropping it (or calling `stop`) shuts it down.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shared: std::sync::Arc<wschat::state::Shared>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with_config(Config::for_tests()).await
    }

    /// Starts the server with `config`. Binding the port of a server that just stopped can fail
    /// for a moment while the old socket closes (a restart test reuses it), so it is retried
    /// until [`WAIT`].
    pub async fn with_config(config: Config) -> TestServer {
        let deadline = std::time::Instant::now() + WAIT;
        let server = loop {
            match Server::bind(config.clone()).await {
                Ok(server) => break server,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("bind {} failed ({e}); retrying", config.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot bind {}: {e}", config.addr),
            }
        };
        let addr = server.local_addr();
        let shared = server.shared().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            shared,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// `http://127.0.0.1:PORT`, the page's address.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    /// Connects to `/ws?QUERY` and returns the client and its welcome event.
    pub async fn join(&self, query: &str) -> (Client, Value) {
        let (mut client, _) = tokio_tungstenite::connect_async(self.url(&format!("/ws?{query}")))
            .await
            .expect("connect");
        let welcome = next_event(&mut client).await;
        assert_eq!(welcome["type"], "welcome", "first frame is the welcome");
        (client, welcome)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task").expect("server run");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Resident memory of a process, in bytes, from `/proc/PROC/status` (`PROC` a PID or `self`):
/// the figure the swarm's `--server-pid` reads too.
pub fn vm_rss(proc: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{proc}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// The next text frame as JSON, skipping pings; panics after [`WAIT`].
pub async fn next_event(client: &mut Client) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("an event before the timeout")
            .expect("connection open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON event"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next event of type `kind`, skipping others (joins, typing...).
pub async fn next_of_type(client: &mut Client, kind: &str) -> Value {
    loop {
        let event = next_event(client).await;
        if event["type"] == kind {
            return event;
        }
    }
}

pub async fn say(client: &mut Client, text: &str) {
    let request = serde_json::json!({"type": "message", "text": text}).to_string();
    client.send(Message::text(request)).await.expect("send");
}

/// Reads until the server closes, returning the close code it sent (None: no close frame).
pub async fn close_code(client: &mut Client) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, client.next())
            .await
            .expect("close before the timeout")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// Completes a WebSocket handshake by hand on a raw TCP stream and returns the stream, positioned
/// after the `101` response's headers (for tests that must send malformed frames).
pub async fn raw_handshake(server: &TestServer, path_and_query: &str) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let request = raw::upgrade_request(server.addr, path_and_query, "");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send handshake");
    // Read byte by byte up to the blank line, so no frame byte is consumed here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT, stream.read_u8())
            .await
            .expect("handshake response in time")
            .expect("handshake response");
        head.push(byte);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}
