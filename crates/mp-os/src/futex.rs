//! Process-shared futex waits.
//!
//! The words live in `MAP_SHARED` memory that several processes map, so the
//! futex operations never use `FUTEX_PRIVATE_FLAG`. Waits take an absolute
//! [`Deadline`] on `CLOCK_MONOTONIC` (`FUTEX_WAIT_BITSET`), so a wait that
//! wakes spuriously and sleeps again keeps its original deadline.
//!
//! The waiting policy every blocking call of the workspace follows lives
//! here too: spin briefly, then sleep on the futex in slices of [`SLICE`],
//! looking for dead peers between slices. How long to spin comes in three
//! forms, one per kind of wait:
//!
//! * a lock word polls a count of times ([`spin_until`], [`SPIN`] polls):
//!   a holder keeps a lock for nanoseconds;
//! * a channel's reader or writer spins for a time budget learnt from its
//!   recent waits ([`AdaptiveSpin`]): a message may take microseconds to
//!   come;
//! * a request/reply loop over a socket or pipe (the manager's transport)
//!   spins for a fixed time budget ([`SpinFor`]), yielding the CPU so a
//!   peer that shares it runs at once.
//!
//! Lock words built on it are in [`lockword`](crate::lockword).
//!
//! ```
//! use std::sync::atomic::AtomicU32;
//! use std::time::Duration;
//! use mp_os::{futex, time::Deadline};
//!
//! let word = AtomicU32::new(0);
//! // Nobody will change the word: the wait times out.
//! let r = futex::wait(&word, 0, Deadline::after(Some(Duration::from_millis(5))));
//! assert_eq!(r, futex::Wait::TimedOut);
//! // The word no longer holds the expected value: returns at once.
//! assert_eq!(futex::wait(&word, 1, Deadline::never()), futex::Wait::Woken);
//! ```

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex as sys;

use crate::time::Deadline;

/// How a [`wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Woken, interrupted by a signal, or the word did not hold the expected
    /// value: re-check the condition.
    Woken,
    /// The deadline passed.
    TimedOut,
}

const MATCH_ANY: NonZeroU32 = NonZeroU32::MAX;

/// Sleeps while `word == expected`, until woken or until `deadline`.
pub fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> Wait {
    let ts = deadline.as_timespec();
    if deadline.expired() {
        return Wait::TimedOut;
    }
    match sys::wait_bitset(word, sys::Flags::empty(), expected, ts.as_ref(), MATCH_ANY) {
        Ok(()) => Wait::Woken,
        Err(Errno::TIMEDOUT) => Wait::TimedOut,
        Err(_) => Wait::Woken, // EAGAIN (value changed), EINTR
    }
}

/// Wakes at most `n` waiters on `word`; returns how many were woken.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    sys::wake(word, sys::Flags::empty(), n).unwrap_or(0)
}

/// Wakes every waiter on `word`.
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, i32::MAX as u32)
}

/// How long a waiter sleeps at most before it looks again for a dead peer
/// (a lock's holder, the other side of a channel, a client, a barrier
/// party). Every blocking wait of the workspace sleeps in slices of this
/// length, so a peer that dies is noticed within about one slice.
pub const SLICE: Duration = Duration::from_millis(100);

/// [`SLICE`] in nanoseconds.
pub const SLICE_NS: u64 = SLICE.as_nanos() as u64;

/// How many times a waiter polls (see [`spin_until`]) before it sleeps on
/// the futex: the spin of every lock word.
///
/// On this workspace's reference machine a blocking hand-off between two
/// CPUs costs about 5 us each way, while a spinning peer answers in about
/// 0.1 us; a few microseconds of spinning catch most quick hand-offs without
/// stealing a core from a third process for long.
pub const SPIN: u32 = 100;

/// How many times [`spin_until`] polls before giving up, by default.
pub const DEFAULT_SPIN: u32 = 2 * SPIN;

/// Polls `ready` up to `limit` times with a CPU pause in between (yielding
/// the CPU in the second half), and returns whether it became true.
///
/// ```
/// let mut n = 0;
/// assert!(mp_os::futex::spin_until(mp_os::futex::SPIN, || { n += 1; n == 3 }));
/// ```
#[inline]
pub fn spin_until(limit: u32, ready: impl FnMut() -> bool) -> bool {
    spin_until_with(limit, std::hint::spin_loop, std::thread::yield_now, ready)
}

/// [`spin_until`] with the CPU pause and the yield given (a model
/// checker's stand-ins, which must see every step of a spin). The one spin
/// policy of the workspace: polls in the first half of `limit` are
/// separated by pauses that double up to 64, those in the second half by
/// a yield of the CPU (a peer that shares this CPU runs at once).
///
/// ```
/// let mut n = 0;
/// assert!(!mp_os::futex::spin_until_with(4, || {}, || {}, || { n += 1; false }));
/// assert_eq!(n, 5);
/// ```
#[inline]
pub fn spin_until_with(
    limit: u32,
    pause: impl Fn(),
    yield_now: impl Fn(),
    mut ready: impl FnMut() -> bool,
) -> bool {
    for i in 0..limit {
        if ready() {
            return true;
        }
        if i < limit / 2 {
            for _ in 0..(1 << (i.min(6))) {
                pause();
            }
        } else {
            yield_now();
        }
    }
    ready()
}

/// Loads `word` with `Acquire` ordering (a small helper for readability).
#[inline]
pub fn load(word: &AtomicU32) -> u32 {
    word.load(Ordering::Acquire)
}

