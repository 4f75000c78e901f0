//! The server's side of a connection, reading: bytes from the socket into the [`Decoder`].
//!
//! Every protocol rule lives in [`super::decoder`]; this file only moves bytes. It never writes:
//! replying to a ping or a close is the caller's decision.
//!
//! Two properties make it fit a one-task-per-connection server:
//! - **Cancel-safe.** The only `.await` is one read, and the bytes it returns are decoded, and
//!   whatever follows a finished message stored in `pending`, inside the same poll. A `select!`
//!   may drop a `read_message` future at any point and call it again later without losing a byte.
//! - **Small when idle.** Each read goes into a scratch buffer on the stack, which the decoder
//!   consumes in place: payload bytes are copied once, from the scratch into their message.
//!   Only the bytes behind a returned message (the next messages of a busy sender) are kept, in
//!   `pending`, until decoded. A quiet connection holds no buffer at all.
//!
//! Rejected: a read buffer kept per connection (what most libraries do, 4 to 128 KiB each: at
//! 10,000 quiet connections that is the server's whole memory), and reading straight into the
//! message's spare room (one copy fewer for large frames, but it would let the reader reach into
//! the decoder's message, and the copy from a cache-hot 8 KiB scratch is not where the time goes:
//! see benches/README.md).

use std::future::{poll_fn, Future};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

use super::decoder::Decoder;
use super::Error;

// Where the rest of the server has always found them.
pub use super::decoder::{Limits, Message};

/// How many bytes one read asks the socket for. It lives on the stack only during the read, so
/// it costs idle connections nothing; 8 KiB lets a busy sender's frames arrive in few reads.
const SCRATCH_SIZE: usize = 8 * 1024;

/// The reading half's state. It does not own the socket: every call that reads takes it, the
/// way tungstenite takes its stream per call, so one socket can be read and written in the same
/// `select!` (see [`super::conn::Socket`]) with no shared, reference-counted wrapper around it.
pub struct MessageReader {
    decoder: Decoder,
    /// Read but not yet decoded: the bytes behind the last message returned (and, at first, what
    /// arrived with the handshake). Empty and unallocated on a quiet connection.
    pending: BytesMut,
    /// The socket failed or reached EOF: nothing more will be read.
    io_ended: bool,
}

impl MessageReader {
    /// `already_read` holds bytes that arrived behind the handshake (hyper read them with the
    /// request headers); they are decoded before anything is read from the socket.
    pub fn new(already_read: &[u8], limits: Limits, trace: bool) -> Self {
        MessageReader {
            decoder: Decoder::new(limits, trace),
            pending: BytesMut::from(already_read),
            io_ended: false,
        }
    }

