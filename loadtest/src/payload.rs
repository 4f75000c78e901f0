//! What the swarm puts in a message, and how a receiver reads it back cheaply.
//!
//! Every message text starts with a stamp, `lt:<run>:<sender>:<seq>:<due>:`, then padding up to
//! `--payload` bytes:
//! - `run`: 8 hex digits, fresh per run, so frames of another run or another tool are told apart;
//! - `sender`: the sender's client index; `seq`: its message number from 0;
//! - `due`: the scheduled send time in microseconds since the run's epoch (one `Instant` shared by
//!   every thread of the process), which latency is measured from.
//!
//! Receivers see up to a million frames a second, so the common case never builds a JSON tree:
//! a chat `message` event that starts with `{"type":"message"` is read by finding `"text":"lt:`
//! with a byte search (inside a JSON string every `"` is escaped, so that needle can only be the
//! real field). Anything else (welcome, lagged, error, presence, or a server that orders its keys
//! differently) goes through a borrowed serde struct, which skips unknown fields without
//! allocating. [`parse_chat`] is the fast path, [`parse_chat_slow`] the simple one; a test checks
//! they agree.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::LazyLock;

use memchr::memmem;
use serde::Deserialize;

/// The fields every swarm message carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The run it belongs to.
    pub run: u32,
    /// Client index of its sender.
    pub sender: u32,
    /// The sender's message number, from 0.
    pub seq: u64,
    /// Scheduled send time, microseconds since the run's epoch.
    pub due_us: u64,
}

/// What a receiver needs to know about one incoming text frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A message stamped by a swarm (maybe another run's).
    Stamp(Stamp),
    /// The server skipped `n` events for this client (`{"type":"lagged","missed":n}`).
    Lagged(u64),
    /// The server refused a request of this client (`{"type":"error","code":...}`).
    Error(Cow<'a, str>),
    /// Engine.IO's ping (`2`, `--protocol socketio`): the client owes a pong (`3`).
    Ping,
    /// Anything else: welcome, join, leave, typing, presence, foreign messages.
    Other,
}

/// Writes the text of sender `sender`'s message `seq` into `out`, padded with `x` to `payload`
/// bytes (never truncated below the stamp).
pub fn write_text(out: &mut String, stamp: Stamp, payload: usize) {
    out.clear();
    let _ = write!(
        out,
        "lt:{:08x}:{}:{}:{}:",
        stamp.run, stamp.sender, stamp.seq, stamp.due_us
    );
    while out.len() < payload {
        out.push('x');
    }
}

/// Wraps a message text in the chat protocol's request. The text is the swarm's own ASCII, so it
/// needs no JSON escaping.
pub fn chat_request(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 30);
    s.push_str(r#"{"type":"message","text":""#);
    s.push_str(text);
    s.push_str(r#""}"#);
    s
}

/// Reads a stamp at the start of `b` (the text of a message).
pub fn parse_stamp(b: &[u8]) -> Option<Stamp> {
    let rest = b.strip_prefix(b"lt:")?;
    let (run, rest) = field(rest, 16)?;
    let (sender, rest) = field(rest, 10)?;
    let (seq, rest) = field(rest, 10)?;
    let (due_us, _) = field(rest, 10)?;
    Some(Stamp {
        run: u32::try_from(run).ok()?,
        sender: u32::try_from(sender).ok()?,
        seq,
        due_us,
    })
}

/// One number in `radix` terminated by `:`; returns it and what follows the colon.
fn field(b: &[u8], radix: u64) -> Option<(u64, &[u8])> {
    let mut value: u64 = 0;
    for (i, &c) in b.iter().enumerate().take(21) {
        if c == b':' {
            return (i > 0).then(|| (value, &b[i + 1..]));
        }
        let digit = (c as char).to_digit(radix as u32)? as u64;
        value = value.checked_mul(radix)?.checked_add(digit)?;
    }
    None
}

/// Parses a frame of `--protocol raw`: the frame is the text.
pub fn parse_raw(frame: &[u8]) -> Incoming<'_> {
    match parse_stamp(frame) {
        Some(stamp) => Incoming::Stamp(stamp),
        None => Incoming::Other,
    }
}

