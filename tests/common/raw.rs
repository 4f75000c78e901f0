//! Raw bytes on a TCP connection: malformed handshakes and frames, clients that stop reading or
//! never answer, and plain HTTP requests. The server's frames are parsed here independently of the
//! server's own parser, so the two check each other.

use std::net::SocketAddr;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::peer::within;
use super::TestServer;

impl TestServer {
    /// `GET path` on a fresh connection: the status and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let (head, body) = http_exchange(self.addr, request.as_bytes()).await;
        (head.status, body)
    }

    /// Fails the test unless the server still answers `/healthz` with `200`.
    pub async fn assert_healthy(&self) {
        let (status, body) = self.get("/healthz").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ok"),
            "server is not healthy"
        );
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "/metrics");
        Metrics(body)
    }

    /// Polls `/metrics` until `series` reads `expected` (a session counts some things only once
    /// its close handshake is over, a moment after the client saw it); panics after [`WAIT`]
    /// with the last value seen.
    ///
    /// [`WAIT`]: super::peer::WAIT
    pub async fn expect_metric(&self, series: &str, expected: f64) {
        let mut last = None;
        let poll = async {
            loop {
                let value = self.metrics().await.value(series);
                if value == expected {
                    return;
                }
                last = Some(value);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(super::peer::WAIT, poll).await.is_err() {
            panic!("{series} stayed at {last:?}, expected {expected}");
        }
    }
}

/// The Prometheus text of `/metrics`.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the sample written exactly `series` (e.g.
    /// `wschat_close_codes_sent_total{code="1002"}`), or `None` if absent.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("a number"))
        })
    }

    /// Like [`get`](Self::get), with an absent series counting as 0 (a labelled counter appears
    /// only once incremented).
    pub fn value(&self, series: &str) -> f64 {
        self.get(series).unwrap_or(0.0)
    }
}

