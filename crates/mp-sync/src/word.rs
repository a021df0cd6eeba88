//! The lock-word protocol shared by `RawLock`, `RawRLock` and the barrier's
//! internal lock: a `state` word holding 0 (free) or the holder's liveness
//! token (thread id and start-time stamp, see `mp_os::liveness`), and a
//! `waiters` count of sleepers so that an uncontended release makes no
//! system call. The protocol itself (spin, sleep in slices, take a dead
//! holder's word over) is `mp_os::lockword`'s, with `Sleepers::Count`.

use std::sync::atomic::{AtomicU32, Ordering};

use mp_os::liveness;
use mp_os::lockword::{self, Os, Sleepers};
use mp_os::time::Deadline;

/// How long a waiter sleeps before it checks whether the holder (or a
/// waiting barrier party) is still alive; polls of the spin before a
/// waiter sleeps on the futex.
pub(crate) use mp_os::futex::{SLICE, SPIN};

/// How an acquisition of a lock word ended.
pub(crate) enum Acquired {
    /// The caller holds the word.
    Yes,
    /// The caller took the word over from this dead holder (its thread id).
    Died(u32),
    /// The deadline passed.
    TimedOut,
}

/// The calling thread's liveness token, the value it writes in lock words.
#[inline]
pub(crate) fn me() -> u32 {
    liveness::current_token()
}

#[inline]
pub(crate) fn try_take(state: &AtomicU32, me: u32) -> bool {
    state
        .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
        .is_ok()
}

/// Acquires `state` for `me`, waiting until `deadline`.
///
/// Spins briefly, then sleeps on the futex in slices of [`SLICE`]; after a
/// slice that was not woken (and when the deadline passes) it checks
/// whether the holder is alive and takes a dead holder's word over
/// (`mp_os::lockword::acquire_slow`).
#[cold]
pub(crate) fn acquire_slow(
    state: &AtomicU32,
    waiters: &AtomicU32,
    me: u32,
    deadline: Deadline,
) -> Acquired {
    match lockword::acquire_slow::<Os>(state, Sleepers::Count(waiters), me, deadline) {
        lockword::Acquired::Yes => Acquired::Yes,
        lockword::Acquired::Died(token) => Acquired::Died(liveness::token_tid(token)),
        lockword::Acquired::TimedOut => Acquired::TimedOut,
    }
}

/// Releases `state` if it still holds `expected`; returns whether it did.
#[inline]
pub(crate) fn release(state: &AtomicU32, waiters: &AtomicU32, expected: u32) -> bool {
    lockword::release_counted::<Os>(state, waiters, expected)
}

#[inline]
pub(crate) fn wake_one_if_waiting(state: &AtomicU32, waiters: &AtomicU32) {
    lockword::wake_one_if_waiting::<Os>(state, waiters);
}
