//! Test plugin `hostile`: misbehaves on purpose, but only in calls that carry the request
//! metadata `x-hostile` (so other calls through the same proxy show that it is contained).
//! Its config is one word: `loop` (never returns), `panic`, `memory-bomb` (allocates until
//! the memory cap stops it), `giant-modify` (replaces each request message with 32 MiB),
//! `giant-state` (keeps 1 MiB of call state at each request message), or
//! `configure-error` (refuses to load); a second word `stateless` declares the plugin
//! stateless (it then runs on instances lent for one hook; `panic` only, which decides in
//! the request headers hook alone).

use sluice_sdk::{CallInfo, Filter, Headers, Interest, Status, Verdict};
use std::rc::Rc;

/// What to do wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spin forever.
    Loop,
    /// Panic (a wasm trap).
    Panic,
    /// Allocate without end.
    MemoryBomb,
    /// Return a 32 MiB `modify`.
    GiantModify,
    /// Keep 1 MiB of call state with the proxy.
    GiantState,
}

/// Per-call state.
#[derive(Debug)]
pub struct Hostile {
    mode: Mode,
    armed: bool,
}

impl Filter for Hostile {
    type Settings = Mode;

    fn configure(config: &str) -> Result<(Mode, Interest), String> {
        let mut words = config.split_whitespace();
        let mode = match words.next().unwrap_or("") {
            "loop" => Mode::Loop,
            "panic" => Mode::Panic,
            "memory-bomb" => Mode::MemoryBomb,
            "giant-modify" => Mode::GiantModify,
            "giant-state" => Mode::GiantState,
            "configure-error" => return Err("hostile: refusing to configure, as asked".into()),
            other => return Err(format!("hostile: unknown mode {other:?}")),
        };
        let interest = Interest::new().request_headers();
        let interest = if matches!(mode, Mode::GiantModify | Mode::GiantState) {
            interest.request_messages()
        } else {
            interest
        };
        let interest = match words.next() {
            None => interest,
            Some("stateless") => interest.stateless(),
            Some(other) => return Err(format!("hostile: unknown word {other:?}")),
        };
        Ok((mode, interest))
    }

    fn new(mode: Rc<Mode>, _info: &CallInfo) -> Self {
        Hostile {
            mode: *mode,
            armed: false,
        }
    }

    fn on_request_headers(&mut self, headers: &mut Headers) -> Result<(), Status> {
        self.armed = headers.get("x-hostile").is_some();
        if !self.armed {
            return Ok(());
        }
        match self.mode {
            Mode::Loop => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            Mode::Panic => panic!("hostile plugin panics, as asked"),
            Mode::MemoryBomb => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Mode::GiantModify | Mode::GiantState => Ok(()),
        }
    }

    fn on_request_message(&mut self, _message: &[u8]) -> Verdict {
        match (self.armed, self.mode) {
            (true, Mode::GiantState) => {
                sluice_sdk::set_call_state(&vec![7u8; 1 << 20]);
                Verdict::Forward
            }
            (true, _) => Verdict::Modify(vec![7u8; 32 << 20]),
            (false, _) => Verdict::Forward,
        }
    }
}

sluice_sdk::register!(Hostile);
