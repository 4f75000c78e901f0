//! `--trace-frames`: one annotated log line per frame, for people learning the protocol.
//!
//! ```text
//! INFO conn{id=1 nick=alice}: wschat::frames: handshake key=dGhlIHNhbXBsZSBub25jZQ== accept=s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
//! INFO conn{id=1 nick=alice}: wschat::frames: in  FIN  rsv=0 Text   masked   len=34 |{"type":"message","text":"hi bob"}|
//! INFO conn{id=2 nick=bob}: wschat::frames: write #3: 134 bytes, 2 frames complete
//! INFO conn{id=2 nick=bob}: wschat::frames: out FIN  rsv=0 Text   unmasked len=30 |{"type":"typing","name":"carol"}| (write #3)
//! INFO conn{id=2 nick=bob}: wschat::frames: out FIN  rsv=0 Text   unmasked len=98 |{"type":"message","id":7,…,"text":"hi bob",…}| (write #3)
//! INFO conn{id=1 nick=alice}: wschat::frames: in  FIN  rsv=0 Close  masked   len=5 code=1000 reason="bye"
//! ```
//!
//! On a connection that negotiated permessage-deflate, a compressed frame shows RSV1 (`rsv=4`,
//! the bits RSV1 RSV2 RSV3 read as a number) and both sizes: `len` is the compressed payload on
//! the wire, `inflated` what it stands for, and the preview is of the inflated bytes:
//!
//! ```text
//! INFO conn{id=2 nick=bob}: wschat::frames: out FIN  rsv=4 Text   unmasked len=61 inflated=98 |{"type":"message",…}| (write #4)
//! ```
//!
//! The `conn{…}` prefix is a `tracing` span the connection's task runs in (see
//! [`crate::routes`]), so every line of that task carries it, and a connection that is not
//! traced pays nothing for it. An incoming frame is logged when the decoder has all of it; an
//! outgoing one when the write that carried its last byte returns ([`super::writer`]), so a
//! batch of frames drained by one `write_vectored` shows as one `write` line and its frames.

use std::fmt::Write;

use super::deflate::{Inflater, RSV1};
use super::frame::{FrameHeader, OpCode};

/// The log target every trace line goes to (what `--trace-frames` turns on).
pub const TARGET: &str = "wschat::frames";

/// How many payload bytes a binary or control frame's preview shows, in hex.
const PREVIEW_BYTES: usize = 16;

/// How many characters of a text frame a preview shows (escaped, so one line stays one line).
const PREVIEW_CHARS: usize = 120;

#[derive(Debug, Clone, Copy)]
pub enum Direction {
    In,
    Out,
}

/// Logs one incoming frame. `payload` is unmasked (what the application sees).
pub fn trace_frame(direction: Direction, header: &FrameHeader, payload: &[u8]) {
    let line = describe(header, payload);
    match direction {
        Direction::In => tracing::info!(target: TARGET, "in  {line}"),
        Direction::Out => tracing::info!(target: TARGET, "out {line}"),
    }
}

/// Logs one incoming frame of a compressed message: its header as on the wire, and `inflated`,
/// the bytes its payload inflated to.
pub fn trace_inflated_frame(direction: Direction, header: &FrameHeader, inflated: &[u8]) {
    let line = describe_inflated(header, inflated);
    match direction {
        Direction::In => tracing::info!(target: TARGET, "in  {line}"),
        Direction::Out => tracing::info!(target: TARGET, "out {line}"),
    }
}

/// The handshake: the client's `Sec-WebSocket-Key` and the `Sec-WebSocket-Accept` computed from
/// it (see [`super::handshake::accept_key`]).
pub fn trace_handshake(key: &str, accept: &str) {
    tracing::info!(target: TARGET, "handshake key={key} accept={accept}");
}

/// One write call that returned: how much it carried and how many frames it completed.
pub fn trace_write(number: u64, bytes: usize, frames: usize) {
    let plural = if frames == 1 { "" } else { "s" };
    tracing::info!(target: TARGET, "write #{number}: {bytes} bytes, {frames} frame{plural} complete");
}

/// An outgoing frame whose last byte went out in write `number` (`line` from [`describe`]).
pub fn trace_written(line: &str, number: u64) {
    tracing::info!(target: TARGET, "out {line} (write #{number})");
}

/// One frame's header and payload, as a trace line shows it (without the direction). A frame with
/// RSV1 (compressed) is inflated for its preview: only this teaching aid pays for that.
pub fn describe(header: &FrameHeader, payload: &[u8]) -> String {
    if header.rsv & RSV1 != 0 && !header.opcode.is_control() {
        let mut inflated = Vec::new();
        let mut inflater = Inflater::new();
        // A preview's worth; the payload may also be only the first piece of a frame.
        let _ = inflater.inflate(payload, &mut inflated, 64 * 1024);
        let _ = inflater.finish(&mut inflated, 64 * 1024);
        return describe_inflated(header, &inflated);
    }
    let mut line = head(header);
    preview(&mut line, header.opcode, payload);
    line
}

