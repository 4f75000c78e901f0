//! One native chat connection, from welcome to close: what the chat does with a client's JSON
//! messages and with its room's events. Everything RFC 6455 asks of every connection (pings, idle
//! and write-stall endings, budgets, the close handshake) is [`crate::ws::serve`]'s; what any
//! member of a room does, whatever it speaks, is [`super::member`]'s.

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::channel::Delivery;
use super::hub::Reservation;
use super::member::Member;
use super::params::Params;
use super::protocol::{parse_request, RequestError, ServerEvent};
use crate::auth::{self, Grant};
use crate::state::{Shared, SlotGuard};
use crate::ws::serve::{self, Data, Dropped, Session};
use crate::ws::{close_code, Deflate, Ending, Outbox, WriteStats};

/// Who is joining where: what the upgrade request decided, and the room the engine prepared.
pub struct Joining {
    pub params: Params,
    /// The client's verified token (authentication on).
    pub grant: Option<Grant>,
    /// The room, held and prepared by an engine that needs it (`--redis`); `None` in memory.
    pub reserved: Option<Reservation>,
}

/// Serves one upgraded chat connection until it closes.
///
/// A plain function returning the session's future, rather than an `async fn`: the set-up
/// (wrapping the socket, joining the room, queueing the welcome) runs now, and the future keeps
/// only what the connection needs while it lives. An `async fn` would keep its arguments *and*
/// the locals made from them for the whole connection, which idle connections pay for.
pub fn run(
    io: TcpStream,
    already_read: Vec<u8>,
    joining: Joining,
    slot: SlotGuard,
    shared: Arc<Shared>,
    deflate: Option<Deflate>,
) -> impl Future<Output = ()> + Send {
    let Joining {
        params,
        grant,
        reserved,
    } = joining;
    let mut ws = shared.chat_websocket(io, &already_read, slot.id, deflate, "native");
    // Whether frames compressed with our full window may be sent (see `ws::extensions`).
    let compress = deflate.is_some_and(|d| d.compresses());
    let info = grant.as_ref().and_then(|grant| grant.info.as_deref());
    let (member, welcome) = Member::join(Arc::clone(&shared), slot.id, &params, info, reserved);
    tracing::debug!(conn = slot.id, room = %params.room, nick = %params.nick, "chat connection open");
    // One frame in two pieces: this joiner's part, then the room's shared history.
    let threshold = shared.config.deflate_threshold;
    let [head, history] = compress
        .then(|| welcome.deflated(threshold, &shared.metrics))
        .flatten()
        .unwrap_or_else(|| welcome.plain());
    ws.writer.push(head);
    ws.writer.push(history);
    // Built here and moved in whole: built inside the block from captured parts, the parts'
    // own slots would stay in the future beside it for the life of the connection.
    let mut chat = Chat {
        member,
        expires: grant.as_ref().map(Grant::deadline),
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
            tracing::debug!(conn = slot.id, room = %chat.member.room_name(), nick = %chat.member.nick(), ?ending, "chat connection closed");
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

/// The chat's side of one native connection.
struct Chat {
    /// Holds the server's shared state too (one `Arc` per connection, not two).
    member: Member,
    /// When its token expires (authentication on): the connection is closed with
    /// [`auth::TOKEN_EXPIRED`] then.
    expires: Option<Instant>,
    /// Room events go out compressed when that pays (permessage-deflate, negotiated with our
    /// full window): each event's compressed frame is made once and shared
    /// ([`super::Encoded`]).
    compress: bool,
}

impl Session for Chat {
    type Event = Result<Delivery, RecvError>;

    fn next_event(&mut self) -> impl Future<Output = Self::Event> + Send {
        self.member.recv()
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
        let shared = self.member.shared();
        shared.metrics.messages_received.inc();
        shared.metrics.bytes_in.inc_by(text.len() as u64);
        let max_text_len = shared.config.max_text_len;
        if let Err(error) =
            parse_request(&text, max_text_len).and_then(|request| self.member.request(request))
        {
            out.push(ServerEvent::error(error).to_frame());
        }
        None
    }

    /// Queues `first` and everything else already waiting, so one write carries them all.
    fn on_event(&mut self, first: Self::Event, out: &mut Outbox) -> Option<Ending> {
        let compress = self.compress;
        let shared = Arc::clone(self.member.shared_arc());
        let threshold = shared.config.deflate_threshold;
        self.member.drain(first, out, |event| {
            event.frame_for(compress, threshold, &shared.metrics)
        })
    }

    fn on_rate_limited(&mut self, out: &mut Outbox) {
        out.push(ServerEvent::error(RequestError::RateLimited).to_frame());
    }

    fn on_dropped(&mut self, why: Dropped) {
        self.member.shared().metrics.count_drop(why);
    }

    fn on_written(&mut self, stats: WriteStats) {
        self.member.shared().metrics.count_writes(stats);
    }

    /// The token's `exp`, on the connection's one timer.
    fn deadline(&self) -> Option<Instant> {
        self.expires
    }

    fn on_deadline(&mut self, now: Instant, _out: &mut Outbox) -> Option<Ending> {
        if self.expires.is_some_and(|expires| now >= expires) {
            self.on_dropped(Dropped::Expired);
            return Some(Ending::Close(auth::TOKEN_EXPIRED, "token expired".into()));
        }
        None
    }
}
