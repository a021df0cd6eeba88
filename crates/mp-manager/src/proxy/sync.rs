//! Lock, RLock, Semaphore, Event, Condition and Barrier proxies.

use std::fmt;
use std::time::Duration;

use crate::client::{Handle, unexpected, who};
use crate::error::Error;
use crate::proxy::{proxy_type, wire_timeout};
use crate::wire::{Kind, Op, Reply, Who};

/// A held lock, RLock or semaphore unit: released when dropped.
///
/// The acquisition belongs to the guard's own connection to the server, so
/// if the process holding it dies, the server sees the connection close and
/// releases it.
#[must_use = "the lock is released when the guard is dropped"]
pub struct AcquireGuard {
    h: Option<Handle>,
    who: Who,
}

impl fmt::Debug for AcquireGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AcquireGuard").field(&self.h).finish()
    }
}

impl AcquireGuard {
    /// Releases now, reporting errors (dropping the guard releases too, but
    /// ignores them).
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn release(mut self) -> Result<(), Error> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<(), Error> {
        match self.h.take() {
            Some(h) => {
                let r = h.op(Op::Release(self.who)).and_then(Reply::ok);
                if r.is_ok() {
                    h.unpin();
                }
                r
            }
            None => Ok(()),
        }
    }
}

impl Drop for AcquireGuard {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}

/// Acquires on a pinned connection; `Ok(None)` on timeout.
fn acquire(h: &Handle, timeout: Option<Duration>) -> Result<Option<AcquireGuard>, Error> {
    let pinned = h.pin()?;
    let me = who();
    if pinned.op(Op::Acquire(me, wire_timeout(timeout)))?.bool()? {
        Ok(Some(AcquireGuard {
            h: Some(pinned),
            who: me,
        }))
    } else {
        pinned.unpin();
        Ok(None)
    }
}

macro_rules! lock_methods {
    ($name:ident) => {
        impl $name {
            /// Acquires, waiting as long as it takes.
            ///
            /// # Errors
            ///
            /// Connection errors ([`Error::ServerGone`], ...).
            pub fn acquire(&self) -> Result<AcquireGuard, Error> {
                acquire(&self.h, None)?.ok_or_else(|| Error::Protocol("acquire timed out".into()))
            }

            /// Acquires if that is possible at once.
            ///
            /// # Errors
            ///
            /// Connection errors.
            pub fn try_acquire(&self) -> Result<Option<AcquireGuard>, Error> {
                acquire(&self.h, Some(Duration::ZERO))
            }

            /// Acquires, waiting at most `timeout`; `None` if it passed.
            ///
            /// # Errors
            ///
            /// Connection errors.
            pub fn acquire_timeout(
                &self,
                timeout: Duration,
            ) -> Result<Option<AcquireGuard>, Error> {
                acquire(&self.h, Some(timeout))
            }
        }
    };
}

proxy_type!(
    /// A lock in the manager's server: Python's `Manager().Lock()`.
    ///
    /// A lock held by a process that dies is released (the server notices
    /// the guard's connection close).
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let lock = m.lock()?;
    /// let g = lock.acquire()?;
    /// assert!(lock.try_acquire()?.is_none());
    /// drop(g);
    /// assert!(lock.try_acquire()?.is_some());
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    LockProxy[], Kind::Lock
);
lock_methods!(LockProxy);

proxy_type!(
    /// A recursive lock: the thread holding it may acquire it again.
    /// Threads are told apart by process (a random session id) and kernel
    /// thread id.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let r = m.rlock()?;
    /// let a = r.acquire()?;
    /// let b = r.acquire()?; // same thread: fine
    /// drop(b);
    /// drop(a);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    RLockProxy[], Kind::RLock
);
lock_methods!(RLockProxy);

