//! Frame headers: bytes to struct and back, with no I/O (RFC 6455 section 5.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! Parsing is resumable: [`FrameHeader::parse`] answers `Ok(None)` until the whole header (2 to 14
//! bytes) is there, and consumes nothing, so the caller simply tries again with more bytes. The
//! payload is not part of this module: the decoder streams it, so a 16 MiB frame never has to sit
//! whole in a read buffer.

use bytes::{BufMut, Bytes, BytesMut};

use super::Error;

/// The largest header: 2 fixed bytes, an 8-byte extended length and a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Control frames carry at most 125 bytes (section 5.5: "All control frames MUST have a payload
/// length of 125 bytes or less").
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// The frame types of section 5.2. `0x3..=0x7` and `0xB..=0xF` are reserved and rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    pub fn from_u8(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Control frames have the high bit of the opcode set (section 5.5).
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// One parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of a message.
    pub fin: bool,
    /// RSV1..3 as the low three bits (RSV1 = `0b100`). Non-zero only with a negotiated extension:
    /// RSV1 marks a message compressed with permessage-deflate ([`super::deflate::RSV1`]).
    pub rsv: u8,
    pub opcode: OpCode,
    /// Present on every client-to-server frame, absent on every server frame.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes, as declared by the peer: check it before trusting it.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the front of `buf`.
    ///
    /// Returns `Ok(None)` if `buf` does not yet hold the whole header, and `Ok(Some((header,
    /// header_len)))` once it does. Checks that need only the header are made here; checks that
    /// need connection state (fragmentation order, size limits) belong to the decoder.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, Error> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        // Section 5.2: "If a nonzero value is received and none of the negotiated extensions
        // defines the meaning of such a nonzero value, the receiving endpoint MUST _Fail the
        // WebSocket Connection_." The only extension wschat negotiates, permessage-deflate,
        // gives RSV1 a meaning (RFC 7692 section 6), on some frames of some connections: RSV1 is
        // the decoder's to judge; RSV2 and RSV3 mean nothing anywhere.
        if rsv & 0b011 != 0 {
            return Err(Error::ReservedBits);
        }
        // "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket
        // Connection_."
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(Error::UnknownOpcode(b0 & 0x0F))?;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            // Section 5.5: control frames "MUST NOT be fragmented" and carry at most 125 bytes,
            // so their length always fits the 7-bit field. Both are known from two bytes.
            if !fin {
                return Err(Error::FragmentedControl);
            }
            if u64::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(Error::ControlTooLong);
            }
        }

        let len_bytes = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Ok(None);
        }
        // Section 5.2: "the minimal number of bytes MUST be used to encode the length, for
        // example, the length of a 124-byte-long string can't be encoded as the sequence 126, 0,
        // 124." So a 16-bit length is at least 126 and a 64-bit one more than 65,535.
        let payload_len = match len7 {
            126 => {
                let len = u64::from(u16::from_be_bytes([buf[2], buf[3]]));
                if len < 126 {
                    return Err(Error::NonMinimalLength);
                }
                len
            }
            127 => {
                let len = u64::from_be_bytes([
                    buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8], buf[9],
                ]);
                // "the most significant bit MUST be 0"
                if len >> 63 != 0 {
                    return Err(Error::BadLength);
                }
                if len <= u64::from(u16::MAX) {
                    return Err(Error::NonMinimalLength);
                }
                len
            }
            n => u64::from(n),
        };
        let mask = masked.then(|| {
            let at = 2 + len_bytes;
            [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
        });
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, header_len)))
    }

    /// Appends this header's wire form to `out`. Uses the shortest length encoding, as section
    /// 5.2 requires ("the minimal number of bytes MUST be used to encode the length").
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8((u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode.as_u8());
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        match self.payload_len {
            n if n < 126 => out.put_u8(mask_bit | n as u8),
            n if n <= u64::from(u16::MAX) => {
                out.put_u8(mask_bit | 126);
                out.put_u16(n as u16);
            }
            n => {
                out.put_u8(mask_bit | 127);
                out.put_u64(n);
            }
        }
        if let Some(mask) = self.mask {
            out.put_slice(&mask);
        }
    }

    /// The header of a whole (FIN), unmasked server frame of `len` payload bytes.
    pub fn server(opcode: OpCode, len: usize) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: len as u64,
        }
    }

    /// The number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            n if n < 126 => 0,
            n if n <= u64::from(u16::MAX) => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }
}

/// Encodes a complete, unfragmented, unmasked server frame into one shared buffer.
///
/// Servers never mask (section 5.1: "A server MUST NOT mask any frames that it sends to the
/// client"). One allocation holds header and payload, so a broadcast frame is a single `Bytes`
/// that every recipient's writer shares.
pub fn encode_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let header = FrameHeader::server(opcode, payload.len());
    let mut out = BytesMut::with_capacity(header.encoded_len() + payload.len());
    header.encode(&mut out);
    out.put_slice(payload);
    out.freeze()
}

/// Close codes this server sends or checks (section 7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;

    /// Whether a peer may send `code` in a close frame. Section 7.4.1 defines 1000-1003 and
    /// 1007-1011 for use on the wire (1004-1006 and 1015 are reserved: "MUST NOT be set as a
    /// status code in a Close control frame by an endpoint"); 1012-1014 were registered with IANA
    /// later; 3000-4999 belong to libraries and applications. Anything else is a protocol error.
    pub fn is_valid_on_wire(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// Encodes a close frame carrying `code` and a UTF-8 `reason`, cut to fit the 125-byte limit
/// on a character boundary.
pub fn encode_close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD as usize - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(OpCode::Close, &payload)
}

