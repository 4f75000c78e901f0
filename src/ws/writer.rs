//! The server's side of a connection, writing: a queue of encoded frames ([`Outbox`]) and one
//! vectored write for as many of them as the socket will take ([`FrameWriter`]).
//!
//! Frames arrive already encoded (`Bytes`), often shared by every subscriber of a room: the
//! writer never copies or re-encodes them, it only tracks how far into the front frame the
//! socket has got. Draining the queue with `write_vectored` means a client with ten frames
//! waiting costs one system call, not ten (up to [`MAX_IOVECS`] frames per call).
//!
//! The queue is its own type so a session can be handed `&mut Outbox` to queue replies without
//! knowing what socket lies underneath (and without being able to write to it).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::frame::{FrameHeader, OpCode};
use super::trace;

/// Most frames handed to one `write_vectored` call (Linux allows 1024 iovecs; beyond a few dozen
/// the socket buffer, not the call count, is the limit).
pub const MAX_IOVECS: usize = 64;

/// Counters a session turns into metrics: how well writes were batched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// `write_vectored` calls that wrote something.
    pub writes: u64,
    /// Buffers completely written: frames, except that [`Outbox::push_message`] queues two.
    pub frames: u64,
    pub bytes: u64,
}

/// Frames waiting to be written, in order. The front one may be partly written already.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    /// `Some` only on a connection `--trace-frames` follows: a pointer's worth of room, the
    /// same as the `bool` it replaced once padding is counted, so untraced connections pay
    /// nothing for it.
    trace: Option<Box<OutTrace>>,
}

/// What the trace of a connection's writes needs: a frame's header is gone from the queue once
/// its first bytes are written, so its description is made when it is queued and logged when
/// the write that carries its last byte returns.
#[derive(Debug, Default)]
struct OutTrace {
    /// One entry per buffer in the queue, in step with it: the frame's trace line on the
    /// buffer that ends the frame, `None` on a buffer that does not (a message's header).
    lines: VecDeque<Option<String>>,
    /// Write calls that wrote something, from 1.
    writes: u64,
    /// Bytes of the last frame pushed that are still to come in later pushes (a frame queued in
    /// pieces, like the chat's welcome: its own part, then the room's shared history).
    rest_of_frame: u64,
}

impl OutTrace {
    /// Records one pushed buffer: a whole frame, the start of one, or the next piece of one.
    fn pushed(&mut self, buffer: &[u8]) {
        if self.rest_of_frame > 0 {
            // A continuation: the frame's line moves to the buffer that now ends it.
            self.rest_of_frame = self.rest_of_frame.saturating_sub(buffer.len() as u64);
            let line = self.lines.back_mut().and_then(Option::take);
            self.lines.push_back(line);
            return;
        }
        let line = match FrameHeader::parse(buffer) {
            Ok(Some((header, len))) => {
                let whole = len as u64 + header.payload_len;
                self.rest_of_frame = whole.saturating_sub(buffer.len() as u64);
                let end = buffer.len().min(len + header.payload_len as usize);
                trace::describe(&header, &buffer[len..end])
            }
            _ => format!("{} bytes that are not a frame", buffer.len()),
        };
        self.lines.push_back(Some(line));
    }
}

impl Outbox {
    /// Queues one encoded frame, or the next piece of one (a frame's pieces are pushed one
    /// after the other). Nothing is written until the writer flushes.
    pub fn push(&mut self, frame: Bytes) {
        if let Some(out) = &mut self.trace {
            out.pushed(&frame);
        }
        self.queued_bytes += frame.len();
        self.queue.push_back(frame);
    }

    /// Queues a whole unfragmented message whose payload is already in a buffer of its own (an
    /// echo): the header goes in a small buffer and the payload is shared, not copied, so a
    /// 16 MiB echo costs 16 MiB, not 32.
    pub fn push_message(&mut self, opcode: OpCode, payload: Bytes) {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut encoded = BytesMut::with_capacity(header.encoded_len());
        header.encode(&mut encoded);
        if let Some(out) = &mut self.trace {
            let line = trace::describe(&header, &payload);
            if payload.is_empty() {
                out.lines.push_back(Some(line));
            } else {
                out.lines.push_back(None);
                out.lines.push_back(Some(line));
            }
        }
        self.queued_bytes += encoded.len() + payload.len();
        self.queue.push_back(encoded.freeze());
        if !payload.is_empty() {
            self.queue.push_back(payload);
        }
    }

