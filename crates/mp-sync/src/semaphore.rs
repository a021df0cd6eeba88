//! `Semaphore`, `BoundedSemaphore` and their in-place state `RawSemaphore`.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_os::futex;
use mp_os::object::Plain;
use mp_os::time::Deadline;

use crate::error::Error;
use crate::shared::{RawObject, Shared, handle_impls, tag};
use crate::word::SPIN;

/// The largest value a semaphore can hold (`SEM_VALUE_MAX` on Linux).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// The in-place state of a counting semaphore: 16 bytes, `#[repr(C)]`.
///
/// ```text
/// offset  size  field
///      0     4  tag      "SM01": kind and layout version
///      4     4  value    the count (futex word)
///      8     4  waiters  threads sleeping on `value`
///     12     4  max      largest value: SEM_VALUE_MAX, or the initial value when bounded
/// ```
///
/// The rules for placing one in memory you share yourself are those of
/// [`RawLock`](crate::RawLock#placing-a-rawlock-in-shared-memory), with
/// `RawSemaphore::new(n)` or `RawSemaphore::new_bounded(n)`.
///
/// A semaphore has no owner, so the death of a process between `acquire`
/// and `release` cannot be detected (as in Python): its unit is lost.
#[repr(C)]
pub struct RawSemaphore {
    tag: AtomicU32,
    value: AtomicU32,
    waiters: AtomicU32,
    max: u32,
}

const SEM_TAG: u32 = tag(*b"SM01");

// SAFETY: repr(C) integers and atomics only (any bits are a value), no
// pointers or descriptors.
unsafe impl Plain for RawSemaphore {}

// SAFETY: repr(C), starts with the tag, all fields are plain integers.
unsafe impl RawObject for RawSemaphore {
    const MAGIC: [u8; 4] = *b"SEMA";
    const TAG: u32 = SEM_TAG;
}

impl RawSemaphore {
    /// A semaphore holding `value`, unbounded (up to [`SEM_VALUE_MAX`]).
    ///
    /// # Panics
    ///
    /// When `value > SEM_VALUE_MAX`.
    pub const fn new(value: u32) -> Self {
        assert!(value <= SEM_VALUE_MAX, "semaphore value too large");
        RawSemaphore {
            tag: AtomicU32::new(SEM_TAG),
            value: AtomicU32::new(value),
            waiters: AtomicU32::new(0),
            max: SEM_VALUE_MAX,
        }
    }

    /// A bounded semaphore holding `value`: releasing it above `value` is
    /// an error.
    ///
    /// # Panics
    ///
    /// When `value > SEM_VALUE_MAX`.
    pub const fn new_bounded(value: u32) -> Self {
        let mut s = RawSemaphore::new(value);
        s.max = value;
        s
    }

    #[inline]
    fn try_take(&self) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        while v > 0 {
            match self
                .value
                .compare_exchange_weak(v, v - 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Takes one unit, blocking while the value is 0.
    ///
    /// ```
    /// let sem = mp_sync::Semaphore::new(1)?;
    /// let g = sem.acquire();
    /// assert_eq!(sem.get_value(), 0);
    /// drop(g);
    /// assert_eq!(sem.get_value(), 1);
    /// # Ok::<(), mp_sync::Error>(())
    /// ```
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        match self.acquire_deadline(Deadline::never()) {
            Ok(g) => g,
            Err(_) => unreachable!("a wait without deadline does not time out"),
        }
    }

    /// Takes one unit if the value is positive, without blocking.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when the value is 0.
    pub fn try_acquire(&self) -> Result<SemaphoreGuard<'_>, Error> {
        if self.try_take() {
            Ok(SemaphoreGuard { raw: self })
        } else {
            Err(Error::WouldBlock)
        }
    }

