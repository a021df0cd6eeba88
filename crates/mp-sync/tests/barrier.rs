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

/// Shared counters for the action tests (an action is a plain `fn()`): 0
/// actions run, 1 parties released, 2 violations seen by the action.
static ACTION_COUNTERS: std::sync::OnceLock<Counters> = std::sync::OnceLock::new();
const PARTIES: u64 = 3;

fn counting_action() {
    let c = ACTION_COUNTERS
        .get()
        .expect("set before the barrier is used");
    let gen_ = c.get(0).load(Ordering::SeqCst);
    // Leave time to a party released too early to show itself.
    std::thread::sleep(Duration::from_micros(100));
    c.get(0).fetch_add(1, Ordering::SeqCst);
    // No party of this generation has been released yet, and every party
    // of the previous ones has.
    if c.get(1).load(Ordering::SeqCst) != gen_ * PARTIES {
        c.get(2).fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn action_runs_once_per_trip_before_anyone_is_released() {
    const ROUNDS: u64 = 500;
    let c = ACTION_COUNTERS.get_or_init(|| Counters::new(3));
    let b = Barrier::with_options(PARTIES as usize, Some(counting_action), None).unwrap();
    assert!(b.action().is_some());
    let run = || {
        for r in 0..ROUNDS {
            b.wait_timeout(Duration::from_secs(30)).unwrap();
            // The action of this round ran before this party left.
            assert!(c.get(0).load(Ordering::SeqCst) > r);
            c.get(1).fetch_add(1, Ordering::SeqCst);
        }
    };
    let kids: Vec<_> = (0..PARTIES - 1)
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
    assert_eq!(c.get(0).load(Ordering::SeqCst), ROUNDS);
    assert_eq!(c.get(1).load(Ordering::SeqCst), ROUNDS * PARTIES);
    assert_eq!(
        c.get(2).load(Ordering::SeqCst),
        0,
        "an action saw a released party"
    );
}

fn panicking_action() {
    panic!("action failed");
}

#[test]
fn a_panicking_action_breaks_the_barrier_and_panics_in_its_party() {
    let b = Barrier::with_options(2, Some(panicking_action), None).unwrap();
    let child = fork(|| match b.wait_timeout(Duration::from_secs(30)) {
        Err(Error::BrokenBarrier) => 0,
        Ok(_) => 1,
        Err(_) => 2,
    });
    wait_until(|| b.n_waiting() == 1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.wait()));
    assert!(r.is_err(), "the action's panic reaches the tripping party");
    assert_eq!(child.wait(), 0);
    assert!(b.broken());
    b.reset();
    assert!(!b.broken());
}

#[test]
fn default_timeout_bounds_wait() {
    let b = Barrier::with_options(2, None, Some(Duration::from_millis(100))).unwrap();
    assert_eq!(b.timeout(), Some(Duration::from_millis(100)));
    let start = Instant::now();
    assert!(matches!(b.wait(), Err(Error::Timeout)));
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(b.broken());
    // An explicit timeout still overrides the default.
    b.reset();
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.wait_timeout(Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(300));
    b.wait_timeout(Duration::from_secs(30)).unwrap();
    t.join().unwrap().unwrap();
    assert_eq!(Barrier::new(2).unwrap().timeout(), None);
}

static MARKER_RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn marker_action() {
    MARKER_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn action_and_timeout_travel_with_the_handle() {
    let b = Barrier::with_options(1, Some(marker_action), Some(Duration::from_secs(7))).unwrap();
    let (bytes, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&b).unwrap());
    let b2: Barrier = mp_os::handle::provide_fds(fds, || postcard::from_bytes(&bytes)).unwrap();
    assert!(b2.action().is_some());
    assert_eq!(b2.timeout(), Some(Duration::from_secs(7)));
    let before = MARKER_RUNS.load(Ordering::SeqCst);
    assert_eq!(b2.wait().unwrap(), 0); // one party: trips at once
    assert!(MARKER_RUNS.load(Ordering::SeqCst) > before);
}

#[test]
fn an_action_that_is_not_code_here_is_refused() {
    let b = Barrier::new(1).unwrap();
    let (mut bytes, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&b).unwrap());
    // The action is the last field: None (0) here; make it Some(offset)
    // with an offset far outside the executable (a zigzag varint).
    assert_eq!(bytes.pop(), Some(0));
    bytes.push(1);
    bytes.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    let r: Result<Barrier, _> = mp_os::handle::provide_fds(fds, || postcard::from_bytes(&bytes));
    assert!(r.is_err());
}
