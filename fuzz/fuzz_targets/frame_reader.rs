//! Arbitrary bytes into [`MessageReader`], the code that parses everything a peer sends after the
//! handshake. It must never panic, never stall on input that is all there, never hand back more
//! than it was given, and never break a limit.
//!
//! Each input is read twice: once whole (as if it all arrived with the handshake), once split at a
//! fuzzer-chosen point into bytes "already read" with the handshake and the rest delivered in
//! fuzzer-chosen short reads. A resumable parser must not care where reads end, so both runs must
//! give the same messages and the same final error.
//!
//! Input layout: `[chunk, limits, split_hi, split_lo, wire...]`.
#![no_main]

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};
use wschat::ws::{close_code, Error, Limits, Message, MessageReader};

/// Message size limits the fuzzer picks from: the edges of the 7-bit and 16-bit length forms,
/// zero (every non-empty data message is too big) and large ones.
const MAX_MESSAGE: [usize; 7] = [0, 1, 125, 126, 1024, 65_536, 16 << 20];
/// Frame size limits (0 = none).
const MAX_FRAME: [usize; 4] = [0, 1, 125, 4096];

/// Guards against a reader that stops making progress: every result consumes at least the two
/// header bytes of a frame, so a real input never comes near this.
const MAX_RESULTS: usize = 1 << 16;

/// An in-memory socket that hands out at most `chunk` bytes per read, then EOF.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (now, later) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = later;
        Poll::Ready(Ok(()))
    }
}

/// Every message, then the error or close that ends the connection.
fn read_all(
    already_read: &[u8],
    rest: &[u8],
    chunk: usize,
    limits: Limits,
) -> Vec<Result<Message, Error>> {
    let io = Chunked { data: rest, chunk };
    let mut reader = MessageReader::new(io, already_read, limits, false);
    let mut cx = Context::from_waker(Waker::noop());
    let mut results = Vec::new();
    while results.len() < MAX_RESULTS {
        // The socket is always ready, so a read either completes or fails on the first poll.
        let Poll::Ready(result) = pin!(reader.read_message()).poll(&mut cx) else {
            panic!("read_message is pending although every byte is available");
        };
        let last = matches!(result, Err(_) | Ok(Message::Close(_)));
        results.push(result);
        if last {
            break;
        }
    }
    assert!(
        reader.is_finished(),
        "the reader kept going past {MAX_RESULTS} results"
    );
    results
}

/// What any sequence of results must satisfy, whatever the input.
fn check(results: &[Result<Message, Error>], limits: Limits, input_len: usize) {
    let mut payload_total = 0;
    for result in results {
        match result {
            Ok(Message::Text(text)) => {
                assert!(text.len() <= limits.max_message, "text over the limit");
                payload_total += text.len();
            }
            Ok(Message::Binary(data)) => {
                assert!(data.len() <= limits.max_message, "binary over the limit");
                payload_total += data.len();
            }
            Ok(Message::Ping(data) | Message::Pong(data)) => {
                assert!(data.len() <= 125, "control payload over 125 bytes");
                payload_total += data.len();
            }
            Ok(Message::Close(Some((code, reason)))) => {
                assert!(close_code::is_valid_on_wire(*code), "close code {code}");
                assert!(reason.len() <= 123, "close reason over 123 bytes");
            }
            Ok(Message::Close(None)) => {}
            Err(err) => {
                // Every error maps to a close code or to "the socket is gone", and prints.
                let _ = err.close_code();
                assert!(!err.to_string().is_empty());
            }
        }
    }
    assert!(payload_total <= input_len, "more payload out than bytes in");
}

fuzz_target!(|input: &[u8]| {
    let [chunk, limits, split_hi, split_lo, wire @ ..] = input else {
        return;
    };
    let limits = Limits {
        max_message: MAX_MESSAGE[usize::from(*limits) % MAX_MESSAGE.len()],
        max_frame: MAX_FRAME[usize::from(*limits) / MAX_MESSAGE.len() % MAX_FRAME.len()],
    };
    let chunk = usize::from(*chunk) + 1;
    let split = usize::from(u16::from_be_bytes([*split_hi, *split_lo])) % (wire.len() + 1);

    let whole = read_all(wire, &[], 1, limits);
    check(&whole, limits, wire.len());
    let (already_read, rest) = wire.split_at(split);
    let split = read_all(already_read, rest, chunk, limits);
    assert_eq!(whole, split, "the result depends on where reads end");
});
