//! Test plugin `chain-tag`: its config is one word, its tag. It appends the tag to the
//! request metadata `x-echo-chain` (which the test upstream echoes back) and to the
//! response metadata `x-response-chain` and the trailers `x-trailer-chain`, so a test can
//! read the order hooks ran in, and which version of the plugin served each part of a call.

use sluice_sdk::{CallInfo, Filter, Headers, Interest, Status};
use std::rc::Rc;

/// Per-call state: the tag.
#[derive(Debug)]
pub struct ChainTag {
    tag: Rc<String>,
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

    fn new(tag: Rc<String>, _info: &CallInfo) -> Self {
        ChainTag { tag }
    }

    fn on_request_headers(&mut self, headers: &mut Headers) -> Result<(), Status> {
        headers.append("x-echo-chain", self.tag.as_bytes());
        Ok(())
    }

    fn on_response_headers(&mut self, headers: &mut Headers) -> Result<(), Status> {
        headers.append("x-response-chain", self.tag.as_bytes());
        Ok(())
    }

    fn on_trailers(&mut self, _status: &Status, trailers: &mut Headers) -> Result<(), Status> {
        trailers.append("x-trailer-chain", self.tag.as_bytes());
        Ok(())
    }
}

sluice_sdk::register!(ChainTag);