    /// Reads until one message or control frame is complete. Cancel-safe (see the module docs).
    ///
    /// After an error, or after a `Close` was returned, the connection is finished: further calls
    /// report [`Error::Io`] with `UnexpectedEof` rather than decode what the peer sends next.
    ///
    /// A plain function returning an `async move` block, not an `async fn`: this future sits in
    /// every idle connection's task, and an `async fn` would hold its arguments twice (as
    /// arguments, and as the locals its body moves them into): 16 bytes per connection.
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    pub fn read_message<'a, R: AsyncRead + Unpin + 'a>(
        &'a mut self,
        mut io: R,
    ) -> impl Future<Output = Result<Message, Error>> + 'a {
        async move {
            loop {
                if self.is_finished() {
                    return Err(Error::Io(std::io::ErrorKind::UnexpectedEof));
                }
                if !self.pending.is_empty() {
                    let mut input = &self.pending[..];
                    let decoded = self.decoder.decode(&mut input);
                    let used = self.pending.len() - input.len();
                    self.pending.advance(used);
                    self.release_idle_buffer();
                    if let Some(message) = decoded? {
                        return Ok(message);
                    }
                    // `Ok(None)`: the decoder took every pending byte; time to read.
                }
                if let Some(message) = poll_fn(|cx| self.poll_read_and_decode(&mut io, cx)).await? {
                    return Ok(message);
                }
            }
        }
    }

    /// Whether the connection is past its last message (a close, or an error).
    pub fn is_finished(&self) -> bool {
        self.io_ended || self.decoder.is_finished()
    }

    /// The handshake negotiated permessage-deflate: compressed messages are accepted (see
    /// [`Decoder::accept_compressed`]).
    pub fn accept_compressed(&mut self) {
        self.decoder.accept_compressed();
    }

    /// Reads and throws away everything until the peer closes (or the read fails).
    pub async fn discard_until_eof<R: AsyncRead + Unpin>(&mut self, io: &mut R) {
        self.pending = BytesMut::new();
        loop {
            let read = poll_fn(|cx| {
                let mut scratch = [MaybeUninit::uninit(); SCRATCH_SIZE];
                let mut buf = ReadBuf::uninit(&mut scratch);
                Pin::new(&mut *io)
                    .poll_read(cx, &mut buf)
                    .map_ok(|()| buf.filled().len())
            })
            .await;
            if !matches!(read, Ok(n) if n > 0) {
                self.io_ended = true;
                return;
            }
        }
    }

    /// One read into the stack scratch, decoded before the poll returns; keeps in `pending`
    /// whatever follows a complete message.
    ///
    /// Why not `io.read(&mut buf).await` into a buffer of the connection's: that buffer would have
    /// to live as long as the connection (a field, or a local held across the `.await`, which is
    /// stored in the connection's future), and most connections are idle most of the time. A
    /// local inside `poll_fn`'s closure exists only while this poll runs: the read either fills it
    /// and it is decoded here, or returns `Pending` and nothing in it matters.
    fn poll_read_and_decode<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<Option<Message>, Error>> {
        // Uninitialised: `ReadBuf` tracks which bytes the read filled, and zeroing 8 KiB per read
        // was most of the reader's own cost on a chat-sized message (the `roundtrip` profile).
        let mut scratch = [MaybeUninit::uninit(); SCRATCH_SIZE];
        let mut buf = ReadBuf::uninit(&mut scratch);
        if let Err(err) = ready!(Pin::new(io).poll_read(cx, &mut buf)) {
            self.io_ended = true;
            return Poll::Ready(Err(err.into()));
        }
        let mut input = buf.filled();
        if input.is_empty() {
            // EOF. Mid-message or not, the peer left without a close frame (section 7.1.5:
            // "the WebSocket Connection Close Code is considered to be 1006").
            self.io_ended = true;
            return Poll::Ready(Err(Error::Io(std::io::ErrorKind::UnexpectedEof)));
        }
        let decoded = self.decoder.decode(&mut input);
        if let Ok(Some(_)) = decoded {
            self.pending.extend_from_slice(input);
        }
        Poll::Ready(decoded)
    }

    /// Drops `pending`'s allocation once everything in it is decoded, so a quiet connection
    /// holds no read buffer (the next message behind another allocates a fresh, right-sized one).
    fn release_idle_buffer(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ws::decoder::tests::client_frame;
    use tokio_test::io::Builder;

    const LIMITS: Limits = Limits {
        max_message: 1024,
        max_frame: 0,
    };

    #[tokio::test]
    async fn a_frame_split_across_reads_at_every_byte() {
        let wire = client_frame(true, 1, "héllo wörld".as_bytes());
        for cut in 1..wire.len() {
            let mock = Builder::new().read(&wire[..cut]).read(&wire[cut..]).build();
            let (mut r, mut io) = (MessageReader::new(&[], LIMITS, false), mock);
            let expected = Message::Text("héllo wörld".into());
            assert_eq!(r.read_message(&mut io).await, Ok(expected), "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn bytes_read_with_the_handshake_come_first() {
        let first = client_frame(true, 1, b"pipelined");
        let mut second = client_frame(true, 1, b"later");
        // The handshake's leftover ends inside the second frame's header.
        let mut already = first.clone();
        already.extend_from_slice(&second[..3]);
        second.drain(..3);
        let mock = Builder::new().read(&second).build();
        let (mut r, mut io) = (MessageReader::new(&already, LIMITS, false), mock);
        assert_eq!(
            r.read_message(&mut io).await,
            Ok(Message::Text("pipelined".into()))
        );
        assert_eq!(
            r.read_message(&mut io).await,
            Ok(Message::Text("later".into()))
        );
    }

    #[tokio::test]
    async fn several_messages_in_one_read_are_returned_one_by_one() {
        let mut wire = client_frame(true, 1, b"one");
        wire.extend(client_frame(true, 2, b"two"));
        wire.extend(client_frame(true, 9, b"ping"));
        let (mut r, mut io) = (
            MessageReader::new(&[], LIMITS, false),
            Builder::new().read(&wire).build(),
        );
        assert_eq!(
            r.read_message(&mut io).await,
            Ok(Message::Text("one".into()))
        );
        assert!(
            !r.pending.is_empty(),
            "the rest of the read waits in pending"
        );
        assert_eq!(
            r.read_message(&mut io).await,
            Ok(Message::Binary(bytes::Bytes::from_static(b"two")))
        );
        assert_eq!(
            r.read_message(&mut io).await,
            Ok(Message::Ping(bytes::Bytes::from_static(b"ping")))
        );
        assert_eq!(r.pending.capacity(), 0);
    }

    /// A `select!` drops `read_message` while half a frame has arrived; the next call must still
    /// return the whole message.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_read_loses_no_bytes() {
        let wire = client_frame(true, 1, b"cancel-safe");
        let mock = Builder::new()
            .read(&wire[..1])
            .wait(Duration::from_secs(1))
            .read(&wire[1..9])
            .wait(Duration::from_secs(1))
            .read(&wire[9..])
            .build();
        let (mut r, mut io) = (MessageReader::new(&[], LIMITS, false), mock);
        for _ in 0..2 {
            let dropped =
                tokio::time::timeout(Duration::from_millis(10), r.read_message(&mut io)).await;
            assert!(dropped.is_err(), "the read should still be waiting");
        }
        assert_eq!(
            r.read_message(&mut io).await,
            Ok(Message::Text("cancel-safe".into()))
        );
    }

    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer() {
        let mut wire = client_frame(true, 1, b"hi");
        wire.extend(client_frame(true, 1, b"there"));
        // One byte came with the handshake, the rest in one read: both go through `pending`.
        let mock = Builder::new().read(&wire[1..]).build();
        let (mut r, mut io) = (MessageReader::new(&wire[..1], LIMITS, false), mock);
        assert_eq!(
            r.read_message(&mut io).await,
            Ok(Message::Text("hi".into()))
        );
        assert_eq!(
            r.read_message(&mut io).await,
            Ok(Message::Text("there".into()))
        );
        assert_eq!(r.pending.capacity(), 0);
    }

    /// The reader lives in every connection's task for the connection's whole life, so its size
    /// is part of the idle memory per connection (README: under 2 KiB). 152 bytes on a 64-bit
    /// target once the socket moved out of it; permessage-deflate added 8 (the pointer to a
    /// compressed message's inflater, `None` between messages). Growing it is a decision to
    /// make with the swarm's idle-memory figure at hand, not by accident.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn the_reader_stays_small() {
        type Reader = MessageReader;
        assert!(
            std::mem::size_of::<Reader>() <= 160,
            "{}",
            std::mem::size_of::<Reader>()
        );
    }

    #[tokio::test]
    async fn eof_mid_frame_is_an_io_error_and_finishes_the_reader() {
        let wire = client_frame(true, 1, b"Hello");
        let (mut r, mut io) = (
            MessageReader::new(&[], LIMITS, false),
            Builder::new().read(&wire[..4]).build(),
        );
        let err = r.read_message(&mut io).await.unwrap_err();
        assert_eq!(err, Error::Io(std::io::ErrorKind::UnexpectedEof));
        assert_eq!(err.close_code(), None);
        assert!(r.is_finished());
    }

    #[tokio::test]
    async fn after_a_close_or_an_error_nothing_more_is_read() {
        let mut wire = client_frame(true, 8, b"");
        wire.extend(client_frame(true, 1, b"too late"));
        let (mut r, mut io) = (
            MessageReader::new(&[], LIMITS, false),
            Builder::new().read(&wire).build(),
        );
        assert_eq!(r.read_message(&mut io).await, Ok(Message::Close(None)));
        assert!(r.is_finished());
        let err = Error::Io(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(r.read_message(&mut io).await, Err(err));

        let (mut r, mut io) = (
            MessageReader::new(&[], LIMITS, false),
            Builder::new().read(&[0x81, 0x00]).build(),
        );
        assert_eq!(r.read_message(&mut io).await, Err(Error::UnmaskedFrame));
        assert!(r.is_finished());
    }

    #[tokio::test]
    async fn discard_until_eof_reads_to_the_end() {
        let mock = Builder::new().read(b"junk").read(&[0xFF; 100]).build();
        let (mut r, mut io) = (MessageReader::new(b"more junk", LIMITS, false), mock);
        // The mock panics on drop if a scripted read was left unread.
        r.discard_until_eof(&mut io).await;
        assert!(r.is_finished());
    }
}
