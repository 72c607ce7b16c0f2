//! Hot reload: watches the plugin folder (the folder, not each file) and reloads the
//! registry after a settled burst of changes. Any change counts (a Kubernetes ConfigMap
//! update, for one, only swaps the hidden `..data` link); a reload whose files hash the
//! same as the versions serving changes nothing. Writers should write `x.wasm.tmp` (or a
//! dot file) and rename it to `x.wasm`: only `*.wasm` names that are not hidden are
//! loaded, so a half-written file is never picked up.

use super::registry::Registry;
pub use crate::watch::FolderWatch as Watcher;
use std::sync::Arc;

/// Starts watching the registry's plugin folder; `None` if it has none.
pub fn watch(registry: Arc<Registry>) -> Result<Option<Watcher>, String> {
    let Some(dir) = registry.dir().map(ToOwned::to_owned) else {
        return Ok(None);
    };
    let weak = Arc::downgrade(&registry);
    crate::watch::watch_folders("plugin folder", &[dir], move || {
        let Some(registry) = weak.upgrade() else {
            return false;
        };
        let report = registry.reload();
        tracing::info!(
            loaded = ?report.loaded,
            refused = report.refused.len(),
            removed = ?report.removed,
            millis = report.millis,
            "plugin folder changed: reloaded"
        );
        true
    })
    .map(Some)
}
