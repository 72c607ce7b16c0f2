//! gRPC wire details the proxy needs without any generated stubs: status codes and
//! status responses, the `grpc-timeout` header, the length-prefixed message codec and
//! message compression.

pub mod codec;
pub mod compression;
pub mod counter;
pub mod names;
pub mod status;
pub mod timeout;

pub use codec::{Deframed, Deframer, FrameError, encode_message};
pub use compression::Encoding;
pub use status::{Code, Status};
