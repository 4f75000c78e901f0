//! Every malformed frame a client can send gets the close code RFC 6455 (and the README) gives it,
//! the connection ends, the server stays up, and the other clients of the room miss nothing.
//!
//! Each case puts a raw client (`mallory`) in a room with two well-behaved ones: `ann` talks
//! before mallory connects, while mallory is connected, and after mallory was closed; `bob` must
//! receive every one of those messages, with consecutive ids (the [`Peer`] checks). Mallory's bad
//! bytes are followed in the same write by a valid chat message, which must never be posted: after
//! a protocol error the server reads nothing more from that connection.

mod common;

use common::peer::{chat_works, Peer};
use common::raw::{chat_frame, client_frame, client_header, RawClient, MASK};
use common::TestServer;
use wschat::Config;

/// Runs one case on a fresh server: `wire` from mallory must be answered with `expected`.
async fn case(path_room: &str, wire: &[u8], expected: u16) {
    let server = TestServer::with_config(Config::for_tests()).await;
    let (mut ann, _) = server.peer(path_room, "ann").await;
    let (mut bob, _) = server.peer(path_room, "bob").await;
    chat_works(&mut ann, &mut [&mut bob], "before").await;

    let mut mallory = RawClient::join(server.addr, path_room, "mallory").await;
    chat_works(&mut ann, &mut [&mut bob], "during").await;
    let mut bytes = wire.to_vec();
    bytes.extend(chat_frame("must never be posted"));
    // The server may close before reading all of it; a failed write is part of the game.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut mallory.stream, &bytes).await;
    assert_eq!(mallory.finish_close().await, Some(expected), "close code");

    bob.expect_leave("mallory").await;
    chat_works(&mut ann, &mut [&mut bob], "after").await;
    server.assert_healthy().await;
    drop(mallory);
    let series = format!("wschat_close_codes_sent_total{{code=\"{expected}\"}}");
    server.expect_metric(&series, 1.0).await;
    close_both(ann, bob).await;
}

async fn close_both(ann: Peer, bob: Peer) {
    ann.close().await;
    bob.close().await;
}

/// A close frame body: the code and a reason.
fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason);
    body
}

const PROTOCOL_ERROR: u16 = 1002;
const UNSUPPORTED_DATA: u16 = 1003;
const INVALID_PAYLOAD: u16 = 1007;
const MESSAGE_TOO_BIG: u16 = 1009;

// Section 5.1: "The server MUST close the connection upon receiving a frame that is not masked."
#[tokio::test]
async fn unmasked_frame_is_1002() {
    case("r", &[0x81, 0x02, b'h', b'i'], PROTOCOL_ERROR).await;
}

