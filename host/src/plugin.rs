//! WebAssembly filter plugins: the wasmtime runtime and its limits, the registry of loaded
//! plugin versions (swapped atomically), and the per-call chain that runs their hooks.

pub mod bindings;
pub mod chain;
pub mod registry;
pub mod runtime;

pub use chain::{BodyHook, CallPlugins, Direction};
pub use registry::{Chain, LoadedPlugin, Registry};
pub use runtime::{PluginLimits, Runtime};
