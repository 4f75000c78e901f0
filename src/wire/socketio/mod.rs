//! Socket.IO clients in the chat's rooms: Engine.IO v4 (the transport: open, ping/pong, close,
//! one packet per WebSocket frame) and Socket.IO v5 (namespaces, events, acks) over wschat's own
//! RFC 6455 connection.
//!
//! Read in this order: [`handshake`] (which `/socket.io/` requests are served, and the `400`
//! every other one gets), [`packet`] (text to packets and back, no I/O), [`frame`] (a room's
//! native frame rewrapped as a Socket.IO event), [`session`] (one connection's life).

pub mod frame;
pub mod handshake;
pub mod packet;
pub mod session;

pub use frame::{socketio_frame, socketio_welcome, Namespace};
