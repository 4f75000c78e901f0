//! The server's side of a connection, reading: bytes from the socket to whole messages.
//!
//! It parses frame headers as they arrive, streams each payload straight into the message being
//! assembled (unmasking and UTF-8-checking as it goes), answers section 5.4's fragmentation
//! rules, and hands back complete messages and control frames. It never writes: replying to a
//! ping or a close is the caller's decision, which keeps this file about reading only.
//!
//! Two properties make it fit a one-task-per-connection server:
//! - **Cancel-safe.** All progress lives in `self`, and the only `.await` is a read whose bytes
//!   are stored before it returns. A `select!` may drop a `read_message` future at any point and
//!   call it again later without losing a byte.
//! - **Small when idle.** Bytes are read into a scratch buffer on the stack and copied into
//!   `pending` only while something is incomplete. A quiet connection holds no buffer at all.

use std::future::poll_fn;
use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

use super::frame::{close_code, FrameHeader, OpCode};
use super::mask::apply_mask;
use super::trace::{trace_frame, Direction};
use super::Error;

/// How many bytes one read asks the socket for. It lives on the stack only during the read, so
/// it costs idle connections nothing; 8 KiB lets a busy sender's frames arrive in few reads.
const SCRATCH_SIZE: usize = 8 * 1024;

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

/// A frame whose header has been parsed and whose payload is still arriving.
#[derive(Debug)]
struct FrameInProgress {
    header: FrameHeader,
    /// Payload bytes not yet received.
    remaining: u64,
    /// Payload bytes received so far (where the mask key continues).
    received: usize,
}

/// A data message whose frames are still arriving.
#[derive(Debug)]
struct MessageInProgress {
    is_text: bool,
    data: Vec<u8>,
    /// `data[..utf8_checked]` is known to be valid UTF-8 (text only).
    utf8_checked: usize,
}

pub struct MessageReader<R> {
    io: R,
    limits: Limits,
    trace: bool,
    /// Read but not yet parsed. Empty and unallocated between messages on a quiet connection.
    pending: BytesMut,
    frame: Option<FrameInProgress>,
    message: Option<MessageInProgress>,
    /// The payload of a control frame in progress (at most 125 bytes).
    control: Vec<u8>,
    /// Set once the peer's close frame or an error has been returned: nothing valid follows.
    done: bool,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// `already_read` holds bytes that arrived behind the handshake (hyper read them with the
    /// request headers); they are parsed before anything is read from `io`.
    pub fn new(io: R, already_read: &[u8], limits: Limits, trace: bool) -> Self {
        MessageReader {
            io,
            limits,
            trace,
            pending: BytesMut::from(already_read),
            frame: None,
            message: None,
            control: Vec::new(),
            done: false,
        }
    }

    /// Reads until one message or control frame is complete. Cancel-safe (see the module docs).
    ///
    /// After an error, or after a `Close` was returned, the connection is finished: further calls
    /// report [`Error::Io`] with `UnexpectedEof` rather than parse what the peer sends next.
    pub async fn read_message(&mut self) -> Result<Message, Error> {
        loop {
            if self.done {
                return Err(Error::Io(std::io::ErrorKind::UnexpectedEof));
            }
            match self.parse() {
                Ok(Some(message)) => {
                    self.release_idle_buffer();
                    self.done = matches!(message, Message::Close(_));
                    return Ok(message);
                }
                Ok(None) => {}
                Err(err) => {
                    self.done = true;
                    return Err(err);
                }
            }
            if let Err(err) = self.fill().await {
                self.done = true;
                return Err(err);
            }
        }
    }

    /// Whether the connection is past its last message (a close, or an error).
    pub fn is_finished(&self) -> bool {
        self.done
    }

    /// Reads and throws away everything until the peer closes (or the read fails).
    pub async fn discard_until_eof(&mut self) {
        loop {
            self.pending.clear();
            if self.fill().await.is_err() {
                return;
            }
        }
    }

