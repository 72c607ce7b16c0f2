//! Sluice: a gRPC reverse proxy whose filters are WebAssembly plugins.
//!
//! The library holds everything; the `sluice` binary only parses flags, sets up logging
//! and runs a [`Server`].

pub mod admin;
pub mod cli;
pub mod config;
pub mod grpc;
pub mod h2_shared;
pub mod metrics;
pub mod plugin;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod watch;
pub mod worker;

pub use config::{BodyMode, Config, ConfigError, Overrides};
pub use server::{Server, ServerError};
