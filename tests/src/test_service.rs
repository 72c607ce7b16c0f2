//! A tonic implementation of `sluice.testing.TestService` with the behaviour the interop
//! cases expect (echoed metadata, requested status, paced streams), which also records
//! what it saw (deadlines, cancellations) for tests to check.

use crate::pb::testing::test_service_server::{TestService, TestServiceServer};
use crate::pb::testing::*;
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::metadata::{KeyAndValueRef, MetadataMap};
use tonic::{Request, Response, Status, Streaming};

/// What the upstream observed, for assertions.
#[derive(Debug, Default)]
pub struct Observed {
    /// Every `grpc-timeout` header value seen, in arrival order.
    pub timeouts: Mutex<Vec<String>>,
    /// Streams that ended because the caller went away before the server finished.
    pub cancelled: AtomicUsize,
    /// Calls received.
    pub calls: AtomicUsize,
    /// Request metadata of every call, in arrival order.
    pub metadata: Mutex<Vec<MetadataMap>>,
}

/// The test service.
#[derive(Debug, Clone, Default)]
pub struct Service {
    /// Shared observations.
    pub observed: Arc<Observed>,
}

impl Service {
    /// The tonic server for this service, with gzip accepted and offered.
    pub fn into_server(self) -> TestServiceServer<Service> {
        TestServiceServer::new(self)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
    }

    fn observe(&self, metadata: &MetadataMap) {
        self.observed.calls.fetch_add(1, Ordering::Relaxed);
        self.observed
            .metadata
            .lock()
            .unwrap()
            .push(metadata.clone());
        if let Some(timeout) = metadata.get("grpc-timeout") {
            let value = timeout.to_str().unwrap_or("?").to_owned();
            self.observed.timeouts.lock().unwrap().push(value);
        }
    }
}

/// Copies `x-echo-*` request metadata into the response headers and `x-trailer-*` (and the
/// interop names) into the trailers, keeping `-bin` values and repeated keys.
fn echo_metadata(request: &MetadataMap) -> (MetadataMap, MetadataMap) {
    let mut headers = MetadataMap::new();
    let mut trailers = MetadataMap::new();
    for entry in request.iter() {
        match entry {
            KeyAndValueRef::Ascii(key, value) => {
                let name = key.as_str();
                if name.starts_with("x-echo-") || name == "x-grpc-test-echo-initial" {
                    headers.append(key.clone(), value.clone());
                } else if name.starts_with("x-trailer-") {
                    trailers.append(key.clone(), value.clone());
                }
            }
            KeyAndValueRef::Binary(key, value) => {
                let name = key.as_str();
                if name.starts_with("x-echo-") {
                    headers.append_bin(key.clone(), value.clone());
                } else if name.starts_with("x-trailer-") || name == "x-grpc-test-echo-trailing-bin"
                {
                    trailers.append_bin(key.clone(), value.clone());
                }
            }
        }
    }
    (headers, trailers)
}

fn requested_status(status: &Option<EchoStatus>, trailers: &MetadataMap) -> Option<Status> {
    let status = status.as_ref().filter(|s| s.code != 0)?;
    Some(Status::with_metadata(
        tonic::Code::from_i32(status.code),
        status.message.clone(),
        trailers.clone(),
    ))
}

fn payload(size: i32) -> Option<Payload> {
    Some(Payload {
        body: vec![0u8; size.max(0) as usize],
    })
}

/// Streams responses, counting a cancellation if dropped before the end.
struct CancelProbe {
    observed: Arc<Observed>,
    finished: bool,
}

impl Drop for CancelProbe {
    fn drop(&mut self) {
        if !self.finished {
            self.observed.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<StreamingOutputCallResponse, Status>> + Send>>;

fn with_trailers<T>(mut response: Response<T>, headers: MetadataMap) -> Response<T> {
    *response.metadata_mut() = headers;
    response
}

#[tonic::async_trait]
impl TestService for Service {
    async fn empty_call(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.observe(request.metadata());
        let (headers, _) = echo_metadata(request.metadata());
        Ok(with_trailers(Response::new(Empty {}), headers))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        self.observe(request.metadata());
        let (headers, trailers) = echo_metadata(request.metadata());
        let message = request.into_inner();
        if let Some(status) = requested_status(&message.response_status, &trailers) {
            return Err(status);
        }
        // tonic sends trailing metadata only with an error status; for OK calls the
        // trailers-echo tests use the streaming methods.
        let response = SimpleResponse {
            payload: payload(message.response_size),
        };
        Ok(with_trailers(Response::new(response), headers))
    }

    type StreamingOutputCallStream = ResponseStream;

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<ResponseStream>, Status> {
        self.observe(request.metadata());
        let (headers, trailers) = echo_metadata(request.metadata());
        let message = request.into_inner();
        let observed = self.observed.clone();
        let stream = async_stream(move |tx| async move {
            let mut probe = CancelProbe {
                observed,
                finished: false,
            };
            for params in message.response_parameters {
                if params.interval_us > 0 {
                    tokio::time::sleep(Duration::from_micros(params.interval_us as u64)).await;
                }
                let item = StreamingOutputCallResponse {
                    payload: payload(params.size),
                };
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
            probe.finished = true;
            let end = requested_status(&message.response_status, &trailers)
                .unwrap_or_else(|| Status::with_metadata(tonic::Code::Ok, "", trailers));
            let _ = tx.send(Err(end)).await;
        });
        Ok(with_trailers(Response::new(stream), headers))
    }

    async fn streaming_input_call(
        &self,
        request: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        self.observe(request.metadata());
        let mut stream = request.into_inner();
        let mut total = 0usize;
        while let Some(message) = stream.message().await? {
            total += message.payload.map_or(0, |p| p.body.len());
        }
        Ok(Response::new(StreamingInputCallResponse {
            aggregated_payload_size: total as i32,
        }))
    }

    type FullDuplexCallStream = ResponseStream;

    async fn full_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        self.observe(request.metadata());
        let (headers, trailers) = echo_metadata(request.metadata());
        let mut incoming = request.into_inner();
        let observed = self.observed.clone();
        let stream = async_stream(move |tx| async move {
            let mut probe = CancelProbe {
                observed,
                finished: false,
            };
            loop {
                let message = match incoming.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(_) => return,
                };
                if let Some(status) = requested_status(&message.response_status, &trailers) {
                    probe.finished = true;
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                for params in message.response_parameters {
                    if params.interval_us > 0 {
                        tokio::time::sleep(Duration::from_micros(params.interval_us as u64)).await;
                    }
                    let item = StreamingOutputCallResponse {
                        payload: payload(params.size),
                    };
                    if tx.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
            }
            probe.finished = true;
            let _ = tx
                .send(Err(Status::with_metadata(tonic::Code::Ok, "", trailers)))
                .await;
        });
        Ok(with_trailers(Response::new(stream), headers))
    }
}

/// A stream fed by a task that gets the sending half of a channel; when the consumer goes
/// away the task's sends fail and it ends.
fn async_stream<F, Fut>(produce: F) -> ResponseStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<StreamingOutputCallResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(produce(tx));
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    // Abort the producer when the response stream is dropped (client went away), so
    // sleeping producers notice cancellation promptly.
    let guard = AbortOnDrop(task);
    Box::pin(stream.map(move |item| {
        let _keep = &guard;
        // An OK "error" ends the stream with OK status and the given trailers.
        item
    }))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
