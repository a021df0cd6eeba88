//! `Array<T>`: a synchronized shared array.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use mp_sync::{RLock, RLockGuard};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::shm_safe::ShmSafe;
use crate::synced::{Held, Synced};

const MAGIC: [u8; 4] = *b"ARRY";

/// A fixed-length array in shared memory guarded by a recursive lock
/// (Python's `multiprocessing.Array` with its default `RLock`).
///
/// Indexing follows slices: an index out of bounds panics (each method
/// documents it under *Panics*). `Clone` is cheap and shares the array; the
/// handle is serde. What [`Value`](crate::Value) says about sharing memory
/// and about a holder that dies applies here too.
///
/// ```
/// use mp_shm::Array;
///
/// let a = Array::<i32>::zeroed(4)?;
/// for i in 0..a.len() {
///     a.set(i, (i * i) as i32);
/// }
/// assert_eq!(a.to_vec(), [0, 1, 4, 9]);
/// let total: i32 = a.update(|s| { s.reverse(); s.iter().sum() });
/// assert_eq!(total, 14);
/// assert_eq!(a.lock()[0], 9);            // the guard derefs to [i32]
/// # Ok::<(), mp_shm::Error>(())
/// ```
pub struct Array<T> {
    inner: Synced<T>,
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            inner: self.inner.clone(),
        }
    }
}

impl<T: ShmSafe> Array<T> {
    /// Creates a shared array of `len` zeroed elements (zero bytes are a
    /// valid `T`, as every bit pattern is).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the segment cannot be created;
    /// [`Error::InvalidArgument`] when the array would not fit in memory.
    pub fn zeroed(len: usize) -> Result<Array<T>, Error> {
        Ok(Array {
            inner: Synced::create(MAGIC, len, None)?,
        })
    }

    /// Creates a shared array of `len` zeroed elements guarded by `lock`
    /// instead of a lock of its own (Python's `Array(typecode, n,
    /// lock=lock)`; `lock=False` is [`RawArray`](crate::RawArray)). See
    /// [`Value::with_lock`](crate::Value::with_lock).
    ///
    /// ```
    /// use mp_shm::{Array, Value};
    ///
    /// let lock = mp_sync::RLock::new()?;
    /// let samples = Array::<f64>::zeroed_with_lock(3, lock.clone())?;
    /// let count = Value::with_lock(0usize, lock.clone())?;
    /// {
    ///     let _l = lock.acquire()?;
    ///     samples.set(count.get(), 2.5);
    ///     count.set(count.get() + 1);
    /// }
    /// assert_eq!(samples.to_vec(), [2.5, 0.0, 0.0]);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`zeroed`](Array::zeroed).
    pub fn zeroed_with_lock(len: usize, lock: RLock) -> Result<Array<T>, Error> {
        Ok(Array {
            inner: Synced::create(MAGIC, len, Some(lock))?,
        })
    }

    /// As [`from_slice`](Array::from_slice), guarded by `lock` (see
    /// [`zeroed_with_lock`](Array::zeroed_with_lock)).
    ///
    /// # Errors
    ///
    /// As [`zeroed`](Array::zeroed).
    pub fn from_slice_with_lock(items: &[T], lock: RLock) -> Result<Array<T>, Error> {
        let a = Array::zeroed_with_lock(items.len(), lock)?;
        // SAFETY: the fresh segment holds `items.len()` elements and is not
        // yet shared.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), a.inner.block.ptr(), items.len()) };
        Ok(a)
    }

