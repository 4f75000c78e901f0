//! The live display: one line that says which phase the run is in and how it is going.
//!
//! indicatif draws to stderr and hides itself when stderr is not a terminal, so scripts and CI
//! logs get only the final report. The coordinator calls these a few times a second; drawing is
//! rate-limited by indicatif.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::human::thousands;

/// The progress line.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A progress line over `clients` connections; hidden when `quiet`.
    pub fn new(quiet: bool, clients: u64) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(clients),
            if quiet {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr_with_hz(4)
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<10} [{bar:24}] {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        bar.set_prefix("connecting");
        Progress { bar }
    }

    /// During the connect ramp.
    pub fn connecting(&self, done: usize, connected: usize, errors: u64) {
        self.bar.set_position(done as u64);
        self.bar.set_message(format!(
            "{} connected, {} errors",
            thousands(connected as u64),
            thousands(errors)
        ));
    }

    /// Between the ramp and the steady phase.
    pub fn settling(&self) {
        self.bar.set_prefix("settling");
    }

    /// During the steady phase and the drain: `done` of `total` milliseconds.
    #[allow(clippy::too_many_arguments)]
    pub fn running(
        &self,
        phase: &str,
        done_ms: u64,
        total_ms: u64,
        connected: usize,
        sent_per_sec: f64,
        delivered_per_sec: f64,
        p99_ms: f64,
    ) {
        self.bar.set_prefix(phase.to_string());
        self.bar.set_length(total_ms.max(1));
        self.bar.set_position(done_ms.min(total_ms));
        self.bar.set_message(format!(
            "{} conns · sent {}/s · delivered {}/s · p99 {:.2} ms",
            thousands(connected as u64),
            thousands(sent_per_sec.round() as u64),
            thousands(delivered_per_sec.round() as u64),
            p99_ms
        ));
    }

    /// While the clients close.
    pub fn closing(&self) {
        self.bar.set_prefix("closing");
    }

    /// Removes the line before the report is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
