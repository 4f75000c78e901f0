//! The server's side of a connection, writing: a queue of encoded frames and one vectored write
//! for as many of them as the socket will take.
//!
//! Frames arrive already encoded (`Bytes`), often shared by every subscriber of a room: the
//! writer never copies or re-encodes them, it only tracks how far into the front frame the
//! socket has got. Draining the whole queue with `write_vectored` means a client with ten
//! frames waiting costs one system call, not ten.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::frame::FrameHeader;
use super::trace::{trace_frame, Direction};

/// Most frames handed to one `write_vectored` call (Linux allows 1024 iovecs; beyond a few dozen
/// the socket buffer, not the call count, is the limit).
const MAX_IOVECS: usize = 64;

/// Counters a session turns into metrics: how well writes were batched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// `write_vectored` calls that wrote something.
    pub writes: u64,
    /// Frames completely written.
    pub frames: u64,
    pub bytes: u64,
}

pub struct FrameWriter<W> {
    io: W,
    /// Frames not yet fully written; the front one may be partly written (already advanced).
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    trace: bool,
    stats: WriteStats,
}

impl<W> FrameWriter<W> {
    pub fn new(io: W, trace: bool) -> Self {
        FrameWriter {
            io,
            queue: VecDeque::new(),
            queued_bytes: 0,
            trace,
            stats: WriteStats::default(),
        }
    }

    /// Queues one complete encoded frame. Nothing is written until [`flush`](Self::flush).
    pub fn push(&mut self, frame: Bytes) {
        if self.trace {
            if let Ok(Some((header, len))) = FrameHeader::parse(&frame) {
                trace_frame(Direction::Out, &header, &frame[len..]);
            }
        }
        self.queued_bytes += frame.len();
        self.queue.push_back(frame);
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
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
        while !self.queue.is_empty() {
            let written = poll_fn(|cx| {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let count = self.queue.len().min(MAX_IOVECS);
                for (slice, frame) in slices.iter_mut().zip(&self.queue) {
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
        self.queued_bytes -= written;
        while written > 0 {
            let front = self.queue.front_mut().expect("wrote more than was queued");
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.queue.pop_front();
            self.stats.frames += 1;
        }
        // An idle connection keeps no queue storage (one allocation per busy batch is far
        // cheaper than the write it follows).
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
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
