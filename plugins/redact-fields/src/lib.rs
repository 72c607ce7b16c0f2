//! `redact-fields`: `request_fields = [numbers]`, `response_fields = [numbers]`: removes
//! those top-level protobuf fields from every message, without a schema.

use serde::Deserialize;
use sluice_sdk::{CallInfo, Code, Filter, Interest, Status, Verdict, wire};
use std::rc::Rc;

/// The plugin's config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    request_fields: Vec<u32>,
    #[serde(default)]
    response_fields: Vec<u32>,
    #[serde(default)]
    methods: Vec<String>,
}

/// Per-call state: the settings.
#[derive(Debug)]
pub struct RedactFields {
    settings: Rc<Settings>,
}

fn redact(message: &[u8], fields: &[u32]) -> Verdict {
    match wire::remove_fields(message, fields) {
        Ok(Some(redacted)) => {
            sluice_sdk::counter_add("redacted", 1);
            Verdict::Modify(redacted)
        }
        Ok(None) => Verdict::Forward,
        Err(err) => Verdict::Reject(Status::new(
            Code::InvalidArgument,
            format!("redact-fields: message is not valid protobuf: {err}"),
        )),
    }
}

impl Filter for RedactFields {
    type Settings = Settings;

    fn configure(config: &str) -> Result<(Settings, Interest), String> {
        let settings: Settings =
            toml::from_str(config).map_err(|e| format!("redact-fields config: {e}"))?;
        if settings
            .request_fields
            .iter()
            .chain(&settings.response_fields)
            .any(|&n| n == 0)
        {
            return Err("redact-fields config: field numbers start at 1".into());
        }
        let mut interest = Interest::new()
            .methods(settings.methods.clone())
            .stateless();
        if !settings.request_fields.is_empty() {
            interest = interest.request_messages();
        }
        if !settings.response_fields.is_empty() {
            interest = interest.response_messages();
        }
        Ok((settings, interest))
    }

    fn new(settings: Rc<Settings>, _info: &CallInfo) -> Self {
        RedactFields { settings }
    }

    fn on_request_message(&mut self, message: &[u8]) -> Verdict {
        redact(message, &self.settings.request_fields)
    }

    fn on_response_message(&mut self, message: &[u8]) -> Verdict {
        redact(message, &self.settings.response_fields)
    }
}

sluice_sdk::register!(RedactFields);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing;

    #[test]
    fn removes_listed_fields_only() {
        let mut call =
            testing::call::<RedactFields>("request_fields = [2]\nresponse_fields = [1]", "/a.B/C")
                .unwrap();
        // field 1 = "a", field 2 = "secret", field 3 = 7
        let message = [
            0x0a, 0x01, b'a', 0x12, 0x06, b's', b'e', b'c', b'r', b'e', b't', 0x18, 0x07,
        ];
        assert_eq!(
            call.request_message(&message),
            Verdict::Modify(vec![0x0a, 0x01, b'a', 0x18, 0x07])
        );
        assert_eq!(call.response_message(&[0x18, 0x07]), Verdict::Forward);
        assert!(matches!(
            call.request_message(&[0x12, 0x09]),
            Verdict::Reject(_)
        ));
    }

    #[test]
    fn field_zero_is_refused() {
        assert!(testing::call::<RedactFields>("request_fields = [0]", "/a.B/C").is_err());
    }
}
