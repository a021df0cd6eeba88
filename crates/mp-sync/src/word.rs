//! The lock-word protocol shared by `RawLock`, `RawRLock` and the barrier's
//! internal lock: a `state` word holding 0 (free) or the holder's liveness
//! token (thread id and start-time stamp, see `mp_os::liveness`), and a `waiters` count of sleepers so that an uncontended
//! release makes no system call.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_os::futex;
use mp_os::liveness;
use mp_os::time::Deadline;

/// How long a waiter sleeps before it checks whether the holder (or a
/// waiting barrier party) is still alive.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// Polls of the adaptive spin before a waiter sleeps on the futex.
pub(crate) const SPIN: u32 = 100;

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
/// whether the holder is alive and takes a dead holder's word over.
#[cold]
pub(crate) fn acquire_slow(
    state: &AtomicU32,
    waiters: &AtomicU32,
    me: u32,
    deadline: Deadline,
) -> Acquired {
    if try_take(state, me) {
        return Acquired::Yes;
    }
    if deadline.expired() {
        return Acquired::TimedOut;
    }
    if futex::spin_until(SPIN, || {
        state.load(Ordering::Relaxed) == 0 && try_take(state, me)
    }) {
        return Acquired::Yes;
    }
    loop {
        waiters.fetch_add(1, Ordering::SeqCst);
        let cur = state.load(Ordering::SeqCst);
        let r = if cur == 0 {
            futex::Wait::Woken
        } else {
            futex::wait(state, cur, deadline.min_after(SLICE))
        };
        waiters.fetch_sub(1, Ordering::SeqCst);
        if try_take(state, me) {
            return Acquired::Yes;
        }
        if r == futex::Wait::TimedOut {
            let cur = state.load(Ordering::SeqCst);
            if cur != 0
                && cur != me
                && !liveness::token_alive(cur)
                && state
                    .compare_exchange(cur, me, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                return Acquired::Died(liveness::token_tid(cur));
            }
            if deadline.expired() {
                return Acquired::TimedOut;
            }
        }
    }
}

/// Releases `state` if it still holds `expected`; returns whether it did.
#[inline]
pub(crate) fn release(state: &AtomicU32, waiters: &AtomicU32, expected: u32) -> bool {
    if state
        .compare_exchange(expected, 0, Ordering::SeqCst, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    wake_one_if_waiting(state, waiters);
    true
}

#[inline]
pub(crate) fn wake_one_if_waiting(state: &AtomicU32, waiters: &AtomicU32) {
    if waiters.load(Ordering::SeqCst) != 0 {
        futex::wake(state, 1);
    }
}
