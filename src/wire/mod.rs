//! What a session speaks over a WebSocket connection, beside the native JSON protocol
//! ([`crate::chat::protocol`], whose frames the rooms encode once per event).
//!
//! [`socketio`]: Engine.IO v4 over the WebSocket transport, carrying Socket.IO v5 packets, so
//! the official Socket.IO clients land in the same rooms as native ones.

pub mod socketio;
