//! Test kit for Sluice's integration tests: the generated test protos, a tonic upstream that
//! implements the test service (and the example greeter), a running proxy fixture and a
//! few helpers for raw HTTP/2 and gRPC framing.

pub mod certs;
pub mod fixture;
pub mod greeter;
pub mod middlebox;
pub mod plugins;
pub mod process;
pub mod raw;
pub mod test_service;

/// Generated protobuf types and tonic stubs.
pub mod pb {
    /// `sluice.testing`: the interop-style test service.
    pub mod testing {
        tonic::include_proto!("sluice.testing");
    }
    /// `helloworld`: the example greeter.
    pub mod helloworld {
        tonic::include_proto!("helloworld");
    }
}
