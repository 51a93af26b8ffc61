//! Locks by name: one async mutex per key, made on first use, so work on
//! one bridge (or image, or network) waits only for work on the same one.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Locks a std mutex; a panic elsewhere while it was held leaves data that
/// is still whole here (every critical section is a single insert or read).
pub fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One async mutex per key.
#[derive(Debug)]
pub struct KeyedLocks<K> {
    locks: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            locks: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash> KeyedLocks<K> {
    /// No locks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the lock of `key`; it is held until the guard drops.
    pub async fn lock(&self, key: K) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = locked(&self.locks).entry(key).or_default().clone();
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_waits_for_itself_and_not_for_others() {
        let locks = KeyedLocks::new();
        let held = locks.lock("a").await;
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("a"))
                .await
                .is_err(),
            "the same key was taken twice"
        );
        let _other = locks.lock("b").await;
        drop(held);
        let _again = locks.lock("a").await;
    }
}
