//! The Redis engine (`--redis`): every wschat process pointed at one Redis serves the same rooms.
//!
//! What lives in Redis, per room `R` (names are URL-safe ASCII, so they go into keys as they are):
//! - `wschat:room:R:id`: the latest message id (`INCR`), so ids are one sequence across processes;
//! - `wschat:room:R:epoch`: the room's [`Epoch`], set once (`SET NX`) when its state is created;
//! - `wschat:room:R:history`: a stream of the latest `--history` messages (`XADD MAXLEN`), each
//!   entry's stream id `<message id>-0`, its one field the message's JSON;
//! - channel `wschat:room:R`: every message, published as the JSON the members receive.
//!
//! Posting is one script ([`POST`]): id, stream and publish in one atomic step, so the order of
//! ids is the order of publication, which is the order every subscribed process receives. One
//! pub/sub connection per process, subscribed to a room's channel while the process has a member
//! in it (not one per connection, nor one per room); what arrives is fed into the local room
//! ([`Room::deliver`]), which encodes it once for all its local members. A post is not sent to
//! the local room directly: it comes back through the subscription like everyone else's, so it
//! is delivered once and in the same order on every process.
//!
//! A local room is loaded when its first local member joins ([`RedisEngine::prepare`]): subscribe
//! first, then read the epoch, last id and stream tail in one script ([`LOAD`]), and merge
//! whatever arrived in between by id, so no message is missed or repeated.
//!
//! Faults ([`subscriber`] keeps the pub/sub connection): when it is lost, the process says so on
//! `/healthz` and turns new members away until it has reconnected, resubscribed and backfilled
//! every room it feeds from the room's stream ([`BACKFILL`], [`Room::backfill`]): the gap
//! delivered in order, or `lagged` for what the stream no longer holds, or `truncated` with the
//! new epoch when Redis lost the room. A post that fails is answered to its sender alone.
//! Commands go over a [`ConnectionManager`], which reconnects by itself.
//!
//! Presence (who is in a room on any process, and the expiry of a dead process's users) is
//! [`presence`]'s.
//!
//! Longer than most files here because it is one idea, what a room's messages are in Redis:
//! the keys and the scripts that write and read them (post, load, backfill), side by side, so a
//! change to one shows what the others assume. Who sends the posts ([`poster`]), who keeps the
//! subscription ([`subscriber`]) and who counts presence ([`presence`]) live beside it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::{mpsc, oneshot, OnceCell};

use super::epoch::Epoch;
use super::protocol::{ChatMessage, RequestError, ServerEvent};
use super::reply::Reply;
use super::room::Room;
use crate::metrics::RedisMetrics;
use subscriber::Control;

mod poster;
mod subscriber;

mod presence;

pub use presence::{Schedule, Timing};

/// Posts a message. KEYS: id, history stream. ARGV: the message's JSON before its id and after
/// it, the stream's length (0: keep none), the channel. Returns the id.
///
/// The JSON is made by the poster with a hole for the id (see [`json_around_id`]), so the script
/// does no JSON of its own and every process receives exactly the bytes it will send.
const POST: &str = r"
local id = redis.call('INCR', KEYS[1])
local json = ARGV[1] .. tostring(id) .. ARGV[2]
if tonumber(ARGV[3]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], tostring(id) .. '-0', 'json', json)
end
redis.call('PUBLISH', ARGV[4], json)
return id
";

/// Loads a room. KEYS: id, history stream, epoch. ARGV: a fresh epoch (kept only if the room
/// has none), how many messages to read. Returns the epoch, the last id and the stream's tail,
/// newest first.
const LOAD: &str = r"
redis.call('SET', KEYS[3], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[3])
local last = redis.call('GET', KEYS[1]) or '0'
local tail = {}
if tonumber(ARGV[2]) > 0 then
  tail = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[2])
end
return {epoch, last, tail}
";

