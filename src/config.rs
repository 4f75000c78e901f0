//! Every limit and timeout the server enforces, in one place.
//!
//! Each field is a command-line flag (and most an environment variable) so an operator can tune it
//! without reading the code; each doc line gives the unit, the default and what trading it costs.
//! `wschat --help` prints these same lines.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

/// wschat: a real-time chat server with a hand-rolled RFC 6455 WebSocket implementation.
#[derive(Parser, Debug, Clone)]
#[command(version, about, long_about = None)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port; the bound address is logged.
    #[arg(long, env = "WSCHAT_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Log every WebSocket frame in and out at INFO level, each line prefixed with its
    /// connection's id (and nickname): the handshake's key and accept, each frame's header, text
    /// previews, close codes, and which write carried each outgoing frame. `--trace-frames`
    /// follows every connection, `--trace-frames=ID` only connection ID. A teaching aid: slow, and
    /// it logs message contents. Off by default.
    #[arg(long, value_name = "ID", num_args = 0..=1, require_equals = true,
          default_missing_value = "all")]
    pub trace_frames: Option<TraceFrames>,

    /// Largest chat message, in bytes, after reassembling fragments. Bigger ones close the
    /// connection with 1009. Default 64 KiB: far above any human message, small enough that a
    /// peer cannot make the server buffer much.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_message_size: usize,

    /// Serve `/echo` (every message sent back; what the Autobahn|Testsuite talks to). Off by
    /// default: a public chat server has no reason to accept 16 MiB messages from anyone.
    #[arg(long)]
    pub echo: bool,

    /// Largest message on `/echo`, in bytes. Default 16 MiB so the Autobahn suite's large-message
    /// cases run; `/echo` is a conformance tool, not a chat room. An echo connection holds at most
    /// this plus `--write-buffer`.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub echo_max_message_size: usize,

    /// permessage-deflate (RFC 7692): `on` accepts a client's offer (every browser makes one),
    /// always without context takeover either way, so an idle connection holds no compressor or
    /// decompressor and a broadcast is compressed once for all its receivers; `off` never
    /// negotiates it (every frame plain, and RSV1 from a client is a protocol error). On by
    /// default: chat JSON shrinks to a third or less, for one compression per room event.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub deflate: Switch,

    /// Smallest message payload, in bytes, worth compressing for a client that negotiated
    /// `--deflate`. Smaller ones go plain (so does anything that would not get smaller). Default
    /// 64: below it DEFLATE's own overhead eats most of the gain, and a compression costs
    /// microseconds, once per room event. 0 = try every message.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub deflate_threshold: usize,

    /// Largest single frame payload, in bytes (0 = no limit beyond the message size). A frame over
    /// it closes the connection with 1009.
    #[arg(long, default_value_t = 0)]
    pub max_frame_size: usize,

    /// Largest `text` of a chat message, in bytes. A longer one is answered with an `error`
    /// event (`too_long`) and the connection stays open.
    #[arg(long, default_value_t = 4096)]
    pub max_text_len: usize,

    /// Most WebSocket connections open at once; beyond it an upgrade gets `503`. 0 = derived from
    /// the process's open-file limit (raised to its hard limit at start) less 128 for headroom.
    /// Whatever it is, WebSocket and HTTP connections together never exceed that file budget:
    /// past it a new connection is answered `503` and closed at once.
    #[arg(long, env = "WSCHAT_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// Most connections not yet upgraded (plain HTTP, or a handshake in progress) open at once.
    /// Beyond it a new connection is answered `503` and closed before any request is read. They
    /// count toward the file budget too, so slow handshakes cannot starve upgraded clients.
    #[arg(long, default_value_t = 1024)]
    pub max_http_connections: usize,

    /// Most connections (WebSocket and HTTP together) from one client IP address; beyond it a new
    /// connection is answered `503` and closed. 0 = no limit. 1,000 leaves room for a NAT or an
    /// office behind one address; a reverse proxy in front of wschat needs 0 (every client then
    /// shares the proxy's address). The swarm spreads over loopback addresses to stay under it.
    #[arg(long, default_value_t = 1000)]
    pub max_connections_per_ip: usize,

    /// Most connections from one IP address that have not upgraded yet (slowloris defence: a
    /// client trickling headers holds one of these for up to `--header-timeout`). 0 = no limit.
    /// 256 is far above what a browser or a ramped load test has in flight, and a quarter of
    /// `--max-http-connections`, so one address cannot take all of those.
    #[arg(long, default_value_t = 256)]
    pub max_handshakes_per_ip: usize,

    /// Frames a chat connection may send per second, sustained: messages, typing, and control
    /// frames too (a ping costs a pong). 0 = no limit. Over it the frame is dropped; the first
    /// dropped message of a run is answered with an `error` event `rate_limited` (one notice per
    /// run, not per message, so a flooder is not fed a reply each). `/echo` has no rate limit.
    #[arg(long, default_value_t = 200.0)]
    pub rate_limit: f64,

    /// Burst of messages a connection may send at once above `--rate-limit`.
    #[arg(long, default_value_t = 400.0)]
    pub rate_burst: f64,

    /// Frames dropped by the rate limit in a row after which the client is closed with 1008.
    #[arg(long, default_value_t = 100)]
    pub rate_strikes: u32,

    /// Longest nickname, in characters.
    #[arg(long, default_value_t = 32)]
    pub max_name_len: usize,

    /// Longest room name, in characters.
    #[arg(long, default_value_t = 64)]
    pub max_room_len: usize,

    /// Messages a room keeps for late joiners and reconnecting clients (`since=`).
    #[arg(long, default_value_t = 100)]
    pub history: usize,

    /// Bytes of messages a room keeps for late joiners, beside `--history` (each message counts
    /// its JSON plus one). Bounds every welcome: at most this plus the names (see
    /// `chat::protocol::welcome_size_limit`), whatever the messages hold. Default 64 KiB: a
    /// hundred ordinary messages fit; a hundred of 4,096 escaped characters (2.4 MB) do not.
    /// Larger = more history for big messages, more bytes per joiner on the wire.
    #[arg(long, default_value_t = 64 * 1024)]
    pub history_bytes: usize,

    /// Redis to share rooms with every other wschat pointed at it (`redis://HOST:PORT/DB`): ids,
    /// epochs and history (`--history` long) live there, and each message posted on any process
    /// reaches the members on every process. Unset (the default): the in-memory engine, one
    /// process holds everything and needs nothing else. The trade-off: one Redis round trip per
    /// post and a dependency that must be up (see README, "Running more than one server").
    #[arg(long, env = "WSCHAT_REDIS", value_name = "URL")]
    pub redis: Option<String>,

    /// With `--redis`: how often this process tells Redis it is alive, and looks for processes
    /// that stopped doing so (their users are then announced as left; see
    /// `--presence-expiry`). Default 10 s: a Redis round trip per interval per process. Shorter
    /// finds a killed process sooner, at more heartbeats; it must be under `--presence-expiry`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub presence_heartbeat: Duration,

    /// With `--redis`: how long after its last heartbeat a process counts as dead, and any live
    /// process removes its users (announcing their `leave`). A process killed without cleaning
    /// up (`kill -9`, a crash, a lost machine) has its users leave within this plus
    /// `--presence-heartbeat`: 40 s with the defaults. Default 30 s: three missed heartbeats, so
    /// a process stalled for a moment (or cut from Redis briefly) is not taken for dead; a live
    /// process that was, re-registers its users at its next heartbeat (they are announced
    /// again). Shorter = killed processes' users leave sooner, more false alarms on a slow host.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub presence_expiry: Duration,

    /// Largest capacity of a room's broadcast channel, in events. A room starts with 2 slots and
    /// doubles up to this while some member is half a ring behind; a client further behind than
    /// this gets a `lagged` notice and skips ahead. Larger = more tolerance of bursts, more memory
    /// per busy room (each slot holds one shared frame, about 64 bytes of slot).
    #[arg(long, default_value_t = 4096)]
    pub channel_capacity: usize,

    /// Most rooms at once; beyond it, an upgrade that would create a room gets `503` (existing
    /// rooms stay joinable). 0 = no cap but the connection limit (a room lives only while somebody
    /// is in it, and an idle room of one costs well under 1 KiB). Lower it to bound what clients
    /// choosing fresh room names can make the server hold.
    #[arg(long, default_value_t = 0)]
    pub max_rooms: usize,

    /// Bytes of frames a connection may have queued but not yet written. At or over it the
    /// connection takes no more events from the room (it lags instead of growing memory) and
    /// reads no more frames from the client (so pings it never reads the pongs of cost nothing):
    /// a connection holds at most this plus one message.
    #[arg(long, default_value_t = 256 * 1024)]
    pub write_buffer: usize,

    /// Rooms with more users than this get presence as one coalesced `presence` event per
    /// `--presence-interval` instead of a `join`/`leave` per user, and a bounded welcome.
    #[arg(long, default_value_t = 100)]
    pub presence_threshold: usize,

    /// Interval between coalesced `presence` events in large rooms.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1000ms")]
    pub presence_interval: Duration,

    /// Least time between two `typing` events relayed for one connection; more are dropped
    /// without a reply (each reaches the whole room, and the page sends one per 2 s).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub typing_interval: Duration,

    /// Most names in a welcome's `users` list, and in each list of a `presence` event; the
    /// events' counts give the totals.
    #[arg(long, default_value_t = 100)]
    pub welcome_users: usize,

    /// Time a client may take to send complete HTTP request headers (slowloris defence). This is
    /// also the handshake timeout: an upgrade request is complete when its headers are, and the
    /// `101` follows at once.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub header_timeout: Duration,

    /// Time without any frame from a client before the server pings it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub ping_interval: Duration,

    /// Time without any frame from a client (pong included) before it is closed with 1001 and
    /// announced as left. Must exceed the ping interval.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "75s")]
    pub idle_timeout: Duration,

    /// Socket.IO (`/socket.io/`): time between the server's Engine.IO pings (`2`), sent in the
    /// open packet as `pingInterval`. Engine.IO v4 clients never ping; they expect the server's
    /// ping within `pingInterval + pingTimeout` and drop the connection otherwise. Default 25 s,
    /// as Socket.IO servers; shorter finds dead clients sooner at a frame each way per interval.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "25s")]
    pub socketio_ping_interval: Duration,

    /// Socket.IO: time a client has to answer a ping with a pong (`3`) before it is closed with
    /// 1001 and announced as left (`pingTimeout` in the open packet). Default 20 s, as Socket.IO
    /// servers.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    pub socketio_ping_timeout: Duration,

    /// Socket.IO: time a client has after the upgrade to connect a namespace (`40`) before it is
    /// closed with 1008. Default 10 s: a client library connects at once; a socket that never
    /// does holds a connection slot for nothing.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub socketio_connect_timeout: Duration,

    /// Socket.IO: most binary attachments one packet may announce; more closes the connection
    /// with 1008. Their bytes together are bounded by `--max-message-size`. Default 4: the chat
    /// uses none (a binary `message` is answered `bad_request`), so this only bounds what a
    /// client can make the server count.
    #[arg(long, default_value_t = 4)]
    pub socketio_max_attachments: usize,

    /// Time to wait for the peer's close frame after sending ours.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub close_timeout: Duration,

    /// Time a connection's socket may stay unwritable with frames queued before the client
    /// is dropped as a slow consumer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub write_timeout: Duration,

    /// Time to wait for clients to finish the close handshake on shutdown.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub shutdown_grace: Duration,

    /// An Origin allowed besides the page's own (repeatable), e.g. `http://localhost:3000`.
    /// Browsers send Origin; a request whose Origin is neither `http(s)://` its own Host nor
    /// listed gets `403`.
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Vec<String>,

    /// A host name (with `:port` if not 80) this server answers for (repeatable), e.g.
    /// `chat.example.com` or `127.0.0.1:8080`. When given, a request whose `Host` is not listed
    /// gets `421` (a DNS-rebinding defence: a hostile page's name resolved to this server).
    /// Default: any host.
    #[arg(long = "allowed-host")]
    pub allowed_hosts: Vec<String>,

    /// Serve `/metrics` on this separate address instead of the main one (where it then answers
    /// `404`). Default: on the main listener, readable by anyone who can reach it (it shows
    /// connection and file-descriptor counts); bind this to a private address in production.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,

    /// HMAC secret (at least 32 bytes) that turns token authentication on: every `/ws`
    /// connection must then carry an `HS256` token signed with it (`?token=` or
    /// `Authorization: Bearer`), whose `sub` is the nickname and whose `rooms` say what it may
    /// join (README, "Authentication"). Off by default: anyone may join any room under any name.
    /// Prefer `--auth-secret-file` or the environment: a command line is visible to every user of
    /// the machine. Never printed, not even by `--help`.
    #[arg(
        long,
        env = "WSCHAT_AUTH_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub auth_secret: Option<crate::auth::Secret>,

    /// File holding the HMAC secret of `--auth-secret` (one trailing newline ignored).
    #[arg(long, value_name = "FILE")]
    pub auth_secret_file: Option<PathBuf>,

    /// Public key in PEM, Ed25519 (`EdDSA` tokens) or RSA (`RS256`), that turns token
    /// authentication on: the application's backend signs with the private key, which this
    /// server never sees. May be given with `--auth-secret`; a token's `alg` picks the key.
    #[arg(long, value_name = "PEM-FILE")]
    pub auth_public_key: Option<PathBuf>,

    /// Interval of the `info` summary line (connections, rooms, refusals by reason since the last
    /// one). Connection opens and closes log at `debug`, so a client cannot make the log grow
    /// faster than this line and the server's own events. 0 = no summary.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub log_summary_interval: Duration,
}

