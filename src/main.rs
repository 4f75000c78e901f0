//! `wschat`: parse flags, start logging, serve until SIGINT or SIGTERM. `wschat token ...`
//! instead prints a signed token (see `wschat::auth::mint`).

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wschat::auth::mint::{self, TokenArgs};
use wschat::{Config, Server};

fn main() -> std::io::Result<()> {
    // `wschat token` is looked for by hand rather than declared as a clap subcommand: the
    // server's flags stay at the top level, so `wschat --addr ...` and every documented command
    // work as before. A server has no positional arguments, so `token` cannot mean anything else.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|first| first == "token") {
        let token_args = TokenArgs::parse_from(std::env::args_os().skip(1));
        return match mint::run(token_args) {
            Ok(token) => {
                println!("{token}");
                Ok(())
            }
            Err(why) => {
                eprintln!("wschat token: {why}");
                std::process::exit(2);
            }
        };
    }
    serve(Config::parse())
}

#[tokio::main]
async fn serve(config: Config) -> std::io::Result<()> {
    // `RUST_LOG` picks the level; frame tracing is INFO on its own target, so turn it on
    // whenever `--trace-frames` is given.
    let default = if config.trace_frames.is_some() {
        "info,wschat::frames=info"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        // Colour codes only for a person at a terminal, never in a file or a pipe.
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .init();
    let server = Server::bind(config).await?;
    // The handlers go in before the address is announced: whoever reads that line (a supervisor,
    // a test) may signal at once, and a signal that arrives before its handler exists takes the
    // default action, killing the process with no graceful shutdown.
    let shutdown = shutdown_signal()?;
    println!("wschat listening on http://{}/", server.local_addr());
    server.run(shutdown).await?;
    tracing::info!("bye");
    Ok(())
}

/// The exit status after a second signal cut the grace period short (128 + SIGINT, as shells
/// report a process ended by Ctrl-C).
const EXIT_INTERRUPTED: i32 = 130;

/// Installs the SIGINT (Ctrl-C) and SIGTERM handlers now, and returns a future that resolves on
/// the first of them. Not an `async fn`: its body would run, and install nothing, until first
/// polled.
///
/// After the first signal the server closes every connection and waits up to
/// `--shutdown-grace` for the close handshakes. A second signal in that time means "now": the
/// process exits at once with status 130, whatever is still open (a client that never answers
/// its close would otherwise hold the exit for the whole grace period).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tokio::spawn(async move {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                tracing::warn!("second signal: exiting without waiting for connections");
                std::process::exit(EXIT_INTERRUPTED);
            });
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tokio::spawn(async {
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(EXIT_INTERRUPTED);
        });
    })
}