/// Brings a room back after the pub/sub connection was lost. KEYS: id, history stream, epoch.
/// ARGV: a fresh epoch (kept only if the room has none: Redis lost it), the local room's epoch,
/// its last id, how many messages to read. Returns the epoch, the last id and, newest first, at
/// most that many messages after the local last id (after 0 if the epoch is not the local one:
/// every message of the new life is new to the members).
const BACKFILL: &str = r"
redis.call('SET', KEYS[3], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[3])
local last = redis.call('GET', KEYS[1]) or '0'
local after = ARGV[3]
if epoch ~= ARGV[2] then after = '0' end
local gap = {}
if tonumber(ARGV[4]) > 0 then
  gap = redis.call('XREVRANGE', KEYS[2], '+', '(' .. after .. '-0', 'COUNT', ARGV[4])
end
return {epoch, last, gap}
";

/// Longest wait for Redis when a room is loaded: past it the joiner is turned away rather than
/// left waiting on a broker that does not answer.
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Posts waiting for the poster task. A post is a few hundred bytes, so this bounds what a
/// stalled Redis can make the process hold; beyond it posts are dropped and logged.
const POST_QUEUE: usize = 4096;

/// The prefix of every key and channel.
const PREFIX: &str = "wschat:room:";

/// Why a room could not be loaded: Redis did not answer, or answered with an error.
#[derive(Debug, Clone)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis unavailable: {}", self.0)
    }
}

pub struct RedisEngine {
    /// Commands and scripts; reconnects by itself after a lost connection.
    conn: ConnectionManager,
    /// To the poster task ([`poster`]), which runs posts in the order they were made, as many
    /// as are waiting in one pipeline, so a sender's messages keep their order.
    posts: mpsc::Sender<Post>,
    /// To the subscriber task, which owns the pub/sub connection's sending half: subscribes and
    /// unsubscribes in the order they were decided.
    control: mpsc::UnboundedSender<Control>,
    /// The rooms this process is subscribed to, by name: where arriving messages go.
    rooms: Mutex<HashMap<Box<str>, Fed>>,
    /// `--history`: the stream's length and how much a load reads.
    history: usize,
    post_script: Script,
    load_script: Script,
    backfill_script: Script,
    /// This process, among those on the same Redis: what it marks the events it relays with,
    /// so it can skip them when they come back.
    origin: Epoch,
    /// Whether the pub/sub connection is up and every fed room caught up: while not, this
    /// process does not hear the other processes, so it says so on `/healthz` and turns new
    /// members away. Cleared when the connection is lost, set again by the subscriber once it
    /// has resubscribed and backfilled.
    up: AtomicBool,
    /// Times the pub/sub connection was lost (see [`Self::losses`]).
    losses: AtomicU64,
    /// Round trips, reconnections, backfilled messages and failed posts (`/metrics`).
    metrics: RedisMetrics,
    /// Who is in each room on any process ([`presence`]).
    presence: presence::Presence,
}

/// A local room fed by the subscription, and whether it has been loaded.
struct Fed {
    room: Weak<Room>,
    loaded: Arc<OnceCell<()>>,
}

struct Post {
    room: Box<str>,
    what: Posted,
}

enum Posted {
    /// A message, its JSON in two pieces around its id (see [`json_around_id`]).
    Message {
        before_id: String,
        after_id: String,
        /// The poster's connection, told if the post fails.
        conn: u64,
        /// What to send the poster alone once its id is known (a Socket.IO ack), if asked.
        reply: Option<Box<Reply>>,
    },
    /// Anything else the other processes relay as it is (`typing`): [`RELAYED`], this process's
    /// [`RedisEngine::origin`], then the event's JSON.
    Relay(Vec<u8>),
}

/// What starts a published event that is not a message: no JSON starts so, so the two cannot be
/// confused.
const RELAYED: u8 = b'R';

