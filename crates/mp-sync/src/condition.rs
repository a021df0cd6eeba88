//! `Condition` and its in-place state `RawCondition`.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_os::futex;
use mp_os::time::Deadline;
use serde::{Deserialize, Serialize};

use crate::error::{Error, OwnerDied, TryAcquireError};
use crate::lock::{Lock, LockGuard};
use crate::rlock::{RLock, RLockGuard};
use crate::shared::{RawObject, Shared, tag};

const WAITER: u32 = 1;
const SIGNAL: u32 = 1 << 16;
const MASK: u32 = 0xFFFF;

/// The in-place state of a condition variable: 16 bytes, `#[repr(C)]`.
///
/// ```text
/// offset  size  field
///      0     4  tag       "CV01": kind and layout version
///      4     4  word      bits 0-15: registered waiters; bits 16-31: pending
///                         notifications (futex word)
///      8     8  reserved
/// ```
///
/// A waiter registers while it holds the lock, releases the lock, sleeps
/// until a notification is pending and takes it (one atomic step that
/// also deregisters it), then re-acquires the lock. `notify(n)` (under the
/// lock) posts at most as many notifications as there are registered
/// waiters without one, so it wakes at most `n` waiters. A waiter that
/// times out deregisters after it has re-acquired the lock, taking a
/// notification posted meanwhile if there is one.
///
/// At most 65535 threads may wait at once. A waiter that dies while
/// registered stays counted: a later `notify(1)` may be spent on it (Python
/// has the same weakness).
///
/// The rules for placing one in memory you share yourself are those of
/// [`RawLock`](crate::RawLock#placing-a-rawlock-in-shared-memory), with
/// `RawCondition::new()`; the lock it is used with is given to each call
/// as a guard.
///
/// ```
/// use mp_sync::{RawCondition, RawLock};
///
/// let lock = RawLock::new();
/// let cond = RawCondition::new();
/// let mut g = lock.acquire()?;
/// assert!(!cond.wait_timeout(&mut g, std::time::Duration::from_millis(5))?);
/// cond.notify(&g, 1);
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[repr(C)]
pub struct RawCondition {
    tag: AtomicU32,
    word: AtomicU32,
    _reserved: [u32; 2],
}

const COND_TAG: u32 = tag(*b"CV01");

// SAFETY: repr(C), starts with the tag, all fields are plain integers.
unsafe impl RawObject for RawCondition {
    const MAGIC: [u8; 4] = *b"COND";
    const TAG: u32 = COND_TAG;
}

mod sealed {
    /// How a condition wait releases and re-acquires a lock.
    pub trait Sealed {
        /// Whether the lock may be released for a wait.
        fn may_wait(&self) -> Result<(), crate::Error> {
            Ok(())
        }
        /// Releases the lock completely; returns what `relock` restores.
        fn unlock_for_wait(&mut self) -> u64;
        /// Re-acquires the lock; returns a dead holder's id if the lock had
        /// to be taken over.
        fn relock_after_wait(&mut self, saved: u64) -> Option<u32>;
    }
}

/// A guard of a lock that a condition can wait with: [`LockGuard`],
/// [`RLockGuard`] or [`ConditionGuard`]. Sealed.
pub trait WaitGuard: sealed::Sealed {}

impl sealed::Sealed for LockGuard<'_> {
    fn unlock_for_wait(&mut self) -> u64 {
        self.unlock_for_wait();
        0
    }
    fn relock_after_wait(&mut self, _saved: u64) -> Option<u32> {
        self.relock_after_wait()
    }
}
impl WaitGuard for LockGuard<'_> {}

impl sealed::Sealed for RLockGuard<'_> {
    fn may_wait(&self) -> Result<(), Error> {
        if self.lock().is_pinned() {
            return Err(Error::InvalidArgument(
                "cannot wait: data guarded by this RLock is borrowed (a Value or Array guard is alive)",
            ));
        }
        Ok(())
    }
    fn unlock_for_wait(&mut self) -> u64 {
        let s = self.lock().release_all();
        (u64::from(s.count) << 32) | u64::from(s.detached)
    }
    fn relock_after_wait(&mut self, saved: u64) -> Option<u32> {
        self.lock().restore(crate::rlock::Saved {
            count: (saved >> 32) as u32,
            detached: saved as u32,
        })
    }
}
impl WaitGuard for RLockGuard<'_> {}

impl Default for RawCondition {
    fn default() -> Self {
        RawCondition::new()
    }
}

impl RawCondition {
    /// A condition with no waiters.
    pub const fn new() -> Self {
        RawCondition {
            tag: AtomicU32::new(COND_TAG),
            word: AtomicU32::new(0),
            _reserved: [0; 2],
        }
    }

