//! A WebSocket connection: the reader and writer halves of one upgraded socket, and the close
//! handshake, which needs both. What a connection does while it is open (pongs, pings, timeouts,
//! budgets) is [`super::serve`].
//!
//! The socket and the two halves' state are public fields so the serving loop can `select!` on
//! reading and writing at once: it borrows the socket's two directions apart ([`Socket::halves`])
//! and hands one to the reader, the other to the writer, each per call.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{tcp, TcpStream};

use super::frame::{encode_close, encode_frame, OpCode};
use super::reader::{Limits, Message, MessageReader};
use super::writer::FrameWriter;

/// How a session's loop ended, and so how its connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The peer sent a close frame (with its code and reason, if any): answer it.
    PeerClosed(Option<(u16, String)>),
    /// We close, with this code and reason.
    Close(u16, String),
    /// The socket is gone or unusable (reset, EOF, stalled writes): just drop it.
    Gone(&'static str),
}

impl From<super::Error> for Ending {
    /// A read error becomes the close its variant calls for (section 7.1.7: _Fail the
    /// WebSocket Connection_), or nothing if the socket itself failed.
    fn from(err: super::Error) -> Self {
        match err.close_code() {
            Some(code) => Ending::Close(code, err.to_string()),
            None => Ending::Gone("connection lost"),
        }
    }
}

/// A socket whose reading and writing directions can be borrowed apart, for as long as one
/// turn of the serving loop: the reader waits on one while the writer writes the other.
///
/// Rejected: `tokio::io::split`, which puts the socket behind a reference-counted lock (an
/// allocation of about 80 bytes per connection, and a lock taken on every read and write) so
/// that the halves can be owned apart. Borrowed halves cost nothing: a `TcpStream` reads and
/// writes through a shared reference.
pub trait Socket {
    type Read<'a>: AsyncRead + Unpin
    where
        Self: 'a;
    type Write<'a>: AsyncWrite + Unpin
    where
        Self: 'a;
    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>);
}

impl Socket for TcpStream {
    type Read<'a> = tcp::ReadHalf<'a>;
    type Write<'a> = tcp::WriteHalf<'a>;
    fn halves(&mut self) -> (tcp::ReadHalf<'_>, tcp::WriteHalf<'_>) {
        self.split()
    }
}

/// Two halves owned apart, as `tokio::io::split` returns them: how unit tests drive a
/// connection with a scripted `tokio_test::io::Mock`.
impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Socket for (R, W) {
    type Read<'a>
        = &'a mut R
    where
        Self: 'a;
    type Write<'a>
        = &'a mut W
    where
        Self: 'a;
    fn halves(&mut self) -> (&mut R, &mut W) {
        (&mut self.0, &mut self.1)
    }
}

pub struct WebSocket<S> {
    pub io: S,
    pub reader: MessageReader,
    pub writer: FrameWriter,
}

impl<S: Socket> WebSocket<S> {
    /// Wraps an upgraded connection. `already_read`: bytes the HTTP layer read past the
    /// handshake, which belong to the first frame.
    pub fn new(io: S, already_read: &[u8], limits: Limits, trace: bool) -> Self {
        WebSocket {
            io,
            reader: MessageReader::new(already_read, limits, trace),
            writer: FrameWriter::new(trace),
        }
    }

    /// Reads the next message (see [`MessageReader::read_message`]).
    pub async fn read_message(&mut self) -> Result<Message, super::Error> {
        let (mut read, _) = self.io.halves();
        self.reader.read_message(&mut read).await
    }

    /// Closes the connection the way `ending` calls for. Returns the close code sent, if any.
    pub async fn finish(&mut self, ending: Ending, timeout: Duration) -> Option<u16> {
        match ending {
            Ending::PeerClosed(received) => {
                let code = received.as_ref().map(|(code, _)| *code);
                self.answer_close(received, timeout).await;
                code
            }
            Ending::Close(code, reason) => {
                self.close(code, &reason, timeout).await;
                Some(code)
            }
            Ending::Gone(_) => None,
        }
    }

    /// Answers a close frame from the peer and closes the TCP connection.
    ///
    /// Section 5.5.1: "the endpoint MUST send a Close frame in response ... typically echoing the
    /// status code it received". Section 7.1.1: the server should close TCP first.
    pub async fn answer_close(&mut self, received: Option<(u16, String)>, timeout: Duration) {
        let frame = match received {
            Some((code, _)) => encode_close(code, ""),
            None => encode_frame(OpCode::Close, b""),
        };
        self.writer.push(frame);
        let (_, mut write) = self.io.halves();
        let _ = tokio::time::timeout(timeout, self.writer.shutdown(&mut write)).await;
    }

    /// Starts the close handshake with `code`, waits up to `timeout` for the peer's answer, then
    /// closes the TCP connection.
    ///
    /// After a protocol error the reader is finished: then, instead of waiting for a close frame,
    /// it reads and discards until the peer hangs up. Dropping a socket with unread input makes
    /// the kernel send a reset, which can destroy our close frame before the peer reads it.
    pub async fn close(&mut self, code: u16, reason: &str, timeout: Duration) {
        self.writer.push(encode_close(code, reason));
        let (mut read, mut write) = self.io.halves();
        let handshake = async {
            if self.writer.flush(&mut write).await.is_err() {
                return;
            }
            if self.reader.is_finished() {
                let _ = self.writer.shutdown(&mut write).await;
                self.reader.discard_until_eof(&mut read).await;
                return;
            }
            while let Ok(message) = self.reader.read_message(&mut read).await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
            let _ = self.writer.shutdown(&mut write).await;
        };
        let _ = tokio::time::timeout(timeout, handshake).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::masked_client_frame;
    use crate::ws::Error;
    use tokio_test::io::Builder;
    const LIMITS: Limits = Limits {
        max_message: 1024,
        max_frame: 0,
    };

    fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        masked_client_frame(opcode, payload)
    }

    fn masked_close(code: u16) -> Vec<u8> {
        masked(OpCode::Close, &code.to_be_bytes())
    }

    #[tokio::test]
    async fn answers_a_close_by_echoing_its_code() {
        let mock = Builder::new()
            .read(&masked_close(1000))
            .write(&encode_close(1000, ""))
            .build();
        let mut ws = WebSocket::new(tokio::io::split(mock), &[], LIMITS, false);
        let received = match ws.read_message().await {
            Ok(Message::Close(received)) => received,
            other => panic!("expected close, got {other:?}"),
        };
        ws.answer_close(received, Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn server_close_waits_for_the_peer_answer() {
        let mock = Builder::new()
            .write(&encode_close(1001, "bye"))
            .read(&masked_close(1001))
            .build();
        let mut ws = WebSocket::new(tokio::io::split(mock), &[], LIMITS, false);
        ws.close(1001, "bye", Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn a_protocol_error_is_answered_with_its_code() {
        // An unmasked frame: the reader fails, the close frame carries 1002.
        let mock = Builder::new()
            .read(&[0x81, 0x00])
            .write(&encode_close(1002, "client frame not masked"))
            .build();
        let mut ws = WebSocket::new(tokio::io::split(mock), &[], LIMITS, false);
        let err = ws.read_message().await.unwrap_err();
        assert_eq!(err, Error::UnmaskedFrame);
        ws.close(
            err.close_code().unwrap(),
            &err.to_string(),
            Duration::from_secs(1),
        )
        .await;
    }
}
