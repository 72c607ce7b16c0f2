//! The wasm side of the SDK: the bindings generated from `wit/filter.wit` and the adapter
//! that turns a [`Filter`] into the exported `filter` interface. Used by [`crate::register!`].

use crate::bindings::sluice::filter::host;
use crate::bindings::sluice::filter::types as t;
use crate::{CallInfo, Code, Filter, Headers, Interest, Status, Verdict};
use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

thread_local! {
    static SETTINGS: RefCell<Option<Rc<dyn Any>>> = const { RefCell::new(None) };
}

/// `configure` of the exported interface. Also routes panic messages to the proxy's log
/// (plugins have no stderr).
pub fn configure<F: Filter>(config: String) -> Result<t::Interest, String> {
    std::panic::set_hook(Box::new(|info| {
        crate::log(crate::Level::Error, &format!("plugin panicked: {info}"));
    }));
    let (settings, interest) = F::configure(&config)?;
    SETTINGS.with(|s| *s.borrow_mut() = Some(Rc::new(settings)));
    Ok(interest_to_wit(interest))
}

fn interest_to_wit(interest: Interest) -> t::Interest {
    let h = interest.hooks;
    let mut hooks = t::Hooks::empty();
    for (wanted, flag) in [
        (h.request_headers, t::Hooks::REQUEST_HEADERS),
        (h.request_messages, t::Hooks::REQUEST_MESSAGES),
        (h.request_frames, t::Hooks::REQUEST_FRAMES),
        (h.response_headers, t::Hooks::RESPONSE_HEADERS),
        (h.response_messages, t::Hooks::RESPONSE_MESSAGES),
        (h.response_frames, t::Hooks::RESPONSE_FRAMES),
        (h.trailers, t::Hooks::TRAILERS),
    ] {
        if wanted {
            hooks |= flag;
        }
    }
    t::Interest {
        hooks,
        methods: interest.methods,
        stateless: interest.stateless,
    }
}

/// Where a plugin keeps the call it is serving and that call's number: one per plugin,
/// made by [`crate::register!`]. An instance serves one call at a time.
pub type CurrentCall<F> = std::thread::LocalKey<RefCell<Option<(u64, F)>>>;

fn status_to_wit(status: Status) -> t::Status {
    t::Status {
        code: status.code as u32,
        message: status.message,
    }
}

/// Hands a reject's status to the host.
fn reject(status: Status) {
    host::set_status(&status_to_wit(status));
}

fn headers_verdict(result: Result<(), Status>, headers: Headers) -> t::HeadersVerdict {
    match result {
        Err(status) => {
            reject(status);
            t::HeadersVerdict::Reject
        }
        Ok(()) if headers.is_modified() => {
            host::set_headers(&headers.to_flat());
            t::HeadersVerdict::Modify
        }
        Ok(()) => t::HeadersVerdict::Continue,
    }
}

fn verdict_to_wit(verdict: Verdict) -> t::Verdict {
    match verdict {
        Verdict::Forward => t::Verdict::Forward,
        Verdict::Drop => t::Verdict::Drop,
        Verdict::Modify(bytes) => {
            host::set_output(&bytes);
            t::Verdict::Modify
        }
        Verdict::Reject(status) => {
            reject(status);
            t::Verdict::Reject
        }
    }
}

/// Runs `hook` on call `call`'s `F`, starting the call first if it is new to this
/// instance: the previous call's state is dropped, then this call's `F` made.
fn with_call<F: Filter, R>(
    current: &'static CurrentCall<F>,
    call: u64,
    hook: impl FnOnce(&mut F) -> R,
) -> R {
    current.with(|c| {
        let mut c = c.borrow_mut();
        let filter = match &mut *c {
            Some((serving, filter)) if *serving == call => filter,
            stale => {
                // The old state goes first, so two calls' states never live at once.
                *stale = None;
                let settings = SETTINGS
                    .with(|s| s.borrow().clone())
                    .expect("configure runs before any call")
                    .downcast::<F::Settings>()
                    .unwrap_or_else(|_| unreachable!("settings of this filter type"));
                let filter = F::new(settings, &CallInfo::of_current_call());
                &mut stale.insert((call, filter)).1
            }
        };
        hook(filter)
    })
}

/// A headers hook (`on-request-headers`, `on-response-headers`): runs `hook` — the
/// [`Filter`] method — on the current call.
pub fn headers_hook<F: Filter>(
    current: &'static CurrentCall<F>,
    call: u64,
    headers: t::Metadata,
    hook: fn(&mut F, &mut Headers) -> Result<(), Status>,
) -> t::HeadersVerdict {
    let mut headers = Headers::from_flat(headers);
    let result = with_call(current, call, |f| hook(f, &mut headers));
    headers_verdict(result, headers)
}

/// A message or frame hook (`on-request-message`, `on-response-frame`, …): runs `hook` —
/// the [`Filter`] method — on the current call.
pub fn bytes_hook<F: Filter>(
    current: &'static CurrentCall<F>,
    call: u64,
    bytes: Vec<u8>,
    hook: fn(&mut F, &[u8]) -> Verdict,
) -> t::Verdict {
    verdict_to_wit(with_call(current, call, |f| hook(f, &bytes)))
}

/// `on-trailers`.
pub fn on_trailers<F: Filter>(
    current: &'static CurrentCall<F>,
    call: u64,
    status: t::Status,
    trailers: t::Metadata,
) -> t::HeadersVerdict {
    let status = Status::new(Code::from_u32(status.code), status.message);
    let mut trailers = Headers::from_flat(trailers);
    let result = with_call(current, call, |f| f.on_trailers(&status, &mut trailers));
    headers_verdict(result, trailers)
}
