//! A demo client: makes calls through Sluice that show the example plugins at work, one
//! line per call saying what happened and which plugin did it.
//! Run with: `cargo run -p sluice-tests --bin demo-client -- --target 127.0.0.1:50051`

use clap::Parser;
use sluice_tests::pb::helloworld::HelloRequest;
use sluice_tests::pb::helloworld::greeter_client::GreeterClient;
use sluice_tests::pb::testing::test_service_client::TestServiceClient;
use sluice_tests::pb::testing::{Empty, SimpleRequest};
use tonic::Request;

/// Demo client for Sluice.
#[derive(Debug, Parser)]
struct Args {
    /// Where Sluice listens.
    #[arg(long, default_value = "127.0.0.1:50051")]
    target: String,
    /// The bearer token the demo's auth-token plugin expects.
    #[arg(long, default_value = "let-me-in")]
    token: String,
    /// Run only these steps (1-6); default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u32>,
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = format!("Bearer {token}").parse().expect("ASCII token");
    request.metadata_mut().insert("authorization", value);
    request
}

fn outcome<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> String {
    match result {
        Ok(value) => format!("OK {value:?}"),
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", args.target))?
        .connect()
        .await?;
    let mut greeter = GreeterClient::new(channel.clone());
    let mut tests = TestServiceClient::new(channel);
    let hello = |name: &str| HelloRequest { name: name.into() };
    let run = |step: u32| args.only.is_empty() || args.only.contains(&step);

    if run(1) {
        let result = greeter
            .say_hello(hello("world"))
            .await
            .map(|r| r.into_inner().message);
        println!(
            "1. SayHello(\"world\") without a token      -> {}   [auth-token rejects]",
            outcome(result)
        );
    }
    if run(2) {
        let result = greeter
            .say_hello(with_token(hello("ada"), &args.token))
            .await
            .map(|r| r.into_inner().message);
        println!(
            "2. SayHello(\"ada\") with the token          -> {}   [auth-token passes and strips the token, hello-rewrite upper-cases the name]",
            outcome(result)
        );
    }
    if run(3) {
        let names = ["a", "a", "b"].map(hello);
        let result = async {
            let mut replies = greeter
                .chat(with_token(tokio_stream::iter(names), &args.token))
                .await?
                .into_inner();
            let mut got = Vec::new();
            while let Some(reply) = replies.message().await? {
                got.push(reply.message);
            }
            Ok::<_, tonic::Status>(got)
        }
        .await;
        println!(
            "3. Chat(\"a\", \"a\", \"b\") with the token       -> {}   [dedupe drops the repeated \"a\", hello-rewrite upper-cases]",
            outcome(result)
        );
    }
    if run(4) {
        let long = "x".repeat(2000);
        let result = greeter
            .say_hello(with_token(hello(&long), &args.token))
            .await
            .map(|r| r.into_inner().message);
        println!(
            "4. SayHello(2,000 characters) with the token -> {}   [size-limit rejects]",
            outcome(result)
        );
    }
    if run(5) {
        let result = tests
            .unary_call(SimpleRequest::default())
            .await
            .map(|r| r.into_inner());
        println!(
            "5. TestService/UnaryCall                     -> {}   [method-acl decides]",
            outcome(result)
        );
    }
    if run(6) {
        let result = tests.empty_call(Empty {}).await.map(|r| r.into_inner());
        println!(
            "6. TestService/EmptyCall                     -> {}   [method-acl decides; frame-audit counts frames]",
            outcome(result)
        );
    }
    Ok(())
}
