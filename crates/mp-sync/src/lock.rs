//! `Lock` and its in-place state `RawLock`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_os::object::Plain;
use mp_os::segment::Segment;
use mp_os::time::Deadline;

use crate::error::{Error, OwnerDied, TryAcquireError};
use crate::shared::{RawObject, Shared, handle_impls, tag};
use crate::word::{self, Acquired};

/// The in-place state of a non-recursive lock: 16 bytes, `#[repr(C)]`.
///
/// ```text
/// offset  size  field
///      0     4  tag      "LK02": kind and layout version
///      4     4  state    0 = free, else the holder's liveness token (futex word):
///                        thread id in bits 0..22, start-time stamp in bits 22..31
///      8     4  waiters  threads sleeping on `state`
///     12     4  reserved
/// ```
///
/// Use it directly to put a lock in memory that you share yourself (an
/// `mmap(MAP_SHARED)` of a file or memfd, a `SharedMemory`, ...); use
/// [`Lock`] for a handle that owns its memory and can travel to other
/// processes.
///
/// # Placing a `RawLock` in shared memory
///
/// Every method takes `&self`, so the only `unsafe` step is making the
/// reference. Its rules:
///
/// * the memory is a `MAP_SHARED` mapping (a private mapping is copied on
///   fork and futex wake-ups then never reach the other process), 4-byte
///   aligned and at least `size_of::<RawLock>()` bytes;
/// * it is initialized once, with `ptr.write(RawLock::new())`, before any
///   other thread or process uses it (zeroed memory is also an unlocked
///   lock, but handles built over it with [`Lock::from_segment`] need the
///   tag that `new` writes);
/// * every process uses those bytes only as a `RawLock`, and keeps the
///   mapping while any of its threads may still use the lock;
/// * a process created with a bare `fork()` needs nothing more: the lock
///   word holds the caller's cached liveness token, and `mp_os` resets
///   that cache in every forked child (a `pthread_atfork` hook, see
///   `mp_os::fork`); a child of a raw `clone` system call, which runs no
///   such hook, calls `mp_os::fork::after_clone_in_child()` before it
///   touches a lock.
///
/// ```
/// use mp_sync::RawLock;
///
/// let seg = mp_os::segment::Segment::anonymous("my-locks", 4096)?;
/// let ptr = seg.as_ptr().cast::<RawLock>();
/// // SAFETY: a fresh MAP_SHARED mapping, page aligned and large enough,
/// // used only as a RawLock and kept mapped by `seg` while `lock` is used.
/// let lock: &RawLock = unsafe {
///     ptr.write(RawLock::new());
///     &*ptr
/// };
/// let g = lock.acquire()?;
/// assert!(lock.locked());
/// drop(g);
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[repr(C)]
pub struct RawLock {
    tag: AtomicU32,
    state: AtomicU32,
    waiters: AtomicU32,
    _reserved: u32,
}

const LOCK_TAG: u32 = tag(*b"LK02");

// SAFETY: repr(C) integers and atomics only (any bits are a value), no
// pointers or descriptors.
unsafe impl Plain for RawLock {}

// SAFETY: repr(C), starts with the tag, all fields are plain integers.
unsafe impl RawObject for RawLock {
    const MAGIC: [u8; 4] = *b"LOCK";
    const TAG: u32 = LOCK_TAG;
}

impl Default for RawLock {
    fn default() -> Self {
        RawLock::new()
    }
}

