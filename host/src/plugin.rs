//! WebAssembly filter plugins: the wasmtime runtime and its limits, the registry of loaded
//! plugin versions (swapped atomically), and the per-call chain that runs their hooks.

pub mod bindings;
pub mod chain;
pub mod idle;
pub mod loaded;
pub mod registry;
pub mod runtime;
pub mod stats;
pub mod store;
pub mod verdict;
pub mod watcher;
pub mod wit_headers;

pub use chain::{BodyHook, CallPlugins, Direction};
pub use loaded::LoadedPlugin;
pub use registry::{Chain, PluginSource, PluginState, Registry, ReloadReport};
pub use runtime::{FailurePolicy, PluginLimits, Runtime};
pub use store::CallContext;
