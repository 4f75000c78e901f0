//! `Sec-WebSocket-Extensions` negotiation (RFC 6455 section 9.1, RFC 7692 section 7): which of the
//! client's offers of `permessage-deflate` wschat accepts, and what it answers. Pure functions of
//! the request's headers, like [`super::handshake`]; the route adds the answer to the `101`.
//!
//! What wschat accepts is deliberately narrow, so that compression costs an idle connection
//! nothing and a broadcast one compression for every receiver:
//! - **No context takeover, both ways.** The answer always carries `server_no_context_takeover`
//!   (section 7.1.1.1: a server may include it "even if the extension negotiation offer being
//!   accepted by the response doesn't include" it) and `client_no_context_takeover` (section
//!   7.1.1.2: a server may include it in any response, and the client then "MUST NOT use context
//!   takeover"). So every message is compressed on its own: the same event compresses to the same
//!   bytes for every receiver, and no connection keeps a compressor or a decompressor between
//!   messages. Rejected: context takeover (better ratios on a chatty connection, but a 32 KiB
//!   window and a compressor state per connection, and one compression per receiver, which is the
//!   memory and CPU blow-up other servers turned compression off for).
//! - **`server_max_window_bits`** in an offer is a promise asked of us: we accept it, answering
//!   with the same value (section 7.1.2.1), and then send that connection only uncompressed
//!   messages unless the value is 15, because the shared compressed frames are made with the full
//!   window. Sending a message uncompressed is always allowed (section 6: a sender "MAY" compress),
//!   so this keeps the promise at no cost to anyone else.
//! - **`client_max_window_bits`** in an offer says the client could limit its own window if asked;
//!   our inflater takes any window up to 15, so we never ask (and section 7.1.2.2 forbids
//!   answering it to an offer without it).
//!
//! An offer we cannot accept (an unknown or repeated parameter, a bad value) is declined: we try
//! the client's next offer, and with none left the response carries no extension, which the client
//! takes as "no compression" (section 9.1). A malformed header is treated the same way: the
//! upgrade itself still succeeds.

/// The extension this module negotiates (RFC 7692 section 7).
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// The LZ77 window, in bits, of everything wschat compresses (32 KiB, DEFLATE's largest).
pub const FULL_WINDOW_BITS: u8 = 15;

/// A `permessage-deflate` agreement: what a connection may send and must accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deflate {
    /// The largest window the client allowed our compressor (`server_max_window_bits`), 8 to 15;
    /// 15 when the offer did not limit it.
    pub server_max_window_bits: u8,
    /// Whether the client's offer carried `server_max_window_bits`, which the answer must repeat.
    pub window_in_offer: bool,
}

impl Deflate {
    /// Whether frames compressed with the full window may be sent on this connection (see the
    /// module docs: a client that limits our window gets uncompressed messages instead).
    pub fn compresses(&self) -> bool {
        self.server_max_window_bits == FULL_WINDOW_BITS
    }

    /// The `Sec-WebSocket-Extensions` value of the `101`.
    pub fn response(&self) -> String {
        let mut answer =
            format!("{PERMESSAGE_DEFLATE}; server_no_context_takeover; client_no_context_takeover");
        if self.window_in_offer {
            answer.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        answer
    }
}

/// Picks the first `permessage-deflate` offer wschat can accept from every
/// `Sec-WebSocket-Extensions` header of a request (section 9.1: several headers are one list, in
/// order). `None`: no offer, none acceptable, or a header that does not parse.
pub fn negotiate<'a>(headers: impl IntoIterator<Item = &'a [u8]>) -> Option<Deflate> {
    for header in headers {
        // Header values are visible ASCII in practice; anything else is not an offer we can read.
        let value = std::str::from_utf8(header).ok()?;
        let offers = parse(value)?;
        let accepted = offers
            .iter()
            .filter(|offer| offer.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
            .find_map(accept);
        if accepted.is_some() {
            return accepted;
        }
    }
    None
}

/// One extension in a header: its name and its parameters, values unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub name: String,
    pub params: Vec<(String, Option<String>)>,
}

