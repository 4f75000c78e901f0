//! permessage-deflate's data path (RFC 7692 sections 6 and 7.2): a message's payload to the
//! compressed payload of a frame with RSV1 set, and back. The DEFLATE itself is `flate2`'s (raw
//! DEFLATE, no zlib header); what is here is what RFC 7692 adds around it, and the limits.
//!
//! With no context takeover (see [`super::extensions`]) every message is compressed and inflated
//! on its own, so no connection keeps anything between messages: [`compress`] borrows its
//! thread's compressor for one call, an [`Inflater`] exists for one message being read.
//!
//! Why one compressor per thread, reset for each message, rather than a fresh one per message
//! (which with zlib-rs costs about the same CPU): memory. A compressor is about 256 KiB in several
//! allocations; made and freed once per joiner, the allocator carved each new connection's small,
//! long-lived allocations out of the freed space, and the next compressor had to take fresh
//! memory: 2,000 idle connections in rooms of one measured 130 KiB each instead of under 3 KiB
//! (README, "Compression"). A thread's compressor is made once and never freed, so nothing is
//! churned. The decompressor follows the same idea more loosely: a message being read keeps its
//! own (it may span reads, and the task may move threads), but takes it from, and gives it back
//! to, one spare kept per thread.

use std::cell::RefCell;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::frame::{FrameHeader, OpCode};
use super::Error;

/// RSV1 in [`FrameHeader::rsv`] (bits RSV1..RSV3, RSV1 the highest): "Per-Message Compressed"
/// on the first frame of a compressed message (RFC 7692 section 6).
pub const RSV1: u8 = 0b100;

/// The four bytes a sync flush ends with (an empty stored block), which section 7.2.1 has the
/// sender remove and section 7.2.2 has the receiver append again.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The compression level: zlib's default (6). A broadcast is compressed once for all its
/// receivers, so bytes saved on every delivery are worth more than CPU spent once; level 1 was
/// about three times faster on a 1 KiB message but 20-40% larger (benches/README.md).
const LEVEL: u32 = 6;

/// Compresses one whole message payload as section 7.2.1 says: DEFLATE with a sync flush, then
/// the trailing `00 00 ff ff` removed. With `keep_tail`, the tail stays: the result is then the
/// first part of a longer message, and another compressed part can follow it directly (what the
/// welcome's shared history does: see [`compress_in_parts`]).
pub fn compress(payload: &[u8], keep_tail: bool) -> Vec<u8> {
    thread_local! {
        /// This thread's compressor (see the module docs), made on first use.
        static COMPRESSOR: RefCell<Option<Compress>> = const { RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        // Taken out while in use: `compress_with` never re-enters, but this way a re-entry would
        // make a fresh compressor rather than panic.
        let mut deflate = cell
            .borrow_mut()
            .take()
            .unwrap_or_else(|| Compress::new(Compression::new(LEVEL), false));
        deflate.reset();
        let out = compress_with(&mut deflate, payload, keep_tail);
        *cell.borrow_mut() = Some(deflate);
        out
    })
}

fn compress_with(deflate: &mut Compress, payload: &[u8], keep_tail: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    loop {
        let consumed = deflate.total_in() as usize;
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64));
        }
        deflate
            .compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
            .expect("compressing into a growing buffer cannot fail");
        // Done when all input is taken and the flush had room to finish (the buffer not full).
        if deflate.total_in() as usize == payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    debug_assert!(out.ends_with(&SYNC_TAIL));
    if !keep_tail && out.ends_with(&SYNC_TAIL) {
        out.truncate(out.len() - SYNC_TAIL.len());
    }
    out
}

/// A message compressed from two parts, each compressed on its own: the first with its sync
/// flush's tail kept, so the DEFLATE stream is byte-aligned where the second begins. Inflating
/// the concatenation gives `first` then `second`, because a DEFLATE stream is a sequence of
/// blocks, and the second part's back-references never reach before its own start.
pub fn compress_in_parts(first: &[u8], second_compressed: &[u8]) -> Vec<u8> {
    let mut out = compress(first, true);
    out.extend_from_slice(second_compressed);
    out
}

/// The frame to send instead of `frame` (a whole, unmasked server text or binary frame) when
/// compression pays: `None` when the payload is under `threshold` bytes or does not get smaller.
/// Returns the compressed frame and the payload's size before and after.
pub fn deflate_frame(frame: &[u8], threshold: usize) -> Option<(Bytes, usize, usize)> {
    let (header, header_len) = FrameHeader::parse(frame).ok()??;
    let payload = &frame[header_len..];
    if payload.len() < threshold
        || !header.fin
        || !matches!(header.opcode, OpCode::Text | OpCode::Binary)
    {
        return None;
    }
    let compressed = compress(payload, false);
    if compressed.len() >= payload.len() {
        return None;
    }
    let frame = compressed_frame(header.opcode, &[&compressed]);
    Some((frame, payload.len(), compressed.len()))
}

