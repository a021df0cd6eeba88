//! `Condition` and its in-place state `RawCondition`.

use std::fmt;
use std::sync::atomic::AtomicU32 as TagWord;
use std::time::Duration;

use mp_os::futex::Wait;
use mp_os::object::Plain;
use mp_os::time::Deadline;
use serde::{Deserialize, Serialize};

use crate::error::{Error, OwnerDied, TryAcquireError};
use crate::lock::{Lock, LockGuard};
use crate::rlock::{RLock, RLockGuard};
use crate::shared::{RawObject, Shared, tag};

#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, Ordering};

#[cfg(all(test, loom))]
mod loom_tests;

/// The in-place state of a condition variable: 16 bytes, `#[repr(C)]`.
///
/// ```text
/// offset  size  field
///      0     4  tag       "CV02": kind and layout version
///      4     4  seq       bumped by every notify that finds a waiter (futex word)
///      8     4  waiters   threads inside a wait that have not yet been woken
///     12     4  reserved
/// ```
///
/// The protocol is that of Rust's futex `Condvar`. A waiter, holding the
/// lock, registers in `waiters` and reads `seq`; it releases the lock and
/// sleeps on `seq` while it still holds the value read; it deregisters when
/// it wakes, and re-acquires the lock. `notify(n)` (under the lock) bumps
/// `seq` and wakes `n` sleepers (`FUTEX_WAKE`). Every waiter that read
/// `seq` before a notify is either asleep, and then among the threads that
/// `FUTEX_WAKE` can pick, or finds `seq` changed and returns at once; a
/// waiter that comes later reads the new value, so it can neither take the
/// wake-up meant for an earlier one nor return because of it. No
/// notification is lost; `notify(n)` wakes `n` sleepers plus any waiter
/// that had released the lock but not yet gone to sleep (a spurious
/// wake-up, which `wait_for` absorbs). A `notify` with no waiter registered
/// changes nothing.
///
/// A wake-up never goes to a waiter that has already timed out: the
/// kernel either wakes a sleeper or lets its timeout end the sleep, never
/// both, and a waiter that a notify reached returns `true`. A waiter that dies
/// while waiting leaves the kernel's queue, so no notification is spent on
/// it; it stays counted in [`waiting`](RawCondition::waiting).
///
/// Version 1 (`CV01`) kept a count of pending notifications that any
/// waiter could take, including one that started waiting after the notify,
/// which could leave an earlier waiter asleep for ever.
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
    tag: TagWord,
    seq: AtomicU32,
    waiters: AtomicU32,
    _reserved: u32,
    /// Under loom: the model of the kernel's futex queue for `seq`.
    #[cfg(loom)]
    queue: loom_futex::Queue,
}

const COND_TAG: u32 = tag(*b"CV02");

