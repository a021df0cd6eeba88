//! Barrier across processes: indexes, timeout, abort, reset, dead parties.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Counters, fork, wait_until};
use mp_sync::{Barrier, Error};

#[test]
fn indexes_are_distinct_in_every_generation() {
    const ROUNDS: usize = 20;
    let b = Barrier::new(3).unwrap();
    // bit mask of indexes seen per round
    let seen = Counters::new(ROUNDS);
    let run = || {
        for r in 0..ROUNDS {
            let i = b.wait_timeout(Duration::from_secs(20)).unwrap();
            assert!(i < 3);
            let prev = seen.get(r).fetch_or(1 << i, Ordering::SeqCst);
            assert_eq!(prev & (1 << i), 0, "index {i} twice in round {r}");
        }
    };
    let kids: Vec<_> = (0..2)
        .map(|_| {
            fork(|| {
                run();
                0
            })
        })
        .collect();
    run();
    for k in kids {
        assert_eq!(k.wait(), 0);
    }
    for r in 0..ROUNDS {
        assert_eq!(seen.get(r).load(Ordering::SeqCst), 0b111);
    }
    assert_eq!(b.parties(), 3);
    assert_eq!(b.n_waiting(), 0);
}

#[test]
fn timeout_breaks_the_barrier() {
    let b = Barrier::new(3).unwrap();
    let child = fork(|| match b.wait() {
        Err(Error::BrokenBarrier) => 0,
        _ => 1,
    });
    wait_until(|| b.n_waiting() == 1);
    let start = Instant::now();
    assert!(matches!(
        b.wait_timeout(Duration::from_millis(200)),
        Err(Error::Timeout)
    ));
    common::assert_about(start.elapsed(), Duration::from_millis(200));
    assert_eq!(child.wait(), 0);
    assert!(b.broken());
    assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
    b.reset();
    assert!(!b.broken());
}

#[test]
fn abort_breaks_waiters() {
    let b = Barrier::new(2).unwrap();
    let child = fork(|| match b.wait() {
        Err(Error::BrokenBarrier) => 0,
        _ => 1,
    });
    wait_until(|| b.n_waiting() == 1);
    b.abort();
    assert_eq!(child.wait(), 0);
    assert!(b.broken());
}

#[test]
fn reset_breaks_waiters_then_barrier_works() {
    let b = Barrier::new(2).unwrap();
    let child = fork(|| match b.wait() {
        Err(Error::BrokenBarrier) => 0,
        _ => 1,
    });
    wait_until(|| b.n_waiting() == 1);
    b.reset();
    assert_eq!(child.wait(), 0);
    assert!(!b.broken());
    let child = fork(|| match b.wait_timeout(Duration::from_secs(20)) {
        Ok(_) => 0,
        Err(_) => 1,
    });
    b.wait_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(child.wait(), 0);
}

#[test]
fn killed_party_breaks_the_barrier() {
    // Four parties: the parent's own wait must not be the last arrival
    // (a last arrival trips the barrier before anyone notices the death).
    let b = Barrier::new(4).unwrap();
    let victim = fork(|| {
        let _ = b.wait();
        0
    });
    wait_until(|| b.n_waiting() == 1);
    let survivor = fork(|| match b.wait() {
        Err(Error::BrokenBarrier) => 0,
        _ => 1,
    });
    wait_until(|| b.n_waiting() == 2);
    victim.kill();
    let start = Instant::now();
    assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(survivor.wait(), 0);
    assert_eq!(victim.wait(), -libc::SIGKILL);
    // the dead party was removed from the count: reset makes it usable
    b.reset();
    assert_eq!(b.n_waiting(), 0);
    let kids: Vec<_> = (0..3)
        .map(|_| {
            fork(|| match b.wait_timeout(Duration::from_secs(20)) {
                Ok(_) => 0,
                Err(_) => 1,
            })
        })
        .collect();
    b.wait_timeout(Duration::from_secs(20)).unwrap();
    for k in kids {
        assert_eq!(k.wait(), 0);
    }
}

#[test]
fn barrier_handle_serializes() {
    let b = Barrier::new(2).unwrap();
    let (bytes, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&b).unwrap());
    let b2: Barrier = mp_os::handle::provide_fds(fds, || postcard::from_bytes(&bytes)).unwrap();
    let t = std::thread::spawn(move || b2.wait_timeout(Duration::from_secs(20)).unwrap());
    let mine = b.wait_timeout(Duration::from_secs(20)).unwrap();
    assert_ne!(mine, t.join().unwrap());
}
