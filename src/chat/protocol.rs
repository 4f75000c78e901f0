//! The chat protocol: JSON objects in text frames. What clients may ask, what the server says.
//!
//! Client to server:
//! - `{"type":"message","text":"hi"}` posts to the room;
//! - `{"type":"typing"}` tells the others you are typing;
//! - any text frame that is not a JSON object is taken as a message whose text is the frame, so
//!   `websocat ws://127.0.0.1:8080/ws` is a usable client.
//!
//! Server to client: see [`ServerEvent`]. Each event is serialized to JSON once and wrapped in one
//! frame once ([`ServerEvent::to_frame`]); the room shares that frame with every subscriber.
//!
//! One file for the whole JSON protocol, both directions and their limits, with its tests: it is
//! what a client author reads, and the README's protocol table follows it.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::metrics::Metrics;
use crate::ws::{deflate, encode_frame, OpCode};

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequest<'a> {
    Message(Cow<'a, str>),
    Typing,
}

/// A request the server cannot serve; answered with an `error` event, the connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    EmptyText,
    TextTooLong,
    UnknownType,
    BadRequest,
    RateLimited,
    /// The post could not be delivered: the rooms' engine (Redis) refused it or cannot be
    /// reached. Nobody received it; the client may send it again.
    Unavailable,
}

impl RequestError {
    /// The stable `code` field of the `error` event.
    pub fn code(self) -> &'static str {
        match self {
            RequestError::EmptyText => "empty",
            RequestError::TextTooLong => "too_long",
            RequestError::UnknownType => "unknown_type",
            RequestError::BadRequest => "bad_request",
            RequestError::RateLimited => "rate_limited",
            RequestError::Unavailable => "unavailable",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            RequestError::EmptyText => "message text is empty",
            RequestError::TextTooLong => "message text is too long",
            RequestError::UnknownType => "unknown request type",
            RequestError::BadRequest => "request must be {\"type\":\"message\",\"text\":...}",
            RequestError::RateLimited => "slow down: too many messages",
            RequestError::Unavailable => {
                "not delivered: the server cannot reach redis; send it again"
            }
        }
    }
}

/// The wire shape of a request. Borrowing (`Cow`) means a text without escapes is never copied.
#[derive(Deserialize)]
struct WireRequest<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

/// Parses one text frame from a client. `max_text_len` is in bytes.
pub fn parse_request(frame: &str, max_text_len: usize) -> Result<ClientRequest<'_>, RequestError> {
    let request = if frame.trim_start().starts_with('{') {
        match serde_json::from_str::<WireRequest>(frame) {
            Ok(WireRequest { kind, text }) => match (&*kind, text) {
                ("message", Some(text)) => ClientRequest::Message(text),
                ("message", None) => return Err(RequestError::BadRequest),
                ("typing", _) => ClientRequest::Typing,
                _ => return Err(RequestError::UnknownType),
            },
            // An object without a usable "type" is a malformed request; anything that merely
            // starts with '{' but is not JSON is somebody's message.
            Err(_) if serde_json::from_str::<serde::de::IgnoredAny>(frame).is_ok() => {
                return Err(RequestError::BadRequest)
            }
            Err(_) => ClientRequest::Message(Cow::Borrowed(frame)),
        }
    } else {
        ClientRequest::Message(Cow::Borrowed(frame))
    };
    if let ClientRequest::Message(text) = &request {
        check_text(text, max_text_len)?;
    }
    Ok(request)
}

/// The checks every message's text passes, whatever protocol brought it: not blank, at most
/// `max_text_len` bytes.
pub fn check_text(text: &str, max_text_len: usize) -> Result<(), RequestError> {
    if super::text::is_blank(text) {
        return Err(RequestError::EmptyText);
    }
    if text.len() > max_text_len {
        return Err(RequestError::TextTooLong);
    }
    Ok(())
}

