//! Where each client connects: the server's address, and the URL that names its room.
//!
//! URLs are resolved once, before any thread starts, so a name that does not resolve stops the
//! run with a message instead of failing every connect; each client then reads its address and
//! builds its URL from its index alone. The run id lives here too: it makes the default room
//! names fresh for every run, so a room's history or a concurrent run never mixes into the counts.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::SystemTime;

use crate::cli::Protocol;
use crate::token::Minter;

/// One server the swarm connects to.
#[derive(Clone, Debug)]
pub struct Server {
    /// The URL as the user gave it.
    pub url: String,
    /// Its host and port, resolved.
    pub addr: SocketAddr,
}

/// The servers of a run, and how a client's URL is made.
#[derive(Clone, Debug)]
pub struct Targets {
    /// In the order given; client `i` connects to server `i mod len`.
    pub servers: Vec<Server>,
    /// Wire protocol: decides how the room is put in the URL.
    pub protocol: Protocol,
    /// Room names' prefix (chat protocol).
    pub room_prefix: String,
    /// `--token-secret`: each chat client's URL carries a token minted for it.
    pub tokens: Option<Minter>,
}

impl Targets {
    /// Resolves every URL; an `Err` is a message for the user.
    pub fn resolve(
        urls: &[String],
        protocol: Protocol,
        room_prefix: String,
    ) -> Result<Self, String> {
        let servers = urls
            .iter()
            .map(|url| {
                Ok(Server {
                    url: url.clone(),
                    addr: resolve(url)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Targets {
            servers,
            protocol,
            room_prefix,
            tokens: None,
        })
    }

    /// Every server's address, in order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }

    /// The server client `i` connects to (round-robin).
    pub fn server_of(&self, i: usize) -> &Server {
        &self.servers[i % self.servers.len()]
    }

    /// The URL client `i` of room `room` connects to. With `--protocol chat` `room=` and `name=`
    /// are appended to the query (and `token=`, minted now, with `--token-secret`); with
    /// `--protocol raw` `{room}` is replaced by the room number.
    pub fn url_for(&self, i: usize, room: usize) -> String {
        let url = &self.server_of(i).url;
        match self.protocol {
            Protocol::Chat | Protocol::Socketio => {
                let sep = if url.contains('?') { '&' } else { '?' };
                let room = format!("{}-{room}", self.room_prefix);
                let name = format!("c{i}");
                match &self.tokens {
                    Some(minter) => {
                        let token = minter.mint(&name, &room);
                        format!("{url}{sep}room={room}&name={name}&token={token}")
                    }
                    None => format!("{url}{sep}room={room}&name={name}"),
                }
            }
            Protocol::Raw => url.replace("{room}", &room.to_string()),
        }
    }
}

/// The server's address from a `ws://host:port/...` URL.
pub fn resolve(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("--url must start with ws:// (got {url:?})"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    let with_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority:?} resolves to no address"))
}

/// A run id that differs between runs and processes: wall-clock nanoseconds mixed with the pid.
pub fn fresh_run_id() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn resolves_urls() {
        assert_eq!(
            resolve("ws://127.0.0.1:9/ws").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert_eq!(
            resolve("ws://127.0.0.1/x?y").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(resolve("ws://[::1]:7").unwrap(), "[::1]:7".parse().unwrap());
        assert!(resolve("http://x").is_err());
    }

    #[test]
    fn run_ids_differ() {
        let a = fresh_run_id();
        std::thread::sleep(Duration::from_millis(1));
        assert_ne!(a, fresh_run_id());
    }

    #[test]
    fn urls_carry_the_room() {
        let chat = Targets::resolve(
            &["ws://127.0.0.1:9/ws".into()],
            Protocol::Chat,
            "lt-1".into(),
        )
        .unwrap();
        assert_eq!(
            chat.url_for(7, 3),
            "ws://127.0.0.1:9/ws?room=lt-1-3&name=c7"
        );
        let raw = Targets::resolve(
            &["ws://127.0.0.1:9/r/{room}".into()],
            Protocol::Raw,
            "x".into(),
        )
        .unwrap();
        assert_eq!(raw.url_for(7, 3), "ws://127.0.0.1:9/r/3");
    }
}
