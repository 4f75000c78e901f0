//! Engine.IO v4 and Socket.IO v5 packets as text, with no I/O: a text frame in, a [`Packet`] or a
//! [`PacketError`] out; a packet's parts in, its text out.
//!
//! Over the WebSocket transport, Engine.IO puts exactly one packet in each frame: a text frame is
//! one type digit and its data (`2` ping, `3` pong, `4…` a message, …), a binary frame is one
//! binary message with no type byte at all. A Socket.IO packet is the data of an Engine.IO
//! message:
//!
//! ```text
//! <type digit>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
//! 42["message","hi"]            EVENT on "/"
//! 42/chat,7["message","hi"]     EVENT on "/chat", the sender wants ack 7
//! 451-["file",{"_placeholder":true,"num":0}]   BINARY_EVENT; one binary frame follows
//! ```
//!
//! Every packet is checked here in full, the payload's shape included (the Socket.IO reference
//! parser does the same, and a server that accepted `42"x"` would have to decide later what it
//! means). The session closes the connection on any [`PacketError`]: a client library never
//! sends one, so whoever does is not a client worth answering.
//!
//! Long because every packet type and every refusal has its unit test beside the parser (about
//! 40 % of the file), as the Socket.IO work asked.

use serde_json::Value;

/// What an Engine.IO text frame carries. Borrowed from the frame: a message is not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `1`: the client is going away.
    Close,
    /// `2`: a v4 client never pings (the server does), but answering costs nothing.
    Ping(&'a str),
    /// `3`: the answer to our ping.
    Pong,
    /// `4…`: a Socket.IO packet, still as text.
    Message(&'a str),
    /// `6`: nothing (sent during a transport upgrade, which this server never offers).
    Noop,
}

/// Socket.IO packet types (the digit after Engine.IO's `4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    BinaryEvent = 5,
    BinaryAck = 6,
}

impl Kind {
    fn from_digit(digit: u8) -> Option<Kind> {
        Some(match digit {
            b'0' => Kind::Connect,
            b'1' => Kind::Disconnect,
            b'2' => Kind::Event,
            b'3' => Kind::Ack,
            b'4' => Kind::ConnectError,
            b'5' => Kind::BinaryEvent,
            b'6' => Kind::BinaryAck,
            _ => return None,
        })
    }

    fn is_binary(self) -> bool {
        matches!(self, Kind::BinaryEvent | Kind::BinaryAck)
    }
}

/// One Socket.IO packet from a client, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet<'a> {
    /// Join `nsp`; `auth` is the client's `auth` option (an object), if it gave one.
    Connect {
        nsp: &'a str,
        auth: Option<serde_json::Map<String, Value>>,
    },
    /// Leave `nsp`.
    Disconnect { nsp: &'a str },
    /// `emit(name, ...args)`; `ack` is set when the client passed a callback. For a binary event,
    /// `attachments` binary frames follow, and `args` hold `{"_placeholder":true,"num":n}` where
    /// each goes.
    Event {
        nsp: &'a str,
        ack: Option<u64>,
        name: String,
        args: Vec<Value>,
        attachments: usize,
    },
    /// The answer to an ack the server asked for (this server never asks, so these are ignored).
    Ack {
        nsp: &'a str,
        id: u64,
        attachments: usize,
    },
}

/// Why a frame is not a packet a client may send. One variant per rule; each closes the
/// connection (see [`PacketError::reason`] for the close frame's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketError {
    /// An empty text frame.
    Empty,
    /// An Engine.IO type that is not a digit 0-6.
    UnknownEngineType,
    /// `0` (open) or `5` (upgrade): only the server opens, and no upgrade is ever offered.
    NotFromClient,
    /// `1`, `3` or `6` with data after the type.
    TrailingData,
    /// A Socket.IO type that is not a digit 0-6.
    UnknownSocketType,
    /// `CONNECT_ERROR`: only the server refuses a connection.
    ConnectErrorFromClient,
    /// A binary packet without `<n>-`, or an attachment count on a non-binary one.
    BadAttachments,
    /// More attachments than `--socketio-max-attachments`.
    TooManyAttachments,
    /// A namespace not starting with `/`, or with characters no namespace has.
    BadNamespace,
    /// An ack id that is not a number that fits in 64 bits.
    BadAckId,
    /// An `ACK` without an id.
    AckWithoutId,
    /// The payload is not JSON.
    BadJson,
    /// `CONNECT` whose payload is not an object.
    ConnectNotObject,
    /// `DISCONNECT` with a payload.
    DisconnectWithPayload,
    /// An event whose payload is not a non-empty array starting with its name.
    EventNotArray,
    /// An event named like one of Socket.IO's own (`connect`, `disconnect`, ...).
    ReservedEvent,
    /// An ack whose payload is not an array.
    AckNotArray,
    /// A binary frame that no binary packet announced.
    UnexpectedBinary,
    /// A text packet while a binary packet's attachments were still due.
    MissingAttachments,
    /// A placeholder whose `num` is not one of the packet's attachments.
    BadPlaceholder,
    /// The attachments of one packet add up to more than `--max-message-size`.
    AttachmentsTooLarge,
}