proxy_type!(
    /// A counting semaphore: Python's `Manager().Semaphore(n)`.
    ///
    /// Units taken through a guard go back when the guard is dropped or
    /// the holder dies; [`release`](SemaphoreProxy::release) adds a unit
    /// without a guard, for signalling.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let s = m.semaphore(2)?;
    /// let a = s.acquire()?;
    /// let b = s.acquire()?;
    /// assert!(s.try_acquire()?.is_none());
    /// drop(a);
    /// assert!(s.try_acquire()?.is_some());
    /// # drop(b);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    SemaphoreProxy[], Kind::Semaphore
);
lock_methods!(SemaphoreProxy);

impl SemaphoreProxy {
    /// Adds one unit (Python's `release` without a matching guard).
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn release(&self) -> Result<(), Error> {
        self.h.op(Op::Release(who()))?.ok()
    }
}

proxy_type!(
    /// A semaphore that may not be released above its initial value:
    /// Python's `Manager().BoundedSemaphore(n)`.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let s = m.bounded_semaphore(2)?;
    /// let a = s.acquire()?;
    /// assert!(s.release().is_ok()); // gives a's unit back by hand
    /// assert!(s.release().is_err()); // above 2: ValueError
    /// # drop(a);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    BoundedSemaphoreProxy[], Kind::BoundedSemaphore
);
lock_methods!(BoundedSemaphoreProxy);

impl BoundedSemaphoreProxy {
    /// Adds one unit, unless that would exceed the initial value.
    ///
    /// # Errors
    ///
    /// `Remote(ReleasedTooOften)` above the initial value (Python's
    /// `ValueError`), connection errors.
    pub fn release(&self) -> Result<(), Error> {
        self.h.op(Op::Release(who()))?.ok()
    }
}

proxy_type!(
    /// An event flag: Python's `Manager().Event()`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = mp_manager::Manager::new()?;
    /// let e = m.event()?;
    /// assert!(!e.wait_timeout(Duration::from_millis(10))?);
    /// e.set()?;
    /// assert!(e.is_set()?);
    /// e.wait()?;
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    EventProxy[], Kind::Event
);

impl EventProxy {
    /// Sets the flag and wakes every waiter.
    ///
    /// # Errors
    ///
    /// Connection errors; the same for the methods below.
    pub fn set(&self) -> Result<(), Error> {
        self.h.op(Op::EventSet)?.ok()
    }

    /// Clears the flag.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn clear(&self) -> Result<(), Error> {
        self.h.op(Op::EventClear)?.ok()
    }

    /// Whether the flag is set.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn is_set(&self) -> Result<bool, Error> {
        self.h.op(Op::EventIsSet)?.bool()
    }

    /// Waits until the flag is set.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn wait(&self) -> Result<(), Error> {
        self.h.op(Op::EventWait(None))?.bool().map(|_| ())
    }

    /// Waits at most `timeout`; returns whether the flag is set.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        self.h
            .op(Op::EventWait(wire_timeout(Some(timeout))))?
            .bool()
    }
}

proxy_type!(
    /// A condition variable with its own recursive lock: Python's
    /// `Manager().Condition()`. Waiting and notifying happen through the
    /// guard that holds the lock.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = mp_manager::Manager::new()?;
    /// let c = m.condition()?;
    /// let g = c.acquire()?;
    /// assert!(!g.wait_timeout(Duration::from_millis(10))?); // nobody notified
    /// g.notify_all()?;
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ConditionProxy[], Kind::Condition
);

/// The held lock of a [`ConditionProxy`]: wait and notify through it.
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct ConditionGuard {
    inner: AcquireGuard,
}

impl ConditionProxy {
    /// Acquires the condition's lock.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn acquire(&self) -> Result<ConditionGuard, Error> {
        let inner =
            acquire(&self.h, None)?.ok_or_else(|| Error::Protocol("acquire timed out".into()))?;
        Ok(ConditionGuard { inner })
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<ConditionGuard>, Error> {
        Ok(acquire(&self.h, Some(timeout))?.map(|inner| ConditionGuard { inner }))
    }
}

