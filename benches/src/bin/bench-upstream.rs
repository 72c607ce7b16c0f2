//! `bench-upstream`: a fast tonic upstream for benchmarks. `/bench.Echo/Unary` and
//! `/bench.Echo/Bidi` echo each message; `/bench.Echo/Stream` answers the request message
//! back `STREAM_REPLIES` times. It counts the calls it completed (printed on SIGTERM/SIGINT
//! and served at `GET /calls` on the `--stats` port) so the harness can check that every
//! call the load generator counted really reached it.

use bytes::Bytes;
use clap::Parser;
use futures_util::StreamExt;
use sluice_bench::{RawCodec, SERVICE, STREAM_REPLIES};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Request, Response, Status, Streaming};

#[derive(Parser)]
struct Args {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:50060")]
    listen: String,
    /// Plain-text call counter (`GET` anything: the count).
    #[arg(long, default_value = "127.0.0.1:50061")]
    stats: String,
}

type BoxStream = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, Status>> + Send>>;

#[derive(Clone, Default)]
struct Echo {
    completed: Arc<AtomicU64>,
}

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = SERVICE;
}

struct Unary(Arc<AtomicU64>);

impl tonic::server::UnaryService<Bytes> for Unary {
    type Response = Bytes;
    type Future = std::future::Ready<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        self.0.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(Response::new(request.into_inner())))
    }
}

struct Bidi(Arc<AtomicU64>);

impl tonic::server::StreamingService<Bytes> for Bidi {
    type Response = Bytes;
    type ResponseStream = BoxStream;
    type Future = std::future::Ready<Result<Response<BoxStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        let completed = self.0.clone();
        let replies = request.into_inner().inspect(move |item| {
            if item.is_ok() {
                completed.fetch_add(1, Ordering::Relaxed);
            }
        });
        std::future::ready(Ok(Response::new(Box::pin(replies) as BoxStream)))
    }
}

struct Stream(Arc<AtomicU64>);

impl tonic::server::ServerStreamingService<Bytes> for Stream {
    type Response = Bytes;
    type ResponseStream = BoxStream;
    type Future = std::future::Ready<Result<Response<BoxStream>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        self.0.fetch_add(1, Ordering::Relaxed);
        let message = request.into_inner();
        let replies = tokio_stream::iter(std::iter::repeat_n(Ok(message), STREAM_REPLIES));
        std::future::ready(Ok(Response::new(Box::pin(replies) as BoxStream)))
    }
}

impl<B> tower_service::Service<http::Request<B>> for Echo
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let completed = self.completed.clone();
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_owned();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec);
            Ok(match method.as_str() {
                "Bidi" => grpc.streaming(Bidi(completed), request).await,
                "Stream" => grpc.server_streaming(Stream(completed), request).await,
                _ => grpc.unary(Unary(completed), request).await,
            })
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let echo = Echo::default();
    let completed = echo.completed.clone();
    let stats = tokio::net::TcpListener::bind(&args.stats).await?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = stats.accept().await {
            let count = completed.load(Ordering::Relaxed);
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let body = format!("{count}\n");
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    });
    tonic::transport::Server::builder()
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(8 << 20)
        .max_concurrent_streams(None)
        .add_service(echo)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
