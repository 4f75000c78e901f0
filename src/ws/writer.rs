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
use std::future::{poll_fn, Future};
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
    /// `write_vectored` calls that wrote something. (Counts are taken after every turn of the
    /// serving loop, so 32 bits are plenty, and this struct lives in every connection.)
    pub writes: u32,
    /// Buffers completely written: frames, except that [`Outbox::push_message`] queues two.
    pub frames: u32,
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
        let header = FrameHeader::server(opcode, payload.len());
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

/// The writing half's state: the outbox and its counters. Like [`super::reader::MessageReader`],
/// it takes the socket per call rather than owning it.
pub struct FrameWriter {
    pub outbox: Outbox,
    stats: WriteStats,
}

impl FrameWriter {
    pub fn new(trace: bool) -> Self {
        FrameWriter {
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

    /// Writes until the queue is empty. Cancel-safe: progress is recorded after every write,
    /// so a dropped `flush` loses nothing and the next one resumes mid-frame.
    ///
    /// A plain function returning an `async move` block, for the reason
    /// [`super::reader::MessageReader::read_message`] is one.
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    pub fn flush<'a, W: AsyncWrite + Unpin + 'a>(
        &'a mut self,
        mut io: W,
    ) -> impl Future<Output = io::Result<()>> + 'a {
        async move {
            while !self.outbox.queue.is_empty() {
                let written = poll_fn(|cx| {
                    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                    let count = self.outbox.queue.len().min(MAX_IOVECS);
                    for (slice, frame) in slices.iter_mut().zip(&self.outbox.queue) {
                        *slice = IoSlice::new(frame);
                    }
                    Pin::new(&mut io).poll_write_vectored(cx, &slices[..count])
                })
                .await?;
                if written == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                self.advance(written);
            }
            Ok(())
        }
    }

    /// Writes the queue, then shuts down the sending direction (TCP FIN).
    pub async fn shutdown<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> io::Result<()> {
        self.flush(&mut *io).await?;
        io.shutdown().await
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
mod tests;
