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

use std::sync::Arc;

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
