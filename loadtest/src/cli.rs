//! The command line: every knob of a run, with its unit and default in its doc line.
//!
//! The same struct is the library's input, so an integration test builds a run exactly as a
//! person would type it (`Args::parse_from(["loadtest", "--clients", "300", ...])`) and the
//! flags are tested with the behaviour behind them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::rooms::RoomSizes;

/// A swarm of simulated WebSocket chat clients: how many a server holds, how many messages per
/// second it delivers, how late they arrive (measured from the scheduled send time, so a stalled
/// server shows up as latency) and whether any were lost.
#[derive(Parser, Debug, Clone)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// WebSocket URL of the server. With `--protocol chat` the swarm appends `room=` and `name=`
    /// to its query; with `--protocol raw` a `{room}` in the URL is replaced by the room number.
    /// Give it more than once (`--url A --url B`) to spread the clients round-robin over several
    /// servers (client i connects to URL i mod N); deliveries are counted per room across all
    /// of them, so a room split over servers that do not share rooms shows up as loss.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: Vec<String>,

    /// What the server speaks: `chat` is wschat's JSON protocol; `raw` is any server that relays
    /// every text frame verbatim to all its clients (the frame is the payload).
    #[arg(long, value_enum, default_value_t = Protocol::Chat)]
    pub protocol: Protocol,

    /// Connections to open and hold for the whole run.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,

    /// Connections opened per second during the connect ramp. 0 = all at once (a connect storm:
    /// expect SYN retries when the server's listen backlog overflows).
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,

    /// Rooms the clients are spread over, as `--room-sizes` says. Every room gets at least one
    /// client, so at most `--clients`.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,

    /// How clients are spread over the rooms: `uniform` (client i joins room i mod K, all rooms
    /// the same size) or `zipf:S` (room r in proportion to 1/(r+1)^S: a few big rooms and a long
    /// tail of small ones, as real chat is; S = 1.0 is the classic law). Senders are spread the
    /// same way, in proportion to room size. The report adds the largest room's figures.
    #[arg(long, default_value = "uniform", value_parser = RoomSizes::from_str)]
    pub room_sizes: RoomSizes,

    /// Clients that send (the first S clients, spread over the rooms like the rest, in
    /// proportion to room size). Every client, senders included, receives.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,

    /// Messages per second sent by all senders together, on a fixed schedule.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,

    /// Bytes of text per message, including the swarm's own `lt:` header (about 30 bytes; a
    /// smaller payload is sent as just the header).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,

    /// Length of the steady phase, the only phase that counts toward throughput and latency.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,

    /// Pause between the end of the connect ramp and the steady phase, so the server's join and
    /// presence traffic from the ramp has passed before measuring.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub settle: Duration,

    /// Longest wait after the last scheduled send for messages still in flight. The drain ends
    /// early once every expected delivery has arrived; a lost message costs the whole wait.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub drain: Duration,

    /// Longest wait for one connection's TCP connect and WebSocket handshake.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub connect_timeout: Duration,

    /// Longest wait for the server's reply to our close frame at the end.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub close_timeout: Duration,

    /// Clients (the last K, never senders) that stop reading once connected and read again only
    /// at the end: shows what the server does with slow consumers. They are counted apart.
    #[arg(long, default_value_t = 0)]
    pub slow_readers: usize,

    /// Socket receive buffer of the slow readers, in bytes (0 = the kernel's default, which grows
    /// to megabytes on loopback). Small, so the server meets a slow consumer within seconds
    /// instead of after the kernel has absorbed megabytes for it.
    #[arg(long, default_value_t = 16 * 1024)]
    pub slow_reader_rcvbuf: u32,

    /// The server does not send a client's own messages back to it (some `raw` servers).
    /// By default a sender is expected to receive its own messages, as wschat does.
    #[arg(long)]
    pub no_echo: bool,

    /// HMAC secret of a server started with `--auth-secret`: each client then presents a token
    /// of its own in its URL (`sub` its name `c<i>`, `rooms` its room, valid a day), minted by
    /// the client as it connects, so the connect figures include verifying one token per
    /// connection. Chat protocol only. Default: no token (the server's default, auth off).
    #[arg(long)]
    pub token_secret: Option<String>,

    /// Room names are `<prefix>-<n>`. Default `lt-<run id>`, fresh each run, so a room's history
    /// or a concurrent run never mixes into the counts.
    #[arg(long)]
    pub room_prefix: Option<String>,

    /// Local source addresses to spread connections over, as a range `127.0.0.1-127.0.0.8` or a
    /// list `127.0.0.1,127.0.0.2`. One source address has about 28,000 ephemeral ports; each
    /// extra address adds as many, and a server's per-IP connection cap applies to each apart.
    /// Default: when every --url is an IPv4 loopback address, 127.0.0.1 and as many more of
    /// 127/8 as the clients need at 250 per address (10,000 clients: 127.0.0.1-127.0.0.40;
    /// Linux routes all of 127/8 to lo), so a server capping connections per IP (about 1,000)
    /// still takes every client; otherwise the kernel's choice.
    #[arg(long, value_parser = SourceAddrs::from_str)]
    pub source_addrs: Option<SourceAddrs>,

    /// Receiver threads of the swarm, each a single-threaded runtime owning its share of the
    /// clients. The senders always run on one more thread of their own, so that bursts of
    /// deliveries never delay a scheduled send. One keeps the swarm on about one core.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Read buffer per client, in bytes. Small keeps the swarm's own memory per client low;
    /// every read system call still takes up to this many bytes of queued frames.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,

    /// Process id of the server, to sample its memory and CPU time from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Draw the latency percentile distribution to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,

    /// Highest tolerated fraction of expected deliveries lost before the exit status is
    /// non-zero (0 = any loss fails; 0.01 = up to 1%).
    #[arg(long, default_value_t = 0.0)]
    pub max_loss: f64,

    /// Highest tolerated fraction of clients that failed to connect before the exit status is
    /// non-zero.
    #[arg(long, default_value_t = 0.0)]
    pub max_connect_errors: f64,

    /// No progress display (it is hidden anyway when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
}

