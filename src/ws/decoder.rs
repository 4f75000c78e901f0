//! Bytes to whole messages, with every protocol check, and no I/O.
//!
//! [`Decoder::decode`] takes whatever bytes have arrived and hands back the next complete message
//! or control frame, or "need more bytes", or the error that ends the connection (each [`Error`]
//! knows its close code). It parses frame headers, streams each payload straight into the message
//! being assembled (unmasking and UTF-8-checking as it goes), and applies section 5.4's
//! fragmentation rules. It never reads or writes a socket: [`super::reader`] feeds it from one,
//! the fuzz target, the benches and the unit tests feed it byte slices. The same split as
//! mini-redis's `frame.rs` and `connection.rs`, and tungstenite taking its stream per call.
//!
//! Shaped so for three properties:
//! - **All state in an enum the compiler checks.** Between frames the decoder is in `Header`,
//!   inside a data frame `Data` (which owns the message the payload goes into), inside a control
//!   frame `Control` (which keeps aside the fragmented message it interrupts), after a close or
//!   an error `Finished`. Each step takes the state by value and must name the next one, so there
//!   is no "message in progress" field that could be missing when a payload byte arrives.
//! - **Streaming.** Every payload byte is consumed as soon as it arrives: copied once, from the
//!   caller's bytes into the message it belongs to. So the caller never keeps more than the bytes
//!   behind a returned message, and a 16 MiB frame never sits whole in a read buffer.
//! - **Small when idle.** Between messages the decoder owns no allocation; a header split across
//!   two inputs waits in a 14-byte array inside the decoder, not in the caller's buffer.
//! - **Compressed messages inflate as they arrive** (permessage-deflate, RFC 7692, when the
//!   handshake negotiated it: [`Decoder::accept_compressed`]). A message whose first frame has
//!   RSV1 gets an [`Inflater`] for as long as it is arriving; each payload chunk is unmasked and
//!   inflated straight into the message, so the size limit and the UTF-8 check apply to the
//!   inflated bytes as they are produced, and a small message that would inflate to gigabytes
//!   stops at the limit (1009) with no more than the limit made.
//!
//! One idea, so one file (about 400 lines with its comments); the tests, which feed it byte
//! slices split every way, are in `decoder/tests.rs`.

use bytes::Bytes;

use super::deflate::{Inflater, RSV1};
use super::frame::{close_code, FrameHeader, OpCode, MAX_HEADER_LEN};
use super::mask::apply_mask;
use super::trace::{trace_frame, trace_inflated_frame, Direction};
use super::utf8::Utf8Progress;
use super::Error;

/// One complete message, or a control frame, from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// The peer started (or answered) the close handshake, with its code and reason if any.
    Close(Option<(u16, String)>),
}

/// Size limits, checked against each frame's declared length before any of it is stored.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message after reassembly, in bytes (exceeding it: 1009).
    pub max_message: usize,
    /// Largest single frame payload, in bytes; 0 = only the message limit applies.
    pub max_frame: usize,
}

/// The sans-I/O message decoder. See the module docs.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Log every frame (`--trace-frames`).
    trace: bool,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    compressed_allowed: bool,
    state: State,
}

/// Where in the stream of frames the decoder is.
#[derive(Debug)]
enum State {
    /// Between frames: the next bytes are a header.
    Header {
        /// The first bytes of a header that an input ended inside.
        partial: PartialHeader,
        /// A fragmented data message waiting for its next frame (section 5.4), if any.
        message: Option<Assembly>,
    },
    /// Inside a text, binary or continuation frame: its payload goes into `message`.
    Data { frame: Payload, message: Assembly },
    /// Inside a ping, pong or close frame.
    Control {
        frame: Payload,
        /// The payload so far, unmasked (at most 125 bytes, section 5.5).
        body: Vec<u8>,
        /// The fragmented message this control frame interrupts, if any: section 5.4, control
        /// frames "MAY be injected in the middle of a fragmented message".
        message: Option<Assembly>,
    },
    /// A close frame or an error has been returned: nothing valid follows.
    Finished,
}