// Section 5.2: reserved bits without a negotiated extension.
#[tokio::test]
async fn rsv1_is_1002() {
    case("r", &client_frame(0xC1, b"hi"), PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn rsv2_is_1002() {
    case("r", &client_frame(0xA1, b"hi"), PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn rsv3_is_1002() {
    case("r", &client_frame(0x91, b"hi"), PROTOCOL_ERROR).await;
}

// Section 5.2: unknown opcodes, data (0x3-0x7) and control (0xB-0xF).
#[tokio::test]
async fn reserved_data_opcode_is_1002() {
    case("r", &client_frame(0x83, b""), PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn reserved_control_opcode_is_1002() {
    case("r", &client_frame(0x8F, b""), PROTOCOL_ERROR).await;
}

// Section 5.5: control frames carry at most 125 bytes...
#[tokio::test]
async fn oversized_ping_is_1002() {
    case("r", &client_frame(0x89, &[b'p'; 126]), PROTOCOL_ERROR).await;
}

// ...and are never fragmented.
#[tokio::test]
async fn fragmented_ping_is_1002() {
    case("r", &client_frame(0x09, b"ping"), PROTOCOL_ERROR).await;
}

// Section 5.4: a continuation needs a message to continue...
#[tokio::test]
async fn continuation_without_start_is_1002() {
    case("r", &client_frame(0x80, b"orphan"), PROTOCOL_ERROR).await;
}

// ...and a new message must wait for the last one's final fragment.
#[tokio::test]
async fn new_message_inside_a_fragmented_one_is_1002() {
    let mut wire = client_frame(0x01, b"first half");
    wire.extend(client_frame(0x81, b"interloper"));
    case("r", &wire, PROTOCOL_ERROR).await;
}

// Section 5.2: "the most significant bit MUST be 0" in a 64-bit length.
#[tokio::test]
async fn length_with_top_bit_set_is_1002() {
    case(
        "r",
        &client_header(0x82, 1 << 63, Some(MASK)),
        PROTOCOL_ERROR,
    )
    .await;
}

// Section 5.5.1: a close body is empty or starts with a 2-byte code.
#[tokio::test]
async fn one_byte_close_body_is_1002() {
    case("r", &client_frame(0x88, &[0x03]), PROTOCOL_ERROR).await;
}

// Section 7.4.1: 1005 and 1006 must never be sent; 999 and 5000 are not codes at all.
#[tokio::test]
async fn reserved_close_codes_are_1002() {
    for code in [1005, 1006, 999, 5000] {
        case(
            "r",
            &client_frame(0x88, &close_body(code, b"")),
            PROTOCOL_ERROR,
        )
        .await;
    }
}

// Section 8.1 applies to close reasons too.
#[tokio::test]
async fn close_reason_not_utf8_is_1007() {
    let body = close_body(1000, b"bad \xFF reason");
    case("r", &client_frame(0x88, &body), INVALID_PAYLOAD).await;
}

// Section 8.1: a text message that is not UTF-8.
#[tokio::test]
async fn invalid_utf8_text_is_1007() {
    case("r", &client_frame(0x81, b"caf\xC3"), INVALID_PAYLOAD).await;
}

// Checked incrementally: a first fragment with a byte that can never start a character fails
// before the message ends (the continuation that "would" finish it is never needed).
#[tokio::test]
async fn invalid_utf8_in_a_first_fragment_is_1007() {
    case("r", &client_frame(0x01, b"ok \xC0\xAF"), INVALID_PAYLOAD).await;
}

// A valid character split across two fragments is fine; one cut short at the end is not.
#[tokio::test]
async fn message_ending_inside_a_character_is_1007() {
    let euro = "€".as_bytes();
    let mut wire = client_frame(0x01, &euro[..1]);
    wire.extend(client_frame(0x80, &euro[1..2]));
    case("r", &wire, INVALID_PAYLOAD).await;
}

// The chat's default limit is 64 KiB: a header declaring one byte more fails at once, before any
// payload arrives (so the server never buffers it).
#[tokio::test]
async fn message_over_64_kib_is_1009_from_its_header() {
    let header = client_header(0x81, 64 * 1024 + 1, Some(MASK));
    case("r", &header, MESSAGE_TOO_BIG).await;
}

// The same limit across fragments.
#[tokio::test]
async fn fragments_adding_up_over_64_kib_are_1009() {
    let mut wire = client_frame(0x01, &[b'a'; 40 * 1024]);
    wire.extend(client_header(0x80, 30 * 1024, Some(MASK)));
    case("r", &wire, MESSAGE_TOO_BIG).await;
}

// The chat speaks JSON in text frames; a binary message is data it cannot take.
#[tokio::test]
async fn binary_message_to_chat_is_1003() {
    case(
        "r",
        &client_frame(0x82, b"\x00\x01binary"),
        UNSUPPORTED_DATA,
    )
    .await;
}

// A fragmented binary message too, once it is complete.
#[tokio::test]
async fn fragmented_binary_message_to_chat_is_1003() {
    let mut wire = client_frame(0x02, b"bin");
    wire.extend(client_frame(0x80, b"ary"));
    case("r", &wire, UNSUPPORTED_DATA).await;
}

/// The well-formed neighbours of the cases above pass: control frames between fragments, an
/// empty ping, a close with a code and a UTF-8 reason (echoed back).
#[tokio::test]
async fn well_formed_edge_cases_are_accepted() {
    let server = TestServer::with_config(Config::for_tests()).await;
    let (mut bob, _) = server.peer("r", "bob").await;
    let mut raw = RawClient::join(server.addr, "r", "carol").await;
    bob.event_of("join").await;

    let mut wire = client_frame(0x01, "frag".as_bytes());
    wire.extend(client_frame(0x89, b"")); // ping between fragments
    wire.extend(client_frame(0x00, "men".as_bytes()));
    wire.extend(client_frame(0x8A, b"unsolicited pong"));
    wire.extend(client_frame(0x80, "ted €".as_bytes()));
    raw.send(&wire).await;
    bob.expect_message("carol", "fragmented €").await;
    let pong = raw.frame().await.expect("a pong");
    assert_eq!((pong.opcode, pong.payload.len()), (0xA, 0), "pong");

    raw.send(&client_frame(0x88, &close_body(4000, "bye ✓".as_bytes())))
        .await;
    assert_eq!(raw.close_code().await, Some(4000), "close code echoed");
    raw.expect_eof().await;
    bob.expect_leave("carol").await;
    server.assert_healthy().await;
}

/// `/echo` runs the same reader: a protocol error there is a 1002 too, and the echo of what came
/// before it is delivered first.
#[tokio::test]
async fn echo_fails_the_same_way() {
    let server = TestServer::with_config(Config {
        echo: true,
        ..Config::for_tests()
    })
    .await;
    let mut raw = RawClient::upgrade(server.addr, "/echo").await;
    let mut wire = client_frame(0x81, b"echo me");
    wire.extend([0x81, 0x01, b'x']); // unmasked
    raw.send(&wire).await;
    let echo = raw.frame().await.expect("the echo");
    assert_eq!((echo.opcode, &echo.payload[..]), (0x1, &b"echo me"[..]));
    assert_eq!(raw.finish_close().await, Some(PROTOCOL_ERROR));
    server.assert_healthy().await;
}
