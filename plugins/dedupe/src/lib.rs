//! `dedupe`: drops a request message byte-identical to the previous request message of
//! the same call (for example a client retrying a stream write).
//!
//! The plugin is stateless: what it remembers of a call — the previous message's length
//! and 128-bit XXH3 hash, 24 bytes — is kept by the proxy with the call
//! (`sluice_sdk::set_call_state`), not in an instance. So a few warm instances serve every
//! open stream, and an idle stream costs the proxy 24 bytes here, not an instance.

use sluice_sdk::{CallInfo, Filter, Interest, Verdict};
use std::rc::Rc;
use xxhash_rust::xxh3::xxh3_128;

/// The plugin; it holds nothing of a call.
#[derive(Debug, Default)]
pub struct Dedupe;

/// What is kept of a message to know it again: its length and 128-bit hash. Two different
/// messages match only if they have the same length and hash (by chance, about one in
/// 2^128; a client that crafts a collision only drops its own message).
fn fingerprint(message: &[u8]) -> [u8; 24] {
    let mut kept = [0u8; 24];
    kept[..8].copy_from_slice(&(message.len() as u64).to_le_bytes());
    kept[8..].copy_from_slice(&xxh3_128(message).to_le_bytes());
    kept
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
        Ok(((), Interest::new().request_messages().stateless()))
    }

    fn new(_settings: Rc<()>, _info: &CallInfo) -> Self {
        Dedupe
    }

    fn on_request_message(&mut self, message: &[u8]) -> Verdict {
        let seen = fingerprint(message);
        if sluice_sdk::call_state() == seen {
            sluice_sdk::counter_add("dropped", 1);
            return Verdict::Drop;
        }
        sluice_sdk::set_call_state(&seen);
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
        assert!(call.interest().stateless);
        let verdicts: Vec<Verdict> = [&b"a"[..], b"a", b"b", b"a", b"a", b"a", b"", b""]
            .iter()
            .map(|m| call.request_message(m))
            .collect();
        use Verdict::{Drop, Forward};
        assert_eq!(
            verdicts,
            [Forward, Drop, Forward, Forward, Drop, Drop, Forward, Drop]
        );
        assert_eq!(testing::counters()["dropped"], 4);
        assert_eq!(
            call.call_state().len(),
            24,
            "a fingerprint, not the message"
        );
    }

    #[test]
    fn state_is_per_call() {
        let mut first = testing::call::<Dedupe>("", "/a.B/C").unwrap();
        let mut second = testing::call::<Dedupe>("", "/a.B/C").unwrap();
        assert_eq!(first.request_message(b"x"), Verdict::Forward);
        assert_eq!(second.request_message(b"x"), Verdict::Forward);
        assert_eq!(first.request_message(b"x"), Verdict::Drop);
    }

    #[test]
    fn messages_of_other_lengths_or_bytes_differ() {
        assert_ne!(fingerprint(b"ab"), fingerprint(b"ba"));
        assert_ne!(fingerprint(b""), fingerprint(&[0]));
        assert_eq!(fingerprint(&[7; 100_000]), fingerprint(&[7; 100_000]));
    }
}
