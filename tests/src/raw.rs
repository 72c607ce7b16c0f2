//! Raw HTTP/2 for tests that must see or send what a gRPC library would hide: a client
//! built on the `h2` crate, gRPC framing helpers, and a scripted upstream that stalls or
//! resets streams on request and records what it got.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Request};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A connection of the raw client.
pub type RawClient = h2::client::SendRequest<Bytes>;

/// Opens an HTTP/2 connection to `addr`.
pub async fn connect(addr: SocketAddr) -> RawClient {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A gRPC request head for `path` with the usual headers plus `extra`.
pub fn grpc_request(path: &str, extra: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder()
        .method("POST")
        .uri(format!("http://sluice.test{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("valid request")
}

/// One length-prefixed, uncompressed gRPC message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// What came back for a raw call.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Whether the headers frame ended the stream (a trailers-only response).
    pub headers_ended_stream: bool,
    /// All data bytes.
    pub data: Vec<u8>,
    /// The length of each DATA frame that carried them, in order.
    pub data_frames: Vec<usize>,
    /// Trailers, if any came.
    pub trailers: Option<HeaderMap>,
    /// The reset reason, if the stream was reset instead of ending.
    pub reset: Option<h2::Reason>,
}

impl RawResponse {
    /// `grpc-status`, from the trailers or (trailers-only) the headers.
    pub fn grpc_status(&self) -> Option<u32> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok()?.parse().ok())
    }

    /// `grpc-message`, from the trailers or the headers.
    pub fn grpc_message(&self) -> String {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-message"))
            .or_else(|| self.headers.get("grpc-message"))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    }
}

/// Sends `request` with `chunks` as body data frames (ending the stream after the last one
/// when `end` is set) and reads the whole response.
pub async fn call(
    client: &mut RawClient,
    request: Request<()>,
    chunks: &[Bytes],
    end: bool,
) -> RawResponse {
    let mut client = client.clone().ready().await.expect("connection ready");
    let no_body = chunks.is_empty() && end;
    let (response, mut send) = client.send_request(request, no_body).expect("send request");
    for (i, chunk) in chunks.iter().enumerate() {
        let last = end && i + 1 == chunks.len();
        send.send_data(chunk.clone(), last).expect("send data");
    }
    read_response(response).await
}

/// Reads `body`'s data frames until its end or an error, releasing their window: the bytes
/// into `data`, each frame's length into `data_frames`.
async fn read_data(
    body: &mut h2::RecvStream,
    data: &mut Vec<u8>,
    data_frames: &mut Vec<usize>,
) -> Result<(), h2::Error> {
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
        data_frames.push(chunk.len());
    }
    Ok(())
}

/// Reads a whole response, noting a reset instead of failing.
pub async fn read_response(response: h2::client::ResponseFuture) -> RawResponse {
    let response = match response.await {
        Ok(response) => response,
        Err(err) => {
            return RawResponse {
                status: 0,
                headers: HeaderMap::new(),
                headers_ended_stream: false,
                data: Vec::new(),
                data_frames: Vec::new(),
                trailers: None,
                reset: Some(err.reason().expect("a reset, not a connection error")),
            };
        }
    };
    let (head, mut body) = response.into_parts();
    let headers_ended_stream = body.is_end_stream();
    let mut data = Vec::new();
    let mut data_frames = Vec::new();
    let mut reset = read_data(&mut body, &mut data, &mut data_frames)
        .await
        .err()
        .and_then(|err| err.reason());
    let trailers = if reset.is_none() {
        match body.trailers().await {
            Ok(trailers) => trailers,
            Err(err) => {
                reset = err.reason();
                None
            }
        }
    } else {
        None
    };
    RawResponse {
        status: head.status.as_u16(),
        headers: head.headers,
        headers_ended_stream,
        data,
        data_frames,
        trailers,
        reset,
    }
}

/// An HTTP/2 upstream scripted by the request header `x-behave`:
/// `stall` (default) never answers; `reset-before-headers:N` resets with reason N at once;
/// `reset-after-data:N` sends headers and one message, then resets with reason N;
/// `data-then-stall` sends headers and one message, then never goes on;
/// `burst:N` answers N 4-byte messages (the big-endian index), one DATA frame each, then OK
/// (`burst:NxSIZE`: each message SIZE bytes, the index then zeros, see [`burst_message`]);
/// `bad-response-frame` answers with a malformed gRPC message prefix and status OK.
/// It records every request's headers and the reason of every reset it received.
#[derive(Debug)]
pub struct ScriptedUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Headers of each request received.
    pub requests: Arc<Mutex<Vec<HeaderMap>>>,
    /// Reasons of resets received from the proxy on stalled streams (also after
    /// `data-then-stall`'s message).
    pub resets: Arc<Mutex<Vec<h2::Reason>>>,
    _stop: oneshot::Sender<()>,
}

