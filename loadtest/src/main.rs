//! `loadtest`: parse the flags, run the swarm, print the report, exit 0 (pass), 1 (loss or
//! connect errors beyond the thresholds) or 2 (the run could not start).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = loadtest::Args::parse();
    // Ctrl-C stops the run early but still prints the report of what ran; a second one kills.
    loadtest::interrupt::install();
    match loadtest::run(&args) {
        Ok(outcome) => {
            print!("{}", outcome.report.human());
            if outcome.report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(message) => {
            eprintln!("loadtest: {message}");
            ExitCode::from(2)
        }
    }
}
