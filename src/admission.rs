//! Who may open a connection at all: decided when it is accepted, before hyper reads a byte.
//!
//! Three budgets, each a flag (see [`crate::Config`]):
//! - the **file budget**: WebSocket and HTTP connections together stay under the process's
//!   open-file limit, so the accept loop never meets `EMFILE` and every refused client still
//!   gets an answer;
//! - **connections not yet upgraded** (`--max-http-connections`): a handshake costs a hyper
//!   connection and its buffers, and slow ones must not crowd out upgraded clients;
//! - **per address** (`--max-connections-per-ip`, `--max-handshakes-per-ip`): one client with
//!   many sockets gets its share, not the server.
//!
//! The counts live in one `std::sync::Mutex` (held for a hash-map update, never across an
//! await): an accept or a close touches it once, far from the per-message hot path. A refused
//! connection is answered with a plain `503` written straight to the socket and closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Why a connection was refused at accept. [`Refusal::reason`] is the one-line body and the
/// metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// WebSocket and HTTP connections together are at the file budget.
    FileBudget,
    /// `--max-http-connections` connections are already waiting to upgrade.
    TooManyHandshakes,
    /// `--max-connections-per-ip` connections from this address.
    TooManyFromAddress,
    /// `--max-handshakes-per-ip` connections from this address have not upgraded yet.
    TooManyHandshakesFromAddress,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::FileBudget => "server at its connection limit",
            Refusal::TooManyHandshakes => "too many connections waiting to upgrade",
            Refusal::TooManyFromAddress => "too many connections from your address",
            Refusal::TooManyHandshakesFromAddress => {
                "too many unfinished handshakes from your address"
            }
        }
    }
}

/// The caps, copied from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// WebSocket and HTTP connections together.
    pub file_budget: usize,
    /// Upgraded connections (`--max-connections`, or the file budget).
    pub max_websockets: usize,
    pub max_http: usize,
    /// 0 = no limit.
    pub per_ip: usize,
    /// 0 = no limit.
    pub handshakes_per_ip: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct PerAddress {
    /// Connections not yet upgraded.
    http: usize,
    /// Upgraded connections.
    websockets: usize,
}

#[derive(Debug, Default)]
struct Counts {
    http: usize,
    websockets: usize,
    /// Only addresses with a connection open: an entry goes with its last connection.
    by_address: HashMap<IpAddr, PerAddress>,
}

pub struct Admission {
    limits: AdmissionLimits,
    counts: Mutex<Counts>,
}

/// A connection admitted as HTTP; dropping it gives its place back.
pub struct HttpTicket {
    admission: Arc<Admission>,
    ip: IpAddr,
}

/// An upgraded connection's place in the per-address count; dropping it gives the place back.
#[derive(Debug)]
pub struct WebSocketTicket {
    ip: IpAddr,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Counts stay consistent under a panic elsewhere (each update is one statement).
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<HttpTicket, Refusal> {
        let limits = self.limits;
        let mut counts = self.lock();
        if counts.http + counts.websockets >= limits.file_budget {
            return Err(Refusal::FileBudget);
        }
        if counts.http >= limits.max_http {
            return Err(Refusal::TooManyHandshakes);
        }
        let here = counts.by_address.get(&ip).copied().unwrap_or_default();
        if limits.per_ip > 0 && here.http + here.websockets >= limits.per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        if limits.handshakes_per_ip > 0 && here.http >= limits.handshakes_per_ip {
            return Err(Refusal::TooManyHandshakesFromAddress);
        }
        counts.http += 1;
        counts.by_address.entry(ip).or_default().http += 1;
        Ok(HttpTicket {
            admission: Arc::clone(self),
            ip,
        })
    }

    /// Counts an upgraded connection from `ip`, or `None` at `max_websockets`. Its HTTP ticket
    /// is still held until hyper lets go of the connection, a moment later: for that moment it
    /// counts twice, never zero times.
    pub fn upgraded(&self, ip: IpAddr) -> Option<WebSocketTicket> {
        let mut counts = self.lock();
        if counts.websockets >= self.limits.max_websockets {
            return None;
        }
        counts.websockets += 1;
        counts.by_address.entry(ip).or_default().websockets += 1;
        Some(WebSocketTicket { ip })
    }

    /// Gives back an upgraded connection's place.
    pub fn release(&self, ticket: WebSocketTicket) {
        let mut counts = self.lock();
        counts.websockets -= 1;
        Self::forget(&mut counts, ticket.ip, |a| a.websockets -= 1);
    }