/// A spin budget learnt from recent waits: how long a channel's reader or
/// writer spins before it sleeps on the futex.
///
/// A spin that paid off doubles the budget (up to [`MAX_NS`](Self::MAX_NS)),
/// one that gave up halves it (down to [`MIN_NS`](Self::MIN_NS)); a sleep
/// that turned out short raises it to twice that wait, so that a budget
/// halved below the usual wait of a request/reply exchange grows back. One
/// per handle: the budget is this process's, never shared memory.
///
/// ```
/// use mp_os::futex::AdaptiveSpin;
///
/// let spin = AdaptiveSpin::new();
/// let b = spin.budget_ns();
/// assert_eq!(b, AdaptiveSpin::DEFAULT_NS);
/// spin.gave_up(b);
/// assert_eq!(spin.budget_ns(), b / 2);
/// spin.paid_off(spin.budget_ns());
/// assert_eq!(spin.budget_ns(), b);
/// spin.slept(12_000); // a short sleep: spin that long next time
/// assert_eq!(spin.budget_ns(), 24_000);
/// ```
#[derive(Debug)]
pub struct AdaptiveSpin {
    ns: AtomicU32,
}

impl Default for AdaptiveSpin {
    fn default() -> Self {
        AdaptiveSpin::new()
    }
}

impl AdaptiveSpin {
    /// The budget a new handle starts with.
    pub const DEFAULT_NS: u32 = 20_000;
    /// A low floor: on a loaded 2-core machine a long spin steals the CPU
    /// the peer needs (measured: a 12 us floor made round trips 50 us
    /// under load).
    pub const MIN_NS: u32 = 1_000;
    /// The most a waiter spins before it sleeps.
    pub const MAX_NS: u32 = 50_000;

    /// A budget of [`DEFAULT_NS`](Self::DEFAULT_NS).
    pub const fn new() -> AdaptiveSpin {
        AdaptiveSpin {
            ns: AtomicU32::new(Self::DEFAULT_NS),
        }
    }

    /// The budget of the next spin, in nanoseconds.
    #[inline]
    pub fn budget_ns(&self) -> u32 {
        self.ns
            .load(Ordering::Relaxed)
            .clamp(Self::MIN_NS, Self::MAX_NS)
    }

    /// A spin of `budget` nanoseconds saw its condition come true.
    #[inline]
    pub fn paid_off(&self, budget: u32) {
        if budget < Self::MAX_NS {
            self.ns.store(
                budget.saturating_mul(2).min(Self::MAX_NS),
                Ordering::Relaxed,
            );
        }
    }

    /// A spin of `budget` nanoseconds gave up: the waiter sleeps.
    #[inline]
    pub fn gave_up(&self, budget: u32) {
        self.ns
            .store((budget / 2).max(Self::MIN_NS), Ordering::Relaxed);
    }

    /// A wait that gave up spinning ended after `waited_ns` in all: when
    /// that was short, spin that long next time.
    #[inline]
    pub fn slept(&self, waited_ns: u64) {
        if waited_ns < u64::from(Self::MAX_NS) / 2 {
            let learnt = (2 * waited_ns as u32).clamp(Self::MIN_NS, Self::MAX_NS);
            self.ns.fetch_max(learnt, Ordering::Relaxed);
        }
    }
}

/// A spin with a fixed time budget, for a request/reply loop: a few polls
/// separated by a CPU pause (the answer of a peer running on another CPU),
/// then polls that yield the CPU between them (a peer that shares this CPU
/// runs at once instead of after the budget), until the budget has passed;
/// then the caller sleeps.
///
/// ```
/// use std::time::Duration;
/// use mp_os::futex::SpinFor;
///
/// let mut spin = SpinFor::new(Duration::ZERO);
/// let mut polls = 0;
/// while spin.again() {
///     polls += 1; // poll here
/// }
/// // A zero budget ends within a few yields after the pure polls.
/// assert!(polls >= SpinFor::PURE_POLLS && polls <= SpinFor::PURE_POLLS + 1 + SpinFor::CLOCK_EVERY);
/// ```
#[derive(Debug)]
pub struct SpinFor {
    budget: Duration,
    polls: u32,
    since: Option<Instant>,
}

impl SpinFor {
    /// Polls separated by a CPU pause only (well under a microsecond).
    pub const PURE_POLLS: u32 = 8;
    /// Yields between two readings of the clock.
    pub const CLOCK_EVERY: u32 = 4;

    /// A spin that yields for `budget` after its pure polls.
    pub fn new(budget: Duration) -> SpinFor {
        SpinFor {
            budget,
            polls: 0,
            since: None,
        }
    }

    /// Called after a poll that found nothing: pauses before the next poll
    /// and returns `true`, or returns `false` once the budget is spent
    /// (time to sleep). The clock is read every [`CLOCK_EVERY`](Self::CLOCK_EVERY)
    /// yields, not at each.
    #[inline]
    pub fn again(&mut self) -> bool {
        if self.polls < Self::PURE_POLLS {
            self.polls += 1;
            std::hint::spin_loop();
            return true;
        }
        match self.since {
            None => self.since = Some(Instant::now()),
            Some(since) => {
                self.polls = self.polls.wrapping_add(1);
                if self.polls.is_multiple_of(Self::CLOCK_EVERY) && since.elapsed() >= self.budget {
                    return false;
                }
            }
        }
        std::thread::yield_now();
        true
    }
}
