//! The operating-system limits that stop a swarm before the server does, checked before the run
//! and explained after it.
//!
//! Every connection costs the swarm one file descriptor and one local port. Linux's default soft
//! limit of 1,024 open files is raised to the hard limit at start (an unprivileged process may);
//! the ephemeral port range (about 28,000 ports) is per source address, which `--source-addrs`
//! multiplies. A failed connect is tallied by kind (`connection::ConnectError`) and each kind that
//! means "a limit was hit" gets one sentence of advice in the report, instead of a wall of
//! identical errors.

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Descriptors the swarm needs beyond one per client (runtime, stdio, /proc reads, output).
const SPARE_FILES: u64 = 64;

/// Connections per source address the swarm aims at by default against a loopback server: a
/// quarter of the per-IP connection cap a server is expected to keep (wschat's
/// `--max-connections-per-ip`, about 1,000), so a run stays under it with room for a second
/// swarm, and a hundredth of an address's ~28,000 ephemeral ports. Fewer per address would only
/// spread the same connections thinner; more would meet the cap sooner.
pub const CONNECTIONS_PER_SOURCE: usize = 250;

/// The source addresses used when `--source-addrs` is not given. Against servers that are all
/// on IPv4 loopback: `127.0.0.1` and the next addresses of `127/8`, as many as `clients` need at
/// [`CONNECTIONS_PER_SOURCE`] each (Linux routes all of `127.0.0.0/8` to `lo`, so any of them
/// reaches the server). Empty, so the kernel chooses, when one address is enough, and for any
/// other server: only loopback is known to accept every local address (IPv6 has just `::1`).
pub fn default_source_addrs(clients: usize, servers: &[SocketAddr]) -> Vec<IpAddr> {
    let loopback_v4 = servers
        .iter()
        .all(|s| matches!(s.ip(), IpAddr::V4(ip) if ip.is_loopback()));
    let needed = clients.div_ceil(CONNECTIONS_PER_SOURCE);
    if servers.is_empty() || !loopback_v4 || needed <= 1 {
        return Vec::new();
    }
    // 127.0.0.1 onwards; at most the 2^24 - 2 addresses of 127/8 (never reached in practice).
    let first = u32::from(Ipv4Addr::new(127, 0, 0, 1));
    (0..needed.min((1 << 24) - 2) as u32)
        .map(|n| IpAddr::V4(Ipv4Addr::from(first + n)))
        .collect()
}

/// What was found and done about the limits before the run.
#[derive(Clone, Debug, Default)]
pub struct Preflight {
    /// Open-file soft limit after raising it.
    pub files_soft: u64,
    /// Open-file hard limit.
    pub files_hard: u64,
    /// Ephemeral ports per source address, from `ip_local_port_range`.
    pub ports_per_addr: u64,
    /// Warnings for the user, before anything is opened.
    pub warnings: Vec<String>,
}

/// Raises the open-file limit as far as allowed and warns where `clients` will not fit.
pub fn preflight(clients: usize, source_addrs: usize) -> Preflight {
    let clients = clients as u64;
    let mut p = Preflight::default();
    let wanted = clients + SPARE_FILES;
    // Ask for the most the hard limit allows: the server may share this process (tests).
    p.files_soft = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    p.files_hard = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(p.files_soft);
    if p.files_soft < wanted {
        p.warnings.push(format!(
            "{clients} clients need about {wanted} open files but this process may open {} (hard limit {}): \
             connections beyond that will fail with \"too many open files\"; raise the hard limit \
             (e.g. `ulimit -Hn`) or run fewer clients",
            p.files_soft, p.files_hard
        ));
    }
    p.ports_per_addr = ephemeral_ports().unwrap_or(28_232);
    let addrs = source_addrs.max(1) as u64;
    if clients > p.ports_per_addr * addrs {
        p.warnings.push(format!(
            "{clients} clients need more local ports than {addrs} source address(es) have ({} each): \
             add addresses with --source-addrs 127.0.0.1-127.0.0.{}",
            p.ports_per_addr,
            clients.div_ceil(p.ports_per_addr).clamp(2, 254)
        ));
    }
    p
}

/// Ports in Linux's ephemeral range.
fn ephemeral_ports() -> Option<u64> {
    let range = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = range.split_whitespace().map(|n| n.parse::<u64>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    Some(hi.checked_sub(lo)? + 1)
}

/// One sentence per kind of connect failure that a limit explains.
pub fn advice(errors: &BTreeMap<String, u64>, pre: &Preflight) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, n) in errors {
        let line = match kind.as_str() {
            "files" => format!(
                "stopped by the open-file limit: {n} connects failed with \"too many open files\" \
                 (this process may open {} files, hard limit {})",
                pre.files_soft, pre.files_hard
            ),
            "ports" => format!(
                "stopped by the local port range: {n} connects found no free port ({} per source \
                 address); spread the clients with --source-addrs 127.0.0.1-127.0.0.8",
                pre.ports_per_addr
            ),
            "memory" => format!(
                "stopped by memory: {n} connects failed for lack of kernel memory or socket buffers"
            ),
            "refused" => format!("{n} connects were refused: is the server running, with a large enough listen backlog?"),
            "timeout" => format!(
                "{n} connects timed out: the server accepted too slowly (listen backlog overflow or \
                 a saturated accept loop); try a lower --connect-rate"
            ),
            "http_503" => format!("{n} upgrades were answered 503: the server is at its connection limit"),
            _ => continue,
        };
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_raises_the_soft_limit() {
        let p = preflight(10, 1);
        assert!(p.files_soft >= 10 + SPARE_FILES, "{p:?}");
        assert!(p.warnings.is_empty(), "{p:?}");
        assert!(p.ports_per_addr > 1000);
        let big = preflight(10_000_000, 1);
        assert_eq!(big.warnings.len(), 2, "{big:?}");
    }

    #[test]
    fn loopback_servers_get_enough_source_addresses() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(default_source_addrs(250, &[local]).is_empty());
        let addrs = default_source_addrs(10_000, &[local]);
        assert_eq!(addrs.len(), 40);
        assert_eq!(addrs[0], IpAddr::from([127, 0, 0, 1]));
        assert_eq!(addrs[39], IpAddr::from([127, 0, 0, 40]));
        let many = default_source_addrs(100_000, &[local, "127.0.0.2:9".parse().unwrap()]);
        assert_eq!(many.len(), 400);
        assert_eq!(many[399], IpAddr::from([127, 0, 1, 144]));
        // Not every server on loopback, or IPv6: the kernel chooses.
        assert!(default_source_addrs(10_000, &[local, "10.0.0.1:80".parse().unwrap()]).is_empty());
        assert!(default_source_addrs(10_000, &["[::1]:80".parse().unwrap()]).is_empty());
    }

    #[test]
    fn advice_names_the_limit() {
        let mut errors = BTreeMap::new();
        errors.insert("files".to_string(), 3);
        errors.insert("ports".to_string(), 2);
        errors.insert("handshake".to_string(), 1);
        let lines = advice(&errors, &Preflight::default());
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("open-file limit"));
        assert!(lines[1].contains("--source-addrs"));
    }
}