static TEXT_NEEDLE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(br#""text":"lt:"#));

/// Parses a frame of wschat's chat protocol: byte search for the common case, serde otherwise.
pub fn parse_chat(frame: &str) -> Incoming<'_> {
    let b = frame.as_bytes();
    if b.starts_with(br#"{"type":"message""#) {
        if let Some(at) = TEXT_NEEDLE.find(b) {
            // Skip `"text":"`, keep `lt:`.
            if let Some(stamp) = parse_stamp(&b[at + 8..]) {
                return Incoming::Stamp(stamp);
            }
        }
    }
    parse_chat_slow(frame)
}

/// The fields of any server event that the swarm counts; serde skips the rest (including a
/// welcome's history) without building values for them.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    missed: Option<u64>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
}

/// Wraps a message text as a Socket.IO `message` event, the way the ported Flask-SocketIO chat's
/// page sends it (`socket.emit('message', text)`): `42["message","..."]`. wschat takes it as it
/// takes the chat's request object, and so does any Socket.IO relay that expects a string (the
/// socketioxide, Node and Flask peers), so one mode measures them all. The text is the swarm's own
/// ASCII, so it needs no JSON escaping.
pub fn socketio_request(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 16);
    s.push_str(r#"42["message",""#);
    s.push_str(text);
    s.push_str(r#""]"#);
    s
}

/// Parses a frame of `--protocol socketio`: Engine.IO's ping, or a Socket.IO event whose
/// argument is either wschat's chat event object (`42["<type>",{...}]`, parsed as [`parse_chat`]
/// parses it) or a plain string, as a relay peer sends a message back (`42["message","lt:..."]`).
pub fn parse_socketio(frame: &str) -> Incoming<'_> {
    if frame == "2" {
        return Incoming::Ping;
    }
    let Some(array) = frame.strip_prefix("42[\"") else {
        return Incoming::Other;
    };
    // The event name is a plain word; its argument follows its closing quote and comma.
    match (array.find("\","), array.strip_suffix(']')) {
        (Some(end), Some(inner)) if end + 2 <= inner.len() => {
            let argument = &inner[end + 2..];
            match argument.strip_prefix('"') {
                Some(text) => parse_stamp(text.as_bytes()).map_or(Incoming::Other, Incoming::Stamp),
                None => parse_chat(argument),
            }
        }
        _ => Incoming::Other,
    }
}

