//! The plugin registry: every `*.wasm` of the plugin folder compiled, linked, configured
//! and ordered by file name into a [`Chain`]. The chain in force sits behind one atomic
//! pointer: a call takes a snapshot when it starts and keeps it to its end, so a reload
//! swaps in a new chain with a single store. A reload reuses every plugin whose bytes and
//! config are unchanged, and keeps the last good version of a plugin whose new version
//! is refused.

use super::loaded::{LoadedPlugin, digest, read_version};
use super::runtime::Runtime;
use crate::config::{BodyMode, PluginPolicies};
use arc_swap::ArcSwap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, UNIX_EPOCH};

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

/// Where plugins come from and how they are loaded.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// The shared wasm runtime.
    pub runtime: Runtime,
    /// The plugin folder.
    pub dir: PathBuf,
    /// The proxy's body mode (raw refuses plugins that want messages).
    pub body_mode: BodyMode,
    /// Limits and failure policies.
    pub policies: PluginPolicies,
}

/// What the admin plugin list shows for one plugin.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PluginState {
    /// File stem.
    pub name: String,
    /// The `.wasm` file.
    pub file: String,
    /// SHA-256 of the version serving (or of the refused file, if none serves).
    pub sha256: String,
    /// When the serving version was loaded (seconds since the Unix epoch).
    pub loaded_at: Option<u64>,
    /// Hooks of the serving version.
    pub hooks: Vec<&'static str>,
    /// Method patterns of the serving version.
    pub methods: Vec<String>,
    /// `loaded`, `refused` (nothing serves) or `stale` (a newer file was refused; the last
    /// good version serves).
    pub state: &'static str,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// Digest of the refused version (bytes and config), if the last attempt failed: the
    /// same version is not tried again.
    pub refused_sha256: Option<String>,
}

/// What one reload did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReloadReport {
    /// Plugins (re)loaded from new bytes or config.
    pub loaded: Vec<String>,
    /// Plugins kept as they were.
    pub unchanged: Vec<String>,
    /// Plugins refused, with the reason.
    pub refused: Vec<(String, String)>,
    /// Plugins whose file went away.
    pub removed: Vec<String>,
    /// How long the reload took, in milliseconds.
    pub millis: u64,
}

/// Counts of load results since start.
#[derive(Debug, Default)]
pub struct LoadCounters {
    /// Plugin versions loaded.
    pub loaded: AtomicU64,
    /// Plugin versions refused.
    pub refused: AtomicU64,
    /// Reloads run.
    pub reloads: AtomicU64,
}

/// The registry: the current chain behind one atomic pointer.
#[derive(Debug, Default)]
pub struct Registry {
    current: ArcSwap<Chain>,
    source: Option<PluginSource>,
    states: Mutex<BTreeMap<String, PluginState>>,
    reloading: Mutex<()>,
    counters: LoadCounters,
}

impl Registry {
    /// A registry loading from `source`, with its first load done.
    pub fn open(source: PluginSource) -> Registry {
        let registry = Registry {
            source: Some(source),
            ..Registry::default()
        };
        registry.reload();
        registry
    }

    /// The chain in force now; a call keeps it to its end.
    pub fn snapshot(&self) -> Arc<Chain> {
        self.current.load_full()
    }

