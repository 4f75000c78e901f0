//! What every bench shares.

use std::time::Duration;

use criterion::Criterion;

/// Modest defaults so a full `cargo bench` stays within minutes on a small machine: short runs,
/// no SVG plots (drawing them took longer than measuring). The command line
/// (`--measurement-time`, `--warm-up-time`, `--sample-size`) still overrides the times.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}
