//! Responses the proxy makes itself: gRPC trailers-only status responses and the plain HTTP
//! errors for requests that are not gRPC at all.

use super::response_body::ResponseBody;
use crate::grpc::{Code, Status};
use http::{HeaderValue, Response, StatusCode, header};

/// A trailers-only gRPC response carrying `status`.
pub fn status(status: &Status) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    status.write_to(headers);
    response
}

/// A trailers-only gRPC response with `code` and `message`, logged.
pub fn error(method: &str, code: Code, message: impl Into<String>) -> Response<ResponseBody> {
    let status = Status::new(code, message);
    tracing::info!(%method, code = ?status.code, "call refused: {}", status.message);
    self::status(&status)
}

/// A plain HTTP error for a request that is not gRPC.
pub fn http_error(code: StatusCode, message: &'static str) -> Response<ResponseBody> {
    tracing::info!(
        status = code.as_u16(),
        "non-gRPC request refused: {message}"
    );
    let mut response = Response::new(ResponseBody::text(message));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
