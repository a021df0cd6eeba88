//! Cross-process locks, semaphores, conditions, events and barriers on
//! futex words in shared memory: Python's `multiprocessing` synchronization
//! primitives for Rust.
//!
//! ```
//! use std::time::Duration;
//! use mp_sync::{Lock, Event};
//!
//! let lock = Lock::new()?;            // lives in a shared memfd segment
//! let done = Event::new()?;
//! {
//!     let _g = lock.acquire()?;        // RAII guard, released on drop
//! }
//! let twin = done.clone();             // clones share the same object
//! std::thread::spawn(move || twin.set());
//! assert!(done.wait_timeout(Duration::from_secs(5)));
//! # Ok::<(), mp_sync::Error>(())
//! ```
//!
//! Every primitive is two things:
//!
//! * a raw, `#[repr(C)]` in-place state with a `const fn new()`
//!   ([`RawLock`], [`RawRLock`], [`RawSemaphore`], [`RawCondition`],
//!   [`RawEvent`], [`RawBarrier`]) that works over *any* `MAP_SHARED`
//!   mapping, so this crate alone gives cross-process locks over memory you
//!   map yourself (see [`RawLock`] for the placement rules);
//! * a handle ([`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`],
//!   [`Condition`], [`Event`], [`Barrier`]) that owns a small shared
//!   segment holding the raw state. Handles are `Clone` (cheap, shared),
//!   `Send + Sync`, and serde values: serialized in a process's arguments
//!   they re-attach to the same object in the child (see `mp_os::handle`).
//!   The raw methods are reached through `Deref`.
//!
//! Blocking calls come in three forms: blocking (`acquire`, `wait`),
//! non-blocking (`try_acquire`, `is_set`) and bounded (`acquire_timeout`,
//! `wait_timeout`, with `Duration`s turned into `CLOCK_MONOTONIC`
//! deadlines). Waits spin briefly, then sleep on a process-shared futex;
//! a release makes a system call only when someone sleeps.
//!
//! # Dead peers
//!
//! [`Lock`] and [`RLock`] record their holder's kernel thread id and a stamp
//! of its start time (so that a reused id is not taken for the holder). A
//! waiter that has slept ~100 ms checks whether the holder is alive; if it died
//! (killed, crashed, or exited while holding the lock), the waiter takes the
//! lock over and gets [`OwnerDied`], which carries the guard like std's
//! `PoisonError`. A [`Barrier`] party that dies while waiting breaks the
//! barrier for the others. What cannot be detected: a dead holder of a
//! [`Semaphore`] unit (a semaphore has no owner, as in Python) and an
//! [`Event`] that a dead process would have set. A waiter that dies inside
//! a [`Condition`] wait absorbs no `notify` (it leaves the kernel's queue),
//! but stays counted in [`RawCondition::waiting`].
//!
//! # Python → Rust
//!
//! | Python | Rust |
//! |---|---|
//! | `with lock:` | `let _g = lock.acquire()?;` |
//! | `lock.acquire(False)` | `lock.try_acquire()` |
//! | `lock.acquire(timeout=t)` | `lock.acquire_timeout(t)` |
//! | `lock.acquire()` … `lock.release()` | `lock.acquire()?.forget();` … `lock.release()?;` |
//! | `with cond: cond.wait()` | `cond.acquire()?.wait()?` |
//! | `cond.wait_for(pred, t)` | `guard.wait_for_timeout(pred, t)?` |
//! | `event.wait(t)` | `event.wait_timeout(t)` |
//! | `barrier.wait()` | `barrier.wait()?` (index in `0..parties`) |
//! | `BrokenBarrierError` | [`Error::BrokenBarrier`] |
//!
//! Linux only.

#![cfg(target_os = "linux")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod barrier;
mod condition;
mod error;
mod event;
mod lock;
mod rlock;
mod semaphore;
mod shared;
mod word;

pub use barrier::{Barrier, RawBarrier, TRACKED_PARTIES};
pub use condition::{AnyLock, Condition, ConditionGuard, RawCondition, WaitGuard};
pub use error::{Error, OwnerDied, Result, TryAcquireError};
pub use event::{Event, RawEvent};
pub use lock::{Lock, LockGuard, RawLock};
pub use mp_os::time::Deadline;
pub use rlock::{RLock, RLockGuard, RawRLock};
pub use semaphore::{BoundedSemaphore, RawSemaphore, SEM_VALUE_MAX, Semaphore, SemaphoreGuard};

#[cfg(test)]
mod tests;
