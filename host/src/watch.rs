//! Folder watches for reloads: `notify` on whole folders (not single files, so atomic
//! renames and Kubernetes ConfigMap `..data` swaps are seen), access events ignored (a
//! reload's own reads must not trigger the next one), bursts debounced, then a callback
//! on a dedicated thread.

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// How long a folder must be quiet before the callback runs.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// A running watch; dropping it stops the watch and its thread.
pub struct FolderWatch {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for FolderWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatch").finish_non_exhaustive()
    }
}

/// Watches `dirs` (deduplicated) and calls `on_change` after each settled burst of
/// changes; the watch thread ends when `on_change` returns `false` or the watch is dropped.
pub fn watch_folders(
    what: &'static str,
    dirs: &[PathBuf],
    mut on_change: impl FnMut() -> bool + Send + 'static,
) -> Result<FolderWatch, String> {
    let (changed, changes) = mpsc::channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                let _ = changed.send(());
            }
            Err(err) => tracing::warn!("{what} watch error: {err}"),
        })
        .map_err(|e| format!("cannot watch the {what}: {e}"))?;
    let mut dirs = dirs.to_vec();
    dirs.sort();
    dirs.dedup();
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {} ({what}): {e}", dir.display()))?;
    }
    std::thread::Builder::new()
        .name(format!("sluice-watch-{}", what.replace(' ', "-")))
        .spawn(move || {
            while changes.recv().is_ok() {
                loop {
                    match changes.recv_timeout(DEBOUNCE) {
                        Ok(()) => continue,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                if !on_change() {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the {what} watch thread: {e}"))?;
    tracing::info!(?dirs, "watching the {what} for changes");
    Ok(FolderWatch { _watcher: watcher })
}
