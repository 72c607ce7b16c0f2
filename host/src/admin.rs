//! The admin listener (HTTP/1.1, off unless `--admin` is set): `GET /metrics`
//! (Prometheus), `GET /plugins` (JSON), `POST /reload` (plugins and
//! certificates), `GET /healthz`, `GET /readyz`.

use crate::proxy::Proxy;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(handle(request, proxy).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(err) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            err.to_string(),
        ),
    }
}

async fn handle(request: Request<Incoming>, proxy: Arc<Proxy>) -> Response<Full<Bytes>> {
    let registry = proxy.registry().clone();
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") | (&Method::GET, "/readyz") => {
            reply(StatusCode::OK, "text/plain", "ok\n")
        }
        (&Method::GET, "/plugins") => json(&registry.states()),
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(&proxy),
        ),
        (&Method::POST, "/reload") => {
            let proxy = proxy.clone();
            match tokio::task::spawn_blocking(move || proxy.reload()).await {
                Ok(report) => {
                    tracing::info!(loaded = ?report.loaded, refused = report.refused.len(), "reload requested over the admin listener");
                    json(&report)
                }
                Err(err) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    err.to_string(),
                ),
            }
        }
        (_, "/healthz" | "/readyz" | "/plugins" | "/reload") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}