    /// Creates a shared array holding a copy of `items`.
    ///
    /// # Errors
    ///
    /// As [`zeroed`](Array::zeroed).
    pub fn from_slice(items: &[T]) -> Result<Array<T>, Error> {
        let a = Array::zeroed(items.len())?;
        // SAFETY: the fresh segment holds `items.len()` elements and is not
        // yet shared.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), a.inner.block.ptr(), items.len()) };
        Ok(a)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.inner.block.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn check(&self, i: usize) {
        let len = self.len();
        assert!(
            i < len,
            "index out of bounds: the len is {len} but the index is {i}"
        );
    }

    /// Reads element `i` under the lock.
    ///
    /// # Panics
    ///
    /// When `i >= len()`, or when an [`ArrayGuard`] of this thread is alive.
    pub fn get(&self, i: usize) -> T {
        self.check(i);
        let _h = self.inner.acquire_blocking();
        self.inner.assert_not_borrowed();
        // SAFETY: in bounds; the lock is held and not borrowed.
        unsafe { self.inner.block.ptr().add(i).read() }
    }

    /// Writes element `i` under the lock.
    ///
    /// # Panics
    ///
    /// As [`get`](Array::get).
    pub fn set(&self, i: usize, v: T) {
        self.check(i);
        let _h = self.inner.acquire_blocking();
        self.inner.assert_not_borrowed();
        // SAFETY: as in `get`.
        unsafe { self.inner.block.ptr().add(i).write(v) };
    }

    /// Copies the elements out under the lock.
    ///
    /// # Panics
    ///
    /// When an [`ArrayGuard`] of this thread is alive.
    pub fn to_vec(&self) -> Vec<T> {
        let _h = self.inner.acquire_blocking();
        self.inner.assert_not_borrowed();
        // SAFETY: the lock is held and not borrowed; `len` elements.
        unsafe { std::slice::from_raw_parts(self.inner.block.ptr(), self.len()).to_vec() }
    }

    /// The recursive lock that guards the array (its own, or the one given
    /// to [`zeroed_with_lock`](Array::zeroed_with_lock)).
    pub fn get_lock(&self) -> &RLock {
        &self.inner.lock
    }

    /// Locks the array and returns a guard that derefs to `[T]`.
    ///
    /// # Panics
    ///
    /// When another guard of this thread is alive.
    pub fn lock(&self) -> ArrayGuard<'_, T> {
        self.guard(self.inner.acquire_blocking())
    }

    /// As [`lock`](Array::lock), without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Sync`]`(WouldBlock)` when another thread holds the lock.
    ///
    /// # Panics
    ///
    /// As [`lock`](Array::lock).
    pub fn try_lock(&self) -> Result<ArrayGuard<'_, T>, Error> {
        Ok(self.guard(self.inner.acquire(None)?))
    }

    /// As [`lock`](Array::lock), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Sync`]`(Timeout)` when the timeout passes.
    ///
    /// # Panics
    ///
    /// As [`lock`](Array::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<ArrayGuard<'_, T>, Error> {
        Ok(self.guard(self.inner.acquire(Synced::<T>::deadline(timeout))?))
    }

    fn guard<'a>(&'a self, h: Held<'a>) -> ArrayGuard<'a, T> {
        self.inner.borrow();
        ArrayGuard {
            inner: &self.inner,
            died: h.died,
            _lock: h.guard,
        }
    }

    /// Runs `f` on the elements under the lock and returns its result.
    ///
    /// # Panics
    ///
    /// As [`lock`](Array::lock).
    pub fn update<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> R {
        f(&mut self.lock())
    }

    /// Pointer to the first element in this process's mapping; see
    /// [`Value::as_ptr`](crate::Value::as_ptr) for the rules.
    pub fn as_ptr(&self) -> *mut T {
        self.inner.block.ptr()
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Array {
            inner: Synced::deserialize(d, MAGIC)?,
        })
    }
}

/// The lock of an [`Array`], held, with access to its elements as a slice.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ArrayGuard<'a, T: ShmSafe> {
    inner: &'a Synced<T>,
    died: Option<u32>,
    _lock: RLockGuard<'a>,
}

impl<T: ShmSafe> ArrayGuard<'_, T> {
    /// The kernel thread id of a holder that died with the lock, if this
    /// guard had to take it over.
    pub fn owner_died(&self) -> Option<u32> {
        self.died
    }
}

impl<T: ShmSafe> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the lock is held and this guard has the only borrow.
        unsafe { std::slice::from_raw_parts(self.inner.block.ptr(), self.inner.block.len()) }
    }
}

impl<T: ShmSafe> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` is unique.
        unsafe { std::slice::from_raw_parts_mut(self.inner.block.ptr(), self.inner.block.len()) }
    }
}

impl<T: ShmSafe> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        self.inner.unborrow();
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}
