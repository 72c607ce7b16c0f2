//! A hook's verdict together with what the hook handed over during the call (the bytes or
//! headers of a `modify`, the status of a `reject`): the WIT verdicts are plain enums so
//! that no hook needs a post-return entry into the plugin.

use super::bindings::{HeadersVerdict, Status, Verdict};
use super::store::HookOutput;

/// What a message or frame hook decided.
#[derive(Debug)]
pub enum BytesVerdict {
    /// Pass it on unchanged.
    Forward,
    /// Do not pass it on.
    Drop,
    /// Pass these bytes on instead.
    Modify(Vec<u8>),
    /// End the call with this status.
    Reject(Status),
}

/// What a headers or trailers hook decided.
#[derive(Debug)]
pub enum HeadersDecision {
    /// Pass them on unchanged.
    Continue,
    /// Pass this (flat) metadata on instead.
    Modify(Vec<u8>),
    /// End the call with this status.
    Reject(Status),
}

fn missing(verdict: &str, import: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!("returned {verdict} without calling {import} first"))
}

/// Joins a message or frame hook's verdict with its output; an error when the payload the
/// verdict needs was not handed over.
pub fn bytes(verdict: Verdict, output: HookOutput) -> wasmtime::Result<BytesVerdict> {
    Ok(match verdict {
        Verdict::Forward => BytesVerdict::Forward,
        Verdict::Drop => BytesVerdict::Drop,
        Verdict::Modify => BytesVerdict::Modify(
            output
                .bytes
                .ok_or_else(|| missing("modify", "set-output"))?,
        ),
        Verdict::Reject => BytesVerdict::Reject(
            output
                .status
                .ok_or_else(|| missing("reject", "set-status"))?,
        ),
    })
}

/// Joins a headers or trailers hook's verdict with its output, as [`bytes()`] does.
pub fn headers(verdict: HeadersVerdict, output: HookOutput) -> wasmtime::Result<HeadersDecision> {
    Ok(match verdict {
        HeadersVerdict::Continue => HeadersDecision::Continue,
        HeadersVerdict::Modify => HeadersDecision::Modify(
            output
                .headers
                .ok_or_else(|| missing("modify", "set-headers"))?,
        ),
        HeadersVerdict::Reject => HeadersDecision::Reject(
            output
                .status
                .ok_or_else(|| missing("reject", "set-status"))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_takes_its_payload_from_the_output() {
        let output = HookOutput {
            bytes: Some(b"new".to_vec()),
            ..HookOutput::default()
        };
        assert!(
            matches!(bytes(Verdict::Modify, output), Ok(BytesVerdict::Modify(b)) if b == b"new")
        );
        let status = Status {
            code: 7,
            message: "no".into(),
        };
        let output = HookOutput {
            status: Some(status),
            ..HookOutput::default()
        };
        assert!(
            matches!(headers(HeadersVerdict::Reject, output), Ok(HeadersDecision::Reject(s)) if s.code == 7)
        );
    }

    #[test]
    fn a_verdict_without_its_payload_is_an_error() {
        let err = bytes(Verdict::Modify, HookOutput::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "returned modify without calling set-output first"
        );
        let err = headers(HeadersVerdict::Reject, HookOutput::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "returned reject without calling set-status first"
        );
        // A payload of the wrong kind does not count.
        let output = HookOutput {
            bytes: Some(Vec::new()),
            ..HookOutput::default()
        };
        assert!(headers(HeadersVerdict::Modify, output).is_err());
    }
}
