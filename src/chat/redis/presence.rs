//! Presence across processes (`--redis`): `join` for a nickname's first connection on any
//! process, `leave` for its last anywhere, and welcomes whose `users` and `count` are the room's,
//! not one process's. Two tabs on two processes are one presence.
//!
//! What lives in Redis:
//! - `wschat:room:R:users`: a hash, nickname -> its open connections on all processes;
//! - `wschat:room:R:presence`: the room's presence version, one more per `join` or `leave`
//!   announced, so a process can tell which announcements a list it read already holds;
//! - `wschat:process:P`: per process `P` (its origin, see [`super::RedisEngine`]), `R:nick` ->
//!   that process's connections (room names hold no `:`): what to take back if `P` dies;
//! - `wschat:processes`: a sorted set, process -> when it counts as dead (Redis's clock, in ms,
//!   so processes on other machines need not agree on the time), pushed on by each heartbeat.
//!
//! Every change is one script, so one atomic step: [`JOIN`] counts a connection and, if it is
//! the nickname's first anywhere, bumps the version and publishes `join` on the room's channel;
//! [`LEAVE`] the reverse; [`REAP`] takes back the connections of processes past their time,
//! publishing the leaves (it removes the process from the set in the same step, so two reapers
//! never announce one leave twice); [`RESTORE`] makes Redis count exactly this process's
//! connections (after Redis lost its data, or took this process for dead). Each process applies
//! what is published to its local room's list ([`Room::remote_join`]), which tells its local
//! members once, coalesced in large rooms as without Redis.
//!
//! A room's list is loaded as its messages are: subscribed first, then the users and the version
//! read; announcements that arrive meanwhile wait, and those newer than what was read are applied
//! on top. A joiner is registered first, then waits until its process's list has caught up with
//! the version its registration returned: its welcome lists it, and it never hears its own `join`.
//!
//! One task per process runs every script in order (joins, leaves, heartbeats, restores), and
//! keeps the table of what this process has registered: so a restore always sends what the
//! scripts before it left, never a table a join in flight is about to change.
//!
//! Long because its Lua scripts and the Rust that calls them are one contract about the
//! same keys (the reaping and restoring scripts share the counting function that joins and
//! leaves use), and read best together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use prometheus::IntCounter;
use redis::aio::ConnectionManager;
use redis::Script;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch, OnceCell};
use tokio::time::MissedTickBehavior;

use super::{channel, key, Unavailable};
use crate::chat::room::Room;

/// Schedules the flush of a room's coalesced presence (the hub's task; see `chat::hub`): a
/// function rather than the hub itself, so the engine need not know the hub that holds it.
pub type Schedule = Box<dyn Fn(&Arc<Room>) + Send + Sync>;

/// Functions the reaping and restoring scripts share: change a nickname's count in a room by
/// `delta` (fields are `room:nick`), announcing a join or leave when it crosses zero; Redis's
/// clock in milliseconds.
const SHARED_LUA: &str = r"
local function change(field, delta)
  local at = string.find(field, ':', 1, true)
  if not at then return end
  local room, nick = string.sub(field, 1, at - 1), string.sub(field, at + 1)
  local users = 'wschat:room:' .. room .. ':users'
  local total = redis.call('HINCRBY', users, nick, delta)
  local before = total - delta
  local kind
  if total <= 0 then
    redis.call('HDEL', users, nick)
    if before > 0 then kind = 'L' end
  elseif before <= 0 then
    kind = 'J'
  end
  if kind then
    local version = redis.call('INCR', 'wschat:room:' .. room .. ':presence')
    redis.call('PUBLISH', 'wschat:room:' .. room,
      'P' .. version .. ':' .. kind .. ':' .. #nick .. ':' .. nick)
  end
end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
";

/// Registers a connection. KEYS: users, version, this process's hash. ARGV: nick, field, the
/// room's channel, the `join`'s info JSON (or empty). Returns the version after it.
const JOIN: &str = r"
local total = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
if total == 1 then
  local version = redis.call('INCR', KEYS[2])
  redis.call('PUBLISH', ARGV[3], 'P' .. version .. ':J:' .. #ARGV[1] .. ':' .. ARGV[1] .. ARGV[4])
  return version
end
return tonumber(redis.call('GET', KEYS[2]) or '0')
";

/// Unregisters a connection. KEYS and ARGV as [`JOIN`]'s, without the info. A connection this
/// process no longer has counted (it was reaped meanwhile) changes nothing.
const LEAVE: &str = r"
local mine = redis.call('HINCRBY', KEYS[3], ARGV[2], -1)
if mine <= 0 then redis.call('HDEL', KEYS[3], ARGV[2]) end
if mine < 0 then return 0 end
local total = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if total > 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], 'P' .. version .. ':L:' .. #ARGV[1] .. ':' .. ARGV[1])
return version
";

/// Pushes this process's time of death on. KEYS: the processes' set. ARGV: this process, the
/// expiry in ms. Returns 1 if the process was not in the set (reaped, or Redis lost its data).
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
";

/// Takes back the connections of processes past their time, at most ARGV[1] processes a run.
/// KEYS: the processes' set. Returns how many were reaped.
const REAP: &str = r"
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now(), 'LIMIT', 0, tonumber(ARGV[1]))
for _, process in ipairs(dead) do
  redis.call('ZREM', KEYS[1], process)
  local hash = 'wschat:process:' .. process
  local entries = redis.call('HGETALL', hash)
  for i = 1, #entries, 2 do change(entries[i], -tonumber(entries[i + 1])) end
  redis.call('DEL', hash)
