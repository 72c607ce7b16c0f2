//! Calls into the proxy: logging and counters. In a wasm plugin they go to the host; in
//! a native build (unit tests through [`crate::testing`]) they are recorded in memory.

/// Log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something is wrong.
    Error,
}

/// Writes a line to the proxy's log, tagged with the plugin's name.
///
/// ```
/// sluice_sdk::log(sluice_sdk::Level::Info, "rewrote a name");
/// ```
pub fn log(level: Level, message: &str) {
    imp::log(level, message);
}

/// Adds `delta` to the plugin's counter `name`; the proxy reports plugin counters in its
/// logs and metrics.
///
/// ```
/// sluice_sdk::counter_add("frames", 1);
/// ```
pub fn counter_add(name: &str, delta: u64) {
    imp::counter_add(name, delta);
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::bindings::sluice::filter::host;

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => host::Level::Trace,
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        };
        host::log(level, message);
    }

    pub fn counter_add(name: &str, delta: u64) {
        host::counter_add(name, delta);
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod imp {
    use super::Level;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    thread_local! {
        pub(crate) static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
        pub(crate) static COUNTERS: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub fn log(level: Level, message: &str) {
        LOGS.with(|logs| logs.borrow_mut().push((level, message.to_owned())));
    }

    pub fn counter_add(name: &str, delta: u64) {
        COUNTERS.with(|c| *c.borrow_mut().entry(name.to_owned()).or_default() += delta);
    }
}
