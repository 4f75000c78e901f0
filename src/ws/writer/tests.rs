//! The writer: order across partial writes, errors, pieces of a frame, the trace of writes.

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
    let (mut writer, mut io) = (FrameWriter::new(false), mock);
    writer.push(a);
    writer.push(b);
    assert_eq!(writer.queued_bytes(), all.len());
    writer.flush(&mut io).await.unwrap();
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
    let (mut writer, mut io) = (FrameWriter::new(false), mock);
    writer.outbox.push_message(OpCode::Binary, payload);
    assert_eq!(writer.queued_bytes(), expected.len());
    writer.flush(&mut io).await.unwrap();
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
        let (mut writer, mut io) = (FrameWriter::new(true), socket);
        for frame in frames {
            writer.push(frame);
        }
        writer.flush(&mut io).await.unwrap();
        writer.push(last);
        writer.flush(&mut io).await.unwrap();
        assert_eq!(io.written.len(), 23);
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
        let (mut writer, mut io) = (FrameWriter::new(true), socket);
        writer.push(frame.slice(..7));
        writer.push(frame.slice(7..));
        writer.push(after);
        writer.flush(&mut io).await.unwrap();
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
        let (mut writer, mut io) = (FrameWriter::new(false), mock);
        writer.push(encode_frame(OpCode::Text, b"x"));
        writer.flush(&mut io).await.unwrap();
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
    let (mut writer, mut io) = (FrameWriter::new(false), mock);
    writer.push(encode_frame(OpCode::Text, b"x"));
    assert_eq!(
        writer.flush(&mut io).await.unwrap_err().kind(),
        io::ErrorKind::BrokenPipe
    );
}
