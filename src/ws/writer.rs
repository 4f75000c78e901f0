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
use super::trace::{trace_frame, Direction};

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
    trace: bool,
}

impl Outbox {
    /// Queues one complete encoded frame. Nothing is written until the writer flushes.
    pub fn push(&mut self, frame: Bytes) {
        if self.trace {
            if let Ok(Some((header, len))) = FrameHeader::parse(&frame) {
                trace_frame(Direction::Out, &header, &frame[len..]);
            }
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
        if self.trace {
            trace_frame(Direction::Out, &header, &payload);
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
                trace,
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
        while written > 0 {
            let Some(front) = outbox.queue.front_mut() else {
                // A socket never reports more than it was given; if one did, there is
                // nothing left to account it to.
                break;
            };
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            outbox.queue.pop_front();
            self.stats.frames += 1;
        }
        // An idle connection keeps no queue storage (one allocation per busy batch is far
        // cheaper than the write it follows).
        if outbox.queue.is_empty() {
            outbox.queue = VecDeque::new();
        }
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
