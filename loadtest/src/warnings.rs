//! The swarm checking itself: a warning wherever the swarm or the machine, rather than the
//! server, may have shaped the figures.
//!
//! A load generator that cannot tell its own limits from the server's produces confident wrong
//! numbers; each threshold below is where experience on this project's machines showed the
//! figures start to be the swarm's or the machine's.

use crate::report::Report;

/// A worker thread busier than this share of a core during the measured phases may have been
/// the bottleneck: past it, a burst of deliveries queues in the swarm and shows up as latency.
pub const BUSY_THREAD: f64 = 0.9;
/// Threads that waited for a CPU longer than this share of the measured time were sharing their
/// cores with other work: a few percent is the scheduler's normal noise, more is another load.
pub const WAITED: f64 = 0.05;
/// Sends later than this at the 99th percentile, in ms, mean the swarm did not keep its
/// schedule: tokio's 1 ms timer grid alone explains about one millisecond.
pub const LATE_SEND_MS: f64 = 5.0;

/// Adds to `r.warnings` what makes its figures less trustworthy.
pub fn self_check(r: &mut Report, interrupted: bool) {
    let w = &r.swarm;
    if w.busiest_thread_utilization >= BUSY_THREAD {
        r.warnings.push(format!(
            "a swarm thread was {:.0}% busy during the measured phases: the swarm itself may have \
             limited throughput and added latency (give it its own core, or more --threads)",
            w.busiest_thread_utilization * 100.0
        ));
    }
    if w.cpu_wait_fraction > WAITED {
        r.warnings.push(format!(
            "the swarm's threads waited for a CPU {:.0}% of the measured time: other work shares its \
             cores (pin it with taskset to a free core)",
            w.cpu_wait_fraction * 100.0
        ));
    }
    if let Some(s) = &r.server {
        if s.cpu_wait_fraction > WAITED {
            r.warnings.push(format!(
                "the server waited for a CPU {:.0}% of the measured time: other work shares its \
                 cores, so its latency and throughput here are the machine's, not its own",
                s.cpu_wait_fraction * 100.0
            ));
        }
    }
    if w.send_lag_ms.p99 > LATE_SEND_MS {
        r.warnings.push(format!(
            "sends fell behind schedule (p99 {:.1} ms late, max {:.1} ms): a busy swarm, or a server \
             that stopped reading; latency is still measured from the schedule",
            w.send_lag_ms.p99, w.send_lag_ms.max
        ));
    }
    if r.sent < r.scheduled && !interrupted {
        r.warnings.push(format!(
            "{} scheduled messages were not sent (their sender's connection ended)",
            r.scheduled - r.sent
        ));
    }
    if r.duplicates + r.out_of_order + r.unexpected > 0 {
        r.warnings.push(format!(
            "the server delivered {} duplicates, {} out of order and {} unexpected messages",
            r.duplicates, r.out_of_order, r.unexpected
        ));
    }
    if r.foreign > 0 {
        r.warnings.push(format!(
            "{} messages of another swarm run arrived: another run shares these rooms",
            r.foreign
        ));
    }
    if let Some(slow) = &r.slow_readers {
        if slow.clients > 0
            && slow.lagged_notices == 0
            && slow.closed_by_server == 0
            && slow.delivered == slow.expected
        {
            r.warnings.push(
                "the slow readers lost nothing: the server buffered everything for them (the run may be too short to fill its buffers)"
                    .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_swarm_and_a_shared_core_are_named() {
        let mut r = Report::default();
        self_check(&mut r, false);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        r.swarm.busiest_thread_utilization = BUSY_THREAD;
        r.swarm.cpu_wait_fraction = WAITED * 2.0;
        self_check(&mut r, false);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("busy") && r.warnings[1].contains("waited"));
    }
}