    /// Bytes queued and not yet written: what the connection's write budget is measured against.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

pub struct FrameWriter<W> {
    io: W,
    pub outbox: Outbox,
    stats: WriteStats,
}

impl<W> FrameWriter<W> {
    pub fn new(io: W, trace: bool) -> Self {
        FrameWriter {
            io,
            outbox: Outbox {
                trace: trace.then(Box::default),
                ..Outbox::default()
            },
            stats: WriteStats::default(),
        }
    }

    /// Queues one complete encoded frame (see [`Outbox::push`]).
    pub fn push(&mut self, frame: Bytes) {
        self.outbox.push(frame);
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.queued_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.outbox.queue.is_empty()
    }

    /// Counters since the last call (and resets them).
    pub fn take_stats(&mut self) -> WriteStats {
        std::mem::take(&mut self.stats)
    }
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes until the queue is empty. Cancel-safe: progress is recorded after every write,
    /// so a dropped `flush` loses nothing and the next one resumes mid-frame.
    pub async fn flush(&mut self) -> io::Result<()> {
        while !self.outbox.queue.is_empty() {
            let written = poll_fn(|cx| {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let count = self.outbox.queue.len().min(MAX_IOVECS);
                for (slice, frame) in slices.iter_mut().zip(&self.outbox.queue) {
                    *slice = IoSlice::new(frame);
                }
                Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count])
            })
            .await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.advance(written);
        }
        Ok(())
    }

    /// Writes the queue, then shuts down the sending direction (TCP FIN).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.io.shutdown().await
    }

    /// Drops `written` bytes from the front of the queue.
    fn advance(&mut self, mut written: usize) {
        self.stats.writes += 1;
        self.stats.bytes += written as u64;
        let outbox = &mut self.outbox;
        outbox.queued_bytes -= written;
        let total = written;
        let mut completed = 0;
        while written > 0 {
            let Some(front) = outbox.queue.front_mut() else {
                // A socket never reports more than it was given; if one did, there is
                // nothing left to account it to.
                break;
            };
            if written < front.len() {
                front.advance(written);
                break;
            }
            written -= front.len();
            outbox.queue.pop_front();
            self.stats.frames += 1;
            completed += 1;
        }
        if let Some(out) = &mut outbox.trace {
            trace_completed(out, total, completed);
        }
        // An idle connection keeps no queue storage (one allocation per busy batch is far
        // cheaper than the write it follows).
        if outbox.queue.is_empty() {
            outbox.queue = VecDeque::new();
        }
    }
}

