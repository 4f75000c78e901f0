//! One chat connection, from welcome to close: what the chat does with a client's messages and
//! with its room's events. Everything RFC 6455 asks of every connection (pings, idle and
//! write-stall endings, budgets, the close handshake) is [`crate::ws::conn`]'s, not this file's.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

use super::channel::{Delivery, Subscription};
use super::hub::Membership;
use super::params::Params;
use super::protocol::{parse_request, ClientRequest, RequestError, ServerEvent};
use crate::auth::{self, Grant};
use crate::state::{Shared, SlotGuard};
use crate::ws::serve::{self, Data, Dropped, Session};
use crate::ws::{close_code, Deflate, Ending, Outbox, WriteStats};

/// Serves one upgraded chat connection until it closes.
///
/// A plain function returning the session's future, rather than an `async fn`: the set-up
/// (wrapping the socket, joining the room, queueing the welcome) runs now, and the future keeps
/// only what the connection needs while it lives. An `async fn` would keep its arguments *and*
/// the locals made from them for the whole connection, which idle connections pay for.
pub fn run(
    io: TcpStream,
    already_read: Vec<u8>,
    params: Params,
    grant: Option<Grant>,
    slot: SlotGuard,
    shared: Arc<Shared>,
    deflate: Option<Deflate>,
) -> impl Future<Output = ()> + Send {
    let mut ws = shared.websocket(
        io,
        &already_read,
        shared.config.max_message_size,
        slot.id,
        deflate,
    );
    // Whether frames compressed with our full window may be sent (see `ws::extensions`).
    let compress = deflate.is_some_and(|d| d.compresses());
    let info = grant.as_ref().and_then(|grant| grant.info.as_deref());
    let (membership, entry) =
        shared
            .hub
            .join_with_info(&params.room, &params.nick, info, params.since);
    shared.metrics.rooms.set(shared.hub.room_count() as i64);
    tracing::debug!(conn = slot.id, room = %params.room, nick = %params.nick, "chat connection open");
    // One frame in two pieces: this joiner's part, then the room's shared history.
    let threshold = shared.config.deflate_threshold;
    let [head, history] = compress
        .then(|| entry.welcome.deflated(threshold, &shared.metrics))
        .flatten()
        .unwrap_or_else(|| entry.welcome.plain());
    ws.writer.push(head);
    ws.writer.push(history);
    // Built here and moved in whole: built inside the block from captured parts, the parts'
    // own slots would stay in the future beside it for the life of the connection.
    let mut chat = Chat {
        shared: Arc::clone(&shared),
        conn_id: slot.id,
        membership,
        events: entry.events,
        last_typing: None,
        expires: grant.map(|grant| expiry_instant(grant.expires)),
        compress,
    };

    async move {
        // In a block of its own, so `ending` is gone before the close handshake's await: a
        // local that lived across both awaits would hold a place in the future beside the
        // serving loop's state, and every idle connection would pay for it.
        let closing = {
            let ending =
                serve::serve(&mut ws, &mut chat, &shared.chat_limits, &shared.shutdown).await;
            // Leave the room before the close handshake, which may take seconds: the others
            // should see `leave` now, and the channel should not keep events for a receiver
            // that is gone.
            tracing::debug!(conn = slot.id, room = %chat.membership.room().name(), nick = %chat.membership.nick(), ?ending, "chat connection closed");
            drop(chat);
            shared.metrics.rooms.set(shared.hub.room_count() as i64);
            // Boxed: the close handshake's state is needed once, at the end, and would
            // otherwise make every idle connection's task bigger by its size.
            Box::pin(shared.finish_websocket(&mut ws, ending, &shared.chat_limits))
        };
        closing.await;
        // Moved in whole by this `drop`: were only `slot.id` used, the block would capture just
        // that field, and the guard, with its connection slot, would be freed at once.
        drop(slot);
    }
}

