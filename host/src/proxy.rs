//! The catch-all gRPC handler: every `/package.Service/Method` is accepted, checked,
//! routed to a cluster, run through the plugins that want it, and forwarded with its
//! metadata, deadline and body; the response comes back with its headers, body and
//! trailers, faithfully.

mod headers;
mod link;
pub mod message;
mod method;
pub mod observe;
mod request_body;
mod respond;
mod response_body;

pub use message::MessageStage;
pub use request_body::{BodyError, RequestBody};
pub use response_body::ResponseBody;

use crate::config::{BodyMode, Config};
use crate::grpc::compression::ACCEPT_ENCODING;
use crate::grpc::names::{GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_STATUS, GRPC_TIMEOUT};
use crate::grpc::{Code, Encoding, Status, timeout};
use crate::h2_shared::RecvBody;
use crate::plugin::bindings::Hooks;
use crate::plugin::{BodyHook, CallContext, CallPlugins, Direction, Registry};
use crate::routing::RouteTable;
use crate::tls::Certificates;
use crate::upstream::{Cluster, UpstreamError};
use crate::worker::WorkerConnections;
use headers::{is_grpc_content_type, restrict_accept_encoding, upstream_uri};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body as _;
use link::call_link;
use method::MethodName;
use observe::{CallMetrics, CallRecord};
use response_body::{CallGuard, DrainWait};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The proxy's shared state: routes, upstream clusters and the plugin registry.
#[derive(Debug)]
pub struct Proxy {
    routes: RouteTable<Arc<Cluster>>,
    clusters: Vec<Arc<Cluster>>,
    registry: Arc<Registry>,
    body_mode: BodyMode,
    max_message_bytes: usize,
    default_deadline: Option<std::time::Duration>,
    drain: CancellationToken,
    /// Set with `drain`: a response body with frames ready checks this flag, and waits on
    /// `drain` (a lock every call shares) only when it has to wait anyway.
    drain_passed: Arc<AtomicBool>,
    metrics: Arc<CallMetrics>,
    certificates: Arc<Certificates>,
    /// Set when the server starts serving.
    worker_connections: OnceLock<Arc<WorkerConnections>>,
}

/// How one direction of a call carries its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Frames untouched.
    Raw,
    /// Frames through the plugins' frame hooks.
    Frames,
    /// De-framed messages (through the plugins' message hooks if any want them).
    Messages,
}