/// Section 7.1: accepts one `permessage-deflate` offer, or declines it (`None`).
fn accept(offer: &Offer) -> Option<Deflate> {
    let mut deflate = Deflate {
        server_max_window_bits: FULL_WINDOW_BITS,
        window_in_offer: false,
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in &offer.params {
        let name = name.to_ascii_lowercase();
        // Section 7: "A server MUST decline an extension negotiation offer for this extension if
        // ... The negotiation offer contains multiple extension parameters with the same name."
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            // Section 7.1.1: these two "MUST NOT" have a value.
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            // Section 7.1.2.1: the value is required and 8 to 15.
            ("server_max_window_bits", Some(value)) => {
                deflate.server_max_window_bits = window_bits(value)?;
                deflate.window_in_offer = true;
            }
            // Section 7.1.2.2: the value is optional; if present, 8 to 15.
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(value)) => {
                window_bits(value)?;
            }
            // "... contains an extension parameter not defined for use in an offer", or a
            // defined one with a value it may not have: decline.
            _ => return None,
        }
        seen.push(name);
    }
    Some(deflate)
}

/// Section 7.1.2.1: `1*DIGIT` of the value 8 to 15, without leading zeros (`%x38-39 / "1"
/// %x30-35`).
fn window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// Parses a `Sec-WebSocket-Extensions` value (section 9.1):
///
/// ```text
/// extension-list  = 1#extension
/// extension       = extension-token *( ";" extension-param )
/// extension-param = token [ "=" (token | quoted-string) ]
/// ```
///
/// with optional whitespace around the separators, and empty list elements skipped as HTTP's
/// `#rule` allows. `None` if the value breaks the grammar.
pub fn parse(value: &str) -> Option<Vec<Offer>> {
    let mut p = Parser {
        rest: value.as_bytes(),
    };
    let mut offers = Vec::new();
    loop {
        p.skip_space();
        match p.peek() {
            None => return Some(offers),
            Some(b',') => {
                p.rest = &p.rest[1..];
                continue;
            }
            Some(_) => {}
        }
        let name = p.token()?;
        let mut params = Vec::new();
        loop {
            p.skip_space();
            match p.peek() {
                None | Some(b',') => break,
                Some(b';') => p.rest = &p.rest[1..],
                Some(_) => return None,
            }
            p.skip_space();
            let param = p.token()?;
            p.skip_space();
            let value = if p.peek() == Some(b'=') {
                p.rest = &p.rest[1..];
                p.skip_space();
                Some(if p.peek() == Some(b'"') {
                    p.quoted()?
                } else {
                    p.token()?
                })
            } else {
                None
            };
            params.push((param, value));
        }
        offers.push(Offer { name, params });
    }
}

