//! What plugins did: per plugin version, hook calls by hook and verdict and failures by
//! kind (for `/metrics`); per call, the verdicts that changed it (for the access log).

use super::bindings::Hooks;
use crate::worker::PerWorker;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A hook of the filter interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `on-request-headers`.
    RequestHeaders,
    /// `on-request-message`.
    RequestMessage,
    /// `on-request-frame`.
    RequestFrame,
    /// `on-response-headers`.
    ResponseHeaders,
    /// `on-response-message`.
    ResponseMessage,
    /// `on-response-frame`.
    ResponseFrame,
    /// `on-trailers`.
    Trailers,
}

impl Hook {
    /// Every hook, in label order.
    pub const ALL: [Hook; 7] = [
        Hook::RequestHeaders,
        Hook::RequestMessage,
        Hook::RequestFrame,
        Hook::ResponseHeaders,
        Hook::ResponseMessage,
        Hook::ResponseFrame,
        Hook::Trailers,
    ];

    /// The hook's flag in a plugin's interest.
    pub fn flag(self) -> Hooks {
        match self {
            Hook::RequestHeaders => Hooks::REQUEST_HEADERS,
            Hook::RequestMessage => Hooks::REQUEST_MESSAGES,
            Hook::RequestFrame => Hooks::REQUEST_FRAMES,
            Hook::ResponseHeaders => Hooks::RESPONSE_HEADERS,
            Hook::ResponseMessage => Hooks::RESPONSE_MESSAGES,
            Hook::ResponseFrame => Hooks::RESPONSE_FRAMES,
            Hook::Trailers => Hooks::TRAILERS,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Hook::RequestHeaders => "request_headers",
            Hook::RequestMessage => "request_message",
            Hook::RequestFrame => "request_frame",
            Hook::ResponseHeaders => "response_headers",
            Hook::ResponseMessage => "response_message",
            Hook::ResponseFrame => "response_frame",
            Hook::Trailers => "trailers",
        }
    }
}

/// What a hook call came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forward / continue unchanged.
    Forward,
    /// Dropped the message or frame.
    Drop,
    /// Replaced the bytes or headers.
    Modify,
    /// Ended the call with a status.
    Reject,
    /// Failed (trap, deadline, limit); the policy decided what followed.
    Failed,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Forward,
        Outcome::Drop,
        Outcome::Modify,
        Outcome::Reject,
        Outcome::Failed,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Forward => "forward",
            Outcome::Drop => "drop",
            Outcome::Modify => "modify",
            Outcome::Reject => "reject",
            Outcome::Failed => "failed",
        }
    }
}

/// How a plugin failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Ran past its CPU deadline.
    Deadline,
    /// Trapped (panic, unreachable, out of memory, bad access).
    Trap,
    /// Returned output over a limit or headers that cannot be applied.
    Limit,
    /// Could not start the call (instantiate, configure, constructor).
    Start,
}

impl FailureKind {
    /// Every kind, in label order.
    pub const ALL: [FailureKind; 4] = [
        FailureKind::Deadline,
        FailureKind::Trap,
        FailureKind::Limit,
        FailureKind::Start,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Deadline => "deadline",
            FailureKind::Trap => "trap",
            FailureKind::Limit => "limit",
            FailureKind::Start => "start",
        }
    }
}

/// Hook calls by hook and verdict.
type OutcomeCounts = [[AtomicU64; Outcome::ALL.len()]; Hook::ALL.len()];

/// Counters of one plugin version.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Counted by each worker in its own shard: every hook call adds one, and one counter
    /// shared by the workers would move between their cores on every hook.
    outcomes: PerWorker<OutcomeCounts>,
    failures: [AtomicU64; FailureKind::ALL.len()],
    skipped: AtomicU64,
}

impl PluginStats {
    /// Counts one hook call.
    pub fn count(&self, hook: Hook, outcome: Outcome) {
        self.outcomes.local()[hook as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure; `skipped` when the policy let the call go on without the plugin.
    pub fn count_failure(&self, kind: FailureKind, skipped: bool) {
        self.failures[kind as usize].fetch_add(1, Ordering::Relaxed);
        if skipped {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hook calls so far.
    pub fn outcomes(&self, hook: Hook, outcome: Outcome) -> u64 {
        self.outcomes
            .iter()
            .map(|shard| shard[hook as usize][outcome as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// Failures of `kind` so far.
    pub fn failures(&self, kind: FailureKind) -> u64 {
        self.failures[kind as usize].load(Ordering::Relaxed)
    }

    /// Failures skipped under fail-open so far.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

/// One kind of change to a call: `(plugin, hook, outcome, times)`.
type Action = (Arc<str>, Hook, Outcome, u32);

/// The plugin verdicts that changed one call.
#[derive(Debug, Default)]
pub struct CallActions {
    entries: Mutex<Vec<Action>>,
}

impl CallActions {
    /// Notes a verdict other than forward.
    pub fn note(&self, plugin: &Arc<str>, hook: Hook, outcome: Outcome) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries
            .iter_mut()
            .find(|(p, h, o, _)| p == plugin && *h == hook && *o == outcome)
        {
            Some(entry) => entry.3 = entry.3.saturating_add(1),
            None => entries.push((plugin.clone(), hook, outcome, 1)),
        }
    }

    /// `plugin:hook:verdict[xN]` entries joined by commas; `-` if nothing changed.
    pub fn summary(&self) -> String {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.is_empty() {
            return "-".to_owned();
        }
        entries
            .iter()
            .map(|(plugin, hook, outcome, times)| {
                let mut entry = format!("{plugin}:{}:{}", hook.label(), outcome.label());
                if *times > 1 {
                    entry.push_str(&format!("x{times}"));
                }
                entry
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_aggregates_repeated_verdicts() {
        let actions = CallActions::default();
        assert_eq!(actions.summary(), "-");
        let a: Arc<str> = Arc::from("dedupe");
        let b: Arc<str> = Arc::from("auth");
        actions.note(&a, Hook::RequestMessage, Outcome::Drop);
        actions.note(&a, Hook::RequestMessage, Outcome::Drop);
        actions.note(&b, Hook::RequestHeaders, Outcome::Reject);
        assert_eq!(
            actions.summary(),
            "dedupe:request_message:dropx2,auth:request_headers:reject"
        );
    }

    #[test]
    fn stats_count_by_hook_and_outcome() {
        let stats = PluginStats::default();
        stats.count(Hook::Trailers, Outcome::Modify);
        stats.count_failure(FailureKind::Deadline, true);
        assert_eq!(stats.outcomes(Hook::Trailers, Outcome::Modify), 1);
        assert_eq!(stats.outcomes(Hook::Trailers, Outcome::Forward), 0);
        assert_eq!(stats.failures(FailureKind::Deadline), 1);
        assert_eq!(stats.skipped(), 1);
    }

    #[test]
    fn hook_counts_of_every_worker_add_up() {
        let stats = Arc::new(PluginStats::default());
        let workers = crate::worker::cores();
        for worker in 0..workers + 1 {
            let stats = stats.clone();
            std::thread::spawn(move || {
                crate::worker::set(worker, workers + 1);
                stats.count(Hook::RequestMessage, Outcome::Drop);
            })
            .join()
            .unwrap();
        }
        assert_eq!(
            stats.outcomes(Hook::RequestMessage, Outcome::Drop),
            workers as u64 + 1
        );
    }
}
