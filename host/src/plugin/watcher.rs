//! Hot reload: watches the plugin folder (the folder, not each file) with `notify`,
//! debounces bursts of events, and reloads the registry after any change. Any event counts
//! (a Kubernetes ConfigMap update, for one, only swaps the hidden `..data` link); a reload
//! whose files hash the same as the versions serving changes nothing. Writers should write
//! `x.wasm.tmp` (or a dot file) and rename it to `x.wasm`: only `*.wasm` names that are
//! not hidden are loaded, so a half-written file is never picked up.

use super::registry::Registry;
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use std::sync::Arc;
use std::time::Duration;

/// How long the folder must be quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// A running folder watch; dropping it stops the watch.
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

/// Starts watching the registry's plugin folder; `None` if it has none.
pub fn watch(registry: Arc<Registry>) -> Result<Option<Watcher>, String> {
    let Some(dir) = registry.dir().map(ToOwned::to_owned) else {
        return Ok(None);
    };
    let weak = Arc::downgrade(&registry);
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| match result {
        Ok(events) => {
            tracing::debug!(events = events.len(), "plugin folder changed");
            let Some(registry) = weak.upgrade() else {
                return;
            };
            let report = registry.reload();
            tracing::info!(
                loaded = ?report.loaded,
                refused = report.refused.len(),
                removed = ?report.removed,
                millis = report.millis,
                "plugin folder changed: reloaded"
            );
        }
        Err(err) => tracing::warn!("plugin folder watch error: {err}"),
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    debouncer
        .watcher()
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "watching the plugin folder for changes");
    Ok(Some(Watcher {
        _debouncer: debouncer,
    }))
}