impl PacketError {
    /// The close frame's reason (at most 123 bytes, as RFC 6455 section 5.5 requires).
    pub fn reason(self) -> &'static str {
        use PacketError::*;
        match self {
            Empty => "engine.io: empty packet",
            UnknownEngineType => "engine.io: unknown packet type",
            NotFromClient => "engine.io: open and upgrade are sent by the server only",
            TrailingData => "engine.io: data after a packet type that carries none",
            UnknownSocketType => "socket.io: unknown packet type",
            ConnectErrorFromClient => "socket.io: CONNECT_ERROR is sent by the server only",
            BadAttachments => "socket.io: bad attachment count",
            TooManyAttachments => "socket.io: too many attachments",
            BadNamespace => "socket.io: bad namespace",
            BadAckId => "socket.io: bad ack id",
            AckWithoutId => "socket.io: ACK without an id",
            BadJson => "socket.io: payload is not JSON",
            ConnectNotObject => "socket.io: CONNECT payload must be an object",
            DisconnectWithPayload => "socket.io: DISCONNECT carries no payload",
            EventNotArray => "socket.io: EVENT payload must be [name, ...args]",
            ReservedEvent => "socket.io: reserved event name",
            AckNotArray => "socket.io: ACK payload must be an array",
            UnexpectedBinary => "socket.io: binary frame without a binary packet",
            MissingAttachments => "socket.io: attachments missing",
            BadPlaceholder => "socket.io: placeholder for no attachment",
            AttachmentsTooLarge => "socket.io: attachments too large",
        }
    }
}

/// Event names the Socket.IO libraries keep for themselves: a client cannot emit them.
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Reads one Engine.IO text frame.
pub fn parse_engine(text: &str) -> Result<EnginePacket<'_>, PacketError> {
    let (&kind, rest) = text.as_bytes().split_first().ok_or(PacketError::Empty)?;
    let data = &text[1..];
    let no_data = |packet| {
        if rest.is_empty() {
            Ok(packet)
        } else {
            Err(PacketError::TrailingData)
        }
    };
    match kind {
        b'0' | b'5' => Err(PacketError::NotFromClient),
        b'1' => no_data(EnginePacket::Close),
        b'2' => Ok(EnginePacket::Ping(data)),
        b'3' => no_data(EnginePacket::Pong),
        b'4' => Ok(EnginePacket::Message(data)),
        b'6' => no_data(EnginePacket::Noop),
        _ => Err(PacketError::UnknownEngineType),
    }
}

