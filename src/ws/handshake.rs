//! The opening handshake (RFC 6455 section 4.2): is this HTTP request a valid WebSocket upgrade,
//! and what is its `Sec-WebSocket-Accept`? Pure functions of the request; the server turns the
//! answer into a `101` or an error response.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use http::header::{HeaderMap, HeaderValue, CONNECTION, HOST, ORIGIN, UPGRADE};
use http::{Method, Request, StatusCode, Version};
use sha1::{Digest, Sha1};

/// The GUID every server appends to the client's key (section 1.3).
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an upgrade was refused. [`HandshakeError::status`] is the one place each becomes an HTTP
/// status; [`HandshakeError::reason`] is the one-line body and the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Section 4.1: "The method of the request MUST be GET".
    NotGet,
    /// Section 4.1: "the HTTP version MUST be at least 1.1".
    OldHttpVersion,
    /// No `Upgrade: websocket` header.
    NoUpgradeHeader,
    /// No `upgrade` token in the `Connection` header.
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13 (section 4.2.2: answer with the versions we do).
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, or not base64 of 16 bytes (section 4.1).
    BadKey,
    /// A browser's `Origin` that is neither this server nor allowed (section 10.2).
    ForbiddenOrigin,
    /// A query parameter the application rejected (e.g. an over-long nickname).
    BadParameter(&'static str),
    /// The server is at its connection limit.
    ServerFull,
    /// The request would create a room and the server is at `--max-rooms`.
    RoomLimit,
    /// The rooms' engine cannot be reached (`--redis`: its pub/sub connection is lost, and the
    /// server is reconnecting).
    EngineDown,
    /// The engine did not load the room in time (`--redis`): refused before the upgrade rather
    /// than upgraded and closed at once.
    RoomUnavailable,
}

impl HandshakeError {
    pub fn status(self) -> StatusCode {
        use HandshakeError::*;
        match self {
            NotGet => StatusCode::METHOD_NOT_ALLOWED,
            UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            ForbiddenOrigin => StatusCode::FORBIDDEN,
            ServerFull | RoomLimit | EngineDown | RoomUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            OldHttpVersion | NoUpgradeHeader | NoConnectionUpgrade | BadKey | BadParameter(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    pub fn reason(self) -> &'static str {
        use HandshakeError::*;
        match self {
            NotGet => "websocket upgrade must use GET",
            OldHttpVersion => "websocket upgrade needs HTTP/1.1",
            NoUpgradeHeader => "missing 'Upgrade: websocket' header",
            NoConnectionUpgrade => "missing 'Connection: upgrade' header",
            UnsupportedVersion => "unsupported Sec-WebSocket-Version (this server speaks 13)",
            BadKey => "Sec-WebSocket-Key must be base64 of 16 bytes",
            ForbiddenOrigin => "origin not allowed",
            BadParameter(reason) => reason,
            ServerFull => "server at its connection limit",
            RoomLimit => "server at its room limit: join an existing room or try later",
            EngineDown => {
                "this server cannot reach redis (reconnecting): try again or another server"
            }
            RoomUnavailable => "the room could not be loaded from redis: try again",
        }
    }
}

/// Checks `req` against section 4.2.1 and returns the `Sec-WebSocket-Accept` value to answer
/// with. Checked in the order a confused client most likely needs to hear about.
pub fn validate<B>(req: &Request<B>) -> Result<String, HandshakeError> {
    if req.method() != Method::GET {
        return Err(HandshakeError::NotGet);
    }
    if req.version() < Version::HTTP_11 {
        return Err(HandshakeError::OldHttpVersion);
    }
    let headers = req.headers();
    // "An |Upgrade| header field containing the value "websocket", treated as an ASCII
    // case-insensitive value." Some clients send a token list, so accept one.
    if !has_token(headers, UPGRADE, "websocket") {
        return Err(HandshakeError::NoUpgradeHeader);
    }
    // "A |Connection| header field that includes the token "Upgrade"" (Firefox sends
    // "keep-alive, Upgrade").
    if !has_token(headers, CONNECTION, "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    if headers
        .get("sec-websocket-version")
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = headers
        .get("sec-websocket-key")
        .ok_or(HandshakeError::BadKey)?
        .as_bytes();
    // "a randomly selected 16-byte value that has been base64-encoded"
    match BASE64.decode(key) {
        Ok(nonce) if nonce.len() == 16 => Ok(accept_key(key)),
        _ => Err(HandshakeError::BadKey),
    }
}

/// `base64(SHA-1(key + GUID))`, section 4.2.2 step 5.4.
///
/// Why it exists (section 1.3): it proves the answer comes from a server that understood the
/// WebSocket handshake, not from an HTTP server or cache that happens to answer `101` or replay an
/// old response. The GUID is a constant no other protocol uses and the key is fresh each time, so
/// only a WebSocket server can produce the right accept for this request. It is not
/// authentication: anyone can compute it.
///
/// Why the key's text is hashed, not the 16 bytes it decodes to: the RFC says so ("the
/// base64-encoded value ... is not to be decoded"), so that both sides compute it from the header
/// exactly as sent. `validate` decodes the key only to check it is 16 bytes; hashing the decoded
/// bytes would produce a different accept that every client rejects (the
/// `accepts_a_valid_upgrade` test, which checks the RFC's own example, then fails).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// Defends against cross-site WebSocket hijacking (section 10.2): a page on another site could
/// otherwise open a socket here with the visitor's cookies. Browsers always send `Origin`;
/// a request without one is from a non-browser client and allowed. Otherwise the origin's
/// host:port must equal the `Host` the request was sent to, or be listed in `allowed`.
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), HandshakeError> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .map_err(|_| HandshakeError::ForbiddenOrigin)?;
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    // Only a page served over http(s) is this server's own: `file://`, `evil://` or an extension's
    // scheme with the same host name is some other document.
    let origin_host = match origin.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest
        }
        _ => return Err(HandshakeError::ForbiddenOrigin),
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    match host {
        Some(host) if host.eq_ignore_ascii_case(origin_host) => Ok(()),
        _ => Err(HandshakeError::ForbiddenOrigin),
    }
}

