//! A lock that a forked child can take back.
//!
//! Under the fork start method the child is a copy of a possibly
//! multi-threaded parent: a `std::sync::Mutex` that another thread held at
//! the moment of `fork` stays locked in the child forever. The few statics
//! this crate touches in a forked child (its children list, its identity,
//! its fork-server connection) use this lock instead, and the child resets
//! them right after `fork`, before it touches them (see `fork::start`).
//! Critical sections are short, so waiters spin and then yield.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) struct ForkSafeMutex<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized by `locked`, as in a mutex.
unsafe impl<T: Send> Sync for ForkSafeMutex<T> {}

impl<T> ForkSafeMutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        ForkSafeMutex {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub(crate) fn lock(&self) -> ForkSafeGuard<'_, T> {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        ForkSafeGuard { m: self }
    }

    /// In a child right after `fork`: the thread that held the lock does
    /// not exist here, so release it.
    ///
    /// # Safety
    ///
    /// Only in a forked child, before any other use of the lock (the child
    /// has a single thread, so nothing else can hold a guard), and only for
    /// data that stays consistent if its holder stopped mid-way (the
    /// callers replace the data right after).
    pub(crate) unsafe fn reset_after_fork(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

pub(crate) struct ForkSafeGuard<'a, T> {
    m: &'a ForkSafeMutex<T>,
}

impl<T> Deref for ForkSafeGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.m.value.get() }
    }
}

impl<T> DerefMut for ForkSafeGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &mut *self.m.value.get() }
    }
}

impl<T> Drop for ForkSafeGuard<'_, T> {
    fn drop(&mut self) {
        self.m.locked.store(false, Ordering::Release);
    }
}
