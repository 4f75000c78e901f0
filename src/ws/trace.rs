//! `--trace-frames`: one annotated log line per frame, for people learning the protocol.
//!
//! ```text
//! INFO wschat::frames: in  FIN rsv=0 Text   masked   len=5 68 65 6c 6c 6f |hello|
//! ```

use std::fmt::Write;

use super::frame::FrameHeader;

/// How many payload bytes a trace line shows.
const PREVIEW: usize = 16;

#[derive(Debug, Clone, Copy)]
pub enum Direction {
    In,
    Out,
}

/// Logs one frame. `payload` is unmasked (what the application sees).
pub fn trace_frame(direction: Direction, header: &FrameHeader, payload: &[u8]) {
    let shown = &payload[..payload.len().min(PREVIEW)];
    let mut hex = String::with_capacity(PREVIEW * 3);
    for byte in shown {
        let _ = write!(hex, "{byte:02x} ");
    }
    let text: String = shown
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    let more = if payload.len() > PREVIEW { "…" } else { "" };
    tracing::info!(
        target: "wschat::frames",
        "{:<3} {} rsv={} {:<12} {:<8} len={} {}|{}{}|",
        match direction {
            Direction::In => "in",
            Direction::Out => "out",
        },
        if header.fin { "FIN " } else { "MORE" },
        header.rsv,
        format!("{:?}", header.opcode),
        if header.mask.is_some() { "masked" } else { "unmasked" },
        header.payload_len,
        hex,
        text,
        more,
    );
}
