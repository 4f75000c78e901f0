//! Pass or fail: the one decision the exit status carries, against `--max-loss` and
//! `--max-connect-errors`.
//!
//! Only loss and failed connects can fail a run. Latency never does: it depends on the machine,
//! and a threshold on it would make a script's result depend on what else was running; it is
//! reported, with warnings that say when the machine shaped it.

use crate::cli::Args;
use crate::report::Report;

/// Fills `r.failures` and `r.passed`.
pub fn judge(args: &Args, r: &mut Report) {
    let requested = r.clients_requested.max(1) as f64;
    let failed = (r.clients_requested - r.clients_connected) as f64 / requested;
    if r.clients_connected == 0 {
        r.failures.push("no client connected".into());
    } else if failed > args.max_connect_errors {
        r.failures.push(format!(
            "{} of {} clients failed to connect ({:.2}% > --max-connect-errors {:.2}%)",
            r.clients_requested - r.clients_connected,
            r.clients_requested,
            failed * 100.0,
            args.max_connect_errors * 100.0
        ));
    }
    if r.expected > 0 {
        let loss = r.lost as f64 / r.expected as f64;
        if loss > args.max_loss {
            r.failures.push(format!(
                "lost {} of {} deliveries ({:.4}% > --max-loss {:.4}%)",
                r.lost,
                r.expected,
                loss * 100.0,
                args.max_loss * 100.0
            ));
        }
    } else if args.senders > 0 && r.clients_connected > 0 {
        r.failures
            .push("no message was accepted by the server".into());
    }
    r.passed = r.failures.is_empty();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn loss_beyond_the_threshold_fails() {
        let args = Args::parse_from(["loadtest", "--max-loss", "0.01"]);
        let mut r = Report {
            clients_requested: 10,
            clients_connected: 10,
            expected: 1000,
            lost: 10,
            ..Report::default()
        };
        judge(&args, &mut r);
        assert!(r.passed, "{:?}", r.failures);
        r.lost = 11;
        judge(&args, &mut r);
        assert!(!r.passed && r.failures[0].starts_with("lost 11 of 1000"));
    }
}
