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
//!
//! Longer than most files here (about 450 lines before its tests) because it is one idea: every
//! critical section of a room (enter, exit, post, typing, presence, and the send that may grow the
//! channel) reads the same state under the same lock, and reads best side by side. What travels
//! on the channel, and how a member follows it as it grows, is [`super::channel`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::broadcast;

use super::channel::{
    Audience, ConnId, Delivery, Encoded, Event, Move, Subscription, INITIAL_CAPACITY,
};
use super::epoch::Epoch;
use super::protocol::{ChatMessage, HistoryTail, ServerEvent, Welcome, WelcomeFrame};

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
    /// Whether the engine keeps the room's users across processes (`--redis`): then `users` is
    /// the engine's list, changed only by what the engine announces ([`Room::remote_join`]),
    /// and entering or leaving here announces nothing. Set by the hub from its engine.
    pub shared_presence: bool,
}

impl From<&crate::Config> for RoomConfig {
    fn from(config: &crate::Config) -> Self {
        RoomConfig {
            history: config.history,
            history_bytes: config.history_bytes,
            channel_capacity: config.channel_capacity,
            presence_threshold: config.presence_threshold,
            welcome_users: config.welcome_users,
            shared_presence: false,
        }
    }
}

impl Default for RoomConfig {
    /// The flags' defaults: written once, in [`crate::Config`].
    fn default() -> Self {
        RoomConfig::from(&crate::Config::default())
    }
}

pub struct Room {
    name: Box<str>,
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
    /// Which life of the room `last_id` counts in: made with the room (memory), or loaded from
    /// the engine (Redis). A resuming client that names another epoch gets `truncated`.
    epoch: Epoch,
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
    /// piece (the history) is shared by every joiner without `since` until the next message, in
    /// its plain and its compressed form alike.
    pub welcome: WelcomeFrame,
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

/// What [`Room::backfill`] did, for the engine's log and metrics.
#[derive(Debug, PartialEq, Eq)]
pub struct CaughtUp {
    /// The room started a new life: members were sent `truncated`.
    pub new_life: bool,
    /// Messages the engine no longer held: members were sent `lagged` with this count.
    pub missed: u64,
    /// Messages delivered from the gap.
    pub delivered: usize,
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