end
return #dead
";

/// Takes back every connection of this process, which is stopping. KEYS: its hash, the
/// processes' set. ARGV: this process.
const DEPART: &str = r"
redis.call('ZREM', KEYS[2], ARGV[1])
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do change(entries[i], -tonumber(entries[i + 1])) end
redis.call('DEL', KEYS[1])
return 0
";

/// Makes Redis count exactly this process's connections. KEYS: this process's hash, the
/// processes' set. ARGV: this process, the expiry in ms, then field and count pairs.
const RESTORE: &str = r"
local had = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do had[entries[i]] = tonumber(entries[i + 1]) end
local want = {}
for i = 3, #ARGV, 2 do want[ARGV[i]] = tonumber(ARGV[i + 1]) end
for field, count in pairs(want) do
  local delta = count - (had[field] or 0)
  if delta ~= 0 then change(field, delta) end
end
for field, count in pairs(had) do
  if want[field] == nil then change(field, -count) end
end
redis.call('DEL', KEYS[1])
for field, count in pairs(want) do redis.call('HSET', KEYS[1], field, count) end
redis.call('ZADD', KEYS[2], now() + tonumber(ARGV[2]), ARGV[1])
return 0
";

/// Reads a room's users and version. KEYS: users, version.
const VIEW: &str = r"
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HKEYS', KEYS[1])}
";

/// What starts a published presence change: no JSON starts so, nor a relayed event.
pub(super) const PRESENCE: u8 = b'P';

/// Most dead processes one reaping script handles; the rest wait for the next heartbeat.
const REAP_AT_ONCE: usize = 100;

/// Announcements kept for a room whose list is being read; beyond, the oldest are dropped (and
/// the list may miss a change until the next restore). Reading takes one round trip, so this is
/// far more than can arrive meanwhile.
const EARLY_LIMIT: usize = 10_000;

/// `--presence-heartbeat` and `--presence-expiry`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    pub expiry: Duration,
}

impl Timing {
    /// Refuses an expiry a live process could miss between two heartbeats.
    pub fn checked(heartbeat: Duration, expiry: Duration) -> Result<Timing, String> {
        if heartbeat.is_zero() || expiry <= heartbeat {
            return Err(format!(
                "--presence-expiry ({expiry:?}) must exceed --presence-heartbeat ({heartbeat:?}), \
                 which must not be 0"
            ));
        }
        Ok(Timing { heartbeat, expiry })
    }
}

/// This process's side of shared presence: the local rooms' lists, and the queue to the task
/// that runs the scripts.
pub(super) struct Presence {
    ops: mpsc::UnboundedSender<Op>,
    lists: Arc<Lists>,
    /// For reading a list outside the task (loading a room's).
    conn: ConnectionManager,
}

/// The local rooms' lists of users, by room name.
#[derive(Default)]
struct Lists {
    rooms: Mutex<HashMap<Box<str>, List>>,
    /// How coalesced presence is scheduled (set once the hub exists).
    schedule: OnceLock<Schedule>,
}

/// One local room's list: the room holds the names; this, how far they are up to date.
struct List {
    room: Weak<Room>,
    loaded: Arc<OnceCell<()>>,
    /// Announcements that arrived while the list was being read (`None` once it is read).
    early: Option<Vec<Change>>,
    /// The version the list holds; joiners wait on it.
    version: watch::Sender<u64>,
}

