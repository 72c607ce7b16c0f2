//! The example upstream Sluice is demonstrated with: a tonic server with
//! `helloworld.Greeter` and `sluice.testing.TestService`.
//! Run with: `cargo run -p sluice-tests --bin example-upstream -- --listen 127.0.0.1:50052`

use clap::Parser;
use sluice_tests::greeter::HelloGreeter;
use sluice_tests::test_service::Service;

/// Example gRPC upstream for Sluice.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50052")]
    listen: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt().with_env_filter("info").init();
    tracing::info!(listen = %args.listen, "example upstream serving helloworld.Greeter and sluice.testing.TestService");
    tonic::transport::Server::builder()
        .add_service(HelloGreeter.into_server())
        .add_service(Service::default().into_server())
        .serve_with_shutdown(args.listen, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
