//! gRPC status codes, `grpc-message` percent-encoding and the mapping from HTTP/2
//! reset reasons to status codes (gRPC spec, "HTTP2 Transport Mapping").

use http::{HeaderMap, HeaderValue};
use std::fmt;

/// A gRPC status code (the numeric values are fixed by the gRPC spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[allow(missing_docs)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// The code for a numeric value; values outside 0..=16 are `Unknown`, as the spec says.
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

    /// The numeric value sent in `grpc-status`.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The status code a client derives from an HTTP/2 `RST_STREAM` reason.
    pub fn from_h2_reason(reason: h2::Reason) -> Code {
        match reason {
            h2::Reason::REFUSED_STREAM => Code::Unavailable,
            h2::Reason::CANCEL => Code::Cancelled,
            h2::Reason::ENHANCE_YOUR_CALM => Code::ResourceExhausted,
            h2::Reason::INADEQUATE_SECURITY => Code::PermissionDenied,
            _ => Code::Internal,
        }
    }

    /// The code whose `grpc-status` text is exactly `value` (`"14"`, not `"014"`).
    pub fn from_status_text(value: &[u8]) -> Option<Code> {
        (0..STATUS_TEXTS.len() as u32)
            .map(Code::from_u32)
            .find(|code| code.as_str().as_bytes() == value)
    }

    /// The value's text, as sent in `grpc-status`.
    pub fn as_str(self) -> &'static str {
        STATUS_TEXTS[self as usize]
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// The `grpc-status` texts of the codes, by value.
const STATUS_TEXTS: [&str; 17] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

/// A gRPC status: a code and a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The status code.
    pub code: Code,
    /// The message, sent percent-encoded in `grpc-message`.
    pub message: String,
}

impl Status {
    /// A status with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// Writes `grpc-status` and (when non-empty) `grpc-message` into `headers`.
    pub fn write_to(&self, headers: &mut HeaderMap) {
        headers.insert(super::names::GRPC_STATUS.clone(), self.code.header_value());
        if !self.message.is_empty() {
            let encoded = percent_encode_message(&self.message);
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                headers.insert(super::names::GRPC_MESSAGE.clone(), value);
            }
        }
    }

    /// A trailer map holding just this status.
    pub fn to_trailers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(2);
        self.write_to(&mut headers);
        headers
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// Percent-encodes a status message as the gRPC spec asks: bytes outside printable
/// ASCII (0x20..=0x7E) and `%` itself become `%XX`.
pub fn percent_encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &byte in message.as_bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_values_map_to_unknown() {
        for value in 0..=16 {
            assert_eq!(Code::from_u32(value).as_u32(), value);
        }
        assert_eq!(Code::from_u32(17), Code::Unknown);
    }

    #[test]
    fn message_is_percent_encoded() {
        assert_eq!(percent_encode_message("a b%\n\u{e9}"), "a b%25%0A%C3%A9");
    }

    #[test]
    fn status_writes_both_headers() {
        let trailers = Status::new(Code::Unavailable, "down").to_trailers();
        assert_eq!(trailers["grpc-status"], "14");
        assert_eq!(trailers["grpc-message"], "down");
    }

    #[test]
    fn reset_reasons_map_as_the_spec_says() {
        assert_eq!(Code::from_h2_reason(h2::Reason::CANCEL), Code::Cancelled);
        assert_eq!(
            Code::from_h2_reason(h2::Reason::REFUSED_STREAM),
            Code::Unavailable
        );
        assert_eq!(
            Code::from_h2_reason(h2::Reason::PROTOCOL_ERROR),
            Code::Internal
        );
    }
}
