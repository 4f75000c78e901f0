//! Everything that can end a WebSocket connection, and the close code each one earns.

use std::fmt;
use std::io;

use super::frame::close_code;

/// Why a connection failed. One variant per protocol violation, so a test (or a log line) says
/// exactly which rule the peer broke; [`Error::close_code`] maps each to the code sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// RSV1-3 set without a negotiated extension (section 5.2); RSV1 on a connection that did
    /// not negotiate permessage-deflate.
    ReservedBits,
    /// RSV1 on a control frame or a continuation frame: RFC 7692 section 6.1, "An endpoint MUST
    /// NOT set the "Per-Message Compressed" bit of control frames and non-first fragments of a
    /// data message."
    MisplacedCompressedBit,
    /// A compressed message that is not valid DEFLATE (RFC 7692 section 7.2.2 leaves the code
    /// open; 1007, "data within a message that was not consistent with the type of the message",
    /// is the one for a payload that cannot be read, as for bad UTF-8).
    BadCompressedData,
    /// Opcode 0x3-0x7 or 0xB-0xF (section 5.2).
    UnknownOpcode(u8),
    /// A control frame without FIN (section 5.5).
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload (section 5.5).
    ControlTooLong,
    /// A 64-bit length with its most significant bit set (section 5.2).
    BadLength,
    /// A length in a longer form than it needs, such as 5 in the 64-bit field (section 5.2:
    /// "the minimal number of bytes MUST be used to encode the length").
    NonMinimalLength,
    /// A client frame without a mask (section 5.1: the server "MUST close the connection").
    UnmaskedFrame,
    /// A continuation frame with no message to continue (section 5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished (section 5.4).
    ExpectedContinuation,
    /// A close frame with a 1-byte payload (section 5.5.1: a body starts with a 2-byte code).
    BadClosePayload,
    /// A close code that may not be sent on the wire (section 7.4).
    InvalidCloseCode(u16),
    /// A text message or close reason that is not UTF-8 (section 8.1).
    InvalidUtf8,
    /// A message or frame over the configured size limit (section 7.4.1, code 1009).
    MessageTooBig,
    /// The peer closed TCP (or it broke) without a close handshake.
    Io(io::ErrorKind),
}

impl Error {
    /// The close code to send for this error, or `None` when the socket is already gone.
    pub fn close_code(self) -> Option<u16> {
        use Error::*;
        Some(match self {
            ReservedBits
            | MisplacedCompressedBit
            | UnknownOpcode(_)
            | FragmentedControl
            | ControlTooLong
            | BadLength
            | NonMinimalLength
            | UnmaskedFrame
            | UnexpectedContinuation
            | ExpectedContinuation
            | BadClosePayload
            | InvalidCloseCode(_) => close_code::PROTOCOL_ERROR,
            InvalidUtf8 | BadCompressedData => close_code::INVALID_PAYLOAD,
            MessageTooBig => close_code::MESSAGE_TOO_BIG,
            Io(_) => return None,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            ReservedBits => f.write_str("reserved bits set"),
            MisplacedCompressedBit => {
                f.write_str("compressed bit on a control frame or a continuation")
            }
            BadCompressedData => f.write_str("invalid compressed data"),
            UnknownOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            FragmentedControl => f.write_str("fragmented control frame"),
            ControlTooLong => f.write_str("control frame over 125 bytes"),
            BadLength => f.write_str("frame length has its top bit set"),
            NonMinimalLength => f.write_str("frame length not in its shortest form"),
            UnmaskedFrame => f.write_str("client frame not masked"),
            UnexpectedContinuation => f.write_str("continuation frame without a message"),
            ExpectedContinuation => f.write_str("new message before the last one finished"),
            BadClosePayload => f.write_str("close frame with a 1-byte payload"),
            InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            InvalidUtf8 => f.write_str("invalid UTF-8"),
            MessageTooBig => f.write_str("message too big"),
            Io(kind) => write!(f, "connection lost: {kind}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Io(err.kind())
    }
}
