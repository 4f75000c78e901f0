//! RFC 6455, and nothing else: no JSON, no rooms.
//!
//! Read in this order: [`handshake`] (HTTP request to `101`), [`frame`] (header bytes to struct
//! and back), [`mask`] (the XOR every client frame carries), [`decoder`] (bytes to whole messages,
//! with every protocol check and no I/O; [`utf8`] is its incremental UTF-8 check), [`reader`] (the
//! socket into the decoder), [`writer`] (queued frames to one vectored write), [`conn`] (a
//! connection and its close handshake) and [`serve`] (what every connection owes the protocol
//! while open: pongs, pings, timeouts, budgets). [`Error`] lists every way a connection can fail
//! and the close code each earns.

pub mod conn;
pub mod decoder;
mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod reader;
pub mod serve;
pub mod trace;
pub mod utf8;
pub mod writer;

pub use conn::{Ending, Socket, WebSocket};
pub use decoder::{Decoder, Limits, Message};
pub use error::Error;
pub use frame::{close_code, encode_close, encode_frame, FrameHeader, OpCode};
pub use reader::MessageReader;
pub use serve::{serve, ConnLimits, Data, Dropped, Session};
pub use writer::{FrameWriter, Outbox, WriteStats};
