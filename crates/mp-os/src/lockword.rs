//! Robust lock words: a `u32` in shared memory that holds 0 (free) or the
//! liveness token of its holder (see [`liveness`]), taken
//! over by a waiter when the holder dies.
//!
//! A waiter spins briefly ([`spin_until`](crate::futex::spin_until)), then
//! sleeps on the word's futex in slices of [`SLICE`]; after a slice that
//! nobody's wake ended it checks whether the holder is alive, and takes a
//! dead holder's word over with one compare-and-swap, so that two waiters
//! never both take it. The taker learns the dead holder's token
//! ([`Acquired::Died`]) and repairs whatever the holder's critical section
//! may have left half done; that repair is the caller's, since only the
//! caller knows what the lock protects.
//!
//! Sleepers are counted in one of two ways ([`Sleepers`]), chosen by the
//! layout that holds the word (each layout documents its choice; neither
//! adds a field to a layout that did not have it):
//!
//! * [`Sleepers::InWord`]: bit 31 of the word ([`WAITERS`]; tokens never
//!   use it). Release swaps in 0 and wakes every sleeper when the bit was
//!   set. One word per lock (the channels' rings).
//! * [`Sleepers::Count`]: a separate counter word that sleepers increment
//!   around their sleep. Release compares the holder's token out and wakes
//!   one sleeper when the count is not 0 (mp-sync's locks).
//!
//! The atomics, futex calls and liveness test come from an [`Env`]: the
//! real ones ([`Os`]) or a model checker's stand-ins, so that a crate's
//! model of its protocol (loom) checks this very code.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use mp_os::lockword::{self, Acquired, Os, Sleepers};
//! use mp_os::time::Deadline;
//!
//! let word = AtomicU32::new(0);
//! let me = mp_os::liveness::current_token();
//! assert_eq!(
//!     lockword::acquire_slow::<Os>(&word, Sleepers::InWord, me, Deadline::never()),
//!     Acquired::Yes
//! );
//! // Held by this (live) thread: another acquisition times out.
//! assert_eq!(
//!     lockword::acquire_slow::<Os>(&word, Sleepers::InWord, me + 1, Deadline::now()),
//!     Acquired::TimedOut
//! );
//! lockword::release_in_word::<Os>(&word);
//! assert_eq!(word.load(Ordering::Relaxed), 0);
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

use crate::futex::{self, SLICE, SPIN, Wait};
use crate::liveness;
use crate::time::Deadline;

/// The bit of a word whose sleepers are flagged in the word itself
/// ([`Sleepers::InWord`]). Liveness tokens never set it.
pub const WAITERS: u32 = 1 << 31;

const _: () = assert!(liveness::TOKEN_MASK & WAITERS == 0);

/// How an acquisition ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The caller holds the word.
    Yes,
    /// The caller holds the word, taken over from a holder that died: its
    /// liveness token. What it protected may be half updated.
    Died(u32),
    /// The deadline passed.
    TimedOut,
}

/// Where the sleepers on a lock word are recorded (see the module docs).
#[derive(Debug)]
pub enum Sleepers<'a, W: ?Sized> {
    /// Bit 31 of the word itself ([`WAITERS`]).
    InWord,
    /// A separate counter word.
    Count(&'a W),
}