/// The simple, complete parser the fast path must agree with.
pub fn parse_chat_slow(frame: &str) -> Incoming<'_> {
    let Ok(event) = serde_json::from_str::<Event>(frame) else {
        return Incoming::Other;
    };
    match &*event.kind {
        "message" => event
            .text
            .and_then(|t| parse_stamp(t.as_bytes()))
            .map_or(Incoming::Other, Incoming::Stamp),
        "lagged" => Incoming::Lagged(event.missed.unwrap_or(0)),
        "error" => Incoming::Error(event.code.unwrap_or(Cow::Borrowed("unknown"))),
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            run: 0xdead_beef,
            sender: 7,
            seq: 123_456,
            due_us: 9_876_543_210,
        }
    }

    #[test]
    fn text_round_trips_and_pads() {
        let mut t = String::new();
        write_text(&mut t, stamp(), 100);
        assert_eq!(t.len(), 100);
        assert!(t.starts_with("lt:deadbeef:7:123456:9876543210:xx"));
        assert_eq!(parse_stamp(t.as_bytes()), Some(stamp()));
        write_text(&mut t, stamp(), 1);
        assert_eq!(t, "lt:deadbeef:7:123456:9876543210:");
        assert_eq!(parse_raw(t.as_bytes()), Incoming::Stamp(stamp()));
    }

    #[test]
    fn malformed_stamps_are_not_stamps() {
        for bad in [
            "",
            "lt:",
            "lt:zz:1:2:3:",
            "lt:1:2:3:",
            "lt:1::2:3:",
            "xx:1:2:3:4:",
            "lt:1:2:3:99999999999999999999999:",
            "lt:1ffffffff:2:3:4:",
        ] {
            assert_eq!(parse_stamp(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn fast_and_slow_chat_parsers_agree() {
        let mut text = String::new();
        write_text(&mut text, stamp(), 64);
        let frames = [
            format!(r#"{{"type":"message","id":5,"room":"r","from":"c1","text":"{text}","ts":1}}"#),
            format!(r#"{{"id":5,"type":"message","text":"{text}"}}"#),
            format!(r#"{{"type":"message", "text": "{text}"}}"#),
            r#"{"type":"message","id":1,"room":"r","from":"a\"text\":\"lt:1:2:3:4:","text":"hello"}"#.into(),
            format!(r#"{{"type":"welcome","you":"c1","history":[{{"type":"message","text":"{text}"}}],"last_id":4}}"#),
            r#"{"type":"lagged","missed":42}"#.into(),
            r#"{"type":"error","code":"rate_limited","message":"slow down"}"#.into(),
            r#"{"type":"presence","joined":["a"],"left":[],"count":3}"#.into(),
            r#"{"type":"join","name":"lt:1:2:3:4:"}"#.into(),
            "not json".into(),
            "".into(),
        ];
        for f in &frames {
            assert_eq!(parse_chat(f), parse_chat_slow(f), "{f}");
        }
        assert_eq!(parse_chat(&frames[0]), Incoming::Stamp(stamp()));
        assert_eq!(parse_chat(&frames[1]), Incoming::Stamp(stamp()));
        assert_eq!(parse_chat(&frames[3]), Incoming::Other);
        assert_eq!(parse_chat(&frames[4]), Incoming::Other);
        assert_eq!(parse_chat(&frames[5]), Incoming::Lagged(42));
        assert_eq!(
            parse_chat(&frames[6]),
            Incoming::Error("rate_limited".into())
        );
    }

    #[test]
    fn chat_request_is_valid_json() {
        let mut t = String::new();
        write_text(&mut t, stamp(), 40);
        let v: serde_json::Value = serde_json::from_str(&chat_request(&t)).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["text"], t.as_str());
    }

    #[test]
    fn socketio_frames_are_the_chat_events_inside_an_event_array() {
        let mut t = String::new();
        write_text(&mut t, stamp(), 40);
        // What the swarm sends is what the ported chat's page sends: `[name, text]`.
        let request = socketio_request(&t);
        let v: serde_json::Value = serde_json::from_str(&request[2..]).unwrap();
        assert_eq!(
            (v[0].as_str(), v[1].as_str()),
            (Some("message"), Some(t.as_str()))
        );
        // A relay peer sends the text back as it came.
        assert_eq!(parse_socketio(&request), Incoming::Stamp(stamp()));
        let message = format!(
            r#"42["message",{{"type":"message","id":1,"room":"r","from":"c1","text":"{t}","ts":1}}]"#
        );
        assert_eq!(parse_socketio(&message), Incoming::Stamp(stamp()));
        assert_eq!(
            parse_socketio(r#"42["lagged",{"type":"lagged","missed":4}]"#),
            Incoming::Lagged(4)
        );
        assert_eq!(
            parse_socketio(r#"42["error",{"type":"error","code":"rate_limited","message":"m"}]"#),
            Incoming::Error("rate_limited".into())
        );
        assert_eq!(parse_socketio("2"), Incoming::Ping);
        for other in [
            "3",
            "40{\"sid\":\"x\"}",
            r#"42["join",{"type":"join","name":"a"}]"#,
            "42[",
            "42[\"x\"]",
            r#"42["message","not a stamp"]"#,
        ] {
            assert_eq!(parse_socketio(other), Incoming::Other, "{other}");
        }
    }
}