/// Reads one Socket.IO packet (the data of an Engine.IO message). `max_attachments` bounds a
/// binary packet's announced attachments before the server waits for any of them.
pub fn parse_socket(text: &str, max_attachments: usize) -> Result<Packet<'_>, PacketError> {
    let bytes = text.as_bytes();
    let kind = bytes
        .first()
        .and_then(|&d| Kind::from_digit(d))
        .ok_or(PacketError::UnknownSocketType)?;
    let mut at = 1;

    // `<n>-`: binary packets only, and always there.
    let mut attachments = 0;
    if kind.is_binary() {
        let digits = count_digits(&bytes[at..]);
        if digits == 0 || bytes.get(at + digits) != Some(&b'-') {
            return Err(PacketError::BadAttachments);
        }
        attachments = text[at..at + digits]
            .parse::<usize>()
            .map_err(|_| PacketError::TooManyAttachments)?;
        if attachments > max_attachments {
            return Err(PacketError::TooManyAttachments);
        }
        at += digits + 1;
    }

    // `/nsp,`: absent means `/`. It ends at the first comma (or at the end of the packet).
    let mut nsp = "/";
    if bytes.get(at) == Some(&b'/') {
        let end = text[at..].find(',').map_or(text.len(), |i| at + i);
        nsp = &text[at..end];
        if !nsp
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'[' | b'{'))
        {
            return Err(PacketError::BadNamespace);
        }
        at = (end + 1).min(text.len());
    }

    // The ack id: the digits before the payload.
    let digits = count_digits(&bytes[at..]);
    let ack = match digits {
        0 => None,
        _ => Some(
            text[at..at + digits]
                .parse::<u64>()
                .map_err(|_| PacketError::BadAckId)?,
        ),
    };
    at += digits;

    let payload = match &text[at..] {
        "" => None,
        json => Some(serde_json::from_str::<Value>(json).map_err(|_| PacketError::BadJson)?),
    };

    match kind {
        Kind::Connect => match payload {
            None => Ok(Packet::Connect { nsp, auth: None }),
            Some(Value::Object(auth)) => Ok(Packet::Connect {
                nsp,
                auth: Some(auth),
            }),
            Some(_) => Err(PacketError::ConnectNotObject),
        },
        Kind::Disconnect => match payload {
            None => Ok(Packet::Disconnect { nsp }),
            Some(_) => Err(PacketError::DisconnectWithPayload),
        },
        Kind::ConnectError => Err(PacketError::ConnectErrorFromClient),
        Kind::Event | Kind::BinaryEvent => {
            let Some(Value::Array(mut args)) = payload else {
                return Err(PacketError::EventNotArray);
            };
            let name = match args.first() {
                Some(Value::String(name)) => name.clone(),
                // The reference allows a number as a name; it is taken as its decimal text.
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(PacketError::EventNotArray),
            };
            if RESERVED_EVENTS.contains(&name.as_str()) {
                return Err(PacketError::ReservedEvent);
            }
            args.remove(0);
            check_placeholders(&args, attachments)?;
            Ok(Packet::Event {
                nsp,
                ack,
                name,
                args,
                attachments,
            })
        }
        Kind::Ack | Kind::BinaryAck => {
            let id = ack.ok_or(PacketError::AckWithoutId)?;
            match payload {
                Some(Value::Array(args)) => {
                    check_placeholders(&args, attachments)?;
                    Ok(Packet::Ack {
                        nsp,
                        id,
                        attachments,
                    })
                }
                _ => Err(PacketError::AckNotArray),
            }
        }
    }
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// Every `{"_placeholder":true,"num":n}` in `args` (at any depth) names one of `attachments`.
fn check_placeholders(args: &[Value], attachments: usize) -> Result<(), PacketError> {
    fn walk(value: &Value, attachments: usize) -> Result<(), PacketError> {
        match value {
            Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
                match map.get("num").and_then(Value::as_u64) {
                    Some(num) if (num as usize) < attachments => Ok(()),
                    _ => Err(PacketError::BadPlaceholder),
                }
            }
            Value::Object(map) => map.values().try_for_each(|v| walk(v, attachments)),
            Value::Array(items) => items.iter().try_for_each(|v| walk(v, attachments)),
            _ => Ok(()),
        }
    }
    args.iter().try_for_each(|v| walk(v, attachments))
}