/// The chat's side of one connection.
struct Chat {
    shared: Arc<Shared>,
    conn_id: u64,
    /// The connection's place in its room; dropping it leaves the room.
    membership: Membership,
    events: Subscription,
    /// When this connection's last `typing` was relayed.
    last_typing: Option<Instant>,
    /// When its token expires (authentication on): the connection is closed with
    /// [`auth::TOKEN_EXPIRED`] then.
    expires: Option<Instant>,
    /// Room events go out compressed when that pays (permessage-deflate, negotiated with our
    /// full window): each event's compressed frame is made once and shared
    /// ([`super::Encoded`]).
    compress: bool,
}

/// A token's `exp` (wall-clock time) as a deadline on the monotonic clock the timers use. Taken
/// once: should the wall clock be stepped later, the connection still ends when its token's
/// lifetime, as measured at the upgrade, has passed.
fn expiry_instant(expires: SystemTime) -> Instant {
    let left = expires
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Instant::now() + left
}

impl Session for Chat {
    type Event = Result<Delivery, RecvError>;

    fn next_event(&mut self) -> impl Future<Output = Self::Event> + Send {
        self.events.recv()
    }

    fn on_data(&mut self, data: Data, out: &mut Outbox) -> Option<Ending> {
        let text = match data {
            Data::Text(text) => text,
            Data::Binary(_) => {
                return Some(Ending::Close(
                    close_code::UNSUPPORTED_DATA,
                    "chat messages are text".into(),
                ))
            }
        };
        let shared = &*self.shared;
        shared.metrics.messages_received.inc();
        shared.metrics.bytes_in.inc_by(text.len() as u64);
        let room = self.membership.room();
        match parse_request(&text, shared.config.max_text_len) {
            Ok(ClientRequest::Message(text)) => {
                room.post(self.membership.nick(), &text);
            }
            Ok(ClientRequest::Typing) => {
                // At most one relayed `typing` per `--typing-interval`: it reaches every member,
                // so a client typing-flooding under the message rate would still multiply its
                // frames by the room's size. The rest are dropped without a reply.
                let now = Instant::now();
                let due = match self.last_typing {
                    Some(last) => now >= last + shared.config.typing_interval,
                    None => true,
                };
                if due {
                    self.last_typing = Some(now);
                    room.typing(self.membership.nick(), self.conn_id);
                }
            }
            Err(error) => out.push(ServerEvent::error(error).to_frame()),
        }
        None
    }

    /// Queues `first` and everything else already waiting, so one write carries them all.
    fn on_event(&mut self, first: Self::Event, out: &mut Outbox) -> Option<Ending> {
        let write_buffer = self.shared.config.write_buffer;
        let mut next = first;
        loop {
            match next {
                Ok(delivery) if delivery.skip.map(u64::from) != Some(self.conn_id) => {
                    let config = &self.shared.config;
                    out.push(delivery.frame.frame_for(
                        self.compress,
                        config.deflate_threshold,
                        &self.shared.metrics,
                    ))
                }
                Ok(_) => {}
                // The channel overwrote `missed` events this client had not read yet. Tell it,
                // and carry on from the oldest event still held (the documented lag policy).
                Err(RecvError::Lagged(missed)) => {
                    self.shared.metrics.lagged_events.inc_by(missed);
                    out.push(ServerEvent::Lagged { missed }.to_frame());
                }
                Err(RecvError::Closed) => {
                    return Some(Ending::Close(close_code::GOING_AWAY, "room closed".into()))
                }
            }
            if out.queued_bytes() >= write_buffer {
                return None;
            }
            next = match self.events.try_recv() {
                Ok(delivery) => Ok(delivery),
                Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
                Err(TryRecvError::Empty) => return None,
            };
        }
    }

    fn on_rate_limited(&mut self, out: &mut Outbox) {
        out.push(ServerEvent::error(RequestError::RateLimited).to_frame());
    }

    fn on_dropped(&mut self, why: Dropped) {
        self.shared.metrics.count_drop(why);
    }

    fn on_written(&mut self, stats: WriteStats) {
        self.shared.metrics.count_writes(stats);
    }

    fn expires_at(&self) -> Option<Instant> {
        self.expires
    }

    fn on_expired(&mut self) -> Ending {
        Ending::Close(auth::TOKEN_EXPIRED, "token expired".into())
    }
}