/// One chat message as broadcast and kept in history.
#[derive(Debug, Clone, Serialize)]
pub struct ChatMessage<'a> {
    /// Increases by one per message in the room, starting at 1: a client's resume cursor.
    pub id: u64,
    pub room: &'a str,
    pub from: &'a str,
    pub text: &'a str,
    /// Server time, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// Everything the server sends but the welcome (see [`Welcome`]). `#[serde(tag = "type")]` gives
/// each its `"type"` field.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerEvent<'a> {
    Message(ChatMessage<'a>),
    Join {
        name: &'a str,
        /// The `info` claim of the joiner's token (authentication on), as it was signed: a small
        /// JSON object such as `{"display":"Alice A.","color":"#c0392b"}`. Absent otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        info: Option<&'a RawValue>,
    },
    Leave {
        name: &'a str,
    },
    Typing {
        name: &'a str,
    },
    /// Joins and leaves of a large room, coalesced over an interval. Each list holds at most
    /// `--welcome-users` names (like the welcome), so one event stays small however many people
    /// came and went; `joined_count` and `left_count` say how many did.
    Presence {
        joined: &'a [&'a str],
        left: &'a [&'a str],
        joined_count: usize,
        left_count: usize,
        /// Users online after these changes.
        count: usize,
    },
    /// This client fell behind the room and `missed` events were skipped (or, with `--redis`,
    /// `missed` messages were posted while this process was cut off from Redis, and the room's
    /// stream no longer holds them).
    Lagged {
        missed: u64,
    },
    /// The room started a new life (with `--redis`: Redis lost its data while this process was
    /// cut off from it). Ids start again from 1 in `epoch`: a client resets its cursor to 0 and
    /// resumes with this epoch; the new life's messages follow.
    Truncated {
        epoch: super::epoch::Epoch,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

impl ServerEvent<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server events always serialize")
    }

    /// The event as one complete text frame, ready to share between recipients.
    pub fn to_frame(&self) -> Bytes {
        encode_frame(OpCode::Text, self.to_json().as_bytes())
    }

    pub fn error(error: RequestError) -> ServerEvent<'static> {
        ServerEvent::Error {
            code: error.code(),
            message: error.message(),
        }
    }
}

/// The first frame on every chat connection: who is here, and what was said.
///
/// Sent as one text frame in two pieces ([`Welcome::to_frame`]): this per-joiner head, and the
/// history ([`HistoryTail`]), which a room builds once per message and shares between every
/// joiner without `since`. So 1,000 joiners of a room with a full history cost one copy of it, not
/// 1,000, and no joiner pays to serialize it. The wire sees one ordinary frame: the split is only
/// in the writer's queue. Rejected: a separate `history` event (every client would change), and
/// caching the whole welcome (`users` and `count` change with every join, so it would be rebuilt
/// for every joiner anyway).
///
/// Size: at most `--history-bytes` + 2 for the history, plus the head: `you` and each of at most
/// `--welcome-users` names at most 4 bytes per character (`--max-name-len`) and 3 of quotes and
/// comma, the room name (ASCII, `--max-room-len`), and [`WELCOME_FIXED_BYTES`] for the rest.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "welcome")]
pub struct Welcome<'a> {
    pub you: &'a str,
    pub room: &'a str,
    /// Users online, sorted; at most `--welcome-users` of them (see `count`).
    pub users: Vec<&'a str>,
    /// How many users are online in all.
    pub count: usize,
    /// The id of the room's latest message (0 when there has been none): a resume cursor.
    pub last_id: u64,
    /// Which life of the room `last_id` counts in (see [`super::epoch::Epoch`]): a client
    /// resuming sends it back as `epoch=` beside `since=`.
    pub epoch: super::epoch::Epoch,
    /// Some messages the client asked for (`since`) are no longer held, or its `epoch` is not
    /// the room's.
    pub truncated: bool,
    // `history` (messages after the client's `since`, or the most recent ones, oldest first)
    // comes last, from the shared tail.
}

