//! Arbitrary text frames into [`parse_request`], the chat's reading of what a client sends.
//!
//! Besides "never panics": a message that is accepted is non-blank and within the length limit;
//! a frame that does not start with `{` is a message of exactly that text; and an accepted text
//! survives the server's own JSON encoding unchanged, so every recipient reads what was sent.
//!
//! Input layout: `[max_len_hi, max_len_lo, frame...]` (the frame must be UTF-8, as the reader
//! guarantees).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::chat::protocol::{
    parse_request, ChatMessage, ClientRequest, RequestError, ServerEvent,
};

fuzz_target!(|input: &[u8]| {
    let [hi, lo, frame @ ..] = input else {
        return;
    };
    let Ok(frame) = std::str::from_utf8(frame) else {
        return;
    };
    let max_text_len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let result = parse_request(frame, max_text_len);

    if !frame.trim_start().starts_with('{') {
        let expected = if frame.trim().is_empty() {
            Err(RequestError::EmptyText)
        } else if frame.len() > max_text_len {
            Err(RequestError::TextTooLong)
        } else {
            Ok(ClientRequest::Message(frame.into()))
        };
        assert_eq!(result, expected, "plain text is a message of that text");
    }

    match result {
        Ok(ClientRequest::Message(text)) => {
            assert!(!text.trim().is_empty(), "blank message accepted");
            assert!(text.len() <= max_text_len, "over-long message accepted");
            let json = ServerEvent::Message(ChatMessage {
                id: 1,
                room: "lobby",
                from: "fuzz",
                text: &text,
                ts: 0,
            })
            .to_json();
            let value: serde_json::Value =
                serde_json::from_str(&json).expect("the server's JSON parses");
            assert_eq!(value["text"].as_str(), Some(&*text));
        }
        Ok(ClientRequest::Typing) => {}
        Err(err) => {
            assert!(!err.code().is_empty() && !err.message().is_empty());
        }
    }
});