    /// Reads whatever the socket has into `pending`.
    async fn fill(&mut self) -> Result<(), Error> {
        let n = poll_fn(|cx| {
            let mut scratch = [0u8; SCRATCH_SIZE];
            let mut buf = ReadBuf::new(&mut scratch);
            Pin::new(&mut self.io).poll_read(cx, &mut buf).map_ok(|()| {
                self.pending.extend_from_slice(buf.filled());
                buf.filled().len()
            })
        })
        .await?;
        if n == 0 {
            // EOF. Mid-message or not, the peer left without a close frame (section 7.1.5:
            // "the WebSocket Connection Close Code is considered to be 1006").
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof));
        }
        Ok(())
    }

    /// Makes as much progress as `pending` allows; `Ok(None)` means "need more bytes".
    fn parse(&mut self) -> Result<Option<Message>, Error> {
        loop {
            let Some(frame) = &mut self.frame else {
                let Some((header, header_len)) = FrameHeader::parse(&self.pending)? else {
                    self.release_idle_buffer();
                    return Ok(None);
                };
                self.start_frame(header)?;
                self.pending.advance(header_len);
                continue;
            };

            let take = frame.remaining.min(self.pending.len() as u64) as usize;
            if take == 0 && frame.remaining > 0 {
                self.release_idle_buffer();
                return Ok(None);
            }
            let mask = frame.header.mask.expect("checked in start_frame");
            let offset = frame.received;
            let chunk = &self.pending[..take];
            if frame.header.opcode.is_control() {
                let start = self.control.len();
                self.control.extend_from_slice(chunk);
                apply_mask(&mut self.control[start..], mask, offset);
            } else {
                let message = self.message.as_mut().expect("set in start_frame");
                let start = message.data.len();
                message.data.extend_from_slice(chunk);
                apply_mask(&mut message.data[start..], mask, offset);
                if message.is_text {
                    check_utf8(&message.data, &mut message.utf8_checked, false)?;
                }
            }
            self.pending.advance(take);
            frame.remaining -= take as u64;
            frame.received += take;
            if frame.remaining == 0 {
                let frame = self.frame.take().expect("frame in progress");
                if let Some(message) = self.finish_frame(frame)? {
                    return Ok(Some(message));
                }
            }
        }
    }

    /// Applies the rules that need connection state, then prepares to receive the payload.
    fn start_frame(&mut self, header: FrameHeader) -> Result<(), Error> {
        // Section 5.1: "The server MUST close the connection upon receiving a frame that is not
        // masked."
        if header.mask.is_none() {
            return Err(Error::UnmaskedFrame);
        }
        if self.limits.max_frame > 0 && header.payload_len > self.limits.max_frame as u64 {
            return Err(Error::MessageTooBig);
        }
        match header.opcode {
            // Section 5.4: control frames "MAY be injected in the middle of a fragmented
            // message"; they need no state.
            op if op.is_control() => self.control.clear(),
            OpCode::Continuation => {
                let message = self.message.as_mut().ok_or(Error::UnexpectedContinuation)?;
                check_size(message.data.len(), header.payload_len, self.limits)?;
                message.data.reserve(initial_capacity(header.payload_len));
            }
            opcode => {
                // "fragments of one message MUST NOT be interleaved between the fragments of
                // another message"
                if self.message.is_some() {
                    return Err(Error::ExpectedContinuation);
                }
                check_size(0, header.payload_len, self.limits)?;
                self.message = Some(MessageInProgress {
                    is_text: opcode == OpCode::Text,
                    data: Vec::with_capacity(initial_capacity(header.payload_len)),
                    utf8_checked: 0,
                });
            }
        }
        self.frame = Some(FrameInProgress {
            header,
            remaining: header.payload_len,
            received: 0,
        });
        Ok(())
    }

    /// A frame's payload is complete: returns a message if it finished one.
    fn finish_frame(&mut self, frame: FrameInProgress) -> Result<Option<Message>, Error> {
        let header = frame.header;
        if self.trace {
            let payload = match header.opcode {
                op if op.is_control() => &self.control[..],
                _ => {
                    let data = &self.message.as_ref().expect("data message").data;
                    &data[data.len() - frame.received..]
                }
            };
            trace_frame(Direction::In, &header, payload);
        }
        let message = match header.opcode {
            OpCode::Ping => Message::Ping(Bytes::copy_from_slice(&self.control)),
            OpCode::Pong => Message::Pong(Bytes::copy_from_slice(&self.control)),
            OpCode::Close => Message::Close(parse_close(&self.control)?),
            _ if !header.fin => return Ok(None),
            _ => {
                let mut message = self.message.take().expect("data message");
                if message.is_text {
                    check_utf8(&message.data, &mut message.utf8_checked, true)?;
                    debug_assert!(std::str::from_utf8(&message.data).is_ok());
                    // SAFETY: `check_utf8` with `last = true` has now validated every byte of
                    // `data` (it returns `Ok` only when `utf8_checked == data.len()`), and nothing
                    // has changed `data` since. Validating again with `String::from_utf8` cost as
                    // much as the whole rest of decoding a large message (see the `frame` bench).
                    let text = unsafe { String::from_utf8_unchecked(message.data) };
                    Message::Text(text)
                } else {
                    Message::Binary(message.data.into())
                }
            }
        };
        Ok(Some(message))
    }

    /// Drops `pending`'s allocation once everything in it is parsed, so a quiet connection
    /// holds no read buffer (the next read allocates a fresh, right-sized one).
    fn release_idle_buffer(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = BytesMut::new();
        }
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

