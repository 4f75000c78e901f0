//! wschat's frame code against tungstenite's, both ways, on generated messages:
//!
//! - whatever wschat's encoder writes ([`encode_frame`], [`encode_close`]), tungstenite, reading
//!   as a client, decodes to the same messages;
//! - whatever tungstenite writes as a client (masked, fragmented at arbitrary byte offsets, with
//!   control frames between fragments), wschat's [`MessageReader`] decodes to the same messages.
//!
//! Both directions deliver the bytes in reads of generated sizes, so a parser that depends on
//! where a read ends fails here. Payload lengths cluster around the 7-bit, 16-bit and 64-bit
//! length encodings (125/126 and 65535/65536 bytes).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use tokio::io::{AsyncRead, ReadBuf};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode as WireOpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::{CloseFrame, Role, WebSocket as TungsteniteSocket};
use wschat::ws::{encode_close, encode_frame, Limits, Message, MessageReader, OpCode};

/// A message as both libraries can be compared on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

impl From<Message> for Msg {
    fn from(message: Message) -> Msg {
        match message {
            Message::Text(text) => Msg::Text(text),
            Message::Binary(data) => Msg::Binary(data.to_vec()),
            Message::Ping(data) => Msg::Ping(data.to_vec()),
            Message::Pong(data) => Msg::Pong(data.to_vec()),
            Message::Close(close) => Msg::Close(close),
        }
    }
}

impl From<tungstenite::Message> for Msg {
    fn from(message: tungstenite::Message) -> Msg {
        use tungstenite::Message as T;
        match message {
            T::Text(text) => Msg::Text(text.as_str().to_owned()),
            T::Binary(data) => Msg::Binary(data.to_vec()),
            T::Ping(data) => Msg::Ping(data.to_vec()),
            T::Pong(data) => Msg::Pong(data.to_vec()),
            T::Close(close) => {
                Msg::Close(close.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())))
            }
            T::Frame(frame) => panic!("tungstenite returned a raw frame: {frame:?}"),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Generated messages.

/// Data payload lengths around every length-encoding boundary, and some plain small ones.
fn data_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..130,
        1 => 120usize..300,
        1 => 65_530usize..65_542,
    ]
}

fn binary() -> impl Strategy<Value = Vec<u8>> {
    (data_len(), vec(any::<u8>(), 1..64)).prop_map(|(len, pattern)| {
        // Cheap to build at 64 KiB, and still no two neighbouring bytes alike in general.
        (0..len)
            .map(|i| pattern[i % pattern.len()] ^ (i as u8))
            .collect()
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        1 => (data_len(), any::<String>()).prop_map(|(len, unit)| {
            // Multi-byte characters right up to (and across) the boundaries.
            let unit = if unit.is_empty() { "é€😀".to_owned() } else { unit };
            let mut text = unit.repeat(len / unit.len() + 1);
            let mut end = len.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text
        }),
    ]
}

/// A control frame payload (section 5.5: at most 125 bytes).
fn control_payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=125)
}

/// Close codes both libraries accept on the wire. (wschat also accepts 1014, which tungstenite
/// 0.30 rejects; that difference is left out of the comparison.)
fn close_code() -> impl Strategy<Value = u16> {
    prop_oneof![1000u16..=1003, 1007u16..=1013, 3000u16..=4999]
}

/// A close reason; possibly longer than a control frame holds, to exercise the cut.
fn close_reason() -> impl Strategy<Value = String> {
    prop_oneof![".{0,20}", ".{30,60}"]
}

/// The longest prefix of `reason` that fits a close frame (123 bytes) on a character boundary.
fn fit_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

fn server_message() -> impl Strategy<Value = Msg> {
    prop_oneof![
        3 => text().prop_map(Msg::Text),
        3 => binary().prop_map(Msg::Binary),
        1 => control_payload().prop_map(Msg::Ping),
        1 => control_payload().prop_map(Msg::Pong),
    ]
}

/// How reads are cut: a cycle of read sizes.
fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(
        prop_oneof![1usize..16, 16usize..2048, 2048usize..100_000],
        1..8,
    )
}

// ------------------------------------------------------------------------------------------------
// In-memory sockets that hand out bytes in reads of the generated sizes.

/// Bytes to read in reads of `sizes` (cycled); writes are kept (tungstenite answers pings).
struct Script {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    reads: usize,
    written: Vec<u8>,
}

