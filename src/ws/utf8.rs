//! UTF-8 checked as a text message arrives, in pieces that may cut a character in two.
//!
//! RFC 6455 section 8.1: an endpoint MUST _Fail the WebSocket Connection_ "when an endpoint is to
//! interpret a byte stream as UTF-8 but finds that the byte stream is not, in fact, a valid UTF-8
//! stream". Checking each piece as it arrives, rather than the whole message at its end, fails a
//! bad message at its first bad byte (Autobahn's "fail fast" cases 6.4.*), and lets the decoder
//! hand the message over without checking it again.
//!
//! The piece-by-piece bookkeeping is this module's own: where the last complete character of a
//! piece ends, and whether the 1 to 3 bytes after it can still become a character. The bulk in
//! between goes to [`simdutf8`]'s validator. Chosen by measurement (`cargo bench --bench frame --
//! utf8`, table in benches/README.md): on chat-like text (mostly ASCII, some 2-byte characters)
//! std's `from_utf8` runs at about 1 GB/s because its ASCII shortcut rarely applies, the SIMD one
//! at memory speed; it was 90 % of decoding a large text frame. Rejected: our own SIMD code
//! (unsafe intrinsics per architecture, for what a well-kept crate already does and tests).
//!
//! [`check_simple`] is the same contract on std's validator alone, one call per piece: the
//! definition the fast version is tested against.

use super::Error;

/// How far a text message's bytes are known to be valid UTF-8.
///
/// `Default` is the start of a message: nothing checked yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Progress {
    /// `data[..checked]` is valid UTF-8 and ends on a character boundary.
    checked: usize,
}

impl Utf8Progress {
    /// Checks the bytes of `data` past those already checked. `last`: the message is complete, so
    /// a character cut off at the end is an error rather than a piece still to come.
    ///
    /// `Ok` means every byte checked so far is valid, up to at most 3 bytes at the end that begin
    /// a character the next piece may complete; with `last`, `Ok` means all of `data` is valid.
    pub fn check(&mut self, data: &[u8], last: bool) -> Result<(), Error> {
        let new = &data[self.checked..];
        let complete = if last {
            new.len()
        } else {
            complete_prefix_len(new)
        };
        let (body, tail) = new.split_at(complete);
        if simdutf8::basic::from_utf8(body).is_err() {
            return Err(Error::InvalidUtf8);
        }
        // The tail starts a character that the next piece may complete. It fails now if no byte
        // could complete it (an overlong or surrogate start such as E0 80 or ED A0): std's
        // validator calls that an error with a length, and an unfinished good start one without.
        if !tail.is_empty() {
            match std::str::from_utf8(tail) {
                Err(err) if err.error_len().is_none() && err.valid_up_to() == 0 => {}
                _ => return Err(Error::InvalidUtf8),
            }
        }
        self.checked += complete;
        Ok(())
    }

    /// Whether every byte of a `len`-byte message has been checked (after `check(.., true)`).
    pub fn is_complete(&self, len: usize) -> bool {
        self.checked == len
    }
}

