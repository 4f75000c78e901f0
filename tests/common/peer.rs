//! A well-behaved chat client that reads on its own task, for tests where a room must keep
//! working while something else goes wrong.
//!
//! Reading on a task means it answers the server's pings at once (tokio-tungstenite replies while
//! it reads) however long the test spends elsewhere, so only the client a test means to time out
//! ever does. And it checks as it goes that it sees every chat message of its room: each message
//! id must follow the last one it saw (the welcome's `last_id` to start with), and a `lagged`
//! notice fails the test. Every wait is bounded by [`WAIT`], only so that a broken server fails a
//! test instead of hanging it.

use std::net::SocketAddr;

use futures_util::stream::{SplitSink, StreamExt};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::TestServer;

pub use super::WAIT;

/// `fut`, or a panic naming `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

impl TestServer {
    /// Connects a [`Peer`] to `room` as `name`; returns it and its welcome.
    pub async fn peer(&self, room: &str, name: &str) -> (Peer, Value) {
        Peer::connect(self.addr, &format!("/ws?room={room}&name={name}"), &[]).await
    }
}

type Ws = WebSocketStream<TcpStream>;

/// What a [`Peer`]'s reader task saw.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame, parsed as JSON.
    Event(Value),
    Binary(Vec<u8>),
    /// The server's close frame and its code.
    Close(Option<u16>),
    /// The stream ended without a close frame, or failed.
    Ended(String),
}

pub struct Peer {
    pub name: String,
    sink: SplitSink<Ws, Message>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    reader: JoinHandle<()>,
    /// Id of the last chat message this client saw; the next must be one more.
    last_id: u64,
}