/// A server packet as an Engine.IO message's text: `4`, the Socket.IO type, the namespace unless
/// it is `/`, the ack id, the JSON. The one place server packets are spelled out.
pub fn encode(kind: Kind, nsp: &str, ack: Option<u64>, json: &str) -> String {
    let mut out = String::with_capacity(3 + nsp.len() + 20 + json.len());
    out.push('4');
    out.push((b'0' + kind as u8) as char);
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = ack {
        out.push_str(&id.to_string());
    }
    out.push_str(json);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn engine_packets() {
        assert_eq!(parse_engine("1"), Ok(EnginePacket::Close));
        assert_eq!(parse_engine("2"), Ok(EnginePacket::Ping("")));
        assert_eq!(parse_engine("2probe"), Ok(EnginePacket::Ping("probe")));
        assert_eq!(parse_engine("3"), Ok(EnginePacket::Pong));
        assert_eq!(parse_engine("40"), Ok(EnginePacket::Message("0")));
        assert_eq!(parse_engine("6"), Ok(EnginePacket::Noop));
    }

    #[test]
    fn engine_errors() {
        assert_eq!(parse_engine(""), Err(PacketError::Empty));
        assert_eq!(parse_engine("0{}"), Err(PacketError::NotFromClient));
        assert_eq!(parse_engine("5"), Err(PacketError::NotFromClient));
        assert_eq!(parse_engine("7"), Err(PacketError::UnknownEngineType));
        assert_eq!(parse_engine("x"), Err(PacketError::UnknownEngineType));
        assert_eq!(parse_engine("1x"), Err(PacketError::TrailingData));
        assert_eq!(parse_engine("3probe"), Err(PacketError::TrailingData));
        assert_eq!(parse_engine("6x"), Err(PacketError::TrailingData));
    }

    #[test]
    fn connect() {
        assert_eq!(
            parse_socket("0", 0),
            Ok(Packet::Connect {
                nsp: "/",
                auth: None
            })
        );
        assert_eq!(
            parse_socket("0/chat,", 0),
            Ok(Packet::Connect {
                nsp: "/chat",
                auth: None
            })
        );
        assert_eq!(
            parse_socket("0/chat", 0),
            Ok(Packet::Connect {
                nsp: "/chat",
                auth: None
            })
        );
        let Ok(Packet::Connect { nsp, auth }) =
            parse_socket(r#"0/chat,{"room":"r1","name":"ann"}"#, 0)
        else {
            panic!("not a connect");
        };
        assert_eq!(nsp, "/chat");
        assert_eq!(auth.unwrap()["room"], "r1");
        assert_eq!(
            parse_socket(r#"0{"token":"x"}"#, 0).map(|p| matches!(p, Packet::Connect { .. })),
            Ok(true)
        );
    }

    #[test]
    fn connect_errors() {
        assert_eq!(
            parse_socket("0\"x\"", 0),
            Err(PacketError::ConnectNotObject)
        );
        assert_eq!(parse_socket("0[1]", 0), Err(PacketError::ConnectNotObject));
        assert_eq!(parse_socket("0{", 0), Err(PacketError::BadJson));
        assert_eq!(
            parse_socket(r#"4{"message":"no"}"#, 0),
            Err(PacketError::ConnectErrorFromClient)
        );
    }

    #[test]
    fn disconnect() {
        assert_eq!(parse_socket("1", 0), Ok(Packet::Disconnect { nsp: "/" }));
        assert_eq!(
            parse_socket("1/chat,", 0),
            Ok(Packet::Disconnect { nsp: "/chat" })
        );
        assert_eq!(
            parse_socket("1{}", 0),
            Err(PacketError::DisconnectWithPayload)
        );
    }

    #[test]
    fn events() {
        assert_eq!(
            parse_socket(r#"2["message","hi"]"#, 0),
            Ok(Packet::Event {
                nsp: "/",
                ack: None,
                name: "message".into(),
                args: vec![json!("hi")],
                attachments: 0,
            })
        );
        assert_eq!(
            parse_socket(r#"2/chat,12["message",{"text":"hi"}]"#, 0),
            Ok(Packet::Event {
                nsp: "/chat",
                ack: Some(12),
                name: "message".into(),
                args: vec![json!({"text": "hi"})],
                attachments: 0,
            })
        );
        assert_eq!(
            parse_socket(r#"2[7]"#, 0).map(|p| match p {
                Packet::Event { name, .. } => name,
                _ => String::new(),
            }),
            Ok("7".into())
        );
    }

    #[test]
    fn event_errors() {
        for (text, error) in [
            (r#"2"message""#, PacketError::EventNotArray),
            (r#"2{"a":1}"#, PacketError::EventNotArray),
            ("2[]", PacketError::EventNotArray),
            ("2[null]", PacketError::EventNotArray),
            ("2", PacketError::EventNotArray),
            (r#"2["connect"]"#, PacketError::ReservedEvent),
            (r#"2["disconnect"]"#, PacketError::ReservedEvent),
            (r#"2["newListener"]"#, PacketError::ReservedEvent),
            (r#"2["message","hi"] x"#, PacketError::BadJson),
            (r#"299999999999999999999999["a"]"#, PacketError::BadAckId),
            (r#"2/ch at,["a"]"#, PacketError::BadNamespace),
            (r#"21-["a"]"#, PacketError::BadJson),
            ("9", PacketError::UnknownSocketType),
            ("", PacketError::UnknownSocketType),
        ] {
            assert_eq!(parse_socket(text, 4), Err(error), "{text}");
        }
    }

    #[test]
    fn acks() {
        assert_eq!(
            parse_socket(r#"35[{"ok":true}]"#, 0),
            Ok(Packet::Ack {
                nsp: "/",
                id: 5,
                attachments: 0
            })
        );
        assert_eq!(parse_socket(r#"3[1]"#, 0), Err(PacketError::AckWithoutId));
        assert_eq!(
            parse_socket(r#"35{"a":1}"#, 0),
            Err(PacketError::AckNotArray)
        );
        assert_eq!(parse_socket("35", 0), Err(PacketError::AckNotArray));
    }

    #[test]
    fn binary_packets() {
        let placeholder = json!({"_placeholder": true, "num": 1});
        assert_eq!(
            parse_socket(
                r#"52-/chat,3["file",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
                2
            ),
            Ok(Packet::Event {
                nsp: "/chat",
                ack: Some(3),
                name: "file".into(),
                args: vec![json!({"_placeholder": true, "num": 0}), placeholder],
                attachments: 2,
            })
        );
        assert_eq!(
            parse_socket(r#"61-4[{"_placeholder":true,"num":0}]"#, 1),
            Ok(Packet::Ack {
                nsp: "/",
                id: 4,
                attachments: 1
            })
        );
    }

    #[test]
    fn binary_errors() {
        for (text, max, error) in [
            (r#"5["a"]"#, 4, PacketError::BadAttachments),
            (r#"51["a"]"#, 4, PacketError::BadAttachments),
            (r#"5-["a"]"#, 4, PacketError::BadAttachments),
            (r#"55-["a"]"#, 4, PacketError::TooManyAttachments),
            (
                r#"5999999999999999999999-["a"]"#,
                4,
                PacketError::TooManyAttachments,
            ),
            (
                r#"51-["a",{"_placeholder":true,"num":1}]"#,
                4,
                PacketError::BadPlaceholder,
            ),
            (
                r#"51-["a",[{"_placeholder":true,"num":"0"}]]"#,
                4,
                PacketError::BadPlaceholder,
            ),
            (
                r#"2["a",{"_placeholder":true,"num":0}]"#,
                4,
                PacketError::BadPlaceholder,
            ),
            (r#"6-1[]"#, 4, PacketError::BadAttachments),
        ] {
            assert_eq!(parse_socket(text, max), Err(error), "{text}");
        }
    }

    #[test]
    fn encodes_server_packets() {
        assert_eq!(
            encode(Kind::Connect, "/", None, r#"{"sid":"a"}"#),
            r#"40{"sid":"a"}"#
        );
        assert_eq!(
            encode(Kind::Connect, "/chat", None, r#"{"sid":"a"}"#),
            r#"40/chat,{"sid":"a"}"#
        );
        assert_eq!(encode(Kind::Ack, "/", Some(7), "[1]"), "437[1]");
        assert_eq!(encode(Kind::Ack, "/chat", Some(7), "[1]"), "43/chat,7[1]");
        assert_eq!(
            encode(
                Kind::ConnectError,
                "/x",
                None,
                r#"{"message":"Invalid namespace"}"#
            ),
            r#"44/x,{"message":"Invalid namespace"}"#
        );
    }

    #[test]
    fn what_it_encodes_it_parses_back() {
        let text = encode(Kind::Event, "/chat", Some(3), r#"["message","hi"]"#);
        let Ok(EnginePacket::Message(sio)) = parse_engine(&text) else {
            panic!("{text}");
        };
        assert!(matches!(
            parse_socket(sio, 0),
            Ok(Packet::Event {
                nsp: "/chat",
                ack: Some(3),
                ..
            })
        ));
    }
}
