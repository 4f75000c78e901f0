//! The opening handshake (RFC 6455 section 4.2) beside `tungstenite`'s, on the same request.
//!
//! - `handshake_validate`: is this `http::Request` a valid upgrade, and what is its accept key?
//!   wschat's [`validate`] answers with the key; `tungstenite`'s `create_response` answers with
//!   a whole `101` response (its checks, the same key, plus building three headers), so it does
//!   a little more work by design: read the ratio as an upper bound on our advantage.
//! - `handshake_accept_key`: `base64(SHA-1(key + GUID))` alone, beside `derive_accept_key`.
//!
//! The request is a Firefox-shaped upgrade (the `Connection` header is a token list), built
//! once before timing starts.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::Request;
use wschat::ws::handshake::{accept_key, validate};

/// The RFC's own sample nonce (section 1.3); its accept key is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn browser_request() -> Request<()> {
    Request::get("/ws?room=lobby&nick=ann")
        .header("Host", "127.0.0.1:8080")
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        )
        .header("Accept", "*/*")
        .header("Accept-Language", "en-US,en;q=0.5")
        .header("Accept-Encoding", "gzip, deflate, br")
        .header("Sec-WebSocket-Version", "13")
        .header("Origin", "http://127.0.0.1:8080")
        .header("Sec-WebSocket-Extensions", "permessage-deflate")
        .header("Sec-WebSocket-Key", KEY)
        .header("Connection", "keep-alive, Upgrade")
        .header("Pragma", "no-cache")
        .header("Cache-Control", "no-cache")
        .header("Upgrade", "websocket")
        .body(())
        .expect("a valid request")
}

fn handshake(c: &mut Criterion) {
    let request = browser_request();
    // Both must accept it, with the RFC's answer; checked once, outside the timing.
    assert_eq!(
        validate(&request).as_deref(),
        Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    let response = tungstenite::handshake::server::create_response(&request)
        .expect("tungstenite accepts the request");
    assert_eq!(
        response.headers()["Sec-WebSocket-Accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );

    let mut group = c.benchmark_group("handshake_validate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("wschat", |b| b.iter(|| validate(black_box(&request))));
    group.bench_function("tungstenite_create_response", |b| {
        b.iter(|| tungstenite::handshake::server::create_response(black_box(&request)))
    });
    group.finish();

    let mut group = c.benchmark_group("handshake_accept_key");
    group.throughput(Throughput::Elements(1));
    group.bench_function("wschat", |b| {
        b.iter(|| accept_key(black_box(KEY.as_bytes())))
    });
    group.bench_function("tungstenite_derive_accept_key", |b| {
        b.iter(|| tungstenite::handshake::derive_accept_key(black_box(KEY.as_bytes())))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = handshake
}
criterion_main!(benches);
