//! Test plugin `chain-tag`: its config is one word, its tag. It appends the tag to the
//! request metadata `x-echo-chain` (which the test upstream echoes back) and to the
//! response metadata `x-response-chain` and the trailers `x-trailer-chain`, so a test can
//! read the order hooks ran in, and which version of the plugin served each part of a call.
//! It also answers with `x-response-call: METHOD DEADLINE_MS` (or `none`), read from the
//! call's info only then, in the response headers hook.

use sluice_sdk::{CallInfo, Filter, Headers, Interest, Status};
use std::rc::Rc;

/// Per-call state: the tag and the call's info (not asked of the proxy until read).
#[derive(Debug)]
pub struct ChainTag {
    tag: Rc<String>,
    info: CallInfo,
}

impl Filter for ChainTag {
    type Settings = String;

    fn configure(config: &str) -> Result<(String, Interest), String> {
        let tag = config.trim().to_owned();
        if tag.is_empty() {
            return Err("chain-tag needs a tag".into());
        }
        Ok((
            tag,
            Interest::new()
                .request_headers()
                .response_headers()
                .trailers(),
        ))
    }

    fn new(tag: Rc<String>, info: &CallInfo) -> Self {
        ChainTag {
            tag,
            info: info.clone(),
        }
    }

    fn on_request_headers(&mut self, headers: &mut Headers) -> Result<(), Status> {
        headers.append("x-echo-chain", self.tag.as_bytes());
        Ok(())
    }

    fn on_response_headers(&mut self, headers: &mut Headers) -> Result<(), Status> {
        headers.append("x-response-chain", self.tag.as_bytes());
        let deadline = self
            .info
            .deadline_ms()
            .map_or_else(|| "none".to_owned(), |ms| ms.to_string());
        headers.append(
            "x-response-call",
            format!("{} {deadline}", self.info.method()).as_bytes(),
        );
        Ok(())
    }

    fn on_trailers(&mut self, _status: &Status, trailers: &mut Headers) -> Result<(), Status> {
        trailers.append("x-trailer-chain", self.tag.as_bytes());
        Ok(())
    }
}

sluice_sdk::register!(ChainTag);