impl RedisEngine {
    /// Connects (one command connection, one pub/sub connection) and starts the poster and
    /// subscriber tasks. Fails if Redis cannot be reached now.
    pub async fn connect(
        url: &str,
        history: usize,
        timing: Timing,
    ) -> Result<Arc<RedisEngine>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis {url}: {e}"))?;
        let conn = ConnectionManager::new(client.clone())
            .await
            .map_err(|e| format!("--redis {url}: cannot connect: {e}"))?;
        let pubsub = client
            .get_async_pubsub()
            .await
            .map_err(|e| format!("--redis {url}: cannot open pub/sub: {e}"))?;
        let (posts, post_rx) = mpsc::channel(POST_QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        let origin = Epoch::random();
        let metrics = RedisMetrics::new();
        let presence = presence::Presence::start(
            conn.clone(),
            origin.to_string(),
            timing,
            metrics.reaped.clone(),
        );
        let engine = Arc::new(RedisEngine {
            conn,
            posts,
            control,
            rooms: Mutex::default(),
            history,
            post_script: Script::new(POST),
            load_script: Script::new(LOAD),
            backfill_script: Script::new(BACKFILL),
            up: AtomicBool::new(true),
            losses: AtomicU64::new(0),
            metrics,
            origin,
            presence,
        });
        tokio::spawn(poster::run(Arc::downgrade(&engine), post_rx));
        tokio::spawn(subscriber::run(
            client,
            pubsub,
            Arc::downgrade(&engine),
            control_rx,
        ));
        tracing::info!(url, "rooms shared through redis");
        Ok(engine)
    }