/// The start of a frame header cut off at the end of an input (at most 13 bytes of 14).
#[derive(Debug, Default)]
struct PartialHeader {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

/// A frame whose header has been parsed and whose payload is still arriving. Only the header
/// fields still needed (of RSV, only RSV1 can be set here), packed into 24 bytes: this struct
/// sits in every connection's task, whose size is the idle memory per connection.
#[derive(Debug)]
struct Payload {
    /// Declared payload length, in bytes.
    len: u64,
    /// Payload bytes received so far (where the mask key continues).
    received: u64,
    /// The masking key. Every client frame has one (checked before this is made), so it is not
    /// an `Option` here.
    mask: [u8; 4],
    opcode: OpCode,
    fin: bool,
    /// RSV1: the first frame of a compressed message.
    rsv1: bool,
}

impl Payload {
    fn remaining(&self) -> u64 {
        self.len - self.received
    }

    /// The header again, for `--trace-frames`.
    fn header(&self) -> FrameHeader {
        FrameHeader {
            fin: self.fin,
            rsv: if self.rsv1 { RSV1 } else { 0 },
            opcode: self.opcode,
            mask: Some(self.mask),
            payload_len: self.len,
        }
    }

    /// Takes as much of this frame's payload as `input` holds, advancing `input` past it.
    fn take<'a>(&mut self, input: &mut &'a [u8]) -> &'a [u8] {
        let n = self.remaining().min(input.len() as u64) as usize;
        let (chunk, rest) = input.split_at(n);
        *input = rest;
        self.received += n as u64;
        chunk
    }

    /// Appends `chunk` (the payload bytes just taken) to `out`, unmasked.
    fn unmask_into(&self, chunk: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        // Copy, then unmask in place: the second pass runs over bytes still in the L1 cache, and
        // keeps `apply_mask` the one masking routine (tested against the definition).
        out.extend_from_slice(chunk);
        let offset = (self.received - chunk.len() as u64) as usize;
        apply_mask(&mut out[start..], self.mask, offset);
    }

    /// Unmasks `chunk` (the compressed payload bytes just taken) and inflates it onto `out`, in
    /// pieces through a small stack buffer, so the compressed bytes are never stored.
    fn inflate_into(
        &self,
        chunk: &[u8],
        inflater: &mut Inflater,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Error> {
        let mut offset = (self.received - chunk.len() as u64) as usize;
        let mut buf = [0u8; 2048];
        for piece in chunk.chunks(buf.len()) {
            let buf = &mut buf[..piece.len()];
            buf.copy_from_slice(piece);
            apply_mask(buf, self.mask, offset);
            offset += piece.len();
            inflater.inflate(buf, out, limit)?;
        }
        Ok(())
    }
}

/// What a compressed message needs while it arrives: boxed in [`Assembly`], so an uncompressed
/// message (and an idle connection) pays one pointer for it.
#[derive(Debug)]
struct Inflating {
    inflater: Inflater,
    /// Compressed payload bytes of the message so far, declared: bounded by
    /// [`compressed_limit`], so a stream of blocks that inflate to nothing cannot go on forever.
    compressed: u64,
    /// `data.len()` when the current frame began (for `--trace-frames`: what this frame inflated
    /// to).
    frame_start: usize,
}

/// A data message whose frames are still arriving.
#[derive(Debug)]
struct Assembly {
    /// The message's payload so far (inflated, for a compressed message).
    data: Vec<u8>,
    /// `Some` for a text message: how far `data` is known to be valid UTF-8.
    utf8: Option<Utf8Progress>,
    /// `Some` for a compressed message.
    inflating: Option<Box<Inflating>>,
}

/// What one step of the decoder achieved.
enum Step {
    /// Keep going: the state changed and may make progress on the same input.
    Continue,
    /// The input is used up (all of it consumed).
    NeedMore,
    Done(Message),
}

impl Decoder {
    pub fn new(limits: Limits, trace: bool) -> Self {
        Decoder {
            limits,
            trace,
            compressed_allowed: false,
            state: State::Header {
                partial: PartialHeader::default(),
                message: None,
            },
        }
    }

