//! One connection's two ends: opening it (a TCP socket, maybe bound to a source address, then
//! the WebSocket handshake) and the close frame it ends with; and the short kinds every failure
//! is tallied under.
//!
//! Failures become a short kind (`refused`, `ports`, `http_503`, ...) rather than the error
//! itself: ten thousand identical errors are one line of the report, and
//! [`limits::advice`](crate::limits::advice) turns the kinds that mean "a limit was hit" into a
//! sentence each.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

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
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(setup.ws_config))
            .await
            .map_err(|e| ConnectError::ws(&e))?;
    Ok(ws)
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
