//! Host bindings generated from the SDK's WIT interface (`sdk/wit/filter.wit`), the single
//! source of truth shared with the guest SDK.

wasmtime::component::bindgen!({
    path: "../sdk/wit",
    world: "plugin",
});

pub use self::exports::sluice::filter::filter::Guest;
pub use self::sluice::filter::host::Level;
pub use self::sluice::filter::types::{CallInfo, HeadersVerdict, Hooks, Interest, Status, Verdict};