/// The status line and headers of an HTTP response.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` on a fresh connection and reads one response: its head and its body (by
/// `Content-Length`, or to the end of the connection without one).
pub async fn http_exchange(addr: SocketAddr, request: &[u8]) -> (ResponseHead, String) {
    let mut raw = RawClient::connect(addr).await;
    raw.send(request).await;
    let head = raw.response_head().await;
    let body = match head.header("content-length") {
        Some(len) => raw.read_exact(len.parse().expect("Content-Length")).await,
        None => raw.read_to_end().await,
    };
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// A valid upgrade request for `path`, with `extra` header lines (each ending in `\r\n`).
pub fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// One frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    /// RSV1: a message compressed with permessage-deflate (on connections that negotiated it).
    pub rsv1: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// A TCP connection the test writes arbitrary bytes to, reading the server's frames by hand.
pub struct RawClient {
    pub stream: TcpStream,
    /// Read but not yet consumed.
    buf: Vec<u8>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Wraps a connection the test set up itself (e.g. with a small receive buffer).
    pub fn from_stream(stream: TcpStream) -> RawClient {
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Completes a valid upgrade of `path` (e.g. `/ws?room=r&name=n`); panics unless `101`.
    pub async fn upgrade(addr: SocketAddr, path: &str) -> RawClient {
        let mut raw = RawClient::connect(addr).await;
        raw.send(upgrade_request(addr, path, "").as_bytes()).await;
        let head = raw.response_head().await;
        assert_eq!(head.status, 101, "upgrade of {path}: {head:?}");
        raw
    }

    /// Like [`upgrade`](Self::upgrade) on `/ws`, and reads the welcome.
    pub async fn join(addr: SocketAddr, room: &str, name: &str) -> RawClient {
        let mut raw = RawClient::upgrade(addr, &format!("/ws?room={room}&name={name}")).await;
        let welcome = raw.frame().await.expect("a welcome frame");
        let welcome: Value = serde_json::from_slice(&welcome.payload).expect("welcome JSON");
        assert_eq!(welcome["type"], "welcome");
        raw
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        within("a raw write", self.stream.write_all(bytes))
            .await
            .expect("raw write");
    }

    /// Reads more bytes into `buf`; `false` at EOF or on a reset.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match within("raw bytes from the server", self.stream.read(&mut chunk)).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads an HTTP response's status line and headers.
    pub async fn response_head(&mut self) -> ResponseHead {
        match self.try_response_head().await {
            Some(head) => head,
            None => panic!(
                "connection closed before a response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Like [`response_head`](Self::response_head), or `None` if the connection ends (or is
    /// reset) first.
    pub async fn try_response_head(&mut self) -> Option<ResponseHead> {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("ASCII head");
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Some(ResponseHead { status, headers })
    }

    /// Exactly `len` bytes (panics if the connection ends first).
    pub async fn read_exact(&mut self, len: usize) -> Vec<u8> {
        while self.buf.len() < len {
            assert!(
                self.fill().await,
                "connection closed after {} of {len} bytes",
                self.buf.len()
            );
        }
        self.buf.drain(..len).collect()
    }

    /// Everything until the server closes the connection.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }

    /// Whether the server closed the connection (EOF or reset) within [`WAIT`], discarding
    /// whatever it sent first. A server that keeps the connection open fails the test.
    pub async fn expect_eof(&mut self) {
        for _ in 0..1_000_000 {
            if !self.fill().await {
                return;
            }
            self.buf.clear();
        }
        panic!("the server kept sending and never closed");
    }

    /// The next server frame (servers never mask), or `None` if the connection ended first.
    pub async fn frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads frames until a close frame and returns its code (`None` for an empty body). Panics
    /// if the connection ends without one.
    pub async fn close_code(&mut self) -> Option<u16> {
        for _ in 0..1_000_000 {
            match self.frame().await {
                Some(frame) if frame.opcode == 0x8 => {
                    return match frame.payload[..] {
                        [] => None,
                        [hi, lo, ..] => Some(u16::from_be_bytes([hi, lo])),
                        _ => panic!("a 1-byte close body from the server"),
                    };
                }
                Some(_) => {}
                None => panic!("the connection ended without a close frame"),
            }
        }
        panic!("no close frame in a million frames");
    }

    /// Reads frames until a close frame, answers it (with an empty close body), and expects the
    /// server to close the TCP connection. Returns the server's code.
    pub async fn finish_close(&mut self) -> Option<u16> {
        let received = self.close_code().await;
        // The server may already have closed its reading side (after a protocol error it only
        // drains): a failed write here is fine.
        let _ = self.stream.write_all(&client_frame(0x88, &[])).await;
        self.expect_eof().await;
        received
    }
}

/// Parses one unmasked server frame from the front of `buf`: the frame and the bytes it used.
/// Written independently of the server's own parser, so the two check each other.
fn parse_server_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    let [b0, b1, ..] = *buf else { return None };
    assert_eq!(b1 & 0x80, 0, "the server masked a frame");
    let (len, at) = match b1 & 0x7F {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (usize::from(n), 2),
    };
    let payload = buf.get(at..at + len)?.to_vec();
    let frame = RawFrame {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode: b0 & 0x0F,
        payload,
    };
    Some((frame, at + len))
}

/// The mask every raw client frame uses (any key will do; a fixed one keeps failures readable).
pub const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// A masked client frame: `b0` is the whole first byte (FIN, RSV1-3, opcode), so a test can set
/// any bit it likes; the length uses the shortest form.
pub fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = client_header(b0, payload.len() as u64, Some(MASK));
    out.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ MASK[i % 4]),
    );
    out
}

/// Just a frame header declaring `len` payload bytes, masked with `mask` if given.
pub fn client_header(b0: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend(len.to_be_bytes());
        }
    }
    out.extend(
        mask.unwrap_or_default()
            .iter()
            .take(if mask.is_some() { 4 } else { 0 }),
    );
    out
}

/// A masked text frame carrying a chat message request.
pub fn chat_frame(text: &str) -> Vec<u8> {
    client_frame(
        0x81,
        json!({"type": "message", "text": text})
            .to_string()
            .as_bytes(),
    )
}
