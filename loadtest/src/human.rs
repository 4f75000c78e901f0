//! The report for people: one line per concern, the label in a fixed column, the figure first.
//!
//! [`Report::human`] is assembled from one small function per part of the run (scenario,
//! connect, messages, closes, resources, verdict), so a new figure goes beside the ones it
//! belongs with, and each part reads as the lines it prints. Scripts read the JSON instead; this
//! text may change.

use std::fmt::Write as _;

use crate::report::{Percentiles, Report};

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in B, KiB or MiB, whichever reads best.
fn bytes(n: f64) -> String {
    if n.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else if n.abs() >= 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{n:.0} B")
    }
}

/// Milliseconds to three significant digits or so.
fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn percentiles_line(p: &Percentiles) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {} ms",
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.p999),
        ms(p.max)
    )
}

impl Report {
    /// The report for people, as `loadtest` prints it.
    pub fn human(&self) -> String {
        let mut o = String::new();
        self.scenario(&mut o);
        self.connect(&mut o);
        self.messages(&mut o);
        self.closes(&mut o);
        self.resources(&mut o);
        self.verdict(&mut o);
        o
    }

    /// What was asked: protocol, URL, run id, and the scenario in one sentence.
    fn scenario(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "loadtest {} · {} · run {}",
            self.protocol, self.url, self.run_id
        );
        let sizes = if self.room_sizes.is_empty() || self.room_sizes == "uniform" {
            String::new()
        } else {
            format!(" sized {}", self.room_sizes)
        };
        let _ = writeln!(
            o,
            "scenario    {} clients in {} room(s){sizes}; {} senders, {} msg/s in total, {} B each, for {} s",
            thousands(self.clients_requested as u64),
            self.rooms,
            self.senders,
            self.rate,
            self.payload_bytes,
            self.duration_secs
        );
    }

    /// The connect ramp.
    fn connect(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "connect     {} of {} connected in {:.2} s, {} errors{}; handshake {}",
            thousands(self.clients_connected as u64),
            thousands(self.clients_requested as u64),
            self.connect_secs,
            thousands(self.connect_errors),
            if self.connect_error_kinds.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.connect_error_kinds)
            },
            percentiles_line(&self.connect_ms)
        );
        if self.source_addrs > 1 {
            let _ = writeln!(o, "            from {} source addresses", self.source_addrs);
        }
        if !self.urls.is_empty() {
            let _ = writeln!(
                o,
                "servers     {} URLs, clients round-robin: {}",
                self.urls.len(),
                self.urls
                    .iter()
                    .map(|u| format!("{} {}", u.url, thousands(u.clients_connected)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    /// What was sent, what arrived, how fast and how late.
    fn messages(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "sent        {} of {} scheduled ({:.1}/s){}",
            thousands(self.sent),
            thousands(self.scheduled),
            self.sends_per_sec,
            if self.refused > 0 {
                format!(
                    ", {} refused by the server {:?}",
                    thousands(self.refused),
                    self.refused_codes
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            o,
            "delivered   {} of {} expected; lost {} ({} declared lagged, {} silent); duplicates {}; out of order {}",
            thousands(self.delivered),
            thousands(self.expected),
            thousands(self.lost),
            thousands(self.lost_lagged),
            thousands(self.lost_silent),
            thousands(self.duplicates),
            thousands(self.out_of_order)
        );
        if self.unexpected + self.foreign > 0 {
            let _ = writeln!(
                o,
                "            also {} unexpected and {} foreign stamped messages",
                self.unexpected, self.foreign
            );
        }
        let _ = writeln!(
            o,
            "throughput  {} deliveries/s over {:.2} s",
            thousands(self.deliveries_per_sec.round() as u64),
            self.throughput_window_secs
        );
        let _ = writeln!(
            o,
            "latency     {}  (from the scheduled send time; {} samples)",
            percentiles_line(&self.latency_ms),
            thousands(self.latency_ms.samples)
        );
        if let Some(room) = &self.largest_room {
            let _ = writeln!(
                o,
                "largest     room {} ({} clients, {} senders): delivered {} of {} expected; lost {}; latency {}",
                room.room,
                thousands(room.clients as u64),
                room.senders,
                thousands(room.delivered),
                thousands(room.expected),
                thousands(room.lost),
                percentiles_line(&room.latency_ms)
            );
        }
    }

    /// How connections ended, the slow readers' apart.
    fn closes(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "closes      {}{}",
            self.close_codes
                .iter()
                .map(|(k, v)| format!("{k} × {}", thousands(*v)))
                .collect::<Vec<_>>()
                .join(", "),
            if self.closed_early > 0 {
                format!("; {} measured clients closed early", self.closed_early)
            } else {
                String::new()
            }
        );
        if let Some(s) = &self.slow_readers {
            let _ = writeln!(
                o,
                "slow        {} slow readers got {} of {} expected; {} lagged notices ({} skipped); {} closed by the server {:?}",
                s.clients,
                thousands(s.delivered),
                thousands(s.expected),
                s.lagged_notices,
                thousands(s.lagged_missed),
                s.closed_by_server,
                s.close_codes
            );
        }
    }

    /// The server's and the swarm's memory and CPU.
    fn resources(&self, o: &mut String) {
        if let Some(s) = &self.server {
            let _ = writeln!(
                o,
                "server      pid {}: rss idle {}, connected {} ({} per connection), peak {}",
                s.pid,
                bytes(s.rss_idle_bytes as f64),
                bytes(s.rss_connected_bytes as f64),
                bytes(s.bytes_per_connection),
                bytes(s.rss_peak_bytes as f64)
            );
            let _ = writeln!(
                o,
                "            cpu {:.2} s in steady+drain ({:.0}% of a core, waited for a CPU {:.0}% of the time), {:.2} s connecting; {} deliveries per CPU-second",
                s.cpu_seconds,
                s.cpu_utilization * 100.0,
                s.cpu_wait_fraction * 100.0,
                s.cpu_seconds_connect,
                thousands(s.deliveries_per_cpu_second.round() as u64)
            );
        }
        let w = &self.swarm;
        let _ = writeln!(
            o,
            "swarm       {} thread(s), cpu {:.2} s (busiest thread {:.0}% busy), {} deliveries per CPU-second; \
             rss {} ({} per client); send lag p99 {} ms, max {} ms",
            w.threads,
            w.cpu_seconds,
            w.busiest_thread_utilization * 100.0,
            thousands(w.deliveries_per_cpu_second.round() as u64),
            bytes(w.rss_bytes as f64),
            bytes(w.bytes_per_client),
            ms(w.send_lag_ms.p99),
            ms(w.send_lag_ms.max)
        );
    }

    /// Warnings, then PASS or FAIL with the reasons.
    fn verdict(&self, o: &mut String) {
        for line in &self.warnings {
            let _ = writeln!(o, "warning     {line}");
        }
        if self.passed {
            let _ = writeln!(o, "result      PASS");
        } else {
            let _ = writeln!(o, "result      FAIL: {}", self.failures.join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn every_part_has_its_line() {
        let text = Report {
            passed: true,
            ..Report::default()
        }
        .human();
        for label in [
            "scenario",
            "connect",
            "sent",
            "delivered",
            "throughput",
            "latency",
            "closes",
            "swarm",
            "result      PASS",
        ] {
            assert!(text.contains(label), "{label}: {text}");
        }
    }
}
