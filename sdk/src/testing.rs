//! A native test harness: drive a [`Filter`] through a call with plain `cargo test`, no
//! wasm runtime needed. Logs and counters the filter writes are recorded per thread.
//!
//! ```
//! use sluice_sdk::testing::{self, HeadersOutcome};
//! use sluice_sdk::{CallInfo, Code, Filter, Headers, Interest, Status};
//! use std::rc::Rc;
//!
//! struct DenyAll;
//! impl Filter for DenyAll {
//!     type Settings = ();
//!     fn configure(_: &str) -> Result<((), Interest), String> {
//!         Ok(((), Interest::new().request_headers()))
//!     }
//!     fn new(_: Rc<()>, _: &CallInfo) -> Self { DenyAll }
//!     fn on_request_headers(&mut self, _: &mut Headers) -> Result<(), Status> {
//!         Err(Status::new(Code::PermissionDenied, "no"))
//!     }
//! }
//!
//! let mut call = testing::call::<DenyAll>("", "/a.B/C").unwrap();
//! let outcome = call.request_headers(&[("x-a", "1")]);
//! assert_eq!(outcome, HeadersOutcome::Rejected(Status::new(Code::PermissionDenied, "no")));
//! ```

use crate::{CallInfo, Filter, Headers, Interest, Status, Verdict};
use std::rc::Rc;

/// What a headers or trailers hook decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadersOutcome {
    /// Passed on unchanged.
    Continue,
    /// Passed on as this list.
    Modified(Headers),
    /// The call ends with this status.
    Rejected(Status),
}

/// One call through a filter under test. Like the proxy, it keeps the call's state
/// ([`crate::set_call_state`]) apart from the filter, so two test calls never share it.
#[derive(Debug)]
pub struct TestCall<F> {
    filter: F,
    interest: Interest,
    state: Vec<u8>,
}

/// Configures `F` with `config` and starts a call of `method`, as the host would.
///
/// ```
/// # use sluice_sdk::{CallInfo, Filter, Interest};
/// # struct Noop;
/// # impl Filter for Noop {
/// #     type Settings = ();
/// #     fn configure(_: &str) -> Result<((), Interest), String> { Ok(((), Interest::new())) }
/// #     fn new(_: std::rc::Rc<()>, _: &CallInfo) -> Self { Noop }
/// # }
/// let call = sluice_sdk::testing::call::<Noop>("", "/a.B/C").unwrap();
/// assert_eq!(call.interest().methods.len(), 0);
/// ```
pub fn call<F: Filter>(config: &str, method: &str) -> Result<TestCall<F>, String> {
    let (settings, interest) = F::configure(config)?;
    let info = CallInfo::new(method, "localhost", None);
    Ok(TestCall {
        filter: F::new(Rc::new(settings), &info),
        interest,
        state: Vec::new(),
    })
}

fn outcome(result: Result<(), Status>, headers: Headers) -> HeadersOutcome {
    match result {
        Err(status) => HeadersOutcome::Rejected(status),
        Ok(()) if headers.is_modified() => HeadersOutcome::Modified(headers),
        Ok(()) => HeadersOutcome::Continue,
    }
}

impl<F: Filter> TestCall<F> {
    /// The interest `configure` returned.
    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// The filter's per-call state.
    pub fn filter(&mut self) -> &mut F {
        &mut self.filter
    }

    /// What the filter kept for this call with [`crate::set_call_state`].
    pub fn call_state(&self) -> &[u8] {
        &self.state
    }

    /// Runs `hook` with this call's state lent to [`crate::call_state`], as the proxy
    /// lends it to the instance running a hook.
    fn with_state<R>(&mut self, hook: impl FnOnce(&mut F) -> R) -> R {
        lend_state(&mut self.state);
        let result = hook(&mut self.filter);
        lend_state(&mut self.state);
        result
    }

    /// Runs `on_request_headers` on these pairs.
    pub fn request_headers(&mut self, pairs: &[(&str, &str)]) -> HeadersOutcome {
        let mut headers = Headers::from_pairs(pairs.iter().copied());
        let result = self.with_state(|f| f.on_request_headers(&mut headers));
        outcome(result, headers)
    }

    /// Runs `on_request_message`.
    pub fn request_message(&mut self, message: &[u8]) -> Verdict {
        self.with_state(|f| f.on_request_message(message))
    }

    /// Runs `on_request_frame`.
    pub fn request_frame(&mut self, frame: &[u8]) -> Verdict {
        self.with_state(|f| f.on_request_frame(frame))
    }

    /// Runs `on_response_headers` on these pairs.
    pub fn response_headers(&mut self, pairs: &[(&str, &str)]) -> HeadersOutcome {
        let mut headers = Headers::from_pairs(pairs.iter().copied());
        let result = self.with_state(|f| f.on_response_headers(&mut headers));
        outcome(result, headers)
    }

    /// Runs `on_response_message`.
    pub fn response_message(&mut self, message: &[u8]) -> Verdict {
        self.with_state(|f| f.on_response_message(message))
    }

    /// Runs `on_response_frame`.
    pub fn response_frame(&mut self, frame: &[u8]) -> Verdict {
        self.with_state(|f| f.on_response_frame(frame))
    }

    /// Runs `on_trailers` with this status and these trailer pairs.
    pub fn trailers(&mut self, status: &Status, pairs: &[(&str, &str)]) -> HeadersOutcome {
        let mut trailers = Headers::from_pairs(pairs.iter().copied());
        let result = self.with_state(|f| f.on_trailers(status, &mut trailers));
        outcome(result, trailers)
    }
}

/// Swaps `state` with the one [`crate::call_state`] reads on this thread.
#[cfg(not(target_arch = "wasm32"))]
fn lend_state(state: &mut Vec<u8>) {
    crate::host::imp::CALL_STATE.with(|lent| std::mem::swap(&mut *lent.borrow_mut(), state));
}

#[cfg(target_arch = "wasm32")]
fn lend_state(_state: &mut Vec<u8>) {}

/// Takes the log lines written on this thread so far.
#[cfg(not(target_arch = "wasm32"))]
pub fn take_logs() -> Vec<(crate::Level, String)> {
    crate::host::imp::LOGS.with(|logs| std::mem::take(&mut *logs.borrow_mut()))
}

/// The counters added on this thread so far.
#[cfg(not(target_arch = "wasm32"))]
pub fn counters() -> std::collections::BTreeMap<String, u64> {
    crate::host::imp::COUNTERS.with(|c| c.borrow().clone())
}
