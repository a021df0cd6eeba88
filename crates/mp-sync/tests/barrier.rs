//! Barrier across processes: indexes, timeout, abort, reset, dead parties.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Counters, asleep, fork, wait_until};
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

/// Runs `b.wait_timeout(timeout)` in a thread; its result and duration, or
/// an error if it has not returned within 10 s.
fn timed_wait_in_thread(
    b: &Barrier,
    timeout: Duration,
) -> Result<(Result<usize, Error>, Duration), std::sync::mpsc::RecvTimeoutError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let b2 = b.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        let r = b2.wait_timeout(timeout);
        let _ = tx.send((r, start.elapsed()));
    });
    rx.recv_timeout(Duration::from_secs(10))
}

/// `wait_timeout` honours its deadline while the previous generation is
/// still leaving: a party of that generation is stopped (SIGSTOP) after the
/// barrier tripped, so the barrier stays draining. The timed-out call
/// breaks the barrier once the stopped party has left, and that party
/// still gets its index.
#[test]
fn timeout_honoured_while_draining() {
    let b = Barrier::new(2).unwrap();
    let slow = fork(|| match b.wait_timeout(Duration::from_secs(60)) {
        Ok(_) => 0,
        Err(_) => 1,
    });
    // Registered and asleep (not holding the barrier's internal lock).
    wait_until(|| b.n_waiting() == 1 && asleep(slow.pid()));
    // SAFETY: signalling our own unreaped child.
    assert_eq!(unsafe { libc::kill(slow.pid() as i32, libc::SIGSTOP) }, 0);
    // Trip the barrier: the stopped party cannot leave, so it drains.
    b.wait_timeout(Duration::from_secs(20)).unwrap();
    let got = timed_wait_in_thread(&b, Duration::from_millis(300));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(slow.pid() as i32, libc::SIGCONT) }, 0);
    let (r, elapsed) = got.expect("wait_timeout ignored its deadline while the barrier drained");
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    common::assert_about(elapsed, Duration::from_millis(300));
    assert_eq!(slow.wait(), 0, "the draining party lost its generation");
    assert!(b.broken(), "the timeout did not break the next generation");
    assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
    b.reset();
    assert!(!b.broken());
    let child = fork(|| match b.wait_timeout(Duration::from_secs(20)) {
        Ok(_) => 0,
        Err(_) => 1,
    });
    b.wait_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(child.wait(), 0);
}

/// A `reset` while the barrier drains cancels the break that a timed-out
/// caller left for the next generation.
#[test]
fn reset_while_draining_cancels_pending_break() {
    let b = Barrier::new(2).unwrap();
    let slow = fork(|| match b.wait_timeout(Duration::from_secs(60)) {
        Ok(_) => 0,
        Err(_) => 1,
    });
    // Registered and asleep (not holding the barrier's internal lock).
    wait_until(|| b.n_waiting() == 1 && asleep(slow.pid()));
    // SAFETY: signalling our own unreaped child.
    assert_eq!(unsafe { libc::kill(slow.pid() as i32, libc::SIGSTOP) }, 0);
    b.wait_timeout(Duration::from_secs(20)).unwrap();
    let r = timed_wait_in_thread(&b, Duration::from_millis(50));
    b.reset();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(slow.pid() as i32, libc::SIGCONT) }, 0);
    let (r, _) = r.expect("wait_timeout ignored its deadline while the barrier drained");
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert_eq!(slow.wait(), 0);
    assert!(!b.broken());
    let child = fork(|| match b.wait_timeout(Duration::from_secs(20)) {
        Ok(_) => 0,
        Err(_) => 1,
    });
    b.wait_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(child.wait(), 0);
}
