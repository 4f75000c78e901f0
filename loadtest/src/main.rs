//! `loadtest`: parse the flags, run the swarm, print the report, exit 0 (pass), 1 (loss or
//! connect errors beyond the thresholds) or 2 (the run could not start).

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use clap::Parser;

fn main() -> ExitCode {
    let args = loadtest::Args::parse();
    install_interrupt_handler();
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

/// Ctrl-C stops the run early but still prints the report of what ran; a second Ctrl-C kills.
fn install_interrupt_handler() {
    extern "C" fn on_sigint(_: libc::c_int) {
        if loadtest::swarm::INTERRUPTED.swap(true, Ordering::Relaxed) {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(130) };
        }
    }
    // SAFETY: the handler only touches an atomic and calls _exit, both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
}
