//! A room event as a Socket.IO client receives it: the native frame's JSON object, unchanged, as
//! the argument of an event named after its `type`.
//!
//! ```text
//! native      {"type":"message","id":7,"room":"lobby","from":"ann","text":"hi","ts":1}
//! Socket.IO   42["message",{"type":"message","id":7,"room":"lobby","from":"ann","text":"hi","ts":1}]
//! on /chat    42/chat,["message",{...the same object...}]
//! ```
//!
//! Made from the native frame's bytes, not from the event: the room encodes each event once, as
//! the native frame, and this is a byte-level rewrap (no JSON is parsed; the name is the value of
//! `"type"`, which serde writes first). It is one pure function of the native frame and the
//! namespace, so a room event keeps its result as a lazily-made shared encoding
//! ([`crate::chat::Encoded::wire_form`]): made once per event and namespace, by the first
//! Socket.IO receiver, however many receive it. `wschat_socketio_encodings_total` counts the
//! calls.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ws::{FrameHeader, OpCode};

/// The namespaces this server serves: the default one, and the ported app's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Root,
    Chat,
}

impl Namespace {
    /// Where a room event keeps this namespace's frame ([`crate::chat::Encoded::wire_form`]).
    pub fn form_slot(self) -> usize {
        match self {
            Namespace::Root => 0,
            Namespace::Chat => 1,
        }
    }

    pub fn from_path(nsp: &str) -> Option<Namespace> {
        match nsp {
            "/" => Some(Namespace::Root),
            "/chat" => Some(Namespace::Chat),
            _ => None,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Namespace::Root => "/",
            Namespace::Chat => "/chat",
        }
    }

    /// What goes between `42` and the event array.
    fn event_prefix(self) -> &'static [u8] {
        match self {
            Namespace::Root => b"42[\"",
            Namespace::Chat => b"42/chat,[\"",
        }
    }
}

/// The event name of a native event's JSON: the value of its leading `"type"` field.
fn event_name(json: &[u8]) -> &[u8] {
    const LEAD: &[u8] = b"{\"type\":\"";
    json.strip_prefix(LEAD)
        .and_then(|rest| rest.iter().position(|&b| b == b'"').map(|end| &rest[..end]))
        // Every server event starts with its type (serde writes the tag first); a frame that did
        // not would still reach the client, as an `event` it can log.
        .unwrap_or(b"event")
}

/// The Socket.IO text frame for one complete native text frame: `42["<type>",<json>]`.
pub fn socketio_frame(native: &Bytes, nsp: Namespace) -> Bytes {
    let payload = match FrameHeader::parse(native) {
        Ok(Some((_, header_len))) => &native[header_len..],
        _ => {
            debug_assert!(false, "a room event is always one whole frame");
            &[][..]
        }
    };
    let name = event_name(payload);
    let prefix = nsp.event_prefix();
    let len = prefix.len() + name.len() + 2 + payload.len() + 1;
    let header = FrameHeader::server(OpCode::Text, len);
    let mut out = BytesMut::with_capacity(header.encoded_len() + len);
    header.encode(&mut out);
    out.put_slice(prefix);
    out.put_slice(name);
    out.put_slice(b"\",");
    out.put_slice(payload);
    out.put_u8(b']');
    out.freeze()
}

