//! The plugin registry: every `*.wasm` of the plugin folder compiled, linked, configured
//! and ordered by file name into a [`Chain`]. The current chain sits behind one atomic
//! pointer: a call takes a snapshot when it starts and keeps it to the end, so swapping in
//! a new chain is a single store.

use super::bindings::{Hooks, PluginPre};
use super::runtime::{Instance, PluginCounters, PluginLimits, Runtime, StoreData};
use crate::config::BodyMode;
use crate::routing::Pattern;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Idle instances kept per plugin version for reuse.
const MAX_IDLE_INSTANCES: usize = 64;

/// One loaded version of a plugin.
pub struct LoadedPlugin {
    name: Arc<str>,
    file: PathBuf,
    config: String,
    hooks: Hooks,
    methods: Vec<Pattern>,
    pre: PluginPre<StoreData>,
    runtime: Runtime,
    limits: PluginLimits,
    counters: Arc<PluginCounters>,
    idle: Mutex<Vec<Instance>>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Compiles, links and configures the plugin in `file` (with `NAME.toml` beside it as
    /// config). Blocking: compiling takes milliseconds to seconds.
    pub fn load(
        runtime: &Runtime,
        file: &Path,
        limits: PluginLimits,
    ) -> Result<LoadedPlugin, String> {
        let name: Arc<str> = file
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("file name is not UTF-8")?
            .into();
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
        let config_path = file.with_extension("toml");
        let config = match std::fs::read_to_string(&config_path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(format!("cannot read {}: {err}", config_path.display())),
        };
        let component = runtime.compile(&bytes)?;
        let pre = runtime.prepare(&component)?;
        let counters = Arc::new(PluginCounters::default());
        let mut instance = runtime.instantiate(&pre, name.clone(), counters.clone(), &limits)?;
        let interest = instance
            .plugin
            .sluice_filter_filter()
            .call_configure(&mut instance.store, &config)
            .map_err(|e| format!("configure trapped: {e:#}"))?
            .map_err(|e| format!("configure refused the config: {e}"))?;
        let methods = if interest.methods.is_empty() {
            vec![Pattern::Any]
        } else {
            interest
                .methods
                .iter()
                .map(|m| Pattern::parse(m).map_err(|e| format!("configure returned {e}")))
                .collect::<Result<_, _>>()?
        };
        Ok(LoadedPlugin {
            name,
            file: file.to_owned(),
            config,
            hooks: interest.hooks,
            methods,
            pre,
            runtime: runtime.clone(),
            limits,
            counters,
            idle: Mutex::new(vec![instance]),
        })
    }

    /// The plugin's name (its file name without `.wasm`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hooks it asked for.
    pub fn hooks(&self) -> Hooks {
        self.hooks
    }

    /// Whether it wants calls of `method`.
    pub fn wants(&self, method: &str) -> bool {
        self.methods.iter().any(|p| p.matches(method))
    }

    /// Its limits.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Its counters (from the `counter-add` import).
    pub fn counters(&self) -> &PluginCounters {
        &self.counters
    }

    /// An instance for one call: a reused idle one, or a new configured one.
    pub fn checkout(&self) -> Result<Instance, String> {
        if let Some(instance) = self.idle.lock().expect("idle lock").pop() {
            return Ok(instance);
        }
        let mut instance = self.runtime.instantiate(
            &self.pre,
            self.name.clone(),
            self.counters.clone(),
            &self.limits,
        )?;
        instance
            .store
            .set_epoch_deadline(self.limits.deadline_ticks());
        instance
            .plugin
            .sluice_filter_filter()
            .call_configure(&mut instance.store, &self.config)
            .map_err(|e| format!("configure trapped: {e:#}"))?
            .map_err(|e| format!("configure refused the config: {e}"))?;
        Ok(instance)
    }

    /// Returns a healthy instance for reuse.
    pub fn checkin(&self, instance: Instance) {
        let mut idle = self.idle.lock().expect("idle lock");
        if idle.len() < MAX_IDLE_INSTANCES {
            idle.push(instance);
        }
    }
}

/// The ordered plugins in force.
#[derive(Debug, Default)]
pub struct Chain {
    plugins: Vec<Arc<LoadedPlugin>>,
}

impl Chain {
    /// A chain of these plugins, in this order.
    pub fn new(plugins: Vec<Arc<LoadedPlugin>>) -> Chain {
        Chain { plugins }
    }

    /// The plugins, in file-name order.
    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    /// Whether there are no plugins.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }
}

/// The registry: the current chain behind one atomic pointer.
#[derive(Debug)]
pub struct Registry {
    current: ArcSwap<Chain>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            current: ArcSwap::from_pointee(Chain::default()),
        }
    }
}

impl Registry {
    /// Loads every `*.wasm` in `dir`, in file-name order. A plugin that fails to load is
    /// logged with the reason and left out; the others serve.
    pub fn load_dir(
        runtime: &Runtime,
        dir: &Path,
        body_mode: BodyMode,
        limits: &PluginLimits,
    ) -> Registry {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| is_plugin_file(p))
                .collect(),
            Err(err) => {
                tracing::error!(dir = %dir.display(), "cannot read the plugin folder: {err}");
                Vec::new()
            }
        };
        files.sort();
        let mut plugins = Vec::new();
        for file in files {
            let loaded = LoadedPlugin::load(runtime, &file, limits.clone()).and_then(|plugin| {
                let wants_messages = plugin
                    .hooks
                    .intersects(Hooks::REQUEST_MESSAGES | Hooks::RESPONSE_MESSAGES);
                if wants_messages && body_mode == BodyMode::Raw {
                    Err(
                        "it wants messages, but --body-mode is raw (use auto or message)"
                            .to_owned(),
                    )
                } else {
                    Ok(plugin)
                }
            });
            match loaded {
                Ok(plugin) => {
                    tracing::info!(plugin = plugin.name(), file = %file.display(), hooks = ?plugin.hooks, "plugin loaded");
                    plugins.push(Arc::new(plugin));
                }
                Err(reason) => {
                    tracing::error!(file = %file.display(), "plugin refused: {reason}");
                }
            }
        }
        Registry {
            current: ArcSwap::from_pointee(Chain::new(plugins)),
        }
    }

    /// The chain in force now; a call keeps it to its end.
    pub fn snapshot(&self) -> Arc<Chain> {
        self.current.load_full()
    }

    /// Puts `chain` in force for new calls.
    pub fn swap(&self, chain: Chain) {
        self.current.store(Arc::new(chain));
    }
}

/// `*.wasm`, not hidden, not a temporary file.
fn is_plugin_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && name.ends_with(".wasm") && path.is_file()
}
