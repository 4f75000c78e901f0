//! What the run cost the machine: the server's memory and CPU (with `--server-pid`) and the
//! swarm's own, computed from the /proc samples the coordinator took at its marks.
//!
//! CPU is counted from the steady start to the end of the drain, the phases that carry the
//! messages; memory "per connection" is the growth from before the ramp to after the settle, so
//! the server's own start-up and the swarm's histograms are not charged to connections.

use crate::coordinator::Times;
use crate::proc::Sample;
use crate::report::{Percentiles, Report, ServerResources, SwarmResources};
use crate::stats::{per_sec, ThreadStats};

/// The server's figures from its samples: `idle` before the ramp, the rest at the marks.
pub fn server_resources(
    pid: u32,
    idle: Sample,
    times: &Times,
    peak: u64,
    report: &Report,
) -> ServerResources {
    let connected = times.server_connected.unwrap_or(idle);
    let steady = times.server_steady.unwrap_or(connected);
    let stop = times.server_stop.unwrap_or(steady);
    let cpu = stop.cpu.saturating_sub(steady.cpu).as_secs_f64();
    let wall = times.measured_secs();
    ServerResources {
        pid,
        rss_idle_bytes: idle.rss_bytes,
        rss_connected_bytes: connected.rss_bytes,
        rss_peak_bytes: peak.max(connected.rss_bytes).max(stop.rss_bytes),
        bytes_per_connection: (connected.rss_bytes as f64 - idle.rss_bytes as f64)
            / report.clients_connected.max(1) as f64,
        cpu_seconds: cpu,
        cpu_seconds_connect: connected.cpu.saturating_sub(idle.cpu).as_secs_f64(),
        cpu_utilization: per_sec(cpu, wall),
        cpu_wait_fraction: per_sec(
            stop.waited.saturating_sub(steady.waited).as_secs_f64(),
            wall,
        ),
        deliveries_per_cpu_second: if cpu > 0.0 {
            report.delivered as f64 / cpu
        } else {
            0.0
        },
    }
}

/// The swarm's figures: `idle` is its own sample before the ramp.
pub fn swarm_resources(
    threads: usize,
    idle: Option<Sample>,
    times: &Times,
    report: &Report,
    merged: &ThreadStats,
) -> SwarmResources {
    let cpu = match (times.self_steady, times.self_stop) {
        (Some(a), Some(b)) => b.cpu.saturating_sub(a.cpu).as_secs_f64(),
        _ => 0.0,
    };
    let rss = times.self_connected.map_or(0, |s| s.rss_bytes);
    let waited = match (times.self_steady, times.self_stop) {
        (Some(a), Some(b)) => b.waited.saturating_sub(a.waited).as_secs_f64(),
        _ => 0.0,
    };
    SwarmResources {
        threads,
        cpu_seconds: cpu,
        busiest_thread_utilization: times.busiest_thread,
        deliveries_per_cpu_second: if cpu > 0.0 {
            report.delivered as f64 / cpu
        } else {
            0.0
        },
        cpu_wait_fraction: per_sec(waited, times.measured_secs()),
        rss_bytes: rss,
        bytes_per_client: (rss as f64 - idle.map_or(0, |s| s.rss_bytes) as f64)
            / report.clients_connected.max(1) as f64,
        send_lag_ms: Percentiles::from_micros(&merged.send_lag),
    }
}
