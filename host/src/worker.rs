//! Which worker thread the current code runs on, for thread-per-core serving: each worker
//! serves the client connections handed to it on its own single-threaded runtime, and the
//! upstream pool hands a worker the connections that live on that same thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    static WORKER: Cell<(usize, usize)> = const { Cell::new((0, 1)) };
}

/// `(index, count)` of the worker running this thread; `(0, 1)` outside thread-per-core
/// serving.
pub fn current() -> (usize, usize) {
    WORKER.with(Cell::get)
}

/// Marks this thread as worker `index` of `count`.
pub(crate) fn set(index: usize, count: usize) {
    WORKER.with(|worker| worker.set((index, count.max(1))));
}

/// Client connections open now on each worker thread (what the server balances new
/// connections by, and what `/metrics` shows).
#[derive(Debug)]
pub struct WorkerConnections {
    open: Box<[AtomicUsize]>,
}

impl WorkerConnections {
    /// Counts for `workers` workers (at least one), all zero.
    pub(crate) fn new(workers: usize) -> WorkerConnections {
        WorkerConnections {
            open: (0..workers.max(1)).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// How many workers there are.
    pub fn workers(&self) -> usize {
        self.open.len()
    }

    /// Client connections open now on `worker` (0 when there is no such worker).
    pub fn open(&self, worker: usize) -> usize {
        self.open
            .get(worker)
            .map_or(0, |open| open.load(Ordering::Acquire))
    }

    pub(crate) fn opened(&self, worker: usize) {
        self.open[worker].fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn closed(&self, worker: usize) {
        self.open[worker].fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn threads_start_outside_any_worker() {
        std::thread::spawn(|| {
            assert_eq!(super::current(), (0, 1));
            super::set(1, 2);
            assert_eq!(super::current(), (1, 2));
        })
        .join()
        .unwrap();
        assert_eq!(super::current(), (0, 1));
    }
}
