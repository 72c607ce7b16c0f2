//! Test plugin `every-other`: drops the second, fourth, … request message of each call.
//! Its config is one word, where it counts a call's messages:
//! - `held`: in its `Filter` value, so the instance stays with the call (a stateful plugin
//!   with request hooks only);
//! - `kept`: in the call state the proxy keeps (`set_call_state`), declared stateless, so
//!   it runs on instances lent for one hook.

use sluice_sdk::{CallInfo, Filter, Interest, Verdict};
use std::rc::Rc;

/// Where the count is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In the instance.
    Held,
    /// In the call state.
    Kept,
}

/// Per-call state (used in `held` mode only).
#[derive(Debug)]
pub struct EveryOther {
    mode: Mode,
    seen: u64,
}

impl EveryOther {
    /// Counts one more message and says how many the call has seen.
    fn count(&mut self) -> u64 {
        if self.mode == Mode::Held {
            self.seen += 1;
            return self.seen;
        }
        let seen = sluice_sdk::call_state()
            .try_into()
            .map_or(0, u64::from_le_bytes)
            + 1;
        sluice_sdk::set_call_state(&seen.to_le_bytes());
        seen
    }
}

impl Filter for EveryOther {
    type Settings = Mode;

    fn configure(config: &str) -> Result<(Mode, Interest), String> {
        let interest = Interest::new().request_messages();
        match config.trim() {
            "held" => Ok((Mode::Held, interest)),
            "kept" => Ok((Mode::Kept, interest.stateless())),
            other => Err(format!("every-other: unknown mode {other:?}")),
        }
    }

    fn new(mode: Rc<Mode>, _info: &CallInfo) -> Self {
        EveryOther {
            mode: *mode,
            seen: 0,
        }
    }

    fn on_request_message(&mut self, _message: &[u8]) -> Verdict {
        if self.count().is_multiple_of(2) {
            Verdict::Drop
        } else {
            Verdict::Forward
        }
    }
}

sluice_sdk::register!(EveryOther);

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Drop, Forward};
    use sluice_sdk::testing;

    #[test]
    fn every_mode_drops_every_second_message_of_each_call() {
        for mode in ["held", "kept"] {
            let mut first = testing::call::<EveryOther>(mode, "/a.B/C").unwrap();
            let mut second = testing::call::<EveryOther>(mode, "/a.B/C").unwrap();
            let verdicts = [
                first.request_message(b"1"),
                second.request_message(b"1"),
                first.request_message(b"2"),
                first.request_message(b"3"),
                second.request_message(b"2"),
            ];
            assert_eq!(verdicts, [Forward, Forward, Drop, Forward, Drop], "{mode}");
        }
        let mut kept = testing::call::<EveryOther>("kept", "/a.B/C").unwrap();
        kept.request_message(b"1");
        assert_eq!(kept.call_state(), 1u64.to_le_bytes());
        assert!(testing::call::<EveryOther>("other", "/a.B/C").is_err());
    }
}
