//! The example upstream's service: `helloworld.Greeter`, answering `Hello, NAME!`.

use crate::pb::helloworld::greeter_server::{Greeter, GreeterServer};
use crate::pb::helloworld::{HelloReply, HelloRequest};
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use tonic::{Request, Response, Status, Streaming};

/// The greeter.
#[derive(Debug, Clone, Default)]
pub struct HelloGreeter;

impl HelloGreeter {
    /// The tonic server for it.
    pub fn into_server(self) -> GreeterServer<HelloGreeter> {
        GreeterServer::new(self)
    }
}

fn greet(name: &str) -> HelloReply {
    HelloReply {
        message: format!("Hello, {name}!"),
    }
}

#[tonic::async_trait]
impl Greeter for HelloGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(greet(&request.into_inner().name)))
    }

    type ChatStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

    async fn chat(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let replies = request
            .into_inner()
            .map(|message| message.map(|m| greet(&m.name)));
        Ok(Response::new(Box::pin(replies)))
    }
}
