//! `frame-audit`: counts HTTP/2 data frames and bytes per direction through the counter
//! import and forwards every frame untouched (the cheap raw path stays in use).

use sluice_sdk::{CallInfo, Filter, Interest, Verdict};
use std::rc::Rc;

/// Per-call state (none: counts go to the host's counters).
#[derive(Debug)]
pub struct FrameAudit;

impl Filter for FrameAudit {
    type Settings = ();

    fn configure(_config: &str) -> Result<((), Interest), String> {
        Ok((
            (),
            Interest::new()
                .request_frames()
                .response_frames()
                .stateless(),
        ))
    }

    fn new(_settings: Rc<()>, _info: &CallInfo) -> Self {
        FrameAudit
    }

    fn on_request_frame(&mut self, frame: &[u8]) -> Verdict {
        sluice_sdk::counter_add("request_frames", 1);
        sluice_sdk::counter_add("request_bytes", frame.len() as u64);
        Verdict::Forward
    }

    fn on_response_frame(&mut self, frame: &[u8]) -> Verdict {
        sluice_sdk::counter_add("response_frames", 1);
        sluice_sdk::counter_add("response_bytes", frame.len() as u64);
        Verdict::Forward
    }
}

sluice_sdk::register!(FrameAudit);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing;

    #[test]
    fn counts_and_forwards() {
        let mut call = testing::call::<FrameAudit>("", "/a.B/C").unwrap();
        assert_eq!(call.request_frame(&[0; 10]), Verdict::Forward);
        assert_eq!(call.response_frame(&[0; 7]), Verdict::Forward);
        assert_eq!(call.response_frame(&[0; 3]), Verdict::Forward);
        let counters = testing::counters();
        assert_eq!(
            (counters["request_frames"], counters["request_bytes"]),
            (1, 10)
        );
        assert_eq!(
            (counters["response_frames"], counters["response_bytes"]),
            (2, 10)
        );
    }
}
