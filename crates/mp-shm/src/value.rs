//! `Value<T>`: a synchronized shared value.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use mp_sync::{RLock, RLockGuard};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::shm_safe::ShmSafe;
use crate::synced::{Held, Synced};

const MAGIC: [u8; 4] = *b"VALU";

/// A value in shared memory guarded by a recursive lock (Python's
/// `multiprocessing.Value` with its default `RLock`).
///
/// `Clone` is cheap and shares the value; the handle is serde and
/// re-attaches to the same memory (and the same lock) in another process.
///
/// ```
/// use mp_shm::Value;
///
/// let counter = Value::new(0i64)?;
/// counter.set(5);
/// counter.update(|v| *v += 1);           // read-modify-write under the lock
/// {
///     let mut g = counter.lock();        // a guard that derefs to the value
///     *g *= 2;
/// }
/// {
///     // Python: `with v.get_lock(): v.value += 1`
///     let _l = counter.get_lock().acquire()?;
///     counter.set(counter.get() + 1);    // fine: the lock is recursive
/// }
/// assert_eq!(counter.get(), 13);
/// # Ok::<(), mp_shm::Error>(())
/// ```
///
/// # Sharing memory with other processes
///
/// The value lives in an anonymous memfd segment: every process that
/// holds a handle maps the same bytes, and the kernel frees them when the
/// last one lets go. Another process may write any bit pattern into it
/// (which is why `T` is [`ShmSafe`]).
///
/// # A holder that dies
///
/// If a process dies holding the lock (inside `update`, with a guard, or
/// with `get_lock()` held), the next `get`, `set`, `lock` or `update` takes
/// the lock over after about 100 ms and goes on: any bit pattern is a valid
/// `T`, so the value is usable, though a read-modify-write of the dead
/// process may be lost or half done. [`ValueGuard::owner_died`] tells a
/// guard that recovered.
pub struct Value<T> {
    inner: Synced<T>,
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            inner: self.inner.clone(),
        }
    }
}

impl<T: ShmSafe> Value<T> {
    /// Creates a shared value holding `v`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the segment cannot be created;
    /// [`Error::InvalidArgument`] for an alignment above 4096.
    pub fn new(v: T) -> Result<Value<T>, Error> {
        Value::create(v, None)
    }