impl RawLock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        RawLock {
            tag: AtomicU32::new(LOCK_TAG),
            state: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            _reserved: 0,
        }
    }

    /// Acquires the lock, blocking as long as needed.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] when the previous holder died holding the lock: the
    /// caller holds it now, and the error carries the guard.
    ///
    /// ```
    /// let lock = mp_sync::Lock::new()?;
    /// {
    ///     let _g = lock.acquire()?;
    ///     assert!(lock.locked());
    /// }
    /// assert!(!lock.locked());
    /// # Ok::<(), mp_sync::Error>(())
    /// ```
    #[inline]
    pub fn acquire(&self) -> Result<LockGuard<'_>, OwnerDied<LockGuard<'_>>> {
        match self.acquire_deadline(Deadline::never()) {
            Ok(g) => Ok(g),
            Err(TryAcquireError::OwnerDied(d)) => Err(d),
            Err(_) => unreachable!("a wait without deadline does not time out"),
        }
    }

    /// Acquires the lock if it is free, without blocking.
    ///
    /// It does not check whether a holder is alive (that takes a look at
    /// `/proc`); [`acquire_timeout`](RawLock::acquire_timeout) does.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::WouldBlock`] when the lock is held.
    #[inline]
    pub fn try_acquire(&self) -> Result<LockGuard<'_>, TryAcquireError<LockGuard<'_>>> {
        let me = word::me();
        if word::try_take(&self.state, me) {
            Ok(self.guard(me))
        } else {
            Err(TryAcquireError::WouldBlock)
        }
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Timeout`] when the timeout passes;
    /// [`TryAcquireError::OwnerDied`] as in [`acquire`](RawLock::acquire).
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, TryAcquireError<LockGuard<'_>>> {
        self.acquire_deadline(Deadline::after(Some(timeout)))
    }

    /// Acquires the lock, waiting until `deadline` (on `CLOCK_MONOTONIC`).
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](RawLock::acquire_timeout).
    #[inline]
    pub fn acquire_deadline(
        &self,
        deadline: Deadline,
    ) -> Result<LockGuard<'_>, TryAcquireError<LockGuard<'_>>> {
        let me = word::me();
        if word::try_take(&self.state, me) {
            return Ok(self.guard(me));
        }
        match word::acquire_slow(&self.state, &self.waiters, me, deadline) {
            Acquired::Yes => Ok(self.guard(me)),
            Acquired::Died(tid) => Err(TryAcquireError::OwnerDied(OwnerDied::new(
                self.guard(me),
                tid,
            ))),
            Acquired::TimedOut => Err(TryAcquireError::Timeout),
        }
    }

    #[inline]
    fn guard(&self, me: u32) -> LockGuard<'_> {
        LockGuard {
            raw: self,
            me,
            _not_send: PhantomData,
        }
    }

    /// Releases the lock, whoever acquired it (as Python's `Lock.release`,
    /// which any thread or process may call). Pairs with
    /// [`LockGuard::forget`].
    ///
    /// # Errors
    ///
    /// [`Error::NotLocked`] when the lock is not locked.
    ///
    /// ```
    /// let lock = mp_sync::Lock::new()?;
    /// lock.acquire()?.forget();          // Python: lock.acquire()
    /// assert!(lock.locked());
    /// lock.release()?;                   // Python: lock.release()
    /// assert!(matches!(lock.release(), Err(mp_sync::Error::NotLocked)));
    /// # Ok::<(), mp_sync::Error>(())
    /// ```
    pub fn release(&self) -> Result<(), Error> {
        if self.state.swap(0, Ordering::SeqCst) == 0 {
            return Err(Error::NotLocked);
        }
        word::wake_one_if_waiting(&self.state, &self.waiters);
        Ok(())
    }

    /// Whether the lock is held (a snapshot).
    pub fn locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != 0
    }

    /// Kernel thread id of the thread that acquired the lock, if it is held.
    pub fn owner(&self) -> Option<u32> {
        match self.state.load(Ordering::Relaxed) {
            0 => None,
            t => Some(mp_os::liveness::token_tid(t)),
        }
    }
}

impl fmt::Debug for RawLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawLock")
            .field("owner", &self.owner())
            .finish()
    }
}

/// Holds a [`RawLock`] (or [`Lock`]) until dropped.
///
/// Not `Send`: the lock records the acquiring thread, whose death a waiter
/// detects. To keep the lock held past the guard (and release it later,
/// possibly from another thread or process), call
/// [`forget`](LockGuard::forget).
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'a> {
    raw: &'a RawLock,
    me: u32,
    _not_send: PhantomData<*const ()>,
}

