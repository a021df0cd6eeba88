//! `RLock` and its in-place state `RawRLock`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_os::object::{Object, Plain};
use mp_os::segment::Segment;
use mp_os::time::Deadline;

use crate::error::{Error, OwnerDied, TryAcquireError};
use crate::shared::{RawObject, Shared, handle_impls, tag};
use crate::word::{self, Acquired};

/// The in-place state of a recursive lock: 24 bytes, `#[repr(C)]`.
///
/// ```text
/// offset  size  field
///      0     4  tag       "RL02": kind and layout version
///      4     4  state     0 = free, else the owner's liveness token (futex word):
///                         thread id in bits 0..22, start-time stamp in bits 22..31
///      8     4  waiters   threads sleeping on `state`
///     12     4  count     recursion depth (written by the owner only)
///     16     4  detached  levels kept with RLockGuard::forget, releasable with release()
///     20     4  pinned    nonzero while data guarded by the lock is borrowed
/// ```
///
/// `pinned` is for crates that embed an `RawRLock` beside the data it
/// guards and hand out references to that data under the lock (as
/// `mp_shm::Value`'s guard does): they set it while such a reference
/// lives, and a [`Condition`](crate::Condition) wait then refuses to
/// release the lock. It is reset when a dead owner's lock is taken over.
///
/// The rules for placing one in memory you share yourself are those of
/// [`RawLock`](crate::RawLock#placing-a-rawlock-in-shared-memory), with
/// `RawRLock::new()`.
///
/// ```
/// let lock = mp_sync::RLock::new()?;
/// let a = lock.acquire()?;
/// let b = lock.acquire()?;       // the owner may acquire again
/// assert_eq!(lock.count(), 2);
/// drop(b);
/// drop(a);
/// assert!(!lock.locked());
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[repr(C)]
pub struct RawRLock {
    tag: AtomicU32,
    state: AtomicU32,
    waiters: AtomicU32,
    count: AtomicU32,
    detached: AtomicU32,
    pinned: AtomicU32,
}

const RLOCK_TAG: u32 = tag(*b"RL02");

// SAFETY: repr(C) integers and atomics only (any bits are a value), no
// pointers or descriptors.
unsafe impl Plain for RawRLock {}

// SAFETY: repr(C), starts with the tag, all fields are plain integers.
unsafe impl RawObject for RawRLock {
    const MAGIC: [u8; 4] = *b"RLCK";
    const TAG: u32 = RLOCK_TAG;
}

impl Default for RawRLock {
    fn default() -> Self {
        RawRLock::new()
    }
}

/// Recursion state saved by a condition wait that releases an `RLock`
/// completely.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Saved {
    pub(crate) count: u32,
    pub(crate) detached: u32,
}

impl RawRLock {
    /// An unlocked recursive lock.
    pub const fn new() -> Self {
        RawRLock {
            tag: AtomicU32::new(RLOCK_TAG),
            state: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            count: AtomicU32::new(0),
            detached: AtomicU32::new(0),
            pinned: AtomicU32::new(0),
        }
    }

    /// Acquires the lock (again, if the calling thread owns it), blocking
    /// as long as needed.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] when the previous owner died holding the lock: the
    /// caller owns it now (recursion depth 1), and the error carries the
    /// guard.
    ///
    /// # Panics
    ///
    /// When the recursion depth would overflow `u32`.
    #[inline]
    pub fn acquire(&self) -> Result<RLockGuard<'_>, OwnerDied<RLockGuard<'_>>> {
        match self.acquire_deadline(Deadline::never()) {
            Ok(g) => Ok(g),
            Err(TryAcquireError::OwnerDied(d)) => Err(d),
            Err(_) => unreachable!("a wait without deadline does not time out"),
        }
    }

