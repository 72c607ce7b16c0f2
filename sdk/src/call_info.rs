//! [`CallInfo`]: what a plugin can learn about the call it serves. In a wasm plugin it is
//! asked of the proxy the first time a plugin looks at it, not passed into every call.

use std::cell::OnceCell;

/// The call's method, authority and deadline.
///
/// ```
/// let info = sluice_sdk::CallInfo::new("/helloworld.Greeter/SayHello", "localhost", Some(1000));
/// assert_eq!(info.method(), "/helloworld.Greeter/SayHello");
/// assert_eq!(info.service(), "helloworld.Greeter");
/// assert_eq!(info.deadline_ms(), Some(1000));
/// ```
#[derive(Clone, Debug)]
pub struct CallInfo {
    fields: OnceCell<Fields>,
}

#[derive(Clone, Debug, Default)]
struct Fields {
    method: String,
    authority: String,
    deadline_ms: Option<u64>,
}

impl CallInfo {
    /// Info with these values (for tests; in a plugin the SDK makes it).
    pub fn new(method: &str, authority: &str, deadline_ms: Option<u64>) -> CallInfo {
        CallInfo {
            fields: OnceCell::from(Fields {
                method: method.to_owned(),
                authority: authority.to_owned(),
                deadline_ms,
            }),
        }
    }

    /// Info about the call the plugin serves now, asked of the proxy on first use.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn of_current_call() -> CallInfo {
        CallInfo {
            fields: OnceCell::new(),
        }
    }

    fn fields(&self) -> &Fields {
        self.fields.get_or_init(fetch)
    }

    /// `/package.Service/Method`.
    pub fn method(&self) -> &str {
        &self.fields().method
    }

    /// The `:authority` the client used.
    pub fn authority(&self) -> &str {
        &self.fields().authority
    }

    /// Milliseconds left until the call's deadline (when first asked), if it has one.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.fields().deadline_ms
    }

    /// The `package.Service` part of the method.
    ///
    /// ```
    /// let info = sluice_sdk::CallInfo::new("/a.B/C", "", None);
    /// assert_eq!(info.service(), "a.B");
    /// ```
    pub fn service(&self) -> &str {
        self.method()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
    }
}

impl PartialEq for CallInfo {
    fn eq(&self, other: &CallInfo) -> bool {
        let (a, b) = (self.fields(), other.fields());
        (&a.method, &a.authority, a.deadline_ms) == (&b.method, &b.authority, b.deadline_ms)
    }
}

impl Eq for CallInfo {}

#[cfg(target_arch = "wasm32")]
fn fetch() -> Fields {
    let info = crate::bindings::sluice::filter::host::current_call();
    Fields {
        method: info.method,
        authority: info.authority,
        deadline_ms: info.deadline_ms,
    }
}

/// Natively (tests) there is no proxy to ask, and every `CallInfo` is made by
/// [`CallInfo::new`]: never called.
#[cfg(not(target_arch = "wasm32"))]
fn fetch() -> Fields {
    Fields::default()
}
