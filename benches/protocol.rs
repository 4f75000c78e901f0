//! The chat protocol's JSON, beside the untyped way of doing the same with `serde_json::Value`.
//!
//! - `protocol_parse_request`: one client text frame to a request. wschat deserializes into a
//!   borrowing struct (`Cow<str>`: a text without escapes is never copied); the baseline parses
//!   into a `Value` tree (a map, owned strings) and picks the fields out, falling back to the
//!   raw text when the frame is not JSON, as wschat does.
//! - `protocol_serialize_message`: one chat message event to JSON. wschat serializes a borrowing
//!   struct with `#[derive(Serialize)]`; the baseline builds the object with `json!` and prints
//!   it. `wschat_to_frame` adds the frame header and the copy into one shared buffer, the whole
//!   per-post encoding cost the `fanout` bench pays once per message.
//! - `protocol_socketio_rewrap`: what one more receiver of that message costs. A native receiver
//!   shares the frame (`native_share`: a reference count); a Socket.IO receiver today rewraps it
//!   as `42["message",{...}]` (`socketio_frame`: a new header and one copy of the payload, no
//!   JSON parsed), which is what a shared lazily-made encoding would pay once per event.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use wschat::chat::protocol::{parse_request, ChatMessage, ClientRequest, ServerEvent};
use wschat::wire::socketio::{socketio_frame, Namespace};

/// The server's default limit is far above every input here; only the parse is measured.
const MAX_TEXT_LEN: usize = 4096;

/// Client frames, by shape.
const REQUESTS: [(&str, &str); 4] = [
    (
        "message_no_escapes",
        r#"{"type":"message","text":"hello everyone, how is the weather in Köln today?"}"#,
    ),
    (
        "message_escapes",
        r#"{"type":"message","text":"she said \"see you at the caf\u00e9\"\nand left"}"#,
    ),
    ("typing", r#"{"type":"typing"}"#),
    (
        "plain_text",
        "hello everyone, how is the weather in Köln today?",
    ),
];

/// The untyped way: a `Value` tree, then owned copies of the fields that matter.
fn parse_untyped(frame: &str) -> Option<(String, Option<String>)> {
    match serde_json::from_str::<Value>(frame) {
        Ok(Value::Object(object)) => {
            let kind = object.get("type")?.as_str()?.to_owned();
            let text = object
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Some((kind, text))
        }
        _ => Some(("message".to_owned(), Some(frame.to_owned()))),
    }
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocol_parse_request");
    for (shape, frame) in REQUESTS {
        // Both must agree on what was asked; checked once, outside the timing.
        let ours = parse_request(frame, MAX_TEXT_LEN).expect("a valid request");
        let theirs = parse_untyped(frame).expect("a valid request");
        match ours {
            ClientRequest::Message(text) => assert_eq!(theirs.1.as_deref(), Some(&*text)),
            ClientRequest::Typing => assert_eq!(theirs.0, "typing"),
        }

        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::new("wschat", shape), frame, |b, frame| {
            b.iter(|| parse_request(black_box(frame), MAX_TEXT_LEN))
        });
        group.bench_with_input(
            BenchmarkId::new("serde_json_value", shape),
            frame,
            |b, frame| b.iter(|| parse_untyped(black_box(frame))),
        );
    }
    group.finish();
}

fn serialize(c: &mut Criterion) {
    let message = ChatMessage {
        id: 1_234_567,
        room: "lobby",
        from: "ann",
        text: "hello everyone, how is the weather in Köln today?",
        ts: 1_764_100_000_000,
    };
    let event = ServerEvent::Message(message.clone());
    let untyped = |m: &ChatMessage| {
        json!({
            "type": "message",
            "id": m.id,
            "room": m.room,
            "from": m.from,
            "text": m.text,
            "ts": m.ts,
        })
        .to_string()
    };
    // Same object either way (the key order differs: `json!` sorts its map).
    let ours: Value = serde_json::from_str(&event.to_json()).expect("JSON");
    let theirs: Value = serde_json::from_str(&untyped(&message)).expect("JSON");
    assert_eq!(ours, theirs);

    let mut group = c.benchmark_group("protocol_serialize_message");
    group.throughput(Throughput::Elements(1));
    group.bench_function("wschat_to_json", |b| b.iter(|| black_box(&event).to_json()));
    group.bench_function("serde_json_value", |b| {
        b.iter(|| untyped(black_box(&message)))
    });
    group.bench_function("wschat_to_frame", |b| {
        b.iter(|| black_box(&event).to_frame())
    });
    group.finish();
}

fn socketio_rewrap(c: &mut Criterion) {
    let native = ServerEvent::Message(ChatMessage {
        id: 1_234_567,
        room: "lobby",
        from: "ann",
        text: "hello everyone, how is the weather in Köln today?",
        ts: 1_764_100_000_000,
    })
    .to_frame();
    let mut group = c.benchmark_group("protocol_socketio_rewrap");
    group.throughput(Throughput::Elements(1));
    group.bench_function("native_share", |b| b.iter(|| black_box(&native).clone()));
    group.bench_function("socketio_frame", |b| {
        b.iter(|| socketio_frame(black_box(&native), Namespace::Root))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = parse, serialize, socketio_rewrap
}
criterion_main!(benches);