    /// Acquires the lock if it is free or owned by the calling thread.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::WouldBlock`] when another thread owns it.
    ///
    /// # Panics
    ///
    /// When the recursion depth would overflow `u32`.
    #[inline]
    pub fn try_acquire(&self) -> Result<RLockGuard<'_>, TryAcquireError<RLockGuard<'_>>> {
        self.acquire_with(None)
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Timeout`] when the timeout passes;
    /// [`TryAcquireError::OwnerDied`] as in [`acquire`](RawRLock::acquire).
    ///
    /// # Panics
    ///
    /// When the recursion depth would overflow `u32`.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<RLockGuard<'_>, TryAcquireError<RLockGuard<'_>>> {
        self.acquire_deadline(Deadline::after(Some(timeout)))
    }

    /// Acquires the lock, waiting until `deadline` (on `CLOCK_MONOTONIC`).
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](RawRLock::acquire_timeout).
    ///
    /// # Panics
    ///
    /// When the recursion depth would overflow `u32`.
    #[inline]
    pub fn acquire_deadline(
        &self,
        deadline: Deadline,
    ) -> Result<RLockGuard<'_>, TryAcquireError<RLockGuard<'_>>> {
        self.acquire_with(Some(deadline))
    }

    /// `None` is a non-blocking attempt.
    #[inline]
    fn acquire_with(
        &self,
        deadline: Option<Deadline>,
    ) -> Result<RLockGuard<'_>, TryAcquireError<RLockGuard<'_>>> {
        let me = word::me();
        if self.state.load(Ordering::Relaxed) == me {
            let c = self.count.load(Ordering::Relaxed);
            assert!(c < u32::MAX, "RLock recursion depth overflow");
            self.count.store(c + 1, Ordering::Relaxed);
            return Ok(self.guard());
        }
        let r = if word::try_take(&self.state, me) {
            Acquired::Yes
        } else if let Some(deadline) = deadline {
            word::acquire_slow(&self.state, &self.waiters, me, deadline)
        } else {
            return Err(TryAcquireError::WouldBlock);
        };
        match r {
            Acquired::Yes => {
                self.count.store(1, Ordering::Relaxed);
                self.detached.store(0, Ordering::Relaxed);
                Ok(self.guard())
            }
            Acquired::Died(tid) => {
                self.count.store(1, Ordering::Relaxed);
                self.detached.store(0, Ordering::Relaxed);
                self.pinned.store(0, Ordering::Relaxed);
                Err(TryAcquireError::OwnerDied(OwnerDied::new(
                    self.guard(),
                    tid,
                )))
            }
            Acquired::TimedOut => Err(TryAcquireError::Timeout),
        }
    }

    #[inline]
    fn guard(&self) -> RLockGuard<'_> {
        RLockGuard {
            raw: self,
            _not_send: PhantomData,
        }
    }

    /// Drops one level owned by the calling thread.
    #[inline]
    fn release_level(&self, me: u32) {
        let c = self.count.load(Ordering::Relaxed);
        if c > 1 {
            self.count.store(c - 1, Ordering::Relaxed);
        } else {
            self.count.store(0, Ordering::Relaxed);
            word::release(&self.state, &self.waiters, me);
        }
    }

    /// Releases one level that the calling thread acquired and kept with
    /// [`RLockGuard::forget`] (Python's `RLock.release` after a bare
    /// `acquire()`). Levels held by live guards are released only by
    /// dropping them, so a guard never outlives its hold on the lock.
    ///
    /// # Errors
    ///
    /// [`Error::NotLocked`] when the lock is free; [`Error::NotOwner`] when
    /// another thread owns it, or the calling thread holds no forgotten
    /// level.
    ///
    /// ```
    /// let lock = mp_sync::RLock::new()?;
    /// lock.acquire()?.forget();
    /// lock.acquire()?.forget();
    /// lock.release()?;
    /// lock.release()?;
    /// assert!(matches!(lock.release(), Err(mp_sync::Error::NotLocked)));
    /// # Ok::<(), mp_sync::Error>(())
    /// ```
    pub fn release(&self) -> Result<(), Error> {
        let me = word::me();
        match self.state.load(Ordering::Relaxed) {
            0 => return Err(Error::NotLocked),
            s if s != me => return Err(Error::NotOwner),
            _ => {}
        }
        let d = self.detached.load(Ordering::Relaxed);
        if d == 0 {
            return Err(Error::NotOwner);
        }
        self.detached.store(d - 1, Ordering::Relaxed);
        self.release_level(me);
        Ok(())
    }

    /// Whether the lock is held by any thread (a snapshot).
    pub fn locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != 0
    }

