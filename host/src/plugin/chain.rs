//! The plugins of one call: for each plugin of the chain that wants the call's method, an
//! instance of its own, serving the call until the plugin is done with it (a stateless
//! plugin borrows one per hook instead; every hook is called with the call's number, and
//! the first one starts the call in the plugin), and what each plugin keeps for the call
//! with `set-call-state`, lent to the instance running its hook. Runs the hooks in chain
//! order for the request and in reverse order for the response, applies the verdicts, and
//! turns a trapped or timed-out plugin into a status for this call only (the instance is
//! thrown away).

use super::bindings::Hooks;
use super::loaded::LoadedPlugin;
use super::registry::Chain;
use super::runtime::FailurePolicy;
use super::runtime::Instance;
use super::stats::{CallActions, FailureKind, Hook, Outcome};
use super::store::CallContext;
use super::verdict::{self, BytesVerdict, HeadersDecision};
use super::wit_headers::{RESERVED_REQUEST, RESERVED_RESPONSE, RESERVED_TRAILERS, apply, to_wit};
use crate::grpc::{Code, Status};
use bytes::Bytes;
use http::HeaderMap;
use std::sync::{Arc, Mutex};

/// Which way a message or frame travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to upstream.
    Request,
    /// Upstream to client.
    Response,
}

/// The hooks of the request side: none of them runs after the client's body has ended.
fn request_side() -> Hooks {
    Hooks::REQUEST_HEADERS | Hooks::REQUEST_MESSAGES | Hooks::REQUEST_FRAMES
}

/// How a plugin of a call gets an instance to run its hooks on.
enum Lease {
    /// One instance for the whole call: the plugin keeps call state in it.
    Held(Box<Instance>),
    /// An instance from the pool for each hook: the plugin is stateless.
    PerHook,
    /// The plugin failed in this call; its instance was thrown away.
    Failed,
}

struct ActiveFilter {
    plugin: Arc<LoadedPlugin>,
    lease: Lease,
    /// What the plugin keeps for this call with `set-call-state`, lent to the instance
    /// running each of its hooks.
    state: Vec<u8>,
}

impl ActiveFilter {
    fn new(plugin: &Arc<LoadedPlugin>, lease: Lease) -> ActiveFilter {
        ActiveFilter {
            plugin: plugin.clone(),
            lease,
            state: Vec::new(),
        }
    }
}

/// The plugins taking part in one call.
pub struct CallPlugins {
    /// The call, served by every instance running one of its hooks.
    call: Arc<CallContext>,
    filters: Vec<ActiveFilter>,
    hooks: Hooks,
    actions: Arc<CallActions>,
}

impl std::fmt::Debug for CallPlugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.filters.iter().map(|f| f.plugin.name()).collect();
        f.debug_struct("CallPlugins")
            .field("plugins", &names)
            .finish()
    }
}

fn failed(plugin: &LoadedPlugin, what: &str, err: impl std::fmt::Display) -> Status {
    let message = format!("plugin {} failed in {what}: {err}", plugin.name());
    tracing::warn!(plugin = plugin.name(), "{message}");
    Status::new(Code::Unavailable, message)
}

impl CallPlugins {
    /// The plugins of `chain` that want the call's method, each with an instance checked
    /// out to serve `call` (a stateless plugin gets one per hook instead); `None` when no
    /// plugin wants it. No wasm runs yet: a plugin starts the call with its first hook.
    pub fn start(chain: &Chain, call: &Arc<CallContext>) -> Result<Option<CallPlugins>, Status> {
        let mut filters = Vec::new();
        let actions = Arc::new(CallActions::default());
        let mut hooks = Hooks::empty();
        for plugin in chain.plugins() {
            if !plugin.wants(call.method()) {
                continue;
            }
            if plugin.stateless() {
                hooks |= plugin.hooks();
                filters.push(ActiveFilter::new(plugin, Lease::PerHook));
                continue;
            }
            let instance = match plugin.checkout(call) {
                Ok(instance) => instance,
                Err(reason) => match plugin.limits().on_error {
                    FailurePolicy::FailClosed => {
                        plugin.stats().count_failure(FailureKind::Start, false);
                        return Err(failed(plugin, "call start", reason));
                    }
                    FailurePolicy::FailOpen => {
                        plugin.stats().count_failure(FailureKind::Start, true);
                        actions.note(plugin.shared_name(), Hook::RequestHeaders, Outcome::Failed);
                        tracing::warn!(
                            plugin = plugin.name(),
                            "plugin skipped for this call (fail-open): {reason}"
                        );
                        continue;
                    }
                },
            };
            hooks |= plugin.hooks();
            filters.push(ActiveFilter::new(plugin, Lease::Held(instance)));
        }
        Ok((!filters.is_empty()).then_some(CallPlugins {
            call: call.clone(),
            filters,
            hooks,
            actions,
        }))
    }