/// The wire protocol the swarm speaks; see `--protocol`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// wschat's JSON chat protocol.
    Chat,
    /// Every text frame is relayed verbatim to every client.
    Raw,
    /// wschat's chat over Socket.IO (Engine.IO v4 over WebSocket): `--url
    /// ws://HOST:PORT/socket.io/?EIO=4&transport=websocket`. Each client connects the default
    /// namespace, sends `42["message",{...}]`, reads the chat's events as Socket.IO events and
    /// answers the server's pings.
    Socketio,
}

/// Local addresses to bind client sockets to before connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceAddrs(pub Vec<IpAddr>);

impl FromStr for SourceAddrs {
    type Err = String;

    /// Accepts `A-B` (an inclusive IPv4 range) or `A,B,C`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |part: &str| format!("not an IP address: {part:?}");
        if let Some((a, b)) = s.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|_| bad(a))?;
            let b: Ipv4Addr = b.trim().parse().map_err(|_| bad(b))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a >= 65_536 {
                return Err(format!(
                    "bad range {s:?}: the end must follow the start, at most 65536 addresses"
                ));
            }
            return Ok(SourceAddrs(
                (a..=b).map(|ip| IpAddr::V4(ip.into())).collect(),
            ));
        }
        let ips = s
            .split(',')
            .map(|part| part.trim().parse().map_err(|_| bad(part)))
            .collect::<Result<Vec<IpAddr>, String>>()?;
        Ok(SourceAddrs(ips))
    }
}

impl Args {
    /// Checks what clap cannot: relations between flags. Returns a message for the user.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if self.rooms == 0 || self.rooms > self.clients {
            return Err(format!(
                "--rooms must be between 1 and --clients ({})",
                self.clients
            ));
        }
        if self.token_secret.is_some() && self.protocol != Protocol::Chat {
            return Err("--token-secret needs --protocol chat".into());
        }
        if self.senders + self.slow_readers > self.clients {
            return Err(format!(
                "--senders ({}) plus --slow-readers ({}) exceed --clients ({})",
                self.senders, self.slow_readers, self.clients
            ));
        }
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return Err("--rate must be a non-negative number".into());
        }
        if self.senders > 0 && self.rate == 0.0 {
            return Err("--rate is 0 but there are senders".into());
        }
        if !(self.connect_rate.is_finite() && self.connect_rate >= 0.0) {
            return Err("--connect-rate must be a non-negative number (0 = all at once)".into());
        }
        if self.threads == 0 || self.threads > 64 {
            return Err("--threads must be between 1 and 64".into());
        }
        if self.read_buffer < 256 {
            return Err("--read-buffer must be at least 256 bytes".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.max_loss) || !(0.0..=1.0).contains(&self.max_connect_errors)
        {
            return Err("--max-loss and --max-connect-errors are fractions between 0 and 1".into());
        }
        if self.url.is_empty() {
            return Err("--url is empty".into());
        }
        for url in &self.url {
            if !url.starts_with("ws://") {
                return Err(format!(
                    "--url must start with ws:// (got {url:?}); TLS is not supported"
                ));
            }
            if self.protocol == Protocol::Raw && self.rooms > 1 && !url.contains("{room}") {
                return Err(
                    "--protocol raw relays to every client of the URL: with --rooms > 1 put `{room}` in --url"
                        .into(),
                );
            }
        }
        if let Some(SourceAddrs(ips)) = &self.source_addrs {
            if ips.is_empty() {
                return Err("--source-addrs is empty".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addrs_range_and_list() {
        let r: SourceAddrs = "127.0.0.1-127.0.0.3".parse().unwrap();
        assert_eq!(r.0.len(), 3);
        assert_eq!(r.0[2], "127.0.0.3".parse::<IpAddr>().unwrap());
        let l: SourceAddrs = "127.0.0.1, 127.0.0.9".parse().unwrap();
        assert_eq!(l.0.len(), 2);
        assert!("127.0.0.5-127.0.0.1".parse::<SourceAddrs>().is_err());
        assert!("localhost".parse::<SourceAddrs>().is_err());
    }

    #[test]
    fn defaults_are_valid() {
        let args = Args::parse_from(["loadtest"]);
        assert_eq!(args.validate(), Ok(()));
        assert_eq!(args.clients, 1000);
        assert_eq!(args.protocol, Protocol::Chat);
    }

    #[test]
    fn relations_between_flags_are_checked() {
        let bad = Args::parse_from([
            "loadtest",
            "--clients",
            "5",
            "--senders",
            "4",
            "--slow-readers",
            "2",
        ]);
        assert!(bad.validate().is_err());
        let raw = Args::parse_from(["loadtest", "--protocol", "raw", "--rooms", "2"]);
        assert!(raw.validate().is_err());
        let raw_rooms = Args::parse_from([
            "loadtest",
            "--protocol",
            "raw",
            "--rooms",
            "2",
            "--url",
            "ws://h:1/{room}",
        ]);
        assert_eq!(raw_rooms.validate(), Ok(()));
    }
}