/// One published join or leave.
struct Change {
    version: u64,
    join: bool,
    nick: String,
    info: Option<Box<RawValue>>,
}

/// What the presence task is asked to do, in order.
enum Op {
    Join {
        room: Box<str>,
        nick: Box<str>,
        info: Option<Box<RawValue>>,
        done: oneshot::Sender<Result<u64, String>>,
    },
    Leave {
        room: Box<str>,
        nick: Box<str>,
    },
    Restore(oneshot::Sender<Result<(), String>>),
    /// The process is stopping: take back what is left, stop beating, end.
    Depart(oneshot::Sender<()>),
}

impl Presence {
    /// Starts the presence task (its first heartbeat at once: registering this process, and
    /// reaping any process that died while none was running).
    /// `reaped` counts the dead processes this one takes back (`/metrics`).
    pub(super) fn start(
        conn: ConnectionManager,
        origin: String,
        timing: Timing,
        reaped: IntCounter,
    ) -> Presence {
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let lists = Arc::new(Lists::default());
        let task = Task {
            conn: conn.clone(),
            origin,
            timing,
            registered: HashMap::new(),
            dirty: false,
            lists: Arc::clone(&lists),
            scripts: Scripts::new(),
            reaped,
        };
        tokio::spawn(task.run(ops_rx));
        Presence { ops, lists, conn }
    }

    /// Tells the lists how to schedule coalesced presence.
    pub(super) fn attach(&self, schedule: Schedule) {
        let _ = self.lists.schedule.set(schedule);
    }

