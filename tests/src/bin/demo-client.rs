//! A demo client: calls the example upstream's greeter through Sluice and says what came back.
//! Run with: `cargo run -p sluice-tests --bin demo-client -- --target 127.0.0.1:50051`

use clap::Parser;
use sluice_tests::pb::helloworld::HelloRequest;
use sluice_tests::pb::helloworld::greeter_client::GreeterClient;

/// Demo client for Sluice.
#[derive(Debug, Parser)]
struct Args {
    /// Where Sluice listens.
    #[arg(long, default_value = "127.0.0.1:50051")]
    target: String,
    /// Names to greet, one call each.
    #[arg(default_values = ["world", "sluice"])]
    names: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", args.target))?
        .connect()
        .await?;
    let mut greeter = GreeterClient::new(channel);
    for name in args.names {
        match greeter.say_hello(HelloRequest { name: name.clone() }).await {
            Ok(reply) => println!("SayHello({name:?}) -> {:?}", reply.into_inner().message),
            Err(status) => println!(
                "SayHello({name:?}) -> error {:?}: {}",
                status.code(),
                status.message()
            ),
        }
    }
    Ok(())
}
