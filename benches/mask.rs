//! Unmasking a client payload (RFC 6455 section 5.3), beside the two figures that frame it.
//!
//! - `mask/wschat_word/N`: [`apply_mask`], the routine the reader runs on every client byte.
//! - `mask/copy_from_slice/N`: a plain copy of the same N bytes, the ceiling. Masking reads and
//!   writes every byte once, as a copy does, so a masking routine cannot beat it by much; how
//!   close it gets is the figure of merit.
//! - `mask/naive_bytewise/N`: [`apply_mask_naive`], the definition, one byte and one `% 4` at a
//!   time. The gap to it is what the word-at-a-time version buys.
//!
//! Each bench works on one buffer allocated before timing starts. XORing the same buffer over and
//! over is fine: masking costs the same whatever the bytes are.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wschat::ws::mask::{apply_mask, apply_mask_naive};

/// Payload lengths, in bytes: a short chat line, the largest 7-bit length, a paragraph, the
/// 16-bit limit's neighbourhood and a large upload.
const SIZES: [usize; 5] = [16, 125, 1024, 64 * 1024, 1024 * 1024];

/// The key from the RFC's own masked "Hello" example (section 5.7).
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for len in SIZES {
        group.throughput(Throughput::Bytes(len as u64));

        let mut buf = payload(len);
        group.bench_with_input(BenchmarkId::new("wschat_word", len), &len, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), 0))
        });

        let src = payload(len);
        let mut dst = vec![0u8; len];
        group.bench_with_input(BenchmarkId::new("copy_from_slice", len), &len, |b, _| {
            b.iter(|| black_box(&mut dst).copy_from_slice(black_box(&src)))
        });

        let mut buf = payload(len);
        group.bench_with_input(BenchmarkId::new("naive_bytewise", len), &len, |b, _| {
            b.iter(|| apply_mask_naive(black_box(&mut buf), black_box(KEY), 0))
        });
    }
    group.finish();

    // A payload that arrives in pieces is unmasked from a key offset, and the piece's first byte
    // sits at any address. Both should cost nothing: the fast path reads unaligned words.
    let len = 64 * 1024;
    let mut group = c.benchmark_group("mask_unaligned_offset3");
    group.throughput(Throughput::Bytes(len as u64));
    let mut buf = payload(len + 1);
    group.bench_function(BenchmarkId::new("wschat_word", len), |b| {
        b.iter(|| apply_mask(black_box(&mut buf[1..]), black_box(KEY), 3))
    });
    let src = payload(len + 1);
    let mut dst = vec![0u8; len + 1];
    group.bench_function(BenchmarkId::new("copy_from_slice", len), |b| {
        b.iter(|| black_box(&mut dst[1..]).copy_from_slice(black_box(&src[..len])))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = mask
}
criterion_main!(benches);