    /// Whether the calling thread owns the lock.
    pub fn is_owned(&self) -> bool {
        self.state.load(Ordering::Relaxed) == word::me()
    }

    /// Kernel thread id of the owner, if the lock is held.
    pub fn owner(&self) -> Option<u32> {
        match self.state.load(Ordering::Relaxed) {
            0 => None,
            t => Some(mp_os::liveness::token_tid(t)),
        }
    }

    /// The calling thread's recursion depth (0 when it does not own the
    /// lock).
    pub fn count(&self) -> u32 {
        if self.is_owned() {
            self.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Whether data guarded by the lock is borrowed (see the layout).
    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned.load(Ordering::Relaxed) != 0
    }

    /// Releases every level (the caller owns the lock) and returns them.
    pub(crate) fn release_all(&self) -> Saved {
        let saved = Saved {
            count: self.count.load(Ordering::Relaxed),
            detached: self.detached.load(Ordering::Relaxed),
        };
        self.count.store(0, Ordering::Relaxed);
        self.detached.store(0, Ordering::Relaxed);
        word::release(&self.state, &self.waiters, word::me());
        saved
    }

    /// Re-acquires the lock after [`release_all`](Self::release_all) and
    /// restores the saved levels; returns the dead owner's id if it had to
    /// take the lock over.
    pub(crate) fn restore(&self, saved: Saved) -> Option<u32> {
        let me = word::me();
        let died = match word::acquire_slow(&self.state, &self.waiters, me, Deadline::never()) {
            Acquired::Died(t) => {
                self.pinned.store(0, Ordering::Relaxed);
                Some(t)
            }
            _ => None,
        };
        self.count.store(saved.count, Ordering::Relaxed);
        self.detached.store(saved.detached, Ordering::Relaxed);
        died
    }
}

impl fmt::Debug for RawRLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRLock")
            .field("owner", &self.owner())
            .finish()
    }
}

/// Holds one level of a [`RawRLock`] (or [`RLock`]) until dropped.
///
/// Not `Send`: the lock is owned by a thread.
#[must_use = "the level is released when the guard is dropped"]
pub struct RLockGuard<'a> {
    raw: &'a RawRLock,
    _not_send: PhantomData<*const ()>,
}

impl<'a> RLockGuard<'a> {
    /// Keeps this level held and drops the guard; the owning thread
    /// releases it later with [`RawRLock::release`].
    pub fn forget(self) {
        self.raw.detached.fetch_add(1, Ordering::Relaxed);
        std::mem::forget(self);
    }

    /// Same as [`forget`](RLockGuard::forget), returning the lock.
    pub fn leak(self) -> &'a RawRLock {
        let raw = self.raw;
        self.forget();
        raw
    }

    /// The lock this guard holds a level of.
    pub fn lock(&self) -> &'a RawRLock {
        self.raw
    }
}

impl Drop for RLockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.raw.release_level(word::me());
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard")
            .field("lock", self.raw)
            .finish()
    }
}