    pub(super) fn with_config(name: Box<str>, config: Arc<RoomConfig>) -> Room {
        let capacity = INITIAL_CAPACITY.min(config.channel_capacity).max(1);
        let (tx, _) = broadcast::channel(capacity);
        Room {
            name,
            config,
            state: Mutex::new(RoomState {
                tx,
                capacity,
                last_id: 0,
                epoch: Epoch::random(),
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
    #[cfg(test)]
    pub(super) fn enter(&self, nick: &str, since: Option<u64>) -> Entered {
        self.enter_with_info(nick, None, since, None)
    }

    /// [`Self::enter`], with the `info` of the user's token for its `join` event (announced only
    /// for a name's first connection, and only in a small room: coalesced presence and welcomes
    /// list names alone, so a large room's events stay small), and the `epoch` the client's
    /// `since` counts in, if it said (another epoch than the room's: `since` means nothing here,
    /// so the client gets all the history held, and `truncated`).
    pub(super) fn enter_with_info(
        &self,
        nick: &str,
        info: Option<&RawValue>,
        since: Option<u64>,
        epoch: Option<Epoch>,
    ) -> Entered {
        let mut state = self.lock();
        // Shared presence: the engine has registered this connection already and the room's
        // list has caught up with it (see `chat::redis::presence`); nothing to count or say here.
        let (nick, first_connection) = match state.user(nick) {
            Ok(at) if self.config.shared_presence => (Arc::clone(&state.users[at].0), false),
            Err(_) if self.config.shared_presence => (nick.into(), false),
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
        let presence_queued = first_connection && self.announce(&mut state, &nick, Some(info));
        // Subscribe after announcing: the joiner learns of itself from its welcome, not a `join`.
        let events = Subscription {
            rx: state.tx.subscribe(),
        };

        let last_id = state.last_id;
        let other_life = since.is_some() && epoch.is_some_and(|epoch| epoch != state.epoch);
        // From another life of the room, the cursor counts nothing here: resume from the start.
        let since = if other_life { Some(0) } else { since };
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
                    other_life || since + 1 < oldest_held || since > last_id,
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
            epoch: state.epoch,
            truncated,
        }
        .to_parts(tail);
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
        if self.config.shared_presence {
            // The engine announces the leave, if it was the nickname's last connection anywhere.
        } else if let Ok(at) = state.user(nick) {
            if state.users[at].1 > 1 {
                state.users[at].1 -= 1;
            } else {
                let (nick, _) = state.users.remove(at);
                presence_queued = self.announce(&mut state, &nick, None);
            }
        }
        Exited {
            empty: state.connections == 0,
            presence_queued,
        }
    }

    /// Gives back a [`Self::reserve`]d place that was never entered. Returns whether the room
    /// is now empty.
    pub(super) fn release(&self) -> bool {
        let mut state = self.lock();
        state.connections -= 1;
        state.connections == 0
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
        state.send(&self.config, frame, Audience::EVERYONE);
        id
    }

    /// A message whose id the engine assigned, as it arrives from the engine (Redis: on every
    /// process, the poster's included): kept and broadcast like [`Self::post`]'s, encoded once
    /// here for every local member. An id this room already holds is dropped, so a message that
    /// both the load and the subscription brought is delivered once.
    pub fn deliver(&self, id: u64, json: String) {
        let mut state = self.lock();
        if id <= state.last_id {
            return;
        }
        state.last_id = id;
        let frame = crate::ws::encode_frame(crate::ws::OpCode::Text, json.as_bytes());
        state.remember(id, json, &self.config);
        state.send(&self.config, frame, Audience::EVERYONE);
    }

    /// Takes the engine's state of the room (its epoch, last id and latest messages, oldest
    /// first) before the first local member enters. Messages delivered since the subscription
    /// began are merged in by id: they may be newer than what was read, or the same.
    pub fn load(&self, epoch: Epoch, last_id: u64, history: Vec<(u64, String)>) {
        let mut state = self.lock();
        let mut messages: Vec<(u64, String)> = state
            .history
            .take()
            .map(|held| {
                held.entries
                    .into_iter()
                    .map(|e| (e.id, e.json.get().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        messages.extend(history);
        messages.sort_by_key(|(id, _)| *id);
        messages.dedup_by_key(|(id, _)| *id);
        for (id, json) in messages {
            state.remember(id, json, &self.config);
        }
        state.epoch = epoch;
        state.last_id = state.last_id.max(last_id);
    }

    /// Takes the engine's list of the room's users (shared presence) before its first local
    /// member enters: nobody here to tell.
    pub fn load_users(&self, names: Vec<String>) {
        let mut state = self.lock();
        state.users = sorted_users(names);
    }

    /// Takes the engine's list of users again (after Redis lost its data, or this process was
    /// taken for dead), announcing who arrived and who left in between. Returns whether the room
    /// now has coalesced presence queued where it had none (the hub must schedule a flush).
    pub fn replace_users(&self, names: Vec<String>) -> bool {
        let mut state = self.lock();
        let old = std::mem::replace(&mut state.users, sorted_users(names));
        let mut queued = false;
        let arrived: Vec<Arc<str>> = state
            .users
            .iter()
            .filter(|(name, _)| old.binary_search_by(|(o, _)| o.cmp(name)).is_err())
            .map(|(name, _)| Arc::clone(name))
            .collect();
        for (name, _) in &old {
            if state.user(name).is_err() {
                queued |= self.announce(&mut state, name, None);
            }
        }
        for name in &arrived {
            queued |= self.announce(&mut state, name, Some(None));
        }
        queued
    }

    /// The engine says `nick` has its first connection anywhere (shared presence): added, and
    /// announced to the local members like a local join. Returns what [`Self::announce`] does.
    pub fn remote_join(&self, nick: &str, info: Option<&RawValue>) -> bool {
        let mut state = self.lock();
        let Err(at) = state.user(nick) else {
            return false;
        };
        let nick: Arc<str> = nick.into();
        state.users.insert(at, (Arc::clone(&nick), 1));
        self.announce(&mut state, &nick, Some(info))
    }

    /// The engine says `nick`'s last connection anywhere has gone (shared presence).
    pub fn remote_leave(&self, nick: &str) -> bool {
        let mut state = self.lock();
        let Ok(at) = state.user(nick) else {
            return false;
        };
        let (nick, _) = state.users.remove(at);
        self.announce(&mut state, &nick, None)
    }

    /// The room's epoch.
    pub fn epoch(&self) -> Epoch {
        self.lock().epoch
    }

    /// The room's epoch and the id of its latest message: where a backfill starts from.
    pub fn cursor(&self) -> (Epoch, u64) {
        let state = self.lock();
        (state.epoch, state.last_id)
    }

    /// Catches the room up with the engine after this process was cut off from it (Redis:
    /// its pub/sub connection was lost), before any later message is delivered. `gap`: the
    /// engine's messages after [`Self::cursor`]'s id (after 0 if `epoch` is another), oldest
    /// first, as many as it still holds; `last_id`: its latest id.
    ///
    /// The members are told exactly what happened, in their place among the room's events:
    /// - same life: the gap's messages, delivered as live ones are, preceded by `lagged` with
    ///   the count of those the engine no longer holds;
    /// - another life (the engine lost the room and made it afresh): `truncated` with the new
    ///   epoch, then the new life's messages (and `lagged` first if some are already gone).
    ///
    /// The room's history is replaced by the new life's, so later joiners and resumes are
    /// answered from it (a resume from the old epoch gets `truncated: true`).
    pub fn backfill(&self, epoch: Epoch, last_id: u64, gap: Vec<(u64, String)>) -> CaughtUp {
        let mut state = self.lock();
        let new_life = epoch != state.epoch;
        if new_life {
            state.epoch = epoch;
            state.last_id = 0;
            state.history = None;
            let frame = ServerEvent::Truncated { epoch }.to_frame();
            state.send(&self.config, frame, Audience::EVERYONE);
        }
        let first_held = gap.first().map_or(last_id + 1, |(id, _)| *id);
        let missed = first_held.saturating_sub(state.last_id + 1);
        if missed > 0 {
            let frame = ServerEvent::Lagged { missed }.to_frame();
            state.send(&self.config, frame, Audience::EVERYONE);
            state.last_id = first_held - 1;
        }
        let mut delivered = 0;
        for (id, json) in gap {
            if id > state.last_id {
                state.last_id = id;
                let frame = crate::ws::encode_frame(crate::ws::OpCode::Text, json.as_bytes());
                state.remember(id, json, &self.config);
                state.send(&self.config, frame, Audience::EVERYONE);
                delivered += 1;
            }
        }
        state.last_id = state.last_id.max(last_id);
        CaughtUp {
            new_life,
            missed,
            delivered,
        }
    }

    /// Sends `frame` to connection `conn` alone, in its place among the room's events (a
    /// sender told that its post failed).
    pub fn send_to(&self, conn: ConnId, frame: Bytes) {
        self.lock().send(&self.config, frame, Audience::only(conn));
    }

    /// Sends `frame` to connection `conn` alone, already in its wire's form `slot` (see
    /// [`Encoded::for_wire`]), in its place among the room's events.
    pub fn send_wire_to(&self, conn: ConnId, slot: usize, frame: Bytes) {
        self.lock().send_encoded(
            &self.config,
            Encoded::for_wire(slot, frame),
            Audience::only(conn),
        );
    }

    /// Broadcasts an event another process relayed (`typing`), as it came.
    pub fn relay(&self, json: &[u8]) {
        let frame = crate::ws::encode_frame(crate::ws::OpCode::Text, json);
        self.lock().send(&self.config, frame, Audience::EVERYONE);
    }

    /// Tells everyone but connection `from_conn` that `nick` is typing.
    pub fn typing(&self, nick: &str, from_conn: ConnId) {
        let frame = ServerEvent::Typing { name: nick }.to_frame();
        // Under the lock: keeps channel order consistent with `post`.
        self.lock()
            .send(&self.config, frame, Audience::all_but(from_conn));
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
        state.send(&self.config, frame, Audience::EVERYONE);
    }

    /// Users online (distinct nicknames).
    pub fn user_count(&self) -> usize {
        self.lock().users.len()
    }

    /// The capacity of the room's current broadcast channel, in events.
    pub fn channel_capacity(&self) -> usize {
        self.lock().capacity
    }

    /// A `join` (`joined` is `Some`, with the joiner's `info` if its token had one) or a `leave`
    /// (`None`) for a small room; for a large one, queued for [`Self::flush_presence`]. A join
    /// and a leave of the same name within one interval cancel out. Returns whether the room now
    /// has queued presence where it had none (so the hub must schedule a flush).
    fn announce(
        &self,
        state: &mut RoomState,
        nick: &Arc<str>,
        joined: Option<Option<&RawValue>>,
    ) -> bool {
        let nothing_pending =
            !matches!(&state.pending, Some(p) if !p.joined.is_empty() || !p.left.is_empty());
        if state.users.len() <= self.config.presence_threshold && nothing_pending {
            let event = match joined {
                Some(info) => ServerEvent::Join { name: nick, info },
                None => ServerEvent::Leave { name: nick },
            };
            state.send(&self.config, event.to_frame(), Audience::EVERYONE);
            return false;
        }
        let pending = state.pending.get_or_insert_with(Box::default);
        let (add_to, cancel_in) = if joined.is_some() {
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

/// Names as a room's `users`, sorted and each once (the count is unused with shared presence).
fn sorted_users(mut names: Vec<String>) -> Vec<(Arc<str>, usize)> {
    names.sort_unstable();
    names.dedup();
    names.into_iter().map(|name| (name.into(), 1)).collect()
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
    fn send(&mut self, config: &RoomConfig, frame: Bytes, to: Audience) {
        self.send_encoded(config, Encoded::new(frame), to);
    }

    /// [`Self::send`], for an event whose encodings are made already.
    fn send_encoded(&mut self, config: &RoomConfig, frame: Encoded, to: Audience) {
        if self.capacity < config.channel_capacity && self.tx.len() * 2 >= self.capacity {
            self.grow(config.channel_capacity);
        }
        // An error only means nobody is listening right now; the history still has it.
        let frame = Arc::new(frame);
        let _ = self.tx.send(Event::Deliver(Delivery { frame, to }));
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
mod tests;