    /// Whether this process hears the rooms it serves (see [`RedisEngine::up`]).
    pub fn healthy(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Marks the pub/sub connection up, or lost (which starts a new [`Self::losses`]).
    fn set_up(&self, up: bool) {
        if !up {
            self.losses.fetch_add(1, Ordering::Relaxed);
        }
        self.up.store(up, Ordering::Relaxed);
    }

    /// How many times the pub/sub connection was lost so far: which connection is current.
    fn losses(&self) -> u64 {
        self.losses.load(Ordering::Relaxed)
    }

    /// Its figures, for `/metrics` to show.
    pub fn metrics(&self) -> &RedisMetrics {
        &self.metrics
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Fed>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a post for the poster task. Never waits: the session calling it is in the middle
    /// of handling a frame.
    /// `Err` when the queue is full (Redis is stalled); a post that fails later is answered to
    /// connection `conn` alone with an `error` event.
    pub fn post(
        &self,
        room: &Room,
        from: &str,
        text: &str,
        conn: u64,
        reply: Option<Box<Reply>>,
    ) -> Result<(), RequestError> {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        let (before_id, after_id) = json_around_id(room.name(), from, text, ts);
        self.queue(Post {
            room: room.name().into(),
            what: Posted::Message {
                before_id,
                after_id,
                conn,
                reply,
            },
        })
    }

    /// Relays `event` (its JSON) to the room's members on the other processes: the typist's own
    /// process has delivered it already, and skips it when it comes back (by [`Self::origin`]).
    /// Through the poster's queue, so it keeps its place among this process's messages.
    pub fn relay(&self, room: &Room, event: &[u8]) {
        let mut payload = Vec::with_capacity(1 + 16 + event.len());
        payload.push(RELAYED);
        payload.extend_from_slice(self.origin.to_string().as_bytes());
        payload.extend_from_slice(event);
        // A relay lost to a full queue is a `typing` nobody misses.
        let _ = self.queue(Post {
            room: room.name().into(),
            what: Posted::Relay(payload),
        });
    }

    fn queue(&self, post: Post) -> Result<(), RequestError> {
        self.posts.try_send(post).map_err(|error| {
            let post = match error {
                mpsc::error::TrySendError::Full(post) | mpsc::error::TrySendError::Closed(post) => {
                    post
                }
            };
            tracing::error!(room = %post.room, "redis post queue full: event dropped");
            self.metrics.post_failures.inc();
            RequestError::Unavailable
        })
    }

    /// Tells the poster of a message that failed, through its room (so in its place among the
    /// room's events), if it is still there.
    fn failed(&self, post: &Post) {
        if let Posted::Message { conn, reply, .. } = &post.what {
            let room = self
                .rooms()
                .get(&*post.room)
                .and_then(|fed| fed.room.upgrade());
            match (room, reply) {
                (Some(room), Some(reply)) => reply.send(&room, *conn, None),
                (Some(room), None) => room.send_to(
                    *conn,
                    ServerEvent::error(RequestError::Unavailable).to_frame(),
                ),
                (None, _) => {}
            }
        }
    }

    /// Tells the poster of message `id` its id, if it asked (see [`Reply`]).
    fn posted(&self, post: &Post, id: u64) {
        if let Posted::Message {
            conn,
            reply: Some(reply),
            ..
        } = &post.what
        {
            let room = self
                .rooms()
                .get(&*post.room)
                .and_then(|fed| fed.room.upgrade());
            if let Some(room) = room {
                reply.send(&room, *conn, Some(id));
            }
        }
    }

    /// Registers a connection of `nick` in `room` (prepared) with shared presence, and waits
    /// until this process's list of the room's users holds it. `Ok`: registered, and so
    /// [`Self::left`] is owed; `Err` says whether it was registered all the same (the list did
    /// not catch up in time), and so whether the leave is owed.
    pub async fn arrive(
        &self,
        room: &Arc<Room>,
        nick: &str,
        info: Option<&serde_json::value::RawValue>,
    ) -> Result<(), (Unavailable, bool)> {
        let work = async {
            self.presence.load(room).await.map_err(|e| (e, false))?;
            let version = self
                .presence
                .join(room, nick, info)
                .await
                .map_err(|e| (e, false))?;
            Ok(version)
        };
        let version = match tokio::time::timeout(LOAD_TIMEOUT, work).await {
            Ok(version) => version?,
            Err(_) => {
                // The task may yet register it: its leave then finds the joiner gone.
                return Err((Unavailable(format!("no answer in {LOAD_TIMEOUT:?}")), false));
            }
        };
        tokio::time::timeout(LOAD_TIMEOUT, self.presence.caught_up(room, version))
            .await
            .map_err(|_| {
                (
                    Unavailable("the room's users did not arrive through pub/sub".into()),
                    true,
                )
            })
    }

    /// One connection of `nick` left `room` (queued; see [`Self::arrive`]).
    pub fn left(&self, room: &Room, nick: &str) {
        self.presence.leave(room.name(), nick);
    }

    /// Registers this process's members again and reloads every local room's users, telling
    /// local members who came and went meanwhile: what the reconnect path calls once Redis
    /// answers again, for a Redis that may have lost its data. The heartbeat does the same by
    /// itself when it finds this process gone from Redis (so at most `--presence-heartbeat`
    /// later without this call).
    pub async fn restore_presence(&self) -> Result<(), Unavailable> {
        self.presence.restore().await
    }

    /// The server is stopping: its users still counted in Redis leave now (bounded by
    /// [`LOAD_TIMEOUT`]; past it, they leave at the expiry).
    pub async fn depart(&self) {
        let _ = tokio::time::timeout(LOAD_TIMEOUT, self.presence.depart()).await;
    }

    /// How coalesced presence from other processes is scheduled (the hub's flushing task).
    pub fn attach(&self, schedule: Schedule) {
        self.presence.attach(schedule);
    }

    /// Subscribes to `room` and loads it, once per local room (see the module's doc).
    pub async fn prepare(&self, room: &Arc<Room>) -> Result<(), Unavailable> {
        let loaded = {
            let mut rooms = self.rooms();
            match rooms.get(room.name()) {
                Some(fed) if Weak::as_ptr(&fed.room) == Arc::as_ptr(room) => {
                    Arc::clone(&fed.loaded)
                }
                // None, or an earlier room of that name that is being dropped: this one replaces
                // it (its `dropped` will find it is no longer the one fed, and leave us alone).
                _ => {
                    let loaded = Arc::new(OnceCell::new());
                    rooms.insert(
                        room.name().into(),
                        Fed {
                            room: Arc::downgrade(room),
                            loaded: Arc::clone(&loaded),
                        },
                    );
                    loaded
                }
            }
        };
        let load = loaded.get_or_try_init(|| async {
            let (done, subscribed) = oneshot::channel();
            self.control
                .send(Control::Subscribe(channel(room.name()), done))
                .map_err(|_| Unavailable("subscriber task ended".into()))?;
            let heard_since = subscribed
                .await
                .map_err(|_| Unavailable("subscriber task ended".into()))?
                .map_err(Unavailable)?;
            self.load(room).await?;
            // A load is whole only if the subscription it follows lasted until it was read: if
            // the connection was lost meanwhile, what was posted between the loss and the new
            // subscription is in neither (and the reconnection's backfill skipped this room, as
            // it was still loading). Refused, so the next joiner subscribes and loads afresh.
            if self.losses() != heard_since {
                return Err(Unavailable("pub/sub connection lost while loading".into()));
            }
            Ok(())
        });
        match tokio::time::timeout(LOAD_TIMEOUT, load).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(Unavailable(format!("no answer in {LOAD_TIMEOUT:?}"))),
        }
    }

    /// Reads the room's epoch, last id and history into the local room.
    async fn load(&self, room: &Room) -> Result<(), Unavailable> {
        let name = room.name();
        let started = Instant::now();
        let (epoch, last_id, tail): (String, u64, Vec<(String, Vec<String>)>) = self
            .load_script
            .key(key(name, "id"))
            .key(key(name, "history"))
            .key(key(name, "epoch"))
            .arg(Epoch::random().to_string())
            .arg(self.history)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        self.metrics.load.observe(started.elapsed().as_secs_f64());
        let epoch = parse_epoch(name, &epoch)?;
        room.load(epoch, last_id, oldest_first(tail));
        Ok(())
    }

    /// Called by the subscriber after it reconnected and resubscribed every fed room, before it
    /// reads any message of the new subscription: brings every loaded room up to date (see
    /// [`Self::backfill`]), then registers this process's members again and re-reads every
    /// room's users ([`Self::restore_presence`]: Redis may have lost them, and the presence
    /// published while the subscription was down was not heard). An error means Redis failed
    /// again: the subscriber starts over.
    pub(super) async fn reconnected(&self) -> Result<(), Unavailable> {
        // The command connection first: after a restart its old socket is dead, and the
        // manager replaces it only once a command has failed on it. Better this `PING` than a
        // member's post or a joiner's load.
        redis::cmd("PING")
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        self.backfill_all().await?;
        self.restore_presence().await
    }

    /// Backfills every loaded room this process feeds, one after another.
    async fn backfill_all(&self) -> Result<(), Unavailable> {
        let rooms: Vec<Arc<Room>> = self
            .rooms()
            .values()
            // A room still loading reads Redis itself, after its subscription: nothing to do.
            .filter(|fed| fed.loaded.initialized())
            .filter_map(|fed| fed.room.upgrade())
            .collect();
        for room in rooms {
            self.backfill(&room).await?;
        }
        Ok(())
    }

    /// Reads what `room` missed while this process was not subscribed ([`BACKFILL`]) and
    /// delivers it to the members as if live ([`Room::backfill`]).
    async fn backfill(&self, room: &Room) -> Result<(), Unavailable> {
        let name = room.name();
        let (local_epoch, local_last) = room.cursor();
        let started = Instant::now();
        let (epoch, last_id, gap): (String, u64, Vec<(String, Vec<String>)>) = self
            .backfill_script
            .key(key(name, "id"))
            .key(key(name, "history"))
            .key(key(name, "epoch"))
            .arg(Epoch::random().to_string())
            .arg(local_epoch.to_string())
            .arg(local_last)
            .arg(self.history)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        self.metrics
            .backfill
            .observe(started.elapsed().as_secs_f64());
        let epoch = parse_epoch(name, &epoch)?;
        let caught_up = room.backfill(epoch, last_id, oldest_first(gap));
        self.metrics.backfilled.inc_by(caught_up.delivered as u64);
        if caught_up.new_life || caught_up.missed > 0 {
            tracing::warn!(room = %name, new_life = caught_up.new_life, missed = caught_up.missed,
                "redis backfill: members told what they missed");
        }
        Ok(())
    }

    /// The channels of every room this process feeds: what a new pub/sub connection subscribes.
    fn fed_channels(&self) -> Vec<String> {
        self.rooms().keys().map(|name| channel(name)).collect()
    }

    /// `room` left the hub: stop feeding it, unless a newer room of that name took its place.
    pub fn dropped(&self, room: &Arc<Room>) {
        let mut rooms = self.rooms();
        if let Some(fed) = rooms.get(room.name()) {
            if Weak::as_ptr(&fed.room) == Arc::as_ptr(room) {
                rooms.remove(room.name());
                self.presence.dropped(room);
                // Sent under the table's lock, so a later subscribe for the name comes after.
                let _ = self
                    .control
                    .send(Control::Unsubscribe(channel(room.name())));
            }
        }
    }

    /// A message from the subscription: into the local room it is for.
    fn feed(&self, channel_name: &str, payload: &[u8]) {
        self.metrics.received.inc();
        let Some(name) = channel_name.strip_prefix(PREFIX) else {
            return;
        };
        if let Some(change) = payload.strip_prefix(&[presence::PRESENCE]) {
            self.presence.feed(name, change);
            return;
        }
        let room = self.rooms().get(name).and_then(|fed| fed.room.upgrade());
        if let Some(relayed) = payload.strip_prefix(&[RELAYED]) {
            let (origin, event) = relayed.split_at(relayed.len().min(16));
            let ours = std::str::from_utf8(origin).ok().and_then(Epoch::parse) == Some(self.origin);
            if let (Some(room), false) = (room, ours) {
                room.relay(event);
            }
            return;
        }
        let (Some(room), Some(id), Ok(json)) = (room, id_of(payload), std::str::from_utf8(payload))
        else {
            return;
        };
        room.deliver(id, json.to_owned());
    }
}

/// An epoch as Redis holds it; anything else was not written by wschat.
fn parse_epoch(room: &str, stored: &str) -> Result<Epoch, Unavailable> {
    Epoch::parse(stored)
        .ok_or_else(|| Unavailable(format!("room {room}: stored epoch {stored:?} is not ours")))
}

/// Stream entries as `XREVRANGE` gives them (newest first, `<id>-0` and `["json", JSON]`), as
/// `(id, JSON)` oldest first.
fn oldest_first(entries: Vec<(String, Vec<String>)>) -> Vec<(u64, String)> {
    entries
        .into_iter()
        .rev()
        .filter_map(|(stream_id, fields)| {
            let id = stream_id.split('-').next()?.parse().ok()?;
            let json = fields.into_iter().nth(1)?;
            Some((id, json))
        })
        .collect()
}

fn key(room: &str, what: &str) -> String {
    format!("{PREFIX}{room}:{what}")
}

fn channel(room: &str) -> String {
    format!("{PREFIX}{room}")
}

/// What every message's JSON starts with, up to its id: `ChatMessage` serializes `type` first
/// and `id` second (a test below holds it to that).
const MESSAGE_START: &str = r#"{"type":"message","id":"#;

/// A message's JSON in two pieces, around where its id goes.
fn json_around_id(room: &str, from: &str, text: &str, ts: u64) -> (String, String) {
    let json = ServerEvent::Message(ChatMessage {
        id: 0,
        room,
        from,
        text,
        ts,
    })
    .to_json();
    let after = json
        .strip_prefix(MESSAGE_START)
        .and_then(|rest| rest.strip_prefix('0'))
        .expect("a message's JSON starts with its type and id");
    (MESSAGE_START.to_owned(), after.to_owned())
}

/// The id of a published message, read from its JSON's start.
fn id_of(json: &[u8]) -> Option<u64> {
    let rest = json.strip_prefix(MESSAGE_START.as_bytes())?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_cut_around_its_id_and_the_id_read_back() {
        let (before, after) = json_around_id("lobby", "ann", "hi \"there\"", 7);
        let json = format!("{before}42{after}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "message");
        assert_eq!(value["id"], 42);
        assert_eq!(value["text"], "hi \"there\"");
        assert_eq!(id_of(json.as_bytes()), Some(42));
        assert_eq!(id_of(b"{\"type\":\"typing\"}"), None);
    }
}
