//! A room: who is in it, what was said, and the broadcast channel every member listens to.
//!
//! Everything that changes a room happens under one short `std::sync::Mutex` (not a tokio one:
//! nothing awaits while it is held). Sending on the broadcast channel inside that lock is what
//! makes ids, history and delivery agree: a joiner subscribes and snapshots history in one
//! critical section, so it sees every message exactly once, either in its welcome or live.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::broadcast;

use super::protocol::{ChatMessage, ServerEvent};

/// Identifies one connection, so a `typing` event can skip the typist.
pub type ConnId = u64;

/// What travels on a room's channel: one encoded frame, shared by every receiver.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub frame: Bytes,
    /// A connection that must not receive this frame (0 = none).
    pub skip: ConnId,
}

/// Per-room settings, copied from [`crate::Config`].
#[derive(Debug, Clone, Copy)]
pub struct RoomConfig {
    /// Messages kept for late joiners.
    pub history: usize,
    /// Capacity of the broadcast channel, in events.
    pub channel_capacity: usize,
    /// Above this many users, presence is coalesced.
    pub presence_threshold: usize,
    /// At most this many names in a welcome.
    pub welcome_users: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            history: 100,
            channel_capacity: 4096,
            presence_threshold: 100,
            welcome_users: 100,
        }
    }
}

pub struct Room {
    name: Arc<str>,
    config: RoomConfig,
    tx: broadcast::Sender<Delivery>,
    state: Mutex<RoomState>,
}

struct HistoryEntry {
    id: u64,
    json: Box<RawValue>,
}

#[derive(Default)]
struct RoomState {
    /// Id of the latest message; 0 before the first.
    last_id: u64,
    history: VecDeque<HistoryEntry>,
    /// Nickname to number of open connections using it. Presence follows nicknames, so a
    /// second tab (or a refresh that reconnects before the old socket closes) never flaps.
    users: BTreeMap<Arc<str>, usize>,
    /// Open connections, including those reserved by the hub but not yet entered.
    connections: usize,
    /// Coalesced presence not yet announced (large rooms only).
    joined: Vec<Arc<str>>,
    left: Vec<Arc<str>>,
}

/// What a new member gets: its welcome frame and its subscription, taken atomically.
pub struct Entry {
    pub welcome: Bytes,
    pub events: broadcast::Receiver<Delivery>,
}

