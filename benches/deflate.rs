//! permessage-deflate's costs, per delivery, beside their baselines:
//!
//! - `deflate_broadcast/{plain,once,per_recipient}/SIZE`: one chat event (a `message` whose text is
//!   SIZE bytes) delivered to 100 receivers, reported per delivery (`Throughput::Elements(100)`).
//!   `plain` is today's path without compression (the event's shared [`Encoded`] handed to each);
//!   `once` is wschat's: every receiver negotiated deflate, the first compresses, the other 99
//!   take the shared result; `per_recipient` is what a server with context takeover must do, one
//!   compression per receiver.
//! - `deflate_welcome/{plain,shared_history,whole_per_joiner}`: one joiner's welcome with a
//!   100-message history: plain; compressed as wschat does (the joiner's own fields compressed,
//!   the history's compression shared, made once before timing); and the whole welcome compressed
//!   for each joiner.
//! - `deflate_inflate/{plain,compressed}/SIZE`: the decoder reading one client message of SIZE,
//!   plain or compressed (a fresh inflater per message, as on a connection).
//!
//! The bytes each form puts on the wire are printed once at the start (they do not depend on
//! timing). benches/README.md has the figures and what they teach.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::value::RawValue;
use wschat::chat::protocol::{ChatMessage, HistoryTail, ServerEvent, Welcome};
use wschat::chat::Encoded;
use wschat::metrics::Metrics;
use wschat::ws::deflate::{compress, deflate_frame};
use wschat::ws::{Decoder, FrameHeader, Limits, OpCode};

const RECEIVERS: u64 = 100;
const SIZES: [usize; 3] = [64, 1024, 4096];

/// Chat-like text of `len` bytes: words from a small vocabulary in a pseudo-random order (so it
/// compresses like prose, not like one repeated phrase).
fn text(len: usize) -> String {
    const WORDS: [&str; 16] = [
        "the", "kettle", "is", "on", "and", "we", "will", "meet", "at", "noon", "tomorrow",
        "bring", "your", "notes", "please", "thanks",
    ];
    let mut out = String::new();
    let mut state = 0x2545_f491_u32;
    while out.len() < len {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        out.push_str(WORDS[(state >> 28) as usize]);
        out.push(' ');
    }
    out.truncate(len);
    out
}

fn event(text: &str) -> bytes::Bytes {
    ServerEvent::Message(ChatMessage {
        id: 4242,
        room: "lobby",
        from: "alice",
        text,
        ts: 1_764_633_600_000,
    })
    .to_frame()
}

fn broadcast(c: &mut Criterion) {
    let metrics = Metrics::new();
    let mut group = c.benchmark_group("deflate_broadcast");
    group.throughput(Throughput::Elements(RECEIVERS));
    for size in SIZES {
        let frame = event(&text(size));
        let deflated = deflate_frame(&frame, 0).map(|d| d.0.len());
        eprintln!(
            "deflate_broadcast {size} B text: plain frame {} B, compressed frame {} B",
            frame.len(),
            deflated.map_or("(not smaller)".into(), |n| n.to_string())
        );
        group.bench_function(BenchmarkId::new("plain", size), |b| {
            b.iter(|| {
                let event = Encoded::new(frame.clone());
                for _ in 0..RECEIVERS {
                    black_box(event.frame_for(false, 64, &metrics));
                }
            })
        });
        group.bench_function(BenchmarkId::new("once", size), |b| {
            b.iter(|| {
                let event = Encoded::new(frame.clone());
                for _ in 0..RECEIVERS {
                    black_box(event.frame_for(true, 64, &metrics));
                }
            })
        });
        group.bench_function(BenchmarkId::new("per_recipient", size), |b| {
            b.iter(|| {
                for _ in 0..RECEIVERS {
                    black_box(deflate_frame(black_box(&frame), 64));
                }
            })
        });
    }
    group.finish();
}

fn welcome(c: &mut Criterion) {
    let metrics = Metrics::new();
    let messages: Vec<Box<RawValue>> = (0..100)
        .map(|i| {
            let json = serde_json::to_string(&ChatMessage {
                id: i + 1,
                room: "lobby",
                from: if i % 3 == 0 { "alice" } else { "bob" },
                text: &text(60 + (i as usize * 7) % 80),
                ts: 1_764_633_600_000 + i * 1_500,
            })
            .unwrap();
            RawValue::from_string(json).unwrap()
        })
        .collect();
    let tail = HistoryTail::new(messages.iter().map(|m| &**m));
    let parts = || {
        Welcome {
            you: "carol",
            room: "lobby",
            users: vec!["alice", "bob", "carol"],
            count: 3,
            last_id: 100,
            epoch: wschat::chat::Epoch(1),
            truncated: false,
        }
        .to_parts(tail.clone())
    };
    let plain = parts().plain().concat();
    let shared = parts().deflated(64, &metrics).expect("compresses").concat();
    let (_, n) = FrameHeader::parse(&plain).unwrap().unwrap();
    let whole = compress(&plain[n..], false);
    eprintln!(
        "deflate_welcome 100 messages: plain frame {} B, shared-history compressed frame {} B, \
         whole-welcome compressed payload {} B",
        plain.len(),
        shared.len(),
        whole.len()
    );
    let mut group = c.benchmark_group("deflate_welcome");
    group.throughput(Throughput::Elements(1));
    group.bench_function("plain", |b| b.iter(|| black_box(parts().plain())));
    group.bench_function("shared_history", |b| {
        b.iter(|| black_box(parts().deflated(64, &metrics)))
    });
    group.bench_function("whole_per_joiner", |b| {
        b.iter(|| {
            let frame = parts().plain().concat();
            black_box(compress(&frame[n..], false))
        })
    });
    group.finish();
}

/// A masked client frame (mask `[1, 2, 3, 4]`), with RSV1 when `compressed`.
fn client_frame(payload: &[u8], compressed: bool) -> Vec<u8> {
    let mask = [1, 2, 3, 4];
    let mut out = Vec::new();
    FrameHeader {
        mask: Some(mask),
        rsv: if compressed { 0b100 } else { 0 },
        ..FrameHeader::server(OpCode::Text, payload.len())
    }
    .encode(&mut out);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn inflate(c: &mut Criterion) {
    let limits = Limits {
        max_message: 64 * 1024,
        max_frame: 0,
    };
    let mut group = c.benchmark_group("deflate_inflate");
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let json = format!(r#"{{"type":"message","text":"{}"}}"#, text(size));
        for (name, wire) in [
            ("plain", client_frame(json.as_bytes(), false)),
            (
                "compressed",
                client_frame(&compress(json.as_bytes(), false), true),
            ),
        ] {
            let mut decoder = Decoder::new(limits, false);
            decoder.accept_compressed();
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter(|| {
                    let mut input = &wire[..];
                    black_box(decoder.decode(&mut input).unwrap().unwrap())
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = broadcast, welcome, inflate
}
criterion_main!(benches);