/// A feature switched `on` or `off` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// Which connections `--trace-frames` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFrames {
    All,
    /// Only the connection with this id (ids count up from 1 in the order upgrades are accepted;
    /// the handshake line of every connection is logged, so the id can be read off the log).
    Conn(u64),
}

impl std::str::FromStr for TraceFrames {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(TraceFrames::All),
            id => id
                .parse()
                .map(TraceFrames::Conn)
                .map_err(|_| format!("expected a connection id (a number), got {id:?}")),
        }
    }
}

impl TraceFrames {
    /// Whether connection `id`'s frames are traced.
    pub fn follows(self, id: u64) -> bool {
        match self {
            TraceFrames::All => true,
            TraceFrames::Conn(followed) => followed == id,
        }
    }
}

impl Default for Config {
    /// Every flag at its documented default. Unlike `Config::parse()`, this reads no `WSCHAT_*`
    /// environment variable: a test or bench gets the same server whatever shell runs it.
    fn default() -> Self {
        let command = Config::command().mut_args(|arg| arg.env(None));
        let matches = command.get_matches_from(["wschat"]);
        Config::from_arg_matches(&matches).expect("the defaults parse")
    }
}

impl Config {
    /// Whether token authentication is on (some key flag is given).
    pub fn auth_enabled(&self) -> bool {
        self.auth_secret.is_some()
            || self.auth_secret_file.is_some()
            || self.auth_public_key.is_some()
    }

