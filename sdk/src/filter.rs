//! The [`Filter`] trait: one hook per point in a call, each with a default that lets the
//! call through, so a plugin implements only what it declared in its [`Interest`].

use crate::CallInfo;
use crate::Headers;
use crate::types::{Interest, Status, Verdict};
use std::rc::Rc;

/// A filter plugin. One value per call, made by [`Filter::new`] when the call's first hook
/// for this plugin comes; plugin-wide settings come from [`Filter::configure`] and are
/// shared by all calls.
///
/// Order of hooks in a call (each only if declared in the [`Interest`]):
/// `new` → `on_request_headers` → `on_request_message`/`on_request_frame` (per message or
/// frame) … → `on_response_headers` → `on_response_message`/`on_response_frame` … →
/// `on_trailers`. Request and response hooks may interleave on streaming calls. For a
/// trailers-only response (the upstream answers with a status and nothing else) only
/// `on_trailers` runs. Request hooks of a chain run in file-name order, response hooks in
/// reverse order.
///
/// The value is dropped when the plugin's instance starts its next call, not the moment
/// this one ends (the proxy does not enter the plugin just to drop it); do end-of-call
/// work in `on_trailers`.
///
/// ```
/// use sluice_sdk::{CallInfo, Code, Filter, Headers, Interest, Status};
/// use std::rc::Rc;
///
/// /// Rejects calls that carry no `x-tenant` metadata.
/// struct RequireTenant;
///
/// impl Filter for RequireTenant {
///     type Settings = ();
///     fn configure(_config: &str) -> Result<((), Interest), String> {
///         Ok(((), Interest::new().request_headers()))
///     }
///     fn new(_settings: Rc<()>, _info: &CallInfo) -> Self {
///         RequireTenant
///     }
///     fn on_request_headers(&mut self, headers: &mut Headers) -> Result<(), Status> {
///         match headers.get("x-tenant") {
///             Some(_) => Ok(()),
///             None => Err(Status::new(Code::InvalidArgument, "x-tenant is required")),
///         }
///     }
/// }
/// sluice_sdk::register!(RequireTenant);
/// ```
pub trait Filter: Sized + 'static {
    /// Plugin-wide settings, usually parsed from the config file.
    type Settings: 'static;

    /// Called once per loaded plugin version with the text of `NAME.toml` beside
    /// `NAME.wasm` (`""` if there is none). Returns the settings and the interest, or an
    /// error message, which makes the host refuse this version.
    fn configure(config: &str) -> Result<(Self::Settings, Interest), String>;

    /// Makes the per-call state when a call reaches the plugin (its first hook). `info`
    /// asks the proxy for the method, authority and deadline the first time one is read.
    fn new(settings: Rc<Self::Settings>, info: &CallInfo) -> Self;

    /// The request metadata. Change `headers` to change what the upstream gets; return
    /// an error to end the call before anything reaches the upstream.
    /// Default: let them through.
    fn on_request_headers(&mut self, headers: &mut Headers) -> Result<(), Status> {
        let _ = headers;
        Ok(())
    }

    /// One request message (length prefix removed, decompressed). Default: forward.
    fn on_request_message(&mut self, message: &[u8]) -> Verdict {
        let _ = message;
        Verdict::Forward
    }

    /// One request HTTP/2 data frame, as raw bytes (message boundaries are not aligned
    /// with frames). Default: forward.
    fn on_request_frame(&mut self, frame: &[u8]) -> Verdict {
        let _ = frame;
        Verdict::Forward
    }

    /// The response metadata. Default: let them through.
    fn on_response_headers(&mut self, headers: &mut Headers) -> Result<(), Status> {
        let _ = headers;
        Ok(())
    }

    /// One response message. Default: forward.
    fn on_response_message(&mut self, message: &[u8]) -> Verdict {
        let _ = message;
        Verdict::Forward
    }

    /// One response HTTP/2 data frame. Default: forward.
    fn on_response_frame(&mut self, frame: &[u8]) -> Verdict {
        let _ = frame;
        Verdict::Forward
    }

    /// The call's final status and trailing metadata. Change `trailers` to change what
    /// the client gets; return an error to replace the status. Default: let them through.
    fn on_trailers(&mut self, status: &Status, trailers: &mut Headers) -> Result<(), Status> {
        let _ = (status, trailers);
        Ok(())
    }
}
