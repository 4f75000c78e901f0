//! `wschat`: parse flags, start logging, serve until SIGINT or SIGTERM.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wschat::{Config, Server};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let config = Config::parse();
    // `RUST_LOG` picks the level; frame tracing is INFO on its own target, so turn it on
    // whenever `--trace-frames` is given.
    let default = if config.trace_frames {
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

/// Installs the SIGINT (Ctrl-C) and SIGTERM handlers now, and returns a future that resolves on
/// the first of them. Not an `async fn`: its body would run, and install nothing, until first
/// polled.
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
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