    /// The plugin folder, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.source.as_ref().map(|s| s.dir.as_path())
    }

    /// The admin view of every plugin, by name.
    pub fn states(&self) -> Vec<PluginState> {
        self.states
            .lock()
            .expect("states lock")
            .values()
            .cloned()
            .collect()
    }

    /// Load results since start.
    pub fn counters(&self) -> &LoadCounters {
        &self.counters
    }

    /// Re-reads the plugin folder and swaps in the new chain. Blocking (compiles): call
    /// it off the async runtime. One reload runs at a time.
    pub fn reload(&self) -> ReloadReport {
        let Some(source) = &self.source else {
            return ReloadReport::default();
        };
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
        let current = self.snapshot();
        let mut report = ReloadReport::default();
        let mut plugins = Vec::new();
        let mut states = BTreeMap::new();
        for file in plugin_files(&source.dir) {
            let Some(name) = file.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            let previous = current.plugins().iter().find(|p| p.name() == name).cloned();
            let limits = source.policies.for_plugin(&name).clone();
            let read = read_version(&file);
            let unchanged = match (&read, &previous) {
                (Ok((bytes, config)), Some(previous)) => {
                    previous.sha256() == digest(bytes)
                        && previous.config() == config
                        && *previous.limits() == limits
                }
                _ => false,
            };
            // A file refused before, unchanged since: refused again, quietly.
            let known_bad = self.states.lock().expect("states lock").get(&name).cloned().filter(|state| {
                state.last_error.is_some()
                    && matches!(&read, Ok((bytes, config)) if state.refused_sha256.as_deref() == Some(version_digest(bytes, config).as_str()))
            });
            if !unchanged && let Some(state) = known_bad {
                report
                    .refused
                    .push((name.clone(), state.last_error.clone().unwrap_or_default()));
                states.insert(name, state);
                plugins.extend(previous);
                continue;
            }
            if unchanged && let Some(previous) = previous {
                report.unchanged.push(name.clone());
                let mut state = self
                    .states
                    .lock()
                    .expect("states lock")
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| served(&previous));
                state.state = "loaded";
                state.last_error = None;
                states.insert(name, state);
                plugins.push(previous);
                continue;
            }
            let refused_sha256 = read
                .as_ref()
                .map(|(bytes, config)| version_digest(bytes, config))
                .unwrap_or_default();
            let loaded = read.and_then(|(bytes, config)| {
                let plugin =
                    LoadedPlugin::compile(&source.runtime, &name, &file, &bytes, config, limits)?;
                if plugin.wants_messages() && source.body_mode == BodyMode::Raw {
                    return Err(
                        "it wants messages, but --body-mode is raw (use auto or message)"
                            .to_owned(),
                    );
                }
                Ok(plugin)
            });
            match loaded {
                Ok(plugin) => {
                    tracing::info!(plugin = %name, file = %file.display(), sha256 = plugin.sha256(), hooks = ?plugin.hook_names(), "plugin loaded");
                    self.counters.loaded.fetch_add(1, Ordering::Relaxed);
                    let plugin = Arc::new(plugin);
                    states.insert(name.clone(), served(&plugin));
                    report.loaded.push(name);
                    plugins.push(plugin);
                }
                Err(reason) => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    let kept = previous.is_some();
                    tracing::error!(plugin = %name, file = %file.display(), kept_last_good = kept, "plugin refused: {reason}");
                    let state = match &previous {
                        Some(previous) => PluginState {
                            state: "stale",
                            last_error: Some(reason.clone()),
                            refused_sha256: Some(refused_sha256.clone()),
                            ..served(previous)
                        },
                        None => PluginState {
                            name: name.clone(),
                            file: file.display().to_string(),
                            sha256: std::fs::read(&file).map(|b| digest(&b)).unwrap_or_default(),
                            loaded_at: None,
                            hooks: Vec::new(),
                            methods: Vec::new(),
                            state: "refused",
                            last_error: Some(reason.clone()),
                            refused_sha256: Some(refused_sha256.clone()),
                        },
                    };
                    states.insert(name.clone(), state);
                    report.refused.push((name, reason));
                    if let Some(previous) = previous {
                        plugins.push(previous);
                    }
                }
            }
        }
        for gone in current.plugins() {
            if !states.contains_key(gone.name()) {
                tracing::info!(plugin = gone.name(), "plugin removed");
                report.removed.push(gone.name().to_owned());
            }
        }
        let changed = !report.loaded.is_empty()
            || !report.removed.is_empty()
            || plugins.len() != current.plugins().len();
        if changed {
            self.current.store(Arc::new(Chain::new(plugins)));
        }
        *self.states.lock().expect("states lock") = states;
        report.millis = started.elapsed().as_millis() as u64;
        tracing::debug!(?report, "plugin reload done");
        report
    }
}

/// Identifies a version: its bytes and its config.
fn version_digest(bytes: &[u8], config: &str) -> String {
    digest(&[bytes, b"\0", config.as_bytes()].concat())
}

fn served(plugin: &LoadedPlugin) -> PluginState {
    PluginState {
        name: plugin.name().to_owned(),
        file: plugin.file().display().to_string(),
        sha256: plugin.sha256().to_owned(),
        loaded_at: Some(
            plugin
                .loaded_at()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
        hooks: plugin.hook_names(),
        methods: plugin.method_patterns().to_vec(),
        state: "loaded",
        last_error: None,
        refused_sha256: None,
    }
}

/// The plugin files of `dir`, sorted by name: `*.wasm`, not hidden.
pub fn plugin_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_plugin_file(p) && p.is_file())
            .collect(),
        Err(err) => {
            tracing::error!(dir = %dir.display(), "cannot read the plugin folder: {err}");
            Vec::new()
        }
    };
    files.sort();
    files
}

/// Whether a path names a plugin or its config: `*.wasm` / `*.toml`, not hidden (so
/// `x.wasm.tmp` and `.x.wasm` are ignored until renamed).
pub fn is_plugin_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && name.ends_with(".wasm")
}
