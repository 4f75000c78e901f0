//! The registry of rooms: a room exists while somebody is in it.
//!
//! Rooms live in [`SHARDS`] maps, each under its own `std::sync::Mutex`, chosen by a hash of the
//! room's name: thousands of clients joining and leaving thousands of different rooms at once
//! rarely wait for each other, and each critical section is a map lookup (creating a room is a
//! few small allocations, as a new room's channel is small). Rejected: one global map (every join
//! and leave of every room serialised on it); a concurrent map crate (a dependency for what a
//! dozen lines do); an `RwLock` (joins and leaves write, and they are what storms are made of).
//!
//! The hub also flushes coalesced presence, with one task for the whole server that exists only
//! while some room has presence queued: an idle server, however many rooms it holds, has no
//! timer at all. Rejected: a ticker task per room (10,000 quiet rooms woke 10,000 times a second
//! and each task cost memory), and one permanent hub ticker (a wake-up per interval for nothing).

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::value::RawValue;

use super::engine::Engine;
use super::epoch::Epoch;
use super::redis::Unavailable;
use super::room::{Entry, Room, RoomConfig};

/// Independent maps the rooms are spread over. More than the cores of any machine this runs on,
/// so two joins meet on a lock only by a hash collision; each empty shard costs about 64 bytes.
const SHARDS: usize = 32;

type Shard = Mutex<HashSet<Listed>>;

/// A room in its shard's set, found by its name. A set of rooms rather than a map from name to
/// room: the name is already in the room, and each slot of the table costs 8 bytes, not 24.
struct Listed(Arc<Room>);

impl Borrow<str> for Listed {
    fn borrow(&self) -> &str {
        self.0.name()
    }
}

impl Hash for Listed {
    /// Hashes as its name does, as `Borrow<str>` requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name().hash(state)
    }
}

impl PartialEq for Listed {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Eq for Listed {}

pub struct Hub {
    shards: Box<[Shard]>,
    hasher: RandomState,
    /// Rooms that exist now, kept beside the shards so counting them takes no lock.
    rooms: AtomicUsize,
    config: Arc<RoomConfig>,
    /// Most rooms at once (0 = no limit beyond the connection limit); see [`Hub::admit`].
    max_rooms: usize,
    /// How often large rooms announce coalesced presence.
    presence_interval: Duration,
    presence: Mutex<PresenceQueue>,
    /// What backs the rooms: this process's memory, or Redis (`--redis`).
    engine: Engine,
}

/// Rooms with coalesced presence to announce, and whether the flushing task is running.
#[derive(Default)]
struct PresenceQueue {
    rooms: Vec<Weak<Room>>,
    ticking: bool,
}

/// Why a new room was refused: the server holds `--max-rooms` rooms already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimit;

/// A connection's place in a room. Dropping it leaves the room (and drops the room when it was
/// the last member), so a session that ends any way at all, even by panic, leaks nothing.
pub struct Membership {
    hub: Arc<Hub>,
    room: Arc<Room>,
    /// Shared with the room's list of users.
    nick: Arc<str>,
}

impl Hub {
    pub fn new(config: RoomConfig, presence_interval: Duration) -> Arc<Hub> {
        Hub::with_max_rooms(config, presence_interval, 0)
    }

    /// A hub that refuses new rooms beyond `max_rooms` (0 = no limit).
    pub fn with_max_rooms(
        config: RoomConfig,
        presence_interval: Duration,
        max_rooms: usize,
    ) -> Arc<Hub> {
        Hub::with_engine(config, presence_interval, max_rooms, Engine::Memory)
    }

    /// A hub whose rooms are backed by `engine`.
    pub fn with_engine(
        config: RoomConfig,
        presence_interval: Duration,
        max_rooms: usize,
        engine: Engine,
    ) -> Arc<Hub> {
        Arc::new(Hub {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            rooms: AtomicUsize::new(0),
            config: Arc::new(config),
            max_rooms,
            presence_interval,
            presence: Mutex::default(),
            engine,
        })
    }

    /// What backs the rooms.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a client may join `room_name`: always if it exists, else if the server is under
    /// `--max-rooms`. Checked before the upgrade so a refusal is a plain `503`. The cap is soft by
    /// the handshakes in flight at that instant (each checks, then joins after its `101`): a
    /// handful, never more than the connection limit, so memory stays bounded.
    pub fn admit(&self, room_name: &str) -> Result<(), RoomLimit> {
        if self.max_rooms == 0
            || self.rooms.load(Ordering::Relaxed) < self.max_rooms
            || self.shard(room_name).contains(room_name)
        {
            Ok(())
        } else {
            Err(RoomLimit)
        }
    }