/// Section 7.4.1 code 1009: the declared length is checked before a byte of it is stored.
fn check_size(have: usize, more: u64, limits: Limits) -> Result<(), Error> {
    if have as u64 + more > limits.max_message as u64 {
        return Err(Error::MessageTooBig);
    }
    Ok(())
}

/// Validates the UTF-8 received since the last check. Section 8.1: the endpoint MUST fail the
/// connection "when an endpoint is to interpret a byte stream as UTF-8 but finds that the byte
/// stream is not, in fact, a valid UTF-8 stream". Checking as bytes arrive, rather than at the
/// end of the message, fails a bad message as soon as its first bad byte is seen.
///
/// A character split between two reads is not an error until the message ends (`last`).
fn check_utf8(data: &[u8], checked: &mut usize, last: bool) -> Result<(), Error> {
    match std::str::from_utf8(&data[*checked..]) {
        Ok(_) => {
            *checked = data.len();
            Ok(())
        }
        // `error_len() == None`: the input ends inside a character that may yet be completed.
        Err(err) if err.error_len().is_none() && !last => {
            *checked += err.valid_up_to();
            Ok(())
        }
        Err(_) => Err(Error::InvalidUtf8),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::mask::apply_mask_naive;
    use tokio_test::io::Builder;

    const LIMITS: Limits = Limits {
        max_message: 1024,
        max_frame: 0,
    };

    /// A masked client frame, as a browser would send it.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
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

    fn reader(wire: &[u8]) -> MessageReader<tokio_test::io::Mock> {
        MessageReader::new(Builder::new().read(wire).build(), &[], LIMITS, false)
    }

    async fn first_result(wire: &[u8]) -> Result<Message, Error> {
        reader(wire).read_message().await
    }

    #[tokio::test]
    async fn reads_a_masked_text_message() {
        let wire = client_frame(true, 1, b"Hello");
        assert_eq!(first_result(&wire).await, Ok(Message::Text("Hello".into())));
    }

    #[tokio::test]
    async fn a_frame_split_at_every_byte_reads_the_same() {
        let wire = client_frame(true, 1, "héllo wörld".as_bytes());
        for cut in 1..wire.len() {
            let mock = Builder::new().read(&wire[..cut]).read(&wire[cut..]).build();
            let mut r = MessageReader::new(mock, &[], LIMITS, false);
            assert_eq!(
                r.read_message().await,
                Ok(Message::Text("héllo wörld".into())),
                "cut at {cut}"
            );
        }
    }

    #[tokio::test]
    async fn bytes_read_with_the_handshake_come_first() {
        let first = client_frame(true, 1, b"pipelined");
        let second = client_frame(true, 1, b"later");
        let mock = Builder::new().read(&second).build();
        let mut r = MessageReader::new(mock, &first, LIMITS, false);
        assert_eq!(
            r.read_message().await,
            Ok(Message::Text("pipelined".into()))
        );
        assert_eq!(r.read_message().await, Ok(Message::Text("later".into())));
    }

    #[tokio::test]
    async fn several_messages_in_one_read() {
        let mut wire = client_frame(true, 1, b"one");
        wire.extend(client_frame(true, 2, b"two"));
        wire.extend(client_frame(true, 9, b"ping"));
        let mut r = reader(&wire);
        assert_eq!(r.read_message().await, Ok(Message::Text("one".into())));
        assert_eq!(
            r.read_message().await,
            Ok(Message::Binary(Bytes::from_static(b"two")))
        );
        assert_eq!(
            r.read_message().await,
            Ok(Message::Ping(Bytes::from_static(b"ping")))
        );
    }

    #[tokio::test]
    async fn reassembles_fragments_with_a_ping_between_them() {
        let mut wire = client_frame(false, 1, b"frag");
        wire.extend(client_frame(true, 9, b""));
        wire.extend(client_frame(false, 0, b"men"));
        wire.extend(client_frame(true, 0, b"ted"));
        let mut r = reader(&wire);
        assert_eq!(r.read_message().await, Ok(Message::Ping(Bytes::new())));
        assert_eq!(
            r.read_message().await,
            Ok(Message::Text("fragmented".into()))
        );
    }

    #[tokio::test]
    async fn empty_messages() {
        let mut wire = client_frame(true, 1, b"");
        wire.extend(client_frame(false, 2, b""));
        wire.extend(client_frame(true, 0, b""));
        let mut r = reader(&wire);
        assert_eq!(r.read_message().await, Ok(Message::Text(String::new())));
        assert_eq!(r.read_message().await, Ok(Message::Binary(Bytes::new())));
    }

    #[tokio::test]
    async fn close_frames() {
        let mut body = 1000u16.to_be_bytes().to_vec();
        body.extend_from_slice(b"bye");
        assert_eq!(
            first_result(&client_frame(true, 8, &body)).await,
            Ok(Message::Close(Some((1000, "bye".into()))))
        );
        assert_eq!(
            first_result(&client_frame(true, 8, b"")).await,
            Ok(Message::Close(None))
        );
        assert_eq!(
            first_result(&client_frame(true, 8, b"x")).await,
            Err(Error::BadClosePayload)
        );
        assert_eq!(
            first_result(&client_frame(true, 8, &1005u16.to_be_bytes())).await,
            Err(Error::InvalidCloseCode(1005))
        );
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.extend_from_slice(&[0xFF]);
        assert_eq!(
            first_result(&client_frame(true, 8, &bad_reason)).await,
            Err(Error::InvalidUtf8)
        );
    }

    #[tokio::test]
    async fn protocol_errors() {
        let unmasked = [0x81, 0x02, b'h', b'i'];
        assert_eq!(first_result(&unmasked).await, Err(Error::UnmaskedFrame));
        assert_eq!(
            first_result(&client_frame(true, 0, b"x")).await,
            Err(Error::UnexpectedContinuation)
        );
        let mut interleaved = client_frame(false, 1, b"a");
        interleaved.extend(client_frame(true, 1, b"b"));
        assert_eq!(
            first_result(&interleaved).await,
            Err(Error::ExpectedContinuation)
        );
        assert_eq!(
            first_result(&client_frame(true, 3, b"")).await,
            Err(Error::UnknownOpcode(3))
        );
    }

    #[tokio::test]
    async fn oversized_messages_fail_before_their_payload_arrives() {
        // Only the header is sent: the declared length alone must trigger 1009.
        let wire = client_frame(true, 2, &[0; 2000]);
        assert_eq!(first_result(&wire[..8]).await, Err(Error::MessageTooBig));
        // The same limit across fragments.
        let mut wire = client_frame(false, 2, &[0; 600]);
        wire.extend(client_frame(true, 0, &[0; 600]));
        assert_eq!(first_result(&wire).await, Err(Error::MessageTooBig));
    }

    #[tokio::test]
    async fn frame_limit() {
        let limits = Limits {
            max_message: 1024,
            max_frame: 10,
        };
        let mock = Builder::new()
            .read(&client_frame(true, 2, &[0; 11]))
            .build();
        let mut r = MessageReader::new(mock, &[], limits, false);
        assert_eq!(r.read_message().await, Err(Error::MessageTooBig));
    }

    #[tokio::test]
    async fn invalid_utf8_fails_before_the_message_ends() {
        // The first fragment already holds a byte that can never start a character; the test
        // sends nothing after it, so only an incremental check can fail here.
        let wire = client_frame(false, 1, b"ok \xFF");
        assert_eq!(first_result(&wire).await, Err(Error::InvalidUtf8));
        // A valid character split across fragments is fine.
        let euro = "€".as_bytes();
        let mut wire = client_frame(false, 1, &euro[..1]);
        wire.extend(client_frame(true, 0, &euro[1..]));
        assert_eq!(first_result(&wire).await, Ok(Message::Text("€".into())));
        // A message that ends inside a character is not.
        assert_eq!(
            first_result(&client_frame(true, 1, &euro[..2])).await,
            Err(Error::InvalidUtf8)
        );
    }

    #[tokio::test]
    async fn eof_mid_frame_is_an_io_error() {
        let wire = client_frame(true, 1, b"Hello");
        let err = first_result(&wire[..4]).await.unwrap_err();
        assert_eq!(err, Error::Io(std::io::ErrorKind::UnexpectedEof));
        assert_eq!(err.close_code(), None);
    }

    #[tokio::test]
    async fn idle_reader_holds_no_buffer() {
        let mut r = reader(&client_frame(true, 1, b"hi"));
        r.read_message().await.unwrap();
        assert_eq!(r.pending.capacity(), 0);
    }
}
