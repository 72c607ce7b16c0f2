//! Idle instances of one plugin version, kept per worker thread: a hook runs on an instance
//! that last ran on the same thread (its linear memory still in that core's cache), and
//! the workers do not contend for one lock on every hook of a stateless plugin.

use super::runtime::Instance;
use crate::worker::PerWorker;
use std::sync::Mutex;

/// Idle instances kept per shard: enough for the calls a busy worker has open at once, so
/// instances are not made and thrown away under load (instantiation, and the page faults
/// of a fresh linear memory, cost far more than a hook call).
pub const MAX_IDLE_PER_SHARD: usize = 512;

/// Idle instances, one shard per worker thread (the instance pool of the engine bounds
/// their total: when it is full, idle instances are given up, see `Runtime::instantiate`).
/// (Generic for the tests; the proxy keeps boxed [`Instance`]s: a pointer moves in and out
/// of the pool, not the instance.)
pub struct IdlePool<T = Box<Instance>> {
    shards: PerWorker<Mutex<Vec<T>>>,
}

impl<T> std::fmt::Debug for IdlePool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdlePool")
            .field("shards", &self.shards.len())
            .field("idle", &self.len())
            .finish()
    }
}

impl<T> IdlePool<T> {
    /// An empty pool with `shards` shards (at least one).
    pub fn new(shards: usize) -> IdlePool<T> {
        IdlePool {
            shards: PerWorker::new(shards),
        }
    }

    /// Shard `index`, locked.
    fn shard(&self, index: usize) -> std::sync::MutexGuard<'_, Vec<T>> {
        lock(self.shards.shard(index))
    }

    /// The instance this thread returned last; else one another thread returned (still
    /// cheaper than a new instance); `None` when the pool is empty.
    pub fn take(&self) -> Option<T> {
        let home = self.shards.home();
        if let Some(instance) = self.shard(home).pop() {
            return Some(instance);
        }
        (1..self.shards.len())
            .map(|offset| (home + offset) % self.shards.len())
            .find_map(|index| self.shard(index).pop())
    }

    /// Keeps `instance` for this thread's next hook, unless its shard is full (then it is
    /// dropped).
    pub fn put(&self, instance: T) {
        let mut shard = lock(self.shards.local());
        if shard.len() < MAX_IDLE_PER_SHARD {
            shard.push(instance);
        }
    }

    /// How many instances are idle.
    pub fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.shard(i).len()).sum()
    }

    /// Whether no instance is idle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every idle instance out (to be dropped by the caller, outside the locks).
    pub fn drain(&self) -> Vec<T> {
        (0..self.shards.len())
            .flat_map(|i| std::mem::take(&mut *self.shard(i)))
            .collect()
    }
}

/// Locks a shard; one a panic left poisoned is taken over (its instances are whole).
fn lock<T>(shard: &Mutex<Vec<T>>) -> std::sync::MutexGuard<'_, Vec<T>> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::{IdlePool, MAX_IDLE_PER_SHARD};
    use std::sync::Arc;

    /// Runs `f` on a new thread marked as worker `index` of two.
    fn on_worker<R: Send + 'static>(index: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
        std::thread::spawn(move || {
            crate::worker::set(index, 2);
            f()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_worker_gets_back_what_it_returned_before_what_others_did() {
        let pool = Arc::new(IdlePool::new(2));
        let p = pool.clone();
        on_worker(0, move || p.put("zero"));
        let p = pool.clone();
        on_worker(1, move || p.put("one"));
        let p = pool.clone();
        assert_eq!(on_worker(1, move || p.take()), Some("one"));
        let p = pool.clone();
        // Its own shard is empty now: it takes worker 0's instead of making a new one.
        assert_eq!(on_worker(1, move || p.take()), Some("zero"));
        let p = pool.clone();
        assert_eq!(on_worker(0, move || p.take()), None);
        assert!(pool.is_empty());
    }

    #[test]
    fn a_full_shard_drops_what_it_is_given_and_drain_empties_all() {
        let pool = Arc::new(IdlePool::new(2));
        let p = pool.clone();
        on_worker(0, move || {
            (0..MAX_IDLE_PER_SHARD + 3).for_each(|i| p.put(i))
        });
        let p = pool.clone();
        on_worker(1, move || p.put(1000));
        assert_eq!(pool.len(), MAX_IDLE_PER_SHARD + 1);
        assert_eq!(pool.drain().len(), MAX_IDLE_PER_SHARD + 1);
        assert!(pool.is_empty());
    }
}
