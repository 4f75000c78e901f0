//! Which requests to `/socket.io/` are served: Engine.IO v4 over the WebSocket transport, and
//! nothing else. Pure functions of the query string, checked before the upgrade's own rules, so a
//! client asking for long-polling or protocol v3 hears why in the body Engine.IO servers use:
//! `400` with `{"code":<n>,"message":"..."}` (a client library shows the message in its
//! `connect_error`).
//!
//! Why no long-polling: a polling "connection" is a series of HTTP requests that the server must
//! tie together by session id, buffer for between requests, and expire; it would be a second
//! connection layer beside RFC 6455's, and every browser this server supports speaks WebSocket.
//! Clients pass `transports: ['websocket']` (or `tryAllTransports: true` on socket.io-client
//! 4.8+, which falls back to WebSocket when polling is refused).

/// Why a `/socket.io/` request is refused. The numbers are Engine.IO's own error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `transport=polling` (or any transport but `websocket`): Engine.IO code 0.
    Transport,
    /// A `sid`: the request would upgrade a polling session, and there are none. Code 1.
    SessionId,
    /// `EIO` missing or not 4. Code 5.
    Version,
}

impl Refusal {
    /// The Engine.IO error code.
    pub fn code(self) -> u8 {
        match self {
            Refusal::Transport => 0,
            Refusal::SessionId => 1,
            Refusal::Version => 5,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Transport => {
                "Transport unknown: wschat serves Socket.IO over WebSocket only; connect with transports: ['websocket']"
            }
            Refusal::SessionId => {
                "Session ID unknown: wschat has no polling sessions to upgrade; connect with transports: ['websocket']"
            }
            Refusal::Version => {
                "Unsupported protocol version: wschat speaks Engine.IO 4 (socket.io-client 3+, python-socketio 5+)"
            }
        }
    }

    /// The `400`'s body.
    pub fn body(self) -> String {
        serde_json::json!({ "code": self.code(), "message": self.message() }).to_string()
    }

    /// A short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Transport => "socketio_transport",
            Refusal::SessionId => "socketio_sid",
            Refusal::Version => "socketio_version",
        }
    }
}

/// Checks a `/socket.io/` query string: `EIO=4`, `transport=websocket`, no `sid`. The chat's own
/// parameters (`room`, `name`, `since`) are [`crate::chat::Params`]'s to check.
pub fn check_query(query: &str) -> Result<(), Refusal> {
    let (mut eio, mut transport, mut sid) = (None, None, false);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "EIO" => eio = Some(value),
            "transport" => transport = Some(value),
            "sid" => sid = true,
            _ => {}
        }
    }
    if eio.as_deref() != Some("4") {
        return Err(Refusal::Version);
    }
    if transport.as_deref() != Some("websocket") {
        return Err(Refusal::Transport);
    }
    if sid {
        return Err(Refusal::SessionId);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_v4_is_served() {
        assert_eq!(check_query("EIO=4&transport=websocket"), Ok(()));
        assert_eq!(
            check_query("room=r1&EIO=4&name=ann&transport=websocket&t=x"),
            Ok(())
        );
    }

    #[test]
    fn everything_else_is_refused_with_its_reason() {
        for (query, refusal) in [
            ("EIO=4&transport=polling&t=N8hyd6w", Refusal::Transport),
            ("EIO=4", Refusal::Transport),
            ("EIO=4&transport=webtransport", Refusal::Transport),
            ("EIO=3&transport=websocket", Refusal::Version),
            ("EIO=3&transport=polling", Refusal::Version),
            ("transport=websocket", Refusal::Version),
            ("EIO=4&transport=websocket&sid=abc", Refusal::SessionId),
        ] {
            assert_eq!(check_query(query), Err(refusal), "{query}");
        }
        let body: serde_json::Value = serde_json::from_str(&Refusal::Version.body()).unwrap();
        assert_eq!(body["code"], 5);
        assert!(body["message"].as_str().unwrap().contains("Engine.IO 4"));
    }
}
