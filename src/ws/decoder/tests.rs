//! The decoder fed byte slices: whole, split at every byte, several messages at once.

use super::*;
use crate::ws::mask::apply_mask_naive;

const LIMITS: Limits = Limits {
    max_message: 1024,
    max_frame: 0,
};

/// A masked client frame, as a browser would send it. `opcode` is raw, so tests can send the
/// reserved ones.
pub(crate) fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0xA1, 0xB2, 0xC3, 0xD4];
    let header = FrameHeader {
        fin,
        rsv: 0,
        opcode: OpCode::from_u8(opcode).unwrap_or(OpCode::Binary),
        mask: Some(mask),
        payload_len: payload.len() as u64,
    };
    let mut out = Vec::new();
    header.encode(&mut out);
    out[0] = (out[0] & 0xF0) | opcode;
    let mut body = payload.to_vec();
    apply_mask_naive(&mut body, mask, 0);
    out.extend_from_slice(&body);
    out
}

/// Every result of decoding `pieces` one after another, until a close or an error, as a reader
/// would: each piece is decoded until used up, the bytes behind a message carried on.
fn decode_pieces(pieces: &[&[u8]], limits: Limits) -> Vec<Result<Message, Error>> {
    decode_with(Decoder::new(limits, false), pieces)
}

/// [`decode_pieces`] on a connection that negotiated permessage-deflate.
fn decode_compressed_pieces(pieces: &[&[u8]], limits: Limits) -> Vec<Result<Message, Error>> {
    let mut decoder = Decoder::new(limits, false);
    decoder.accept_compressed();
    decode_with(decoder, pieces)
}

fn decode_with(mut decoder: Decoder, pieces: &[&[u8]]) -> Vec<Result<Message, Error>> {
    let mut results = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        loop {
            let before = input.len();
            match decoder.decode(&mut input) {
                Ok(Some(message)) => results.push(Ok(message)),
                Ok(None) => {
                    assert!(
                        input.is_empty(),
                        "need-more consumed only {before} - {}",
                        input.len()
                    );
                    break;
                }
                Err(err) => {
                    results.push(Err(err));
                    assert!(decoder.is_finished());
                    return results;
                }
            }
            if decoder.is_finished() {
                return results;
            }
        }
    }
    results
}

fn decode_all(wire: &[u8]) -> Vec<Result<Message, Error>> {
    decode_pieces(&[wire], LIMITS)
}

fn first_result(wire: &[u8]) -> Option<Result<Message, Error>> {
    decode_all(wire).into_iter().next()
}