struct Parser<'a> {
    rest: &'a [u8],
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t') = self.peek() {
            self.rest = &self.rest[1..];
        }
    }

    /// RFC 2616 `token`: one or more characters that are neither controls nor separators.
    fn token(&mut self) -> Option<String> {
        let len = self.rest.iter().take_while(|&&b| is_tchar(b)).count();
        if len == 0 {
            return None;
        }
        let (token, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(String::from_utf8_lossy(token).into_owned())
    }

    /// RFC 2616 `quoted-string`, unescaped: `"` ... `"`, where `\` quotes the next character.
    /// Section 7 of RFC 7692: a value "after quoted-string unescaping" must still fit its rule, so
    /// `server_max_window_bits="10"` is 10.
    fn quoted(&mut self) -> Option<String> {
        let mut out = Vec::new();
        let mut bytes = self.rest.iter().enumerate().skip(1);
        while let Some((i, &b)) = bytes.next() {
            match b {
                b'"' => {
                    self.rest = &self.rest[i + 1..];
                    return String::from_utf8(out).ok();
                }
                b'\\' => out.push(*bytes.next()?.1),
                _ if b.is_ascii_control() && b != b'\t' => return None,
                _ => out.push(b),
            }
        }
        None // no closing quote
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(value: &str) -> Option<Deflate> {
        negotiate([value.as_bytes()])
    }

    const FULL: Deflate = Deflate {
        server_max_window_bits: 15,
        window_in_offer: false,
    };

    #[test]
    fn the_rfc_examples() {
        // RFC 7692 section 7.1.3 and 7.1.2's examples of offers.
        assert_eq!(offer("permessage-deflate"), Some(FULL));
        assert_eq!(
            offer("permessage-deflate; client_max_window_bits"),
            Some(FULL)
        );
        assert_eq!(
            offer("permessage-deflate; client_max_window_bits; server_max_window_bits=10"),
            Some(Deflate {
                server_max_window_bits: 10,
                window_in_offer: true
            })
        );
        // Two offers, the first one preferred: "permessage-deflate; server_max_window_bits=10,
        // permessage-deflate" (section 5.1's example of a fallback).
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=10, permessage-deflate"),
            Some(Deflate {
                server_max_window_bits: 10,
                window_in_offer: true
            })
        );
    }

    #[test]
    fn what_chromium_and_firefox_send() {
        assert_eq!(
            offer("permessage-deflate; client_max_window_bits"),
            Some(FULL)
        );
        let answer = FULL.response();
        assert_eq!(
            answer,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert!(FULL.compresses());
    }

    #[test]
    fn the_answer_repeats_a_window_limit_and_then_sends_uncompressed() {
        let limited = offer("permessage-deflate; server_max_window_bits=9").unwrap();
        assert_eq!(
            limited.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=9"
        );
        assert!(!limited.compresses());
        let full = offer("permessage-deflate; server_max_window_bits=15").unwrap();
        assert!(full.response().ends_with("server_max_window_bits=15"));
        assert!(full.compresses());
    }

    #[test]
    fn quoting_case_and_whitespace() {
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=\"10\""),
            Some(Deflate {
                server_max_window_bits: 10,
                window_in_offer: true
            })
        );
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=\"1\\0\""),
            Some(Deflate {
                server_max_window_bits: 10,
                window_in_offer: true
            })
        );
        assert_eq!(
            offer(
                "  Permessage-Deflate ;Client_No_Context_Takeover\t;  SERVER_NO_CONTEXT_TAKEOVER "
            ),
            Some(FULL)
        );
    }

    #[test]
    fn several_extensions_and_headers() {
        assert_eq!(
            offer("x-webkit-deflate-frame, permessage-deflate"),
            Some(FULL)
        );
        assert_eq!(offer("foo; bar=\"a,b;c\", permessage-deflate"), Some(FULL));
        assert_eq!(offer("foo, bar"), None);
        // Two header lines are one list.
        let headers: [&[u8]; 2] = [b"permessage-deflate; bogus", b"permessage-deflate"];
        assert_eq!(negotiate(headers), Some(FULL));
        assert_eq!(negotiate(std::iter::empty()), None);
    }

    #[test]
    fn an_offer_it_cannot_accept_is_declined_and_the_next_tried() {
        for bad in [
            "permessage-deflate; bogus",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; client_max_window_bits=8.0",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        ] {
            assert_eq!(offer(bad), None, "{bad}");
            assert_eq!(
                offer(&format!("{bad}, permessage-deflate")),
                Some(FULL),
                "{bad} then a plain offer"
            );
        }
    }

    #[test]
    fn malformed_headers_decline_everything() {
        for bad in [
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate;; x",
            "permessage-deflate; =10",
            "permessage-deflate x",
            "\"permessage-deflate\"",
            "permessage-deflate; server_max_window_bits=10 11",
        ] {
            assert_eq!(offer(bad), None, "{bad}");
        }
        assert_eq!(negotiate([&b"permessage-deflate\xff"[..]]), None);
    }

    #[test]
    fn parse_keeps_names_and_unquoted_values() {
        assert_eq!(
            parse("a; b=1; c=\"x y\", d").unwrap(),
            vec![
                Offer {
                    name: "a".into(),
                    params: vec![
                        ("b".into(), Some("1".into())),
                        ("c".into(), Some("x y".into()))
                    ]
                },
                Offer {
                    name: "d".into(),
                    params: vec![]
                }
            ]
        );
        assert_eq!(parse(" , ,").unwrap(), vec![]);
    }
}
