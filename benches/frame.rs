//! The frame codec beside `tungstenite`'s, on identical bytes, for payloads from 16 B to 1 MiB.
//!
//! - `frame_header_parse_masked`: a client header (mask key included) from bytes to struct.
//! - `frame_header_encode`: a server header (no mask) from struct to bytes, into a reused buffer.
//! - `frame_encode_text`: a whole server text frame, header and payload in one fresh buffer,
//!   beside a plain copy of the payload into a fresh buffer (the ceiling: one allocation, one
//!   copy, no header).
//! - `frame_decode_masked_text`: whole client text frames, one after another, to owned text:
//!   header, unmasking, UTF-8 check, allocation and all. `wschat_reader` is [`MessageReader`]
//!   reading an endless in-memory stream on a current-thread tokio runtime (the stream is always
//!   ready, so no thread pool is involved), and `tungstenite_read` is `WebSocket::read` doing
//!   blocking I/O over the same stream: the same work, read calls included. `wschat_decoder` is
//!   the [`Decoder`] alone, given each frame as one slice (no read, no copy into a read buffer).
//!   The ceiling is a copy of the frame's bytes into a fresh buffer.
//! - `utf8_validate`: a whole text payload checked the project's two ways, std's validator
//!   (`utf8::check_simple`, the definition) and the one the decoder uses (`Utf8Progress`, SIMD
//!   for the bulk): the measurement the choice of validator rests on.
//!
//! Readers, sockets and wire bytes are built before timing starts and live across iterations,
//! as they would on a connection.

mod common;

use std::hint::black_box;
use std::io::{self, Cursor, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::io::{AsyncRead, ReadBuf};
use tungstenite::protocol::frame::coding::{Data, OpCode as TOpCode};
use tungstenite::protocol::frame::{Frame as TFrame, FrameHeader as TFrameHeader};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use wschat::ws::frame::MAX_HEADER_LEN;
use wschat::ws::mask::apply_mask_naive;
use wschat::ws::utf8::{check_simple, Utf8Progress};
use wschat::ws::{encode_frame, Decoder, FrameHeader, Limits, Message, MessageReader, OpCode};

/// Payload lengths, in bytes. 16 and 125 use the 7-bit length, 1 KiB the 16-bit one, 64 KiB and
/// 1 MiB the 64-bit one (65,536 is one past the 16-bit maximum).
const SIZES: [usize; 5] = [16, 125, 1024, 64 * 1024, 1024 * 1024];

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Limits large enough for every size here; both implementations get the same ones.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Valid UTF-8 of exactly `len` bytes, mostly ASCII with some two-byte characters, like chat.
fn text(len: usize) -> String {
    let mut s = String::with_capacity(len);
    for c in "Grüße aus Köln, see you at the café! ".chars().cycle() {
        if s.len() + c.len_utf8() > len {
            break;
        }
        s.push(c);
    }
    while s.len() < len {
        s.push('.');
    }
    s
}

fn client_header(len: usize) -> FrameHeader {
    FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Text,
        mask: Some(KEY),
        payload_len: len as u64,
    }
}

/// A masked client text frame carrying `payload`, as a browser would send it.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
    client_header(payload.len()).encode(&mut wire);
    let start = wire.len();
    wire.extend_from_slice(payload);
    apply_mask_naive(&mut wire[start..], KEY, 0);
    wire
}

/// An endless client: yields the same frame again and again, like a socket from a busy sender.
/// Each read stops at the end of one copy of the frame (so a read holds at most one frame, or
/// the rest of one), and writes are discarded. Both readers are driven through it, std `Read` for
/// tungstenite and tokio's `AsyncRead` (always ready) for wschat.
struct Repeating<'a> {
    wire: &'a [u8],
    at: usize,
}

impl<'a> Repeating<'a> {
    fn new(wire: &'a [u8]) -> Self {
        Repeating { wire, at: 0 }
    }

    fn fill(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.wire.len() - self.at);
        buf[..n].copy_from_slice(&self.wire[self.at..self.at + n]);
        self.at = (self.at + n) % self.wire.len();
        n
    }
}

impl Read for Repeating<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.fill(buf))
    }
}

impl Write for Repeating<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for Repeating<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.fill(buf.initialize_unfilled());
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

fn header_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_header_parse_masked");
    group.throughput(Throughput::Elements(1));
    for len in SIZES {
        let mut wire = Vec::new();
        client_header(len).encode(&mut wire);

        group.bench_with_input(BenchmarkId::new("wschat", len), &wire, |b, wire| {
            b.iter(|| FrameHeader::parse(black_box(wire)))
        });
        group.bench_with_input(BenchmarkId::new("tungstenite", len), &wire, |b, wire| {
            b.iter(|| TFrameHeader::parse(&mut Cursor::new(black_box(wire))))
        });
    }
    group.finish();
}