impl<'a> LockGuard<'a> {
    /// Keeps the lock held and drops the guard; release it later with
    /// [`RawLock::release`]. The lock still names this thread as its
    /// holder: if this thread exits before someone releases the lock, the
    /// next acquirer gets [`OwnerDied`].
    pub fn forget(self) {
        std::mem::forget(self);
    }

    /// Same as [`forget`](LockGuard::forget), returning the lock.
    pub fn leak(self) -> &'a RawLock {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    /// The lock this guard holds.
    pub fn lock(&self) -> &'a RawLock {
        self.raw
    }

    /// Releases the lock for a condition wait (the guard stays).
    pub(crate) fn unlock_for_wait(&mut self) {
        word::release(&self.raw.state, &self.raw.waiters, self.me);
    }

    /// Re-acquires the lock after a condition wait; returns a dead holder's
    /// id if it had to be taken over.
    pub(crate) fn relock_after_wait(&mut self) -> Option<u32> {
        match word::acquire_slow(
            &self.raw.state,
            &self.raw.waiters,
            self.me,
            Deadline::never(),
        ) {
            Acquired::Died(t) => Some(t),
            _ => None,
        }
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // If someone released the lock behind our back (Lock::release), the
        // word no longer holds our id and this does nothing.
        word::release(&self.raw.state, &self.raw.waiters, self.me);
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").field("lock", self.raw).finish()
    }
}

/// A cross-process lock (Python's `multiprocessing.Lock`): a handle to a
/// [`RawLock`] in its own shared segment.
///
/// `Clone` is cheap and shares the lock; the handle is `Serialize` /
/// `Deserialize` and re-attaches to the same lock in another process (see
/// `mp_os::handle`). All the locking methods come from [`RawLock`] through
/// `Deref`.
///
/// If the thread holding the lock dies (its process is killed, ...), the
/// next acquirer takes the lock over within about 100 ms of sleeping and
/// gets [`OwnerDied`] with the guard.
///
/// ```
/// use std::time::Duration;
///
/// let lock = mp_sync::Lock::new()?;
/// let twin = lock.clone();
/// let g = lock.acquire()?;
/// assert!(twin.try_acquire().is_err());
/// drop(g);
/// let _g = twin.acquire_timeout(Duration::from_secs(1))?;
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    inner: Shared<RawLock>,
}

handle_impls!(Lock, RawLock);

impl Lock {
    /// Creates an unlocked lock in a new shared segment.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the segment cannot be created.
    pub fn new() -> Result<Lock, Error> {
        Ok(Lock {
            inner: Shared::create(RawLock::new())?,
        })
    }

    /// A handle onto a [`RawLock`] at byte `offset` of `seg`, for crates
    /// that embed a lock in a segment of their own. The handle keeps `seg`
    /// mapped, serializes as `seg` plus `offset`, and on deserialization
    /// checks the lock's tag at that offset.
    ///
    /// # Safety
    ///
    /// * `offset` is at least `mp_os::segment::HEADER_SIZE`, a multiple of
    ///   4, and `offset + size_of::<RawLock>() <= seg.len()`;
    /// * the bytes there were initialized with [`RawLock::new`] and every
    ///   process uses them only as a `RawLock` while the segment exists.
    ///
    /// ```
    /// use mp_os::segment::{HEADER_SIZE, Segment};
    /// use mp_sync::{Lock, RawLock};
    ///
    /// let seg = Segment::object(*b"MINE", 1, 64)?;
    /// // SAFETY: the payload is 64 zeroed bytes, aligned, used only as a RawLock.
    /// let lock = unsafe {
    ///     seg.payload().unwrap().cast::<RawLock>().write(RawLock::new());
    ///     Lock::from_segment(seg, HEADER_SIZE)
    /// };
    /// drop(lock.acquire()?);
    /// # Ok::<(), mp_sync::Error>(())
    /// ```
    pub unsafe fn from_segment(seg: Segment, offset: usize) -> Lock {
        // SAFETY: forwarded to the caller.
        let inner = unsafe { Shared::from_segment(seg, offset) };
        Lock { inner }
    }

    /// The segment that holds the lock.
    pub fn segment(&self) -> &Segment {
        self.inner.segment()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("owner", &self.owner())
            .finish()
    }
}
