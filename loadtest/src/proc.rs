//! Memory and CPU time of a process (the server, or the swarm itself) from Linux's `/proc`.
//!
//! `/proc/PID/stat` gives both in one read: CPU time in clock ticks (fields 14 and 15, user and
//! system) and the resident set in pages (field 24). Sampling it a few times a second costs
//! nothing measurable, needs no privileges for a process of the same user, and works for any
//! server, not just wschat. The command name (field 2) may contain spaces and parentheses, so the
//! fields are counted from the last `)`.
//!
//! `/proc/PID/task/TID/schedstat` adds the time each thread spent runnable but waiting for a CPU.
//! It tells a busy machine from a busy server: a server pinned to a core that other work also
//! wants shows modest CPU use *and* long waits, and its latency is then the machine's, not its own.

use std::fs;
use std::time::Duration;

/// One reading of a process.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time since the process started.
    pub cpu: Duration,
    /// Time its threads were ready to run but waited for a CPU (summed over threads).
    pub waited: Duration,
}

/// Reads process `pid`.
pub fn sample(pid: u32) -> Option<Sample> {
    sample_process(&format!("/proc/{pid}"))
}

/// Reads the swarm's own process.
pub fn sample_self() -> Option<Sample> {
    sample_process("/proc/self")
}

/// Reads one thread of the swarm, by its kernel thread id.
pub fn sample_thread(tid: i64) -> Option<Sample> {
    let dir = format!("/proc/self/task/{tid}");
    let mut s = parse_stat(&fs::read_to_string(format!("{dir}/stat")).ok()?)?;
    s.waited = waited(&dir).unwrap_or_default();
    Some(s)
}

/// Reads a process directory: its `stat`, and every thread's `schedstat`.
fn sample_process(dir: &str) -> Option<Sample> {
    let mut s = parse_stat(&fs::read_to_string(format!("{dir}/stat")).ok()?)?;
    if let Ok(tasks) = fs::read_dir(format!("{dir}/task")) {
        s.waited = tasks
            .flatten()
            .filter_map(|t| waited(&t.path().to_string_lossy()))
            .sum();
    }
    Some(s)
}

/// The second field of a thread's `schedstat`: nanoseconds spent waiting on a run queue.
fn waited(task_dir: &str) -> Option<Duration> {
    let line = fs::read_to_string(format!("{task_dir}/schedstat")).ok()?;
    let ns: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Parses the content of a `stat` file.
pub fn parse_stat(stat: &str) -> Option<Sample> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields after the command name start with field 3 (state).
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let ticks = field(14)? + field(15)?;
    let pages = field(24)?;
    Some(Sample {
        rss_bytes: pages * page_size(),
        cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_sec()),
        waited: Duration::ZERO,
    })
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running system and has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: as above.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as f64
    } else {
        100.0
    }
}

/// The kernel id of the calling thread, to find its own `stat` file later.
pub fn thread_id() -> i64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() as i64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_tricky_name() {
        let line = "1234 (my (weird) srv) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 \
                    12345 123456789 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.rss_bytes, 300 * page_size());
        assert_eq!(
            s.cpu,
            Duration::from_secs_f64(300.0 / clock_ticks_per_sec())
        );
    }

    #[test]
    fn reads_itself() {
        let me = sample_self().unwrap();
        assert!(me.rss_bytes > 0);
        assert!(sample_thread(thread_id()).is_some());
        assert!(sample(std::process::id()).is_some());
        assert_eq!(parse_stat("garbage"), None);
    }
}
