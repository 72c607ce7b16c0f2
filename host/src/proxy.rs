//! The catch-all gRPC handler: every `/package.Service/Method` is accepted, checked,
//! routed to a cluster and forwarded with its metadata, deadline and body; the response
//! comes back with its headers, body and trailers, faithfully.

mod link;
mod message;
mod request_body;
mod respond;
mod response_body;

pub use request_body::{BodyError, RequestBody};
pub use response_body::ResponseBody;

use crate::config::{BodyMode, Config};
use crate::grpc::compression::ACCEPT_ENCODING;
use crate::grpc::{Code, Encoding, Status, timeout};
use crate::routing::RouteTable;
use crate::upstream::{Cluster, UpstreamError};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body::Body as _;
use hyper::body::Incoming;
use link::call_link;
use message::MessageStage;
use response_body::CallGuard;
use std::sync::Arc;
use tokio::time::Instant;

/// The proxy's shared state: routes and upstream clusters.
#[derive(Debug)]
pub struct Proxy {
    routes: RouteTable<Arc<Cluster>>,
    clusters: Vec<Arc<Cluster>>,
    body_mode: BodyMode,
    max_message_bytes: usize,
}

impl Proxy {
    /// Builds routes and clusters from `config`.
    pub fn new(config: &Config) -> Proxy {
        let clusters: Vec<Arc<Cluster>> = config
            .clusters
            .iter()
            .map(|c| Arc::new(Cluster::new(c, &config.limits)))
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
            body_mode: config.body_mode,
            max_message_bytes: config.limits.max_message_bytes,
        }
    }

    /// The upstream clusters, in configuration order.
    pub fn clusters(&self) -> &[Arc<Cluster>] {
        &self.clusters
    }

    /// Handles one request from a client.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        if request.version() != Version::HTTP_2 {
            return respond::http_error(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "sluice serves gRPC, which needs HTTP/2\n",
            );
        }
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
        let method = request.uri().path().to_owned();
        let Some(cluster) = self.routes.lookup(&method).cloned() else {
            return respond::error(
                &method,
                Code::Unimplemented,
                format!("sluice: no route for method {method}"),
            );
        };
        let started = Instant::now();
        let deadline = match request.headers().get("grpc-timeout") {
            None => None,
            Some(value) => match timeout::parse(value.as_bytes()) {
                Ok(limit) => Some(started + limit),
                Err(err) => return respond::error(&method, Code::Internal, err.to_string()),
            },
        };
        let message_path = self.body_mode == BodyMode::Message;
        let encoding = match Encoding::from_header(
            request.headers().get("grpc-encoding").map(|v| v.as_bytes()),
        ) {
            Some(encoding) => encoding,
            None if message_path => {
                let mut response = respond::error(
                    &method,
                    Code::Unimplemented,
                    "sluice: unsupported grpc-encoding (supported: identity, gzip)",
                );
                response.headers_mut().insert(
                    "grpc-accept-encoding",
                    HeaderValue::from_static(ACCEPT_ENCODING),
                );
                return response;
            }
            None => Encoding::Identity,
        };

        let (parts, body) = request.into_parts();
        let (request_link, mut response_link) = call_link();
        let body = if message_path {
            RequestBody::message(
                body,
                MessageStage::new(encoding, self.max_message_bytes),
                request_link,
            )
        } else {
            RequestBody::raw(body, request_link)
        };
        let mut upstream_request = Request::new(body);
        *upstream_request.method_mut() = Method::POST;
        *upstream_request.uri_mut() = upstream_uri(&parts.uri, &parts.headers);
        *upstream_request.headers_mut() = parts.headers;
        let headers = upstream_request.headers_mut();
        headers.remove(header::HOST);
        headers.remove(header::CONNECTION);
        if message_path {
            // Messages leave re-framed uncompressed, and the upstream may only pick an
            // encoding this path can decode.
            headers.remove("grpc-encoding");
            restrict_accept_encoding(headers);
        }
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(value) = HeaderValue::from_str(&timeout::format(left)) {
                headers.insert("grpc-timeout", value);
            }
        }

        let send = cluster.send(upstream_request);
        let abort = std::future::poll_fn(|cx| response_link.poll_abort(cx));
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let (response, in_flight) = tokio::select! {
            biased;
            status = abort => return respond::error(&method, status.code, status.message),
            () = expired => return respond::error(&method, Code::DeadlineExceeded, "deadline exceeded before the upstream answered"),
            sent = send => match sent {
                Ok(sent) => sent,
                Err(err) => return upstream_error(&method, err),
            },
        };
        let (parts, body) = response.into_parts();
        if body.is_end_stream() {
            // A trailers-only response (or an empty one): the headers end the stream.
            return Response::from_parts(parts, ResponseBody::empty());
        }
        let response_encoding =
            Encoding::from_header(parts.headers.get("grpc-encoding").map(|v| v.as_bytes()));
        let call = CallGuard {
            link: response_link,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            in_flight,
            method,
        };
        let mut parts = parts;
        let body = if message_path {
            let Some(encoding) = response_encoding else {
                return respond::error(
                    &call.method,
                    Code::Internal,
                    "upstream answered with an unsupported grpc-encoding",
                );
            };
            parts.headers.remove("grpc-encoding");
            ResponseBody::message(
                body,
                MessageStage::new(encoding, self.max_message_bytes),
                call,
            )
        } else {
            ResponseBody::raw(body, call)
        };
        Response::from_parts(parts, body)
    }
}

/// Keeps only the encodings the message path can decode in `grpc-accept-encoding`.
fn restrict_accept_encoding(headers: &mut http::HeaderMap) {
    let Some(value) = headers.get("grpc-accept-encoding") else {
        return;
    };
    let kept: Vec<&str> = value
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|name| Encoding::from_header(Some(name.as_bytes())).is_some())
        .collect();
    match HeaderValue::from_str(&kept.join(",")) {
        Ok(value) if !kept.is_empty() => {
            headers.insert("grpc-accept-encoding", value);
        }
        _ => {
            headers.remove("grpc-accept-encoding");
        }
    }
}

fn is_grpc_content_type(value: &[u8]) -> bool {
    value == b"application/grpc"
        || value.starts_with(b"application/grpc+")
        || value.starts_with(b"application/grpc;")
}

/// The URI sent upstream: same path, the client's authority.
fn upstream_uri(uri: &Uri, headers: &http::HeaderMap) -> Uri {
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "upstream".to_owned());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| uri.clone())
}

fn upstream_error(method: &str, err: UpstreamError) -> Response<ResponseBody> {
    match &err {
        UpstreamError::Unreachable { .. } => {
            respond::error(method, Code::Unavailable, format!("sluice: {err}"))
        }
        UpstreamError::Request { source, .. } => {
            let reset = std::error::Error::source(source)
                .and_then(|s| s.downcast_ref::<h2::Error>())
                .filter(|h2| h2.is_reset() && h2.is_remote())
                .and_then(h2::Error::reason);
            let code = reset.map_or(Code::Unavailable, Code::from_h2_reason);
            respond::status(&Status::new(code, format!("sluice: {err}")))
        }
    }
}
