//! # sluice-sdk
//!
//! See the crate README for a walk-through from `cargo new` to a loaded plugin.
//!
//! Write gRPC filters for the [Sluice](https://example.invalid/sluice) proxy in Rust,
//! compile them to a WebAssembly component (`wasm32-wasip2`), drop the `.wasm` into the
//! proxy's plugin folder.
//!
//! A plugin is a type implementing [`Filter`], registered once with [`register!`]:
//!
//! ```
//! use sluice_sdk::{CallInfo, Filter, Interest, Verdict};
//! use std::rc::Rc;
//!
//! /// Counts request messages per call and drops empty ones.
//! struct DropEmpty;
//!
//! impl Filter for DropEmpty {
//!     type Settings = ();
//!     fn configure(_config: &str) -> Result<((), Interest), String> {
//!         Ok(((), Interest::new().request_messages()))
//!     }
//!     fn new(_: Rc<()>, _: &CallInfo) -> Self {
//!         DropEmpty
//!     }
//!     fn on_request_message(&mut self, message: &[u8]) -> Verdict {
//!         sluice_sdk::counter_add("messages", 1);
//!         if message.is_empty() { Verdict::Drop } else { Verdict::Forward }
//!     }
//! }
//!
//! sluice_sdk::register!(DropEmpty);
//! ```
//!
//! Layers, from the bottom: the WIT interface (`wit/filter.wit`, the contract with the
//! host) → the generated bindings (wasm builds only) → the safe types of this crate →
//! the [`Filter`] trait → [`register!`]. Helpers: [`Headers`] for metadata, [`decode`] /
//! [`encode`] for typed messages, [`wire`] for schema-free field edits, [`log`] and
//! [`counter_add`] for observability, [`call_state`] / [`set_call_state`] for state a
//! stateless plugin keeps with the proxy, [`testing`] for native unit tests.

mod call_info;
mod codec;
mod filter;
mod headers;
mod host;
pub mod testing;
mod types;
pub mod wire;

pub use call_info::CallInfo;
pub use codec::{decode, encode};
pub use filter::Filter;
pub use headers::Headers;
pub use host::{Level, call_state, counter_add, log, set_call_state};
pub use types::{Code, Hooks, Interest, Status, Verdict};

/// Bindings generated from `wit/filter.wit` (wasm builds only; used by [`register!`]).
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_sluice_plugin",
        default_bindings_module: "sluice_sdk::bindings",
    });
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod glue;

/// Registers a [`Filter`] type as the plugin's implementation. Use it once per plugin
/// crate, at the top level of `lib.rs`. On native builds it expands to nothing, so the
/// same crate can be unit-tested with [`testing`].
///
/// ```
/// # use sluice_sdk::{CallInfo, Filter, Interest};
/// struct Passthrough;
/// impl Filter for Passthrough {
///     type Settings = ();
///     fn configure(_: &str) -> Result<((), Interest), String> { Ok(((), Interest::new())) }
///     fn new(_: std::rc::Rc<()>, _: &CallInfo) -> Self { Passthrough }
/// }
/// sluice_sdk::register!(Passthrough);
/// ```
#[macro_export]
macro_rules! register {
    ($filter:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct __SluiceExport;

        #[cfg(target_arch = "wasm32")]
        ::std::thread_local! {
            static __SLUICE_CALL: ::std::cell::RefCell<::std::option::Option<(u64, $filter)>> =
                const { ::std::cell::RefCell::new(::std::option::Option::None) };
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::sluice::filter::types as t;
            use $crate::{Filter, glue};
            use ::std::string::String;
            type F = $filter;
            use ::std::vec::Vec;

            impl $crate::bindings::exports::sluice::filter::filter::Guest for __SluiceExport {
                fn configure(config: String) -> ::std::result::Result<t::Interest, String> {
                    glue::configure::<F>(config)
                }
                fn on_request_headers(call: u64, headers: t::Metadata) -> t::HeadersVerdict {
                    glue::headers_hook(&__SLUICE_CALL, call, headers, F::on_request_headers)
                }
                fn on_request_message(call: u64, message: Vec<u8>) -> t::Verdict {
                    glue::bytes_hook(&__SLUICE_CALL, call, message, F::on_request_message)
                }
                fn on_request_frame(call: u64, frame: Vec<u8>) -> t::Verdict {
                    glue::bytes_hook(&__SLUICE_CALL, call, frame, F::on_request_frame)
                }
                fn on_response_headers(call: u64, headers: t::Metadata) -> t::HeadersVerdict {
                    glue::headers_hook(&__SLUICE_CALL, call, headers, F::on_response_headers)
                }
                fn on_response_message(call: u64, message: Vec<u8>) -> t::Verdict {
                    glue::bytes_hook(&__SLUICE_CALL, call, message, F::on_response_message)
                }
                fn on_response_frame(call: u64, frame: Vec<u8>) -> t::Verdict {
                    glue::bytes_hook(&__SLUICE_CALL, call, frame, F::on_response_frame)
                }
                fn on_trailers(call: u64, status: t::Status, trailers: t::Metadata) -> t::HeadersVerdict {
                    glue::on_trailers(&__SLUICE_CALL, call, status, trailers)
                }
            }
        };

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_sluice_plugin!(__SluiceExport with_types_in $crate::bindings);
    };
}