/// A masked client frame (FIN set, mask `[1, 2, 3, 4]`), for the connection layer's tests.
#[cfg(test)]
pub(crate) fn masked_client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mask = [1, 2, 3, 4];
    let mut body = payload.to_vec();
    super::mask::apply_mask_naive(&mut body, mask, 0);
    let mut out = Vec::new();
    FrameHeader {
        mask: Some(mask),
        ..FrameHeader::server(opcode, payload.len())
    }
    .encode(&mut out);
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask,
            payload_len: len,
        }
    }

    #[test]
    fn rfc_example_unmasked_hello() {
        // Section 5.7: "A single-frame unmasked text message (contains "Hello")".
        let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, n) = FrameHeader::parse(&wire).unwrap().unwrap();
        assert_eq!((h, n), (header(OpCode::Text, 5, None), 2));
        assert_eq!(&encode_frame(OpCode::Text, b"Hello")[..], &wire);
    }

    #[test]
    fn rfc_example_masked_hello() {
        // Section 5.7: "A single-frame masked text message (contains "Hello")".
        let wire = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = FrameHeader::parse(&wire).unwrap().unwrap();
        assert_eq!(h, header(OpCode::Text, 5, Some([0x37, 0xfa, 0x21, 0x3d])));
        assert_eq!(n, 6);
        let mut payload = wire[n..].to_vec();
        crate::ws::mask::apply_mask(&mut payload, h.mask.unwrap(), 0);
        assert_eq!(payload, b"Hello");
    }

    #[test]
    fn rfc_example_lengths() {
        // Section 5.7: 256 bytes use the 16-bit form, 64 KiB the 64-bit form.
        let (h, n) = FrameHeader::parse(&[0x82, 0x7E, 0x01, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        let wire = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let (h, n) = FrameHeader::parse(&wire).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        for h in [
            header(OpCode::Text, 5, Some([1, 2, 3, 4])),
            header(OpCode::Binary, 300, Some([1, 2, 3, 4])),
            header(OpCode::Binary, 70_000, Some([9, 8, 7, 6])),
            header(OpCode::Ping, 0, None),
        ] {
            let mut wire = Vec::new();
            h.encode(&mut wire);
            assert_eq!(wire.len(), h.encoded_len());
            for cut in 0..wire.len() {
                assert_eq!(
                    FrameHeader::parse(&wire[..cut]).unwrap(),
                    None,
                    "{h:?} cut {cut}"
                );
            }
            assert_eq!(
                FrameHeader::parse(&wire).unwrap(),
                Some((h, wire.len())),
                "{h:?}"
            );
        }
    }

    #[test]
    fn shortest_length_encoding() {
        for (len, header_len) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            assert_eq!(header(OpCode::Binary, len, None).encoded_len(), header_len);
        }
    }

    #[test]
    fn protocol_violations() {
        assert_eq!(FrameHeader::parse(&[0xA1, 0x80]), Err(Error::ReservedBits));
        assert_eq!(FrameHeader::parse(&[0x91, 0x80]), Err(Error::ReservedBits));
        // RSV1 is left to the decoder, which knows whether permessage-deflate was negotiated.
        assert_eq!(
            FrameHeader::parse(&[0xC1, 0x00]).unwrap().unwrap().0.rsv,
            0b100
        );
        assert_eq!(
            FrameHeader::parse(&[0x83, 0x80]),
            Err(Error::UnknownOpcode(3))
        );
        assert_eq!(
            FrameHeader::parse(&[0x8B, 0x80]),
            Err(Error::UnknownOpcode(0xB))
        );
        assert_eq!(
            FrameHeader::parse(&[0x09, 0x80]),
            Err(Error::FragmentedControl)
        );
        assert_eq!(
            FrameHeader::parse(&[0x89, 0xFE]),
            Err(Error::ControlTooLong)
        );
        let huge = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&huge), Err(Error::BadLength));
    }

    #[test]
    fn a_length_not_in_its_shortest_form_is_refused() {
        // The RFC's own example: 124 in the 16-bit field.
        let wire = [0x82, 0x7E, 0, 124];
        assert_eq!(FrameHeader::parse(&wire), Err(Error::NonMinimalLength));
        // 5 in the 64-bit field (found by a hostile-client test), and the edges of each form.
        for (len7, len) in [(127, 5), (127, 125), (127, 65_535), (126, 0), (126, 125)] {
            let mut wire = vec![0x82, 0x80 | len7];
            if len7 == 126 {
                wire.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                wire.extend_from_slice(&(len as u64).to_be_bytes());
            }
            wire.extend_from_slice(&[1, 2, 3, 4]);
            assert_eq!(
                FrameHeader::parse(&wire),
                Err(Error::NonMinimalLength),
                "{len} in the {len7} form"
            );
        }
        // The smallest length of each form is accepted.
        let (h, _) = FrameHeader::parse(&[0x82, 0x7E, 0, 126]).unwrap().unwrap();
        assert_eq!(h.payload_len, 126);
        let (h, _) = FrameHeader::parse(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!(h.payload_len, 65_536);
    }

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let frame = encode_close(1000, &reason);
        let (h, n) = FrameHeader::parse(&frame).unwrap().unwrap();
        assert!(h.payload_len <= 125);
        assert!(std::str::from_utf8(&frame[n + 2..]).is_ok());
    }

    #[test]
    fn close_codes() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1011, 3000, 4999] {
            assert!(close_code::is_valid_on_wire(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(!close_code::is_valid_on_wire(bad), "{bad}");
        }
    }
}