    /// Connections open now: (HTTP, WebSocket), and the number of distinct addresses.
    pub fn open(&self) -> (usize, usize, usize) {
        let counts = self.lock();
        (counts.http, counts.websockets, counts.by_address.len())
    }

    fn forget(counts: &mut Counts, ip: IpAddr, release: impl FnOnce(&mut PerAddress)) {
        if let Some(here) = counts.by_address.get_mut(&ip) {
            release(here);
            if here.http == 0 && here.websockets == 0 {
                counts.by_address.remove(&ip);
            }
        }
    }
}

impl Drop for HttpTicket {
    fn drop(&mut self) {
        let mut counts = self.admission.lock();
        counts.http -= 1;
        Admission::forget(&mut counts, self.ip, |a| a.http -= 1);
    }
}

/// How long a refused connection is kept to let the client read its `503`. Closing a socket
/// with unread input (the client's request) makes the kernel send a reset, which can destroy
/// the response before the client reads it; a short read-and-discard avoids that.
const REFUSAL_LINGER: Duration = Duration::from_millis(200);

/// Answers a refused connection with `503` and its reason, and closes it.
pub async fn refuse(stream: TcpStream, refusal: Refusal) {
    let reason = refusal.reason();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{reason}",
        reason.len()
    );
    // A fresh socket's send buffer is empty: this never blocks, and if it somehow would, the
    // client gets a bare close instead.
    let _ = stream.try_write(response.as_bytes());
    let (mut read, mut write) = stream.into_split();
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut write).await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        while matches!(read.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(per_ip: usize, handshakes_per_ip: usize) -> Arc<Admission> {
        Admission::new(AdmissionLimits {
            file_budget: 10,
            max_websockets: 5,
            max_http: 6,
            per_ip,
            handshakes_per_ip,
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn per_address_caps_leave_other_addresses_alone() {
        let admission = admission(3, 2);
        let a1 = admission.admit(A).unwrap();
        let a2 = admission.admit(A).unwrap();
        assert_eq!(
            admission.admit(A).err(),
            Some(Refusal::TooManyHandshakesFromAddress)
        );
        let ws = admission.upgraded(A).unwrap();
        drop(a1);
        let _a3 = admission.admit(A).unwrap();
        assert_eq!(admission.admit(A).err(), Some(Refusal::TooManyFromAddress));
        assert!(
            admission.admit(B).is_ok(),
            "another address is not affected"
        );
        admission.release(ws);
        drop(a2);
        assert!(
            admission.admit(A).is_ok(),
            "a freed place can be taken again"
        );
    }

    #[test]
    fn the_http_cap_and_the_file_budget() {
        let admission = admission(0, 0);
        let held: Vec<_> = (0..6).map(|_| admission.admit(A).unwrap()).collect();
        assert_eq!(admission.admit(B).err(), Some(Refusal::TooManyHandshakes));
        let websockets: Vec<_> = (0..4).map(|_| admission.upgraded(A).unwrap()).collect();
        drop(held);
        // 4 upgraded + 6 more HTTP would be 10: the budget.
        let more: Vec<_> = (0..6).map(|_| admission.admit(B).unwrap()).collect();
        assert_eq!(admission.admit(B).err(), Some(Refusal::FileBudget));
        drop(more);
        let _more: Vec<_> = (0..6).map(|_| admission.admit(B).unwrap()).collect();
        for ws in websockets {
            admission.release(ws);
        }
        assert_eq!(admission.open(), (6, 0, 1));
    }

    #[test]
    fn websockets_stop_at_their_cap() {
        let admission = admission(0, 0);
        let held: Vec<_> = (0..5).map(|_| admission.upgraded(A).unwrap()).collect();
        assert!(admission.upgraded(B).is_none(), "max_websockets is 5");
        admission.release(held.into_iter().next().unwrap());
        assert!(
            admission.upgraded(B).is_some(),
            "a freed place is taken again"
        );
    }

    #[test]
    fn addresses_are_forgotten_with_their_last_connection() {
        let admission = admission(0, 0);
        let t = admission.admit(A).unwrap();
        let ws = admission.upgraded(A).unwrap();
        drop(t);
        assert_eq!(admission.open(), (0, 1, 1));
        admission.release(ws);
        assert_eq!(admission.open(), (0, 0, 0));
    }
}