impl ConditionGuard {
    fn h(&self) -> &Handle {
        self.inner.h.as_ref().expect("present until release")
    }

    /// Releases the lock, waits for a notification, takes the lock back.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn wait(&self) -> Result<(), Error> {
        self.h()
            .op(Op::CondWait(self.inner.who, None))?
            .bool()
            .map(|_| ())
    }

    /// As [`wait`](ConditionGuard::wait) for at most `timeout`; returns
    /// whether a notification came (the lock is held again either way).
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        self.h()
            .op(Op::CondWait(self.inner.who, wire_timeout(Some(timeout))))?
            .bool()
    }

    /// Waits until `predicate()` is true (checked with the lock held), at
    /// most `timeout` in all; returns the predicate's last value.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool, Error> {
        let deadline = mp_os::time::Deadline::after(timeout);
        loop {
            if predicate() {
                return Ok(true);
            }
            match deadline.remaining() {
                None => self.wait()?,
                Some(r) if r.is_zero() => return Ok(predicate()),
                Some(r) => {
                    self.wait_timeout(r)?;
                }
            }
        }
    }

    /// Wakes up to `n` waiters.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn notify(&self, n: usize) -> Result<(), Error> {
        self.h().op(Op::CondNotify(n as u64))?.ok()
    }

    /// Wakes every waiter.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn notify_all(&self) -> Result<(), Error> {
        self.h().op(Op::CondNotify(u64::MAX))?.ok()
    }

    /// Releases the lock now, reporting errors.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn release(self) -> Result<(), Error> {
        self.inner.release()
    }
}

proxy_type!(
    /// A barrier for a fixed number of parties: Python's
    /// `Manager().Barrier(n)`.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let b = m.barrier(1)?;
    /// assert_eq!(b.wait()?, 0); // one party: passes at once
    /// assert_eq!(b.parties()?, 1);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    BarrierProxy[], Kind::Barrier
);

impl BarrierProxy {
    /// Waits until every party has arrived; returns this party's arrival
    /// index (0 for the first).
    ///
    /// # Errors
    ///
    /// `Remote(BrokenBarrier)` if the barrier was aborted or reset while
    /// waiting, or broken by another party's timeout.
    pub fn wait(&self) -> Result<usize, Error> {
        Ok(self.h.op(Op::BarrierWait(None))?.count()? as usize)
    }

    /// As [`wait`](BarrierProxy::wait) for at most `timeout`; a timeout
    /// breaks the barrier (as in Python).
    ///
    /// # Errors
    ///
    /// `Remote(BrokenBarrier)`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize, Error> {
        Ok(self
            .h
            .op(Op::BarrierWait(wire_timeout(Some(timeout))))?
            .count()? as usize)
    }

    /// Returns the barrier to its initial state; current waiters get
    /// `BrokenBarrier`.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn reset(&self) -> Result<(), Error> {
        self.h.op(Op::BarrierReset)?.ok()
    }

    /// Breaks the barrier: current and future waiters get `BrokenBarrier`
    /// until `reset`.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn abort(&self) -> Result<(), Error> {
        self.h.op(Op::BarrierAbort)?.ok()
    }

    fn info(&self) -> Result<(u64, u64, bool), Error> {
        match self.h.op(Op::BarrierInfo)? {
            Reply::Barrier(p, w, b) => Ok((p, w, b)),
            r => Err(unexpected(r)),
        }
    }

    /// The number of parties.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn parties(&self) -> Result<usize, Error> {
        Ok(self.info()?.0 as usize)
    }

    /// How many parties are waiting now.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn n_waiting(&self) -> Result<usize, Error> {
        Ok(self.info()?.1 as usize)
    }

    /// Whether the barrier is broken.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn broken(&self) -> Result<bool, Error> {
        Ok(self.info()?.2)
    }
}