    /// Decodes from the front of `input`, advancing it past every byte used.
    ///
    /// - `Ok(Some(message))`: a message or control frame is complete. The bytes after it are left
    ///   in `input`, for the next call.
    /// - `Ok(None)`: all of `input` was consumed and more is needed. (Unlike a header parser,
    ///   the decoder does keep what it was given: payload goes into the message, and the start
    ///   of a header into a small array, so the caller never has to hold on to partial input.)
    /// - `Err`: the peer broke a rule; the decoder is [finished](Self::is_finished).
    ///
    /// After a `Close` or an error, the decoder is finished and consumes nothing more.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Message>, Error> {
        loop {
            // Each step takes the state by value. On an error it stays `Finished`, the state the
            // connection is in after any error.
            let state = std::mem::replace(&mut self.state, State::Finished);
            match self.step(state, input)? {
                Step::Continue => {}
                Step::NeedMore => return Ok(None),
                Step::Done(message) => return Ok(Some(message)),
            }
        }
    }

    /// Accepts compressed messages from here on: the handshake negotiated permessage-deflate
    /// (RFC 7692 section 6: RSV1 on a message's first frame then means "compressed"). Without
    /// this, RSV1 is a protocol error, as section 5.2 of RFC 6455 requires.
    pub fn accept_compressed(&mut self) {
        self.compressed_allowed = true;
    }

    /// Whether the stream is past its last message (a close, or an error).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// One transition. Sets `self.state` to the next state before returning `Ok`.
    fn step(&mut self, state: State, input: &mut &[u8]) -> Result<Step, Error> {
        match state {
            State::Finished => Ok(Step::NeedMore),
            State::Header {
                mut partial,
                message,
            } => match partial.complete(input)? {
                Some(header) => {
                    self.state = self.start_frame(header, message)?;
                    Ok(Step::Continue)
                }
                None => {
                    self.state = State::Header { partial, message };
                    Ok(Step::NeedMore)
                }
            },
            State::Data {
                mut frame,
                mut message,
            } => {
                let chunk = frame.take(input);
                let inflated = match &mut message.inflating {
                    None => {
                        frame.unmask_into(chunk, &mut message.data);
                        Ok(())
                    }
                    Some(inflating) => frame.inflate_into(
                        chunk,
                        &mut inflating.inflater,
                        &mut message.data,
                        self.limits.max_message,
                    ),
                };
                if let Err(err) = inflated {
                    return Err(utf8_first(err, &mut message, self.limits));
                }
                if let Some(utf8) = &mut message.utf8 {
                    utf8.check(&message.data, false)?;
                }
                if frame.remaining() > 0 {
                    self.state = State::Data { frame, message };
                    return Ok(Step::NeedMore);
                }
                self.finish_data(frame, message)
            }
            State::Control {
                mut frame,
                mut body,
                message,
            } => {
                let chunk = frame.take(input);
                frame.unmask_into(chunk, &mut body);
                if frame.remaining() > 0 {
                    self.state = State::Control {
                        frame,
                        body,
                        message,
                    };
                    return Ok(Step::NeedMore);
                }
                self.finish_control(frame, body, message)
            }
        }
    }

    /// Applies the rules that need connection state, and returns the state that receives the
    /// frame's payload.
    fn start_frame(&self, header: FrameHeader, message: Option<Assembly>) -> Result<State, Error> {
        // Section 5.1: "The server MUST close the connection upon receiving a frame that is not
        // masked."
        let mask = header.mask.ok_or(Error::UnmaskedFrame)?;
        let rsv1 = header.rsv & RSV1 != 0;
        if rsv1 {
            // RFC 6455 section 5.2: RSV1 means nothing unless an extension gave it a meaning.
            if !self.compressed_allowed {
                return Err(Error::ReservedBits);
            }
            // RFC 7692 section 6.1: only on the first frame of a data message.
            if header.opcode.is_control() || header.opcode == OpCode::Continuation {
                return Err(Error::MisplacedCompressedBit);
            }
        }
        if self.limits.max_frame > 0 && header.payload_len > self.limits.max_frame as u64 {
            return Err(Error::MessageTooBig);
        }
        let frame = Payload {
            len: header.payload_len,
            received: 0,
            mask,
            opcode: header.opcode,
            fin: header.fin,
            rsv1,
        };
        Ok(match header.opcode {
            // Control frames need no message state; their length is at most 125 (checked by
            // `FrameHeader::parse`), so reserving all of it is safe.
            op if op.is_control() => State::Control {
                body: Vec::with_capacity(header.payload_len as usize),
                frame,
                message,
            },
            OpCode::Continuation => {
                let mut message = message.ok_or(Error::UnexpectedContinuation)?;
                match &mut message.inflating {
                    // The inflated size is checked as it is produced; the compressed one here.
                    Some(inflating) => {
                        inflating.compressed += header.payload_len;
                        inflating.frame_start = message.data.len();
                        if inflating.compressed > compressed_limit(self.limits) {
                            return Err(Error::MessageTooBig);
                        }
                    }
                    None => {
                        check_size(message.data.len(), header.payload_len, self.limits)?;
                        message.data.reserve(initial_capacity(header.payload_len));
                    }
                }
                State::Data { frame, message }
            }
            opcode => {
                // "fragments of one message MUST NOT be interleaved between the fragments of
                // another message"
                if message.is_some() {
                    return Err(Error::ExpectedContinuation);
                }
                let inflating = if rsv1 {
                    if header.payload_len > compressed_limit(self.limits) {
                        return Err(Error::MessageTooBig);
                    }
                    Some(Box::new(Inflating {
                        inflater: Inflater::new(),
                        compressed: header.payload_len,
                        frame_start: 0,
                    }))
                } else {
                    check_size(0, header.payload_len, self.limits)?;
                    None
                };
                let capacity = initial_capacity(header.payload_len).min(self.limits.max_message);
                let message = Assembly {
                    data: Vec::with_capacity(capacity),
                    utf8: (opcode == OpCode::Text).then(Utf8Progress::default),
                    inflating,
                };
                State::Data { frame, message }
            }
        })
    }

    /// A data frame's payload is complete: the message is too if the frame has FIN.
    fn finish_data(&mut self, frame: Payload, mut message: Assembly) -> Result<Step, Error> {
        if frame.fin {
            // RFC 7692 section 7.2.2: the receiver appends the `00 00 ff ff` the sender removed,
            // and inflates it with the rest.
            let finished = match &mut message.inflating {
                Some(inflating) => inflating
                    .inflater
                    .finish(&mut message.data, self.limits.max_message),
                None => Ok(()),
            };
            if let Err(err) = finished {
                return Err(utf8_first(err, &mut message, self.limits));
            }
        }
        if self.trace {
            match &message.inflating {
                None => {
                    let start = message.data.len() - frame.received as usize;
                    trace_frame(Direction::In, &frame.header(), &message.data[start..]);
                }
                Some(inflating) => trace_inflated_frame(
                    Direction::In,
                    &frame.header(),
                    &message.data[inflating.frame_start..],
                ),
            }
        }
        if !frame.fin {
            self.state = State::Header {
                partial: PartialHeader::default(),
                message: Some(message),
            };
            return Ok(Step::Continue);
        }
        // The inflater is dropped here, with the message: nothing compressed outlives it.
        let done = match message.utf8 {
            Some(mut utf8) => {
                utf8.check(&message.data, true)?;
                debug_assert!(std::str::from_utf8(&message.data).is_ok());
                // SAFETY: `check` with `last = true` returned `Ok`, so every byte of `data` has
                // been validated (it is `Ok` only once the checked prefix is all of `data`), and
                // nothing has changed `data` since. Validating again with `String::from_utf8`
                // would cost as much as the rest of decoding a large message (the `frame` bench).
                Message::Text(unsafe { String::from_utf8_unchecked(message.data) })
            }
            None => Message::Binary(message.data.into()),
        };
        self.state = State::Header {
            partial: PartialHeader::default(),
            message: None,
        };
        Ok(Step::Done(done))
    }

    /// A control frame is complete: it is returned at once, even between fragments.
    fn finish_control(
        &mut self,
        frame: Payload,
        body: Vec<u8>,
        message: Option<Assembly>,
    ) -> Result<Step, Error> {
        if self.trace {
            trace_frame(Direction::In, &frame.header(), &body);
        }
        let done = match frame.opcode {
            OpCode::Ping => Message::Ping(body.into()),
            OpCode::Pong => Message::Pong(body.into()),
            // Section 5.5.1: after a close frame, nothing more is read (the state stays
            // `Finished`); the caller answers it.
            _ => return Ok(Step::Done(Message::Close(parse_close(&body)?))),
        };
        self.state = State::Header {
            partial: PartialHeader::default(),
            message,
        };
        Ok(Step::Done(done))
    }
}

