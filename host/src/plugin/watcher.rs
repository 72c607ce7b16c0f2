//! Hot reload: watches the plugin folder (the folder, not each file) with `notify`,
//! debounces bursts of events, and reloads the registry after a change. Any change counts
//! (a Kubernetes ConfigMap update, for one, only swaps the hidden `..data` link); a reload
//! whose files hash the same as the versions serving changes nothing. Reads are not
//! changes: access events (including the reload's own reads) are ignored. Writers should
//! write `x.wasm.tmp` (or a dot file) and rename it to `x.wasm`: only `*.wasm` names that
//! are not hidden are loaded, so a half-written file is never picked up.

use super::registry::Registry;
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// How long the folder must be quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// A running folder watch; dropping it stops the watch (and its reload thread).
pub struct Watcher {
    _watcher: RecommendedWatcher,
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
    let (changed, changes) = mpsc::channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                let _ = changed.send(());
            }
            Err(err) => tracing::warn!("plugin folder watch error: {err}"),
        })
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    let weak = Arc::downgrade(&registry);
    std::thread::Builder::new()
        .name("sluice-plugin-watch".into())
        .spawn(move || reload_on_changes(&changes, &weak))
        .map_err(|e| format!("cannot start the reload thread: {e}"))?;
    tracing::info!(dir = %dir.display(), "watching the plugin folder for changes");
    Ok(Some(Watcher { _watcher: watcher }))
}

/// Waits for a change, lets the burst settle, reloads; ends when the watcher is dropped.
fn reload_on_changes(changes: &mpsc::Receiver<()>, registry: &std::sync::Weak<Registry>) {
    while changes.recv().is_ok() {
        loop {
            match changes.recv_timeout(DEBOUNCE) {
                Ok(()) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        let Some(registry) = registry.upgrade() else {
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
}