/// Whether any `name` header holds `token` in its comma-separated list, ignoring ASCII case.
fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade() -> http::request::Builder {
        Request::get("/ws")
            .header("Host", "127.0.0.1:8080")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    #[test]
    fn rfc_example_accept_key() {
        // Section 1.3's worked example.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn accepts_a_valid_upgrade() {
        let req = upgrade().body(()).unwrap();
        assert_eq!(validate(&req).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_token_lists_in_any_case() {
        let req = upgrade()
            .header("Connection", "keep-alive, UPGRADE")
            .body(())
            .unwrap();
        let mut req = req;
        req.headers_mut()
            .insert("upgrade", HeaderValue::from_static("WebSocket"));
        req.headers_mut().insert(
            "connection",
            HeaderValue::from_static("keep-alive, UPGRADE"),
        );
        assert!(validate(&req).is_ok());
    }

    #[test]
    fn rejects_each_violation_with_its_status() {
        let cases: [(Request<()>, HandshakeError, u16); 7] = [
            (
                upgrade().method("POST").body(()).unwrap(),
                HandshakeError::NotGet,
                405,
            ),
            (
                upgrade().version(Version::HTTP_10).body(()).unwrap(),
                HandshakeError::OldHttpVersion,
                400,
            ),
            (
                without(upgrade(), "upgrade"),
                HandshakeError::NoUpgradeHeader,
                400,
            ),
            (
                with(upgrade(), "connection", "keep-alive"),
                HandshakeError::NoConnectionUpgrade,
                400,
            ),
            (
                with(upgrade(), "sec-websocket-version", "8"),
                HandshakeError::UnsupportedVersion,
                426,
            ),
            (
                without(upgrade(), "sec-websocket-key"),
                HandshakeError::BadKey,
                400,
            ),
            (
                with(upgrade(), "sec-websocket-key", "c2hvcnQ="),
                HandshakeError::BadKey,
                400,
            ),
        ];
        for (req, error, status) in cases {
            assert_eq!(validate(&req), Err(error));
            assert_eq!(error.status().as_u16(), status);
        }
    }

    #[test]
    fn origin_must_match_host_or_be_allowed() {
        let headers = |origin: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
            if let Some(o) = origin {
                h.insert(ORIGIN, HeaderValue::from_static(o));
            }
            h
        };
        let allowed = vec!["http://localhost:3000".to_string()];
        assert_eq!(check_origin(&headers(None), &allowed), Ok(()));
        assert_eq!(
            check_origin(&headers(Some("http://127.0.0.1:8080")), &allowed),
            Ok(())
        );
        assert_eq!(
            check_origin(&headers(Some("http://localhost:3000")), &allowed),
            Ok(())
        );
        assert_eq!(
            check_origin(&headers(Some("https://evil.example")), &allowed),
            Err(HandshakeError::ForbiddenOrigin)
        );
        assert_eq!(
            check_origin(&headers(Some("null")), &allowed),
            Err(HandshakeError::ForbiddenOrigin)
        );
        for other_scheme in [
            "evil://127.0.0.1:8080",
            "file://127.0.0.1:8080",
            "ws://127.0.0.1:8080",
        ] {
            assert_eq!(
                check_origin(&headers(Some(other_scheme)), &allowed),
                Err(HandshakeError::ForbiddenOrigin),
                "{other_scheme}"
            );
        }
        assert_eq!(
            check_origin(&headers(Some("HTTPS://127.0.0.1:8080")), &allowed),
            Ok(())
        );
    }

    fn with(
        builder: http::request::Builder,
        name: &'static str,
        value: &'static str,
    ) -> Request<()> {
        let mut req = builder.body(()).unwrap();
        req.headers_mut()
            .insert(name, HeaderValue::from_static(value));
        req
    }

    fn without(builder: http::request::Builder, name: &'static str) -> Request<()> {
        let mut req = builder.body(()).unwrap();
        req.headers_mut().remove(name);
        req
    }
}