    /// Loads `room`'s list once per local room (after the room is subscribed to: see the
    /// module's doc).
    pub(super) async fn load(&self, room: &Arc<Room>) -> Result<(), Unavailable> {
        let loaded = {
            let mut rooms = self.lists.lock();
            match rooms.get(room.name()) {
                Some(list) if Weak::as_ptr(&list.room) == Arc::as_ptr(room) => {
                    Arc::clone(&list.loaded)
                }
                _ => {
                    let loaded = Arc::new(OnceCell::new());
                    rooms.insert(
                        room.name().into(),
                        List {
                            room: Arc::downgrade(room),
                            loaded: Arc::clone(&loaded),
                            early: Some(Vec::new()),
                            version: watch::Sender::new(0),
                        },
                    );
                    loaded
                }
            }
        };
        let mut conn = self.conn.clone();
        loaded
            .get_or_try_init(|| async {
                let (version, names) = read_list(&mut conn, room.name())
                    .await
                    .map_err(|e| Unavailable(e.to_string()))?;
                self.lists.loaded(room, version, names);
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Registers one connection of `nick` in `room`; returns the room's presence version after
    /// it, for [`Self::caught_up`]. `Ok` (registered) means [`Self::leave`] is owed.
    pub(super) async fn join(
        &self,
        room: &Room,
        nick: &str,
        info: Option<&RawValue>,
    ) -> Result<u64, Unavailable> {
        let (done, result) = oneshot::channel();
        self.ops
            .send(Op::Join {
                room: room.name().into(),
                nick: nick.into(),
                info: info.map(|info| info.to_owned()),
                done,
            })
            .map_err(|_| Unavailable("presence task ended".into()))?;
        result
            .await
            .map_err(|_| Unavailable("presence task ended".into()))?
            .map_err(Unavailable)
    }

    /// Waits until `room`'s list holds version `version` (or `room` is no longer the one
    /// loaded under its name).
    pub(super) async fn caught_up(&self, room: &Room, version: u64) {
        let watching = self
            .lists
            .lock()
            .get(room.name())
            .filter(|list| std::ptr::eq(Weak::as_ptr(&list.room), room))
            .map(|list| list.version.subscribe());
        if let Some(mut watching) = watching {
            let _ = watching.wait_for(|held| *held >= version).await;
        }
    }

    /// Unregisters one connection (queued: called as a membership is dropped).
    pub(super) fn leave(&self, room: &str, nick: &str) {
        let _ = self.ops.send(Op::Leave {
            room: room.into(),
            nick: nick.into(),
        });
    }

    /// Makes Redis count exactly this process's connections again, announcing who that brings
    /// back or takes away, and reloads every local room's list, telling its members who came and
    /// went meanwhile. For after Redis lost its data (a restart without persistence); the
    /// heartbeat does it by itself when it finds this process gone from Redis.
    pub(super) async fn restore(&self) -> Result<(), Unavailable> {
        let (done, result) = oneshot::channel();
        self.ops
            .send(Op::Restore(done))
            .map_err(|_| Unavailable("presence task ended".into()))?;
        result
            .await
            .map_err(|_| Unavailable("presence task ended".into()))?
            .map_err(Unavailable)
    }

    /// Takes back this process's remaining connections and stops its heartbeat: for a graceful
    /// stop, so its users leave the other processes now rather than at the expiry.
    pub(super) async fn depart(&self) {
        let (done, finished) = oneshot::channel();
        if self.ops.send(Op::Depart(done)).is_ok() {
            let _ = finished.await;
        }
    }

    /// A published change (the payload after [`PRESENCE`]) for `room`.
    pub(super) fn feed(&self, room: &str, payload: &[u8]) {
        match parse_change(payload) {
            Some(change) => self.lists.apply(room, change),
            None => tracing::warn!(room, "malformed presence change ignored"),
        }
    }

    /// `room` left the hub: its list goes with it.
    pub(super) fn dropped(&self, room: &Arc<Room>) {
        let mut rooms = self.lists.lock();
        if let Some(list) = rooms.get(room.name()) {
            if Weak::as_ptr(&list.room) == Arc::as_ptr(room) {
                rooms.remove(room.name());
            }
        }
    }
}

impl Lists {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, List>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Schedules a flush of `room`'s coalesced presence.
    fn queue(&self, room: &Arc<Room>) {
        if let Some(schedule) = self.schedule.get() {
            schedule(room);
        }
    }

    /// The list of `room` was read at `version`: takes it, then what arrived meanwhile.
    fn loaded(&self, room: &Arc<Room>, version: u64, names: Vec<String>) {
        let mut rooms = self.lock();
        let Some(list) = rooms.get_mut(room.name()) else {
            return;
        };
        if Weak::as_ptr(&list.room) != Arc::as_ptr(room) {
            return;
        }
        room.load_users(names);
        let mut held = version;
        let mut queued = false;
        for change in list.early.take().unwrap_or_default() {
            if change.version > held {
                held = change.version;
                queued |= apply_to(room, &change);
            }
        }
        list.version.send_replace(held);
        drop(rooms);
        if queued {
            self.queue(room);
        }
    }

    /// The list of `room` read again (restore): replaces the room's, announcing the difference.
    /// Starts reading `room_name`'s list again (restore): announcements wait from now, as
    /// during a first load. `false` if the room is not loaded (a first load in progress reads
    /// the list as it is now anyway).
    fn reloading(&self, room_name: &str) -> bool {
        let mut rooms = self.lock();
        match rooms.get_mut(room_name) {
            Some(list) if list.loaded.initialized() && list.early.is_none() => {
                list.early = Some(Vec::new());
                true
            }
            _ => false,
        }
    }

    /// The list of `room_name` read again (`None`: the read failed): replaces the room's,
    /// announcing the difference, then what arrived meanwhile on top, as [`Self::loaded`] does.
    /// The version read is taken even if lower than the one held: a Redis that lost its data
    /// counts from 0 again, and every announcement since the read is newer than it.
    fn reloaded(&self, room_name: &str, read: Option<(u64, Vec<String>)>) {
        let mut rooms = self.lock();
        let Some(list) = rooms.get_mut(room_name) else {
            return;
        };
        let early = list.early.take().unwrap_or_default();
        let Some(room) = list.room.upgrade() else {
            return;
        };
        let (mut held, mut queued) = match read {
            Some((version, names)) => (version, room.replace_users(names)),
            None => (*list.version.borrow(), false),
        };
        for change in early {
            if change.version > held {
                held = change.version;
                queued |= apply_to(&room, &change);
            }
        }
        list.version.send_replace(held);
        drop(rooms);
        if queued {
            self.queue(&room);
        }
    }

    fn apply(&self, room_name: &str, change: Change) {
        let mut rooms = self.lock();
        let Some(list) = rooms.get_mut(room_name) else {
            return;
        };
        if let Some(early) = &mut list.early {
            if early.len() >= EARLY_LIMIT {
                early.remove(0);
            }
            early.push(change);
            return;
        }
        if change.version <= *list.version.borrow() {
            return;
        }
        let Some(room) = list.room.upgrade() else {
            return;
        };
        let queued = apply_to(&room, &change);
        list.version.send_replace(change.version);
        drop(rooms);
        if queued {
            self.queue(&room);
        }
    }
}

fn apply_to(room: &Room, change: &Change) -> bool {
    if change.join {
        room.remote_join(&change.nick, change.info.as_deref())
    } else {
        room.remote_leave(&change.nick)
    }
}

/// Parses `VERSION:J:LEN:NICK[INFO]` or `VERSION:L:LEN:NICK` (the nickname's length in bytes, so
/// no character of it needs escaping).
fn parse_change(payload: &[u8]) -> Option<Change> {
    let text = std::str::from_utf8(payload).ok()?;
    let (version, rest) = text.split_once(':')?;
    let (kind, rest) = rest.split_once(':')?;
    let (len, rest) = rest.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let nick = rest.get(..len)?;
    let info = rest.get(len..)?;
    let join = match kind {
        "J" => true,
        "L" => false,
        _ => return None,
    };
    let info = match info {
        "" => None,
        json if join => Some(RawValue::from_string(json.to_owned()).ok()?),
        _ => return None,
    };
    Some(Change {
        version: version.parse().ok()?,
        join,
        nick: nick.to_owned(),
        info,
    })
}

/// A field of a process's hash: `room:nick`.
fn field(room: &str, nick: &str) -> String {
    format!("{room}:{nick}")
}

fn process_key(origin: &str) -> String {
    format!("wschat:process:{origin}")
}

const PROCESSES: &str = "wschat:processes";

async fn read_list(
    conn: &mut ConnectionManager,
    room: &str,
) -> redis::RedisResult<(u64, Vec<String>)> {
    Script::new(VIEW)
        .key(key(room, "users"))
        .key(key(room, "presence"))
        .invoke_async(conn)
        .await
}

struct Scripts {
    join: Script,
    leave: Script,
    heartbeat: Script,
    reap: Script,
    restore: Script,
    depart: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
            heartbeat: Script::new(HEARTBEAT),
            reap: Script::new(&format!("{SHARED_LUA}{REAP}")),
            restore: Script::new(&format!("{SHARED_LUA}{RESTORE}")),
            depart: Script::new(&format!("{SHARED_LUA}{DEPART}")),
        }
    }
}

/// The presence task: every script of this process, one after another.
struct Task {
    conn: ConnectionManager,
    origin: String,
    timing: Timing,
    /// What this process has registered: `room:nick` -> connections.
    registered: HashMap<String, u64>,
    /// A leave failed: Redis may count a connection that is gone, until the next restore.
    dirty: bool,
    lists: Arc<Lists>,
    scripts: Scripts,
    /// Dead processes this one took back.
    reaped: IntCounter,
}

impl Task {
    async fn run(mut self, mut ops: mpsc::UnboundedReceiver<Op>) {
        let mut beat = tokio::time::interval(self.timing.heartbeat);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                op = ops.recv() => match op {
                    Some(Op::Depart(done)) => {
                        self.depart().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(op) => self.run_op(op).await,
                    None => return,
                },
                _ = beat.tick() => self.heartbeat().await,
            }
        }
    }

