//! One connection's two ends: opening it (a TCP socket, maybe bound to a source address, then
//! the WebSocket handshake) and the close frame it ends with; and the short kinds every failure
//! is tallied under.
//!
//! Failures become a short kind (`refused`, `ports`, `http_503`, ...) rather than the error
//! itself: ten thousand identical errors are one line of the report, and
//! [`limits::advice`](crate::limits::advice) turns the kinds that mean "a limit was hit" into a
//! sentence each.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_util::stream::SplitSink;
use futures_util::{Sink, SinkExt, StreamExt};

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::cli::Protocol;
use crate::setup::Setup;

/// A client's WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// Why a connect attempt failed, as a short kind for the tally and the advice in the report.
#[derive(Debug)]
pub struct ConnectError(pub String);

impl ConnectError {
    fn io(e: &io::Error) -> ConnectError {
        let kind = match e.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => "files",
            Some(libc::EADDRNOTAVAIL) | Some(libc::EADDRINUSE) => "ports",
            Some(libc::ENOMEM) | Some(libc::ENOBUFS) => "memory",
            Some(libc::ECONNREFUSED) => "refused",
            Some(libc::ECONNRESET) | Some(libc::EPIPE) => "reset",
            Some(libc::ETIMEDOUT) => "timeout",
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => "unreachable",
            _ => match e.kind() {
                io::ErrorKind::UnexpectedEof => "reset",
                _ => "io",
            },
        };
        ConnectError(kind.into())
    }

    fn ws(e: &WsError) -> ConnectError {
        match e {
            WsError::Io(e) => ConnectError::io(e),
            WsError::Http(resp) => ConnectError(format!("http_{}", resp.status().as_u16())),
            _ => ConnectError("handshake".into()),
        }
    }
}

/// Opens client `i`'s connection: a TCP socket bound to its source address if any, then the
/// WebSocket handshake on it.
pub async fn connect(setup: &Setup, i: usize) -> Result<Ws, ConnectError> {
    let io_err = |e: io::Error| ConnectError::io(&e);
    let target = setup.targets.server_of(i).addr;
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io_err)?;
    if !setup.source_addrs.is_empty() {
        let ip = setup.source_addrs[i % setup.source_addrs.len()];
        // Port 0: the kernel picks a free ephemeral port for this source address, so each
        // address brings its own ~28,000 ports.
        socket.bind(SocketAddr::new(ip, 0)).map_err(io_err)?;
    }
    if setup.plan.role(i).slow && setup.slow_reader_rcvbuf > 0 {
        // Set before connecting, so the window offered in the handshake is already small.
        socket
            .set_recv_buffer_size(setup.slow_reader_rcvbuf)
            .map_err(io_err)?;
    }
    let stream = socket.connect(target).await.map_err(io_err)?;
    // Small messages must leave at once: Nagle would add up to 40 ms to a measured latency.
    stream.set_nodelay(true).map_err(io_err)?;
    let url = setup.url_for(i);
    let (mut ws, _response) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(setup.ws_config))
            .await
            .map_err(|e| ConnectError::ws(&e))?;
    if setup.protocol == Protocol::Socketio {
        socketio_connect(&mut ws).await?;
    }
    Ok(ws)
}

/// Socket.IO's own handshake after the WebSocket one: the server's open packet (`0{...}`), our
/// `CONNECT` to the default namespace (`40`), the server's answer (`40{"sid":...}`). The welcome
/// that follows is read and counted like any other event.
async fn socketio_connect(ws: &mut Ws) -> Result<(), ConnectError> {
    let fail = |kind: &str| ConnectError(format!("socketio_{kind}"));
    let open = next_text(ws).await?;
    if !open.starts_with('0') {
        return Err(fail("open"));
    }
    ws.send(Message::text("40"))
        .await
        .map_err(|e| ConnectError::ws(&e))?;
    loop {
        let answer = next_text(ws).await?;
        if answer == "2" {
            // The server's heartbeat may come first on a slow connect: answer it.
            ws.send(Message::text("3"))
                .await
                .map_err(|e| ConnectError::ws(&e))?;
            continue;
        }
        return match answer.starts_with("40") {
            true => Ok(()),
            false => Err(fail("connect")),
        };
    }
}

/// The next text frame, for [`socketio_connect`].
async fn next_text(ws: &mut Ws) -> Result<String, ConnectError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(e)) => return Err(ConnectError::ws(&e)),
            _ => return Err(ConnectError("socketio_closed".into())),
        }
    }
}

/// The writing half of a `--protocol socketio` client, shared by its sender task and its reader
/// (which answers the server's pings). Each `Sink` call borrows the half only for that call,
/// never across an `.await`, and the client's tasks share one thread, so the two never meet.
#[derive(Clone)]
pub struct SharedSink(Rc<RefCell<SplitSink<Ws, Message>>>);

impl SharedSink {
    pub fn new(sink: SplitSink<Ws, Message>) -> SharedSink {
        SharedSink(Rc::new(RefCell::new(sink)))
    }
}

impl Sink<Message> for SharedSink {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.0.borrow_mut().poll_ready_unpin(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        self.0.borrow_mut().start_send_unpin(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.0.borrow_mut().poll_flush_unpin(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.0.borrow_mut().poll_close_unpin(cx)
    }
}

/// The close frame the swarm ends with: 1000, normal closure (RFC 6455 section 7.4.1).
pub fn normal_close() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }
}

/// A short kind for a read error.
pub fn error_kind(e: &WsError) -> String {
    match e {
        WsError::Io(e) => ConnectError::io(e).0,
        WsError::Protocol(_) => "protocol".into(),
        WsError::Capacity(_) => "capacity".into(),
        WsError::Utf8(_) => "utf8".into(),
        WsError::AlreadyClosed | WsError::ConnectionClosed => "closed".into(),
        _ => "other".into(),
    }
}
