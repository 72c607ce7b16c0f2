//! Calls into the proxy: logging, counters and the state kept with a call. In a wasm
//! plugin they go to the host; in a native build (unit tests through [`crate::testing`])
//! they are recorded in memory.

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

/// What this plugin kept for the current call with [`set_call_state`]; empty until it
/// keeps something.
///
/// The proxy holds this state with the call, not in the plugin's instance. A plugin that
/// needs only a little state from one hook of a call to the next can thus declare itself
/// [`Interest::stateless`](crate::Interest::stateless): it then runs on a few warm
/// instances shared by all calls, instead of holding one instance per open call (which
/// also caps how many streams can be open through it at `[limits] plugin_instances`).
/// Each read copies the state into the plugin: keep it small (a count, a hash).
///
/// ```
/// // Count the request messages of a call in a stateless plugin.
/// let count = sluice_sdk::call_state()
///     .try_into()
///     .map(u64::from_le_bytes)
///     .unwrap_or(0);
/// sluice_sdk::set_call_state(&(count + 1).to_le_bytes());
/// ```
pub fn call_state() -> Vec<u8> {
    imp::call_state()
}

/// Keeps `state` for this plugin's later hooks of the current call, replacing what was
/// kept (see [`call_state`]). The proxy frees it when the call ends. A state larger than
/// the plugin's `max_call_state_bytes` limit (64 KiB unless configured) fails the hook,
/// and the plugin's failure policy applies. Called outside a hook (in
/// [`Filter::configure`](crate::Filter::configure)) it keeps nothing: there is no call.
pub fn set_call_state(state: &[u8]) {
    imp::set_call_state(state);
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

    pub fn call_state() -> Vec<u8> {
        host::call_state()
    }

    pub fn set_call_state(state: &[u8]) {
        host::set_call_state(state);
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
        /// The state of the call a [`crate::testing::TestCall`] is running a hook of.
        pub(crate) static CALL_STATE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    pub fn log(level: Level, message: &str) {
        LOGS.with(|logs| logs.borrow_mut().push((level, message.to_owned())));
    }

    pub fn counter_add(name: &str, delta: u64) {
        COUNTERS.with(|c| *c.borrow_mut().entry(name.to_owned()).or_default() += delta);
    }

    pub fn call_state() -> Vec<u8> {
        CALL_STATE.with(|state| state.borrow().clone())
    }

    pub fn set_call_state(state: &[u8]) {
        CALL_STATE.with(|kept| *kept.borrow_mut() = state.to_vec());
    }
}
