//! What a signed token costs a connection: verifying it once, at the upgrade.
//!
//! - `auth_verify/hs256`: an `HS256` token (`--auth-secret`): an HMAC-SHA256 over the header and
//!   claims, then the claims parsed and checked ([`Verifier::verify`], the whole of what the
//!   upgrade adds, room pattern included).
//! - `auth_verify/eddsa`: the same claims signed with Ed25519 (`--auth-public-key`): a public-key
//!   signature check, the price of the backend alone holding the private key.
//! - `auth_verify/baseline_handshake_validate`: validating the WebSocket upgrade request itself
//!   ([`validate`], RFC 6455 section 4.2 and the SHA-1 accept key), the work every connection
//!   does with auth off: the two figures above read as a multiple of it.
//!
//! Tokens, keys and the request are made before timing starts; each iteration verifies one token.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::Request;
use wschat::auth::mint::{claims, sign_hs256, sign_with_pem};
use wschat::auth::Verifier;
use wschat::ws::handshake::validate;

const SECRET: &[u8] = b"a bench secret of at least thirty-two bytes";
const ED25519_PRIVATE: &[u8] = include_bytes!("../tests/keys/ed25519_private.pem");
const ED25519_PUBLIC: &[u8] = include_bytes!("../tests/keys/ed25519_public.pem");

fn auth(c: &mut Criterion) {
    let claims = claims("alice", &["lobby", "dm-alice-*"], Duration::from_secs(3600));
    let hs256 = sign_hs256(SECRET, &claims);
    let eddsa = sign_with_pem(ED25519_PRIVATE, &claims).expect("the test key signs");
    let hmac = Verifier::hmac(SECRET).expect("a long enough secret");
    let public = Verifier::public_key(ED25519_PUBLIC).expect("the test key loads");
    // Each verifier accepts its token (checked once, outside the timing).
    assert!(hmac.verify(&hs256, "dm-alice-bob").is_ok());
    assert!(public.verify(&eddsa, "dm-alice-bob").is_ok());
    let request = Request::get("/ws?room=dm-alice-bob")
        .header("Host", "127.0.0.1:8080")
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(())
        .expect("a valid request");
    assert!(validate(&request).is_ok());

    let mut group = c.benchmark_group("auth_verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hs256", |b| {
        b.iter(|| hmac.verify(black_box(&hs256), black_box("dm-alice-bob")))
    });
    group.bench_function("eddsa", |b| {
        b.iter(|| public.verify(black_box(&eddsa), black_box("dm-alice-bob")))
    });
    group.bench_function("baseline_handshake_validate", |b| {
        b.iter(|| validate(black_box(&request)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = auth
}
criterion_main!(benches);