/// Logs one write and the frames whose last byte it carried (`completed` buffers popped).
fn trace_completed(out: &mut OutTrace, bytes: usize, completed: usize) {
    out.writes += 1;
    let lines: Vec<String> = out.lines.drain(..completed).flatten().collect();
    trace::trace_write(out.writes, bytes, lines.len());
    for line in &lines {
        trace::trace_written(line, out.writes);
    }
    if out.lines.is_empty() {
        out.lines = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{encode_frame, OpCode};
    use tokio_test::io::Builder;

    #[tokio::test]
    async fn queued_frames_go_out_in_order_across_partial_writes() {
        let a = encode_frame(OpCode::Text, b"first");
        let b = encode_frame(OpCode::Text, b"second");
        let all: Vec<u8> = [&a[..], &b[..]].concat();
        // The mock accepts at most the bytes of each `write` it expects, so this splits the
        // two frames at an awkward place: 3 bytes, then the rest.
        let mock = Builder::new().write(&all[..3]).write(&all[3..]).build();
        let mut writer = FrameWriter::new(mock, false);
        writer.push(a);
        writer.push(b);
        assert_eq!(writer.queued_bytes(), all.len());
        writer.flush().await.unwrap();
        assert!(writer.is_empty());
        assert_eq!(writer.queued_bytes(), 0);
        let stats = writer.take_stats();
        assert_eq!(stats.frames, 2);
        assert_eq!(stats.bytes, all.len() as u64);
    }

    #[tokio::test]
    async fn a_message_queued_in_two_parts_is_one_frame_on_the_wire() {
        let payload = Bytes::from_static(b"shared payload");
        let expected = encode_frame(OpCode::Binary, &payload);
        let mock = Builder::new().write(&expected).build();
        let mut writer = FrameWriter::new(mock, false);
        writer.outbox.push_message(OpCode::Binary, payload);
        assert_eq!(writer.queued_bytes(), expected.len());
        writer.flush().await.unwrap();
    }

    /// Runs `f` with the trace going to a string, and returns what it logged.
    async fn traced<F: std::future::Future<Output = ()>>(f: F) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Log(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Log {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        f.await;
        let bytes = log.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// A socket that takes at most `takes[i]` bytes in its `i`th write, gathering across the
    /// buffers of a vectored write as a real socket does (`tokio_test`'s mock writes only the
    /// first buffer of a vectored write, so it cannot show batching).
    struct Socket {
        takes: VecDeque<usize>,
        written: Vec<u8>,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            let mut take = self.takes.pop_front().expect("an expected write");
            let before = self.written.len();
            for buf in bufs {
                let n = take.min(buf.len());
                self.written.extend_from_slice(&buf[..n]);
                take -= n;
            }
            std::task::Poll::Ready(Ok(self.written.len() - before))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_trace_shows_which_write_carried_each_frame() {
        let frames = [b"one".as_slice(), b"two", b"three"].map(|t| encode_frame(OpCode::Text, t));
        let last = encode_frame(OpCode::Text, b"four");
        // Three frames in one write, then a fourth frame split across two.
        let socket = Socket {
            takes: VecDeque::from([17, 3, 3]),
            written: Vec::new(),
        };
        let log = traced(async {
            let mut writer = FrameWriter::new(socket, true);
            for frame in frames {
                writer.push(frame);
            }
            writer.flush().await.unwrap();
            writer.push(last);
            writer.flush().await.unwrap();
            assert_eq!(writer.io.written.len(), 23);
        })
        .await;
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 7, "{log}");
        assert!(
            lines[0].contains("write #1: 17 bytes, 3 frames complete"),
            "{log}"
        );
        for (line, text) in lines[1..4].iter().zip(["one", "two", "three"]) {
            assert!(line.contains(&format!("|{text}| (write #1)")), "{log}");
        }
        assert!(
            lines[4].contains("write #2: 3 bytes, 0 frames complete"),
            "{log}"
        );
        assert!(
            lines[5].contains("write #3: 3 bytes, 1 frame complete"),
            "{log}"
        );
        assert!(lines[6].contains("|four| (write #3)"), "{log}");
    }

    #[tokio::test]
    async fn a_frame_queued_in_pieces_is_traced_once_when_its_last_piece_is_written() {
        let frame = encode_frame(OpCode::Text, b"head and tail");
        let after = encode_frame(OpCode::Text, b"next");
        let socket = Socket {
            takes: VecDeque::from([frame.len() - 2, 2 + after.len()]),
            written: Vec::new(),
        };
        let log = traced(async {
            let mut writer = FrameWriter::new(socket, true);
            writer.push(frame.slice(..7));
            writer.push(frame.slice(7..));
            writer.push(after);
            writer.flush().await.unwrap();
        })
        .await;
        let lines: Vec<&str> = log.lines().collect();
        // The preview is of the first piece (all the trace saw of the payload at the header).
        assert_eq!(lines.len(), 4, "{log}");
        assert!(
            lines[0].contains("write #1: 13 bytes, 0 frames complete"),
            "{log}"
        );
        assert!(
            lines[1].contains("write #2: 8 bytes, 2 frames complete"),
            "{log}"
        );
        assert!(lines[2].contains("len=13 |head | (write #2)"), "{log}");
        assert!(lines[3].contains("|next| (write #2)"), "{log}");
    }

    #[test]
    fn tracing_adds_nothing_to_an_untraced_outbox() {
        // Every connection holds an `Outbox`: the trace state must cost no more than a pointer
        // beside the queue and its count (it is `None` on an untraced connection).
        assert!(
            std::mem::size_of::<Outbox>()
                <= std::mem::size_of::<VecDeque<Bytes>>() + 2 * std::mem::size_of::<usize>()
        );
    }

    #[tokio::test]
    async fn untraced_writers_log_nothing() {
        let mock = Builder::new()
            .write(&encode_frame(OpCode::Text, b"x"))
            .build();
        let log = traced(async {
            let mut writer = FrameWriter::new(mock, false);
            writer.push(encode_frame(OpCode::Text, b"x"));
            writer.flush().await.unwrap();
            assert!(writer.outbox.trace.is_none());
        })
        .await;
        assert_eq!(log, "");
    }

    #[tokio::test]
    async fn write_errors_surface() {
        let mock = Builder::new()
            .write_error(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
            .build();
        let mut writer = FrameWriter::new(mock, false);
        writer.push(encode_frame(OpCode::Text, b"x"));
        assert_eq!(
            writer.flush().await.unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }
}