/// A compressed frame: its header, the size its payload inflated to, and a preview of that.
pub fn describe_inflated(header: &FrameHeader, inflated: &[u8]) -> String {
    let mut line = head(header);
    line.insert_str(line.len() - 1, &format!(" inflated={}", inflated.len()));
    preview(&mut line, header.opcode, inflated);
    line
}

/// The header's fields, ending in a space.
fn head(header: &FrameHeader) -> String {
    format!(
        "{} rsv={} {:<6} {:<8} len={} ",
        if header.fin { "FIN " } else { "MORE" },
        header.rsv,
        format!("{:?}", header.opcode),
        if header.mask.is_some() {
            "masked"
        } else {
            "unmasked"
        },
        header.payload_len,
    )
}

/// Appends a preview of `payload`: text escaped, a close frame's code and reason, else hex.
fn preview(line: &mut String, opcode: OpCode, payload: &[u8]) {
    // A continuation frame does not say whether its message is text: shown as text when its
    // bytes are UTF-8, in hex otherwise (a binary fragment, or text cut inside a character).
    let text = match opcode {
        OpCode::Text => true,
        OpCode::Continuation => std::str::from_utf8(payload).is_ok(),
        _ => false,
    };
    match opcode {
        // A text frame may end inside a character: the lossy conversion shows it as U+FFFD.
        _ if text => {
            let text = String::from_utf8_lossy(payload);
            line.push('|');
            for (i, c) in text.chars().enumerate() {
                if i == PREVIEW_CHARS {
                    line.push('…');
                    break;
                }
                if needs_escape(c) {
                    let _ = write!(line, "{}", c.escape_default());
                } else {
                    line.push(c);
                }
            }
            line.push('|');
        }
        OpCode::Close if payload.len() >= 2 => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let reason = String::from_utf8_lossy(&payload[2..]);
            let _ = write!(line, "code={code} reason={reason:?}");
        }
        OpCode::Close => line.push_str("no code"),
        _ => {
            let shown = &payload[..payload.len().min(PREVIEW_BYTES)];
            for byte in shown {
                let _ = write!(line, "{byte:02x} ");
            }
            line.push('|');
            line.extend(shown.iter().map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            }));
            if payload.len() > PREVIEW_BYTES {
                line.push('…');
            }
            line.push('|');
        }
    }
}

/// Characters that would break the line or reorder the terminal's text (controls, line and
/// paragraph separators, bidirectional overrides): shown as `\n`, `\u{202e}`. Everything else,
/// quotes included, is shown as sent, so a JSON message reads as the JSON it is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, len: usize) -> FrameHeader {
        FrameHeader::server(opcode, len)
    }

    #[test]
    fn text_is_shown_escaped_and_bounded() {
        let payload = "say \"hi\"\nthen go";
        let line = describe(&header(OpCode::Text, payload.len()), payload.as_bytes());
        assert!(line.ends_with(r#"|say "hi"\nthen go|"#), "{line}");
        let long = "x".repeat(PREVIEW_CHARS + 10);
        let line = describe(&header(OpCode::Text, long.len()), long.as_bytes());
        assert!(
            line.ends_with(&format!("|{}…|", "x".repeat(PREVIEW_CHARS))),
            "{line}"
        );
        let line = describe(&header(OpCode::Text, 3), "\u{202e}".as_bytes());
        assert!(line.ends_with(r"|\u{202e}|"), "{line}");
    }

    #[test]
    fn close_frames_show_their_code_and_reason() {
        let mut payload = 1001u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"going away");
        let line = describe(&header(OpCode::Close, payload.len()), &payload);
        assert!(line.ends_with(r#"code=1001 reason="going away""#), "{line}");
    }

    #[test]
    fn a_compressed_frame_shows_rsv1_and_both_sizes() {
        let text = "hello hello hello hello hello hello";
        let frame = super::super::deflate::deflate_frame(
            &super::super::encode_frame(OpCode::Text, text.as_bytes()),
            0,
        )
        .unwrap()
        .0;
        let (header, n) = FrameHeader::parse(&frame).unwrap().unwrap();
        let line = describe(&header, &frame[n..]);
        let expected = format!(
            "FIN  rsv=4 Text   unmasked len={} inflated={} |{text}|",
            frame.len() - n,
            text.len()
        );
        assert_eq!(line, expected);
    }

    #[test]
    fn binary_is_shown_in_hex() {
        let line = describe(&header(OpCode::Ping, 3), b"a\x00b");
        assert!(line.ends_with("61 00 62 |a.b|"), "{line}");
        let line = describe(&header(OpCode::Continuation, 2), b"\xff\x00");
        assert!(line.ends_with("ff 00 |..|"), "{line}");
        let line = describe(&header(OpCode::Continuation, 2), b"ok");
        assert!(line.ends_with("|ok|"), "{line}");
    }
}
