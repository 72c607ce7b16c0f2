//! The wasmtime runtime shared by all plugins: one `Engine` (component model, pooling
//! allocator, epoch interruption driven by a ticker thread), a linker per plugin with the
//! host imports, and the per-instance store with its memory cap.
//!
//! WASI: a `wasm32-wasip2` component imports WASI interfaces whether it uses them or not.
//! Plugins get only `wasi:random` (hash maps need a seed), an empty `wasi:cli/environment`
//! and `wasi:cli/exit`; every other import (files, sockets, clocks, stdio, streams) is
//! linked to a function that traps. So a plugin cannot reach the outside, and writing to
//! stdout/stderr ends the call like any other trap (plugins log through the `log` import).
//! (wasmtime-wasi's synchronous stream functions would also block on the proxy's own
//! async runtime, which they must not.)

use super::bindings::{Plugin, PluginPre};
use super::idle::IdlePool;
use super::store::{PluginCounters, StoreData};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceType};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
};
use wasmtime_wasi::WasiCtx;

/// How often the epoch advances; hook deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Set (to anything) in the environment, the proxy writes `/tmp/perf-<pid>.map`, so that
/// `perf report` names the plugins' functions instead of showing bare JIT addresses.
pub const PERF_MAP_VARIABLE: &str = "SLUICE_WASM_PERFMAP";

/// Set (to anything) in the environment, plugin memories get no guard regions and at most
/// [`SMALL_MEMORY_BYTES`] each, and compiled plugins check their memory accesses instead:
/// slower plugins, but the instance pool then reserves little enough address space for
/// the proxy to run under valgrind (`benches/instructions.py --plugins chain`). For
/// profiling only.
pub const SMALL_MEMORIES_VARIABLE: &str = "SLUICE_WASM_SMALL_MEMORIES";

/// The largest plugin memory with [`SMALL_MEMORIES_VARIABLE`] set.
pub const SMALL_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// What a call does when one of its plugins fails (traps, times out, breaks a limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// The call ends with `UNAVAILABLE`, naming the plugin.
    #[default]
    FailClosed,
    /// The plugin is skipped for the rest of the call (logged and counted).
    FailOpen,
}

/// Limits and failure policy applied to every instance of a plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginLimits {
    /// CPU time one hook call may take before it is interrupted.
    pub hook_deadline: Duration,
    /// Linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// Largest `modify` output (message, frame) a plugin may return.
    pub max_output_bytes: usize,
    /// Largest state a plugin may keep for one call with `set-call-state`.
    pub max_call_state_bytes: usize,
    /// What a failure of the plugin does to the call.
    pub on_error: FailurePolicy,
}

impl Default for PluginLimits {
    fn default() -> PluginLimits {
        PluginLimits {
            hook_deadline: Duration::from_millis(100),
            memory_bytes: 64 * 1024 * 1024,
            max_output_bytes: 16 * 1024 * 1024,
            max_call_state_bytes: 64 * 1024,
            on_error: FailurePolicy::FailClosed,
        }
    }
}

