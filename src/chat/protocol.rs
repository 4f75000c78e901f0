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

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ws::{encode_frame, OpCode};

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
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            RequestError::EmptyText => "message text is empty",
            RequestError::TextTooLong => "message text is too long",
            RequestError::UnknownType => "unknown request type",
            RequestError::BadRequest => "request must be {\"type\":\"message\",\"text\":...}",
            RequestError::RateLimited => "slow down: too many messages",
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
        if super::text::is_blank(text) {
            return Err(RequestError::EmptyText);
        }
        if text.len() > max_text_len {
            return Err(RequestError::TextTooLong);
        }
    }
    Ok(request)
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

/// Everything the server sends. `#[serde(tag = "type")]` gives each its `"type"` field.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerEvent<'a> {
    /// The first frame on every chat connection.
    Welcome {
        you: &'a str,
        room: &'a str,
        /// Users online, sorted; at most `--welcome-users` of them (see `count`).
        users: Vec<&'a str>,
        /// How many users are online in all.
        count: usize,
        /// Messages after the client's `since`, or the most recent ones, oldest first.
        history: Vec<&'a RawValue>,
        /// The id of the room's latest message (0 when there has been none): a resume cursor.
        last_id: u64,
        /// Some messages the client asked for (`since`) are no longer held.
        truncated: bool,
    },
    Message(ChatMessage<'a>),
    Join {
        name: &'a str,
    },
    Leave {
        name: &'a str,
    },
    Typing {
        name: &'a str,
    },
    /// Joins and leaves of a large room, coalesced over an interval.
    Presence {
        joined: &'a [&'a str],
        left: &'a [&'a str],
        count: usize,
    },
    /// This client fell behind the room and `missed` events were skipped.
    Lagged {
        missed: u64,
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
            ServerEvent::error(RequestError::RateLimited).to_json(),
            r#"{"type":"error","code":"rate_limited","message":"slow down: too many messages"}"#
        );
        let history = RawValue::from_string(message.to_json()).unwrap();
        let welcome = ServerEvent::Welcome {
            you: "bob",
            room: "lobby",
            users: vec!["ann", "bob"],
            count: 2,
            history: vec![&history],
            last_id: 7,
            truncated: false,
        };
        let value: serde_json::Value = serde_json::from_str(&welcome.to_json()).unwrap();
        assert_eq!(value["type"], "welcome");
        assert_eq!(value["history"][0]["id"], 7);
        assert_eq!(value["last_id"], 7);
    }
}
