//! Process-shared futex waits.
//!
//! The words live in `MAP_SHARED` memory that several processes map, so the
//! futex operations never use `FUTEX_PRIVATE_FLAG`. Waits take an absolute
//! [`Deadline`] on `CLOCK_MONOTONIC` (`FUTEX_WAIT_BITSET`), so a wait that
//! wakes spuriously and sleeps again keeps its original deadline.
//!
//! The waiting policy every blocking call of the workspace follows lives
//! here too: spin briefly ([`spin_until`], [`SPIN`] polls), then sleep on
//! the futex in slices of [`SLICE`], looking for dead peers between
//! slices. Lock words built on it are in [`lockword`](crate::lockword).
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
use std::time::Duration;

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
