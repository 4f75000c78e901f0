//! One chat message's round trip through a real server over loopback TCP, beside the floor.
//!
//! - `roundtrip/wschat_chat_2_clients`: two `tokio-tungstenite` clients in one room of an
//!   in-process wschat server; client A sends a message and the time runs until A has its own
//!   broadcast back and B has its copy: parse, room, encode once, two writes, two reads.
//! - `roundtrip/tcp_echo_floor`: the same kind of bytes bounced off a plain TCP echo task on
//!   loopback (one write, one read each way), the cost of the sockets and the runtime alone.
//!
//! Both run on a current-thread runtime, so the figure does not depend on a thread pool waking
//! up; the server shares that thread with the clients, as in a one-core deployment.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use wschat::{Config, Server};

const REQUEST: &str = r#"{"type":"message","text":"hello, round trip"}"#;

fn roundtrip(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("roundtrip");
    group.measurement_time(Duration::from_secs(3));

    let (mut ann, mut bob) = runtime.block_on(async {
        // No rate limit: the default (200 messages/s, burst 400) is used up during warm-up,
        // after which criterion could time only one round trip per sample, cold, and an
        // iteration whose message was dropped waited for the server's next ping.
        let config = Config {
            rate_limit: 0.0,
            ..Config::for_tests()
        };
        let server = Server::bind(config).await.expect("bind");
        let url = format!("ws://{}/ws?room=rtt", server.local_addr());
        tokio::spawn(server.run(std::future::pending()));
        let (mut ann, _) = tokio_tungstenite::connect_async(format!("{url}&name=ann"))
            .await
            .expect("ann connects");
        let (mut bob, _) = tokio_tungstenite::connect_async(format!("{url}&name=bob"))
            .await
            .expect("bob connects");
        ann.next().await.expect("welcome").expect("frame");
        bob.next().await.expect("welcome").expect("frame");
        ann.next().await.expect("bob's join").expect("frame");
        (ann, bob)
    });
    group.bench_function("wschat_chat_2_clients", |b| {
        b.iter(|| {
            runtime.block_on(async {
                ann.send(Message::text(REQUEST)).await.expect("send");
                let mine = ann.next().await.expect("open").expect("frame");
                let theirs = bob.next().await.expect("open").expect("frame");
                debug_assert!(mine.is_text() && theirs.is_text());
            })
        })
    });

    let mut client = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 256];
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => socket.write_all(&buf[..n]).await.expect("echo"),
                }
            }
        });
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
    });
    group.bench_function("tcp_echo_floor", |b| {
        b.iter(|| {
            runtime.block_on(async {
                client.write_all(REQUEST.as_bytes()).await.expect("write");
                let mut buf = [0u8; 256];
                let mut got = 0;
                while got < REQUEST.len() {
                    got += client.read(&mut buf[got..]).await.expect("read");
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
