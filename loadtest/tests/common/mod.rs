//! Test servers for the swarm: a `raw` relay that can be told to misbehave.
//!
//! The relay is deliberately simple (tokio-tungstenite on both sides, one hub task) so that what
//! it does wrong is exactly what the test asked for: drop every Nth message, or stall the whole
//! relay for a while once it has relayed some messages.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::Message;

/// How the relay misbehaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Drop every Nth message (the Nth, 2Nth, ...; counted from 1). 0 = drop nothing.
    pub drop_every: u64,
    /// On receiving the Nth message, hold it and everything after it for `stall`.
    pub stall_at: Option<u64>,
    /// How long the stall lasts.
    pub stall: Duration,
    /// Speak wschat's chat protocol (welcome, message events) instead of relaying raw frames,
    /// and announce each dropped message with `{"type":"lagged","missed":1}`.
    pub chat: bool,
}

/// A running relay.
pub struct Relay {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The source addresses its clients connected from.
    pub peers: Arc<Mutex<HashSet<IpAddr>>>,
}

/// Starts a relay on an ephemeral loopback port; it runs until the test's runtime ends.
pub async fn start_relay(faults: Faults) -> SocketAddr {
    start_relay_with_peers(faults).await.addr
}

/// Starts a relay that also records its clients' source addresses.
pub async fn start_relay_with_peers(faults: Faults) -> Relay {
    let peers = Arc::new(Mutex::new(HashSet::new()));
    let seen = peers.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Large enough that no test client ever lags: the faults are the only loss.
    let (out_tx, _) = broadcast::channel::<Message>(1 << 16);
    let (in_tx, mut in_rx) = mpsc::unbounded_channel::<Message>();
    let hub_out = out_tx.clone();
    tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(msg) = in_rx.recv().await {
            n += 1;
            if faults.drop_every > 0 && n % faults.drop_every == 0 {
                if faults.chat {
                    let _ = hub_out.send(Message::text(r#"{"type":"lagged","missed":1}"#));
                }
                continue;
            }
            let msg = if faults.chat {
                chat_event(n, &msg)
            } else {
                msg
            };
            if faults.stall_at == Some(n) {
                // The Nth message was sent no later than now, so it arrives at least `stall`
                // after its scheduled time; everything sent meanwhile queues behind it.
                tokio::time::sleep(faults.stall).await;
            }
            let _ = hub_out.send(msg);
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                return;
            };
            seen.lock().unwrap().insert(peer.ip());
            let _ = tcp.set_nodelay(true);
            let (in_tx, mut out_rx) = (in_tx.clone(), out_tx.subscribe());
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                if faults.chat {
                    let welcome = r#"{"type":"welcome","you":"x","room":"r","users":[],"count":1,"history":[],"last_id":0,"truncated":false}"#;
                    let _ = sink.send(Message::text(welcome)).await;
                }
                let writer = tokio::spawn(async move {
                    while let Ok(msg) = out_rx.recv().await {
                        if sink.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
                while let Some(Ok(msg)) = stream.next().await {
                    if msg.is_text() {
                        let _ = in_tx.send(msg);
                    }
                }
                writer.abort();
            });
        }
    });
    Relay { addr, peers }
}

/// The chat protocol's message event for request `req` (the `text` is copied verbatim: the
/// swarm's texts need no escaping).
fn chat_event(id: u64, req: &Message) -> Message {
    let req = req.to_text().unwrap_or_default();
    let text = req
        .split_once(r#""text":""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("", |(text, _)| text);
    Message::text(format!(
        r#"{{"type":"message","id":{id},"room":"r","from":"x","text":"{text}","ts":0}}"#
    ))
}

/// Starts wschat with `config` on an ephemeral loopback port; the server stops when the returned
/// sender is dropped.
pub async fn start_wschat(
    mut config: wschat::Config,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    config.addr = "127.0.0.1:0".parse().unwrap();
    let server = wschat::Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Parses swarm flags written as on a command line (split at whitespace).
pub fn args(flags: &str) -> loadtest::Args {
    use clap::Parser;
    loadtest::Args::parse_from(std::iter::once("loadtest").chain(flags.split_whitespace()))
}

/// Runs the swarm on a blocking thread, so the server under test keeps the async runtime.
pub async fn swarm(args: loadtest::Args) -> loadtest::Outcome {
    tokio::task::spawn_blocking(move || loadtest::run(&args))
        .await
        .unwrap()
        .unwrap()
}
