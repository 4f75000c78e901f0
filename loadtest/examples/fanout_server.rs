//! A tiny, fast `raw` fan-out server: the yardstick for the swarm's own ceiling.
//!
//! It relays every text frame to every client, like the servers `--protocol raw` measures, but
//! does as little as possible per delivery so that the swarm, not this server, runs out of CPU
//! first: every frame is encoded once; a hub collects the frames that arrive within
//! `--batch-us` and publishes them as one buffer; each client's writer sends everything waiting
//! for it in one `write` (the "corking" of uWebSockets). The handshake is done by hand in a few
//! lines, since only well-behaved swarm clients connect.
//!
//! ```text
//! cargo build --release -p loadtest --examples
//! taskset -c 0 target/release/examples/fanout_server --addr 127.0.0.1:9001 &
//! taskset -c 1 target/release/loadtest --protocol raw --url ws://127.0.0.1:9001/ \
//!     --clients 1000 --senders 10 --rate 1000 --duration 10s
//! ```
//! The swarm's `deliveries per CPU-second` in that report is its ceiling on one core.
//!
//! Not a WebSocket server for anything else: no fragmentation, no ping, frames over 64 KiB and
//! malformed input just end the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A batch of encoded server frames, shared by every client's writer.
type Batch = Arc<Vec<u8>>;

fn main() -> std::io::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:9001".parse().expect("valid default");
    let mut batch = Duration::from_micros(1000);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--addr" => addr = value.parse().expect("--addr HOST:PORT"),
            "--batch-us" => batch = Duration::from_micros(value.parse().expect("--batch-us N")),
            _ => {
                eprintln!("usage: fanout_server [--addr 127.0.0.1:9001] [--batch-us 1000]");
                std::process::exit(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(addr, batch))
}

async fn serve(addr: SocketAddr, batch: Duration) -> std::io::Result<()> {
    let listener = tokio::net::TcpSocket::new_v4()?;
    listener.set_reuseaddr(true)?;
    listener.bind(addr)?;
    let listener: TcpListener = listener.listen(4096)?;
    eprintln!("fanout_server listening on {}", listener.local_addr()?);
    let (out_tx, _) = broadcast::channel::<Batch>(4096);
    let (in_tx, in_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(hub(in_rx, out_tx.clone(), batch));
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(client(tcp, in_tx.clone(), out_tx.subscribe()));
    }
}

/// Gathers frames for `batch`, then publishes them as one buffer.
async fn hub(
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    tx: broadcast::Sender<Batch>,
    batch: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut buf = first;
        let deadline = tokio::time::Instant::now() + batch;
        while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            buf.extend_from_slice(&frame);
        }
        let _ = tx.send(Arc::new(buf));
    }
}

async fn client(
    mut tcp: TcpStream,
    hub: mpsc::UnboundedSender<Vec<u8>>,
    mut out: broadcast::Receiver<Batch>,
) {
    if handshake(&mut tcp).await.is_err() {
        return;
    }
    let (mut rd, mut wr) = tcp.into_split();
    let (close_tx, mut close_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let mut pending = Vec::new();
        loop {
            tokio::select! {
                r = out.recv() => match r {
                    Ok(b) => pending.extend_from_slice(&b),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                // The client sent a close frame: answer it (code 1000) and end.
                _ = &mut close_rx => {
                    let _ = wr.write_all(&server_frame(8, &1000u16.to_be_bytes())).await;
                    let _ = wr.shutdown().await;
                    return;
                }
            }
            // Everything else already waiting goes out in the same write.
            while let Ok(b) = out.try_recv() {
                pending.extend_from_slice(&b);
            }
            if wr.write_all(&pending).await.is_err() {
                return;
            }
            pending.clear();
        }
    });
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut close_tx = Some(close_tx);
    'read: loop {
        while let Some(Frame {
            opcode,
            payload,
            used,
        }) = parse_client_frame(&buf)
        {
            buf.drain(..used);
            match opcode {
                1 => {
                    let _ = hub.send(server_frame(1, &payload));
                }
                8 => {
                    if let Some(tx) = close_tx.take() {
                        let _ = tx.send(());
                    }
                    break 'read;
                }
                _ => {}
            }
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 1 << 17 {
            break;
        }
    }
    if close_tx.is_some() {
        writer.abort();
    }
    let _ = writer.await;
}

/// A parsed client frame.
struct Frame {
    opcode: u8,
    payload: Vec<u8>,
    used: usize,
}

/// Parses one masked client frame from the front of `b`, or `None` if incomplete.
fn parse_client_frame(b: &[u8]) -> Option<Frame> {
    if b.len() < 2 {
        return None;
    }
    let opcode = b[0] & 0x0f;
    let mut len = (b[1] & 0x7f) as usize;
    let mut at = 2;
    if len == 126 {
        len = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize;
        at = 4;
    } else if len == 127 {
        len = u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize;
        at = 10;
    }
    let mask: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    at += 4;
    let data = b.get(at..at + len)?;
    let payload = data
        .iter()
        .enumerate()
        .map(|(i, c)| c ^ mask[i % 4])
        .collect();
    Some(Frame {
        opcode,
        payload,
        used: at + len,
    })
}

/// An unmasked, final server frame.
fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 4);
    f.push(0x80 | opcode);
    if payload.len() < 126 {
        f.push(payload.len() as u8);
    } else {
        f.push(126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

/// Reads the upgrade request and answers 101.
async fn handshake(tcp: &mut TcpStream) -> std::io::Result<()> {
    let mut req = Vec::new();
    let mut chunk = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 || req.len() > 8192 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        req.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&req);
    let key = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_string())
        })
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    tcp.write_all(resp.as_bytes()).await
}
