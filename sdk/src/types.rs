//! The values plugins see and return: status codes, the interest a plugin declares (hooks
//! and methods) and verdicts.

use std::fmt;

/// A gRPC status code.
///
/// ```
/// use sluice_sdk::Code;
/// assert_eq!(Code::PermissionDenied as u32, 7);
/// assert_eq!(Code::from_u32(16), Code::Unauthenticated);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Code {
    /// Not an error.
    Ok = 0,
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error.
    Unknown = 2,
    /// The client gave an invalid argument.
    InvalidArgument = 3,
    /// The deadline passed before the operation completed.
    DeadlineExceeded = 4,
    /// Some requested entity was not found.
    NotFound = 5,
    /// The entity the client tried to create already exists.
    AlreadyExists = 6,
    /// The caller may not do this.
    PermissionDenied = 7,
    /// Some resource (quota, size) has been exhausted.
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// The operation was aborted.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented or supported.
    Unimplemented = 12,
    /// Internal error.
    Internal = 13,
    /// The service is currently unavailable.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The request lacks valid authentication credentials.
    Unauthenticated = 16,
}

impl Code {
    /// The code for a number; numbers outside 0..=16 are [`Code::Unknown`].
    ///
    /// ```
    /// use sluice_sdk::Code;
    /// assert_eq!(Code::from_u32(5), Code::NotFound);
    /// assert_eq!(Code::from_u32(99), Code::Unknown);
    /// ```
    pub fn from_u32(value: u32) -> Code {
        use Code::*;
        const ALL: [Code; 17] = [
            Ok,
            Cancelled,
            Unknown,
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            OutOfRange,
            Unimplemented,
            Internal,
            Unavailable,
            DataLoss,
            Unauthenticated,
        ];
        ALL.get(value as usize).copied().unwrap_or(Unknown)
    }
}

/// A gRPC status: a code and a message. Returned to end a call.
///
/// ```
/// use sluice_sdk::{Code, Status};
/// let status = Status::new(Code::PermissionDenied, "no access to /admin.Svc/Drop");
/// assert_eq!(status.code, Code::PermissionDenied);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The code.
    pub code: Code,
    /// The message the client sees.
    pub message: String,
}

impl Status {
    /// A status with `code` and `message`.
    ///
    /// ```
    /// let s = sluice_sdk::Status::new(sluice_sdk::Code::Unavailable, "try later");
    /// assert_eq!(s.message, "try later");
    /// ```
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// The hooks a plugin wants called, and for which methods. Only declared hooks are
/// called; a call whose plugins want no messages stays on the cheap raw path.
///
/// ```
/// use sluice_sdk::Interest;
/// let interest = Interest::new()
///     .request_headers()
///     .request_messages()
///     .methods(["/helloworld.Greeter/*"]);
/// assert!(interest.hooks.request_messages);
/// assert_eq!(interest.methods, ["/helloworld.Greeter/*"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    /// The hooks.
    pub hooks: Hooks,
    /// Method patterns: `*`, `/pkg.Svc/Method`, or a prefix ending in `*`. Empty means `*`.
    pub methods: Vec<String>,
    /// Set by [`Interest::stateless`].
    pub stateless: bool,
}

/// Which hooks are wanted.
///
/// ```
/// let hooks = sluice_sdk::Hooks { trailers: true, ..Default::default() };
/// assert!(!hooks.request_headers);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    /// [`crate::Filter::on_request_headers`].
    pub request_headers: bool,
    /// [`crate::Filter::on_request_message`].
    pub request_messages: bool,
    /// [`crate::Filter::on_request_frame`].
    pub request_frames: bool,
    /// [`crate::Filter::on_response_headers`].
    pub response_headers: bool,
    /// [`crate::Filter::on_response_message`].
    pub response_messages: bool,
    /// [`crate::Filter::on_response_frame`].
    pub response_frames: bool,
    /// [`crate::Filter::on_trailers`].
    pub trailers: bool,
}

macro_rules! interest_setters {
    ($($name:ident),*) => {$(
        #[doc = concat!("Also wants the `", stringify!($name), "` hook.\n\n```\nlet i = sluice_sdk::Interest::new().", stringify!($name), "();\nassert!(i.hooks.", stringify!($name), ");\n```")]
        pub fn $name(mut self) -> Interest {
            self.hooks.$name = true;
            self
        }
    )*};
}

impl Interest {
    /// No hooks, every method.
    ///
    /// ```
    /// assert_eq!(sluice_sdk::Interest::new().hooks, sluice_sdk::Hooks::default());
    /// ```
    pub fn new() -> Interest {
        Interest::default()
    }

    interest_setters!(
        request_headers,
        request_messages,
        request_frames,
        response_headers,
        response_messages,
        response_frames,
        trailers
    );

    /// Limits the plugin to methods matching these patterns.
    ///
    /// ```
    /// let i = sluice_sdk::Interest::new().methods(["/a.B/*", "/c.D/E"]);
    /// assert_eq!(i.methods.len(), 2);
    /// ```
    pub fn methods<S: Into<String>>(mut self, patterns: impl IntoIterator<Item = S>) -> Interest {
        self.methods = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Declares that the plugin keeps nothing of a call between hooks: its [`crate::Filter`]
    /// value holds settings only, and each hook decides from what it is given. The proxy
    /// then lends an instance for one hook at a time rather than for the call, so a few
    /// warm instances serve all calls (a long stream holds none) — cheaper, and less memory
    /// per open stream. `Filter::new` may then run before any hook, so keep it cheap. A
    /// plugin that keeps state in its `Filter` value (a counter, the previous message)
    /// must not say this: that state would start afresh whenever another call used the
    /// instance in between. Small state can instead be kept with the proxy, per call:
    /// [`crate::call_state`] and [`crate::set_call_state`] work from any instance.
    ///
    /// ```
    /// let i = sluice_sdk::Interest::new().request_messages().stateless();
    /// assert!(i.stateless);
    /// ```
    pub fn stateless(mut self) -> Interest {
        self.stateless = true;
        self
    }
}

/// What to do with one message or frame.
///
/// ```
/// use sluice_sdk::{Code, Status, Verdict};
/// let too_big = |len: usize| if len > 4 {
///     Verdict::Reject(Status::new(Code::ResourceExhausted, "too big"))
/// } else {
///     Verdict::Forward
/// };
/// assert_eq!(too_big(2), Verdict::Forward);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Pass it on unchanged.
    Forward,
    /// Do not pass it on; the call goes on. Dropping the only request message of a unary
    /// call leaves the upstream with none (it will usually fail the call with
    /// `INTERNAL`/`UNIMPLEMENTED`); dropping a unary response message leaves the client
    /// with an OK status and no message (clients report that as an error). Use
    /// [`Verdict::Reject`] to end a call on purpose.
    Drop,
    /// Pass these bytes on instead. For messages: the new message (the host frames it);
    /// for frames: the new frame bytes, forwarded as they are.
    Modify(Vec<u8>),
    /// End the call with this status: the client gets it at once and the upstream stream
    /// is cancelled.
    Reject(Status),
}