impl PartialHeader {
    /// Parses a header from the bytes kept so far followed by `input`. Returns the header once
    /// it is whole, advancing `input` past the bytes of it that `input` held; otherwise keeps
    /// all of `input` (then shorter than a header) and returns `None`.
    fn complete(&mut self, input: &mut &[u8]) -> Result<Option<FrameHeader>, Error> {
        let kept = usize::from(self.len);
        if kept == 0 {
            // The common case: the header is at the front of the input, parse it in place.
            if let Some((header, len)) = FrameHeader::parse(input)? {
                *input = &input[len..];
                return Ok(Some(header));
            }
        } else {
            let mut joined = self.bytes;
            let more = input.len().min(MAX_HEADER_LEN - kept);
            joined[kept..kept + more].copy_from_slice(&input[..more]);
            if let Some((header, len)) = FrameHeader::parse(&joined[..kept + more])? {
                // `len > kept`: the kept bytes alone were not a whole header.
                *input = &input[len - kept..];
                self.len = 0;
                return Ok(Some(header));
            }
        }
        // Incomplete, so shorter than the longest header: it fits beside what is kept.
        let end = kept + input.len();
        self.bytes[kept..end].copy_from_slice(input);
        self.len = end as u8;
        *input = &[];
        Ok(None)
    }
}