fn header_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_header_encode");
    group.throughput(Throughput::Elements(1));
    for len in SIZES {
        let ours = FrameHeader {
            mask: None,
            ..client_header(len)
        };
        let mut out = Vec::with_capacity(MAX_HEADER_LEN);
        group.bench_with_input(BenchmarkId::new("wschat", len), &ours, |b, header| {
            b.iter(|| {
                out.clear();
                black_box(header).encode(&mut out);
                black_box(&out);
            })
        });

        let theirs = TFrameHeader {
            opcode: TOpCode::Data(Data::Text),
            ..TFrameHeader::default()
        };
        let mut out = Vec::with_capacity(MAX_HEADER_LEN);
        group.bench_with_input(
            BenchmarkId::new("tungstenite", len),
            &theirs,
            |b, header| {
                b.iter(|| {
                    out.clear();
                    black_box(header)
                        .format(black_box(len as u64), &mut out)
                        .expect("writing to a Vec cannot fail");
                    black_box(&out);
                })
            },
        );
    }
    group.finish();
}

fn frame_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_encode_text");
    for len in SIZES {
        group.throughput(Throughput::Bytes(len as u64));
        let payload = Bytes::from(text(len));

        group.bench_with_input(BenchmarkId::new("wschat", len), &payload, |b, payload| {
            b.iter(|| encode_frame(OpCode::Text, black_box(payload)))
        });
        group.bench_with_input(
            BenchmarkId::new("tungstenite", len),
            &payload,
            |b, payload| {
                b.iter(|| {
                    // `Bytes::clone` only bumps a reference count; the frame owns its payload.
                    let frame = TFrame::message(payload.clone(), TOpCode::Data(Data::Text), true);
                    let mut out = Vec::with_capacity(frame.len());
                    frame
                        .format(&mut out)
                        .expect("writing to a Vec cannot fail");
                    out
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("copy_ceiling", len),
            &payload,
            |b, payload| b.iter(|| black_box(&payload[..]).to_vec()),
        );
    }
    group.finish();
}

fn frame_decode(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let limits = Limits {
        max_message: MAX_MESSAGE,
        max_frame: MAX_MESSAGE,
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut group = c.benchmark_group("frame_decode_masked_text");
    for len in SIZES {
        group.throughput(Throughput::Bytes(len as u64));
        let payload = text(len);
        let wire = client_frame(payload.as_bytes());

        // One long-lived reader per implementation, as on a real connection: each iteration
        // decodes the next message from the endless stream, and drops it.
        let (mut reader, mut io) = (
            MessageReader::new(&[], limits, false),
            Repeating::new(&wire),
        );
        let mut decoder = Decoder::new(limits, false);
        let mut ws = WebSocket::from_raw_socket(Repeating::new(&wire), Role::Server, Some(config));
        // Check, outside the timing, that all three decode the frame to the same text.
        for _ in 0..2 {
            let ours = rt.block_on(reader.read_message(&mut io));
            assert_eq!(ours, Ok(Message::Text(payload.clone())));
            let decoded = decoder.decode(&mut &wire[..]);
            assert_eq!(decoded, Ok(Some(Message::Text(payload.clone()))));
            let theirs = ws.read().expect("tungstenite decodes the frame");
            assert_eq!(theirs.into_text().expect("text").as_str(), payload);
        }

        group.bench_function(BenchmarkId::new("wschat_reader", len), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(reader.read_message(&mut io).await.expect("valid frame"));
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("wschat_decoder", len), &wire, |b, wire| {
            b.iter(|| {
                let mut input = &wire[..];
                decoder.decode(&mut input).expect("valid frame")
            })
        });
        group.bench_function(BenchmarkId::new("tungstenite_read", len), |b| {
            b.iter(|| ws.read().expect("valid frame"))
        });
        group.bench_with_input(BenchmarkId::new("copy_ceiling", len), &wire, |b, wire| {
            b.iter(|| black_box(&wire[..]).to_vec())
        });
    }
    group.finish();
}

fn utf8_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8_validate");
    for len in SIZES {
        group.throughput(Throughput::Bytes(len as u64));
        let payload = text(len);
        group.bench_with_input(
            BenchmarkId::new("std_check_simple", len),
            payload.as_bytes(),
            |b, data| {
                b.iter(|| {
                    let mut checked = 0;
                    check_simple(black_box(data), &mut checked, true)
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("wschat_utf8_progress", len),
            payload.as_bytes(),
            |b, data| b.iter(|| Utf8Progress::default().check(black_box(data), true)),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = header_parse, header_encode, frame_encode, frame_decode, utf8_validate
}
criterion_main!(benches);