/// A cross-process recursive lock (Python's `multiprocessing.RLock`): a
/// handle to a [`RawRLock`] in shared memory.
///
/// The owner is a kernel thread id: the owning thread may acquire it again,
/// and only the owner releases it. `Clone` is cheap; the handle is serde
/// and re-attaches to the same lock in another process. The locking
/// methods come from [`RawRLock`] through `Deref`.
///
/// If the owner dies, the next acquirer takes the lock over (recursion
/// depth 1) and gets [`OwnerDied`] with the guard.
///
/// ```
/// let lock = mp_sync::RLock::new()?;
/// let _outer = lock.acquire()?;
/// let _inner = lock.acquire()?;
/// assert!(lock.is_owned());
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[derive(Clone)]
pub struct RLock {
    inner: Shared<RawRLock>,
}

handle_impls!(RLock, RawRLock);

impl RLock {
    /// Creates an unlocked recursive lock in a new shared segment.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the segment cannot be created.
    pub fn new() -> Result<RLock, Error> {
        Ok(RLock {
            inner: Shared::create(RawRLock::new())?,
        })
    }

    /// A handle onto a [`RawRLock`] at byte `offset` of `seg`, for crates
    /// that embed a lock in a segment of their own (`mp_shm::Value` does).
    /// The handle keeps `seg` mapped, serializes as `seg` plus `offset`,
    /// and on deserialization checks the lock's tag at that offset.
    ///
    /// # Safety
    ///
    /// * `offset` is at least `mp_os::segment::HEADER_SIZE`, a multiple of
    ///   4, and `offset + size_of::<RawRLock>() <= seg.len()`;
    /// * the bytes there were initialized with [`RawRLock::new`] and every
    ///   process uses them only as a `RawRLock` while the segment exists.
    ///
    /// ```
    /// use mp_os::segment::{HEADER_SIZE, Segment};
    /// use mp_sync::{RLock, RawRLock};
    ///
    /// let seg = Segment::object(*b"MINE", 1, 64)?;
    /// // SAFETY: the payload is 64 zeroed bytes, aligned, used only as a RawRLock.
    /// let lock = unsafe {
    ///     seg.payload().unwrap().cast::<RawRLock>().write(RawRLock::new());
    ///     RLock::from_segment(seg, HEADER_SIZE)
    /// };
    /// drop(lock.acquire()?);
    /// # Ok::<(), mp_sync::Error>(())
    /// ```
    pub unsafe fn from_segment(seg: Segment, offset: usize) -> RLock {
        // SAFETY: forwarded to the caller.
        let inner = unsafe { Shared::from_segment(seg, offset) };
        RLock { inner }
    }

    /// A handle onto a [`RawRLock`] at byte `offset` of the payload of
    /// `obj`, for crates that embed a lock in an object of their own. The
    /// handle keeps the object alive, serializes as it (with the offset),
    /// and on deserialization checks the lock's tag at that offset.
    ///
    /// # Safety
    ///
    /// The bytes there were initialized with [`RawRLock::new`] and every
    /// process uses them only as a `RawRLock` while the object exists.
    ///
    /// # Panics
    ///
    /// When the lock would not lie wholly inside the payload, or would be
    /// misaligned.
    ///
    /// ```
    /// use mp_os::object::{Kind, Object};
    /// use mp_sync::{RLock, RawRLock};
    ///
    /// let obj = Object::create(Kind::new(*b"MINE", 1), [0u64; 4], 0).unwrap();
    /// // SAFETY: the payload is 32 zeroed bytes, aligned, used only as a RawRLock.
    /// let lock = unsafe {
    ///     obj.as_ptr().cast::<RawRLock>().write(RawRLock::new());
    ///     RLock::within(&obj, 0)
    /// };
    /// drop(lock.acquire()?);
    /// # Ok::<(), mp_sync::Error>(())
    /// ```
    pub unsafe fn within<X>(obj: &Object<X>, offset: usize) -> RLock {
        // SAFETY: forwarded to the caller.
        let inner = unsafe { Shared::within(obj, offset) };
        RLock { inner }
    }

    /// The segment that holds the lock.
    pub fn segment(&self) -> &Segment {
        self.inner.segment()
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &self.owner())
            .finish()
    }
}
