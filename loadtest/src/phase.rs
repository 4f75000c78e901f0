//! Where the run is: the one value the coordinator publishes to every client.
//!
//! A `tokio::sync::watch` channel carries it: each client holds a receiver and waits for the
//! phase it cares about (a sender for the steady plan, everyone for the stop). A watch keeps only
//! the latest value, which is all a client needs, and costs nothing while it does not change;
//! a broadcast channel (rejected) would queue every phase for each of thousands of clients.
//!
//! Ctrl-C reaches clients the same way: the coordinator notices it and publishes
//! [`Phase::Draining`], so no client reads a process-wide flag of its own.

use std::sync::Arc;

use tokio::sync::watch;

/// Where the run is; published by the coordinator through a `watch` channel to every client.
#[derive(Clone, Debug)]
pub enum Phase {
    /// Clients connect on their ramp schedule.
    Connecting,
    /// The steady phase is fixed: senders follow the schedule from its start.
    Steady(Arc<Steady>),
    /// The run was interrupted: senders stop sending, receivers go on counting what is in
    /// flight until the stop, so an interrupted run reports no false loss.
    Draining(Arc<Steady>),
    /// Close everything and report.
    Stop,
}

impl Phase {
    /// The steady plan, once it is fixed and until the stop.
    pub fn steady(&self) -> Option<&Arc<Steady>> {
        match self {
            Phase::Steady(s) | Phase::Draining(s) => Some(s),
            Phase::Connecting | Phase::Stop => None,
        }
    }
}

/// What the coordinator decides once the connect ramp is over.
#[derive(Debug)]
pub struct Steady {
    /// Start of the steady phase, µs since the run's epoch.
    pub start_us: u64,
    /// Connected measured receivers per room: how many deliveries each message is owed.
    pub room_receivers: Vec<u64>,
}

/// Resolves when the coordinator says stop.
pub async fn stopped(phase: &mut watch::Receiver<Phase>) {
    // An error means the coordinator is gone: stop too.
    let _ = phase.wait_for(|p| matches!(p, Phase::Stop)).await;
}

/// Resolves when senders must stop sending: the run was interrupted, or it stops.
pub async fn sending_over(phase: &mut watch::Receiver<Phase>) {
    let _ = phase
        .wait_for(|p| matches!(p, Phase::Draining(_) | Phase::Stop))
        .await;
}

/// Whether the run is stopping: a connection that ends now was closed by us, not early.
pub fn is_stopping(phase: &watch::Receiver<Phase>) -> bool {
    matches!(*phase.borrow(), Phase::Stop)
}

/// Resolves with the steady plan, or `None` if the run stops first.
pub async fn steady(phase: &mut watch::Receiver<Phase>) -> Option<Arc<Steady>> {
    let p = phase
        .wait_for(|p| !matches!(p, Phase::Connecting))
        .await
        .ok()?;
    p.steady().cloned()
}