impl Script {
    fn new(data: Vec<u8>, sizes: Vec<usize>) -> Script {
        Script {
            data,
            at: 0,
            sizes,
            reads: 0,
            written: Vec::new(),
        }
    }

    fn next_len(&mut self, room: usize) -> usize {
        let size = self.sizes[self.reads % self.sizes.len()];
        self.reads += 1;
        size.min(room).min(self.data.len() - self.at)
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.next_len(buf.len());
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.next_len(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

// ------------------------------------------------------------------------------------------------
// wschat writes, tungstenite reads.

fn encode_with_wschat(message: &Msg) -> bytes::Bytes {
    match message {
        Msg::Text(text) => encode_frame(OpCode::Text, text.as_bytes()),
        Msg::Binary(data) => encode_frame(OpCode::Binary, data),
        Msg::Ping(data) => encode_frame(OpCode::Ping, data),
        Msg::Pong(data) => encode_frame(OpCode::Pong, data),
        Msg::Close(Some((code, reason))) => encode_close(*code, reason),
        Msg::Close(None) => encode_frame(OpCode::Close, b""),
    }
}

fn read_with_tungstenite(wire: Vec<u8>, sizes: Vec<usize>, count: usize) -> Vec<Msg> {
    let mut socket =
        TungsteniteSocket::from_raw_socket(Script::new(wire, sizes), Role::Client, None);
    (0..count)
        .map(|i| match socket.read() {
            Ok(message) => Msg::from(message),
            Err(err) => panic!("tungstenite failed on message {i}: {err}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tungstenite_reads_what_wschat_writes(
        messages in vec(server_message(), 1..8),
        close in option::of((close_code(), close_reason())),
        sizes in read_sizes(),
    ) {
        let mut expected = messages;
        let mut wire = Vec::new();
        for message in &expected {
            wire.extend_from_slice(&encode_with_wschat(message));
        }
        if let Some((code, reason)) = close {
            wire.extend_from_slice(&encode_with_wschat(&Msg::Close(Some((code, reason.clone())))));
            // The encoder cuts the reason to fit the frame, on a character boundary.
            expected.push(Msg::Close(Some((code, fit_reason(&reason)))));
        }
        let got = read_with_tungstenite(wire, sizes, expected.len());
        prop_assert_eq!(got, expected);
    }
}

// ------------------------------------------------------------------------------------------------
// tungstenite writes (as a client), wschat reads.

/// One data message as a client sends it: its fragments' cut points and the control frames
/// inserted after each fragment.
#[derive(Debug, Clone)]
struct ClientMessage {
    data: Msg,
    cuts: Vec<Index>,
    between: Vec<Option<Msg>>,
}

fn client_control() -> impl Strategy<Value = Msg> {
    prop_oneof![
        control_payload().prop_map(Msg::Ping),
        control_payload().prop_map(Msg::Pong),
    ]
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    (
        prop_oneof![text().prop_map(Msg::Text), binary().prop_map(Msg::Binary)],
        vec(any::<Index>(), 0..4),
        vec(option::of(client_control()), 0..4),
    )
        .prop_map(|(data, cuts, between)| ClientMessage {
            data,
            cuts,
            between,
        })
}

/// A mask per frame, from one generated seed.
fn mask(seed: u32, frame: usize) -> [u8; 4] {
    (seed ^ (frame as u32).wrapping_mul(0x9E37_79B9)).to_be_bytes()
}

fn control_frame(message: &Msg) -> Frame {
    match message {
        Msg::Ping(data) => Frame::ping(data.clone()),
        Msg::Pong(data) => Frame::pong(data.clone()),
        Msg::Close(close) => Frame::close(close.as_ref().map(|(code, reason)| CloseFrame {
            code: CloseCode::from(*code),
            reason: reason.clone().into(),
        })),
        _ => unreachable!("not a control message"),
    }
}

/// Encodes `messages` (and a final close) as tungstenite's client would, fragmenting each data
/// message at its cut points; returns the wire bytes and the messages a reader must return, in
/// order (a control frame is returned as it arrives, before the message it interrupts).
fn encode_with_tungstenite(
    messages: &[ClientMessage],
    close: Option<Msg>,
    seed: u32,
) -> (Vec<u8>, Vec<Msg>) {
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    for message in messages {
        let (payload, first_opcode) = match &message.data {
            Msg::Text(text) => (text.as_bytes(), Data::Text),
            Msg::Binary(data) => (&data[..], Data::Binary),
            _ => unreachable!("a data message"),
        };
        // Cut points anywhere in the payload (inside a UTF-8 character too), in order.
        let mut cuts: Vec<usize> = message
            .cuts
            .iter()
            .map(|i| i.index(payload.len() + 1))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut start = 0;
        let bounds = cuts.into_iter().chain(std::iter::once(payload.len()));
        let pieces: Vec<&[u8]> = bounds
            .map(|end| {
                let end = end.max(start);
                let piece = &payload[start..end];
                start = end;
                piece
            })
            .collect();
        let last = pieces.len() - 1;
        for (k, piece) in pieces.into_iter().enumerate() {
            let opcode = if k == 0 { first_opcode } else { Data::Continue };
            frames.push(Frame::message(
                piece.to_vec(),
                WireOpCode::Data(opcode),
                k == last,
            ));
            if k < last {
                if let Some(Some(control)) = message.between.get(k) {
                    frames.push(control_frame(control));
                    expected.push(control.clone());
                }
            }
        }
        expected.push(message.data.clone());
    }
    if let Some(close) = close {
        frames.push(control_frame(&close));
        expected.push(close);
    }
    let mut wire = Vec::new();
    for (i, mut frame) in frames.into_iter().enumerate() {
        frame.header_mut().mask = Some(mask(seed, i));
        frame.format(&mut wire).expect("format into a Vec");
    }
    (wire, expected)
}

fn read_with_wschat(wire: Vec<u8>, already: usize, sizes: Vec<usize>, count: usize) -> Vec<Msg> {
    let limits = Limits {
        max_message: 1 << 20,
        max_frame: 0,
    };
    let already = already.min(wire.len());
    let handshake_leftover = wire[..already].to_vec();
    let script = Script::new(wire[already..].to_vec(), sizes);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (mut reader, mut script) = (
            MessageReader::new(&handshake_leftover, limits, false),
            script,
        );
        let mut got = Vec::new();
        for i in 0..count {
            match reader.read_message(&mut script).await {
                Ok(message) => got.push(Msg::from(message)),
                Err(err) => panic!("wschat failed on message {i}: {err}"),
            }
        }
        got
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn wschat_reads_what_tungstenite_writes(
        messages in vec(client_message(), 1..6),
        leading in vec(client_control(), 0..2),
        close in option::of(option::of((close_code(), close_reason()))),
        seed in any::<u32>(),
        already in prop_oneof![Just(0usize), 1usize..200],
        sizes in read_sizes(),
    ) {
        // Control frames before the first message, as standalone "messages".
        let mut all: Vec<ClientMessage> = Vec::new();
        let (mut wire, mut expected) = (Vec::new(), Vec::new());
        for (i, control) in leading.iter().enumerate() {
            let mut frame = control_frame(control);
            frame.header_mut().mask = Some(mask(!seed, i));
            frame.format(&mut wire).expect("format");
            expected.push(control.clone());
        }
        all.extend(messages);
        let close = close.map(|c| Msg::Close(c.map(|(code, reason)| (code, fit_reason(&reason)))));
        let (body, body_expected) = encode_with_tungstenite(&all, close, seed);
        wire.extend(body);
        expected.extend(body_expected);
        let got = read_with_wschat(wire, already, sizes, expected.len());
        prop_assert_eq!(got, expected);
    }
}

/// The RFC's own examples (section 5.7) through both directions, as a fixed anchor for the
/// generated cases.
#[test]
fn rfc_examples_agree() {
    // "A single-frame unmasked text message" is what wschat writes for "Hello".
    assert_eq!(
        &encode_frame(OpCode::Text, b"Hello")[..],
        [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    // "A fragmented unmasked text message", masked here as a client must.
    let mut frame1 = Frame::message(b"Hel".to_vec(), WireOpCode::Data(Data::Text), false);
    frame1.header_mut().mask = Some([0x37, 0xfa, 0x21, 0x3d]);
    let mut frame2 = Frame::message(b"lo".to_vec(), WireOpCode::Data(Data::Continue), true);
    frame2.header_mut().mask = Some([0x37, 0xfa, 0x21, 0x3d]);
    let mut wire = Vec::new();
    frame1.format(&mut wire).expect("format");
    frame2.format(&mut wire).expect("format");
    assert_eq!(
        read_with_wschat(wire, 0, vec![1], 1),
        [Msg::Text("Hello".into())]
    );
}
