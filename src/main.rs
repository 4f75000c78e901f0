//! `wschat`: parse flags, start logging, serve until SIGINT or SIGTERM.

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
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .init();
    let server = Server::bind(config).await?;
    println!("wschat listening on http://{}/", server.local_addr());
    server.run(shutdown_signal()).await?;
    tracing::info!("bye");
    Ok(())
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