/// How much room to make for a frame's payload before any of it arrives: its declared length,
/// but no more than 64 KiB. Reserving up front saves a large message from being copied on every
/// doubling of its buffer; the cap stops a peer from making us reserve megabytes by declaring a
/// big frame and then sending one byte (past the cap the buffer grows as bytes really arrive).
fn initial_capacity(payload_len: u64) -> usize {
    const MAX_RESERVE: u64 = 64 * 1024;
    payload_len.min(MAX_RESERVE) as usize
}

/// The error to report when inflating failed with `err`: invalid UTF-8 in the text inflated before
/// the failure (up to the size limit) comes first, because it comes first in the message. How much
/// one inflate call produces depends on where the inputs end, and an error must not: without this,
/// a message both too big and invalid was 1009 when it arrived in one read and 1007 in two (found
/// by the `decoder` fuzz target).
fn utf8_first(err: Error, message: &mut Assembly, limits: Limits) -> Error {
    if let Some(utf8) = &mut message.utf8 {
        let end = message.data.len().min(limits.max_message);
        if let Err(invalid) = utf8.check(&message.data[..end], false) {
            return invalid;
        }
    }
    err
}

/// The most compressed bytes a message may declare: its limit, plus what DEFLATE adds to data
/// that does not compress (5 bytes per 64 KiB stored block, and a little for the stream), so
/// that any message within the limit fits compressed. Only bounds the time a peer can keep a
/// message going with blocks that inflate to nothing; memory is bounded by the inflated limit.
fn compressed_limit(limits: Limits) -> u64 {
    let max = limits.max_message as u64;
    max + max / 1024 + 64
}

/// Section 7.4.1 code 1009: the declared length is checked before a byte of it is stored.
fn check_size(have: usize, more: u64, limits: Limits) -> Result<(), Error> {
    if have as u64 + more > limits.max_message as u64 {
        return Err(Error::MessageTooBig);
    }
    Ok(())
}

/// Section 5.5.1: an empty close body, or a 2-byte code and a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, Error> {
    match payload {
        [] => Ok(None),
        [_] => Err(Error::BadClosePayload),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close_code::is_valid_on_wire(code) {
                return Err(Error::InvalidCloseCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Error::InvalidUtf8)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

/// The tests feed byte slices, so they live in their own file (`decoder/tests.rs`), which keeps
/// this one about the decoder.
#[cfg(test)]
pub(crate) mod tests;
