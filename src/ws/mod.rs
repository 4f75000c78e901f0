//! RFC 6455, and nothing else: no JSON, no rooms.
//!
//! Read in this order: [`handshake`] (HTTP request to `101`), [`frame`] (header bytes to struct and
//! back), [`mask`] (the XOR every client frame carries), [`reader`] (bytes to whole messages, with
//! every protocol check), [`writer`] (queued frames to one vectored write) and [`conn`] (what every
//! connection owes the protocol: pongs, pings, timeouts, budgets, the close handshake). [`Error`]
//! lists every way a connection can fail and the close code each earns.

pub mod conn;
mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod reader;
pub mod trace;
pub mod writer;

pub use conn::{ConnLimits, Data, Dropped, Ending, Session, WebSocket};
pub use error::Error;
pub use frame::{close_code, encode_close, encode_frame, FrameHeader, OpCode};
pub use reader::{Limits, Message, MessageReader};
pub use writer::{FrameWriter, Outbox, WriteStats};