/// The length of `bytes` without a character cut off at its end: the start of the last
/// character if that character needs more bytes than are left, else the whole length. Looks at
/// the last 3 bytes only, since no character is longer than 4. A byte that cannot start a
/// character counts as complete here, so the validator sees it and fails.
fn complete_prefix_len(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(3) {
        let byte = bytes[len - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: the character started further back
        }
        let width = match byte {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        return if width > back { len - back } else { len };
    }
    len
}

/// The definition, on std's validator: validates everything not yet checked in one call, and
/// uses its "unexpected end" answer for a character cut off at the end. The same contract as
/// [`Utf8Progress::check`], with `checked` as the progress.
pub fn check_simple(data: &[u8], checked: &mut usize, last: bool) -> Result<(), Error> {
    match std::str::from_utf8(&data[*checked..]) {
        Ok(_) => {
            *checked = data.len();
            Ok(())
        }
        // `error_len() == None`: the input ends inside a character that may yet be completed.
        Err(err) if err.error_len().is_none() && !last => {
            *checked += err.valid_up_to();
            Ok(())
        }
        Err(_) => Err(Error::InvalidUtf8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in pieces ending at `cuts`, to both versions; returns where each failed (the
    /// piece index) or `None` if both accepted the whole.
    fn run_both(data: &[u8], cuts: &[usize]) -> (Option<usize>, Option<usize>) {
        let mut fast = Utf8Progress::default();
        let mut simple = 0;
        let (mut fast_fail, mut simple_fail) = (None, None);
        let ends: Vec<usize> = cuts.iter().copied().chain([data.len()]).collect();
        for (i, &end) in ends.iter().enumerate() {
            let last = i == ends.len() - 1;
            if fast_fail.is_none() && fast.check(&data[..end], last).is_err() {
                fast_fail = Some(i);
            }
            if simple_fail.is_none() && check_simple(&data[..end], &mut simple, last).is_err() {
                simple_fail = Some(i);
            }
        }
        if fast_fail.is_none() {
            assert!(fast.is_complete(data.len()));
        }
        (fast_fail, simple_fail)
    }

    #[test]
    fn valid_text_split_at_every_byte() {
        let text = "aé€😀z".repeat(3);
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(run_both(bytes, &[cut]), (None, None), "cut {cut}");
            for cut2 in cut..=bytes.len() {
                assert_eq!(
                    run_both(bytes, &[cut, cut2]),
                    (None, None),
                    "cuts {cut} {cut2}"
                );
            }
        }
    }

    #[test]
    fn fails_at_the_piece_that_holds_the_first_bad_byte() {
        // A byte that never starts a character fails its own piece, not the last one.
        assert_eq!(run_both(b"ok \xFF more", &[4, 6]), (Some(0), Some(0)));
        // A start that no continuation can rescue (E0 80 is overlong, ED A0 a surrogate) fails
        // as soon as its second byte is seen, even though the character is unfinished.
        assert_eq!(run_both(b"ab\xE0\x80", &[4]), (Some(0), Some(0)));
        assert_eq!(run_both(b"ab\xED\xA0", &[4]), (Some(0), Some(0)));
        // A good start waits for the next piece, and fails only if the message ends there.
        assert_eq!(run_both("ab€".as_bytes(), &[3]), (None, None));
        assert_eq!(run_both(b"ab\xE2\x82", &[4]), (Some(1), Some(1)));
    }

    #[test]
    fn agrees_with_the_definition_on_random_bytes_and_cuts() {
        // A small xorshift generator: deterministic, so a failure replays.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Bytes drawn mostly from the edges of UTF-8's ranges, where validators go wrong.
        const EDGES: [u8; 16] = [
            b'a', b' ', 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED,
            0xF0, 0xF4,
        ];
        let samples = ["héllo", "€", "😀", "\u{10FFFF}", "\u{FFFD}", "\u{7FF}"];
        for _ in 0..20_000 {
            let mut data = Vec::new();
            let parts = next() % 8;
            for _ in 0..parts {
                match next() % 4 {
                    0 => data.push(EDGES[(next() % 16) as usize]),
                    1 => data.push((next() % 256) as u8),
                    _ => data.extend_from_slice(samples[(next() % 6) as usize].as_bytes()),
                }
            }
            let mut cuts: Vec<usize> = (0..next() % 4)
                .map(|_| (next() as usize) % (data.len() + 1))
                .collect();
            cuts.sort_unstable();
            let (fast, simple) = run_both(&data, &cuts);
            assert_eq!(fast, simple, "{data:x?} cut at {cuts:?}");
            assert_eq!(
                fast.is_none(),
                std::str::from_utf8(&data).is_ok(),
                "{data:x?}"
            );
        }
    }

    #[test]
    fn long_valid_text_in_large_pieces() {
        // Long enough for the SIMD path; cut inside a 4-byte character.
        let text = "Grüße aus Köln 😀 ".repeat(500);
        let bytes = text.as_bytes();
        let emoji = text.match_indices('😀').map(|(at, _)| at);
        let cut = emoji.into_iter().find(|&at| at > 4000).unwrap() + 2;
        assert_eq!(run_both(bytes, &[cut]), (None, None));
        let mut bad = bytes.to_vec();
        bad[5000] = 0xFF;
        assert_eq!(run_both(&bad, &[6000]), (Some(0), Some(0)));
    }
}