/// Bytes of a welcome that are neither names nor history: field names, punctuation, two
/// 20-digit numbers and the 16-digit epoch, with room to spare.
pub const WELCOME_FIXED_BYTES: usize = 192;

/// The most bytes a welcome's payload can take with these settings (see [`Welcome`]).
pub fn welcome_size_limit(
    history_bytes: usize,
    welcome_users: usize,
    max_name_len: usize,
    max_room_len: usize,
) -> usize {
    let name = 4 * max_name_len + 3;
    history_bytes + 2 + (welcome_users + 1) * name + max_room_len + WELCOME_FIXED_BYTES
}

/// The end of a welcome: `[message,...]}`, the value of its last field, `history`. Cheap to
/// clone (two reference counts). Its compressed form (permessage-deflate) is made once, by the
/// first joiner that negotiated compression, and shared by every clone, exactly like the JSON.
#[derive(Debug, Clone)]
pub struct HistoryTail {
    json: Bytes,
    deflated: Arc<OnceLock<Bytes>>,
}

impl HistoryTail {
    pub fn new<'a>(messages: impl Iterator<Item = &'a RawValue>) -> HistoryTail {
        let mut messages = messages.peekable();
        if messages.peek().is_none() {
            // Most rooms of one or two have said nothing yet: no allocation for them.
            return HistoryTail::from(Bytes::from_static(b"[]}"));
        }
        let mut out = Vec::new();
        out.push(b'[');
        for (i, message) in messages.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(message.get().as_bytes());
        }
        out.extend_from_slice(b"]}");
        HistoryTail::from(Bytes::from(out))
    }

    fn from(json: Bytes) -> HistoryTail {
        HistoryTail {
            json,
            deflated: Arc::default(),
        }
    }
}

/// A welcome ready to queue: this joiner's part and the room's shared history, as a plain frame
/// or (for a joiner that negotiated permessage-deflate) a compressed one. Either way one frame in
/// two pieces, the second shared.
pub struct WelcomeFrame {
    /// The welcome's JSON up to `"history":` (this joiner's fields).
    head: String,
    tail: HistoryTail,
}

impl WelcomeFrame {
    /// The plain frame: the header and this joiner's fields, then the shared history.
    pub fn plain(&self) -> [Bytes; 2] {
        let header = crate::ws::FrameHeader::server(OpCode::Text, self.len());
        let mut out = bytes::BytesMut::with_capacity(header.encoded_len() + self.head.len());
        header.encode(&mut out);
        out.extend_from_slice(self.head.as_bytes());
        [out.freeze(), self.tail.json.clone()]
    }

    /// The compressed frame (RSV1), or `None` when under `threshold` or no smaller. The history
    /// is compressed once per history and shared like its JSON; only this joiner's own fields
    /// are compressed here. The two parts are compressed apart and the first ends byte-aligned
    /// (see [`crate::ws::deflate::compress_in_parts`]), so together they are one valid message.
    pub fn deflated(&self, threshold: usize, metrics: &Metrics) -> Option<[Bytes; 2]> {
        let len = self.len();
        if len < threshold {
            return None;
        }
        let tail = self.tail.deflated.get_or_init(|| {
            let compressed = deflate::compress(&self.tail.json, false);
            metrics.count_compression(self.tail.json.len(), compressed.len());
            Bytes::from(compressed)
        });
        let head = deflate::compress(self.head.as_bytes(), true);
        metrics.count_compression(self.head.len(), head.len());
        if head.len() + tail.len() >= len {
            return None;
        }
        let header = crate::ws::FrameHeader {
            rsv: deflate::RSV1,
            ..crate::ws::FrameHeader::server(OpCode::Text, head.len() + tail.len())
        };
        let mut out = bytes::BytesMut::with_capacity(header.encoded_len() + head.len());
        header.encode(&mut out);
        out.extend_from_slice(&head);
        Some([out.freeze(), tail.clone()])
    }