impl Peer {
    /// Upgrades `path` with `extra_headers` added to the request; returns the client and its
    /// first event (the welcome, on `/ws`). Panics if the upgrade is refused.
    pub async fn connect(
        addr: SocketAddr,
        path: &str,
        extra_headers: &[(&'static str, &str)],
    ) -> (Peer, Value) {
        let mut request = format!("ws://{addr}{path}")
            .into_client_request()
            .expect("a valid URL");
        for (name, value) in extra_headers {
            request
                .headers_mut()
                .insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (ws, _) = within(
            "the upgrade",
            tokio_tungstenite::client_async(request, stream),
        )
        .await
        .unwrap_or_else(|err| panic!("upgrade of {path} refused: {err}"));
        let (sink, mut stream) = ws.split();
        let (tx, incoming) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(next) = stream.next().await {
                let item = match next {
                    Ok(Message::Text(text)) => match serde_json::from_str(&text) {
                        Ok(value) => Incoming::Event(value),
                        Err(_) => Incoming::Ended(format!("a text frame that is not JSON: {text}")),
                    },
                    Ok(Message::Binary(data)) => Incoming::Binary(data.to_vec()),
                    Ok(Message::Close(frame)) => Incoming::Close(frame.map(|f| u16::from(f.code))),
                    Ok(_) => continue, // ping and pong: tungstenite answers pings itself
                    Err(err) => Incoming::Ended(err.to_string()),
                };
                let end = matches!(item, Incoming::Ended(_));
                if tx.send(item).is_err() || end {
                    return;
                }
            }
            let _ = tx.send(Incoming::Ended("stream ended".into()));
        });
        let name = query_value(path, "name").unwrap_or_default();
        let mut client = Peer {
            name,
            sink,
            incoming,
            reader,
            last_id: 0,
        };
        let first = match client.next().await {
            Incoming::Event(first) => first,
            other => panic!("expected a first event on {path}, got {other:?}"),
        };
        if first["type"] == "welcome" {
            client.last_id = first["last_id"].as_u64().expect("welcome.last_id");
            if let Some(you) = first["you"].as_str() {
                client.name = you.to_owned();
            }
        }
        (client, first)
    }

    /// The next thing the server sent, whatever it is.
    pub async fn next(&mut self) -> Incoming {
        let what = format!("the next frame for {}", self.name);
        within(&what, self.incoming.recv())
            .await
            .unwrap_or_else(|| Incoming::Ended("reader task gone".into()))
    }

    /// The next event; panics on a close, the end of the stream, a gap in message ids or a
    /// `lagged` notice.
    pub async fn event(&mut self) -> Value {
        match self.next().await {
            Incoming::Event(event) => {
                match event["type"].as_str() {
                    Some("message") => {
                        let id = event["id"].as_u64().expect("message.id");
                        assert_eq!(
                            id,
                            self.last_id + 1,
                            "{} missed a message (saw id {id} after {}): {event}",
                            self.name,
                            self.last_id
                        );
                        self.last_id = id;
                    }
                    Some("lagged") => panic!("{} lagged: {event}", self.name),
                    _ => {}
                }
                event
            }
            other => panic!("{} expected an event, got {other:?}", self.name),
        }
    }

    /// The next event of type `kind`, skipping (and still checking) the others.
    pub async fn event_of(&mut self, kind: &str) -> Value {
        for _ in 0..100_000 {
            let event = self.event().await;
            if event["type"] == kind {
                return event;
            }
        }
        panic!("{} never got a {kind} event", self.name);
    }

    /// The next chat message; asserts who sent it and what it says.
    pub async fn expect_message(&mut self, from: &str, text: &str) -> Value {
        let message = self.event_of("message").await;
        assert_eq!(
            (message["from"].as_str(), message["text"].as_str()),
            (Some(from), Some(text)),
            "{} got an unexpected message: {message}",
            self.name
        );
        message
    }

    /// Waits for `leave` of `name` (skipping other events, still checking message ids).
    pub async fn expect_leave(&mut self, name: &str) {
        for _ in 0..100_000 {
            let event = self.event_of("leave").await;
            if event["name"] == name {
                return;
            }
        }
    }

    /// Reads until the server's close frame (skipping events); returns its code.
    pub async fn closed(&mut self) -> Option<u16> {
        for _ in 0..100_000 {
            match self.next().await {
                Incoming::Close(code) => return code,
                Incoming::Ended(why) => panic!("{}: no close frame ({why})", self.name),
                _ => {}
            }
        }
        panic!("{} never saw a close frame", self.name);
    }

    /// Sends one frame.
    pub async fn send(&mut self, message: Message) {
        within("a send", self.sink.send(message))
            .await
            .expect("send");
    }

    /// Joins `room` as `name` (any text: it is URL-encoded here). For tests that need only the
    /// client, not its welcome.
    pub async fn join(addr: SocketAddr, room: &str, name: &str) -> Peer {
        let name: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
        Peer::connect(addr, &format!("/ws?room={room}&name={name}"), &[])
            .await
            .0
    }

    /// Tells the room this client is typing.
    pub async fn typing(&mut self) {
        self.send(Message::text(json!({"type": "typing"}).to_string()))
            .await;
    }

    /// Reads events until this client's own message `text` comes back: from then on the server
    /// has stored it in the room's history.
    pub async fn wait_echo(&mut self, text: &str) {
        let me = self.name.clone();
        for _ in 0..100_000 {
            let message = self.event_of("message").await;
            if message["from"] == me.as_str() && message["text"] == text {
                return;
            }
        }
        panic!("{} never saw its own {text:?}", self.name);
    }

    /// Posts a chat message.
    pub async fn say(&mut self, text: &str) {
        let request = json!({"type": "message", "text": text}).to_string();
        self.send(Message::text(request)).await;
    }

    /// Closes cleanly (code 1000) and waits for the server to answer.
    pub async fn close(mut self) {
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = self.sink.send(Message::Close(Some(normal))).await;
        let _ = self.closed().await;
        self.reader.abort();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// `sender` says `text`; it and every one of `others` must receive exactly that as their next
/// chat message. The proof that a room still works after something went wrong in it.
pub async fn chat_works(sender: &mut Peer, others: &mut [&mut Peer], text: &str) {
    sender.say(text).await;
    let from = sender.name.clone();
    sender.expect_message(&from, text).await;
    for other in others.iter_mut() {
        other.expect_message(&from, text).await;
    }
}

fn query_value(path: &str, key: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}
