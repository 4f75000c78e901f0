//! `/echo`: every data message straight back. The endpoint the Autobahn|Testsuite talks to, so
//! the protocol code can be judged without the chat on top of it.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::state::{Shared, SlotGuard};
use crate::ws::{close_code, encode_frame, Ending, Message, OpCode, WebSocket};

pub async fn run<S>(io: S, already_read: Vec<u8>, slot: SlotGuard, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let config = &shared.config;
    let mut ws = shared.websocket(io, &already_read, config.echo_max_message_size);
    drop(already_read);
    tracing::debug!(conn = slot.id, "echo connection open");
    let ending = serve(&mut ws, &shared).await;
    if let Some(code) = Box::pin(ws.finish(ending.clone(), config.close_timeout)).await {
        shared
            .metrics
            .close_codes_sent
            .with_label_values(&[&code.to_string()])
            .inc();
    }
    tracing::debug!(conn = slot.id, ?ending, "echo connection closed");
}

async fn serve<S>(ws: &mut WebSocket<S>, shared: &Shared) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &shared.config;
    let mut idle_deadline = Instant::now() + config.idle_timeout;
    loop {
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => {
                return Ending::Close(close_code::GOING_AWAY, "server shutting down".into());
            }
            // Read only while the echoes of earlier messages fit the write buffer: a peer that
            // sends without reading cannot make us queue without bound.
            read = ws.reader.read_message(), if ws.writer.queued_bytes() < config.write_buffer => {
                idle_deadline = Instant::now() + config.idle_timeout;
                match read {
                    Ok(Message::Text(text)) => ws.writer.push(encode_frame(OpCode::Text, text.as_bytes())),
                    Ok(Message::Binary(data)) => ws.writer.push(encode_frame(OpCode::Binary, &data)),
                    Ok(Message::Ping(payload)) => ws.writer.push(encode_frame(OpCode::Pong, &payload)),
                    Ok(Message::Pong(_)) => {}
                    Ok(Message::Close(received)) => {
                        // Send what was echoed before the close (section 5.5.1 allows the
                        // endpoint to finish sending its current message first).
                        let _ = ws.writer.flush().await;
                        return Ending::PeerClosed(received);
                    }
                    Err(err) => {
                        let _ = ws.writer.flush().await;
                        return err.into();
                    }
                }
            }
            written = ws.writer.flush(), if !ws.writer.is_empty() => {
                if written.is_err() {
                    return Ending::Gone("write failed");
                }
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                return Ending::Close(close_code::GOING_AWAY, "idle timeout".into());
            }
        }
    }
}
