//! Compiles the test protos with the protoc shipped by `protoc-bin-vendored`, so no system
//! protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    unsafe_set_protoc(&protoc);
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/sluice/testing/interop.proto",
            "proto/helloworld/helloworld.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}

#[allow(unsafe_code)]
fn unsafe_set_protoc(path: &std::path::Path) {
    // SAFETY: the build script runs on one thread; nothing reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", path) };
}
