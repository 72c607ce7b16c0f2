//! `auth-token`: a call without metadata `authorization: Bearer <token>` is rejected
//! `UNAUTHENTICATED`; on success the `authorization` header is removed before the call
//! reaches the upstream.

use serde::Deserialize;
use sluice_sdk::{CallInfo, Code, Filter, Headers, Interest, Level, Status};
use std::rc::Rc;

/// The plugin's config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The accepted bearer token.
    token: String,
    /// Methods to guard (default: all).
    #[serde(default)]
    methods: Vec<String>,
}

/// Per-call state (none needed beyond the settings).
#[derive(Debug)]
pub struct AuthToken {
    settings: Rc<Settings>,
}

impl Filter for AuthToken {
    type Settings = Settings;

    fn configure(config: &str) -> Result<(Settings, Interest), String> {
        let settings: Settings =
            toml::from_str(config).map_err(|e| format!("auth-token config: {e}"))?;
        if settings.token.is_empty() {
            return Err("auth-token config: `token` must not be empty".into());
        }
        let interest = Interest::new()
            .request_headers()
            .methods(settings.methods.clone())
            .stateless();
        Ok((settings, interest))
    }

    fn new(settings: Rc<Settings>, _info: &CallInfo) -> Self {
        AuthToken { settings }
    }

    fn on_request_headers(&mut self, headers: &mut Headers) -> Result<(), Status> {
        let presented = headers
            .get_str("authorization")
            .and_then(|value| value.strip_prefix("Bearer "));
        match presented {
            Some(token) if constant_time_eq(token.as_bytes(), self.settings.token.as_bytes()) => {
                headers.remove("authorization");
                sluice_sdk::counter_add("accepted", 1);
                Ok(())
            }
            Some(_) => {
                sluice_sdk::counter_add("rejected", 1);
                sluice_sdk::log(Level::Info, "auth-token: wrong bearer token");
                Err(Status::new(
                    Code::Unauthenticated,
                    "auth-token: invalid bearer token",
                ))
            }
            None => {
                sluice_sdk::counter_add("rejected", 1);
                Err(Status::new(
                    Code::Unauthenticated,
                    "auth-token: missing `authorization: Bearer <token>`",
                ))
            }
        }
    }
}

/// Compares without an early exit, so timing does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

sluice_sdk::register!(AuthToken);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing::{self, HeadersOutcome};

    const CONFIG: &str = "token = \"s3cret\"";

    #[test]
    fn valid_token_passes_and_is_stripped() {
        let mut call = testing::call::<AuthToken>(CONFIG, "/a.B/C").unwrap();
        let outcome = call.request_headers(&[("authorization", "Bearer s3cret"), ("x-keep", "1")]);
        let HeadersOutcome::Modified(headers) = outcome else {
            panic!("expected modified headers, got {outcome:?}")
        };
        assert_eq!(headers.get("authorization"), None);
        assert_eq!(headers.get_str("x-keep"), Some("1"));
    }

    #[test]
    fn missing_or_wrong_token_is_unauthenticated() {
        for pairs in [
            &[][..],
            &[("authorization", "Bearer nope")],
            &[("authorization", "s3cret")],
        ] {
            let mut call = testing::call::<AuthToken>(CONFIG, "/a.B/C").unwrap();
            match call.request_headers(pairs) {
                HeadersOutcome::Rejected(status) => assert_eq!(status.code, Code::Unauthenticated),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
        assert!(testing::counters()["rejected"] >= 3);
    }

    #[test]
    fn config_is_checked() {
        assert!(testing::call::<AuthToken>("", "/a.B/C").is_err());
        assert!(testing::call::<AuthToken>("token = \"\"", "/a.B/C").is_err());
        assert!(testing::call::<AuthToken>("token = \"x\"\nextra = 1", "/a.B/C").is_err());
    }
}
