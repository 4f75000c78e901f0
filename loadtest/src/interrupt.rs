//! Ctrl-C: stop the run early but still report what ran; a second Ctrl-C kills.
//!
//! A signal handler may only touch what is async-signal-safe, so it sets one atomic flag and
//! nothing else. Only the coordinator reads the flag (it looks at the run every
//! `coordinator::TICK` anyway) and turns it into a phase that every client already watches;
//! a client reading the flag itself would tie every client to this process-wide state.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the SIGINT handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was pressed since the process started.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Installs the SIGINT handler. The library never calls this: a test or another program that
/// runs the swarm keeps its own signal handling; the `loadtest` binary calls it first thing.
pub fn install() {
    extern "C" fn on_sigint(_: libc::c_int) {
        if INTERRUPTED.swap(true, Ordering::Relaxed) {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(130) };
        }
    }
    // SAFETY: the handler only touches an atomic and calls _exit, both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
}
