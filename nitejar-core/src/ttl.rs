//! A small map of values read from the store, each served for a while before it is read again, so
//! that a burst of webhooks or runs reads a row once rather than once each. Changes made elsewhere
//! (the CLI, another server) show within the time to live.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Values by key, each good for `ttl` after it was read. A zero `ttl` keeps nothing.
pub(crate) struct TtlMap<V> {
    ttl: Duration,
    max: usize,
    map: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlMap<V> {
    /// A map whose values live `ttl`, holding about `max` keys at most (past it, expired entries go,
    /// and if that is not enough, all of them).
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        TtlMap {
            ttl,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Instant, V)>> {
        // Only whole entries are stored under this lock.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of `key`, if it was read less than `ttl` ago.
    pub(crate) fn get(&self, key: &str) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        self.lock()
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Remembers `value`, read at `read_at` (taken before the read, so a change racing the read is
    /// not served for longer than `ttl`).
    pub(crate) fn put(&self, key: &str, read_at: Instant, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.lock();
        if map.len() >= self.max {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.max {
                map.clear();
            }
        }
        map.insert(key.to_owned(), (read_at, value));
    }

    /// Forgets `key` (after it changed in this process).
    pub(crate) fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_zero_keeps_nothing_and_the_size_is_bounded() {
        let map = TtlMap::new(Duration::from_millis(50), 2);
        map.put("a", Instant::now(), 1);
        assert_eq!(map.get("a"), Some(1));
        map.forget("a");
        assert_eq!(map.get("a"), None);
        map.put("a", Instant::now() - Duration::from_millis(60), 1);
        assert_eq!(map.get("a"), None, "expired");
        map.put("b", Instant::now(), 2);
        map.put("c", Instant::now(), 3);
        assert_eq!(map.lock().len(), 2, "the expired entry made room");
        map.put("d", Instant::now(), 4);
        assert!(map.lock().len() <= 2);
        assert_eq!(map.get("d"), Some(4));

        let none = TtlMap::new(Duration::ZERO, 10);
        none.put("a", Instant::now(), 1);
        assert_eq!(none.get("a"), None);
    }
}