/// The same results whether the bytes come at once, split at any byte, or one at a time.
fn assert_split_invariant(wire: &[u8], limits: Limits) -> Vec<Result<Message, Error>> {
    let whole = decode_pieces(&[wire], limits);
    for cut in 0..=wire.len() {
        let (a, b) = wire.split_at(cut);
        assert_eq!(decode_pieces(&[a, b], limits), whole, "cut at {cut}");
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(decode_pieces(&bytes, limits), whole, "one byte at a time");
    whole
}

#[test]
fn decodes_a_masked_text_message() {
    let wire = client_frame(true, 1, b"Hello");
    assert_eq!(first_result(&wire), Some(Ok(Message::Text("Hello".into()))));
}

#[test]
fn rfc_example_masked_hello() {
    // Section 5.7: "A single-frame masked text message (contains "Hello")".
    let wire = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let got = assert_split_invariant(&wire, LIMITS);
    assert_eq!(got, [Ok(Message::Text("Hello".into()))]);
}

#[test]
fn a_stream_split_at_every_byte_decodes_the_same() {
    let mut wire = client_frame(true, 1, "héllo wörld".as_bytes());
    wire.extend(client_frame(false, 1, "€uro ".as_bytes()));
    wire.extend(client_frame(true, 10, b"pong"));
    wire.extend(client_frame(false, 0, &[0xE2, 0x82])); // a character cut between fragments
    wire.extend(client_frame(true, 0, &[0xAC]));
    wire.extend(client_frame(true, 2, &[7; 300])); // the 16-bit length form
    wire.extend(client_frame(true, 8, &[0x03, 0xE8, b'o', b'k']));
    let got = assert_split_invariant(&wire, LIMITS);
    assert_eq!(
        got,
        [
            Ok(Message::Text("héllo wörld".into())),
            Ok(Message::Pong(Bytes::from_static(b"pong"))),
            Ok(Message::Text("€uro €".into())),
            Ok(Message::Binary(Bytes::from(vec![7; 300]))),
            Ok(Message::Close(Some((1000, "ok".into())))),
        ]
    );
}

#[test]
fn several_messages_in_one_input_one_per_call() {
    let mut wire = client_frame(true, 1, b"one");
    wire.extend(client_frame(true, 2, b"two"));
    wire.extend(client_frame(true, 9, b"ping"));
    let mut decoder = Decoder::new(LIMITS, false);
    let mut input = &wire[..];
    let one = decoder.decode(&mut input);
    assert_eq!(one, Ok(Some(Message::Text("one".into()))));
    // The bytes behind the first message are left for the next call.
    assert_eq!(input.len(), wire.len() - 9);
    let two = decoder.decode(&mut input);
    assert_eq!(two, Ok(Some(Message::Binary(Bytes::from_static(b"two")))));
    let ping = decoder.decode(&mut input);
    assert_eq!(ping, Ok(Some(Message::Ping(Bytes::from_static(b"ping")))));
    assert_eq!(decoder.decode(&mut input), Ok(None));
}

#[test]
fn reassembles_fragments_with_a_ping_between_them() {
    let mut wire = client_frame(false, 1, b"frag");
    wire.extend(client_frame(true, 9, b""));
    wire.extend(client_frame(false, 0, b"men"));
    wire.extend(client_frame(true, 0, b"ted"));
    let got = assert_split_invariant(&wire, LIMITS);
    assert_eq!(
        got,
        [
            Ok(Message::Ping(Bytes::new())),
            Ok(Message::Text("fragmented".into())),
        ]
    );
}

#[test]
fn empty_messages() {
    let mut wire = client_frame(true, 1, b"");
    wire.extend(client_frame(false, 2, b""));
    wire.extend(client_frame(true, 0, b""));
    let got = assert_split_invariant(&wire, LIMITS);
    assert_eq!(
        got,
        [
            Ok(Message::Text(String::new())),
            Ok(Message::Binary(Bytes::new())),
        ]
    );
}

#[test]
fn close_frames() {
    let mut body = 1000u16.to_be_bytes().to_vec();
    body.extend_from_slice(b"bye");
    assert_eq!(
        first_result(&client_frame(true, 8, &body)),
        Some(Ok(Message::Close(Some((1000, "bye".into())))))
    );
    assert_eq!(
        first_result(&client_frame(true, 8, b"")),
        Some(Ok(Message::Close(None)))
    );
    assert_eq!(
        first_result(&client_frame(true, 8, b"x")),
        Some(Err(Error::BadClosePayload))
    );
    assert_eq!(
        first_result(&client_frame(true, 8, &1005u16.to_be_bytes())),
        Some(Err(Error::InvalidCloseCode(1005)))
    );
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(&[0xFF]);
    assert_eq!(
        first_result(&client_frame(true, 8, &bad_reason)),
        Some(Err(Error::InvalidUtf8))
    );
}

#[test]
fn nothing_is_decoded_after_a_close() {
    let mut wire = client_frame(true, 8, b"");
    wire.extend(client_frame(true, 1, b"after"));
    let mut decoder = Decoder::new(LIMITS, false);
    let mut input = &wire[..];
    assert_eq!(decoder.decode(&mut input), Ok(Some(Message::Close(None))));
    assert!(decoder.is_finished());
    let left = input.len();
    assert_eq!(decoder.decode(&mut input), Ok(None));
    assert_eq!(input.len(), left, "a finished decoder consumes nothing");
}

#[test]
fn protocol_errors() {
    let unmasked = [0x81, 0x02, b'h', b'i'];
    assert_eq!(first_result(&unmasked), Some(Err(Error::UnmaskedFrame)));
    assert_eq!(
        first_result(&client_frame(true, 0, b"x")),
        Some(Err(Error::UnexpectedContinuation))
    );
    let mut interleaved = client_frame(false, 1, b"a");
    interleaved.extend(client_frame(true, 1, b"b"));
    assert_eq!(
        first_result(&interleaved),
        Some(Err(Error::ExpectedContinuation))
    );
    assert_eq!(
        first_result(&client_frame(true, 3, b"")),
        Some(Err(Error::UnknownOpcode(3)))
    );
    // A header error inside a header split across inputs is found as soon as it is whole.
    let wire = [0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4];
    let got = assert_split_invariant(&wire, LIMITS);
    assert_eq!(got, [Err(Error::NonMinimalLength)]);
}

#[test]
fn limits_fail_before_the_payload_arrives() {
    // Only the header is there: the declared length alone must trigger 1009.
    let wire = client_frame(true, 2, &[0; 2000]);
    assert_eq!(first_result(&wire[..8]), Some(Err(Error::MessageTooBig)));
    // The same limit across fragments, before the second fragment's payload.
    let mut wire = client_frame(false, 2, &[0; 600]);
    let second = client_frame(true, 0, &[0; 600]);
    wire.extend_from_slice(&second[..8]);
    assert_eq!(first_result(&wire), Some(Err(Error::MessageTooBig)));
    // The frame limit.
    let limits = Limits {
        max_message: 1024,
        max_frame: 10,
    };
    let wire = client_frame(true, 2, &[0; 11]);
    assert_eq!(
        decode_pieces(&[&wire[..8]], limits),
        [Err(Error::MessageTooBig)]
    );
    let wire = client_frame(true, 2, &[0; 10]);
    let got = decode_pieces(&[&wire], limits);
    assert_eq!(got, [Ok(Message::Binary(Bytes::from(vec![0; 10])))]);
}

#[test]
fn invalid_utf8_fails_before_the_message_ends() {
    // The first fragment already holds a byte that can never start a character; nothing follows
    // it, so only an incremental check can fail here.
    let wire = client_frame(false, 1, b"ok \xFF");
    assert_eq!(first_result(&wire), Some(Err(Error::InvalidUtf8)));
    // Even inside one frame: the bytes so far fail before the frame's end has arrived.
    let wire = client_frame(true, 1, b"ok \xFF and more");
    assert_eq!(first_result(&wire[..10]), Some(Err(Error::InvalidUtf8)));
    // A valid character split across fragments is fine.
    let euro = "€".as_bytes();
    let mut wire = client_frame(false, 1, &euro[..1]);
    wire.extend(client_frame(true, 0, &euro[1..]));
    assert_eq!(first_result(&wire), Some(Ok(Message::Text("€".into()))));
    // A message that ends inside a character is not.
    assert_eq!(
        first_result(&client_frame(true, 1, &euro[..2])),
        Some(Err(Error::InvalidUtf8))
    );
    // Binary messages are not checked.
    let got = first_result(&client_frame(true, 2, b"\xFF"));
    assert_eq!(got, Some(Ok(Message::Binary(Bytes::from_static(b"\xFF")))));
}

#[test]
fn a_large_frame_streams_into_its_message() {
    let limits = Limits {
        max_message: 1 << 20,
        max_frame: 0,
    };
    let text = "Grüße ".repeat(20_000); // 160,000 bytes: the 64-bit length form
    let wire = client_frame(true, 1, text.as_bytes());
    let mut decoder = Decoder::new(limits, false);
    for chunk in wire[..wire.len() - 1].chunks(8192) {
        let mut input = chunk;
        assert_eq!(decoder.decode(&mut input), Ok(None));
        assert!(input.is_empty(), "every payload byte is taken at once");
    }
    let mut input = &wire[wire.len() - 1..];
    assert_eq!(decoder.decode(&mut input), Ok(Some(Message::Text(text))));
}

#[test]
fn an_idle_decoder_owns_no_allocation() {
    let mut decoder = Decoder::new(LIMITS, false);
    let wire = client_frame(true, 1, b"hi");
    let mut input = &wire[..];
    decoder.decode(&mut input).unwrap();
    assert!(matches!(decoder.state, State::Header { message: None, .. }));
}

// permessage-deflate (RFC 7692): compressed messages, on a connection that negotiated it.

/// A masked client frame with RSV1 set (the first frame of a compressed message).
fn compressed_frame(fin: bool, opcode: u8, compressed: &[u8]) -> Vec<u8> {
    let mut frame = client_frame(fin, opcode, compressed);
    frame[0] |= 0x40;
    frame
}

fn deflated(text: &str) -> Vec<u8> {
    crate::ws::deflate::compress(text.as_bytes(), false)
}

#[test]
fn a_compressed_message_split_at_every_byte() {
    let text = "héllo wörld, héllo wörld, héllo wörld";
    let wire = compressed_frame(true, 1, &deflated(text));
    let whole = decode_compressed_pieces(&[&wire], LIMITS);
    assert_eq!(whole, vec![Ok(Message::Text(text.into()))]);
    for cut in 0..=wire.len() {
        let (a, b) = wire.split_at(cut);
        assert_eq!(
            decode_compressed_pieces(&[a, b], LIMITS),
            whole,
            "cut at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(decode_compressed_pieces(&bytes, LIMITS), whole);
}

#[test]
fn the_rfc_example_compressed_hello_in_two_fragments_with_a_ping_between() {
    // RFC 7692 section 7.2.3.2: "Hello" compressed, in two frames; RSV1 only on the first.
    let mut wire = compressed_frame(false, 1, &[0xf2, 0x48, 0xcd]);
    wire.extend(client_frame(true, 9, b"ping"));
    wire.extend(client_frame(true, 0, &[0xc9, 0xc9, 0x07, 0x00]));
    // And an uncompressed message after it, on the same connection.
    wire.extend(client_frame(true, 1, b"plain"));
    assert_eq!(
        decode_compressed_pieces(&[&wire], LIMITS),
        vec![
            Ok(Message::Ping(Bytes::from_static(b"ping"))),
            Ok(Message::Text("Hello".into())),
            Ok(Message::Text("plain".into())),
        ]
    );
}

#[test]
fn a_compressed_binary_message_of_several_frames() {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 13) as u8).collect();
    let compressed = crate::ws::deflate::compress(&payload, false);
    let (a, rest) = compressed.split_at(compressed.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut wire = compressed_frame(false, 2, a);
    wire.extend(client_frame(false, 0, b));
    wire.extend(client_frame(true, 0, c));
    let limits = Limits {
        max_message: 3000,
        max_frame: 0,
    };
    assert_eq!(
        decode_compressed_pieces(&[&wire], limits),
        vec![Ok(Message::Binary(payload.into()))]
    );
}

#[test]
fn rsv1_rules() {
    let hello = deflated("Hello");
    // Not negotiated: RSV1 means nothing (RFC 6455 section 5.2), 1002.
    assert_eq!(
        decode_all(&compressed_frame(true, 1, &hello)),
        vec![Err(Error::ReservedBits)]
    );
    // Negotiated, but on a control frame or a continuation (RFC 7692 section 6.1), 1002.
    for wire in [
        compressed_frame(true, 9, b""),
        [
            client_frame(false, 1, b"a"),
            compressed_frame(true, 0, b"b"),
        ]
        .concat(),
    ] {
        let results = decode_compressed_pieces(&[&wire], LIMITS);
        assert_eq!(results, vec![Err(Error::MisplacedCompressedBit)]);
        assert_eq!(Error::MisplacedCompressedBit.close_code(), Some(1002));
    }
    // RSV2 and RSV3 stay errors with deflate negotiated.
    let mut rsv2 = client_frame(true, 1, b"x");
    rsv2[0] |= 0x20;
    assert_eq!(
        decode_compressed_pieces(&[&rsv2], LIMITS),
        vec![Err(Error::ReservedBits)]
    );
}

/// A decompression bomb: a frame of about 1 KB that inflates to 1 MB, against a 1,024-byte
/// limit. It fails with 1009 as soon as the inflated bytes pass the limit.
#[test]
fn a_compressed_message_that_inflates_past_the_limit_is_1009() {
    let bomb = crate::ws::deflate::compress(&vec![b'a'; 1_000_000], false);
    assert!(bomb.len() < 2_000);
    let wire = compressed_frame(true, 2, &bomb);
    assert_eq!(
        decode_compressed_pieces(&[&wire], LIMITS),
        vec![Err(Error::MessageTooBig)]
    );
    assert_eq!(Error::MessageTooBig.close_code(), Some(1009));
    // Exactly at the limit is fine.
    let fits = crate::ws::deflate::compress(&[b'a'; 1024], false);
    assert_eq!(
        decode_compressed_pieces(&[&compressed_frame(true, 2, &fits)], LIMITS),
        vec![Ok(Message::Binary(vec![b'a'; 1024].into()))]
    );
}

#[test]
fn invalid_utf8_in_inflated_text_is_1007_before_the_message_ends() {
    // The first fragment inflates to bytes that can never be UTF-8; the message never ends.
    let mut invalid = vec![b'a'; 100];
    invalid.push(0xff);
    let compressed = crate::ws::deflate::compress(&invalid, true);
    let wire = compressed_frame(false, 1, &compressed);
    assert_eq!(
        decode_compressed_pieces(&[&wire], LIMITS),
        vec![Err(Error::InvalidUtf8)]
    );
}

#[test]
fn corrupt_compressed_data_is_1007() {
    let wire = compressed_frame(true, 1, &[0xff, 0xff, 0xff]);
    assert_eq!(
        decode_compressed_pieces(&[&wire], LIMITS),
        vec![Err(Error::BadCompressedData)]
    );
    assert_eq!(Error::BadCompressedData.close_code(), Some(1007));
}

#[test]
fn an_idle_decoder_after_a_compressed_message_owns_nothing() {
    let mut decoder = Decoder::new(LIMITS, false);
    decoder.accept_compressed();
    let wire = compressed_frame(true, 1, &deflated("hello"));
    let mut input = &wire[..];
    assert_eq!(
        decoder.decode(&mut input),
        Ok(Some(Message::Text("hello".into())))
    );
    assert!(
        matches!(&decoder.state, State::Header { message: None, .. }),
        "{:?}",
        decoder.state
    );
}

/// Found by the `decoder` fuzz target: a compressed text message whose first inflated byte is not
/// UTF-8, and which is also over a 1-byte limit. Inflated in one call it passed the limit before
/// its UTF-8 was checked (1009); in two it did not (1007). Now 1007 however it arrives.
#[test]
fn a_compressed_message_both_too_big_and_invalid_fails_the_same_however_split() {
    let limits = Limits {
        max_message: 1,
        max_frame: 0,
    };
    let wire = [
        0x41, 0x84, 0xfa, 0x81, 0xc9, 0xfb, 0x21, 0xd5, 0x01, 0xfd, 0xd5, 0x3d, 0xd5, 0x15,
    ];
    let whole = decode_compressed_pieces(&[&wire], limits);
    assert_eq!(whole, vec![Err(Error::InvalidUtf8)]);
    for cut in 0..=wire.len() {
        let (a, b) = wire.split_at(cut);
        assert_eq!(
            decode_compressed_pieces(&[a, b], limits),
            whole,
            "cut at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(decode_compressed_pieces(&bytes, limits), whole);
}
