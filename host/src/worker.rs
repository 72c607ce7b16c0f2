//! Which worker thread the current code runs on, for thread-per-core serving: each worker
//! accepts connections on its own single-threaded runtime, and the upstream pool hands a
//! worker the connections that live on that same thread.

use std::cell::Cell;

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
