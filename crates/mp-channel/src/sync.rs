//! The atomics and wait primitives the ring protocol uses, behind one shim
//! so that the same protocol code runs under loom (`--cfg loom`).
//!
//! Under loom, futex waits become `yield_now` (loom explores the
//! interleavings of a spin), liveness checks say "alive" and thread ids
//! come from a loom thread-local counter.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use mp_os::futex::Wait;
use mp_os::time::Deadline;

/// A CPU pause in a spin loop (a loom yield under loom).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Gives the CPU to another thread (a loom yield under loom).
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// The `SeqCst` fence a Dekker-style check needs right after a `SeqCst`
/// read-modify-write (a lock release, a CAS on `released`): on x86-64 every
/// locked instruction already is a full barrier, so only the compiler is
/// held back; elsewhere, and under loom (which does not model that), a real
/// fence.
#[inline]
pub(crate) fn fence_after_rmw() {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    fence(Ordering::SeqCst);
}

/// Sleeps while `word == expected`, until woken or `deadline`.
#[inline]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> Wait {
    #[cfg(loom)]
    {
        let _ = (word, expected, deadline);
        loom::thread::yield_now();
        Wait::Woken
    }
    #[cfg(not(loom))]
    {
        mp_os::futex::wait(word, expected, deadline)
    }
}

/// Wakes up to `n` waiters on `word`.
#[inline]
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    #[cfg(loom)]
    let _ = (word, n);
    #[cfg(not(loom))]
    mp_os::futex::wake(word, n);
}

/// Wakes every waiter on `word`.
#[inline]
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    #[cfg(loom)]
    let _ = word;
    #[cfg(not(loom))]
    mp_os::futex::wake_all(word);
}

/// The calling thread's liveness token (`mp_os::liveness`: thread id and
/// start-time stamp; a small unique number under loom). Lock words and
/// record headers hold it.
#[inline]
pub(crate) fn tid() -> u32 {
    #[cfg(loom)]
    {
        use std::sync::atomic::{AtomicU32 as StdU32, Ordering as O};
        static NEXT: StdU32 = StdU32::new(1);
        loom::thread_local! {
            static ID: u32 = NEXT.fetch_add(1, O::Relaxed);
        }
        ID.with(|id| *id)
    }
    #[cfg(not(loom))]
    {
        mp_os::liveness::current_token()
    }
}

/// Whether the thread with liveness token `token` is alive (always, under
/// loom): a reused thread id with another start time is dead.
#[inline]
pub(crate) fn alive(token: u32) -> bool {
    #[cfg(loom)]
    {
        let _ = token;
        true
    }
    #[cfg(not(loom))]
    {
        token == mp_os::liveness::current_token() || mp_os::liveness::token_alive(token)
    }
}

/// The ring's lock words run `mp_os::lockword` on these atomics, waits and
/// liveness checks (loom's under loom, so that the model checks that code;
/// a spin there is two polls, each one a loom yield).
///
/// The same shape as `mp_os::lockword::Os` on purpose: the methods name
/// this module's atomics, which are loom's in the model, where `Os` cannot
/// serve.
#[derive(Debug)]
pub(crate) struct LockEnv;

impl mp_os::lockword::Env for LockEnv {
    type Word = AtomicU32;
    #[cfg(loom)]
    const SPINS: u32 = 2;
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
        futex_wait(w, expected, deadline)
    }
    #[inline]
    fn wake(w: &AtomicU32, n: u32) {
        futex_wake(w, n);
    }
    #[inline]
    fn alive(token: u32) -> bool {
        alive(token)
    }
    #[inline]
    fn pause() {
        spin_hint();
    }
    #[inline]
    fn yield_now() {
        yield_now();
    }
}