    /// The verdicts that changed this call so far (shared, for the access log).
    pub fn actions(&self) -> Arc<CallActions> {
        self.actions.clone()
    }

    /// Counts a hook's verdict; notes it for the access log unless it was forward.
    fn record(&self, index: usize, hook: Hook, outcome: Outcome) {
        let plugin = &self.filters[index].plugin;
        plugin.stats().count(hook, outcome);
        if outcome != Outcome::Forward {
            self.actions.note(plugin.shared_name(), hook, outcome);
        }
    }

    /// The union of the hooks the call's plugins want.
    pub fn hooks(&self) -> Hooks {
        self.hooks
    }

    /// Whether any plugin of the call wants `hook`.
    pub fn wants(&self, hook: Hooks) -> bool {
        self.hooks.intersects(hook)
    }

    /// Runs `hook` on filter `index` under its CPU deadline. `Ok(None)`: the plugin is
    /// skipped (it failed and its policy is fail-open).
    fn run<R>(
        &mut self,
        index: usize,
        hook_kind: Hook,
        what: &str,
        hook: impl FnOnce(
            &super::bindings::Guest,
            &mut wasmtime::Store<super::store::StoreData>,
            u64,
        ) -> wasmtime::Result<R>,
    ) -> Result<Option<R>, Status> {
        let filter = &mut self.filters[index];
        let mut lent = None;
        let instance = match &mut filter.lease {
            Lease::Held(instance) => instance,
            Lease::PerHook => match filter.plugin.checkout(&self.call) {
                Ok(instance) => lent.insert(instance),
                Err(reason) => {
                    return self.fail(index, hook_kind, FailureKind::Start, what, reason);
                }
            },
            Lease::Failed => {
                return match filter.plugin.limits().on_error {
                    FailurePolicy::FailOpen => Ok(None),
                    FailurePolicy::FailClosed => Err(Status::new(
                        Code::Unavailable,
                        format!(
                            "plugin {} failed earlier in this call",
                            filter.plugin.name()
                        ),
                    )),
                };
            }
        };
        instance
            .store
            .set_epoch_deadline(filter.plugin.limits().deadline_ticks());
        let exports = instance.plugin.sluice_filter_filter();
        instance.store.data_mut().swap_call_state(&mut filter.state);
        let result = hook(exports, &mut instance.store, self.call.id());
        let data = instance.store.data_mut();
        data.swap_call_state(&mut filter.state);
        let refusal = data.take_call_state_refusal();
        match result {
            Ok(result) => {
                if let Some(instance) = lent {
                    filter.plugin.checkin(instance);
                }
                match refusal {
                    Some(reason) => self.fail(index, hook_kind, FailureKind::Limit, what, reason),
                    None => Ok(Some(result)),
                }
            }
            Err(err) => {
                // A lent instance that failed is not given back: dropped here.
                drop(lent);
                let (kind, reason) = match err.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::Interrupt) => (
                        FailureKind::Deadline,
                        format!(
                            "exceeded its CPU deadline of {:?}",
                            filter.plugin.limits().hook_deadline
                        ),
                    ),
                    // The root cause, not the wasm backtrace (that goes to the debug log).
                    Some(trap) => (FailureKind::Trap, format!("trap: {trap}")),
                    None => (FailureKind::Trap, err.root_cause().to_string()),
                };
                tracing::debug!(
                    plugin = filter.plugin.name(),
                    "plugin error in {what}: {err:?}"
                );
                self.fail(index, hook_kind, kind, what, reason)
            }
        }
    }

    /// A plugin broke: its instance is thrown away (a trapped instance cannot be entered
    /// again) and its policy decides whether the call ends or goes on without it.
    fn fail<R>(
        &mut self,
        index: usize,
        hook: Hook,
        kind: FailureKind,
        what: &str,
        reason: String,
    ) -> Result<Option<R>, Status> {
        self.record(index, hook, Outcome::Failed);
        let filter = &mut self.filters[index];
        filter.lease = Lease::Failed;
        match filter.plugin.limits().on_error {
            FailurePolicy::FailClosed => {
                filter.plugin.stats().count_failure(kind, false);
                Err(failed(&filter.plugin, what, reason))
            }
            FailurePolicy::FailOpen => {
                filter.plugin.stats().count_failure(kind, true);
                tracing::warn!(
                    plugin = filter.plugin.name(),
                    "plugin failed in {what} and is skipped for this call (fail-open): {reason}"
                );
                Ok(None)
            }
        }
    }

    /// The filters' indices in the order `direction`'s hooks run (no allocation: this
    /// runs for every message).
    fn order(&self, direction: Direction) -> impl Iterator<Item = usize> + use<> {
        let count = self.filters.len();
        (0..count).map(move |i| match direction {
            Direction::Request => i,
            Direction::Response => count - 1 - i,
        })
    }

    /// Runs `on-request-headers`; modifications are applied to `headers`. Plugins that
    /// want no other hook then leave the call at once: their instances go back to the
    /// pool instead of waiting for the call to end (a long stream through an auth plugin
    /// holds no instance).
    pub fn request_headers(&mut self, headers: &mut HeaderMap) -> Result<(), Status> {
        self.headers_hook(headers, Direction::Request)?;
        self.leave_if_only(Hooks::REQUEST_HEADERS);
        Ok(())
    }

    /// The client's request body has ended: plugins that want request hooks only leave
    /// the call, their instances back in the pool while the call waits for its response
    /// (a unary call through request-only plugins holds them for microseconds, not for
    /// the upstream's round trip).
    pub fn request_ended(&mut self) {
        self.leave_if_only(request_side());
    }

    /// Releases the plugins whose hooks all lie in `hooks`: nothing is left for them to do.
    fn leave_if_only(&mut self, hooks: Hooks) {
        self.filters.retain_mut(|filter| {
            let done = hooks.contains(filter.plugin.hooks());
            if done {
                release(filter);
            }
            !done
        });
        self.hooks = self
            .filters
            .iter()
            .fold(Hooks::empty(), |hooks, f| hooks | f.plugin.hooks());
    }

    /// True when no plugin takes part in the call (any more).
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Runs `on-response-headers`; modifications are applied to `headers`.
    pub fn response_headers(&mut self, headers: &mut HeaderMap) -> Result<(), Status> {
        self.headers_hook(headers, Direction::Response)
    }

    fn headers_hook(
        &mut self,
        headers: &mut HeaderMap,
        direction: Direction,
    ) -> Result<(), Status> {
        let (reserved, hook_kind): (&[&'static str], Hook) = match direction {
            Direction::Request => (&RESERVED_REQUEST, Hook::RequestHeaders),
            Direction::Response => (&RESERVED_RESPONSE, Hook::ResponseHeaders),
        };
        for index in self.order(direction) {
            if !self.filters[index]
                .plugin
                .hooks()
                .contains(hook_kind.flag())
            {
                continue;
            }
            let list = to_wit(headers, reserved);
            let verdict = self.run(index, hook_kind, "a headers hook", |filter, store, call| {
                let decided = match direction {
                    Direction::Request => {
                        filter.call_on_request_headers(&mut *store, call, &list)?
                    }
                    Direction::Response => {
                        filter.call_on_response_headers(&mut *store, call, &list)?
                    }
                };
                verdict::headers(decided, store.data_mut().take_output())
            })?;
            match verdict {
                None => {}
                Some(HeadersDecision::Continue) => self.record(index, hook_kind, Outcome::Forward),
                Some(HeadersDecision::Modify(list)) => match apply(headers, &list, reserved) {
                    Ok(()) => self.record(index, hook_kind, Outcome::Modify),
                    Err(reason) => {
                        self.fail::<()>(
                            index,
                            hook_kind,
                            FailureKind::Limit,
                            "a headers hook",
                            reason,
                        )?;
                    }
                },
                Some(HeadersDecision::Reject(status)) => {
                    self.record(index, hook_kind, Outcome::Reject);
                    return Err(rejected(&self.filters[index].plugin, status));
                }
            }
        }
        Ok(())
    }

    /// Runs the message hooks on one message; `Ok(None)` when a plugin dropped it.
    pub fn message(
        &mut self,
        direction: Direction,
        message: Bytes,
    ) -> Result<Option<Bytes>, Status> {
        let hook = match direction {
            Direction::Request => Hook::RequestMessage,
            Direction::Response => Hook::ResponseMessage,
        };
        self.bytes_hook(
            direction,
            hook,
            message,
            |filter, store, call, bytes| match direction {
                Direction::Request => filter.call_on_request_message(store, call, bytes),
                Direction::Response => filter.call_on_response_message(store, call, bytes),
            },
        )
    }

    /// Runs the frame hooks on one data frame; `Ok(None)` when a plugin dropped it.
    pub fn frame(&mut self, direction: Direction, frame: Bytes) -> Result<Option<Bytes>, Status> {
        let hook = match direction {
            Direction::Request => Hook::RequestFrame,
            Direction::Response => Hook::ResponseFrame,
        };
        self.bytes_hook(
            direction,
            hook,
            frame,
            |filter, store, call, bytes| match direction {
                Direction::Request => filter.call_on_request_frame(store, call, bytes),
                Direction::Response => filter.call_on_response_frame(store, call, bytes),
            },
        )
    }

    fn bytes_hook(
        &mut self,
        direction: Direction,
        hook_kind: Hook,
        mut bytes: Bytes,
        call_hook: impl Fn(
            &super::bindings::Guest,
            &mut wasmtime::Store<super::store::StoreData>,
            u64,
            &[u8],
        ) -> wasmtime::Result<super::bindings::Verdict>,
    ) -> Result<Option<Bytes>, Status> {
        for index in self.order(direction) {
            if !self.filters[index]
                .plugin
                .hooks()
                .contains(hook_kind.flag())
            {
                continue;
            }
            let verdict = self.run(index, hook_kind, "a message hook", |filter, store, call| {
                let decided = call_hook(filter, &mut *store, call, &bytes)?;
                verdict::bytes(decided, store.data_mut().take_output())
            })?;
            match verdict {
                None => {}
                Some(BytesVerdict::Forward) => self.record(index, hook_kind, Outcome::Forward),
                Some(BytesVerdict::Drop) => {
                    self.record(index, hook_kind, Outcome::Drop);
                    return Ok(None);
                }
                Some(BytesVerdict::Modify(new)) => {
                    let cap = self.filters[index].plugin.limits().max_output_bytes;
                    if new.len() > cap {
                        let reason = format!(
                            "its modify output of {} bytes exceeds the cap of {cap}",
                            new.len()
                        );
                        self.fail::<()>(
                            index,
                            hook_kind,
                            FailureKind::Limit,
                            "a message hook",
                            reason,
                        )?;
                    } else {
                        self.record(index, hook_kind, Outcome::Modify);
                        bytes = Bytes::from(new);
                    }
                }
                Some(BytesVerdict::Reject(status)) => {
                    self.record(index, hook_kind, Outcome::Reject);
                    return Err(rejected(&self.filters[index].plugin, status));
                }
            }
        }
        Ok(Some(bytes))
    }

    /// Runs `on-trailers` on the trailers (or, for a trailers-only response, the response
    /// headers); a reject replaces the status in them.
    pub fn trailers(&mut self, trailers: &mut HeaderMap) -> Result<(), Status> {
        for index in self.order(Direction::Response) {
            if !self.filters[index]
                .plugin
                .hooks()
                .contains(Hook::Trailers.flag())
            {
                continue;
            }
            let status = super::bindings::Status {
                code: trailers
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(Code::Unknown.as_u32()),
                message: trailers
                    .get("grpc-message")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default(),
            };
            let list = to_wit(trailers, &RESERVED_TRAILERS);
            let verdict = self.run(
                index,
                Hook::Trailers,
                "the trailers hook",
                |filter, store, call| {
                    let decided = filter.call_on_trailers(&mut *store, call, &status, &list)?;
                    verdict::headers(decided, store.data_mut().take_output())
                },
            )?;
            match verdict {
                None => {}
                Some(HeadersDecision::Continue) => {
                    self.record(index, Hook::Trailers, Outcome::Forward);
                }
                Some(HeadersDecision::Modify(list)) => {
                    match apply(trailers, &list, &RESERVED_TRAILERS) {
                        Ok(()) => self.record(index, Hook::Trailers, Outcome::Modify),
                        Err(reason) => {
                            self.fail::<()>(
                                index,
                                Hook::Trailers,
                                FailureKind::Limit,
                                "the trailers hook",
                                reason,
                            )?;
                        }
                    }
                }
                Some(HeadersDecision::Reject(status)) => {
                    self.record(index, Hook::Trailers, Outcome::Reject);
                    trailers.remove("grpc-message");
                    rejected(&self.filters[index].plugin, status).write_to(trailers);
                }
            }
        }
        Ok(())
    }
}

