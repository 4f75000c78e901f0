//! A room: who is in it, what was said, and the broadcast channel every member listens to.
//!
//! Everything that changes a room happens under one short `std::sync::Mutex` (not a tokio one:
//! nothing awaits while it is held). Sending on the broadcast channel inside that lock is what
//! makes ids, history and delivery agree: a joiner subscribes and snapshots history in one
//! critical section, so it sees every message exactly once, either in its welcome or live.
//!
//! A room costs what it holds. Its channel starts with [`INITIAL_CAPACITY`] slots and doubles
//! (up to `--channel-capacity`) only when a member falls half a ring behind, so a quiet room of
//! two costs a few hundred bytes where a fixed 4,096-slot ring cost 256 KiB; members, history and
//! pending presence are sized by what is in them; and a room has no task or timer of its own (the
//! hub flushes coalesced presence for the rooms that have some, see [`super::hub`]).
//!
//! Rejected: a fixed ring sized for the big room (the cost above, and free room names made it an
//! attack); a channel per member (gives up encode-once fan-out); sizing the ring from the member
//! count alone (a hundred quiet members need no more slots than two busy ones, and a busy room of
//! two needs more).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

use super::protocol::{ChatMessage, HistoryTail, ServerEvent, Welcome};

/// Identifies one connection, so a `typing` event can skip the typist.
pub type ConnId = u64;

/// Slots in a new room's broadcast channel. Two is the least that growth can work with: the
/// marker that moves members to a bigger channel needs a free slot (see [`RoomState::send`]).
/// Each slot is about 64 bytes, whether it holds a frame or not.
pub const INITIAL_CAPACITY: usize = 2;

/// What a member receives: one encoded frame, shared by every receiver.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub frame: Bytes,
    /// A connection that must not receive this frame (0 = none).
    pub skip: ConnId,
}

/// What travels on a room's channel: a delivery, or the marker that ends this channel.
#[derive(Debug, Clone)]
enum Event {
    Deliver(Delivery),
    /// The last event ever sent on this channel: the room goes on in the channel whose
    /// receivers the marker holds.
    Moved(Arc<Move>),
}

/// Receivers of a room's new channel, every one subscribed at the marker's moment (so every one
/// will see exactly the events sent after it), one for each receiver of the old channel.
#[derive(Debug)]
struct Move {
    receivers: Mutex<Vec<broadcast::Receiver<Event>>>,
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
    rx: broadcast::Receiver<Event>,
}

