//! One loaded version of a plugin: its compiled component linked against the host, the
//! interest its `configure` returned, its limits, counters, and a pool of idle instances
//! reused across calls (an instance that trapped is never returned to the pool).

use super::bindings::{Hooks, PluginPre};
use super::idle::IdlePool;
use super::runtime::{Instance, PluginLimits, Runtime};
use super::stats::PluginStats;
use super::store::{CallContext, PluginCounters, StoreData};
use crate::routing::Pattern;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Hex SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One loaded version of a plugin.
pub struct LoadedPlugin {
    name: Arc<str>,
    file: PathBuf,
    sha256: String,
    config: String,
    loaded_at: SystemTime,
    hooks: Hooks,
    stateless: bool,
    methods: Vec<Pattern>,
    method_patterns: Vec<String>,
    pre: PluginPre<StoreData>,
    runtime: Runtime,
    limits: PluginLimits,
    counters: Arc<PluginCounters>,
    stats: PluginStats,
    idle: Arc<IdlePool>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Loads the plugin in `file` (reading `NAME.toml` beside it as config). Blocking.
    pub fn load(
        runtime: &Runtime,
        file: &Path,
        limits: PluginLimits,
    ) -> Result<LoadedPlugin, String> {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("file name is not UTF-8")?;
        let (bytes, config) = read_version(file)?;
        LoadedPlugin::compile(runtime, name, file, &bytes, config, limits)
    }

    /// Compiles `bytes`, links them, and validates the result with a trial instance whose
    /// `configure(config)` must succeed. Blocking: compiling takes milliseconds to seconds.
    pub fn compile(
        runtime: &Runtime,
        name: &str,
        file: &Path,
        bytes: &[u8],
        config: String,
        limits: PluginLimits,
    ) -> Result<LoadedPlugin, String> {
        let name: Arc<str> = name.into();
        let component = runtime.compile(bytes)?;
        let pre = runtime.prepare(&component)?;
        let counters = Arc::new(PluginCounters::default());
        let mut instance = runtime.instantiate(&pre, name.clone(), counters.clone(), &limits)?;
        let interest = configure(&mut instance, &config)?;
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
            sha256: digest(bytes),
            config,
            loaded_at: SystemTime::now(),
            hooks: interest.hooks,
            stateless: interest.stateless,
            methods,
            method_patterns: if interest.methods.is_empty() {
                vec!["*".to_owned()]
            } else {
                interest.methods
            },
            pre,
            runtime: runtime.clone(),
            limits,
            counters,
            stats: PluginStats::default(),
            idle: {
                let idle = runtime.idle_pool();
                idle.put(Box::new(instance));
                idle
            },
        })
    }

    /// The plugin's name (its file name without `.wasm`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Hex SHA-256 of its bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The config text it was configured with.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// When this version was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// The hooks it asked for.
    pub fn hooks(&self) -> Hooks {
        self.hooks
    }

    /// Whether it keeps nothing of a call between hooks (instances are lent per hook).
    pub fn stateless(&self) -> bool {
        self.stateless
    }

    /// The hooks it asked for, by name.
    pub fn hook_names(&self) -> Vec<&'static str> {
        [
            (Hooks::REQUEST_HEADERS, "request-headers"),
            (Hooks::REQUEST_MESSAGES, "request-messages"),
            (Hooks::REQUEST_FRAMES, "request-frames"),
            (Hooks::RESPONSE_HEADERS, "response-headers"),
            (Hooks::RESPONSE_MESSAGES, "response-messages"),
            (Hooks::RESPONSE_FRAMES, "response-frames"),
            (Hooks::TRAILERS, "trailers"),
        ]
        .into_iter()
        .filter(|(hook, _)| self.hooks.contains(*hook))
        .map(|(_, name)| name)
        .collect()
    }

    /// Whether it wants message hooks (which need the message path).
    pub fn wants_messages(&self) -> bool {
        self.hooks
            .intersects(Hooks::REQUEST_MESSAGES | Hooks::RESPONSE_MESSAGES)
    }

    /// The method patterns it asked for.
    pub fn method_patterns(&self) -> &[String] {
        &self.method_patterns
    }

    /// Whether it wants calls of `method`.
    pub fn wants(&self, method: &str) -> bool {
        self.methods.iter().any(|p| p.matches(method))
    }

    /// Its limits and failure policy.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Its counters (from the `counter-add` import).
    pub fn counters(&self) -> &PluginCounters {
        &self.counters
    }

    /// Its hook calls by verdict and its failures.
    pub fn stats(&self) -> &PluginStats {
        &self.stats
    }

    /// Whether the plugin's interest includes `hook`.
    pub fn wants_hook(&self, hook: super::stats::Hook) -> bool {
        self.hooks.contains(hook.flag())
    }

    /// The plugin's name, shared.
    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// An instance serving `call` (what its `current-call` import answers): a reused idle
    /// one, or a new configured one.
    pub fn checkout(&self, call: &Arc<CallContext>) -> Result<Box<Instance>, String> {
        let mut instance = match self.idle.take() {
            Some(instance) => instance,
            None => {
                let mut instance = self.runtime.instantiate(
                    &self.pre,
                    self.name.clone(),
                    self.counters.clone(),
                    &self.limits,
                )?;
                configure(&mut instance, &self.config)?;
                Box::new(instance)
            }
        };
        instance.store.data_mut().serve(Some(call.clone()));
        Ok(instance)
    }

    /// Instances waiting in the pool for the next call.
    pub fn idle_instances(&self) -> usize {
        self.idle.len()
    }

    /// Returns a healthy instance for reuse; it serves no call until checked out again.
    pub fn checkin(&self, mut instance: Box<Instance>) {
        instance.store.data_mut().serve(None);
        self.idle.put(instance);
    }
}

fn configure(instance: &mut Instance, config: &str) -> Result<super::bindings::Interest, String> {
    instance
        .plugin
        .sluice_filter_filter()
        .call_configure(&mut instance.store, config)
        .map_err(|e| format!("configure trapped: {e:#}"))?
        .map_err(|e| format!("configure refused the config: {e}"))
}

/// The wasm bytes and the config text (`NAME.toml` beside `NAME.wasm`, or empty).
pub fn read_version(file: &Path) -> Result<(Vec<u8>, String), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    let config_path = file.with_extension("toml");
    let config = match std::fs::read_to_string(&config_path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(format!("cannot read {}: {err}", config_path.display())),
    };
    Ok((bytes, config))
}
