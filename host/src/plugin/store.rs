//! What each plugin instance's store holds: its WASI context (random numbers only), memory
//! limits, the call it serves, what its running hook handed over, the call state it may
//! read and replace, and the host side of the `host` imports (log, counters, current call,
//! verdict payloads, call state).

use super::bindings;
use http::uri::{Authority, PathAndQuery};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtx;

/// Counters a plugin adds to through the `counter-add` import, by name.
#[derive(Debug, Default)]
pub struct PluginCounters(Mutex<BTreeMap<String, u64>>);

impl PluginCounters {
    /// A copy of the current values.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().expect("counters lock").clone()
    }

    fn add(&self, name: String, delta: u64) {
        let mut counters = self.0.lock().expect("counters lock");
        let value = counters.entry(name).or_default();
        *value = value.saturating_add(delta);
    }
}

/// The call a plugin instance serves: what the `current-call` import answers, and the number
/// its hooks are called with.
#[derive(Debug)]
pub struct CallContext {
    id: u64,
    method: PathAndQuery,
    authority: Option<Authority>,
    deadline: Option<Instant>,
}

impl CallContext {
    /// A call of `method` (a path) sent to `authority`, ending by `deadline`; it gets a
    /// number no other call of this process has. Both are kept as they came, not copied.
    pub fn new(
        method: PathAndQuery,
        authority: Option<Authority>,
        deadline: Option<Instant>,
    ) -> CallContext {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        CallContext {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            method,
            authority,
            deadline,
        }
    }

    /// The call's number (never 0).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// `/package.Service/Method`.
    pub fn method(&self) -> &str {
        self.method.path()
    }

    fn to_wit(&self) -> bindings::CallInfo {
        bindings::CallInfo {
            method: self.method().to_owned(),
            authority: self
                .authority
                .as_ref()
                .map_or_else(String::new, |a| a.as_str().to_owned()),
            deadline_ms: self
                .deadline
                .map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64),
        }
    }
}

/// What each plugin store holds.
pub struct StoreData {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    plugin: Arc<str>,
    counters: Arc<PluginCounters>,
    /// The call the instance serves, while it is checked out for one.
    call: Option<Arc<CallContext>>,
    /// What the running hook handed over besides its verdict.
    output: HookOutput,
    /// The plugin's state for the call served, lent by the call for one hook.
    call_state: Vec<u8>,
    /// The largest state the plugin may keep for a call (`max_call_state_bytes`).
    call_state_cap: usize,
    /// The size of a state the running hook tried to keep over the cap.
    refused_call_state: Option<usize>,
}

/// What a hook hands the host besides its verdict: the bytes or headers of a `modify`
/// (`set-output`, `set-headers`), the status of a `reject` (`set-status`).
#[derive(Debug, Default)]
pub struct HookOutput {
    /// From `set-output`.
    pub bytes: Option<Vec<u8>>,
    /// From `set-headers`.
    pub headers: Option<Vec<u8>>,
    /// From `set-status`.
    pub status: Option<bindings::Status>,
}

impl StoreData {
    /// A store's data: no call served yet.
    pub fn new(
        wasi: WasiCtx,
        limits: StoreLimits,
        plugin: Arc<str>,
        counters: Arc<PluginCounters>,
        call_state_cap: usize,
    ) -> StoreData {
        StoreData {
            wasi,
            table: ResourceTable::new(),
            limits,
            plugin,
            counters,
            call: None,
            output: HookOutput::default(),
            call_state: Vec::new(),
            call_state_cap,
            refused_call_state: None,
        }
    }

    /// Sets (or, with `None`, clears) the call the instance serves.
    pub fn serve(&mut self, call: Option<Arc<CallContext>>) {
        self.call = call;
    }

    /// Takes what the last hook handed over (leaving nothing for the next one).
    pub fn take_output(&mut self) -> HookOutput {
        std::mem::take(&mut self.output)
    }

    /// Lends the call's state to the instance for a hook, or (`swap` again after the hook)
    /// takes it back: a move, never a copy.
    pub fn swap_call_state(&mut self, state: &mut Vec<u8>) {
        std::mem::swap(&mut self.call_state, state);
    }

    /// Why the last hook broke the call-state cap, if it did (and forgets it).
    pub fn take_call_state_refusal(&mut self) -> Option<String> {
        self.refused_call_state.take().map(|size| {
            format!(
                "it kept {size} bytes of call state, over its max_call_state_bytes of {}",
                self.call_state_cap
            )
        })
    }
}

impl std::fmt::Debug for StoreData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreData")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl bindings::sluice::filter::types::Host for StoreData {}

impl bindings::sluice::filter::host::Host for StoreData {
    fn log(&mut self, level: bindings::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            bindings::Level::Trace => tracing::trace!(plugin, "{message}"),
            bindings::Level::Debug => tracing::debug!(plugin, "{message}"),
            bindings::Level::Info => tracing::info!(plugin, "{message}"),
            bindings::Level::Warn => tracing::warn!(plugin, "{message}"),
            bindings::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn counter_add(&mut self, name: String, delta: u64) {
        self.counters.add(name, delta);
    }

    fn current_call(&mut self) -> bindings::CallInfo {
        // Only asked from a hook, and hooks run only while the instance serves a call.
        self.call.as_ref().map_or_else(
            || bindings::CallInfo {
                method: String::new(),
                authority: String::new(),
                deadline_ms: None,
            },
            |call| call.to_wit(),
        )
    }

    fn set_output(&mut self, bytes: Vec<u8>) {
        self.output.bytes = Some(bytes);
    }

    fn set_headers(&mut self, headers: Vec<u8>) {
        self.output.headers = Some(headers);
    }

    fn set_status(&mut self, status: bindings::Status) {
        self.output.status = Some(status);
    }

    fn call_state(&mut self) -> Vec<u8> {
        // Lowered into the plugin from this copy; the call keeps its own.
        self.call_state.clone()
    }

    fn set_call_state(&mut self, state: Vec<u8>) {
        if self.call.is_none() {
            // Outside a hook (in `configure`) there is no call to keep it for.
        } else if state.len() > self.call_state_cap {
            self.refused_call_state = Some(state.len());
        } else {
            self.call_state = state;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_keeps_its_method_and_authority_without_the_query() {
        let call = CallContext::new(
            PathAndQuery::from_static("/a.B/C?x=1"),
            Some(Authority::from_static("host:1")),
            None,
        );
        assert_eq!(call.method(), "/a.B/C");
        let info = call.to_wit();
        assert_eq!(
            (info.method.as_str(), info.authority.as_str()),
            ("/a.B/C", "host:1")
        );
        assert_eq!(info.deadline_ms, None);
        let anonymous = CallContext::new(PathAndQuery::from_static("/a.B/C"), None, None);
        assert_eq!(anonymous.to_wit().authority, "");
        assert_ne!(anonymous.id(), call.id());
    }
}
