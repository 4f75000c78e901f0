//! Where a room's ids, epoch and history live, and how a post reaches its members: the one seam
//! between the chat and what backs it. The WebSocket layer and the sessions never see past it.
//!
//! - [`Engine::Memory`] (the default): this process holds everything. A post is assigned its id,
//!   kept and broadcast by [`Room::post`], under the room's lock, as it always was.
//! - [`Engine::Redis`] (`--redis`): Redis holds ids, epochs and history, and every wschat process
//!   pointed at it serves the same rooms ([`super::redis`]). A post goes to Redis and comes back
//!   to every process, this one included, through pub/sub; each process feeds it into its local
//!   room ([`Room::deliver`]), so fan-out stays local and encode-once.
//!
//! An enum rather than a trait object: there are two engines, the memory one must cost nothing
//! (no allocation, no indirect call on the post path), and a `match` shows both side by side.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::protocol::RequestError;
use super::redis::{RedisEngine, Unavailable};
use super::room::Room;
use crate::Config;

/// What backs the rooms of a hub.
#[derive(Clone, Default)]
pub enum Engine {
    /// This process alone: rooms, ids and history live and die with it.
    #[default]
    Memory,
    /// Shared with every process on the same Redis.
    Redis(Arc<RedisEngine>),
}

impl Engine {
    /// The engine `config` asks for: Redis if `--redis` is given (connected now, so a wrong URL
    /// or a Redis that is down stops the server before it listens), else memory.
    pub async fn from_config(config: &Config) -> Result<Engine, String> {
        match &config.redis {
            None => Ok(Engine::Memory),
            Some(url) => Ok(Engine::Redis(
                RedisEngine::connect(url, config.history).await?,
            )),
        }
    }

    /// Posts `text` from `from` in `room`. Returns the message's id when it is known at once
    /// (memory); `None` when the engine assigns it later (Redis: the id arrives with the
    /// message itself, on every process at once).
    /// `conn` is the poster's connection: with Redis, a post that fails later is answered to it
    /// alone with an `error` event (`unavailable`); one that cannot even be queued is `Err` now.
    pub fn post(
        &self,
        room: &Room,
        from: &str,
        text: &str,
        conn: u64,
    ) -> Result<Option<u64>, RequestError> {
        match self {
            Engine::Memory => Ok(Some(room.post(from, text))),
            Engine::Redis(redis) => redis.post(room, from, text, conn).map(|()| None),
        }
    }

    /// Tells the room's members but connection `conn` that `nick` is typing: on this process
    /// at once; with Redis, on the others too.
    pub fn typing(&self, room: &Room, nick: &str, conn: u64) {
        room.typing(nick, conn);
        if let Engine::Redis(redis) = self {
            redis.relay(
                room,
                super::protocol::ServerEvent::Typing { name: nick }
                    .to_json()
                    .as_bytes(),
            );
        }
    }

    /// Makes `room` ready for its first member: nothing to do in memory; with Redis, subscribes
    /// this process to the room and loads its epoch, last id and history. Done once per local
    /// room; later joiners of the same room wait for the first one's load, or find it done.
    pub async fn prepare(&self, room: &Arc<Room>) -> Result<(), Unavailable> {
        match self {
            Engine::Memory => Ok(()),
            Engine::Redis(redis) => redis.prepare(room).await,
        }
    }

    /// `room` was dropped by the hub (its last local member left).
    pub(super) fn dropped(&self, room: &Arc<Room>) {
        if let Engine::Redis(redis) = self {
            redis.dropped(room);
        }
    }

    /// Whether this process can serve its rooms: always in memory; with Redis, while its
    /// subscription is up and every room it feeds has caught up after the last reconnection (a
    /// process that does not hear the others must not take members).
    pub fn healthy(&self) -> bool {
        match self {
            Engine::Memory => true,
            Engine::Redis(redis) => redis.healthy(),
        }
    }

    /// Whether joins must [`Engine::prepare`] their room first.
    pub fn needs_prepare(&self) -> bool {
        !matches!(self, Engine::Memory)
    }
}

/// Which life of a room a message id belongs to: a random value made when the room's state is
/// created in the engine (a memory room when it is created, a Redis room when its keys are). Ids
/// restart at 1 in a new life, so a client resuming with `since=` must also say which life its
/// cursor is from (`epoch=`); another epoch means its cursor means nothing here (`truncated`).
///
/// Shown as 16 hexadecimal digits, a string rather than a JSON number: JavaScript numbers hold
/// only 53 bits exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(pub u64);

impl Epoch {
    /// A fresh epoch. `RandomState` is seeded from the operating system's randomness, so two
    /// processes (or two lives of one room) do not meet; mixing in the time and a counter keeps
    /// two epochs of one process apart even where `RandomState` keys are reused per thread.
    pub fn random() -> Epoch {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        hasher.write_u128(now.as_nanos());
        Epoch(hasher.finish())
    }

    /// Parses the 1 to 16 hexadecimal digits of `epoch=` (or of the engine's stored value).
    pub fn parse(text: &str) -> Option<Epoch> {
        if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Epoch)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl serde::Serialize for Epoch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_print_as_sixteen_hex_digits_and_parse_back() {
        let epoch = Epoch(0xab);
        assert_eq!(epoch.to_string(), "00000000000000ab");
        assert_eq!(Epoch::parse(&epoch.to_string()), Some(epoch));
        assert_eq!(Epoch::parse("AB"), Some(epoch));
        for bad in ["", "g", "+1", "00000000000000000", " 1"] {
            assert_eq!(Epoch::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            serde_json::to_string(&epoch).unwrap(),
            "\"00000000000000ab\""
        );
    }

    #[test]
    fn fresh_epochs_differ() {
        let epochs: std::collections::HashSet<u64> = (0..100).map(|_| Epoch::random().0).collect();
        assert_eq!(epochs.len(), 100);
    }
}
