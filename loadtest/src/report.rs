//! The figures of a run: computed once from the merged results, written as JSON for scripts
//! (this file) and printed for people ([`human`](crate::human)).
//!
//! The JSON keys named in issue 3 are stable (scripts and CI read them); others may be added but
//! not renamed. Every count is exact: `expected` is the sum over measured receivers of what the
//! senders of their room had accepted by the server, `lost = expected - delivered`, and the
//! latency histogram holds one sample per delivered message.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency or time percentiles, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Number of samples.
    pub samples: u64,
}

impl Percentiles {
    /// Reads a histogram of microseconds.
    pub fn from_micros(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
            samples: h.len(),
        }
    }
}

/// The server's resources, sampled from /proc with `--server-pid`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerResources {
    /// Its process id.
    pub pid: u32,
    /// Resident memory before the swarm connected.
    pub rss_idle_bytes: u64,
    /// Resident memory with every client connected, before the steady phase.
    pub rss_connected_bytes: u64,
    /// Highest resident memory seen during the run.
    pub rss_peak_bytes: u64,
    /// `(rss_connected - rss_idle) / clients_connected`.
    pub bytes_per_connection: f64,
    /// CPU time (user + system) during the steady phase and the drain.
    pub cpu_seconds: f64,
    /// CPU time during the connect ramp.
    pub cpu_seconds_connect: f64,
    /// `cpu_seconds` over the wall time of steady phase and drain (1.0 = one core busy).
    pub cpu_utilization: f64,
    /// Deliveries per second of server CPU: the server's efficiency, whatever its core count.
    pub deliveries_per_cpu_second: f64,
    /// Time its threads waited for a CPU during steady phase and drain, over that wall time:
    /// above a few percent, other work on its core shaped the figures.
    pub cpu_wait_fraction: f64,
}

/// The swarm measuring itself, to tell whether it or the server was the bottleneck.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SwarmResources {
    /// Worker threads.
    pub threads: usize,
    /// CPU time of the whole swarm process during the steady phase and the drain.
    pub cpu_seconds: f64,
    /// The busiest worker thread's CPU time over the wall time of those phases.
    pub busiest_thread_utilization: f64,
    /// Deliveries the swarm counted per second of its own CPU: its ceiling on one core.
    pub deliveries_per_cpu_second: f64,
    /// Time the swarm's threads waited for a CPU, over the wall time of the measured phases.
    pub cpu_wait_fraction: f64,
    /// Resident memory with every client connected.
    pub rss_bytes: u64,
    /// `(rss connected - rss before) / clients_connected`.
    pub bytes_per_client: f64,
    /// How late sends were against their schedule.
    pub send_lag_ms: Percentiles,
}

/// The clients that stopped reading (`--slow-readers`), counted apart from the measured ones.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SlowReaders {
    /// How many there were (connected).
    pub clients: u64,
    /// Messages of their rooms the server accepted, times their number.
    pub expected: u64,
    /// What they had received by the end, after reading again.
    pub delivered: u64,
    /// `lagged` notices they received, and the events those said were skipped.
    pub lagged_notices: u64,
    /// Sum of `missed` over those notices.
    pub lagged_missed: u64,
    /// How their connections ended (close code, or how else).
    pub close_codes: BTreeMap<String, u64>,
    /// Those the server closed (or dropped) before the end of the run.
    pub closed_by_server: u64,
}

/// One server's share of the clients, with several `--url`s.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UrlShare {
    /// The URL as given.
    pub url: String,
    /// Clients that connected to it.
    pub clients_connected: u64,
}

/// One room's share of the counts: the measured receivers in it and what they got.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RoomFigures {
    /// Its number (`<prefix>-<room>` in the chat protocol).
    pub room: usize,
    /// Clients in it, as planned.
    pub clients: usize,
    /// Senders in it.
    pub senders: usize,
    /// Measured receivers in it that connected.
    pub receivers: u64,
    /// Deliveries owed to them.
    pub expected: u64,
    /// Distinct messages they received.
    pub delivered: u64,
    /// `expected - delivered`.
    pub lost: u64,
    /// Latency of their deliveries.
    pub latency_ms: Percentiles,
}

/// One second of the run (steady phase and drain).
#[derive(Clone, Debug, Default, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the start of the steady phase (end of the second).
    pub t: f64,
    /// Messages sent in that second.
    pub sent: u64,
    /// First deliveries counted in that second.
    pub delivered: u64,
    /// 99th percentile latency of those deliveries, ms.
    pub p99_ms: f64,
}