/// A whole server frame with RSV1 set, its payload the concatenation of `parts` (already
/// compressed).
pub fn compressed_frame(opcode: OpCode, parts: &[&[u8]]) -> Bytes {
    let len = parts.iter().map(|p| p.len()).sum();
    let header = FrameHeader {
        rsv: RSV1,
        ..FrameHeader::server(opcode, len)
    };
    let mut out = BytesMut::with_capacity(header.encoded_len() + len);
    header.encode(&mut out);
    for part in parts {
        out.put_slice(part);
    }
    out.freeze()
}

/// The least an inflated message's buffer grows by when full.
const INFLATE_STEP: usize = 16 * 1024;

/// The inflater of one compressed message being read: made at its first frame, dropped at its
/// end, so a connection holds one only while a compressed message is arriving. Its decompressor
/// comes from, and goes back to, the thread's spare (see the module docs).
pub struct Inflater {
    inflate: Option<Box<Decompress>>,
    /// The DEFLATE stream ended (a block with BFINAL): anything after it is ignored.
    ended: bool,
}

thread_local! {
    /// One decompressor kept per thread between messages, so reading compressed messages does
    /// not allocate and free one each time (see the module docs).
    static SPARE_DECOMPRESSOR: RefCell<Option<Box<Decompress>>> = const { RefCell::new(None) };
}

impl Drop for Inflater {
    fn drop(&mut self) {
        if let Some(mut inflate) = self.inflate.take() {
            inflate.reset(false);
            // `try_with`: a thread being torn down just frees it.
            let _ = SPARE_DECOMPRESSOR.try_with(|spare| {
                let mut spare = spare.borrow_mut();
                if spare.is_none() {
                    *spare = Some(inflate);
                }
            });
        }
    }
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("in", &self.decompressor().total_in())
            .field("out", &self.decompressor().total_out())
            .finish()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Self {
        let spare = SPARE_DECOMPRESSOR
            .try_with(|spare| spare.borrow_mut().take())
            .ok()
            .flatten();
        Inflater {
            // Raw DEFLATE (no zlib header) with the full window, which inflates anything a client
            // compressed with a window of 8 to 15 bits.
            inflate: Some(spare.unwrap_or_else(|| Box::new(Decompress::new(false)))),
            ended: false,
        }
    }

    fn decompressor(&self) -> &Decompress {
        self.inflate.as_ref().expect("present until dropped")
    }

    /// Inflates `input` (compressed bytes of the message, in order) onto `out`. The limit is on
    /// the inflated bytes: past `limit` this stops with [`Error::MessageTooBig`] having produced
    /// one byte beyond it (and `out` never had room for more), however much `input` would inflate
    /// to. A stream
    /// that is not valid DEFLATE is [`Error::BadCompressedData`].
    pub fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Error> {
        let inflate = self.inflate.as_mut().expect("present until dropped");
        while !self.ended {
            let start = out.len();
            if out.capacity() == start {
                // Double (so a large message is not copied on every step), but never past one
                // byte over the limit: one byte past it is what proves it was exceeded, and the
                // inflater writes only into this spare room, so a bomb gets no more than that.
                let grow = start.max(INFLATE_STEP).min(limit + 1 - start);
                out.reserve_exact(grow);
            }
            let spare = out.capacity() - start;
            let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
            let status = inflate.decompress_vec(input, out, FlushDecompress::None);
            let consumed = (inflate.total_in() - in_before) as usize;
            let produced = (inflate.total_out() - out_before) as usize;
            input = &input[consumed..];
            if out.len() > limit {
                return Err(Error::MessageTooBig);
            }
            match status {
                Ok(Status::StreamEnd) => self.ended = true,
                Ok(Status::Ok | Status::BufError) => {
                    // All input taken and room left over: it needs more input.
                    if input.is_empty() && produced < spare {
                        return Ok(());
                    }
                    if consumed == 0 && produced == 0 {
                        // No progress with both input and room: not a valid stream.
                        return Err(Error::BadCompressedData);
                    }
                }
                Err(_) => return Err(Error::BadCompressedData),
            }
        }
        Ok(())
    }

