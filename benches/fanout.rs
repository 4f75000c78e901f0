//! One chat message delivered to N subscribers, reported per delivered message
//! (`Throughput::Elements(N)`): the "encode once, share the bytes" lesson.
//!
//! - `fanout/wschat_room/N`: the real code. [`Room::post`](wschat::chat::Room::post) assigns an
//!   id, serializes the event once, encodes one frame once, keeps it in history and sends one
//!   `Bytes` on the room's broadcast channel; then each of N subscribers takes it with
//!   `try_recv`, as a session's `select!` loop would, costing a reference count each.
//! - `fanout/encode_once_queues/N`: the same single encoding, cloned into N plain per-recipient
//!   queues (`VecDeque<Bytes>`). The gap to `wschat_room` is what the broadcast channel, the
//!   room lock and history cost beyond the encoding.
//! - `fanout/encode_per_recipient/N`: the naive way. The event is serialized and a frame encoded
//!   for every recipient, into the same plain queues. Those queues are cheaper than any channel,
//!   so the ratio to `wschat_room` understates what encoding per recipient costs.
//!
//! Subscribers join before timing starts (the hub needs a runtime to flush coalesced presence; a
//! current-thread runtime that is never driven keeps that task out of the figures), and every
//! receiver is drained of its join events first. Each iteration posts one message and drains
//! every subscriber, so the channel never fills.

mod common;

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use tokio::sync::broadcast::error::TryRecvError;
use wschat::chat::protocol::{ChatMessage, ServerEvent};
use wschat::chat::{Hub, RoomConfig};

const SUBSCRIBERS: [usize; 5] = [1, 10, 100, 1_000, 10_000];

const ROOM: &str = "lobby";
const FROM: &str = "ann";
const TEXT: &str = "hello everyone, how is the weather in Köln today?";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let _runtime = rt.enter();

    let mut group = c.benchmark_group("fanout");
    for n in SUBSCRIBERS {
        group.throughput(Throughput::Elements(n as u64));
        if n >= 1_000 {
            // Milliseconds per iteration: fewer, flat samples keep the run short.
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
        }

        // Presence flushes every hour: never, during a bench.
        let hub = Hub::new(RoomConfig::default(), Duration::from_secs(3600));
        let (members, mut receivers): (Vec<_>, Vec<_>) = (0..n)
            .map(|i| {
                let (membership, entry) = hub.join(ROOM, &format!("user{i}"), None);
                (membership, entry.events)
            })
            .unzip();
        for rx in &mut receivers {
            while !matches!(rx.try_recv(), Err(TryRecvError::Empty)) {}
        }
        let room = members[0].room().clone();

        group.bench_function(BenchmarkId::new("wschat_room", n), |b| {
            b.iter(|| {
                room.post(FROM, black_box(TEXT));
                for rx in &mut receivers {
                    black_box(rx.try_recv().expect("the posted message"));
                }
            })
        });

        let mut queues: Vec<VecDeque<Bytes>> = (0..n).map(|_| VecDeque::with_capacity(4)).collect();
        let mut id = 0;
        group.bench_function(BenchmarkId::new("encode_once_queues", n), |b| {
            b.iter(|| {
                id += 1;
                let frame = ServerEvent::Message(ChatMessage {
                    id,
                    room: ROOM,
                    from: FROM,
                    text: black_box(TEXT),
                    ts: now_ms(),
                })
                .to_frame();
                for queue in &mut queues {
                    queue.push_back(frame.clone());
                }
                for queue in &mut queues {
                    black_box(queue.pop_front().expect("the posted message"));
                }
            })
        });

        group.bench_function(BenchmarkId::new("encode_per_recipient", n), |b| {
            b.iter(|| {
                id += 1;
                let ts = now_ms();
                for queue in &mut queues {
                    let frame = ServerEvent::Message(ChatMessage {
                        id,
                        room: ROOM,
                        from: FROM,
                        text: black_box(TEXT),
                        ts,
                    })
                    .to_frame();
                    queue.push_back(frame);
                }
                for queue in &mut queues {
                    black_box(queue.pop_front().expect("the posted message"));
                }
            })
        });

        drop(receivers);
        drop(members);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = fanout
}
criterion_main!(benches);