    /// Joins `nick` to `room_name`, creating the room on first use. Coalesced presence in a large
    /// room starts the presence task, so outside a tokio runtime it is never flushed.
    pub fn join(
        self: &Arc<Self>,
        room_name: &str,
        nick: &str,
        since: Option<u64>,
    ) -> (Membership, Entry) {
        self.join_with_info(room_name, nick, None, since)
    }

    /// [`Self::join`], with the `info` of the joiner's token for its `join` event.
    pub fn join_with_info(
        self: &Arc<Self>,
        room_name: &str,
        nick: &str,
        info: Option<&RawValue>,
        since: Option<u64>,
    ) -> (Membership, Entry) {
        let room = self.reserve(room_name);
        self.enter(room, nick, info, since, None)
    }

    /// Holds `room_name` open (creating it if need be) and has the engine prepare it, for a
    /// connection that will then [`Self::join_reserved`]. With Redis, this is where the room is
    /// subscribed to and loaded; in memory it is immediate. Awaited before the session starts,
    /// so the session itself never waits for the engine.
    pub async fn reserve_prepared(
        self: &Arc<Self>,
        room_name: &str,
    ) -> Result<Reservation, Unavailable> {
        let reservation = Reservation {
            hub: Arc::clone(self),
            room: Some(self.reserve(room_name)),
        };
        if let Some(room) = &reservation.room {
            self.engine.prepare(room).await?;
        }
        Ok(reservation)
    }

    /// Holds `room_name` open without asking the engine: for the memory engine, which has
    /// nothing to prepare.
    pub fn reserve_now(self: &Arc<Self>, room_name: &str) -> Reservation {
        Reservation {
            hub: Arc::clone(self),
            room: Some(self.reserve(room_name)),
        }
    }

    /// Enters a room held by [`Self::reserve_prepared`] or [`Self::reserve_now`]; `epoch`: the one the client's `since`
    /// counts in, if it said.
    pub fn join_reserved(
        self: &Arc<Self>,
        mut reservation: Reservation,
        nick: &str,
        info: Option<&RawValue>,
        since: Option<u64>,
        epoch: Option<Epoch>,
    ) -> (Membership, Entry) {
        let room = reservation
            .room
            .take()
            .expect("a reservation is entered once");
        self.enter(room, nick, info, since, epoch)
    }

    fn enter(
        self: &Arc<Self>,
        room: Arc<Room>,
        nick: &str,
        info: Option<&RawValue>,
        since: Option<u64>,
        epoch: Option<Epoch>,
    ) -> (Membership, Entry) {
        let entered = room.enter_with_info(nick, info, since, epoch);
        if entered.presence_queued {
            self.queue_presence(&room);
        }
        let membership = Membership {
            hub: Arc::clone(self),
            room,
            nick: entered.nick,
        };
        (membership, entered.entry)
    }

    /// The room named `room_name`, created if need be, with one connection counted in it so it
    /// stays until that connection enters and leaves (or its reservation is dropped).
    fn reserve(&self, room_name: &str) -> Arc<Room> {
        {
            let mut rooms = self.shard(room_name);
            let room = match rooms.get(room_name) {
                Some(Listed(room)) => Arc::clone(room),
                None => {
                    let room = Arc::new(Room::with_config(
                        room_name.into(),
                        Arc::clone(&self.config),
                    ));
                    rooms.insert(Listed(Arc::clone(&room)));
                    self.rooms.fetch_add(1, Ordering::Relaxed);
                    room
                }
            };
            // Reserved under the shard's lock, so `leave` of another member cannot drop the
            // room between our lookup and our entry.
            room.reserve();
            room
        }
    }

    /// Drops `room` from the registry if nobody is in it (checked again under the shard's
    /// lock: somebody may have joined since its last member left).
    fn remove_if_empty(&self, room: &Arc<Room>) {
        let mut rooms = self.shard(room.name());
        if let Some(Listed(listed)) = rooms.get(room.name()) {
            if Arc::ptr_eq(listed, room) && room.is_empty() {
                rooms.remove(room.name());
                self.rooms.fetch_sub(1, Ordering::Relaxed);
                drop(rooms);
                self.engine.dropped(room);
            }
        }
    }

    /// Rooms that currently exist.
    pub fn room_count(&self) -> usize {
        self.rooms.load(Ordering::Relaxed)
    }

    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.shard(name)
            .get(name)
            .map(|Listed(room)| Arc::clone(room))
    }