    /// The message's last frame has been inflated: section 7.2.2, "Append 4 octets of 0x00 0x00
    /// 0xff 0xff to the tail end of the payload of the message" and inflate them too.
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
        self.inflate(&SYNC_TAIL, out, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(compressed: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let mut inflater = Inflater::new();
        inflater.inflate(compressed, &mut out, limit)?;
        inflater.finish(&mut out, limit)?;
        Ok(out)
    }

    #[test]
    fn the_rfc_example_hello() {
        // RFC 7692 section 7.2.3.1: "Hello" compressed is 0xf2 0x48 0xcd 0xc9 0xc9 0x07 0x00.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_all(&hello, 100).unwrap(), b"Hello");
        assert_eq!(compress(b"Hello", false), hello);
        // Section 7.2.3.2: the same message sent in two frames, split anywhere, inflates the same.
        for cut in 0..hello.len() {
            let mut out = Vec::new();
            let mut inflater = Inflater::new();
            inflater.inflate(&hello[..cut], &mut out, 100).unwrap();
            inflater.inflate(&hello[cut..], &mut out, 100).unwrap();
            inflater.finish(&mut out, 100).unwrap();
            assert_eq!(out, b"Hello", "cut at {cut}");
        }
        // Section 7.2.3.3: "Hello" with no compression (a stored block), and 7.2.3.4's BFINAL.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate_all(&stored, 100).unwrap(), b"Hello");
        let final_block = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_all(&final_block, 100).unwrap(), b"Hello");
    }

    #[test]
    fn a_reused_compressor_and_decompressor_start_afresh() {
        // The thread's compressor and spare decompressor carry nothing from one message to the
        // next: the same input compresses to the same bytes, and a message inflates alone.
        let first = compress(b"Hello Hello Hello", false);
        let _ = compress(b"something else entirely, to fill the window", false);
        assert_eq!(compress(b"Hello Hello Hello", false), first);
        let mut out = Vec::new();
        let mut inflater = Inflater::new();
        inflater.inflate(&[0xff], &mut out, 10).unwrap_err();
        drop(inflater); // a failed stream goes back as the spare, and is reset
        assert_eq!(inflate_all(&first, 100).unwrap(), b"Hello Hello Hello");
    }

    #[test]
    fn round_trip_at_every_size() {
        for len in [0, 1, 100, 5000, 70_000, 300_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect();
            let compressed = compress(&payload, false);
            assert_eq!(inflate_all(&compressed, len).unwrap(), payload, "{len}");
        }
    }

    #[test]
    fn two_parts_compressed_apart_inflate_as_one() {
        let first = br#"{"type":"welcome","you":"bob","history":"#.repeat(3);
        let second = br#"[{"id":1,"text":"hello hello hello"}]}"#.repeat(50);
        let message = compress_in_parts(&first, &compress(&second, false));
        let mut whole = first.clone();
        whole.extend_from_slice(&second);
        assert_eq!(inflate_all(&message, whole.len()).unwrap(), whole);
    }

    /// A decompression bomb: a few hundred bytes that inflate to 10 MB. The limit is on the
    /// inflated bytes, and inflation stops within one step of it.
    #[test]
    fn a_bomb_stops_at_the_limit_before_the_output_is_made() {
        let huge = vec![b'a'; 10_000_000];
        let bomb = compress(&huge, false);
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        let limit = 64 * 1024;
        let mut out = Vec::new();
        let mut inflater = Inflater::new();
        assert_eq!(
            inflater.inflate(&bomb, &mut out, limit),
            Err(Error::MessageTooBig)
        );
        assert_eq!(out.len(), limit + 1);
        assert!(out.capacity() <= limit + 1, "{}", out.capacity());
        // Exactly at the limit is allowed.
        assert_eq!(
            inflate_all(&compress(&huge[..limit], false), limit)
                .unwrap()
                .len(),
            limit
        );
        assert_eq!(
            inflate_all(&compress(&huge[..limit + 1], false), limit),
            Err(Error::MessageTooBig)
        );
    }

    #[test]
    fn corrupt_data_is_an_error() {
        // 0xff: BFINAL with the reserved block type 11.
        assert_eq!(
            inflate_all(&[0xff, 0x00], 100),
            Err(Error::BadCompressedData)
        );
        // A stored block whose length and its complement disagree.
        assert_eq!(
            inflate_all(&[0x00, 0x05, 0x00, 0x00, 0x00, b'x'], 100),
            Err(Error::BadCompressedData)
        );
    }

    #[test]
    fn a_frame_is_compressed_only_when_it_pays() {
        let json =
            br#"{"type":"message","id":1,"from":"alice","text":"hello hello hello hello hello"}"#;
        let frame = super::super::encode_frame(OpCode::Text, json);
        let (deflated, before, after) = deflate_frame(&frame, 16).unwrap();
        assert_eq!(before, json.len());
        assert!(after < before);
        let (header, n) = FrameHeader::parse(&deflated).unwrap().unwrap();
        assert_eq!(header.rsv, RSV1);
        assert_eq!(header.payload_len as usize, after);
        assert_eq!(inflate_all(&deflated[n..], 1000).unwrap(), json);
        // Under the threshold, or incompressible: no compressed frame.
        assert!(deflate_frame(&frame, json.len() + 1).is_none());
        let noise: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(deflate_frame(&super::super::encode_frame(OpCode::Binary, &noise), 0).is_none());
    }
}
