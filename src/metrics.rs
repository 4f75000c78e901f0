//! Counters and gauges for `GET /metrics`, in the Prometheus text format.
//!
//! Sessions add to counters once per batch (a read, a flush), not once per frame: at a million
//! deliveries a second, even an uncontended atomic per frame shows up in a profile.
//! `wschat_deliveries_total / wschat_write_calls_total` is how well writes were batched;
//! divided by `process_cpu_seconds_total` it is deliveries per CPU-second.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::ws::{Dropped, WriteStats};

pub struct Metrics {
    registry: Registry,
    pub connections_open: IntGauge,
    pub connections_total: IntCounter,
    pub rooms: IntGauge,
    pub messages_received: IntCounter,
    pub deliveries: IntCounter,
    pub write_calls: IntCounter,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub lagged_events: IntCounter,
    /// Connections that negotiated permessage-deflate.
    pub deflate_connections: IntCounter,
    /// Compressions made: one per room event that some receiver wanted compressed (not one per
    /// receiver), one per echoed message, one per compressed welcome's own part.
    pub deflate_compressions: IntCounter,
    /// Payload bytes given to those compressions, and what they came out as: the ratio is
    /// `after / before`; the bytes saved on the wire are that saving times the receivers.
    pub deflate_bytes_before: IntCounter,
    pub deflate_bytes_after: IntCounter,
    pub dropped_clients: IntCounterVec,
    pub handshake_failures: IntCounterVec,
    pub auth_refusals: IntCounterVec,
    pub refused_connections: IntCounterVec,
    pub close_codes_sent: IntCounterVec,
    pub http_requests: IntCounterVec,
    pub sessions: IntCounterVec,
    pub socketio_encodings: IntCounter,
    pub socketio_errors: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        fn add<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
            registry
                .register(Box::new(c.clone()))
                .expect("metric names are unique");
            c
        }
        let counter = |name: &str, help: &str| add(&registry, IntCounter::new(name, help).unwrap());
        let gauge = |name: &str, help: &str| add(&registry, IntGauge::new(name, help).unwrap());
        let labelled = |name: &str, help: &str, label: &str| {
            add(
                &registry,
                IntCounterVec::new(Opts::new(name, help), &[label]).unwrap(),
            )
        };
        let metrics = Metrics {
            connections_open: gauge("wschat_connections_open", "WebSocket connections open now"),
            connections_total: counter(
                "wschat_connections_total",
                "WebSocket connections accepted",
            ),
            rooms: gauge("wschat_rooms", "Rooms that exist now"),
            messages_received: counter(
                "wschat_messages_received_total",
                "Data messages received from clients",
            ),
            deliveries: counter(
                "wschat_deliveries_total",
                "Frames written to clients in full",
            ),
            write_calls: counter(
                "wschat_write_calls_total",
                "Write system calls on WebSocket connections",
            ),
            bytes_in: counter(
                "wschat_bytes_in_total",
                "Bytes received on WebSocket connections",
            ),
            bytes_out: counter(
                "wschat_bytes_out_total",
                "Bytes written on WebSocket connections",
            ),
            lagged_events: counter(
                "wschat_lagged_events_total",
                "Room events skipped by clients that fell behind",
            ),
            deflate_connections: counter(
                "wschat_deflate_connections_total",
                "WebSocket connections that negotiated permessage-deflate",
            ),
            deflate_compressions: counter(
                "wschat_deflate_compressions_total",
                "Messages compressed (once per room event, however many receive it)",
            ),
            deflate_bytes_before: counter(
                "wschat_deflate_bytes_before_total",
                "Payload bytes compressed, before compression",
            ),
            deflate_bytes_after: counter(
                "wschat_deflate_bytes_after_total",
                "Payload bytes compressed, after compression",
            ),
            dropped_clients: labelled(
                "wschat_dropped_clients_total",
                "Clients closed by the server, by reason",
                "reason",
            ),
            handshake_failures: labelled(
                "wschat_handshake_failures_total",
                "Refused upgrades, by reason",
                "reason",
            ),
            auth_refusals: labelled(
                "wschat_auth_refusals_total",
                "Upgrades refused for their token (401, 403), by reason",
                "reason",
            ),
            refused_connections: labelled(
                "wschat_refused_connections_total",
                "Connections answered 503 and closed at accept, by reason",
                "reason",
            ),
            close_codes_sent: labelled(
                "wschat_close_codes_sent_total",
                "Close frames sent, by code",
                "code",
            ),
            http_requests: labelled(
                "wschat_http_requests_total",
                "HTTP responses, by status",
                "status",
            ),
            sessions: labelled(
                "wschat_sessions_total",
                "WebSocket sessions started, by wire protocol (native, socketio)",
                "protocol",
            ),
            socketio_encodings: counter(
                "wschat_socketio_encodings_total",
                "Room events rewrapped as Socket.IO frames (at most once per event and namespace)",
            ),
            socketio_errors: labelled(
                "wschat_socketio_errors_total",
                "Socket.IO connections closed for a malformed packet, by reason",
                "reason",
            ),
            registry,
        };
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            let _ = metrics.registry.register(Box::new(process));
        }
        metrics
    }

    /// One compression of `before` payload bytes into `after`.
    pub fn count_compression(&self, before: usize, after: usize) {
        self.deflate_compressions.inc();
        self.deflate_bytes_before.inc_by(before as u64);
        self.deflate_bytes_after.inc_by(after as u64);
    }

    /// A connection the connection layer ended on its own initiative.
    pub fn count_drop(&self, why: Dropped) {
        self.dropped_clients.with_label_values(&[why.label()]).inc();
    }

    /// Writes since the last call. Counted per batch, not per frame (see the module docs).
    pub fn count_writes(&self, stats: WriteStats) {
        self.write_calls.inc_by(stats.writes.into());
        self.deliveries.inc_by(stats.frames.into());
        self.bytes_out.inc_by(stats.bytes);
    }

    /// A close frame sent. Answering a peer's close echoes its code, and the peer picks it from
    /// 3000-4999 as it likes: those share one label, so no client can add series at will.
    pub fn count_close_sent(&self, code: u16) {
        self.close_codes_sent
            .with_label_values(&[close_code_label(code)])
            .inc();
    }

    /// Refusals so far by reason, at accept and at the upgrade together (for the log summary).
    pub fn refusal_counts(&self) -> std::collections::BTreeMap<String, u64> {
        use prometheus::core::Collector;
        let mut counts = std::collections::BTreeMap::new();
        for family in self
            .refused_connections
            .collect()
            .into_iter()
            .chain(self.handshake_failures.collect())
            .chain(self.auth_refusals.collect())
        {
            for metric in family.get_metric() {
                let reason = metric
                    .get_label()
                    .first()
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default();
                *counts.entry(reason).or_insert(0) += metric.get_counter().get_value() as u64;
            }
        }
        counts
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Metrics {
    /// Shows the Redis engine's figures beside the server's (`--redis`): registered only then,
    /// so a server without Redis shows no Redis series.
    pub fn add_redis(&self, redis: &RedisMetrics) {
        let collectors: [Box<dyn prometheus::core::Collector>; 6] = [
            Box::new(redis.round_trips.clone()),
            Box::new(redis.received.clone()),
            Box::new(redis.reaped.clone()),
            Box::new(redis.reconnects.clone()),
            Box::new(redis.backfilled.clone()),
            Box::new(redis.post_failures.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("redis metric names are unique");
        }
    }
}

/// The Redis engine's figures. Made by the engine (it exists before the server's [`Metrics`]),
/// shown through [`Metrics::add_redis`].
///
/// Each round trip's histogram is resolved from the vector once, here: on the post path an
/// observation is then two atomic additions, with no label lookup.
pub struct RedisMetrics {
    round_trips: HistogramVec,
    /// A pipeline of posts (each the post script: id, stream, publish): one per message at low
    /// rates, one per batch of waiting messages under load.
    pub post: Histogram,
    /// A pipeline of relayed events' `PUBLISH` alone (`typing`).
    pub publish: Histogram,
    /// A room's load for its first local member.
    pub load: Histogram,
    /// A room's backfill after a reconnection.
    pub backfill: Histogram,
    /// Pub/sub messages this process received (messages, relayed events, presence changes):
    /// one per event and subscribed process, whatever the number of members it has, which is
    /// what makes the fan-out local.
    pub received: IntCounter,
    /// Other processes this one found dead (past `--presence-expiry` without a heartbeat) and
    /// whose users it took out of the rooms' presence.
    pub reaped: IntCounter,
    /// Pub/sub reconnections that resubscribed and backfilled every fed room.
    pub reconnects: IntCounter,
    /// Messages delivered by backfills (posted while this process was not subscribed).
    pub backfilled: IntCounter,
    /// Posts (and relayed events) that reached nobody: refused by Redis, unanswered, or not
    /// queued because the queue was full.
    pub post_failures: IntCounter,
}

impl RedisMetrics {
    pub fn new() -> RedisMetrics {
        // From 100 µs (a loopback round trip) to 5 s (the load timeout).
        let buckets = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            5.0,
        ];
        let round_trips = HistogramVec::new(
            HistogramOpts::new(
                "wschat_redis_round_trip_seconds",
                "Redis round trips that succeeded, by kind (post, publish, load, backfill)",
            )
            .buckets(buckets),
            &["kind"],
        )
        .expect("a valid histogram");
        let kind = |kind: &str| round_trips.with_label_values(&[kind]);
        RedisMetrics {
            post: kind("post"),
            publish: kind("publish"),
            load: kind("load"),
            backfill: kind("backfill"),
            received: IntCounter::new(
                "wschat_redis_received_total",
                "Pub/sub messages received from Redis: one per event per subscribed process",
            )
            .expect("a valid counter"),
            reaped: IntCounter::new(
                "wschat_redis_reaped_processes_total",
                "Other wschat processes found dead (no heartbeat within --presence-expiry) whose users this one made leave",
            )
            .expect("a valid counter"),
            reconnects: IntCounter::new(
                "wschat_redis_reconnects_total",
                "Redis pub/sub reconnections (resubscribed and backfilled)",
            )
            .expect("a valid counter"),
            backfilled: IntCounter::new(
                "wschat_redis_backfilled_total",
                "Messages delivered by backfill after a Redis reconnection",
            )
            .expect("a valid counter"),
            post_failures: IntCounter::new(
                "wschat_redis_post_failures_total",
                "Posts that reached nobody: Redis refused them, did not answer, or the queue was full",
            )
            .expect("a valid counter"),
            round_trips,
        }
    }
}

impl Default for RedisMetrics {
    fn default() -> Self {
        RedisMetrics::new()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A close code as a metrics label: the codes RFC 6455 and the IANA registry define by number,
/// every application code as `other`. A bounded set, whatever peers send.
fn close_code_label(code: u16) -> &'static str {
    match code {
        1000 => "1000",
        1001 => "1001",
        1002 => "1002",
        1003 => "1003",
        1007 => "1007",
        1008 => "1008",
        1009 => "1009",
        1010 => "1010",
        1011 => "1011",
        1012 => "1012",
        1013 => "1013",
        1014 => "1014",
        // The one application code the server itself sends (a token expired).
        crate::auth::TOKEN_EXPIRED => "4001",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new();
        metrics.deliveries.inc_by(3);
        metrics.count_close_sent(1009);
        for code in 3000..3300 {
            metrics.count_close_sent(code);
        }
        let text = metrics.render();
        assert!(text.contains("wschat_deliveries_total 3"));
        assert!(text.contains("wschat_close_codes_sent_total{code=\"1009\"} 1"));
        assert!(text.contains("wschat_close_codes_sent_total{code=\"other\"} 300"));
        assert!(
            !text.contains("wschat_redis"),
            "no redis series without redis"
        );
    }

    #[test]
    fn redis_figures_are_shown_once_added() {
        let metrics = Metrics::new();
        let redis = RedisMetrics::new();
        metrics.add_redis(&redis);
        redis.post.observe(0.0003);
        redis.reconnects.inc();
        let text = metrics.render();
        assert!(text.contains("wschat_redis_round_trip_seconds_count{kind=\"post\"} 1"));
        assert!(text.contains("wschat_redis_reconnects_total 1"));
        assert!(text.contains("wschat_redis_post_failures_total 0"));
        assert!(text.contains("wschat_redis_received_total 0"));
        assert!(text.contains("wschat_redis_reaped_processes_total 0"));
    }
}
