//! Poison-tolerant locking for `std::sync::Mutex`.
//!
//! A std mutex is "poisoned" when a thread panics while holding it; from then
//! on every `lock().unwrap()` panics as well. For the long-lived state in this
//! server (the scheduler's queue, live task logs, the metrics registry) that
//! would turn one bug into a permanently dead scheduler or `/metrics`
//! endpoint. The state behind these locks is updated in small steps that each
//! leave it usable, so carrying on with the guard is the better behaviour.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Lock a mutex, recovering the guard if an earlier holder panicked.
pub trait LockExt<T: ?Sized> {
    /// Like `lock().unwrap()`, but never panics on poisoning: the data is
    /// handed back as the panicking holder left it.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn locked_returns_the_data_after_a_holder_panicked() {
        let m = Arc::new(Mutex::new(vec![1, 2]));
        let m2 = Arc::clone(&m);
        let joined = std::thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            g.push(3);
            panic!("holder panics with the lock held");
        })
        .join();
        assert!(joined.is_err(), "the holder thread should have panicked");
        assert!(m.is_poisoned());
        assert!(m.lock().is_err(), "plain lock() reports the poisoning");

        let mut g = m.locked();
        assert_eq!(*g, vec![1, 2, 3]);
        g.push(4);
        drop(g);
        assert_eq!(*m.locked(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn locked_on_a_healthy_mutex_behaves_like_lock() {
        let m = Mutex::new(5);
        *m.locked() += 1;
        assert_eq!(*m.lock().unwrap(), 6);
    }
}