    /// Defaults, listening on an ephemeral loopback port: what tests and benches start from.
    pub fn for_tests() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_frames_takes_an_optional_connection_id() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(std::iter::once("wschat").chain(args.iter().copied()))
                .map(|config| config.trace_frames)
        };
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&["--trace-frames"]).unwrap(), Some(TraceFrames::All));
        assert_eq!(
            parse(&["--trace-frames=7"]).unwrap(),
            Some(TraceFrames::Conn(7))
        );
        assert!(parse(&["--trace-frames=alice"]).is_err());
        // `require_equals`: a following argument is never taken as the id.
        assert!(parse(&["--trace-frames", "7"]).is_err());
        assert!(TraceFrames::Conn(7).follows(7) && !TraceFrames::Conn(7).follows(8));
    }

    #[test]
    fn debug_never_shows_the_auth_secret() {
        let config =
            Config::try_parse_from(["wschat", "--auth-secret", "do-not-print-me"]).unwrap();
        assert!(config.auth_enabled());
        assert!(!format!("{config:?}").contains("do-not-print-me"));
    }

    #[test]
    fn defaults_ignore_the_environment() {
        // Safe here: no other test of this crate reads WSCHAT_ADDR.
        std::env::set_var("WSCHAT_ADDR", "127.0.0.1:1");
        let config = Config::default();
        std::env::remove_var("WSCHAT_ADDR");
        assert_eq!(config.addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
    }
}
