//! The gRPC header names the proxy looks up on every call, built once: a lookup by a
//! `&str` parses the name each time, one by a `HeaderName` only hashes it.

use http::HeaderName;

/// `grpc-status`: the call's status code.
pub static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`: the status message.
pub static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-timeout`: the call's deadline.
pub static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// `grpc-encoding`: how the sender compressed its messages.
pub static GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
/// `grpc-accept-encoding`: which compressions the sender can read.
pub static GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