    fn shard(&self, name: &str) -> MutexGuard<'_, HashSet<Listed>> {
        let at = self.hasher.hash_one(name) as usize % SHARDS;
        self.shards[at]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn presence(&self) -> MutexGuard<'_, PresenceQueue> {
        self.presence
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers that `room` has presence to announce, and starts the flushing task if it is
    /// not running. A room is queued when its queue goes from empty to not, so at most once per
    /// interval (a join and leave that cancel out may leave a stale entry: flushing it is a no-op).
    fn queue_presence(self: &Arc<Self>, room: &Arc<Room>) {
        let mut queue = self.presence();
        queue.rooms.push(Arc::downgrade(room));
        if !queue.ticking {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                queue.ticking = true;
                runtime.spawn(flush_presence(Arc::downgrade(self), self.presence_interval));
            }
        }
    }
}

/// Every `interval`, announces the queued presence of every room that has some; ends at the
/// first tick that finds none (or when the hub is gone), so it never outlives the work. Not
/// tied to the shutdown signal for the same reason: it ends by itself within one interval.
async fn flush_presence(hub: Weak<Hub>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(hub) = hub.upgrade() else { return };
        let rooms = {
            let mut queue = hub.presence();
            if queue.rooms.is_empty() {
                queue.ticking = false;
                return;
            }
            std::mem::take(&mut queue.rooms)
        };
        for room in rooms.iter().filter_map(Weak::upgrade) {
            room.flush_presence();
        }
    }
}

impl Membership {
    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }

    pub fn nick(&self) -> &str {
        &self.nick
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let exited = self.room.exit(&self.nick);
        if exited.presence_queued {
            self.hub.queue_presence(&self.room);
        }
        if exited.empty {
            self.hub.remove_if_empty(&self.room);
        }
    }
}

/// A room held open for a connection that has not entered it yet (see
/// [`Hub::reserve_prepared`]). Dropped without entering (the connection failed first), it gives
/// its place back, and the room goes if that was the last.
pub struct Reservation {
    hub: Arc<Hub>,
    /// `None` once entered.
    room: Option<Arc<Room>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(room) = self.room.take() {
            if room.release() {
                self.hub.remove_if_empty(&room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rooms_live_while_occupied() {
        let hub = Hub::new(RoomConfig::default(), Duration::from_secs(1));
        let (ann, _) = hub.join("a", "ann", None);
        let (bob, _) = hub.join("a", "bob", None);
        let (cat, _) = hub.join("b", "cat", None);
        assert_eq!(hub.room_count(), 2);
        drop(cat);
        assert_eq!(hub.room_count(), 1);
        assert!(hub.room("b").is_none(), "dropped with its last member");
        drop(ann);
        assert_eq!(hub.room("a").unwrap().user_count(), 1);
        drop(bob);
        assert_eq!(hub.room_count(), 0);
        assert!(hub.room("a").is_none());
    }

    #[tokio::test]
    async fn rooms_are_isolated() {
        let hub = Hub::new(RoomConfig::default(), Duration::from_secs(1));
        let (_a, mut in_a) = hub.join("a", "ann", None);
        let (b, _) = hub.join("b", "bob", None);
        b.room().post("bob", "only in b");
        assert!(in_a.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn max_rooms_refuses_new_rooms_only() {
        let hub = Hub::with_max_rooms(RoomConfig::default(), Duration::from_secs(1), 2);
        let _a = hub.join("a", "ann", None);
        assert_eq!(hub.admit("b"), Ok(()));
        let b = hub.join("b", "bob", None);
        assert_eq!(hub.admit("c"), Err(RoomLimit));
        assert_eq!(hub.admit("a"), Ok(()), "an existing room stays joinable");
        drop(b);
        assert_eq!(hub.admit("c"), Ok(()), "a dropped room frees its place");
    }

    #[tokio::test(start_paused = true)]
    async fn presence_is_flushed_by_one_task_that_ends_when_idle() {
        let config = RoomConfig {
            presence_threshold: 1,
            ..RoomConfig::default()
        };
        let hub = Hub::new(config, Duration::from_secs(1));
        let (_a, mut watcher) = hub.join("big", "a", None);
        let _b = hub.join("big", "b", None);
        let _quiet = hub.join("quiet", "q", None);
        assert!(hub.presence().ticking);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let presence = watcher
            .events
            .try_recv()
            .expect("flushed after one interval");
        assert!(String::from_utf8_lossy(presence.frame.plain()).contains("presence"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!hub.presence().ticking, "no task while nothing is queued");
        let _c = hub.join("big", "c", None);
        assert!(hub.presence().ticking, "started again by the next change");
    }
}