// SAFETY: repr(C) integers and atomics only (any bits are a value), no
// pointers or descriptors (under loom, the model's queue: one process only).
unsafe impl Plain for RawCondition {}

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
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        RawCondition {
            tag: TagWord::new(COND_TAG),
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            _reserved: 0,
        }
    }

    /// A condition with no waiters (under loom: not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        RawCondition {
            tag: TagWord::new(COND_TAG),
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            _reserved: 0,
            queue: loom_futex::Queue::new(),
        }
    }

    /// Releases the lock held by `guard`, waits for a notification, and
    /// re-acquires the lock (an `RLock` at its former depth).
    ///
    /// Like every condition variable's, a wait may return without a
    /// notification meant for it (a spurious wake-up): check the predicate
    /// in a loop, or use [`wait_for`](RawCondition::wait_for).
    ///
    /// # Errors
    ///
    /// [`Error::OwnerDied`] when re-acquiring the lock had to take it over
    /// from a dead holder (the guard holds it again);
    /// [`Error::InvalidArgument`] when the lock is an `RLock` whose guarded
    /// data is borrowed (a guard of `mp_shm::Value` is alive: waiting would
    /// release it under the guard).
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
        // Under the lock: no notify runs between these two steps.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let seen = self.seq.load(Ordering::SeqCst);
        let saved = sealed::Sealed::unlock_for_wait(guard);
        let notified = self.sleep(seen, deadline);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        let died = sealed::Sealed::relock_after_wait(guard, saved);
        match died {
            Some(tid) => Err(Error::OwnerDied { tid }),
            None => Ok(notified),
        }
    }

    /// Sleeps while `seq` holds `seen`, until `deadline`; returns whether
    /// `seq` moved (a notify since the caller registered).
    fn sleep(&self, seen: u32, deadline: Deadline) -> bool {
        loop {
            let r = self.futex_wait(seen, deadline);
            // A notify bumps `seq` before it wakes anyone, so a thread woken
            // by one sees it moved; an unchanged `seq` after `Woken` was a
            // signal (EINTR): sleep again.
            if self.seq.load(Ordering::SeqCst) != seen {
                return true;
            }
            if r == Wait::TimedOut {
                return false;
            }
        }
    }

    #[cfg(not(loom))]
    fn futex_wait(&self, seen: u32, deadline: Deadline) -> Wait {
        mp_os::futex::wait(&self.seq, seen, deadline)
    }

    #[cfg(loom)]
    fn futex_wait(&self, seen: u32, deadline: Deadline) -> Wait {
        self.queue.wait(&self.seq, seen, deadline)
    }

    #[cfg(not(loom))]
    fn futex_wake(&self, n: u32) {
        mp_os::futex::wake(&self.seq, n);
    }

    #[cfg(loom)]
    fn futex_wake(&self, n: u32) {
        self.queue.wake(n);
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

    /// Wakes `n` of the threads waiting now (a waiter that has released the
    /// lock but not yet gone to sleep may return as well: a spurious
    /// wake-up). Threads that start waiting later are not woken. The guard
    /// proves the caller holds the lock, as Python requires.
    pub fn notify<G: WaitGuard>(&self, _guard: &G, n: u32) {
        self.notify_locked(n);
    }

    /// Wakes every thread waiting now.
    pub fn notify_all<G: WaitGuard>(&self, _guard: &G) {
        self.notify_locked(u32::MAX);
    }

    fn notify_locked(&self, n: u32) {
        // Waiters register under the lock, which the caller holds: none is
        // missed here, and with none registered there is nothing to do.
        if n == 0 || self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.futex_wake(n.min(i32::MAX as u32));
    }

    /// Threads inside a wait that have not yet been woken (a snapshot; a
    /// woken thread leaves the count when it runs again, before it
    /// re-acquires the lock; a thread that died while waiting stays
    /// counted).
    pub fn waiting(&self) -> u32 {
        self.waiters.load(Ordering::SeqCst)
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

    /// Wakes `n` of the threads waiting now (as
    /// [`RawCondition::notify`]), for a caller that holds the lock
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

    /// Wakes `n` of the threads waiting now; a thread that starts waiting
    /// later is not woken (see [`RawCondition::notify`]).
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

#[cfg(loom)]
mod loom_futex {
    //! Under loom: a model of the kernel's queue of threads sleeping on one
    //! futex word. `wait` checks the word and enqueues the caller in one
    //! step (the kernel does both under its hash-bucket lock); `wake(n)`
    //! dequeues the `n` oldest sleepers. A wake-up that nobody receives
    //! leaves its waiter asleep for ever, which loom reports as a deadlock.

    use std::collections::VecDeque;

    use loom::sync::atomic::{AtomicU32, Ordering};
    use loom::sync::{Condvar, Mutex};
    use mp_os::futex::Wait;
    use mp_os::time::Deadline;

    pub(super) struct Queue {
        state: Mutex<State>,
        changed: Condvar,
    }

    struct State {
        next: u64,
        sleeping: VecDeque<u64>,
    }

    impl Queue {
        pub(super) fn new() -> Queue {
            Queue {
                state: Mutex::new(State {
                    next: 0,
                    sleeping: VecDeque::new(),
                }),
                changed: Condvar::new(),
            }
        }

        /// `FUTEX_WAIT`: a wait with a deadline times out at some point
        /// after the other threads had a chance to run, unless woken first.
        pub(super) fn wait(&self, word: &AtomicU32, expected: u32, deadline: Deadline) -> Wait {
            let mut st = self.state.lock().unwrap();
            if word.load(Ordering::SeqCst) != expected {
                return Wait::Woken;
            }
            let me = st.next;
            st.next += 1;
            st.sleeping.push_back(me);
            if deadline.is_never() {
                while st.sleeping.contains(&me) {
                    st = self.changed.wait(st).unwrap();
                }
                return Wait::Woken;
            }
            drop(st);
            let mut st = self.state.lock().unwrap();
            match st.sleeping.iter().position(|&t| t == me) {
                Some(i) => {
                    st.sleeping.remove(i);
                    Wait::TimedOut
                }
                None => Wait::Woken,
            }
        }

        /// `FUTEX_WAKE`: wakes the `n` oldest sleepers.
        pub(super) fn wake(&self, n: u32) -> usize {
            let mut st = self.state.lock().unwrap();
            let k = (n as usize).min(st.sleeping.len());
            st.sleeping.drain(..k);
            if k > 0 {
                self.changed.notify_all();
            }
            k
        }
    }
}
