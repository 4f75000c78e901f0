//! Arbitrary requests into the opening-handshake checks: [`handshake::validate`] (RFC 6455
//! section 4.2.1) and [`handshake::check_origin`] (section 10.2). Header names come from the set
//! these functions look at, so the fuzzer spends its time on values, not on guessing names.
//!
//! Besides "never panics", each answer must be consistent with the request: an accepted upgrade
//! really was a `GET` over HTTP/1.1 with version 13 and its accept key matches its own key; a
//! request without `Origin` or with an allowed one is never refused.
#![no_main]

use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Version};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use wschat::ws::handshake::{self, HandshakeError};

const NAMES: [&str; 8] = [
    "upgrade",
    "connection",
    "sec-websocket-version",
    "sec-websocket-key",
    "host",
    "origin",
    "sec-websocket-protocol",
    "x-anything",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a [u8],
    version: u8,
    /// (index into `NAMES`, value bytes); invalid header values are skipped.
    headers: Vec<(u8, &'a [u8])>,
    allowed_origins: Vec<String>,
}

fn check_error(err: HandshakeError) {
    let status = err.status();
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{err:?}"
    );
    assert!(!err.reason().is_empty());
}

fuzz_target!(|input: Input<'_>| {
    let method = Method::from_bytes(input.method).unwrap_or(Method::GET);
    let version = match input.version % 4 {
        0 => Version::HTTP_09,
        1 => Version::HTTP_10,
        2 => Version::HTTP_11,
        _ => Version::HTTP_2,
    };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.version_mut() = version;
    for (name, value) in &input.headers {
        let name = HeaderName::from_static(NAMES[usize::from(*name) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            request.headers_mut().append(name, value);
        }
    }
    let headers = request.headers();

    match handshake::validate(&request) {
        Ok(accept) => {
            assert_eq!(request.method(), Method::GET);
            assert!(request.version() >= Version::HTTP_11);
            assert_eq!(
                headers.get("sec-websocket-version").map(|v| v.as_bytes()),
                Some(&b"13"[..])
            );
            let key = headers
                .get("sec-websocket-key")
                .expect("accepted without a key");
            assert_eq!(accept, handshake::accept_key(key.as_bytes()));
            assert_eq!(accept.len(), 28, "base64 of a 20-byte SHA-1");
        }
        Err(err) => check_error(err),
    }

    match handshake::check_origin(headers, &input.allowed_origins) {
        Ok(()) => {}
        Err(err) => {
            assert_eq!(err, HandshakeError::ForbiddenOrigin);
            check_error(err);
            let origin = headers.get("origin").expect("refused without an Origin");
            if let Ok(origin) = origin.to_str() {
                assert!(
                    !input
                        .allowed_origins
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(origin)),
                    "refused an allowed origin"
                );
            }
        }
    }
});
