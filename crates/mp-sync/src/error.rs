//! The crate's error type and the errors that hand a guard back.

use std::fmt;
use std::io;

/// Everything that can go wrong in this crate.
///
/// Lock acquisition errors that carry a guard ([`OwnerDied`],
/// [`TryAcquireError`]) convert into this type with `?`; the conversion
/// drops the guard, which releases the lock.
///
/// ```
/// fn work(lock: &mp_sync::Lock) -> Result<(), mp_sync::Error> {
///     let _g = lock.acquire()?; // an OwnerDied converts (and unlocks)
///     Ok(())
/// }
/// work(&mp_sync::Lock::new()?)?;
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The timeout passed before the operation could complete.
    #[error("timed out")]
    Timeout,
    /// A non-blocking attempt (`try_*`) could not complete at once.
    #[error("the operation would block")]
    WouldBlock,
    /// The previous holder of a lock died while holding it (see
    /// [`OwnerDied`]). The state the lock protected may be inconsistent.
    #[error("the holder of the lock (thread {tid}) died while holding it")]
    OwnerDied {
        /// Kernel thread id of the dead holder.
        tid: u32,
    },
    /// The calling thread does not own the lock (or, for an `RLock`, holds
    /// no level that it may release with `release()`).
    #[error("the lock is not owned by the calling thread")]
    NotOwner,
    /// `release()` on a lock that is not locked.
    #[error("release of an unlocked lock")]
    NotLocked,
    /// A `BoundedSemaphore` was released more times than it was acquired.
    #[error("semaphore released too many times")]
    ReleasedTooManyTimes,
    /// The barrier is broken (aborted, reset while waiting, timed out, or a
    /// waiting party died); `reset()` makes it usable again.
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The operating system refused (creating a shared segment, ...).
    #[error("operating system error: {0}")]
    Os(#[from] io::Error),
}

/// The previous holder of a lock died while holding it; the calling thread
/// now holds the lock.
///
/// Like std's `PoisonError`, it carries the guard: take it with
/// [`into_inner`](OwnerDied::into_inner) to repair the protected state and
/// go on, or convert the error into [`Error`] with `?`, which drops the
/// guard and so releases the lock.
///
/// ```
/// let lock = mp_sync::Lock::new()?;
/// let guard = match lock.acquire() {
///     Ok(g) => g,
///     Err(died) => {
///         eprintln!("holder {} died; repairing", died.dead_tid());
///         died.into_inner()
///     }
/// };
/// drop(guard);
/// # Ok::<(), mp_sync::Error>(())
/// ```
pub struct OwnerDied<G> {
    guard: G,
    tid: u32,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G, tid: u32) -> Self {
        log::warn!(
            target: "mp_sync",
            "a lock's owner (thread {tid}) died holding it; the lock was taken over"
        );
        OwnerDied { guard, tid }
    }

    /// The guard: the lock is held by the calling thread.
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// Same as [`into_inner`](OwnerDied::into_inner).
    pub fn into_guard(self) -> G {
        self.guard
    }

    /// A reference to the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// A mutable reference to the guard.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }

    /// Kernel thread id of the holder that died.
    pub fn dead_tid(&self) -> u32 {
        self.tid
    }

    /// Maps the guard (used by wrappers that embed a lock guard).
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> OwnerDied<H> {
        OwnerDied {
            guard: f(self.guard),
            tid: self.tid,
        }
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied")
            .field("dead_tid", &self.tid)
            .finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the holder of the lock (thread {}) died while holding it; the lock was taken over",
            self.tid
        )
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

impl<G> From<OwnerDied<G>> for Error {
    fn from(e: OwnerDied<G>) -> Error {
        Error::OwnerDied { tid: e.tid }
    }
}

/// Why a `try_acquire` or `acquire_timeout` did not return a guard.
///
/// ```
/// use std::time::Duration;
/// use mp_sync::TryAcquireError;
///
/// let lock = mp_sync::Lock::new()?;
/// let _held = lock.acquire()?;
/// assert!(matches!(lock.try_acquire(), Err(TryAcquireError::WouldBlock)));
/// assert!(matches!(lock.acquire_timeout(Duration::from_millis(1)), Err(TryAcquireError::Timeout)));
/// # Ok::<(), mp_sync::Error>(())
/// ```
pub enum TryAcquireError<G> {
    /// The lock is held by someone else (`try_acquire`).
    WouldBlock,
    /// The timeout passed (`acquire_timeout`).
    Timeout,
    /// The holder died; the caller now holds the lock.
    OwnerDied(OwnerDied<G>),
}

impl<G> TryAcquireError<G> {
    /// Maps the guard carried by the `OwnerDied` variant.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> TryAcquireError<H> {
        match self {
            TryAcquireError::WouldBlock => TryAcquireError::WouldBlock,
            TryAcquireError::Timeout => TryAcquireError::Timeout,
            TryAcquireError::OwnerDied(d) => TryAcquireError::OwnerDied(d.map(f)),
        }
    }
}

impl<G> From<OwnerDied<G>> for TryAcquireError<G> {
    fn from(e: OwnerDied<G>) -> Self {
        TryAcquireError::OwnerDied(e)
    }
}

impl<G> fmt::Debug for TryAcquireError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::WouldBlock => f.write_str("WouldBlock"),
            TryAcquireError::Timeout => f.write_str("Timeout"),
            TryAcquireError::OwnerDied(d) => f.debug_tuple("OwnerDied").field(d).finish(),
        }
    }
}

impl<G> fmt::Display for TryAcquireError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::WouldBlock => f.write_str("the lock is held by another thread"),
            TryAcquireError::Timeout => f.write_str("timed out waiting for the lock"),
            TryAcquireError::OwnerDied(d) => fmt::Display::fmt(d, f),
        }
    }
}

impl<G> std::error::Error for TryAcquireError<G> {}

impl<G> From<TryAcquireError<G>> for Error {
    fn from(e: TryAcquireError<G>) -> Error {
        match e {
            TryAcquireError::WouldBlock => Error::WouldBlock,
            TryAcquireError::Timeout => Error::Timeout,
            TryAcquireError::OwnerDied(d) => d.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