impl Subscription {
    /// The next event, waiting for one. `Lagged(n)`: `n` events were overwritten before this
    /// member read them (only at the largest capacity); the next call goes on from the oldest
    /// still held. `Closed`: the room is gone.
    pub async fn recv(&mut self) -> Result<Delivery, RecvError> {
        loop {
            match self.rx.recv().await? {
                Event::Deliver(delivery) => return Ok(delivery),
                Event::Moved(to) => self.follow(&to).ok_or(RecvError::Closed)?,
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

/// Per-room settings, copied from [`crate::Config`].
#[derive(Debug, Clone, Copy)]
pub struct RoomConfig {
    /// Messages kept for late joiners.
    pub history: usize,
    /// Bytes of message JSON kept for late joiners (each message counts its JSON plus one): the
    /// bound on a welcome's `history`.
    pub history_bytes: usize,
    /// Largest capacity of the broadcast channel, in events (it starts at
    /// [`INITIAL_CAPACITY`]).
    pub channel_capacity: usize,
    /// Above this many users, presence is coalesced.
    pub presence_threshold: usize,
    /// At most this many names in a welcome, and in each list of a `presence` event.
    pub welcome_users: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            history: 100,
            history_bytes: 64 * 1024,
            channel_capacity: 4096,
            presence_threshold: 100,
            welcome_users: 100,
        }
    }
}

pub struct Room {
    name: Arc<str>,
    /// Shared by every room of a hub.
    config: Arc<RoomConfig>,
    state: Mutex<RoomState>,
}

struct HistoryEntry {
    id: u64,
    json: Box<RawValue>,
}

struct RoomState {
    /// The current channel; replaced (with a marker on the old one) when the room grows.
    tx: broadcast::Sender<Event>,
    /// `tx`'s capacity (a power of two).
    capacity: usize,
    /// Id of the latest message; 0 before the first.
    last_id: u64,
    /// Messages kept for late joiners; boxed and made by the first message, so a room that has
    /// said nothing pays 8 bytes for its history rather than 72.
    history: Option<Box<History>>,
    /// Nicknames, sorted, each with its number of open connections. Presence follows nicknames,
    /// so a second tab (or a refresh that reconnects before the old socket closes) never flaps.
    /// A sorted `Vec`, not a `BTreeMap`: one or two names cost 24 bytes each instead of a 280-byte
    /// node, and even 10,000 joins move only megabytes in all.
    users: Vec<(Arc<str>, usize)>,
    /// Open connections, including those reserved by the hub but not yet entered.
    connections: usize,
    /// Coalesced presence not yet announced (large rooms only); boxed because rare.
    pending: Option<Box<Pending>>,
}

#[derive(Default)]
struct History {
    entries: VecDeque<HistoryEntry>,
    /// Sum over `entries` of each message's JSON length plus one (its comma in a welcome).
    bytes: usize,
    /// The welcome's shared second piece (the whole history) for joiners without `since`: built
    /// by the first such joiner after the history changed, then shared by reference count.
    welcome_tail: Option<HistoryTail>,
}

/// The history of a room that has said nothing.
static NO_HISTORY: History = History {
    entries: VecDeque::new(),
    bytes: 0,
    welcome_tail: None,
};

#[derive(Default)]
struct Pending {
    joined: Vec<Arc<str>>,
    left: Vec<Arc<str>>,
}

/// What a new member gets: its welcome and its subscription, taken atomically.
pub struct Entry {
    /// The welcome: one text frame in two pieces, to be written one after the other. The second
    /// piece (the history) is shared by every joiner without `since` until the next message.
    pub welcome: [Bytes; 2],
    pub events: Subscription,
}

/// What [`Room::enter`] did, for the hub.
pub(super) struct Entered {
    pub entry: Entry,
    /// The room's copy of the nickname, for the membership to share.
    pub nick: Arc<str>,
    /// This entry left coalesced presence to announce where there was none.
    pub presence_queued: bool,
}

/// What [`Room::exit`] did, for the hub.
pub(super) struct Exited {
    pub empty: bool,
    pub presence_queued: bool,
}

impl Room {
    pub fn new(name: &str, config: RoomConfig) -> Room {
        Room::with_config(name.into(), Arc::new(config))
    }

    pub(super) fn with_config(name: Arc<str>, config: Arc<RoomConfig>) -> Room {
        let capacity = INITIAL_CAPACITY.min(config.channel_capacity).max(1);
        let (tx, _) = broadcast::channel(capacity);
        Room {
            name,
            config,
            state: Mutex::new(RoomState {
                tx,
                capacity,
                last_id: 0,
                history: None,
                users: Vec::new(),
                connections: 0,
                pending: None,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        // A panic while holding the lock leaves consistent-enough state (counts and a ring);
        // keep serving rather than poisoning every member of the room.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a connection that is about to enter, so the hub will not drop the room meanwhile.
    pub(super) fn reserve(&self) {
        self.lock().connections += 1;
    }

    /// Adds `nick` to the room and returns its welcome and subscription.
    ///
    /// `since` is the id of the last message the client already has: it gets every later message
    /// still held, and `truncated` if some are gone. Without it, the most recent history.
    pub(super) fn enter(&self, nick: &str, since: Option<u64>) -> Entered {
        let mut state = self.lock();
        let (nick, first_connection) = match state.user(nick) {
            Ok(at) => {
                state.users[at].1 += 1;
                (Arc::clone(&state.users[at].0), false)
            }
            Err(at) => {
                let nick: Arc<str> = nick.into();
                if state.users.len() < 4 {
                    // Most rooms hold one or two: no room for four before it is needed.
                    state.users.reserve_exact(1);
                }
                state.users.insert(at, (Arc::clone(&nick), 1));
                (nick, true)
            }
        };
        let presence_queued = first_connection && self.announce(&mut state, &nick, true);
        // Subscribe after announcing: the joiner learns of itself from its welcome, not a `join`.
        let events = Subscription {
            rx: state.tx.subscribe(),
        };

        let last_id = state.last_id;
        let (tail, truncated) = match (since, &mut state.history) {
            (Some(since), history) => {
                let history = history.as_deref().unwrap_or(&NO_HISTORY);
                let oldest_held = history.entries.front().map_or(last_id + 1, |e| e.id);
                (
                    HistoryTail::new(
                        history
                            .entries
                            .iter()
                            .filter(|e| e.id > since || since > last_id)
                            .map(|e| &*e.json),
                    ),
                    // Messages after `since` were dropped from the ring, or the room was reset
                    // (a restarted server starts again at id 1).
                    since + 1 < oldest_held || since > last_id,
                )
            }
            (None, Some(history)) => {
                let History {
                    entries,
                    welcome_tail,
                    ..
                } = &mut **history;
                let tail = welcome_tail
                    .get_or_insert_with(|| HistoryTail::new(entries.iter().map(|e| &*e.json)));
                (tail.clone(), false)
            }
            (None, None) => (HistoryTail::new(std::iter::empty()), false),
        };
        let users: Vec<&str> = state
            .users
            .iter()
            .take(self.config.welcome_users)
            .map(|(name, _)| &**name)
            .collect();
        let welcome = Welcome {
            you: &nick,
            room: &self.name,
            users,
            count: state.users.len(),
            last_id: state.last_id,
            truncated,
        }
        .to_frame(&tail);
        drop(state);
        Entered {
            entry: Entry { welcome, events },
            nick,
            presence_queued,
        }
    }

    /// Removes one connection of `nick`.
    pub(super) fn exit(&self, nick: &str) -> Exited {
        let mut state = self.lock();
        state.connections -= 1;
        let mut presence_queued = false;
        if let Ok(at) = state.user(nick) {
            if state.users[at].1 > 1 {
                state.users[at].1 -= 1;
            } else {
                let (nick, _) = state.users.remove(at);
                presence_queued = self.announce(&mut state, &nick, false);
            }
        }
        Exited {
            empty: state.connections == 0,
            presence_queued,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().connections == 0
    }

    /// Posts a message: assigns its id, keeps it in history and broadcasts it, all under the lock
    /// so every member sees ids in order. Serialized once, encoded once.
    pub fn post(&self, from: &str, text: &str) -> u64 {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        let mut state = self.lock();
        let id = state.last_id + 1;
        state.last_id = id;
        let json = ServerEvent::Message(ChatMessage {
            id,
            room: &self.name,
            from,
            text,
            ts,
        })
        .to_json();
        let frame = crate::ws::encode_frame(crate::ws::OpCode::Text, json.as_bytes());
        state.remember(id, json, &self.config);
        state.send(&self.config, frame, 0);
        id
    }

    /// Tells everyone but connection `from_conn` that `nick` is typing.
    pub fn typing(&self, nick: &str, from_conn: ConnId) {
        let frame = ServerEvent::Typing { name: nick }.to_frame();
        // Under the lock: keeps channel order consistent with `post`.
        self.lock().send(&self.config, frame, from_conn);
    }

    /// Announces coalesced joins and leaves, if any: at most `welcome_users` names of each, and
    /// how many there were. Called by the hub once per presence interval while some are queued.
    pub fn flush_presence(&self) {
        let mut state = self.lock();
        let Some(pending) = state.pending.take() else {
            return;
        };
        if pending.joined.is_empty() && pending.left.is_empty() {
            return;
        }
        let most = self.config.welcome_users;
        let joined: Vec<&str> = pending.joined.iter().take(most).map(|n| &**n).collect();
        let left: Vec<&str> = pending.left.iter().take(most).map(|n| &**n).collect();
        let frame = ServerEvent::Presence {
            joined: &joined,
            left: &left,
            joined_count: pending.joined.len(),
            left_count: pending.left.len(),
            count: state.users.len(),
        }
        .to_frame();
        state.send(&self.config, frame, 0);
    }

    /// Users online (distinct nicknames).
    pub fn user_count(&self) -> usize {
        self.lock().users.len()
    }

    /// The capacity of the room's current broadcast channel, in events.
    pub fn channel_capacity(&self) -> usize {
        self.lock().capacity
    }

    /// A `join` or `leave` for a small room; for a large one, queued for [`Self::flush_presence`].
    /// A join and a leave of the same name within one interval cancel out. Returns whether the
    /// room now has queued presence where it had none (so the hub must schedule a flush).
    fn announce(&self, state: &mut RoomState, nick: &Arc<str>, joined: bool) -> bool {
        let nothing_pending =
            !matches!(&state.pending, Some(p) if !p.joined.is_empty() || !p.left.is_empty());
        if state.users.len() <= self.config.presence_threshold && nothing_pending {
            let event = if joined {
                ServerEvent::Join { name: nick }
            } else {
                ServerEvent::Leave { name: nick }
            };
            state.send(&self.config, event.to_frame(), 0);
            return false;
        }
        let pending = state.pending.get_or_insert_with(Box::default);
        let (add_to, cancel_in) = if joined {
            (&mut pending.joined, &mut pending.left)
        } else {
            (&mut pending.left, &mut pending.joined)
        };
        if let Some(at) = cancel_in.iter().position(|n| n == nick) {
            cancel_in.swap_remove(at);
        } else {
            add_to.push(Arc::clone(nick));
        }
        nothing_pending
    }
}

impl RoomState {
    /// Where `nick` is in `users` (`Err`: where it would go).
    fn user(&self, nick: &str) -> Result<usize, usize> {
        self.users.binary_search_by(|(name, _)| (**name).cmp(nick))
    }

    /// Keeps a message for late joiners, within both the count and the byte budget. A message
    /// bigger than the whole byte budget is not kept (a `since` that needs it says `truncated`).
    fn remember(&mut self, id: u64, json: String, config: &RoomConfig) {
        if config.history == 0 {
            return;
        }
        let history = self.history.get_or_insert_with(Box::default);
        history.welcome_tail = None;
        let cost = json.len() + 1;
        while !history.entries.is_empty()
            && (history.entries.len() >= config.history
                || history.bytes + cost > config.history_bytes)
        {
            if let Some(old) = history.entries.pop_front() {
                history.bytes -= old.json.get().len() + 1;
            }
        }
        if cost <= config.history_bytes {
            let json = RawValue::from_string(json).expect("serde_json output is JSON");
            history.bytes += cost;
            history.entries.push_back(HistoryEntry { id, json });
        }
    }

    /// Broadcasts one frame, first growing the channel if some member is half a ring behind.
    ///
    /// Checked before sending, so below the largest capacity no event is ever overwritten: a
    /// send that does not grow leaves at most `capacity / 2` events unread, so the marker always
    /// finds a free slot (with `capacity >= 2`). `Sender::len` is a binary search over the ring
    /// (about a dozen uncontended slot locks at 4,096), once per event, not per delivery.
    fn send(&mut self, config: &RoomConfig, frame: Bytes, skip: ConnId) {
        if self.capacity < config.channel_capacity && self.tx.len() * 2 >= self.capacity {
            self.grow(config.channel_capacity);
        }
        // An error only means nobody is listening right now; the history still has it.
        let _ = self.tx.send(Event::Deliver(Delivery { frame, skip }));
    }

    /// Moves the room to a channel twice as large (see [`Subscription`] for the invariant).
    fn grow(&mut self, largest: usize) {
        let capacity = (self.capacity * 2).min(largest);
        let (tx, _) = broadcast::channel(capacity);
        let receivers = (0..self.tx.receiver_count())
            .map(|_| tx.subscribe())
            .collect();
        let to = Arc::new(Move {
            receivers: Mutex::new(receivers),
        });
        let _ = self.tx.send(Event::Moved(to));
        self.tx = tx;
        self.capacity = capacity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(frame: &[u8]) -> Value {
        let (_, n) = crate::ws::FrameHeader::parse(frame).unwrap().unwrap();
        serde_json::from_slice(&frame[n..]).unwrap()
    }

    fn next(rx: &mut Subscription) -> Value {
        json(&rx.try_recv().expect("an event").frame)
    }

    fn room(config: RoomConfig) -> Room {
        Room::new("lobby", config)
    }

    fn enter(room: &Room, nick: &str, since: Option<u64>) -> (Value, Subscription) {
        room.reserve();
        let entry = room.enter(nick, since).entry;
        (json(&entry.welcome.concat()), entry.events)
    }

    /// Ids of the chat messages waiting for `rx`, in the order it gets them.
    fn message_ids(rx: &mut Subscription) -> Vec<u64> {
        let mut ids = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(delivery) => {
                    let event = json(&delivery.frame);
                    if event["type"] == "message" {
                        ids.push(event["id"].as_u64().unwrap());
                    }
                }
                Err(TryRecvError::Empty) => return ids,
                Err(err) => panic!("{err:?}"),
            }
        }
    }

    #[test]
    fn ids_increase_by_one_and_reach_every_member() {
        let room = room(RoomConfig::default());
        let (_, mut ann) = enter(&room, "ann", None);
        let (_, mut bob) = enter(&room, "bob", None);
        assert_eq!(next(&mut ann)["type"], "join");
        for (i, text) in ["one", "two"].iter().enumerate() {
            assert_eq!(room.post("ann", text), i as u64 + 1);
        }
        for rx in [&mut ann, &mut bob] {
            assert_eq!(next(rx)["id"], 1);
            let two = next(rx);
            assert_eq!(
                (two["id"].as_u64(), two["text"].as_str()),
                (Some(2), Some("two"))
            );
        }
    }

    #[test]
    fn a_new_room_is_small() {
        let room = room(RoomConfig::default());
        let (_, _ann) = enter(&room, "ann", None);
        let (_, _bob) = enter(&room, "bob", None);
        assert_eq!(room.channel_capacity(), INITIAL_CAPACITY);
    }

    #[test]
    fn growth_delivers_every_event_once_in_order() {
        let room = room(RoomConfig {
            channel_capacity: 64,
            ..RoomConfig::default()
        });
        // Members that never read while the room grows past them, and members that join at
        // every size, each between two messages.
        let mut members = Vec::new();
        for i in 0..40u64 {
            let (welcome, rx) = enter(&room, &format!("m{i:02}"), None);
            members.push((welcome["last_id"].as_u64().unwrap(), rx));
            room.post("x", &format!("{i}"));
        }
        assert_eq!(room.channel_capacity(), 64, "grew to the largest");
        for (after, rx) in &mut members {
            let expected: Vec<u64> = (*after + 1..=40).collect();
            assert_eq!(message_ids(rx), expected, "member who joined after {after}");
        }
        // The room goes on: one more message reaches everyone exactly once.
        room.post("x", "last");
        for (_, rx) in &mut members {
            assert_eq!(message_ids(rx), [41]);
        }
    }

    #[test]
    fn a_member_that_reads_keeps_the_room_small() {
        let room = room(RoomConfig::default());
        let (_, mut ann) = enter(&room, "ann", None);
        for i in 0..100 {
            room.post("ann", &format!("{i}"));
            assert_eq!(message_ids(&mut ann).len(), 1);
        }
        assert_eq!(room.channel_capacity(), INITIAL_CAPACITY);
    }

    #[test]
    fn past_the_largest_capacity_a_slow_member_lags() {
        let room = room(RoomConfig {
            channel_capacity: 8,
            ..RoomConfig::default()
        });
        let (_, mut ann) = enter(&room, "ann", None);
        for i in 0..30 {
            room.post("ann", &format!("{i}"));
        }
        assert_eq!(room.channel_capacity(), 8);
        let mut lagged = false;
        loop {
            match ann.try_recv() {
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => lagged = true,
                Err(TryRecvError::Empty) => break,
                Err(err) => panic!("{err:?}"),
            }
        }
        assert!(lagged, "a member more than the largest ring behind is told");
    }

    #[test]
    fn a_member_leaving_mid_growth_releases_its_place() {
        let room = room(RoomConfig::default());
        let (_, mut ann) = enter(&room, "ann", None);
        let (_, bob) = enter(&room, "bob", None);
        for i in 0..20 {
            room.post("ann", &format!("{i}"));
        }
        assert!(room.channel_capacity() > INITIAL_CAPACITY);
        drop(bob); // never read: its pooled receivers in every later channel go with it
        room.exit("bob");
        message_ids(&mut ann);
        let state = room.lock();
        assert_eq!(state.tx.receiver_count(), 1);
        assert_eq!(state.tx.len(), 0, "nobody is behind");
    }

    #[test]
    fn welcome_carries_history_users_and_cursor() {
        let room = room(RoomConfig {
            history: 3,
            ..RoomConfig::default()
        });
        let (welcome, _ann) = enter(&room, "ann", None);
        assert_eq!(welcome["last_id"], 0);
        assert_eq!(welcome["you"], "ann");
        assert_eq!(welcome["history"].as_array().unwrap().len(), 0);
        for i in 1..=5 {
            room.post("ann", &format!("m{i}"));
        }
        let (welcome, _bob) = enter(&room, "bob", None);
        let ids: Vec<u64> = welcome["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [3, 4, 5]);
        assert_eq!(welcome["users"], serde_json::json!(["ann", "bob"]));
        assert_eq!(
            (welcome["count"].as_u64(), welcome["last_id"].as_u64()),
            (Some(2), Some(5))
        );
    }

    #[test]
    fn joiners_share_one_history_until_the_next_message() {
        let room = room(RoomConfig::default());
        room.reserve();
        room.enter("ann", None);
        room.post("ann", "hello");
        let tail = |nick: &str| {
            room.reserve();
            room.enter(nick, None).entry.welcome[1].clone()
        };
        let (bob, cat) = (tail("bob"), tail("cat"));
        assert_eq!(bob.as_ptr(), cat.as_ptr(), "one copy, shared");
        room.post("ann", "again");
        assert_ne!(
            tail("dan").as_ptr(),
            bob.as_ptr(),
            "rebuilt after a message"
        );
    }

    #[test]
    fn history_is_bounded_in_bytes() {
        let room = room(RoomConfig {
            history: 100,
            history_bytes: 1000,
            ..RoomConfig::default()
        });
        let text = "\0".repeat(50); // 300 bytes of JSON
        for _ in 0..10 {
            room.post("ann", &text);
        }
        let (welcome, _) = enter(&room, "bob", None);
        let history = welcome["history"].as_array().unwrap();
        assert_eq!(history.len(), 2, "two fit in 1,000 bytes, three do not");
        assert_eq!(history[1]["id"], 10);
        let held: usize = history.iter().map(|m| m.to_string().len() + 1).sum();
        assert!(held <= 1000);
        // One message bigger than the whole budget is not kept; a resume across it is told.
        room.post("ann", &"\0".repeat(200));
        let (welcome, _) = enter(&room, "bob", None);
        assert_eq!(welcome["history"].as_array().unwrap().len(), 0);
        let (welcome, _) = enter(&room, "bob", Some(10));
        assert_eq!(welcome["truncated"], true);
    }

    #[test]
    fn since_resumes_without_gap_or_duplicate() {
        let room = room(RoomConfig {
            history: 3,
            ..RoomConfig::default()
        });
        let (_, _ann) = enter(&room, "ann", None);
        for i in 1..=5 {
            room.post("ann", &format!("m{i}"));
        }
        let ids = |w: &Value| -> Vec<u64> {
            w["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_u64().unwrap())
                .collect()
        };
        let (w, _) = enter(&room, "bob", Some(3));
        assert_eq!(
            (ids(&w), w["truncated"].as_bool()),
            (vec![4, 5], Some(false))
        );
        let (w, _) = enter(&room, "bob", Some(2));
        assert_eq!(
            (ids(&w), w["truncated"].as_bool()),
            (vec![3, 4, 5], Some(false))
        );
        let (w, _) = enter(&room, "bob", Some(1));
        assert_eq!(
            (ids(&w), w["truncated"].as_bool()),
            (vec![3, 4, 5], Some(true))
        );
        let (w, _) = enter(&room, "bob", Some(5));
        assert_eq!((ids(&w), w["truncated"].as_bool()), (vec![], Some(false)));
        // A cursor from before a restart is past the end: say so, send what there is.
        let (w, _) = enter(&room, "bob", Some(99));
        assert_eq!(
            (ids(&w), w["truncated"].as_bool()),
            (vec![3, 4, 5], Some(true))
        );
    }

    #[test]
    fn presence_follows_nicknames_not_connections() {
        let room = room(RoomConfig::default());
        let (_, mut watcher) = enter(&room, "watcher", None);
        let _tab1 = enter(&room, "ann", None);
        assert_eq!(
            next(&mut watcher),
            serde_json::json!({"type":"join","name":"ann"})
        );
        let _tab2 = enter(&room, "ann", None);
        assert!(!room.exit("ann").empty);
        assert!(
            watcher.try_recv().is_err(),
            "second tab neither joins nor leaves"
        );
        room.exit("ann");
        assert_eq!(
            next(&mut watcher),
            serde_json::json!({"type":"leave","name":"ann"})
        );
        assert!(room.exit("watcher").empty, "room is empty");
    }

    #[test]
    fn typing_skips_the_typist() {
        let room = room(RoomConfig::default());
        let (_, mut rx) = enter(&room, "ann", None);
        room.typing("ann", 42);
        let delivery = rx.try_recv().unwrap();
        assert_eq!(delivery.skip, 42);
        assert_eq!(json(&delivery.frame)["type"], "typing");
    }

    #[test]
    fn large_rooms_coalesce_presence() {
        let room = room(RoomConfig {
            presence_threshold: 2,
            welcome_users: 2,
            ..RoomConfig::default()
        });
        let (_, mut watcher) = enter(&room, "a", None);
        let _b = enter(&room, "b", None);
        assert_eq!(next(&mut watcher)["type"], "join");
        room.reserve();
        assert!(room.enter("c", None).presence_queued, "the first queued");
        for nick in ["d", "e"] {
            room.reserve();
            assert!(!room.enter(nick, None).presence_queued, "already queued");
        }
        room.exit("e"); // joined and left within the interval: never announced
        room.exit("b");
        assert!(
            watcher.try_recv().is_err(),
            "nothing until the interval ends"
        );
        room.flush_presence();
        assert_eq!(
            next(&mut watcher),
            serde_json::json!({"type":"presence","joined":["c","d"],"left":["b"],
                "joined_count":2,"left_count":1,"count":3})
        );
        room.flush_presence();
        assert!(
            watcher.try_recv().is_err(),
            "an empty interval sends nothing"
        );
        let (welcome, _) = enter(&room, "z", None);
        assert_eq!(welcome["users"], serde_json::json!(["a", "c"]));
        assert_eq!(welcome["count"], 4);
    }

    #[test]
    fn presence_events_carry_at_most_the_welcome_number_of_names() {
        let room = room(RoomConfig {
            presence_threshold: 1,
            welcome_users: 3,
            ..RoomConfig::default()
        });
        let (_, mut watcher) = enter(&room, "a", None);
        for i in 0..50 {
            room.reserve();
            room.enter(&format!("n{i:02}"), None);
        }
        room.flush_presence();
        let presence = next(&mut watcher);
        assert_eq!(presence["joined"].as_array().unwrap().len(), 3);
        assert_eq!(presence["joined_count"], 50);
        assert_eq!(presence["count"], 51);
    }
}
