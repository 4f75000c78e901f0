//! A room's broadcast channel, which grows with the room, and a member's [`Subscription`], which
//! follows it to each larger channel without losing, repeating or reordering an event. The room
//! ([`super::room`]) decides when to grow and does it under its lock; this file holds what travels
//! on the channel and how a receiver moves.

use std::future::Future;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

/// Identifies one connection, so a `typing` event can skip the typist.
pub type ConnId = u64;

pub use super::encoded::Encoded;

/// Slots in a new room's broadcast channel. Two is the least that growth can work with: the
/// marker that moves members to a bigger channel needs a free slot (see `RoomState::send` in
/// [`super::room`]).
/// Each slot is about 48 bytes, whether it holds a frame or not.
pub const INITIAL_CAPACITY: usize = 2;

/// What a member receives: one room event's encodings, shared by every receiver (each takes
/// the one its connection needs: [`Encoded::frame_for`]). A pointer, so a channel slot stays
/// small whatever encodings exist.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub frame: Arc<Encoded>,
    /// Who receives this frame: everyone, everyone but one connection (the typist of a
    /// `typing`), or one connection alone (a sender told its post failed, `--redis`).
    pub to: Audience,
}

/// Who receives a delivery, in 8 bytes: no connection id, one to skip, or one to deliver to
/// alone (its top bit set; connection ids count up from 1 and never reach it). A packed `u64`
/// rather than an enum, which would make every channel slot 8 bytes larger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audience(Option<NonZeroU64>);

const ONLY: u64 = 1 << 63;

impl Audience {
    pub const EVERYONE: Audience = Audience(None);

    /// Everyone but connection `conn` (0: everyone).
    pub fn all_but(conn: ConnId) -> Audience {
        Audience(NonZeroU64::new(conn & !ONLY))
    }

    /// Connection `conn` alone.
    pub fn only(conn: ConnId) -> Audience {
        Audience(NonZeroU64::new(conn | ONLY))
    }

    /// Whether connection `conn` receives the delivery.
    pub fn includes(self, conn: ConnId) -> bool {
        match self.0.map(u64::from) {
            None => true,
            Some(only) if only & ONLY != 0 => only & !ONLY == conn,
            Some(skip) => skip != conn,
        }
    }
}

/// What travels on a room's channel: a delivery, or the marker that ends this channel.
#[derive(Debug, Clone)]
pub(super) enum Event {
    Deliver(Delivery),
    /// The last event ever sent on this channel: the room goes on in the channel whose
    /// receivers the marker holds.
    Moved(Arc<Move>),
}

/// Receivers of a room's new channel, every one subscribed at the marker's moment (so every one
/// will see exactly the events sent after it), one for each receiver of the old channel.
#[derive(Debug)]
pub(super) struct Move {
    pub(super) receivers: Mutex<Vec<broadcast::Receiver<Event>>>,
}

impl Move {
    fn take(&self) -> Option<broadcast::Receiver<Event>> {
        self.receivers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
    }
}

/// A member's subscription to its room: a broadcast receiver that follows the room to each
/// larger channel.
///
/// The invariant that makes growth lose, repeat and reorder nothing: when the room grows, under
/// its lock, it (1) creates the new channel, (2) subscribes to it once per receiver of the old
/// one, before anything is sent on it, (3) sends the [`Event::Moved`] marker holding those
/// receivers on the old channel, and (4) from then on sends on the new channel only. A member
/// reads the old channel in order up to the marker (the marker is never overwritten: nothing is
/// sent after it), then continues with a receiver that starts exactly after the marker. Any of
/// the pooled receivers will do: they are all at the same position. A member that joins later
/// subscribes to the newest channel directly. A member that leaves walks its remaining channels
/// on drop, so the receivers pooled for it are released too.
///
/// Receiving is cancel-safe, like `broadcast::Receiver::recv`: a marker is acted on in the same
/// poll that takes it.
#[derive(Debug)]
pub struct Subscription {
    pub(super) rx: broadcast::Receiver<Event>,
}

impl Subscription {
    /// The next event, waiting for one. `Lagged(n)`: `n` events were overwritten before this
    /// member read them (only at the largest capacity); the next call goes on from the oldest
    /// still held. `Closed`: the room is gone.
    ///
    /// A plain function returning an `async move` block rather than an `async fn`, which would
    /// keep `self` twice in a future that every idle member holds.
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    pub fn recv(&mut self) -> impl Future<Output = Result<Delivery, RecvError>> + Send + '_ {
        async move {
            loop {
                match self.rx.recv().await? {
                    Event::Deliver(delivery) => return Ok(delivery),
                    Event::Moved(to) => self.follow(&to).ok_or(RecvError::Closed)?,
                }
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<Delivery, TryRecvError> {
        loop {
            match self.rx.try_recv()? {
                Event::Deliver(delivery) => return Ok(delivery),
                Event::Moved(to) => self.follow(&to).ok_or(TryRecvError::Closed)?,
            }
        }
    }

    fn follow(&mut self, to: &Move) -> Option<()> {
        // The pool holds one receiver per receiver of the old channel, so it cannot run out.
        let next = to.take();
        debug_assert!(next.is_some(), "a growth marker without a receiver for us");
        self.rx = next?;
        Some(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Take (and so release) the receivers pooled for this member in every channel after
        // this one; dropping the last one drains it as `broadcast::Receiver`'s own drop does.
        loop {
            match self.rx.try_recv() {
                Ok(Event::Moved(to)) => match to.take() {
                    Some(next) => self.rx = next,
                    None => return,
                },
                Ok(Event::Deliver(_)) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }
}
