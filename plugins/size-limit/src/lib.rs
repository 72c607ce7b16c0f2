//! `size-limit`: `max_request_bytes = N`, `max_response_bytes = M`; a larger message
//! (after decompression) ends the call with `RESOURCE_EXHAUSTED`.

use serde::Deserialize;
use sluice_sdk::{CallInfo, Code, Filter, Interest, Status, Verdict};
use std::rc::Rc;

/// The plugin's config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    max_request_bytes: Option<usize>,
    max_response_bytes: Option<usize>,
}

/// Per-call state: the settings.
#[derive(Debug)]
pub struct SizeLimit {
    settings: Rc<Settings>,
}

fn check(len: usize, max: Option<usize>, direction: &str) -> Verdict {
    match max {
        Some(max) if len > max => {
            sluice_sdk::counter_add(&format!("{direction}_rejected"), 1);
            Verdict::Reject(Status::new(
                Code::ResourceExhausted,
                format!("size-limit: {direction} message of {len} bytes exceeds {max}"),
            ))
        }
        _ => Verdict::Forward,
    }
}

impl Filter for SizeLimit {
    type Settings = Settings;

    fn configure(config: &str) -> Result<(Settings, Interest), String> {
        let settings: Settings =
            toml::from_str(config).map_err(|e| format!("size-limit config: {e}"))?;
        let mut interest = Interest::new().stateless();
        if settings.max_request_bytes.is_some() {
            interest = interest.request_messages();
        }
        if settings.max_response_bytes.is_some() {
            interest = interest.response_messages();
        }
        if interest.hooks == sluice_sdk::Hooks::default() {
            return Err(
                "size-limit config: give max_request_bytes and/or max_response_bytes".into(),
            );
        }
        Ok((settings, interest))
    }

    fn new(settings: Rc<Settings>, _info: &CallInfo) -> Self {
        SizeLimit { settings }
    }

    fn on_request_message(&mut self, message: &[u8]) -> Verdict {
        check(message.len(), self.settings.max_request_bytes, "request")
    }

    fn on_response_message(&mut self, message: &[u8]) -> Verdict {
        check(message.len(), self.settings.max_response_bytes, "response")
    }
}

sluice_sdk::register!(SizeLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing;

    #[test]
    fn limits_apply_per_direction() {
        let mut call =
            testing::call::<SizeLimit>("max_request_bytes = 4\nmax_response_bytes = 2", "/a.B/C")
                .unwrap();
        assert_eq!(call.request_message(b"1234"), Verdict::Forward);
        assert!(
            matches!(call.request_message(b"12345"), Verdict::Reject(s) if s.code == Code::ResourceExhausted)
        );
        assert!(matches!(call.response_message(b"123"), Verdict::Reject(_)));
        assert!(call.interest().hooks.request_messages && call.interest().hooks.response_messages);
    }

    #[test]
    fn only_configured_directions_are_hooked() {
        let call = testing::call::<SizeLimit>("max_request_bytes = 4", "/a.B/C").unwrap();
        assert!(!call.interest().hooks.response_messages);
        assert!(testing::call::<SizeLimit>("", "/a.B/C").is_err());
    }
}
