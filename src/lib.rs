//! wschat: a real-time chat server with a hand-rolled RFC 6455 WebSocket implementation.
//!
//! Read it bottom-up: [`ws`] is the protocol (handshake, frames, masking, a connection's reader and
//! writer) and knows nothing of chat; [`chat`] is the meaning (rooms, presence, history, the JSON
//! protocol) and knows nothing of frame bytes beyond "encode this once"; [`server`] accepts TCP
//! (after [`admission`] says yes) and speaks HTTP with hyper; [`routes`] answers each request and
//! hands upgraded connections to a chat or [`echo`] session.

pub mod admission;
pub mod assets;
pub mod auth;
pub mod chat;
pub mod config;
pub mod echo;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod state;
pub mod wire;
pub mod ws;

pub use config::Config;
pub use server::Server;