/// Everything a run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// `chat` or `raw`.
    pub protocol: String,
    /// The URL tested (several: separated by `, `).
    pub url: String,
    /// With several `--url`s, how many clients connected to each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<UrlShare>,
    /// Local source addresses the connections were spread over (0 = the kernel's choice).
    pub source_addrs: usize,
    /// This run's id (in every stamp, and in the default room names).
    pub run_id: String,
    /// `--clients`.
    pub clients_requested: usize,
    /// Connections established.
    pub clients_connected: usize,
    /// Connect attempts that failed.
    pub connect_errors: u64,
    /// Failed attempts by kind (`refused`, `timeout`, `files`, `ports`, `http_503`, ...).
    pub connect_error_kinds: BTreeMap<String, u64>,
    /// Wall time of the connect ramp, seconds.
    pub connect_secs: f64,
    /// TCP connect plus handshake time.
    pub connect_ms: Percentiles,
    /// `--rooms`.
    pub rooms: usize,
    /// `--room-sizes`: `uniform` or `zipf:S`.
    pub room_sizes: String,
    /// `--senders`.
    pub senders: usize,
    /// Senders that connected.
    pub senders_connected: usize,
    /// `--rate`, messages per second for all senders.
    pub rate: f64,
    /// `--payload`, bytes of text per message.
    pub payload_bytes: usize,
    /// Length of the steady phase, seconds.
    pub duration_secs: f64,
    /// Messages the schedule held for the connected senders.
    pub scheduled: u64,
    /// Messages written.
    pub sent: u64,
    /// Messages the server refused: sent by a sender that got an `error` event, and received by
    /// nobody.
    pub refused: u64,
    /// `error` events received by senders (a server may send one for a run of refusals).
    pub refusal_notices: u64,
    /// Those events by code (e.g. `rate_limited`).
    pub refused_codes: BTreeMap<String, u64>,
    /// Deliveries owed to measured receivers for the messages the server accepted.
    pub expected: u64,
    /// Distinct messages received by measured receivers.
    pub delivered: u64,
    /// `expected - delivered`.
    pub lost: u64,
    /// Part of `lost` the server declared with `lagged` notices.
    pub lost_lagged: u64,
    /// Part of `lost` nothing accounted for.
    pub lost_silent: u64,
    /// `lagged` notices received by measured receivers.
    pub lagged_notices: u64,
    /// Repeated arrivals.
    pub duplicates: u64,
    /// Arrivals after a later message of the same sender.
    pub out_of_order: u64,
    /// Stamped messages of this run that were not in the receiver's room schedule.
    pub unexpected: u64,
    /// Stamped messages of another run.
    pub foreign: u64,
    /// `delivered` over the steady window (see `throughput_window_secs`).
    pub deliveries_per_sec: f64,
    /// `sent` over the steady phase.
    pub sends_per_sec: f64,
    /// The steady phase, or longer if deliveries went on into the drain.
    pub throughput_window_secs: f64,
    /// Latency from the scheduled send time to the arrival, over every delivery.
    pub latency_ms: Percentiles,
    /// How connections ended, by close code (or `eof_without_close`, `close_timeout`, ...).
    pub close_codes: BTreeMap<String, u64>,
    /// Measured clients whose connection ended before the swarm closed it.
    pub closed_early: u64,
    /// The largest room's own figures, with more than one room (`--room-sizes zipf:S` makes it
    /// much larger than the others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest_room: Option<RoomFigures>,
    /// `--slow-readers` figures, when there were any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_readers: Option<SlowReaders>,
    /// The swarm's own use of the machine.
    pub swarm: SwarmResources,
    /// The server's, with `--server-pid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerResources>,
    /// Per second of the steady phase and drain.
    pub timeline: Vec<TimelinePoint>,
    /// Limits hit, bottlenecks in the swarm, anything that makes the figures less trustworthy.
    pub warnings: Vec<String>,
    /// Whether loss and connect errors stayed within `--max-loss` and `--max-connect-errors`.
    pub passed: bool,
    /// Why not.
    pub failures: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_stable_keys() {
        let v = serde_json::to_value(Report {
            server: Some(ServerResources::default()),
            ..Report::default()
        })
        .unwrap();
        for key in [
            "clients_requested",
            "clients_connected",
            "connect_errors",
            "sent",
            "expected",
            "delivered",
            "lost",
            "duplicates",
            "out_of_order",
            "deliveries_per_sec",
        ] {
            assert!(v[key].is_number(), "{key}");
        }
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_ms"][key].is_number(), "latency_ms.{key}");
        }
        for key in [
            "rss_idle_bytes",
            "rss_connected_bytes",
            "rss_peak_bytes",
            "bytes_per_connection",
            "cpu_seconds",
        ] {
            assert!(v["server"][key].is_number(), "server.{key}");
        }
    }

    #[test]
    fn percentiles_of_micros() {
        let mut h = crate::stats::micros_histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let p = Percentiles::from_micros(&h);
        assert_eq!(p.samples, 1000);
        assert!(
            (p.p50 - 0.5).abs() < 0.01 && (p.max - 1.0).abs() < 0.01,
            "{p:?}"
        );
        assert!(!Report::default().human().is_empty());
    }
}