impl PluginLimits {
    /// The deadline in epoch ticks (at least one full tick).
    pub fn deadline_ticks(&self) -> u64 {
        (self.hook_deadline.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
    }
}

/// The imports plugins get for real, by interface (any 0.2.x version of the WASI ones).
const PROVIDED_IMPORTS: [&str; 7] = [
    "sluice:filter/host",
    "sluice:filter/types",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
];

/// Links every other imported interface of `component` to functions that trap.
fn stub_other_imports(
    linker: &mut Linker<StoreData>,
    component: &Component,
    engine: &Engine,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    let component_type = component.component_type();
    for (name, import) in component_type.imports(engine) {
        let interface = name.split('@').next().unwrap_or(name);
        if PROVIDED_IMPORTS.contains(&interface) {
            continue;
        }
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            continue;
        };
        let mut stubs = linker.instance(name)?;
        for (item, export) in instance.exports(engine) {
            match export.ty {
                ComponentItem::ComponentFunc(_) => {
                    let what = format!("{interface}#{item}");
                    stubs.func_new(item, move |_, _, _, _| {
                        Err(wasmtime::Error::msg(format!("plugins may not use {what}")))
                    })?;
                }
                ComponentItem::Resource(_) => {
                    stubs.resource(item, ResourceType::host::<()>(), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The interface package this proxy speaks, as `sdk/wit/filter.wit` declares it (a test
/// checks they agree).
pub const INTERFACE_PACKAGE: &str = "sluice:filter@0.4.0";

/// Refuses a plugin built against another version of the interface with a message that
/// says so (the linker's own error only names a function of the wrong type).
fn check_interface_version(component: &Component, engine: &Engine) -> Result<(), String> {
    let component_type = component.component_type();
    let names = component_type
        .imports(engine)
        .map(|(name, _)| name)
        .chain(component_type.exports(engine).map(|(name, _)| name));
    for name in names {
        let Some((package, version)) = name.split_once('@') else {
            continue;
        };
        let Some((namespace_name, _interface)) = package.split_once('/') else {
            continue;
        };
        let ours = INTERFACE_PACKAGE
            .split_once('@')
            .expect("a versioned package");
        if namespace_name == ours.0 && version != ours.1 {
            return Err(format!(
                "built against {namespace_name}@{version}, but this proxy speaks \
                 {INTERFACE_PACKAGE}: rebuild the plugin with the sluice-sdk of this release"
            ));
        }
    }
    Ok(())
}

/// Why a plugin could not be compiled or run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be created.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
}

/// The shared engine and linker.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    /// Every loaded version's idle instances: given up when the instance pool is full.
    idle_pools: Arc<Mutex<Vec<std::sync::Weak<IdlePool>>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// A running instance of one plugin version, with its own store.
pub struct Instance {
    /// The store (memory, limits, host state).
    pub store: Store<StoreData>,
    /// The typed exports.
    pub plugin: Plugin,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Creates the engine (and its epoch ticker thread) and the linker, for at most
    /// `instances` plugin instances alive at once. With `cache`, compiled plugins are
    /// cached in that (private) folder, keyed by their content.
    pub fn new(cache: Option<&std::path::Path>, instances: u32) -> Result<Runtime, RuntimeError> {
        let mut config = wasmtime::Config::new();
        if let Some(dir) = cache {
            let mut cache_config = wasmtime::CacheConfig::new();
            cache_config.with_directory(dir);
            let cache = wasmtime::Cache::new(cache_config).map_err(|e| {
                RuntimeError::Engine(format!("plugin cache {}: {e}", dir.display()))
            })?;
            config.cache(Some(cache));
        }
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.concurrency_support(false);
        if std::env::var_os(PERF_MAP_VARIABLE).is_some() {
            // Names the plugins' compiled functions for `perf` (in /tmp/perf-PID.map).
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let small_memories = std::env::var_os(SMALL_MEMORIES_VARIABLE).is_some();
        if small_memories {
            config
                .memory_reservation(SMALL_MEMORY_BYTES as u64)
                .memory_guard_size(0)
                .guard_before_linear_memory(false);
        }
        let mut pool = PoolingAllocationConfig::default();
        // A plugin component has a few core instances, memories and tables of its own.
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(4))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(4))
            .max_memory_size(if small_memories {
                SMALL_MEMORY_BYTES
            } else {
                256 * 1024 * 1024
            });
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Runtime {
            engine,
            idle_pools: Arc::default(),
        })
    }

    /// The host imports plus the few WASI interfaces plugins may use.
    fn linker(&self) -> wasmtime::Result<Linker<StoreData>> {
        use wasmtime_wasi::cli::{WasiCli, WasiCliCtxView};
        use wasmtime_wasi::p2::bindings::{cli, random};
        use wasmtime_wasi::random::WasiRandom;
        let mut linker = Linker::<StoreData>::new(&self.engine);
        Plugin::add_to_linker::<StoreData, HasSelf<StoreData>>(&mut linker, |data| data)?;
        random::random::add_to_linker::<StoreData, WasiRandom>(&mut linker, |d| d.wasi.random())?;
        random::insecure::add_to_linker::<StoreData, WasiRandom>(&mut linker, |d| d.wasi.random())?;
        random::insecure_seed::add_to_linker::<StoreData, WasiRandom>(&mut linker, |d| {
            d.wasi.random()
        })?;
        fn cli_view(d: &mut StoreData) -> WasiCliCtxView<'_> {
            WasiCliCtxView {
                ctx: d.wasi.cli(),
                table: &mut d.table,
            }
        }
        cli::environment::add_to_linker::<StoreData, WasiCli>(&mut linker, cli_view)?;
        cli::exit::add_to_linker::<StoreData, WasiCli>(&mut linker, cli_view)?;
        Ok(linker)
    }

    /// Compiles a component (slow: call off the async runtime).
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, String> {
        Component::new(&self.engine, bytes).map_err(|e| format!("not a valid component: {e:#}"))
    }

    /// Links a compiled component against the host imports, checking it is a plugin.
    pub fn prepare(&self, component: &Component) -> Result<PluginPre<StoreData>, String> {
        check_interface_version(component, &self.engine)?;
        let mut linker = self
            .linker()
            .map_err(|e| format!("cannot set up the host imports: {e:#}"))?;
        stub_other_imports(&mut linker, component, &self.engine)
            .map_err(|e| format!("imports not satisfiable: {e:#}"))?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| format!("imports not satisfiable: {e:#}"))?;
        PluginPre::new(pre)
            .map_err(|e| format!("does not export the sluice:filter interface: {e:#}"))
    }

    /// A new idle pool (a shard per core), given up by [`Runtime::instantiate`] when the
    /// instance pool is full.
    pub fn idle_pool(&self) -> Arc<IdlePool> {
        let pool = Arc::new(IdlePool::new(crate::worker::cores()));
        let mut pools = self.idle_pools.lock().expect("idle pools lock");
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(&pool));
        pool
    }

    /// Drops every idle instance of every plugin; how many.
    fn drop_idle_instances(&self) -> usize {
        let pools: Vec<_> = self
            .idle_pools
            .lock()
            .expect("idle pools lock")
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        pools
            .iter()
            .map(|pool| {
                // Taken under the locks, dropped after them: a checkout need not wait.
                let idle = pool.drain();
                idle.len()
            })
            .sum()
    }

    /// A new instance with its own store, memory cap and no WASI capabilities. When the
    /// instance pool is full, idle instances (of any plugin) are given up for it.
    pub fn instantiate(
        &self,
        pre: &PluginPre<StoreData>,
        name: Arc<str>,
        counters: Arc<PluginCounters>,
        limits: &PluginLimits,
    ) -> Result<Instance, String> {
        match self.try_instantiate(pre, name.clone(), counters.clone(), limits) {
            Err(err)
                if err
                    .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some() =>
            {
                let dropped = self.drop_idle_instances();
                tracing::debug!(
                    dropped,
                    "plugin instance pool full: idle instances given up"
                );
                self.try_instantiate(pre, name, counters, limits)
            }
            result => result,
        }
        .map_err(|e| format!("instantiation failed: {e:#}"))
    }

    fn try_instantiate(
        &self,
        pre: &PluginPre<StoreData>,
        name: Arc<str>,
        counters: Arc<PluginCounters>,
        limits: &PluginLimits,
    ) -> wasmtime::Result<Instance> {
        let data = StoreData::new(
            WasiCtx::builder().build(),
            StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            name,
            counters,
            limits.max_call_state_bytes,
        );
        let mut store = Store::new(&self.engine, data);
        store.limiter(|data| &mut data.limits);
        store.set_epoch_deadline(limits.deadline_ticks());
        let plugin = pre.instantiate(&mut store)?;
        Ok(Instance { store, plugin })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_interface_version_is_the_one_of_the_wit_file() {
        let wit = include_str!("../../../sdk/wit/filter.wit");
        let package = format!("package {};", super::INTERFACE_PACKAGE);
        assert!(
            wit.lines().any(|line| line == package),
            "{package} not in filter.wit"
        );
    }
}
