//! Who is connecting where: `room`, `name` and `since` from the upgrade request's query string,
//! checked before the `101` so a bad value is a `400` with a reason, not a broken chat.

use super::epoch::Epoch;
use super::text::{is_blank, is_invisible};
use crate::Config;

/// A connection's room, nickname and resume cursor, validated.
#[derive(Debug, Clone)]
pub struct Params {
    pub room: String,
    pub nick: String,
    /// The last message id the client has; it wants everything after it.
    pub since: Option<u64>,
    /// The room's epoch that `since` counts in (`epoch=`, from an earlier welcome). Optional:
    /// without it `since` is taken as the room's current epoch.
    pub epoch: Option<Epoch>,
}

/// The room a connection without `room=` joins.
pub const DEFAULT_ROOM: &str = "lobby";

/// Why a query string was refused: the `400`'s one-line body.
pub type Refusal = &'static str;

impl Params {
    /// Reads the query string. Room names are what fits in a URL fragment unescaped (letters,
    /// digits, `-`, `_`, `.`, and not only dots, which read as paths); nicknames may be any
    /// printable text that shows something and hides nothing. `guest_name` names a connection
    /// that gave no name.
    pub fn from_query(
        query: &str,
        config: &Config,
        guest_name: impl FnOnce() -> String,
    ) -> Result<Params, Refusal> {
        Self::parse(query, config, None, guest_name)
    }

    /// Reads the query string of a connection whose token names it `nick` (its `sub`): `name=`
    /// is ignored, so a client can never speak as anyone but its token's user. Ignored rather
    /// than required to match: the page and other clients need not know the name to connect,
    /// and there is nothing a mismatch could usefully tell them.
    pub fn from_query_as(query: &str, config: &Config, nick: &str) -> Result<Params, Refusal> {
        Self::parse(query, config, Some(nick), String::new)
    }

    fn parse(
        query: &str,
        config: &Config,
        token_nick: Option<&str>,
        guest_name: impl FnOnce() -> String,
    ) -> Result<Params, Refusal> {
        let (mut room, mut nick, mut since, mut epoch) = (None, None, None, None);
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "room" => room = Some(value.into_owned()),
                "name" => nick = Some(value.trim().to_owned()),
                "since" => {
                    // Digits only: `u64::from_str` would also take a leading `+`.
                    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return Err("since must be a message id");
                    }
                    since = Some(value.parse().map_err(|_| "since must be a message id")?);
                }
                "epoch" => {
                    epoch = Some(
                        Epoch::parse(&value).ok_or("epoch must be 1 to 16 hexadecimal digits")?,
                    );
                }
                _ => {}
            }
        }
        let room = room.unwrap_or_else(|| DEFAULT_ROOM.to_owned());
        let room_ok = (1..=config.max_room_len).contains(&room.chars().count())
            && room
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !room.chars().all(|c| c == '.');
        if !room_ok {
            return Err(
                "room must be letters, digits, '-', '_' or '.' (not only dots), at most --max-room-len characters",
            );
        }
        let nick = match (token_nick, nick) {
            (Some(sub), _) => sub.trim().to_owned(),
            (None, Some(nick)) if !nick.is_empty() => nick,
            _ => guest_name(),
        };
        let nick_ok = nick.chars().count() <= config.max_name_len
            && !nick
                .chars()
                .any(|c| c.is_control() || is_invisible_in_name(c))
            && !is_blank(&nick);
        if !nick_ok {
            return Err(match token_nick {
                Some(_) => "the token's sub must be a printable, visible name of at most --max-name-len characters",
                None => "name must be printable and visible, at most --max-name-len characters",
            });
        }
        Ok(Params {
            room,
            nick,
            since,
            epoch,
        })
    }
}

/// `GET /limits`: what the page must know to check input as the server will, as JSON. Served
/// from the flags in force, so a server started with other limits never has the page refuse
/// valid input or send what it refuses.
pub fn page_limits(config: &Config) -> String {
    let mut limits = serde_json::json!({
        "max_room_len": config.max_room_len,
        "max_name_len": config.max_name_len,
        "max_text_len": config.max_text_len,
    });
    // With authentication on, `"auth": true`: the page asks for a token and leaves the name to
    // it. Absent when off, so the answer is what it always was.
    if config.auth_enabled() {
        limits["auth"] = true.into();
    }
    limits.to_string()
}

/// Inside a name, any invisible character but the plain space lets one name pass for another.
fn is_invisible_in_name(c: char) -> bool {
    c != ' ' && is_invisible(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Params, Refusal> {
        Params::from_query(query, &Config::for_tests(), || "guest-1".into())
    }

    #[test]
    fn defaults() {
        let params = parse("").unwrap();
        assert_eq!(
            (params.room.as_str(), params.nick.as_str(), params.since),
            ("lobby", "guest-1", None)
        );
    }

    #[test]
    fn since_is_digits_only() {
        assert_eq!(parse("since=5").unwrap().since, Some(5));
        for bad in ["since=%2B5", "since=+5", "since=-1", "since=", "since=5x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rooms_of_only_dots_are_refused() {
        for bad in ["room=.", "room=..", "room=..."] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("room=a.b").is_ok());
        assert!(parse("room=.hidden").is_ok());
    }

    #[test]
    fn a_token_names_the_connection_whatever_name_says() {
        let config = Config::for_tests();
        let params = Params::from_query_as("room=a&name=mallory", &config, "alice").unwrap();
        assert_eq!((params.room.as_str(), params.nick.as_str()), ("a", "alice"));
        assert!(Params::from_query_as("name=bob", &config, "").is_err());
    }

    #[test]
    fn invisible_names_are_refused() {
        for bad in [
            "name=%E3%85%A4",    // U+3164 Hangul filler
            "name=%C2%AD",       // U+00AD soft hyphen
            "name=%CD%8F",       // U+034F combining grapheme joiner
            "name=%D8%9C",       // U+061C Arabic letter mark
            "name=%E1%A0%8E",    // U+180E Mongolian vowel separator
            "name=%E2%A0%80",    // U+2800 Braille blank
            "name=%F3%A0%81%81", // U+E0041 tag latin capital A
            "name=ann%E2%80%8B", // a zero-width space inside
            "name=a%C2%A0b",     // a no-break space inside
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("name=Zo%C3%AB%20K").unwrap().nick, "Zoë K");
    }
}
