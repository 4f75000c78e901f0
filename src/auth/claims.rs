//! What a token says, and what the server makes of it: the claims a backend signs, and the
//! grammar of the `rooms` it grants. No signatures here (that is [`super::Verifier`]'s), so
//! these rules can be read, and tested, as plain data.
//!
//! The claims, as JSON:
//!
//! ```json
//! {"sub": "alice", "exp": 1767225600, "rooms": ["lobby", "dm-alice-*"],
//!  "info": {"display": "Alice A.", "color": "#c0392b"}}
//! ```
//!
//! - `sub` (required): the nickname. With auth on, the `name` query parameter is ignored: the
//!   token, not the client, decides who is speaking.
//! - `exp` (required), `nbf` and `iat` (optional): seconds since the Unix epoch, as RFC 7519
//!   defines them. See [`super::NBF_LEEWAY`] for how strict each is.
//! - `rooms`: what may be joined, each entry a [`RoomPattern`]. Absent or empty grants nothing:
//!   a token names what it allows, never what it forbids, so a forgotten claim fails closed.
//! - `info` (optional): a small JSON object passed through, as is, to the other members in the
//!   `join` event (a display name, a colour). The server never reads inside it.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The claims of a wschat token. `Serialize` too, for the `wschat token` tool and the tests.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Kept as the raw JSON text it was signed as: passed on, never interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Box<RawValue>>,
}

/// Largest `info`, in bytes of JSON. It is copied into every `join` event of the room, so a
/// token must not be able to make each of those events big; 256 bytes hold a display name and a
/// colour with room to spare.
pub const MAX_INFO_BYTES: usize = 256;

/// One entry of `rooms`:
///
/// - `name`: exactly the room `name` (room names are letters, digits, `-`, `_`, `.`);
/// - `prefix*`: every room whose name starts with `prefix`, so `dm-alice-*` grants `dm-alice-bob`
///   and `dm-alice-` itself; a lone `*` grants every room.
///
/// `*` anywhere but at the end matches nothing (room names cannot contain `*`, so such an entry
/// is a mistake, and a mistake must not widen a grant). Matching is case-sensitive, as room
/// names are. Rejected: full globs or regular expressions (a backend author must be able to read
/// a grant at a glance, and a prefix is what per-user rooms need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomPattern<'a>(pub &'a str);

impl RoomPattern<'_> {
    pub fn allows(self, room: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => !prefix.contains('*') && room.starts_with(prefix),
            None => !self.0.contains('*') && self.0 == room,
        }
    }
}

/// Whether any entry of `rooms` allows `room`.
pub fn rooms_allow(rooms: &[String], room: &str) -> bool {
    rooms
        .iter()
        .any(|pattern| RoomPattern(pattern).allows(room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_prefixes() {
        let allows = |pattern, room| RoomPattern(pattern).allows(room);
        assert!(allows("lobby", "lobby"));
        assert!(!allows("lobby", "lobby2"), "an exact name is not a prefix");
        assert!(!allows("lobby", "Lobby"), "case-sensitive");
        assert!(allows("dm-alice-*", "dm-alice-bob"));
        assert!(allows("dm-alice-*", "dm-alice-"));
        assert!(!allows("dm-alice-*", "dm-alic"));
        assert!(!allows("dm-alice-*", "dm-bob-alice"));
        assert!(allows("*", "anything"));
    }

    #[test]
    fn a_star_not_at_the_end_matches_nothing() {
        for pattern in ["dm-*-bob", "**", "*lobby", "a*b*"] {
            for room in ["dm-alice-bob", "lobby", "ab", "a*b", "dm-*-bob"] {
                assert!(!RoomPattern(pattern).allows(room), "{pattern} {room}");
            }
        }
    }

    #[test]
    fn no_rooms_grant_nothing() {
        assert!(!rooms_allow(&[], "lobby"));
        assert!(rooms_allow(&["a".into(), "lob*".into()], "lobby"));
    }
}
