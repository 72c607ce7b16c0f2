//! Plugin folders for tests: copies the real `.wasm` components built from `plugins/` and
//! `tests/plugins/` (by `scripts/build-plugins.sh`) into a fresh folder under chosen file
//! names, with their config files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where the built components are.
pub fn wasm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release")
}

/// The built component of crate `crate_name` (underscored), failing clearly if missing.
pub fn wasm(crate_name: &str) -> PathBuf {
    let path = wasm_dir().join(format!("{crate_name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins.sh (scripts/test.sh does) first",
        path.display()
    );
    path
}

/// A temporary plugin folder, removed when dropped.
#[derive(Debug)]
pub struct PluginDir {
    path: PathBuf,
}

impl PluginDir {
    /// A folder holding, for each `(file_stem, crate_name, config)`, the component as
    /// `file_stem.wasm` and (if `config` is not empty) `file_stem.toml`.
    pub fn new(plugins: &[(&str, &str, &str)]) -> PluginDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sluice-plugins-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create plugin dir");
        for (stem, crate_name, config) in plugins {
            std::fs::copy(wasm(crate_name), path.join(format!("{stem}.wasm")))
                .expect("copy plugin");
            if !config.is_empty() {
                std::fs::write(path.join(format!("{stem}.toml")), config).expect("write config");
            }
        }
        PluginDir { path }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PluginDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Resident memory of this process, in KiB (Linux).
pub fn rss_kib() -> u64 {
    status_kib("self", "VmRSS").unwrap_or(0)
}

/// A KiB field of `/proc/PROCESS/status` (`VmRSS`, `VmSize`, …; PROCESS a PID or `self`),
/// if the process and the field exist (Linux).
pub fn status_kib(process: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

impl PluginDir {
    /// Writes `bytes` as `name` atomically: to a temporary name first, then renamed.
    pub fn put(&self, name: &str, bytes: &[u8]) {
        let tmp = self.path.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes).expect("write temp file");
        std::fs::rename(&tmp, self.path.join(name)).expect("rename into place");
    }

    /// Copies the built component of `crate_name` in as `name` (atomically).
    pub fn put_plugin(&self, name: &str, crate_name: &str) {
        let bytes = std::fs::read(wasm(crate_name)).expect("read component");
        self.put(name, &bytes);
    }

    /// Removes `name` from the folder.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.path.join(name)).expect("remove file");
    }
}

/// The `sluice` binary of this workspace (debug build), failing clearly if missing.
pub fn sluice_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/sluice");
    assert!(
        path.exists(),
        "{} is missing: `cargo build -p sluice` (`cargo test --workspace` builds it too)",
        path.display()
    );
    path
}
