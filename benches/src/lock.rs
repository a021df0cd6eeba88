//! Group `lock`: the cost floor of an uncontended lock.
//!
//! | key | what |
//! |---|---|
//! | `lock/cas` | acquire (compare-exchange 0 -> 1) + release (store 0) of a word in a shared mapping |
//! | `lock/std-mutex` | `std::sync::Mutex` lock + unlock (in-process only) |
//! | `lock/futex-wake` | one `FUTEX_WAKE` system call with nobody waiting: what a release costs that does not track waiters |
//!
//! | `lock/mp-lock` | `mp_sync::Lock` acquire + drop of the guard |
//! | `lock/mp-rlock` | `mp_sync::RLock` acquire + drop of the guard |

use std::hint::black_box;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use crate::kit::{Config, RowBuilder, Shm, Stats, Unit, futex_wake, time};

const GROUP: &str = "lock";
/// Operations per timed sample (the timer costs about as much as one operation).
const BATCH: u64 = 1000;

/// Runs every row of the group.
pub(crate) fn run(cfg: &Config) -> Vec<(&'static str, io::Error)> {
    match Shm::new(0) {
        Ok(shm) => {
            cas(cfg, &shm);
            futex(cfg, &shm);
            mutex(cfg);
            let mut failed = Vec::new();
            if let Err(e) = mp_locks(cfg) {
                failed.push(("mp locks", e));
            }
            failed
        }
        Err(e) => vec![("shm", e)],
    }
}

fn cas(cfg: &Config, shm: &Shm) {
    let word = black_box(shm.word(0));
    let samples = cfg.sample(20, 1_000_000, || {
        time(|| {
            for _ in 0..BATCH {
                while word
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    std::hint::spin_loop();
                }
                word.store(0, Ordering::Release);
            }
        })
    });
    RowBuilder::new(
        GROUP,
        "lock/cas",
        "acquire + release, uncontended",
        "raw CAS on shared word",
    )
    .note(format!(
        "compare_exchange(0, 1) + store(0) on a MAP_SHARED word; batches of {BATCH}"
    ))
    .stats(Unit::Ns, Stats::per_op(&samples, BATCH, Unit::Ns))
    .emit();
}

fn futex(cfg: &Config, shm: &Shm) {
    let word = black_box(shm.word(1));
    let batch = BATCH / 10;
    let samples = cfg.sample(20, 1_000_000, || {
        time(|| {
            for _ in 0..batch {
                black_box(futex_wake(word, 1));
            }
        })
    });
    RowBuilder::new(
        GROUP,
        "lock/futex-wake",
        "wake syscall, no waiter",
        "raw FUTEX_WAKE",
    )
    .baseline(&["lock/cas"])
    .note(format!(
        "a release that always wakes pays this; batches of {batch}"
    ))
    .stats(Unit::Ns, Stats::per_op(&samples, batch, Unit::Ns))
    .emit();
}

fn mutex(cfg: &Config) {
    let m = Mutex::new(0u64);
    let samples = cfg.sample(20, 1_000_000, || {
        time(|| {
            for _ in 0..BATCH {
                *black_box(&m).lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
        })
    });
    RowBuilder::new(
        GROUP,
        "lock/std-mutex",
        "acquire + release, uncontended",
        "std Mutex",
    )
    .baseline(&["lock/cas"])
    .note(format!(
        "in-process futex mutex, lock + increment + unlock; batches of {BATCH}"
    ))
    .stats(Unit::Ns, Stats::per_op(&samples, BATCH, Unit::Ns))
    .emit();
}

fn mp_locks(cfg: &Config) -> io::Result<()> {
    let lock = mp_sync::Lock::new().map_err(io::Error::other)?;
    let samples = cfg.sample(20, 1_000_000, || {
        time(|| {
            for _ in 0..BATCH {
                drop(black_box(lock.acquire()));
            }
        })
    });
    RowBuilder::new(
        GROUP,
        "lock/mp-lock",
        "acquire + release, uncontended",
        "mp Lock",
    )
    .baseline(&["lock/cas", "lock/py-lock"])
    .note(format!(
        "`drop(lock.acquire())` on a Lock in its memfd segment; batches of {BATCH}"
    ))
    .stats(Unit::Ns, Stats::per_op(&samples, BATCH, Unit::Ns))
    .emit();

    let rlock = mp_sync::RLock::new().map_err(io::Error::other)?;
    let samples = cfg.sample(20, 1_000_000, || {
        time(|| {
            for _ in 0..BATCH {
                drop(black_box(rlock.acquire()));
            }
        })
    });
    RowBuilder::new(
        GROUP,
        "lock/mp-rlock",
        "acquire + release, uncontended",
        "mp RLock",
    )
    .baseline(&["lock/cas", "lock/py-rlock"])
    .note(format!("`drop(rlock.acquire())`; batches of {BATCH}"))
    .stats(Unit::Ns, Stats::per_op(&samples, BATCH, Unit::Ns))
    .emit();
    Ok(())
}
