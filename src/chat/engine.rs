//! Where a room's ids, epoch and history live, and how a post reaches its members: the one seam
//! between the chat and what backs it. The WebSocket layer and the sessions never see past it.
//!
//! - [`Engine::Memory`] (the default): this process holds everything. A post is assigned its id,
//!   kept and broadcast by [`Room::post`], under the room's lock, as it always was.
//! - [`Engine::Redis`] (`--redis`): Redis holds ids, epochs and history, and every wschat process
//!   pointed at it serves the same rooms ([`super::redis`]). A post goes to Redis and comes back
//!   to every process, this one included, through pub/sub; each process feeds it into its local
//!   room ([`Room::deliver`]), so fan-out stays local and encode-once. Presence is shared too:
//!   a joiner is registered in Redis before it enters ([`Engine::arrive`]), and the room's list
//!   of users is Redis's, changed by what Redis announces, not by local entries and exits.
//!
//! An enum rather than a trait object: there are two engines, the memory one must cost nothing
//! (no allocation, no indirect call on the post path), and a `match` shows both side by side.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::protocol::RequestError;
use super::redis::{RedisEngine, Schedule, Timing, Unavailable};
use super::reply::Reply;
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
            Some(url) => {
                let timing = Timing::checked(config.presence_heartbeat, config.presence_expiry)?;
                Ok(Engine::Redis(
                    RedisEngine::connect(url, config.history, timing).await?,
                ))
            }
        }
    }

    /// Posts `text` from `from` in `room`. Returns the message's id when it is known at once
    /// (memory); `None` when the engine assigns it later (Redis: the id arrives with the
    /// message itself, on every process at once).
    /// `conn` is the poster's connection: with Redis, a post that fails later is answered to it
    /// alone with an `error` event (`unavailable`), or with `reply`'s failure if it gave one;
    /// one that cannot even be queued is `Err` now. `reply`: what to send it once the id is
    /// known, if it is not at once (unused in memory).
    pub fn post(
        &self,
        room: &Room,
        from: &str,
        text: &str,
        conn: u64,
        reply: Option<Box<Reply>>,
    ) -> Result<Option<u64>, RequestError> {
        match self {
            Engine::Memory => Ok(Some(room.post(from, text))),
            Engine::Redis(redis) => redis.post(room, from, text, conn, reply).map(|()| None),
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

    /// Registers a connection of `nick` in `room` (prepared), for engines that share presence:
    /// nothing in memory (the room counts its own); with Redis, counted across processes, and
    /// announced there if it is the nickname's first connection anywhere. `Err` says whether
    /// it was registered all the same, so whether [`Engine::left`] is owed.
    pub async fn arrive(
        &self,
        room: &Arc<Room>,
        nick: &str,
        info: Option<&RawValue>,
    ) -> Result<(), (Unavailable, bool)> {
        match self {
            Engine::Memory => Ok(()),
            Engine::Redis(redis) => redis.arrive(room, nick, info).await,
        }
    }

    /// A connection [`Engine::arrive`]d in `room` has left.
    pub(super) fn left(&self, room: &Room, nick: &str) {
        if let Engine::Redis(redis) = self {
            redis.left(room, nick);
        }
    }

    /// The server is stopping, its connections closed: Redis takes back what this process
    /// still counts, so its users leave the other processes now.
    pub async fn depart(&self) {
        if let Engine::Redis(redis) = self {
            redis.depart().await;
        }
    }

    /// Whether rooms take their users from the engine rather than count their own.
    pub fn shares_presence(&self) -> bool {
        !matches!(self, Engine::Memory)
    }

    /// Tells the engine how to schedule the flush of a room's coalesced presence (the hub's
    /// task), for presence other processes announce (Redis).
    pub(super) fn attach(&self, schedule: Schedule) {
        if let Engine::Redis(redis) = self {
            redis.attach(schedule);
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