impl Proxy {
    /// Builds routes and clusters from `config`, with the plugins of `registry`.
    pub fn new(config: &Config, registry: Arc<Registry>, certificates: Arc<Certificates>) -> Proxy {
        let limits = Arc::new(config.limits.clone());
        let clusters: Vec<Arc<Cluster>> = config
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| Arc::new(Cluster::new(c, &limits, certificates.cluster(i))))
            .collect();
        let routes = RouteTable::new(
            config
                .routes
                .iter()
                .map(|r| (r.pattern.clone(), clusters[r.cluster].clone())),
        );
        Proxy {
            routes,
            clusters,
            registry,
            body_mode: config.body_mode,
            max_message_bytes: config.limits.max_message_bytes,
            default_deadline: config.limits.default_deadline,
            drain: CancellationToken::new(),
            drain_passed: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(CallMetrics::new(config.access_log)),
            certificates,
            worker_connections: OnceLock::new(),
        }
    }

    /// The TLS settings (listener and clusters), for reloads.
    pub fn certificates(&self) -> &Arc<Certificates> {
        &self.certificates
    }

    /// Re-reads every certificate and the plugin folder (blocking: compiles changed
    /// plugins), as SIGHUP and `POST /reload` ask.
    pub fn reload(&self) -> crate::plugin::ReloadReport {
        self.certificates.reload();
        self.registry.reload()
    }

    /// A shutdown's drain timeout has passed: calls still running end with `UNAVAILABLE`.
    pub fn end_remaining_calls(&self) {
        self.drain_passed.store(true, Ordering::Release);
        self.drain.cancel();
    }

    /// The upstream clusters, in configuration order.
    pub fn clusters(&self) -> &[Arc<Cluster>] {
        &self.clusters
    }

    /// The plugin registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Client connections open on each worker thread, once a server serves with this proxy.
    pub fn worker_connections(&self) -> Option<&WorkerConnections> {
        self.worker_connections.get().map(Arc::as_ref)
    }

    /// The counts the serving server keeps (the first call wins: one server per proxy).
    pub(crate) fn serve_with(&self, counts: Arc<WorkerConnections>) -> Arc<WorkerConnections> {
        self.worker_connections.get_or_init(|| counts).clone()
    }

    fn path(&self, plugins: Option<&CallPlugins>, messages: Hooks, frames: Hooks) -> Path {
        let wants = |hook| plugins.is_some_and(|p| p.wants(hook));
        if self.body_mode == BodyMode::Message || wants(messages) {
            Path::Messages
        } else if wants(frames) {
            Path::Frames
        } else {
            Path::Raw
        }
    }

    /// The call metrics.
    pub fn metrics(&self) -> &CallMetrics {
        &self.metrics
    }

    /// The answer to every request made over HTTP/1: gRPC needs HTTP/2.
    pub fn refuse_http1() -> Response<ResponseBody> {
        respond::http_error(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "sluice serves gRPC, which needs HTTP/2\n",
        )
    }

    /// Handles one request a client sent over HTTP/2, recording it (metrics, access log)
    /// when it ends.
    pub async fn handle(&self, request: Request<RecvBody>) -> Response<ResponseBody> {
        let mut record = None;
        // Boxed: the forward state (~2.6 KiB) would otherwise be moved with the stream's
        // task when it is spawned.
        let mut response = Box::pin(self.forward(request, &mut record)).await;
        if let Some(mut record) = record {
            if response.body().is_end_stream() {
                match response.headers().get(&GRPC_STATUS) {
                    Some(status) => record.set_grpc_status(status.as_bytes()),
                    None => record.set_http_status(response.status()),
                }
            } else {
                response.body_mut().observe(record);
            }
        }
        response
    }

    async fn forward(
        &self,
        request: Request<RecvBody>,
        record: &mut Option<CallRecord>,
    ) -> Response<ResponseBody> {
        if request.method() != Method::POST {
            return respond::http_error(StatusCode::METHOD_NOT_ALLOWED, "gRPC calls use POST\n");
        }
        let is_grpc = request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| is_grpc_content_type(ct.as_bytes()));
        if !is_grpc {
            return respond::http_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type must be application/grpc\n",
            );
        }
        let method = MethodName::of(request.uri());
        let (request_link, mut response_link) = call_link();
        let call_record = record.insert(CallRecord::new(
            self.metrics.clone(),
            method.clone(),
            request_link.tally_handle(),
        ));
        let Some(cluster) = self.routes.lookup(&method).cloned() else {
            return respond::error(
                &method,
                Code::Unimplemented,
                format!("sluice: no route for method {method}"),
            );
        };
        call_record.set_cluster(cluster.name());
        let started = Instant::now();
        let deadline = match request.headers().get(&GRPC_TIMEOUT) {
            None => self.default_deadline.map(|limit| started + limit),
            Some(value) => match timeout::parse(value.as_bytes()) {
                Ok(limit) => Some(started + limit),
                Err(err) => return respond::error(&method, Code::Internal, err.to_string()),
            },
        };

        let (mut parts, body) = request.into_parts();
        let chain = self.registry.snapshot();
        let mut plugins = None;
        if !chain.is_empty() {
            let call = Arc::new(CallContext::new(
                method.path_and_query().clone(),
                parts.uri.authority().cloned(),
                deadline.map(Instant::into_std),
            ));
            match CallPlugins::start(&chain, &call) {
                Ok(started) => {
                    if let Some(started) = &started {
                        call_record.set_plugin_actions(started.actions());
                    }
                    plugins = started;
                }
                Err(status) => return respond::error(&method, status.code, status.message),
            }
        }
        if let Some(call_plugins) = &mut plugins {
            if call_plugins.wants(Hooks::REQUEST_HEADERS)
                && let Err(status) = call_plugins.request_headers(&mut parts.headers)
            {
                return respond::error(&method, status.code, status.message);
            }
            if call_plugins.is_empty() {
                // Headers-only plugins are done: the call goes on as if it had none.
                plugins = None;
            }
        }
        let request_path = self.path(
            plugins.as_ref(),
            Hooks::REQUEST_MESSAGES,
            Hooks::REQUEST_FRAMES,
        );
        let response_path = self.path(
            plugins.as_ref(),
            Hooks::RESPONSE_MESSAGES,
            Hooks::RESPONSE_FRAMES,
        );
        let wanted = plugins.as_ref().map_or(Hooks::empty(), CallPlugins::hooks);
        let wants_request_messages = wanted.contains(Hooks::REQUEST_MESSAGES);
        let wants_response_messages = wanted.contains(Hooks::RESPONSE_MESSAGES);
        let wants_response_headers = wanted.contains(Hooks::RESPONSE_HEADERS);
        let wants_trailers = wanted.contains(Hooks::TRAILERS);
        let plugins = plugins.map(|p| Arc::new(Mutex::new(p)));
        let hook = |direction| {
            plugins
                .as_ref()
                .map(|p| BodyHook::new(p.clone(), direction))
        };

        let encoding =
            match Encoding::from_header(parts.headers.get(&GRPC_ENCODING).map(|v| v.as_bytes())) {
                Some(encoding) => encoding,
                None if request_path == Path::Messages => {
                    let mut response = respond::error(
                        &method,
                        Code::Unimplemented,
                        "sluice: unsupported grpc-encoding (supported: identity, gzip)",
                    );
                    response.headers_mut().insert(
                        GRPC_ACCEPT_ENCODING.clone(),
                        HeaderValue::from_static(ACCEPT_ENCODING),
                    );
                    return response;
                }
                None => Encoding::Identity,
            };

        let body = match request_path {
            Path::Messages => RequestBody::message(
                body,
                MessageStage::new(
                    encoding,
                    self.max_message_bytes,
                    hook(Direction::Request).filter(|_| wants_request_messages),
                ),
                request_link,
            ),
            Path::Frames => RequestBody::raw(body, hook(Direction::Request), request_link),
            Path::Raw => RequestBody::raw(body, None, request_link),
        };
        let mut body = body.count().release_when_done(hook(Direction::Request));
        if plugins.is_some() {
            std::future::poll_fn(|cx| {
                body.prefetch(cx);
                std::task::Poll::Ready(())
            })
            .await;
        }
        let mut upstream_request = Request::new(body);
        *upstream_request.method_mut() = Method::POST;
        *upstream_request.uri_mut() = upstream_uri(&parts.uri, &parts.headers);
        *upstream_request.headers_mut() = parts.headers;
        let headers = upstream_request.headers_mut();
        headers.remove(header::HOST);
        headers.remove(header::CONNECTION);
        if request_path == Path::Messages {
            // Messages leave re-framed uncompressed.
            headers.remove(&GRPC_ENCODING);
        }
        if response_path == Path::Messages {
            // The upstream may only pick an encoding this path can decode.
            restrict_accept_encoding(headers);
        }
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(value) = HeaderValue::from_str(&timeout::format(left)) {
                headers.insert(GRPC_TIMEOUT.clone(), value);
            }
        }

        let send = cluster.send(upstream_request);
        // One wait on the drain for the whole call: here, then in the response body.
        let mut drain = Box::pin(self.drain.clone().cancelled_owned());
        let abort = std::future::poll_fn(|cx| response_link.poll_abort(cx));
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let sent = tokio::select! {
            biased;
            status = abort => return respond::error(&method, status.code, status.message),
            () = expired => return respond::error(&method, Code::DeadlineExceeded, "deadline exceeded before the upstream answered"),
            () = drain.as_mut() => return respond::error(&method, Code::Unavailable, "sluice is shutting down"),
            sent = send => sent,
        };
        let (response, in_flight) = match sent {
            Ok(sent) => sent,
            Err(err) => {
                // The request side may have ended the call while the stream opened (its
                // reset is then what failed the stream): its status is the call's.
                if let Some(status) = response_link.take_abort() {
                    return respond::error(&method, status.code, status.message);
                }
                return upstream_error(&method, err);
            }
        };
        if let Some(record) = record {
            record.set_endpoint(in_flight.endpoint());
        }
        let (mut parts, body) = response.into_parts();
        let trailers_hook = hook(Direction::Response).filter(|_| wants_trailers);
        if body.is_end_stream() {
            // A trailers-only response (or an empty one): the headers end the stream.
            if let Some(hook) = &trailers_hook
                && let Err(status) = hook.trailers(&mut parts.headers)
            {
                return respond::error(&method, status.code, status.message);
            }
            return Response::from_parts(parts, ResponseBody::empty());
        }
        if wants_response_headers && let Some(plugins) = &plugins {
            let result = plugins
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .response_headers(&mut parts.headers);
            if let Err(status) = result {
                return respond::error(&method, status.code, status.message);
            }
        }
        let call = CallGuard {
            link: response_link,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            drain: DrainWait::new(self.drain_passed.clone(), drain),
            in_flight,
            method,
            frame_hook: hook(Direction::Response).filter(|_| response_path == Path::Frames),
            trailers_hook,
        };
        let body = if response_path == Path::Messages {
            let response_encoding =
                Encoding::from_header(parts.headers.get(&GRPC_ENCODING).map(|v| v.as_bytes()));
            let Some(encoding) = response_encoding else {
                return respond::error(
                    &call.method,
                    Code::Internal,
                    "upstream answered with an unsupported grpc-encoding",
                );
            };
            parts.headers.remove(&GRPC_ENCODING);
            let hook = hook(Direction::Response).filter(|_| wants_response_messages);
            ResponseBody::message(
                body,
                MessageStage::new(encoding, self.max_message_bytes, hook),
                call,
            )
        } else {
            ResponseBody::raw(body, call)
        };
        Response::from_parts(parts, body)
    }
}

fn upstream_error(method: &str, err: UpstreamError) -> Response<ResponseBody> {
    match &err {
        UpstreamError::Unreachable { .. } => {
            respond::error(method, Code::Unavailable, format!("sluice: {err}"))
        }
        UpstreamError::Request { source, .. } => {
            let reset = remote_reset(source);
            let code = reset.map_or(Code::Unavailable, Code::from_h2_reason);
            respond::status(&Status::new(code, format!("sluice: {err}")))
        }
    }
}

/// The reason of a stream reset the upstream sent, if that is what `err` is.
fn remote_reset(err: &h2::Error) -> Option<h2::Reason> {
    err.reason().filter(|_| err.is_reset() && err.is_remote())
}