    /// Releases the lock held by `guard`, waits for a notification, and
    /// re-acquires the lock (an `RLock` at its former depth).
    ///
    /// # Errors
    ///
    /// [`Error::OwnerDied`] when re-acquiring the lock had to take it over
    /// from a dead holder (the guard holds it again);
    /// [`Error::InvalidArgument`] when 65535 threads already wait, or when
    /// the lock is an `RLock` whose guarded data is borrowed (a guard of
    /// `mp_shm::Value` is alive: waiting would release it under the guard).
    pub fn wait<G: WaitGuard>(&self, guard: &mut G) -> Result<(), Error> {
        self.wait_deadline(guard, Deadline::never()).map(drop)
    }

    /// As [`wait`](RawCondition::wait), for at most `timeout`; returns
    /// `false` if it timed out (the lock is held again either way).
    ///
    /// # Errors
    ///
    /// As [`wait`](RawCondition::wait).
    pub fn wait_timeout<G: WaitGuard>(
        &self,
        guard: &mut G,
        timeout: Duration,
    ) -> Result<bool, Error> {
        self.wait_deadline(guard, Deadline::after(Some(timeout)))
    }

    /// As [`wait`](RawCondition::wait), until `deadline`; returns `false` if
    /// it passed without a notification.
    ///
    /// # Errors
    ///
    /// As [`wait`](RawCondition::wait).
    pub fn wait_deadline<G: WaitGuard>(
        &self,
        guard: &mut G,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        sealed::Sealed::may_wait(guard)?;
        let mut cur = self.word.load(Ordering::Relaxed);
        loop {
            if cur & MASK == MASK {
                return Err(Error::InvalidArgument(
                    "too many threads wait on one condition",
                ));
            }
            match self.word.compare_exchange_weak(
                cur,
                cur + WAITER,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let saved = sealed::Sealed::unlock_for_wait(guard);
        let mut notified = self.take_signal(deadline);
        let died = sealed::Sealed::relock_after_wait(guard, saved);
        if !notified {
            // Under the lock again: no notify can run; deregister, or take a
            // notification posted for us after we gave up.
            let mut cur = self.word.load(Ordering::SeqCst);
            loop {
                let (new, took) = if cur >> 16 > 0 {
                    (cur - SIGNAL - WAITER, true)
                } else {
                    (cur - WAITER, false)
                };
                match self
                    .word
                    .compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(_) => {
                        notified = took;
                        break;
                    }
                    Err(now) => cur = now,
                }
            }
        }
        match died {
            Some(tid) => Err(Error::OwnerDied { tid }),
            None => Ok(notified),
        }
    }

    /// Sleeps until a notification can be taken (and takes it, which also
    /// deregisters the caller) or the deadline passes.
    fn take_signal(&self, deadline: Deadline) -> bool {
        let mut spins = crate::word::SPIN / 4;
        loop {
            let cur = self.word.load(Ordering::SeqCst);
            if cur >> 16 > 0 {
                if self
                    .word
                    .compare_exchange_weak(
                        cur,
                        cur - SIGNAL - WAITER,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if deadline.expired() {
                return false;
            }
            if spins > 0 {
                spins -= 1;
                std::hint::spin_loop();
                continue;
            }
            futex::wait(&self.word, cur, deadline);
        }
    }

    /// Waits until `predicate()` is true (Python's `wait_for`); the
    /// predicate runs with the lock held.
    ///
    /// # Errors
    ///
    /// As [`wait`](RawCondition::wait).
    pub fn wait_for<G: WaitGuard>(
        &self,
        guard: &mut G,
        mut predicate: impl FnMut() -> bool,
    ) -> Result<(), Error> {
        while !predicate() {
            self.wait(guard)?;
        }
        Ok(())
    }

    /// Waits until `predicate()` is true or `timeout` passes; returns the
    /// predicate's last value.
    ///
    /// # Errors
    ///
    /// As [`wait`](RawCondition::wait).
    pub fn wait_for_timeout<G: WaitGuard>(
        &self,
        guard: &mut G,
        mut predicate: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<bool, Error> {
        let deadline = Deadline::after(Some(timeout));
        loop {
            if predicate() {
                return Ok(true);
            }
            if deadline.expired() {
                return Ok(false);
            }
            self.wait_deadline(guard, deadline)?;
        }
    }

    /// Wakes at most `n` of the threads waiting now. The guard proves the
    /// caller holds the lock, as Python requires.
    pub fn notify<G: WaitGuard>(&self, _guard: &G, n: u32) {
        self.notify_locked(n);
    }

    /// Wakes every thread waiting now.
    pub fn notify_all<G: WaitGuard>(&self, _guard: &G) {
        self.notify_locked(u32::MAX);
    }

    fn notify_locked(&self, n: u32) {
        let mut cur = self.word.load(Ordering::SeqCst);
        let k = loop {
            let waiting = cur & MASK;
            let pending = cur >> 16;
            let k = n.min(waiting.saturating_sub(pending));
            if k == 0 {
                return;
            }
            match self.word.compare_exchange_weak(
                cur,
                cur + k * SIGNAL,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break k,
                Err(now) => cur = now,
            }
        };
        futex::wake(&self.word, k);
    }

    /// Threads registered as waiting (a snapshot; includes woken threads
    /// that have not yet re-acquired the lock).
    pub fn waiting(&self) -> u32 {
        let w = self.word.load(Ordering::Relaxed);
        (w & MASK) - (w >> 16).min(w & MASK)
    }
}

impl fmt::Debug for RawCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawCondition")
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// The lock under a [`Condition`]: a [`Lock`] or an [`RLock`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AnyLock {
    /// A non-recursive lock.
    Lock(Lock),
    /// A recursive lock (Python's default for `Condition`).
    RLock(RLock),
}

impl From<Lock> for AnyLock {
    fn from(l: Lock) -> Self {
        AnyLock::Lock(l)
    }
}

impl From<RLock> for AnyLock {
    fn from(l: RLock) -> Self {
        AnyLock::RLock(l)
    }
}

enum AnyGuard<'a> {
    Lock(LockGuard<'a>),
    RLock(RLockGuard<'a>),
}

/// A cross-process condition variable (Python's
/// `multiprocessing.Condition`), over a [`Lock`] or [`RLock`] given by the
/// user or its own `RLock`.
///
/// Python's `with cond: cond.wait()` becomes `cond.acquire()?.wait()?`:
/// waiting and notifying are methods of the [`ConditionGuard`], which
/// proves that the lock is held.
///
/// `Clone` is cheap; the handle is serde (with its lock).
///
/// ```
/// let cond = mp_sync::Condition::new()?;
/// let ready = mp_sync::Event::new()?;
/// let (c2, r2) = (cond.clone(), ready.clone());
/// let t = std::thread::spawn(move || {
///     let mut g = c2.acquire().unwrap();
///     r2.set();
///     g.wait().unwrap();       // releases the lock while it sleeps
/// });
/// ready.wait();
/// let g = cond.acquire()?;     // the waiter has released the lock
/// g.notify_all();
/// drop(g);
/// t.join().unwrap();
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    inner: Shared<RawCondition>,
    lock: AnyLock,
}

impl Condition {
    /// A condition over a new [`RLock`] of its own.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when a segment cannot be created.
    pub fn new() -> Result<Condition, Error> {
        Condition::with_lock(RLock::new()?)
    }

    /// A condition over `lock` (a [`Lock`] or an [`RLock`]).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the segment cannot be created.
    pub fn with_lock(lock: impl Into<AnyLock>) -> Result<Condition, Error> {
        Ok(Condition {
            inner: Shared::create(RawCondition::new())?,
            lock: lock.into(),
        })
    }

    /// The underlying lock.
    pub fn lock(&self) -> &AnyLock {
        &self.lock
    }

    /// The in-place condition state.
    pub fn raw(&self) -> &RawCondition {
        self.inner.get()
    }

    fn wrap<'a>(&'a self, g: AnyGuard<'a>) -> ConditionGuard<'a> {
        ConditionGuard {
            cond: self.inner.get(),
            guard: g,
        }
    }

    /// Acquires the underlying lock.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] as for the lock.
    pub fn acquire(&self) -> Result<ConditionGuard<'_>, OwnerDied<ConditionGuard<'_>>> {
        match &self.lock {
            AnyLock::Lock(l) => match l.acquire() {
                Ok(g) => Ok(self.wrap(AnyGuard::Lock(g))),
                Err(d) => Err(d.map(|g| self.wrap(AnyGuard::Lock(g)))),
            },
            AnyLock::RLock(l) => match l.acquire() {
                Ok(g) => Ok(self.wrap(AnyGuard::RLock(g))),
                Err(d) => Err(d.map(|g| self.wrap(AnyGuard::RLock(g)))),
            },
        }
    }

    /// Acquires the underlying lock if it is free.
    ///
    /// # Errors
    ///
    /// As the lock's `try_acquire`.
    pub fn try_acquire(&self) -> Result<ConditionGuard<'_>, TryAcquireError<ConditionGuard<'_>>> {
        self.acquire_deadline(None)
    }

    /// Acquires the underlying lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As the lock's `acquire_timeout`.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ConditionGuard<'_>, TryAcquireError<ConditionGuard<'_>>> {
        self.acquire_deadline(Some(Deadline::after(Some(timeout))))
    }

    fn acquire_deadline(
        &self,
        deadline: Option<Deadline>,
    ) -> Result<ConditionGuard<'_>, TryAcquireError<ConditionGuard<'_>>> {
        match &self.lock {
            AnyLock::Lock(l) => {
                let r = match deadline {
                    None => l.try_acquire(),
                    Some(d) => l.acquire_deadline(d),
                };
                r.map(|g| self.wrap(AnyGuard::Lock(g)))
                    .map_err(|e| e.map(|g| self.wrap(AnyGuard::Lock(g))))
            }
            AnyLock::RLock(l) => {
                let r = match deadline {
                    None => l.try_acquire(),
                    Some(d) => l.acquire_deadline(d),
                };
                r.map(|g| self.wrap(AnyGuard::RLock(g)))
                    .map_err(|e| e.map(|g| self.wrap(AnyGuard::RLock(g))))
            }
        }
    }

    fn check_owned(&self) -> Result<(), Error> {
        let owned = match &self.lock {
            AnyLock::Lock(l) => l.locked(),
            AnyLock::RLock(l) => l.is_owned(),
        };
        if owned { Ok(()) } else { Err(Error::NotOwner) }
    }

    /// Wakes at most `n` waiting threads, for a caller that holds the lock
    /// without a [`ConditionGuard`] at hand (an `RLock` level kept with
    /// `forget`, say).
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not own the `RLock`
    /// (for a `Lock`: when it is not locked, as Python checks).
    pub fn notify(&self, n: u32) -> Result<(), Error> {
        self.check_owned()?;
        self.inner.get().notify_locked(n);
        Ok(())
    }

    /// Wakes every waiting thread; see [`notify`](Condition::notify).
    ///
    /// # Errors
    ///
    /// As [`notify`](Condition::notify).
    pub fn notify_all(&self) -> Result<(), Error> {
        self.notify(u32::MAX)
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .field("waiting", &self.raw().waiting())
            .finish()
    }
}

/// The lock of a [`Condition`], held; wait and notify through it.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a RawCondition,
    guard: AnyGuard<'a>,
}

impl sealed::Sealed for AnyGuard<'_> {
    fn may_wait(&self) -> Result<(), Error> {
        match self {
            AnyGuard::Lock(g) => sealed::Sealed::may_wait(g),
            AnyGuard::RLock(g) => sealed::Sealed::may_wait(g),
        }
    }
    fn unlock_for_wait(&mut self) -> u64 {
        match self {
            AnyGuard::Lock(g) => sealed::Sealed::unlock_for_wait(g),
            AnyGuard::RLock(g) => sealed::Sealed::unlock_for_wait(g),
        }
    }
    fn relock_after_wait(&mut self, saved: u64) -> Option<u32> {
        match self {
            AnyGuard::Lock(g) => sealed::Sealed::relock_after_wait(g, saved),
            AnyGuard::RLock(g) => sealed::Sealed::relock_after_wait(g, saved),
        }
    }
}