/// The atomics, futex calls and liveness test a lock word runs on.
///
/// [`Os`] is the real one; a crate that model-checks its protocol supplies
/// another whose word is the checker's atomic and whose waits, pauses and
/// yields are the checker's yields.
pub trait Env {
    /// The atomic `u32` of a lock word.
    type Word: ?Sized;
    /// Polls of a held word before the waiter sleeps.
    const SPINS: u32 = SPIN;
    /// `AtomicU32::load`.
    fn load(w: &Self::Word, order: Ordering) -> u32;
    /// `AtomicU32::compare_exchange`.
    fn compare_exchange(
        w: &Self::Word,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    /// `AtomicU32::swap`.
    fn swap(w: &Self::Word, v: u32, order: Ordering) -> u32;
    /// `AtomicU32::fetch_add`.
    fn fetch_add(w: &Self::Word, v: u32, order: Ordering) -> u32;
    /// `AtomicU32::fetch_sub`.
    fn fetch_sub(w: &Self::Word, v: u32, order: Ordering) -> u32;
    /// Sleeps while the word holds `expected`, until woken or `deadline`
    /// ([`futex::wait`]).
    fn wait(w: &Self::Word, expected: u32, deadline: Deadline) -> Wait;
    /// Wakes up to `n` sleepers ([`futex::wake`]).
    fn wake(w: &Self::Word, n: u32);
    /// Whether the thread with liveness token `token` is alive.
    fn alive(token: u32) -> bool;
    /// A CPU pause in a spin.
    fn pause();
    /// Gives the CPU to another thread.
    fn yield_now();
}

/// The real environment: `AtomicU32`, futexes, `/proc` liveness.
#[derive(Debug)]
pub struct Os;

impl Env for Os {
    type Word = AtomicU32;
    #[inline]
    fn load(w: &AtomicU32, order: Ordering) -> u32 {
        w.load(order)
    }
    #[inline]
    fn compare_exchange(
        w: &AtomicU32,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        w.compare_exchange(current, new, success, failure)
    }
    #[inline]
    fn swap(w: &AtomicU32, v: u32, order: Ordering) -> u32 {
        w.swap(v, order)
    }
    #[inline]
    fn fetch_add(w: &AtomicU32, v: u32, order: Ordering) -> u32 {
        w.fetch_add(v, order)
    }
    #[inline]
    fn fetch_sub(w: &AtomicU32, v: u32, order: Ordering) -> u32 {
        w.fetch_sub(v, order)
    }
    #[inline]
    fn wait(w: &AtomicU32, expected: u32, deadline: Deadline) -> Wait {
        futex::wait(w, expected, deadline)
    }
    #[inline]
    fn wake(w: &AtomicU32, n: u32) {
        futex::wake(w, n);
    }
    #[inline]
    fn alive(token: u32) -> bool {
        token == liveness::current_token() || liveness::token_alive(token)
    }
    #[inline]
    fn pause() {
        std::hint::spin_loop();
    }
    #[inline]
    fn yield_now() {
        std::thread::yield_now();
    }
}

/// Acquires `word` for `me` (a liveness token), waiting until `deadline`:
/// the slow path, after the caller's own compare-and-swap of 0 to `me`
/// failed.
///
/// Spins ([`Env::SPINS`] polls), then sleeps in slices of [`SLICE`]; after
/// a slice that was not woken, a holder that is dead is replaced by `me`
/// ([`Acquired::Died`]: the caller repairs what it protects). A
/// [`Sleepers::InWord`] word is taken with `Acquire` ordering and holds
/// `me | WAITERS` once its taker has slept (so that its release wakes the
/// others); a [`Sleepers::Count`] word is taken with `SeqCst` ordering and
/// holds `me`.
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// use mp_os::lockword::{self, Acquired, Os, Sleepers};
/// use mp_os::time::Deadline;
///
/// let (word, sleepers) = (AtomicU32::new(0), AtomicU32::new(0));
/// let me = mp_os::liveness::current_token();
/// let got = lockword::acquire_slow::<Os>(&word, Sleepers::Count(&sleepers), me, Deadline::never());
/// assert_eq!(got, Acquired::Yes);
/// assert!(lockword::release_counted::<Os>(&word, &sleepers, me));
/// ```
#[cold]
pub fn acquire_slow<E: Env>(
    word: &E::Word,
    sleepers: Sleepers<'_, E::Word>,
    me: u32,
    deadline: Deadline,
) -> Acquired {
    match sleepers {
        Sleepers::InWord => acquire_in_word::<E>(word, me, deadline),
        Sleepers::Count(waiters) => acquire_counted::<E>(word, waiters, me, deadline),
    }
}

fn spin<E: Env>(ready: impl FnMut() -> bool) -> bool {
    futex::spin_until_with(E::SPINS, E::pause, E::yield_now, ready)
}

fn acquire_in_word<E: Env>(word: &E::Word, me: u32, deadline: Deadline) -> Acquired {
    use Ordering::{Acquire, Relaxed};
    if spin::<E>(|| {
        E::load(word, Relaxed) == 0 && E::compare_exchange(word, 0, me, Acquire, Relaxed).is_ok()
    }) {
        return Acquired::Yes;
    }
    // Once this waiter has slept it takes the word with WAITERS set: other
    // sleepers it cannot see may still wait for the release's wake-up.
    let mut want = me;
    loop {
        let cur = E::load(word, Relaxed);
        if cur == 0 {
            if E::compare_exchange(word, 0, want, Acquire, Relaxed).is_ok() {
                return Acquired::Yes;
            }
            continue;
        }
        if cur & WAITERS == 0
            && E::compare_exchange(word, cur, cur | WAITERS, Relaxed, Relaxed).is_err()
        {
            continue;
        }
        want = me | WAITERS;
        if E::wait(word, cur | WAITERS, deadline.min_after(SLICE)) == Wait::TimedOut {
            if let Some(dead) = take_over_if_dead::<E>(word, |_| want) {
                return Acquired::Died(dead);
            }
            if deadline.expired() {
                return Acquired::TimedOut;
            }
        }
    }
}

fn acquire_counted<E: Env>(
    word: &E::Word,
    waiters: &E::Word,
    me: u32,
    deadline: Deadline,
) -> Acquired {
    use Ordering::{Relaxed, SeqCst};
    let try_take = || E::compare_exchange(word, 0, me, SeqCst, Relaxed).is_ok();
    if try_take() {
        return Acquired::Yes;
    }
    if deadline.expired() {
        return Acquired::TimedOut;
    }
    if spin::<E>(|| E::load(word, Relaxed) == 0 && try_take()) {
        return Acquired::Yes;
    }
    loop {
        E::fetch_add(waiters, 1, SeqCst);
        let cur = E::load(word, SeqCst);
        let r = if cur == 0 {
            Wait::Woken
        } else {
            E::wait(word, cur, deadline.min_after(SLICE))
        };
        E::fetch_sub(waiters, 1, SeqCst);
        if try_take() {
            return Acquired::Yes;
        }
        if r == Wait::TimedOut {
            if let Some(dead) = take_over_if_dead::<E>(word, |_| me) {
                return Acquired::Died(dead);
            }
            if deadline.expired() {
                return Acquired::TimedOut;
            }
        }
    }
}

/// Takes `word` if its holder is dead, writing `want(holder)` with one
/// compare-and-swap (`SeqCst`); returns the dead holder's token (without
/// [`WAITERS`]). `None`: the word is free, its holder is alive, or another
/// waiter took it first.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use mp_os::lockword::{self, Os};
///
/// let me = mp_os::liveness::current_token();
/// let word = AtomicU32::new(me);
/// // This thread is alive: nothing to take over.
/// assert_eq!(lockword::take_over_if_dead::<Os>(&word, |_| 1), None);
/// assert_eq!(word.load(Ordering::Relaxed), me);
/// ```
#[cold]
pub fn take_over_if_dead<E: Env>(word: &E::Word, want: impl FnOnce(u32) -> u32) -> Option<u32> {
    let holder = E::load(word, Ordering::Relaxed);
    let token = holder & !WAITERS;
    if holder != 0
        && !E::alive(token)
        && E::compare_exchange(
            word,
            holder,
            want(holder),
            Ordering::SeqCst,
            Ordering::Relaxed,
        )
        .is_ok()
    {
        return Some(token);
    }
    None
}

/// Releases a [`Sleepers::InWord`] word (held by the caller) and wakes its
/// sleepers, if any.
#[inline]
pub fn release_in_word<E: Env>(word: &E::Word) {
    if E::swap(word, 0, Ordering::Release) & WAITERS != 0 {
        E::wake(word, i32::MAX as u32);
    }
}

/// Releases a [`Sleepers::Count`] word if it still holds `expected`, and
/// wakes one sleeper if any; returns whether it released it (a word taken
/// over meanwhile is left alone).
#[inline]
pub fn release_counted<E: Env>(word: &E::Word, waiters: &E::Word, expected: u32) -> bool {
    if E::compare_exchange(word, expected, 0, Ordering::SeqCst, Ordering::Relaxed).is_err() {
        return false;
    }
    wake_one_if_waiting::<E>(word, waiters);
    true
}

/// Wakes one sleeper on a [`Sleepers::Count`] word if its count is not 0.
#[inline]
pub fn wake_one_if_waiting<E: Env>(word: &E::Word, waiters: &E::Word) {
    if E::load(waiters, Ordering::SeqCst) != 0 {
        E::wake(word, 1);
    }
}

#[cfg(test)]
mod tests;
