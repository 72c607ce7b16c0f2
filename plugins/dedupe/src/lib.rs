//! `dedupe`: drops a request message byte-identical to the previous request message of
//! the same call (for example a client retrying a stream write).

use sluice_sdk::{CallInfo, Filter, Interest, Verdict};
use std::rc::Rc;

/// Per-call state: the previous request message.
#[derive(Debug, Default)]
pub struct Dedupe {
    previous: Option<Vec<u8>>,
}

impl Filter for Dedupe {
    type Settings = ();

    fn configure(config: &str) -> Result<((), Interest), String> {
        let has_settings = config
            .lines()
            .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
        if has_settings {
            return Err("dedupe takes no configuration".into());
        }
        Ok(((), Interest::new().request_messages()))
    }

    fn new(_settings: Rc<()>, _info: &CallInfo) -> Self {
        Dedupe::default()
    }

    fn on_request_message(&mut self, message: &[u8]) -> Verdict {
        if self.previous.as_deref() == Some(message) {
            sluice_sdk::counter_add("dropped", 1);
            return Verdict::Drop;
        }
        // The previous message's buffer is reused: no allocation per message.
        let previous = self.previous.get_or_insert_with(Vec::new);
        previous.clear();
        previous.extend_from_slice(message);
        Verdict::Forward
    }
}

sluice_sdk::register!(Dedupe);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing;

    #[test]
    fn drops_consecutive_duplicates_only() {
        assert!(testing::call::<Dedupe>("# comments only\n", "/a.B/C").is_ok());
        assert!(testing::call::<Dedupe>("x = 1", "/a.B/C").is_err());
        let mut call = testing::call::<Dedupe>("", "/a.B/C").unwrap();
        let verdicts: Vec<Verdict> = [&b"a"[..], b"a", b"b", b"a", b"a", b"a"]
            .iter()
            .map(|m| call.request_message(m))
            .collect();
        use Verdict::{Drop, Forward};
        assert_eq!(verdicts, [Forward, Drop, Forward, Forward, Drop, Drop]);
        assert_eq!(testing::counters()["dropped"], 3);
    }

    #[test]
    fn state_is_per_call() {
        let mut first = testing::call::<Dedupe>("", "/a.B/C").unwrap();
        let mut second = testing::call::<Dedupe>("", "/a.B/C").unwrap();
        assert_eq!(first.request_message(b"x"), Verdict::Forward);
        assert_eq!(second.request_message(b"x"), Verdict::Forward);
    }
}