impl Room {
    pub fn new(name: &str, config: RoomConfig) -> Room {
        let (tx, _) = broadcast::channel(config.channel_capacity.max(1));
        Room {
            name: name.into(),
            config,
            tx,
            state: Mutex::new(RoomState::default()),
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
    pub fn enter(&self, nick: &str, since: Option<u64>) -> Entry {
        let mut state = self.lock();
        let first_connection = {
            let count = state.users.entry(nick.into()).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first_connection {
            self.announce(&mut state, nick, true);
        }
        // Subscribe after announcing: the joiner learns of itself from its welcome, not a `join`.
        let events = self.tx.subscribe();

        let oldest_held = state.history.front().map_or(state.last_id + 1, |e| e.id);
        let (history, truncated): (Vec<&RawValue>, bool) = match since {
            Some(since) => (
                state
                    .history
                    .iter()
                    .filter(|e| e.id > since || since > state.last_id)
                    .map(|e| &*e.json)
                    .collect(),
                // Messages after `since` were dropped from the ring, or the room was reset
                // (a restarted server starts again at id 1).
                since + 1 < oldest_held || since > state.last_id,
            ),
            None => (state.history.iter().map(|e| &*e.json).collect(), false),
        };
        let users: Vec<&str> = state
            .users
            .keys()
            .take(self.config.welcome_users)
            .map(|k| &**k)
            .collect();
        let welcome = ServerEvent::Welcome {
            you: nick,
            room: &self.name,
            users,
            count: state.users.len(),
            history,
            last_id: state.last_id,
            truncated,
        }
        .to_frame();
        Entry { welcome, events }
    }

    /// Removes one connection of `nick`. Returns whether the room is now empty.
    pub fn exit(&self, nick: &str) -> bool {
        let mut state = self.lock();
        state.connections -= 1;
        let last_connection = match state.users.get_mut(nick) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                state.users.remove(nick);
                true
            }
            None => false,
        };
        if last_connection {
            self.announce(&mut state, nick, false);
        }
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
        if self.config.history > 0 {
            if state.history.len() == self.config.history {
                state.history.pop_front();
            }
            let json = RawValue::from_string(json).expect("serde_json output is JSON");
            state.history.push_back(HistoryEntry { id, json });
        }
        self.send(frame, 0);
        id
    }

    /// Tells everyone but connection `from_conn` that `nick` is typing.
    pub fn typing(&self, nick: &str, from_conn: ConnId) {
        let frame = ServerEvent::Typing { name: nick }.to_frame();
        let _state = self.lock(); // keeps channel order consistent with `post`
        self.send(frame, from_conn);
    }

    /// Announces coalesced joins and leaves, if any. Called every presence interval.
    pub fn flush_presence(&self) {
        let mut state = self.lock();
        if state.joined.is_empty() && state.left.is_empty() {
            return;
        }
        let joined = std::mem::take(&mut state.joined);
        let left = std::mem::take(&mut state.left);
        let joined: Vec<&str> = joined.iter().map(|n| &**n).collect();
        let left: Vec<&str> = left.iter().map(|n| &**n).collect();
        let frame = ServerEvent::Presence {
            joined: &joined,
            left: &left,
            count: state.users.len(),
        }
        .to_frame();
        self.send(frame, 0);
    }

    /// Users online (distinct nicknames).
    pub fn user_count(&self) -> usize {
        self.lock().users.len()
    }

    /// A `join` or `leave` for a small room; for a large one, queued for [`flush_presence`].
    /// A join and a leave of the same name within one interval cancel out.
    fn announce(&self, state: &mut RoomState, nick: &str, joined: bool) {
        if state.users.len() <= self.config.presence_threshold
            && state.joined.is_empty()
            && state.left.is_empty()
        {
            let event = if joined {
                ServerEvent::Join { name: nick }
            } else {
                ServerEvent::Leave { name: nick }
            };
            self.send(event.to_frame(), 0);
            return;
        }
        let (add_to, cancel_in) = if joined {
            (&mut state.joined, &mut state.left)
        } else {
            (&mut state.left, &mut state.joined)
        };
        if let Some(at) = cancel_in.iter().position(|n| &**n == nick) {
            cancel_in.swap_remove(at);
        } else {
            add_to.push(nick.into());
        }
    }

    fn send(&self, frame: Bytes, skip: ConnId) {
        // An error only means nobody is listening right now; the history still has it.
        let _ = self.tx.send(Delivery { frame, skip });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(frame: &Bytes) -> Value {
        let (_, n) = crate::ws::FrameHeader::parse(frame).unwrap().unwrap();
        serde_json::from_slice(&frame[n..]).unwrap()
    }

    fn next(rx: &mut broadcast::Receiver<Delivery>) -> Value {
        json(&rx.try_recv().expect("an event").frame)
    }

    fn room(config: RoomConfig) -> Room {
        Room::new("lobby", config)
    }

    fn enter(
        room: &Room,
        nick: &str,
        since: Option<u64>,
    ) -> (Value, broadcast::Receiver<Delivery>) {
        room.reserve();
        let entry = room.enter(nick, since);
        (json(&entry.welcome), entry.events)
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
    fn welcome_carries_history_users_and_cursor() {
        let room = room(RoomConfig {
            history: 3,
            ..RoomConfig::default()
        });
        let (welcome, _ann) = enter(&room, "ann", None);
        assert_eq!(welcome["last_id"], 0);
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
        assert!(!room.exit("ann"));
        assert!(
            watcher.try_recv().is_err(),
            "second tab neither joins nor leaves"
        );
        room.exit("ann");
        assert_eq!(
            next(&mut watcher),
            serde_json::json!({"type":"leave","name":"ann"})
        );
        assert!(room.exit("watcher"), "room is empty");
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
        for nick in ["c", "d", "e"] {
            enter(&room, nick, None);
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
            serde_json::json!({"type":"presence","joined":["c","d"],"left":["b"],"count":3})
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
}