    /// The payload's length, uncompressed.
    fn len(&self) -> usize {
        self.head.len() + self.tail.json.len()
    }
}

impl Welcome<'_> {
    /// The welcome as one complete text frame in two pieces, to be queued in this order: the
    /// frame header and this joiner's fields, then the shared `history`.
    pub fn to_frame(&self, history: &HistoryTail) -> [Bytes; 2] {
        self.to_parts(history.clone()).plain()
    }

    /// The welcome's two parts, for [`WelcomeFrame::plain`] or [`WelcomeFrame::deflated`].
    pub fn to_parts(&self, history: HistoryTail) -> WelcomeFrame {
        let mut head = serde_json::to_string(self).expect("a welcome always serializes");
        head.pop(); // the closing brace: `history` and the brace come from the tail
        head.push_str(",\"history\":");
        WelcomeFrame {
            head,
            tail: history,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(
            parse_request(r#"{"type":"message","text":"hi"}"#, 100),
            Ok(ClientRequest::Message("hi".into()))
        );
        assert_eq!(
            parse_request(r#"{"type":"message","text":"say \"hi\""}"#, 100),
            Ok(ClientRequest::Message("say \"hi\"".into()))
        );
        assert_eq!(
            parse_request(r#" {"type":"typing"}"#, 100),
            Ok(ClientRequest::Typing)
        );
    }

    #[test]
    fn plain_text_is_a_message() {
        for text in ["hello there", "{not json", "[1,2]", "42"] {
            assert_eq!(
                parse_request(text, 100),
                Ok(ClientRequest::Message(text.into()))
            );
        }
    }

    #[test]
    fn rejects_bad_requests() {
        let cases = [
            (r#"{"type":"message","text":"  "}"#, RequestError::EmptyText),
            ("", RequestError::EmptyText),
            ("\u{3164}\u{200B}", RequestError::EmptyText),
            (
                r#"{"type":"message","text":"0123456789a"}"#,
                RequestError::TextTooLong,
            ),
            (r#"{"type":"dance"}"#, RequestError::UnknownType),
            (r#"{"type":"message"}"#, RequestError::BadRequest),
            (r#"{"text":"no type"}"#, RequestError::BadRequest),
            (r#"{"type":"message","text":5}"#, RequestError::BadRequest),
        ];
        for (frame, error) in cases {
            assert_eq!(parse_request(frame, 10), Err(error), "{frame}");
        }
    }

    #[test]
    fn events_have_their_documented_shape() {
        let message = ServerEvent::Message(ChatMessage {
            id: 7,
            room: "lobby",
            from: "ann",
            text: "<b>hi</b>",
            ts: 1,
        });
        assert_eq!(
            message.to_json(),
            r#"{"type":"message","id":7,"room":"lobby","from":"ann","text":"<b>hi</b>","ts":1}"#
        );
        assert_eq!(
            ServerEvent::Lagged { missed: 3 }.to_json(),
            r#"{"type":"lagged","missed":3}"#
        );
        assert_eq!(
            ServerEvent::Truncated {
                epoch: crate::chat::Epoch(0xab)
            }
            .to_json(),
            r#"{"type":"truncated","epoch":"00000000000000ab"}"#
        );
        assert_eq!(
            ServerEvent::error(RequestError::RateLimited).to_json(),
            r#"{"type":"error","code":"rate_limited","message":"slow down: too many messages"}"#
        );
        let history = RawValue::from_string(message.to_json()).unwrap();
        let welcome = Welcome {
            you: "bob",
            room: "lobby",
            users: vec!["ann", "bob"],
            count: 2,
            last_id: 7,
            epoch: crate::chat::Epoch(1),
            truncated: false,
        }
        .to_frame(&HistoryTail::new([&*history, &*history].into_iter()));
        let frame = welcome.concat();
        let (header, n) = crate::ws::FrameHeader::parse(&frame).unwrap().unwrap();
        assert_eq!(
            header.payload_len as usize,
            frame.len() - n,
            "one whole frame"
        );
        let value: serde_json::Value = serde_json::from_slice(&frame[n..]).unwrap();
        assert_eq!(value["type"], "welcome");
        assert_eq!(value["you"], "bob");
        assert_eq!(value["history"][1]["id"], 7);
        assert_eq!(value["last_id"], 7);
        let empty = Welcome {
            you: "bob",
            room: "lobby",
            users: vec![],
            count: 1,
            last_id: 0,
            epoch: crate::chat::Epoch(1),
            truncated: false,
        }
        .to_frame(&HistoryTail::new(std::iter::empty()))
        .concat();
        let (_, n) = crate::ws::FrameHeader::parse(&empty).unwrap().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&empty[n..]).unwrap();
        assert_eq!(value["history"], serde_json::json!([]));
    }

    #[test]
    fn a_welcome_stays_within_its_documented_size() {
        // The largest of everything: 4-byte characters in every name, quotes in the room's
        // place (ASCII only there), the longest numbers.
        let name = "\u{1F600}".repeat(32);
        let users: Vec<&str> = (0..100).map(|_| name.as_str()).collect();
        let history_bytes = 1000;
        let welcome = Welcome {
            you: &name,
            room: &"r".repeat(64),
            users,
            count: usize::MAX,
            last_id: u64::MAX,
            epoch: crate::chat::Epoch(1),
            truncated: true,
        }
        .to_frame(&HistoryTail::from(Bytes::from(vec![
            b' ';
            history_bytes + 2
        ])));
        let payload = welcome.concat().len() - 4; // a 16-bit length: 4 header bytes
        assert!(payload <= welcome_size_limit(history_bytes, 100, 32, 64));
        assert!(payload > welcome_size_limit(history_bytes, 100, 32, 64) - 200);
    }

    #[test]
    fn a_compressed_welcome_is_one_message_with_the_history_compressed_once() {
        let metrics = Metrics::new();
        let message = RawValue::from_string(
            r#"{"type":"message","id":7,"from":"alice","text":"hello, hello, hello"}"#.into(),
        )
        .unwrap();
        let tail = HistoryTail::new(std::iter::repeat_n(&*message, 100));
        let welcome = |you: &str| {
            Welcome {
                you,
                room: "lobby",
                users: vec!["alice", you],
                count: 2,
                last_id: 7,
                epoch: crate::chat::Epoch(1),
                truncated: false,
            }
            .to_parts(tail.clone())
        };
        let (bob, cat) = (welcome("bob"), welcome("cat"));
        let [bob_head, bob_tail] = bob.deflated(64, &metrics).unwrap();
        let [_, cat_tail] = cat.deflated(64, &metrics).unwrap();
        assert_eq!(
            bob_tail.as_ptr(),
            cat_tail.as_ptr(),
            "one compressed history, shared"
        );
        // Two heads and one history.
        assert_eq!(metrics.deflate_compressions.get(), 3);
        let frame = [bob_head, bob_tail].concat();
        let (header, n) = crate::ws::FrameHeader::parse(&frame).unwrap().unwrap();
        assert_eq!(header.rsv, deflate::RSV1);
        assert_eq!(header.payload_len as usize, frame.len() - n);
        let mut inflater = deflate::Inflater::new();
        let mut json = Vec::new();
        inflater.inflate(&frame[n..], &mut json, 1 << 20).unwrap();
        inflater.finish(&mut json, 1 << 20).unwrap();
        assert_eq!(
            json,
            bob.plain().concat()[4..],
            "the plain welcome's payload"
        );
        assert!(
            frame.len() * 5 < json.len(),
            "{} of {}",
            frame.len(),
            json.len()
        );
        // Under the threshold: none.
        assert!(bob.deflated(1 << 20, &metrics).is_none());
    }
}
