//! Header work on the way through: what the upstream request is sent to, which encodings
//! the message path lets the upstream choose, and what counts as a gRPC content type.

use crate::grpc::Encoding;
use crate::grpc::names::GRPC_ACCEPT_ENCODING;
use http::{HeaderValue, Uri, header};

/// Keeps only the encodings the message path can decode in `grpc-accept-encoding`.
pub fn restrict_accept_encoding(headers: &mut http::HeaderMap) {
    let Some(value) = headers.get(&GRPC_ACCEPT_ENCODING) else {
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
            headers.insert(GRPC_ACCEPT_ENCODING.clone(), value);
        }
        _ => {
            headers.remove(&GRPC_ACCEPT_ENCODING);
        }
    }
}

pub fn is_grpc_content_type(value: &[u8]) -> bool {
    value == b"application/grpc"
        || value.starts_with(b"application/grpc+")
        || value.starts_with(b"application/grpc;")
}

/// The URI sent upstream: same path, the client's authority.
pub fn upstream_uri(uri: &Uri, headers: &http::HeaderMap) -> Uri {
    // The common case (an HTTP/2 client sends :scheme http and :authority): reuse it, no
    // parsing or allocation.
    if uri.scheme() == Some(&http::uri::Scheme::HTTP) && uri.authority().is_some() {
        return uri.clone();
    }
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
