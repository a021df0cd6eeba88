//! Group `lock`: the cost floor of an uncontended lock, and a lock handed between processes.
//!
//! | key | what |
//! |---|---|
//! | `lock/cas` | acquire (compare-exchange 0 -> 1) + release (store 0) of a word in a shared mapping |
//! | `lock/std-mutex` | `std::sync::Mutex` lock + unlock (in-process only) |
//! | `lock/futex-wake` | one `FUTEX_WAKE` system call with nobody waiting: what a release costs that does not track waiters |
//!
//! | `lock/mp-lock` | `mp_sync::Lock` acquire + drop of the guard |
//! | `lock/mp-rlock` | `mp_sync::RLock` acquire + drop of the guard |
//! | `lock/mp-handoff-2proc` | two `mp_sync::Lock`s ping-ponged between two processes: each release wakes the other process, per hand-off |
//!
//! The hand-off row runs the harness and a forked child (pinned to two CPUs when allowed). Both
//! locks start held by the parent; per round the parent releases `a` and acquires `b`, the child
//! acquires `a` and releases `b` (a `Lock` may be released by any process, as in Python), so
//! every acquisition waits for the other process. Its floor is half of `ipc/futex/8` (a blocking
//! round trip is two hand-offs), which the table cannot divide, so its baseline is the Python row.

use std::hint::black_box;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::kit::{Config, RowBuilder, Shm, Stats, Unit, futex_wake, time, two_processes};

const GROUP: &str = "lock";
/// Operations per timed sample (the timer costs about as much as one operation).
const BATCH: u64 = 1000;
/// Rounds (two hand-offs each) per timed sample of the hand-off row.
const HANDOFF_BATCH: u64 = 100;
/// How long a hand-off may take before the row gives up (a peer died).
const PATIENCE: Duration = Duration::from_secs(10);

/// Runs every row of the group.
pub(crate) fn run(cfg: &Config) -> Vec<(&'static str, io::Error)> {
    let mut failed = Vec::new();
    // It forks: first, while the process has one thread.
    if let Err(e) = handoff(cfg) {
        failed.push(("mp-handoff-2proc", e));
    }
    match Shm::new(0) {
        Ok(shm) => {
            cas(cfg, &shm);
            futex(cfg, &shm);
            mutex(cfg);
            if let Err(e) = mp_locks(cfg) {
                failed.push(("mp locks", e));
            }
        }
        Err(e) => failed.push(("shm", e)),
    }
    failed
}

fn handoff(cfg: &Config) -> io::Result<()> {
    let a = mp_sync::Lock::new().map_err(io::Error::other)?;
    let b = mp_sync::Lock::new().map_err(io::Error::other)?;
    let take = |l: &mp_sync::Lock| -> io::Result<()> {
        l.acquire_timeout(PATIENCE)
            .map(mp_sync::LockGuard::forget)
            .map_err(|e| io::Error::other(format!("hand-off: {e}")))
    };
    let give = |l: &mp_sync::Lock| l.release().map_err(io::Error::other);
    take(&a)?;
    take(&b)?;
    let (r, pin) = two_processes(0, |side| -> io::Result<Vec<Duration>> {
        let stop = side.shm().word(0);
        if !side.is_parent() {
            loop {
                take(&a)?;
                let last = stop.load(Ordering::Acquire) != 0;
                give(&b)?;
                if last {
                    return Ok(Vec::new());
                }
            }
        }
        let mut err = None;
        let rounds = || -> io::Result<()> {
            for _ in 0..HANDOFF_BATCH {
                give(&a)?;
                take(&b)?;
            }
            Ok(())
        };
        let _ = rounds(); // warm-up
        let samples = cfg.sample(20, 1_000_000, || {
            time(|| {
                if let Err(e) = rounds() {
                    err = Some(e);
                }
            })
        });
        stop.store(1, Ordering::Release);
        give(&a)?;
        take(&b)?;
        err.map_or(Ok(samples), Err)
    })?;
    let samples = r?;
    RowBuilder::new(
        GROUP,
        "lock/mp-handoff-2proc",
        "hand-off between 2 processes",
        "mp Lock",
    )
    .baseline(&["lock/py-handoff-2proc"])
    .note(format!(
        "two Locks ping-pong: the parent releases a and acquires b, the child (fork) acquires a \
         and releases b; per hand-off (half a round), batches of {HANDOFF_BATCH} rounds; {pin}"
    ))
    .stats(
        Unit::Us,
        Stats::per_op(&samples, 2 * HANDOFF_BATCH, Unit::Us),
    )
    .emit();
    Ok(())
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