/// The welcome, which the room hands out as one frame in two pieces (this joiner's head, then the
/// room's shared history; see `chat::protocol::Welcome`), as a Socket.IO `welcome` event in three:
/// a new head, the same shared history, and the closing `]`. The history is not copied.
pub fn socketio_welcome(native: [Bytes; 2], nsp: Namespace) -> [Bytes; 3] {
    let [head, history] = native;
    let Ok(Some((header, header_len))) = FrameHeader::parse(&head) else {
        debug_assert!(false, "a welcome starts with a frame header");
        return [head, history, Bytes::new()];
    };
    let prefix = nsp.event_prefix();
    let name = b"welcome";
    let len = prefix.len() + name.len() + 2 + header.payload_len as usize + 1;
    let new_header = FrameHeader::server(OpCode::Text, len);
    let mut out = BytesMut::with_capacity(new_header.encoded_len() + len - history.len() - 1);
    new_header.encode(&mut out);
    out.put_slice(prefix);
    out.put_slice(name);
    out.put_slice(b"\",");
    out.put_slice(&head[header_len..]);
    [out.freeze(), history, Bytes::from_static(b"]")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::{ChatMessage, HistoryTail, ServerEvent, Welcome};
    use serde_json::{json, Value};

    /// The frame's text payload, checking it is one whole frame.
    fn payload(frame: &[u8]) -> String {
        let (header, n) = FrameHeader::parse(frame).unwrap().unwrap();
        assert_eq!(header.opcode, OpCode::Text);
        assert_eq!(
            header.payload_len as usize,
            frame.len() - n,
            "one whole frame"
        );
        String::from_utf8(frame[n..].to_vec()).unwrap()
    }

    #[test]
    fn an_event_keeps_its_object_under_its_type() {
        let event = ServerEvent::Message(ChatMessage {
            id: 7,
            room: "lobby",
            from: "ann",
            text: "say \"hi\"",
            ts: 1,
        });
        let native = event.to_frame();
        let text = payload(&socketio_frame(&native, Namespace::Root));
        assert_eq!(text, format!("42[\"message\",{}]", event.to_json()));
        let text = payload(&socketio_frame(&native, Namespace::Chat));
        assert!(text.starts_with("42/chat,[\"message\",{"), "{text}");
        let array: Value = serde_json::from_str(&text["42/chat,".len()..]).unwrap();
        assert_eq!(array[1]["text"], "say \"hi\"");
    }

    #[test]
    fn every_event_type_is_named() {
        for (event, name) in [
            (
                ServerEvent::Join {
                    name: "a",
                    info: None,
                },
                "join",
            ),
            (ServerEvent::Leave { name: "a" }, "leave"),
            (ServerEvent::Typing { name: "a" }, "typing"),
            (ServerEvent::Lagged { missed: 2 }, "lagged"),
            (
                ServerEvent::error(crate::chat::protocol::RequestError::EmptyText),
                "error",
            ),
            (
                ServerEvent::Presence {
                    joined: &["a"],
                    left: &[],
                    joined_count: 1,
                    left_count: 0,
                    count: 3,
                },
                "presence",
            ),
        ] {
            let text = payload(&socketio_frame(&event.to_frame(), Namespace::Root));
            let array: Value = serde_json::from_str(&text[2..]).unwrap();
            assert_eq!(array[0], name);
            assert_eq!(array[1]["type"], name);
        }
    }

    #[test]
    fn a_long_event_gets_a_longer_header() {
        // 120 bytes of native payload fit a 2-byte header; wrapped, they need 4.
        let text = "x".repeat(60);
        let event = ServerEvent::Message(ChatMessage {
            id: 1,
            room: "r",
            from: "a",
            text: &text,
            ts: 0,
        });
        let native = event.to_frame();
        assert_eq!(FrameHeader::parse(&native).unwrap().unwrap().1, 2);
        let out = socketio_frame(&native, Namespace::Chat);
        assert_eq!(FrameHeader::parse(&out).unwrap().unwrap().1, 4);
        assert!(payload(&out).ends_with("\"ts\":0}]"));
    }

    #[test]
    fn the_welcome_shares_its_history() {
        let message = ServerEvent::Message(ChatMessage {
            id: 3,
            room: "lobby",
            from: "ann",
            text: "hi",
            ts: 1,
        })
        .to_json();
        let raw = serde_json::value::RawValue::from_string(message).unwrap();
        let tail = HistoryTail::new(std::iter::once(&*raw));
        let native = Welcome {
            you: "bob",
            room: "lobby",
            users: vec!["ann", "bob"],
            count: 2,
            last_id: 3,
            epoch: crate::chat::Epoch(1),
            truncated: false,
        }
        .to_frame(&tail);
        let history = native[1].clone();
        let pieces = socketio_welcome(native, Namespace::Root);
        assert_eq!(pieces[1].as_ptr(), history.as_ptr(), "history not copied");
        let text = payload(&pieces.concat());
        let array: Value = serde_json::from_str(&text[2..]).unwrap();
        assert_eq!(array[0], "welcome");
        assert_eq!(array[1]["you"], "bob");
        assert_eq!(array[1]["history"][0]["id"], json!(3));
    }
}
