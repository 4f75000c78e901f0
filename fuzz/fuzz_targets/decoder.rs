//! Arbitrary bytes into [`Decoder`], the code that parses everything a peer sends after the
//! handshake. It must never panic, never stop short of input it was given, never hand back more
//! than it was given, and never break a limit.
//!
//! The decoder does no I/O, so the target calls it directly, as the reader does: each input is
//! decoded twice, once as one slice (as if it all arrived with the handshake), once split at a
//! fuzzer-chosen point and then cut into fuzzer-chosen short pieces. A resumable decoder must not
//! care where its inputs end, so both runs must give the same messages and the same final error.
//!
//! With permessage-deflate negotiated (a bit of the `limits` byte), RSV1 frames are inflated: the
//! same properties hold, except that a message may then be longer than the bytes that carried it.
//!
//! Input layout: `[chunk, limits, split_hi, split_lo, wire...]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::ws::{close_code, Decoder, Error, Limits, Message};

/// Message size limits the fuzzer picks from: the edges of the 7-bit and 16-bit length forms,
/// zero (every non-empty data message is too big) and large ones.
const MAX_MESSAGE: [usize; 7] = [0, 1, 125, 126, 1024, 65_536, 16 << 20];
/// Frame size limits (0 = none).
const MAX_FRAME: [usize; 4] = [0, 1, 125, 4096];

/// Every message, then the error or close that ends the stream (if the input holds one), decoding
/// `pieces` one after another the way the reader does.
fn decode_all(pieces: &[&[u8]], limits: Limits, compressed: bool) -> Vec<Result<Message, Error>> {
    let mut decoder = Decoder::new(limits, false);
    if compressed {
        decoder.accept_compressed();
    }
    let mut results = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        while !decoder.is_finished() {
            let before = input.len();
            let result = decoder.decode(&mut input);
            assert!(input.len() <= before, "the input grew");
            match result {
                Ok(None) => {
                    assert!(input.is_empty(), "need-more, with input left");
                    break;
                }
                Ok(Some(message)) => {
                    // A message completes on its last byte, which this call consumed. This also
                    // proves the loop ends.
                    assert!(input.len() < before, "a message out of no new input");
                    results.push(Ok(message));
                }
                Err(err) => {
                    assert!(
                        decoder.is_finished(),
                        "an error that does not finish the stream"
                    );
                    results.push(Err(err));
                }
            }
        }
        if decoder.is_finished() {
            break;
        }
    }
    results
}

/// What any sequence of results must satisfy, whatever the input.
fn check(results: &[Result<Message, Error>], limits: Limits, input_len: usize, compressed: bool) {
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
                // Every error maps to a close code, and prints. (No I/O here, so never `Io`.)
                assert!(err.close_code().is_some(), "{err:?} without a close code");
                assert!(!err.to_string().is_empty());
            }
        }
    }
    // Inflating is the one way to get more out than went in.
    assert!(
        compressed || payload_total <= input_len,
        "more payload out than bytes in"
    );
}

fuzz_target!(|input: &[u8]| {
    let [chunk, limits, split_hi, split_lo, wire @ ..] = input else {
        return;
    };
    let compressed = usize::from(*limits) / (MAX_MESSAGE.len() * MAX_FRAME.len()) % 2 == 1;
    let limits = Limits {
        max_message: MAX_MESSAGE[usize::from(*limits) % MAX_MESSAGE.len()],
        max_frame: MAX_FRAME[usize::from(*limits) / MAX_MESSAGE.len() % MAX_FRAME.len()],
    };
    let chunk = usize::from(*chunk) + 1;
    let split = usize::from(u16::from_be_bytes([*split_hi, *split_lo])) % (wire.len() + 1);

    let whole = decode_all(&[wire], limits, compressed);
    check(&whole, limits, wire.len(), compressed);
    let (first, rest) = wire.split_at(split);
    let mut pieces = vec![first];
    pieces.extend(rest.chunks(chunk));
    let split = decode_all(&pieces, limits, compressed);
    assert_eq!(whole, split, "the result depends on where inputs end");
});