impl sealed::Sealed for ConditionGuard<'_> {
    fn may_wait(&self) -> Result<(), Error> {
        self.guard.may_wait()
    }
    fn unlock_for_wait(&mut self) -> u64 {
        self.guard.unlock_for_wait()
    }
    fn relock_after_wait(&mut self, saved: u64) -> Option<u32> {
        self.guard.relock_after_wait(saved)
    }
}
impl WaitGuard for ConditionGuard<'_> {}

impl ConditionGuard<'_> {
    /// Releases the lock, waits for a notification, re-acquires the lock.
    ///
    /// # Errors
    ///
    /// As [`RawCondition::wait`].
    pub fn wait(&mut self) -> Result<(), Error> {
        let cond = self.cond;
        cond.wait(self)
    }

    /// As [`wait`](ConditionGuard::wait) for at most `timeout`; `false` if
    /// it timed out.
    ///
    /// # Errors
    ///
    /// As [`RawCondition::wait`].
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<bool, Error> {
        let cond = self.cond;
        cond.wait_timeout(self, timeout)
    }

    /// Waits until `predicate()` holds (checked with the lock held).
    ///
    /// # Errors
    ///
    /// As [`RawCondition::wait`].
    pub fn wait_for(&mut self, predicate: impl FnMut() -> bool) -> Result<(), Error> {
        let cond = self.cond;
        cond.wait_for(self, predicate)
    }

    /// Waits until `predicate()` holds or `timeout` passes; returns the
    /// predicate's last value.
    ///
    /// # Errors
    ///
    /// As [`RawCondition::wait`].
    pub fn wait_for_timeout(
        &mut self,
        predicate: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<bool, Error> {
        let cond = self.cond;
        cond.wait_for_timeout(self, predicate, timeout)
    }

    /// Wakes at most `n` waiting threads.
    pub fn notify(&self, n: u32) {
        self.cond.notify_locked(n);
    }

    /// Wakes every waiting thread.
    pub fn notify_all(&self) {
        self.cond.notify_locked(u32::MAX);
    }
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard")
            .field("condition", self.cond)
            .finish()
    }
}