    async fn run_op(&mut self, op: Op) {
        match op {
            Op::Join {
                room,
                nick,
                info,
                done,
            } => {
                let result = self.join(&room, &nick, info.as_deref()).await;
                let joined = result.is_ok();
                if done.send(result).is_err() && joined {
                    // The joiner gave up waiting: nobody will leave for it.
                    self.leave(&room, &nick).await;
                }
            }
            Op::Leave { room, nick } => self.leave(&room, &nick).await,
            Op::Restore(done) => {
                let _ = done.send(self.restore().await);
            }
            Op::Depart(_) => unreachable!("handled by the task's loop"),
        }
    }

    async fn depart(&mut self) {
        let result: redis::RedisResult<()> = self
            .scripts
            .depart
            .key(process_key(&self.origin))
            .key(PROCESSES)
            .arg(&self.origin)
            .invoke_async(&mut self.conn)
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "redis presence: could not take this process's users back (they leave at the expiry)");
        }
    }

    async fn join(
        &mut self,
        room: &str,
        nick: &str,
        info: Option<&RawValue>,
    ) -> Result<u64, String> {
        let field = field(room, nick);
        let version: u64 = self
            .scripts
            .join
            .key(key(room, "users"))
            .key(key(room, "presence"))
            .key(process_key(&self.origin))
            .arg(nick)
            .arg(&field)
            .arg(channel(room))
            .arg(info.map_or("", RawValue::get))
            .invoke_async(&mut self.conn)
            .await
            .map_err(|e| e.to_string())?;
        *self.registered.entry(field).or_default() += 1;
        Ok(version)
    }

    async fn leave(&mut self, room: &str, nick: &str) {
        let field = field(room, nick);
        match self.registered.get_mut(&field) {
            Some(count) if *count > 1 => *count -= 1,
            Some(_) => {
                self.registered.remove(&field);
            }
            None => return,
        }
        let result: redis::RedisResult<u64> = self
            .scripts
            .leave
            .key(key(room, "users"))
            .key(key(room, "presence"))
            .key(process_key(&self.origin))
            .arg(nick)
            .arg(&field)
            .arg(channel(room))
            .invoke_async(&mut self.conn)
            .await;
        if let Err(error) = result {
            tracing::warn!(room, %error, "redis presence leave failed: fixed at the next heartbeat");
            self.dirty = true;
        }
    }

    /// Pushes this process's time of death on; restores its registrations if Redis had lost
    /// them (or a leave failed); reaps the processes past their time.
    async fn heartbeat(&mut self) {
        let expiry_ms = self.timing.expiry.as_millis() as u64;
        let missing: redis::RedisResult<u64> = self
            .scripts
            .heartbeat
            .key(PROCESSES)
            .arg(&self.origin)
            .arg(expiry_ms)
            .invoke_async(&mut self.conn)
            .await;
        match missing {
            Ok(missing) if (missing == 1 && !self.registered.is_empty()) || self.dirty => {
                tracing::warn!(
                    "redis no longer counted this process's users: registering them again"
                );
                if let Err(error) = self.restore().await {
                    tracing::warn!(%error, "redis presence restore failed");
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "redis presence heartbeat failed");
                return;
            }
        }
        let reaped: redis::RedisResult<u64> = self
            .scripts
            .reap
            .key(PROCESSES)
            .arg(REAP_AT_ONCE)
            .invoke_async(&mut self.conn)
            .await;
        match reaped {
            Ok(0) => {}
            Ok(reaped) => {
                self.reaped.inc_by(reaped);
                tracing::info!(reaped, "users of processes that stopped beating left");
            }
            Err(error) => tracing::warn!(%error, "redis presence reaping failed"),
        }
    }

    async fn restore(&mut self) -> Result<(), String> {
        let mut script = self.scripts.restore.prepare_invoke();
        script
            .key(process_key(&self.origin))
            .key(PROCESSES)
            .arg(&self.origin)
            .arg(self.timing.expiry.as_millis() as u64);
        for (field, count) in &self.registered {
            script.arg(field).arg(*count);
        }
        script
            .invoke_async::<()>(&mut self.conn)
            .await
            .map_err(|e| e.to_string())?;
        self.dirty = false;
        let rooms: Vec<Box<str>> = self.lists.lock().keys().cloned().collect();
        let mut failed = None;
        for room in rooms {
            if !self.lists.reloading(&room) {
                continue;
            }
            let read = read_list(&mut self.conn, &room).await;
            if let Err(error) = &read {
                failed = Some(error.to_string());
            }
            self.lists.reloaded(&room, read.ok());
        }
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_whatever_the_nickname_holds() {
        let change = parse_change(b"12:J:7:a:b c\xc3\xa9{\"k\":1}").unwrap();
        assert_eq!(
            (change.version, change.join, change.nick.as_str()),
            (12, true, "a:b cé")
        );
        assert_eq!(change.info.unwrap().get(), "{\"k\":1}");
        let change = parse_change(b"3:L:3:ann").unwrap();
        assert!(!change.join && change.info.is_none());
        for bad in [
            &b"x:J:3:ann"[..],
            b"3:Q:3:ann",
            b"3:J:9:ann",
            b"3:L:3:annjunk",
        ] {
            assert!(parse_change(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_expiry_must_outlast_a_heartbeat() {
        let s = Duration::from_secs;
        assert!(Timing::checked(s(10), s(30)).is_ok());
        assert!(Timing::checked(s(10), s(10)).is_err());
        assert!(Timing::checked(s(0), s(10)).is_err());
    }
}
