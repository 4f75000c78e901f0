//! Arbitrary `Sec-WebSocket-Extensions` values into [`negotiate`], the permessage-deflate
//! negotiation (RFC 7692 section 7).
//!
//! Besides "never panics": an accepted offer is answered with both no-context-takeover
//! parameters, never with `client_max_window_bits` (which the client may not have offered), and
//! with `server_max_window_bits` only if the offer limited it, to a value from 8 to 15; and the
//! answer is itself a well-formed extension list whose one offer `negotiate` accepts the same way.
//!
//! Input layout: the header value's bytes, split into several header lines at each `\n`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::ws::extensions::{negotiate, parse};

fuzz_target!(|input: &[u8]| {
    let headers: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let Some(deflate) = negotiate(headers.iter().copied()) else {
        return;
    };
    assert!((8..=15).contains(&deflate.server_max_window_bits));
    let answer = deflate.response();
    assert!(answer.contains("server_no_context_takeover"));
    assert!(answer.contains("client_no_context_takeover"));
    assert!(!answer.contains("client_max_window_bits"));
    assert_eq!(
        answer.contains("server_max_window_bits"),
        deflate.window_in_offer
    );
    assert_eq!(parse(&answer).map(|offers| offers.len()), Some(1));
    assert_eq!(negotiate([answer.as_bytes()]), Some(deflate));
});