    /// Creates a shared value holding `v`, guarded by `lock` instead of a
    /// lock of its own (Python's `Value(typecode, v, lock=lock)`): several
    /// values (and arrays) may share one lock, so that one acquisition
    /// covers them all. `Value('i', 0, lock=False)` is
    /// [`RawValue`](crate::RawValue).
    ///
    /// ```
    /// use mp_shm::Value;
    ///
    /// let lock = mp_sync::RLock::new()?;
    /// let balance = Value::with_lock(100i64, lock.clone())?;
    /// let audit = Value::with_lock(0u32, lock.clone())?;
    /// {
    ///     let _both = lock.acquire()?;       // one lock for both values
    ///     balance.set(balance.get() - 30);
    ///     audit.set(audit.get() + 1);
    /// }
    /// assert!(balance.get_lock().ptr_eq(&lock));
    /// assert_eq!((balance.get(), audit.get()), (70, 1));
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](Value::new).
    pub fn with_lock(v: T, lock: RLock) -> Result<Value<T>, Error> {
        Value::create(v, Some(lock))
    }

    fn create(v: T, lock: Option<RLock>) -> Result<Value<T>, Error> {
        let inner = Synced::<T>::create(MAGIC, 1, lock)?;
        // SAFETY: the fresh segment holds one element, not yet shared.
        unsafe { inner.block.ptr().write(v) };
        Ok(Value { inner })
    }

    /// Reads the value under the lock.
    ///
    /// # Panics
    ///
    /// When a [`ValueGuard`] of this thread is alive (as `RefCell` panics);
    /// read through the guard instead.
    pub fn get(&self) -> T {
        let _h = self.inner.acquire_blocking();
        self.inner.assert_not_borrowed();
        // SAFETY: the lock is held and no guard of this thread borrows the
        // data, so nobody else accesses it.
        unsafe { self.inner.block.ptr().read() }
    }

    /// Writes the value under the lock.
    ///
    /// # Panics
    ///
    /// As [`get`](Value::get).
    pub fn set(&self, v: T) {
        let _h = self.inner.acquire_blocking();
        self.inner.assert_not_borrowed();
        // SAFETY: as in `get`.
        unsafe { self.inner.block.ptr().write(v) };
    }

    /// The recursive lock that guards the value (its own, or the one given
    /// to [`with_lock`](Value::with_lock)). A thread that holds it may call
    /// [`get`](Value::get) and [`set`](Value::set).
    pub fn get_lock(&self) -> &RLock {
        &self.inner.lock
    }

    /// Locks the value and returns a guard that derefs to it.
    ///
    /// # Panics
    ///
    /// When another guard of this thread is alive.
    pub fn lock(&self) -> ValueGuard<'_, T> {
        self.guard(self.inner.acquire_blocking())
    }

    /// As [`lock`](Value::lock), without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Sync`]`(WouldBlock)` when another thread holds the lock.
    ///
    /// # Panics
    ///
    /// As [`lock`](Value::lock).
    pub fn try_lock(&self) -> Result<ValueGuard<'_, T>, Error> {
        Ok(self.guard(self.inner.acquire(None)?))
    }

    /// As [`lock`](Value::lock), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Sync`]`(Timeout)` when the timeout passes.
    ///
    /// # Panics
    ///
    /// As [`lock`](Value::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<ValueGuard<'_, T>, Error> {
        Ok(self.guard(self.inner.acquire(Synced::<T>::deadline(timeout))?))
    }

    fn guard<'a>(&'a self, h: Held<'a>) -> ValueGuard<'a, T> {
        self.inner.borrow();
        ValueGuard {
            inner: &self.inner,
            died: h.died,
            _lock: h.guard,
        }
    }

    /// Runs `f` on the value under the lock (a read-modify-write) and
    /// returns its result.
    ///
    /// # Panics
    ///
    /// As [`lock`](Value::lock); `f` must not call `get`/`set`/`lock` on
    /// this value (it has the value already).
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock())
    }

    /// Pointer to the value in this process's mapping.
    ///
    /// Accessing it is `unsafe`: other processes access the value under its
    /// lock, so hold [`get_lock`](Value::get_lock) while you do, and create
    /// no reference that outlives the lock.
    pub fn as_ptr(&self) -> *mut T {
        self.inner.block.ptr()
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.acquire(None) {
            Ok(_h) if !self.inner.borrowed_by_me() => {
                // SAFETY: lock held, not borrowed.
                let v = unsafe { self.inner.block.ptr().read() };
                f.debug_tuple("Value").field(&v).finish()
            }
            _ => f.write_str("Value(<locked>)"),
        }
    }
}

impl<T> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let inner = Synced::deserialize(d, MAGIC)?;
        if inner.block_len() != 1 {
            return Err(serde::de::Error::custom(
                "a Value segment holds one element",
            ));
        }
        Ok(Value { inner })
    }
}

/// The lock of a [`Value`], held, with access to the value.
///
/// Not `Send`: the lock is owned by a thread.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ValueGuard<'a, T: ShmSafe> {
    inner: &'a Synced<T>,
    died: Option<u32>,
    _lock: RLockGuard<'a>,
}

impl<T: ShmSafe> ValueGuard<'_, T> {
    /// The kernel thread id of a holder that died with the lock, if this
    /// guard had to take it over (the value may hold a half-done update).
    pub fn owner_died(&self) -> Option<u32> {
        self.died
    }
}

impl<T: ShmSafe> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lock is held and this guard has the only borrow.
        unsafe { &*self.inner.block.ptr() }
    }
}

impl<T: ShmSafe> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` is unique.
        unsafe { &mut *self.inner.block.ptr() }
    }
}

impl<T: ShmSafe> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        self.inner.unborrow();
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

impl<T: ShmSafe> fmt::Debug for Synced<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Synced")
            .field("len", &self.block.len())
            .finish()
    }
}
