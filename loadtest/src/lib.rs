//! loadtest: a swarm of simulated WebSocket chat clients with honest latency figures.
//!
//! Read it in the order a run goes:
//! - what can be asked: [`cli`];
//! - who is in which room: [`rooms`]; who sends what, when: [`schedule`] (pure arithmetic);
//! - the run from flags to report: [`swarm`], which fixes the run-wide [`setup`] and resolves
//!   each client's [`target`], starts the [`worker`] threads, and lets the [`coordinator`] walk
//!   the [`phase`]s (Ctrl-C arrives through [`interrupt`]);
//! - one simulated connection: [`client`], opened and closed by [`connection`], counting in
//!   [`receiver`], writing in [`sender`]; [`payload`] is the stamp in every message and the cheap
//!   way to read it back;
//! - the figures: [`stats`] (per-thread counters merged at the end), [`accounting`] (one
//!   receiver's exact counts), [`tally`] (across receivers), [`resources`], [`warnings`],
//!   [`verdict`], then [`report`] (JSON), [`human`], [`plot`] and the live [`progress`] line;
//! - the OS-facing [`proc`] and [`limits`].
//!
//! No module imports one that imports it back: the coordinator and the clients meet only in the
//! phase channel and the snapshots.
//!
//! The swarm shares no code with the wschat server: it speaks the protocol from the outside with
//! tokio-tungstenite, an independent WebSocket implementation, so it also checks the server's
//! frames, and it measures other servers (`--protocol raw`) the same way.

pub mod accounting;
pub mod cli;
pub mod client;
pub mod connection;
pub mod coordinator;
pub mod human;
pub mod interrupt;
pub mod limits;
pub mod payload;
pub mod phase;
pub mod plot;
pub mod proc;
pub mod progress;
pub mod receiver;
pub mod report;
pub mod resources;
pub mod rooms;
pub mod schedule;
pub mod sender;
pub mod setup;
pub mod stats;
pub mod swarm;
pub mod tally;
pub mod target;
pub mod token;
pub mod verdict;
pub mod warnings;
pub mod worker;

pub use cli::{Args, Protocol};
pub use report::Report;
pub use swarm::{run, Outcome};
