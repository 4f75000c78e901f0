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
//! Presence (who is in a room on any process, and the expiry of a dead process's users) is
//! [`presence`]'s. Not yet here (README, "Running more than one server", lists them):
//! reconnecting the subscription after Redis restarts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink};
use redis::Script;
use tokio::sync::{mpsc, oneshot, OnceCell};

use super::epoch::Epoch;
use super::protocol::{ChatMessage, RequestError, ServerEvent};
use super::reply::Reply;
use super::room::Room;

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
    /// To the poster task, which runs posts one after another so a sender's messages keep
    /// their order.
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
    /// This process, among those on the same Redis: what it marks the events it relays with,
    /// so it can skip them when they come back.
    origin: Epoch,
    /// Set when the pub/sub connection is lost: from then on this process no longer hears
    /// other processes' messages, so it says so on `/healthz` and turns new members away
    /// (until reconnecting is built, a restart is the cure).
    deaf: AtomicBool,
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

enum Control {
    Subscribe(String, oneshot::Sender<Result<(), String>>),
    Unsubscribe(String),
}

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
        let (sink, mut stream) = client
            .get_async_pubsub()
            .await
            .map_err(|e| format!("--redis {url}: cannot open pub/sub: {e}"))?
            .split();
        let (posts, post_rx) = mpsc::channel(POST_QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        let origin = Epoch::random();
        let presence = presence::Presence::start(conn.clone(), origin.to_string(), timing);
        let engine = Arc::new(RedisEngine {
            conn,
            posts,
            control,
            rooms: Mutex::default(),
            history,
            post_script: Script::new(POST),
            load_script: Script::new(LOAD),
            deaf: AtomicBool::new(false),
            origin,
            presence,
        });
        tokio::spawn(run_poster(Arc::downgrade(&engine), post_rx));
        tokio::spawn(run_control(sink, control_rx));
        let weak = Arc::downgrade(&engine);
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let Some(engine) = weak.upgrade() else { return };
                engine.feed(msg.get_channel_name(), msg.get_payload_bytes());
            }
            if let Some(engine) = weak.upgrade() {
                // Reconnecting and backfilling is the next slice of this engine.
                engine.deaf.store(true, Ordering::Relaxed);
                tracing::error!(
                    "redis pub/sub connection lost: messages posted on other processes no longer \
                     reach this one's members"
                );
            }
        });
        tracing::info!(url, "rooms shared through redis");
        Ok(engine)
    }

    /// Whether this process still hears the rooms it serves.
    pub fn healthy(&self) -> bool {
        !self.deaf.load(Ordering::Relaxed)
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
            subscribed
                .await
                .map_err(|_| Unavailable("subscriber task ended".into()))?
                .map_err(Unavailable)?;
            self.load(room).await
        });
        match tokio::time::timeout(LOAD_TIMEOUT, load).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(Unavailable(format!("no answer in {LOAD_TIMEOUT:?}"))),
        }
    }

    /// Reads the room's epoch, last id and history into the local room.
    async fn load(&self, room: &Room) -> Result<(), Unavailable> {
        let name = room.name();
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
        let epoch = Epoch::parse(&epoch).ok_or_else(|| {
            Unavailable(format!("room {name}: stored epoch {epoch:?} is not ours"))
        })?;
        let history = tail
            .into_iter()
            .rev()
            .filter_map(|(stream_id, fields)| {
                let id = stream_id.split('-').next()?.parse().ok()?;
                let json = fields.into_iter().nth(1)?;
                Some((id, json))
            })
            .collect();
        room.load(epoch, last_id, history);
        Ok(())
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

    /// Runs a post; a message's id once Redis has assigned it.
    async fn run_post(&self, post: &Post) -> redis::RedisResult<Option<u64>> {
        match &post.what {
            Posted::Message {
                before_id,
                after_id,
                ..
            } => self
                .post_script
                .key(key(&post.room, "id"))
                .key(key(&post.room, "history"))
                .arg(before_id)
                .arg(after_id)
                .arg(self.history)
                .arg(channel(&post.room))
                .invoke_async::<u64>(&mut self.conn.clone())
                .await
                .map(Some),
            Posted::Relay(payload) => redis::cmd("PUBLISH")
                .arg(channel(&post.room))
                .arg(&payload[..])
                .query_async::<()>(&mut self.conn.clone())
                .await
                .map(|()| None),
        }
    }
}

/// Runs posts one at a time, in the order they were made, until the engine is gone.
async fn run_poster(engine: Weak<RedisEngine>, mut posts: mpsc::Receiver<Post>) {
    while let Some(post) = posts.recv().await {
        let Some(engine) = engine.upgrade() else {
            return;
        };
        match engine.run_post(&post).await {
            Ok(Some(id)) => engine.posted(&post, id),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(room = %post.room, %error, "redis post failed: not delivered");
                engine.failed(&post);
            }
        }
    }
}

/// Subscribes and unsubscribes in the order asked, on the pub/sub connection.
async fn run_control(mut sink: PubSubSink, mut control: mpsc::UnboundedReceiver<Control>) {
    while let Some(command) = control.recv().await {
        match command {
            Control::Subscribe(channel, done) => {
                let result = sink.subscribe(&channel).await.map_err(|e| e.to_string());
                let _ = done.send(result);
            }
            Control::Unsubscribe(channel) => {
                if let Err(error) = sink.unsubscribe(&channel).await {
                    tracing::warn!(%channel, %error, "redis unsubscribe failed");
                }
            }
        }
    }
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
