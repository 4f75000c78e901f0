//! One connection's part in a room, whatever wire protocol it speaks: what it may ask of the
//! room (post, typing) and how the room's events reach its outbox. The native session
//! ([`super::session`]) and the Socket.IO one (`crate::wire::socketio::session`) each hold one,
//! so the two cannot drift on throttling, lag or what a request does.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

use serde_json::value::RawValue;

use super::channel::{Delivery, Encoded, Subscription};
use super::hub::{Membership, Reservation};
use super::params::Params;
use super::protocol::{ClientRequest, RequestError, ServerEvent, WelcomeFrame};
use super::reply::Reply;
use crate::state::Shared;
use crate::ws::{close_code, Ending, Outbox};

/// A member of a room: leaving the room is dropping this.
pub struct Member {
    shared: Arc<Shared>,
    conn_id: u64,
    /// The connection's place in its room; dropping it leaves the room.
    membership: Membership,
    events: Subscription,
    /// When this connection's last `typing` was relayed.
    last_typing: Option<Instant>,
}

impl Member {
    /// Joins `params.room` and returns the member and its welcome. `info`: what the joiner's
    /// token says of it, for its `join` event (authentication on).
    ///
    /// `reserved`: the room, held and prepared by the engine (see [`super::Hub::reserve_prepared`]);
    /// required with an engine that [`super::Engine::needs_prepare`], optional otherwise.
    pub fn join(
        shared: Arc<Shared>,
        conn_id: u64,
        params: &Params,
        info: Option<&RawValue>,
        reserved: Option<Reservation>,
    ) -> (Member, WelcomeFrame) {
        let hub = &shared.hub;
        let reserved = reserved.unwrap_or_else(|| {
            debug_assert!(
                !hub.engine().needs_prepare(),
                "a join the engine did not prepare"
            );
            hub.reserve_now(&params.room)
        });
        let (membership, entry) =
            hub.join_reserved(reserved, &params.nick, info, params.since, params.epoch);
        shared.metrics.rooms.set(shared.hub.room_count() as i64);
        let member = Member {
            shared,
            conn_id,
            membership,
            events: entry.events,
            last_typing: None,
        };
        (member, entry.welcome)
    }

    /// The server's shared state (settings, metrics).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn shared_arc(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn room_name(&self) -> &str {
        self.membership.room().name()
    }

    pub fn nick(&self) -> &str {
        self.membership.nick()
    }

    /// Does what a valid request asks. Returns the id of a posted message, if known at once
    /// (`None` with Redis, which assigns it later), or why the post could not even be queued.
    pub fn request(&mut self, request: ClientRequest) -> Result<Option<u64>, RequestError> {
        self.request_with_reply(request, None)
    }

    /// [`Self::request`]; a message whose id the engine assigns later is answered with `reply`
    /// once it is known (a Socket.IO ack under `--redis`; see [`Reply`]).
    pub fn request_with_reply(
        &mut self,
        request: ClientRequest,
        reply: Option<Box<Reply>>,
    ) -> Result<Option<u64>, RequestError> {
        let room = self.membership.room();
        match request {
            ClientRequest::Message(text) => self.shared.hub.engine().post(
                room,
                self.membership.nick(),
                &text,
                self.conn_id,
                reply,
            ),
            ClientRequest::Typing => {
                // At most one relayed `typing` per `--typing-interval`: it reaches every member,
                // so a client typing-flooding under the message rate would still multiply its
                // frames by the room's size. The rest are dropped without a reply.
                let now = Instant::now();
                let due = match self.last_typing {
                    Some(last) => now >= last + self.shared.config.typing_interval,
                    None => true,
                };
                if due {
                    self.last_typing = Some(now);
                    self.shared
                        .hub
                        .engine()
                        .typing(room, self.membership.nick(), self.conn_id);
                }
                Ok(None)
            }
        }
    }

    /// The next room event; cancel-safe (see [`Subscription::recv`]).
    pub fn recv(&mut self) -> impl Future<Output = Result<Delivery, RecvError>> + Send + '_ {
        self.events.recv()
    }

    /// Queues `first` and everything else already waiting, so one write carries them all, each
    /// event as the frame `wire` takes from its encodings (the plain or compressed native frame,
    /// or Socket.IO's). Stops early at `--write-buffer`; the rest waits in the channel.
    pub fn drain(
        &mut self,
        first: Result<Delivery, RecvError>,
        out: &mut Outbox,
        wire: impl Fn(&Encoded) -> Bytes,
    ) -> Option<Ending> {
        let write_buffer = self.shared.config.write_buffer;
        let mut next = first;
        loop {
            match next {
                Ok(delivery) if delivery.to.includes(self.conn_id) => {
                    out.push(wire(&delivery.frame))
                }
                Ok(_) => {}
                // The channel overwrote `missed` events this client had not read yet. Tell it,
                // and carry on from the oldest event still held (the documented lag policy).
                Err(RecvError::Lagged(missed)) => {
                    self.shared.metrics.lagged_events.inc_by(missed);
                    out.push(wire(&Encoded::new(
                        ServerEvent::Lagged { missed }.to_frame(),
                    )));
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
}
