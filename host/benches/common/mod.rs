//! What the plugin benches share: the built example plugins, loaded with a config, and a
//! call's request message stage to put framed messages through.

use bytes::{Bytes, BytesMut};
use sluice::grpc::{Encoding, encode_message};
use sluice::plugin::{
    BodyHook, CallContext, CallPlugins, Chain, Direction, LoadedPlugin, PluginLimits, Runtime,
};
use sluice::proxy::MessageStage;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// `name.wasm` as `scripts/build-plugins.sh` builds it.
pub fn wasm(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../target/wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.exists(),
        "{} missing: run scripts/build-plugins.sh first",
        path.display()
    );
    path
}

/// Loads `name.wasm` with `config` written beside a copy of it.
pub fn load(runtime: &Runtime, name: &str, config: &str) -> Arc<LoadedPlugin> {
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.wasm"));
    std::fs::copy(wasm(name), &file).unwrap();
    std::fs::write(dir.join(format!("{name}.toml")), config).unwrap();
    Arc::new(LoadedPlugin::load(runtime, &file, PluginLimits::default()).unwrap())
}

/// A new call of `/bench.Svc/Call`.
pub fn new_call() -> Arc<CallContext> {
    Arc::new(CallContext::new(
        http::uri::PathAndQuery::from_static("/bench.Svc/Call"),
        Some(http::uri::Authority::from_static("bench")),
        None,
    ))
}

/// The request message stage of a new call through `chain`.
pub fn request_stage(chain: &Chain) -> MessageStage {
    let call = CallPlugins::start(chain, &new_call()).unwrap();
    let hook = call.map(|c| BodyHook::new(Arc::new(Mutex::new(c)), Direction::Request));
    MessageStage::new(Encoding::Identity, 64 << 20, hook)
}

/// `message` with its gRPC length prefix.
pub fn framed(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::new();
    encode_message(message, &mut framed);
    framed.freeze()
}