/// The plugins of a call as shared by its two body directions, for one direction.
#[derive(Debug, Clone)]
pub struct BodyHook {
    plugins: Arc<Mutex<CallPlugins>>,
    direction: Direction,
}

impl BodyHook {
    /// A hook running `direction`'s hooks of `plugins`.
    pub fn new(plugins: Arc<Mutex<CallPlugins>>, direction: Direction) -> BodyHook {
        BodyHook { plugins, direction }
    }

    /// Runs the message hooks; `Ok(None)` when dropped.
    pub fn message(&self, message: Bytes) -> Result<Option<Bytes>, Status> {
        self.lock().message(self.direction, message)
    }

    /// Runs the frame hooks; `Ok(None)` when dropped.
    pub fn frame(&self, frame: Bytes) -> Result<Option<Bytes>, Status> {
        self.lock().frame(self.direction, frame)
    }

    /// Runs the trailers hook.
    pub fn trailers(&self, trailers: &mut HeaderMap) -> Result<(), Status> {
        self.lock().trailers(trailers)
    }

    /// The client's request body has ended (see [`CallPlugins::request_ended`]).
    pub fn request_ended(&self) {
        self.lock().request_ended();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CallPlugins> {
        // A panic while holding the lock cannot leave wasm state half-updated in a way
        // that matters more than the call it belonged to; keep serving.
        self.plugins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for CallPlugins {
    fn drop(&mut self) {
        for filter in &mut self.filters {
            release(filter);
        }
    }
}

/// Ends the plugin's part in the call: the instance goes back to the pool (unless it
/// broke). No wasm runs here: the plugin drops the call's state when its next call's
/// first hook comes.
fn release(filter: &mut ActiveFilter) {
    if let Lease::Held(instance) = std::mem::replace(&mut filter.lease, Lease::PerHook) {
        filter.plugin.checkin(instance);
    }
}

fn rejected(plugin: &LoadedPlugin, status: super::bindings::Status) -> Status {
    let status = Status::new(Code::from_u32(status.code), status.message);
    tracing::debug!(plugin = plugin.name(), code = ?status.code, "plugin rejected the call: {}", status.message);
    status
}