    /// Takes one unit, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the timeout passes.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>, Error> {
        self.acquire_deadline(Deadline::after(Some(timeout)))
    }

    /// Takes one unit, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the deadline passes.
    pub fn acquire_deadline(&self, deadline: Deadline) -> Result<SemaphoreGuard<'_>, Error> {
        if self.try_take()
            || futex::spin_until(SPIN, || {
                self.value.load(Ordering::Relaxed) != 0 && self.try_take()
            })
        {
            return Ok(SemaphoreGuard { raw: self });
        }
        loop {
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let r = if self.value.load(Ordering::SeqCst) == 0 {
                futex::wait(&self.value, 0, deadline)
            } else {
                futex::Wait::Woken
            };
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if self.try_take() {
                return Ok(SemaphoreGuard { raw: self });
            }
            if r == futex::Wait::TimedOut || deadline.expired() {
                return Err(Error::Timeout);
            }
        }
    }

    /// Adds one unit, waking a waiter.
    ///
    /// # Errors
    ///
    /// [`Error::ReleasedTooManyTimes`] when a bounded semaphore would exceed
    /// its initial value; [`Error::InvalidArgument`] when the value would
    /// exceed [`SEM_VALUE_MAX`].
    pub fn release(&self) -> Result<(), Error> {
        self.release_n(1)
    }

    /// Adds `n` units, waking up to `n` waiters (Python's `release(n)`).
    ///
    /// # Errors
    ///
    /// As [`release`](RawSemaphore::release); nothing is added on error.
    pub fn release_n(&self, n: u32) -> Result<(), Error> {
        if n == 0 {
            return Ok(());
        }
        let mut v = self.value.load(Ordering::Relaxed);
        loop {
            let new = match v.checked_add(n) {
                Some(x) if x <= self.max => x,
                _ if self.max < SEM_VALUE_MAX => return Err(Error::ReleasedTooManyTimes),
                _ => {
                    return Err(Error::InvalidArgument(
                        "semaphore value would exceed SEM_VALUE_MAX",
                    ));
                }
            };
            match self
                .value
                .compare_exchange_weak(v, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        if self.waiters.load(Ordering::SeqCst) != 0 {
            futex::wake(&self.value, n);
        }
        Ok(())
    }

    /// The current value (a snapshot).
    pub fn get_value(&self) -> u32 {
        self.value.load(Ordering::Relaxed)
    }

    /// The largest value: [`SEM_VALUE_MAX`], or the initial value of a
    /// bounded semaphore.
    pub fn max_value(&self) -> u32 {
        self.max
    }
}

impl fmt::Debug for RawSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSemaphore")
            .field("value", &self.get_value())
            .field("max", &self.max)
            .finish()
    }
}

/// One unit of a semaphore, given back when dropped.
///
/// A semaphore has no owner: the guard may be sent to another thread, and
/// [`forget`](SemaphoreGuard::forget) keeps the unit taken (someone calls
/// `release()` later).
#[must_use = "the unit is released when the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    raw: &'a RawSemaphore,
}

impl SemaphoreGuard<'_> {
    /// Keeps the unit taken; release it later with
    /// [`RawSemaphore::release`].
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // Fails only if someone over-released a bounded semaphore meanwhile.
        let _ = self.raw.release();
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard")
            .field("semaphore", self.raw)
            .finish()
    }
}

/// A cross-process counting semaphore (Python's
/// `multiprocessing.Semaphore`): a handle to a [`RawSemaphore`].
///
/// `Clone` is cheap; the handle is serde. Methods come from
/// [`RawSemaphore`] through `Deref`.
///
/// ```
/// let sem = mp_sync::Semaphore::new(2)?;
/// let a = sem.acquire();
/// let b = sem.acquire();
/// assert!(sem.try_acquire().is_err());
/// drop((a, b));
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Shared<RawSemaphore>,
}

handle_impls!(Semaphore, RawSemaphore);

impl Semaphore {
    /// Creates a semaphore holding `value`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `value > SEM_VALUE_MAX`;
    /// [`Error::Os`] when the segment cannot be created.
    pub fn new(value: u32) -> Result<Semaphore, Error> {
        if value > SEM_VALUE_MAX {
            return Err(Error::InvalidArgument(
                "semaphore value exceeds SEM_VALUE_MAX",
            ));
        }
        Ok(Semaphore {
            inner: Shared::create(RawSemaphore::new(value))?,
        })
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.get_value())
            .finish()
    }
}

/// A semaphore that refuses to be released above its initial value
/// (Python's `multiprocessing.BoundedSemaphore`).
///
/// ```
/// let sem = mp_sync::BoundedSemaphore::new(1)?;
/// assert!(matches!(sem.release(), Err(mp_sync::Error::ReleasedTooManyTimes)));
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    inner: Shared<RawSemaphore>,
}

handle_impls!(BoundedSemaphore, RawSemaphore);

impl BoundedSemaphore {
    /// Creates a bounded semaphore holding (and bounded by) `value`.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::new`].
    pub fn new(value: u32) -> Result<BoundedSemaphore, Error> {
        if value > SEM_VALUE_MAX {
            return Err(Error::InvalidArgument(
                "semaphore value exceeds SEM_VALUE_MAX",
            ));
        }
        Ok(BoundedSemaphore {
            inner: Shared::create(RawSemaphore::new_bounded(value))?,
        })
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.get_value())
            .field("max", &self.max_value())
            .finish()
    }
}
