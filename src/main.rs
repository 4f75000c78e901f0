use clap::Parser;
use wschat::{Config, Server};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let config = Config::parse();
    let server = Server::bind(config).await?;
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
