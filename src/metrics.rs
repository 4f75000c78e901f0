//! Counters and gauges for `GET /metrics`, in the Prometheus text format.
//!
//! Sessions add to counters once per batch (a read, a flush), not once per frame: at a million
//! deliveries a second, even an uncontended atomic per frame shows up in a profile.
//! `wschat_deliveries_total / wschat_write_calls_total` is how well writes were batched;
//! divided by `process_cpu_seconds_total` it is deliveries per CPU-second.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

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
    pub dropped_clients: IntCounterVec,
    pub handshake_failures: IntCounterVec,
    pub close_codes_sent: IntCounterVec,
    pub http_requests: IntCounterVec,
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
            registry,
        };
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            let _ = metrics.registry.register(Box::new(process));
        }
        metrics
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

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new();
        metrics.deliveries.inc_by(3);
        metrics.close_codes_sent.with_label_values(&["1009"]).inc();
        let text = metrics.render();
        assert!(text.contains("wschat_deliveries_total 3"));
        assert!(text.contains("wschat_close_codes_sent_total{code=\"1009\"} 1"));
    }
}
