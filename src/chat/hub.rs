//! The registry of rooms: a room exists while somebody is in it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::room::{Entry, Room, RoomConfig};

pub struct Hub {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    config: RoomConfig,
    /// How often large rooms announce coalesced presence.
    presence_interval: Duration,
}

/// A connection's place in a room. Dropping it leaves the room (and drops the room when it was
/// the last member), so a session that ends any way at all, even by panic, leaks nothing.
pub struct Membership {
    hub: Arc<Hub>,
    room: Arc<Room>,
    nick: String,
}

impl Hub {
    pub fn new(config: RoomConfig, presence_interval: Duration) -> Arc<Hub> {
        Arc::new(Hub {
            rooms: Mutex::new(HashMap::new()),
            config,
            presence_interval,
        })
    }

    /// Joins `nick` to `room_name`, creating the room on first use. Must run inside a tokio
    /// runtime: a new room starts its presence ticker.
    pub fn join(
        self: &Arc<Self>,
        room_name: &str,
        nick: &str,
        since: Option<u64>,
    ) -> (Membership, Entry) {
        let room = {
            let mut rooms = self.lock();
            let room = rooms
                .entry(room_name.to_owned())
                .or_insert_with(|| self.create(room_name))
                .clone();
            // Reserved under the hub lock, so `leave` of another member cannot drop the room
            // between our lookup and our entry.
            room.reserve();
            room
        };
        let entry = room.enter(nick, since);
        let membership = Membership {
            hub: Arc::clone(self),
            room,
            nick: nick.to_owned(),
        };
        (membership, entry)
    }

    /// Rooms that currently exist.
    pub fn room_count(&self) -> usize {
        self.lock().len()
    }

    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.lock().get(name).cloned()
    }

    fn create(&self, name: &str) -> Arc<Room> {
        let room = Arc::new(Room::new(name, self.config));
        // One small task per room flushes coalesced presence; it ends when the room is dropped.
        let weak: Weak<Room> = Arc::downgrade(&room);
        let interval = self.presence_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match weak.upgrade() {
                    Some(room) => room.flush_presence(),
                    None => break,
                }
            }
        });
        room
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        if self.room.exit(&self.nick) {
            let mut rooms = self.hub.lock();
            // Re-check under the hub lock: somebody may have joined since `exit`.
            if let Some(room) = rooms.get(self.room.name()) {
                if Arc::ptr_eq(room, &self.room) && room.is_empty() {
                    rooms.remove(self.room.name());
                }
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
        drop(ann);
        assert_eq!(hub.room("a").unwrap().user_count(), 1);
        drop(bob);
        assert_eq!(hub.room_count(), 0);
    }

    #[tokio::test]
    async fn rooms_are_isolated() {
        let hub = Hub::new(RoomConfig::default(), Duration::from_secs(1));
        let (_a, mut in_a) = hub.join("a", "ann", None);
        let (b, _) = hub.join("b", "bob", None);
        b.room().post("bob", "only in b");
        assert!(in_a.events.try_recv().is_err());
    }
}
