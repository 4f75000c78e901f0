//! `--token-secret`: each client presents a token of its own, as every client of a server with
//! authentication on must. Minted by the client just before it connects (`sub` its name `c<i>`,
//! `rooms` its one room), so the swarm pays, on its own core, what an application backend would
//! pay per user, and the server verifies one distinct token per connection, as it would in use.
//!
//! The swarm shares nothing with the server but the wire format: a token is plain HS256 JWT from
//! the `jsonwebtoken` crate, the claims written out here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// How long each minted token is valid: longer than any run, so no client is closed with 4001
/// mid-measurement.
pub const TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Signs tokens with the server's HMAC secret.
#[derive(Clone)]
pub struct Minter {
    key: EncodingKey,
}

impl std::fmt::Debug for Minter {
    /// Never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Minter(HS256)")
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
    iat: u64,
    rooms: [&'a str; 1],
}

impl Minter {
    pub fn new(secret: &str) -> Minter {
        Minter {
            key: EncodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// A token naming `name` and granting `room`, valid for [`TOKEN_TTL`].
    pub fn mint(&self, name: &str, room: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            sub: name,
            exp: now + TOKEN_TTL.as_secs(),
            iat: now,
            rooms: [room],
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .expect("HMAC signing cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_three_base64url_parts_naming_the_client() {
        let token = Minter::new("a swarm secret of thirty-two bytes!").mint("c7", "lt-1-3");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
    }
}