impl ScriptedUpstream {
    /// Starts it on a free loopback port.
    pub async fn start() -> ScriptedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let resets = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (req_log, reset_log) = (requests.clone(), resets.clone());
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => match accepted { Ok((tcp, _)) => tcp, Err(_) => return },
                };
                let (req_log, reset_log) = (req_log.clone(), reset_log.clone());
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    while let Some(Ok((request, respond))) = connection.accept().await {
                        req_log.lock().unwrap().push(request.headers().clone());
                        let behave = request
                            .headers()
                            .get("x-behave")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("stall")
                            .to_owned();
                        tokio::spawn(script(behave, request, respond, reset_log.clone()));
                    }
                });
            }
        });
        ScriptedUpstream {
            addr,
            requests,
            resets,
            _stop: stop,
        }
    }
}

/// Message `index` of a `burst` of `size`-byte messages: the big-endian index, then zeros.
pub fn burst_message(index: u32, size: usize) -> Vec<u8> {
    let mut message = index.to_be_bytes().to_vec();
    message.resize(size.max(4), 0);
    message
}

async fn script(
    behave: String,
    request: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    resets: Arc<Mutex<Vec<h2::Reason>>>,
) {
    let _body = request.into_body();
    let reason_of = |text: &str| h2::Reason::from(text.parse::<u32>().unwrap_or(8));
    if let Some(code) = behave.strip_prefix("reset-before-headers:") {
        respond.send_reset(reason_of(code));
    } else if let Some(code) = behave.strip_prefix("reset-after-data:") {
        let mut send = grpc_response(&mut respond);
        send.send_data(frame(b""), false).expect("send data");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        send.send_reset(reason_of(code));
    } else if let Some(burst) = behave.strip_prefix("burst:") {
        let (count, size) = burst.split_once('x').unwrap_or((burst, "4"));
        let size = size.parse().unwrap_or(4);
        let mut send = grpc_response(&mut respond);
        for i in 0..count.parse::<u32>().unwrap_or(1) {
            send.send_data(frame(&burst_message(i, size)), false)
                .expect("send data");
        }
        let _ = send.send_trailers(ok_trailers());
    } else if behave == "data-then-stall" {
        let mut send = grpc_response(&mut respond);
        send.send_data(frame(b"first"), false).expect("send data");
        let reason = std::future::poll_fn(|cx| send.poll_reset(cx)).await;
        if let Ok(reason) = reason {
            resets.lock().unwrap().push(reason);
        }
    } else if behave == "bad-response-frame" {
        let mut send = grpc_response(&mut respond);
        send.send_data(Bytes::from_static(&[9, 0, 0, 0, 1, 0]), false)
            .expect("send data");
        let _ = send.send_trailers(ok_trailers());
    } else {
        let reason = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
        if let Ok(reason) = reason {
            resets.lock().unwrap().push(reason);
        }
    }
}

/// Sends gRPC response headers (not ending the stream) and returns the body sender.
fn grpc_response(respond: &mut h2::server::SendResponse<Bytes>) -> h2::SendStream<Bytes> {
    let head = http::Response::builder()
        .header("content-type", "application/grpc")
        .body(())
        .expect("response");
    respond.send_response(head, false).expect("send headers")
}

/// Trailers with `grpc-status: 0`.
fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    trailers
}

/// One unary call (`message` as the whole request body) where any connection or stream
/// failure is an `Err`, for tests that expect some calls to fail.
pub async fn try_call(
    client: &RawClient,
    request: Request<()>,
    message: &[u8],
) -> Result<RawResponse, String> {
    let mut client = client
        .clone()
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let (response, mut send) = client
        .send_request(request, false)
        .map_err(|e| format!("send: {e}"))?;
    send.send_data(frame(message), true)
        .map_err(|e| format!("send data: {e}"))?;
    let (head, mut body) = response
        .await
        .map_err(|e| format!("response: {e}"))?
        .into_parts();
    let headers_ended_stream = body.is_end_stream();
    let mut data = Vec::new();
    let mut data_frames = Vec::new();
    read_data(&mut body, &mut data, &mut data_frames)
        .await
        .map_err(|e| format!("body: {e}"))?;
    let trailers = body
        .trailers()
        .await
        .map_err(|e| format!("trailers: {e}"))?;
    Ok(RawResponse {
        status: head.status.as_u16(),
        headers: head.headers,
        headers_ended_stream,
        data,
        data_frames,
        trailers,
        reset: None,
    })
}
