//! loadtest: a swarm of simulated WebSocket chat clients with honest latency figures.
//!
//! Read it in the order a run goes: [`cli`] (what can be asked), [`schedule`] (who sends what,
//! when: pure arithmetic), [`swarm`] (the coordinator: threads, phases, the report),
//! [`client`] (one simulated connection), [`payload`] (the stamp in every message and the cheap
//! way to read it back), [`accounting`] (one receiver's exact counts), [`stats`] (per-thread
//! counters merged at the end), [`report`], [`plot`], [`progress`], and the OS-facing [`proc`]
//! and [`limits`].
//!
//! The swarm shares no code with the wschat server: it speaks the protocol from the outside with
//! tokio-tungstenite, an independent WebSocket implementation, so it also checks the server's
//! frames, and it measures other servers (`--protocol raw`) the same way.

pub mod accounting;
pub mod cli;
pub mod client;
pub mod limits;
pub mod payload;
pub mod plot;
pub mod proc;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod stats;
pub mod swarm;

pub use cli::{Args, Protocol};
pub use report::Report;
pub use swarm::{run, Outcome};
