//! Which worker thread the current code runs on, for thread-per-core serving: each worker
//! serves the client connections handed to it on its own single-threaded runtime, and the
//! upstream pool hands a worker the connections that live on that same thread. Also what
//! is kept per worker: [`PerWorker`] values, and the client connections each one serves.

use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::sync::OnceLock;
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

/// One shard per core (at most 64), counted once: how many a [`PerWorker`] made with
/// [`PerWorker::per_core`] has.
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(64)
    })
}

/// A value per worker thread, for what every hook or call updates (counters, pools of
/// idle instances): each worker touches its own shard, so the workers neither contend for
/// one lock or counter nor bounce a shared cache line between their cores (each shard is
/// padded to a cache line of its own). Readers (metrics) go over all shards.
#[derive(Debug)]
pub struct PerWorker<T> {
    shards: Box<[CachePadded<T>]>,
}

impl<T: Default> PerWorker<T> {
    /// A shard per core ([`cores`]).
    pub fn per_core() -> PerWorker<T> {
        PerWorker::new(cores())
    }

    /// `shards` shards (at least one), each `T::default()`.
    pub fn new(shards: usize) -> PerWorker<T> {
        PerWorker {
            shards: (0..shards.max(1))
                .map(|_| CachePadded::new(T::default()))
                .collect(),
        }
    }
}

impl<T: Default> Default for PerWorker<T> {
    fn default() -> PerWorker<T> {
        PerWorker::per_core()
    }
}

impl<T> PerWorker<T> {
    /// The index of this thread's shard (the worker's index, wrapped).
    pub fn home(&self) -> usize {
        current().0 % self.shards.len()
    }

    /// This thread's shard.
    pub fn local(&self) -> &T {
        &self.shards[self.home()]
    }

    /// Shard `index` (below [`PerWorker::len`]; [`PerWorker::home`] is one).
    pub fn shard(&self, index: usize) -> &T {
        &self.shards[index]
    }

    /// How many shards there are.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Never true: there is at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Every shard.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|shard| &**shard)
    }
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

    #[test]
    fn each_worker_gets_its_own_shard_on_its_own_cache_line() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let counts = std::sync::Arc::new(super::PerWorker::<AtomicU64>::new(2));
        for worker in [0, 1, 1, 3] {
            let counts = counts.clone();
            std::thread::spawn(move || {
                super::set(worker, 4);
                counts.local().fetch_add(1, Ordering::Relaxed);
            })
            .join()
            .unwrap();
        }
        // Workers 1 and 3 share shard 1 of two; outside any worker, shard 0.
        counts.local().fetch_add(10, Ordering::Relaxed);
        let shards: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(shards, [11, 3]);
        let (a, b) = (
            counts.shard(0) as *const _ as usize,
            counts.shard(1) as *const _ as usize,
        );
        assert!(b - a >= 64, "shards {a:#x} and {b:#x} share a cache line");
    }
}
