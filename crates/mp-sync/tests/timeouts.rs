//! Every timeout returns after about its duration, while another process
//! holds the primitive.

mod common;

use std::time::{Duration, Instant};

use common::{assert_about, fork};
use mp_sync::{Condition, Error, Event, Lock, RLock, Semaphore, TryAcquireError};

const D: Duration = Duration::from_millis(300);

/// Runs `f` in the parent while a child holds something (set up by `hold`).
fn with_holder(hold: impl FnOnce(&Event, &Event), f: impl FnOnce()) {
    let held = Event::new().unwrap();
    let go = Event::new().unwrap();
    let child = fork(|| {
        hold(&held, &go);
        0
    });
    held.wait();
    f();
    go.set();
    assert_eq!(child.wait(), 0);
}

#[test]
fn lock_timeout() {
    let lock = Lock::new().unwrap();
    with_holder(
        |held, go| {
            let _g = lock.acquire().unwrap();
            held.set();
            go.wait();
        },
        || {
            let start = Instant::now();
            assert!(matches!(
                lock.acquire_timeout(D),
                Err(TryAcquireError::Timeout)
            ));
            assert_about(start.elapsed(), D);
        },
    );
}

#[test]
fn rlock_timeout() {
    let lock = RLock::new().unwrap();
    with_holder(
        |held, go| {
            let _g = lock.acquire().unwrap();
            held.set();
            go.wait();
        },
        || {
            let start = Instant::now();
            assert!(matches!(
                lock.acquire_timeout(D),
                Err(TryAcquireError::Timeout)
            ));
            assert_about(start.elapsed(), D);
        },
    );
}

#[test]
fn semaphore_timeout() {
    let sem = Semaphore::new(1).unwrap();
    with_holder(
        |held, go| {
            let _g = sem.acquire();
            held.set();
            go.wait();
        },
        || {
            let start = Instant::now();
            assert!(matches!(sem.acquire_timeout(D), Err(Error::Timeout)));
            assert_about(start.elapsed(), D);
        },
    );
}

#[test]
fn event_and_condition_timeouts() {
    let ev = Event::new().unwrap();
    let start = Instant::now();
    assert!(!ev.wait_timeout(D));
    assert_about(start.elapsed(), D);

    let cond = Condition::new().unwrap();
    let mut g = cond.acquire().unwrap();
    let start = Instant::now();
    assert!(!g.wait_timeout(D).unwrap());
    assert_about(start.elapsed(), D);
    let start = Instant::now();
    assert!(!g.wait_for_timeout(|| false, D).unwrap());
    assert_about(start.elapsed(), D);
}

#[test]
fn condition_timeout_with_lock_held_elsewhere_after_wait() {
    // A waiter that times out must re-acquire the lock before returning.
    let cond = Condition::new().unwrap();
    let mut g = cond.acquire().unwrap();
    let held = Event::new().unwrap();
    let child = fork(|| {
        let _g = cond.acquire().unwrap(); // gets it while the parent waits
        held.set();
        std::thread::sleep(Duration::from_millis(600));
        0
    });
    let start = Instant::now();
    assert!(!g.wait_timeout(D).unwrap());
    assert!(held.is_set());
    assert!(start.elapsed() >= Duration::from_millis(550));
    drop(g);
    assert_eq!(child.wait(), 0);
}

#[test]
fn zero_timeouts_do_not_block() {
    let lock = Lock::new().unwrap();
    let _g = lock.acquire().unwrap();
    let start = Instant::now();
    assert!(matches!(
        lock.acquire_timeout(Duration::ZERO),
        Err(TryAcquireError::Timeout)
    ));
    assert!(start.elapsed() < Duration::from_secs(1));
}
