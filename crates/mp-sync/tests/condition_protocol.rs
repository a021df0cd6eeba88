//! A notify wakes the waiters that were waiting when it was called, across
//! processes: the textbook bounded buffer on one `Condition`, and `notify(1)`
//! hand-off chains. A lost notification shows as a hang, which the overall
//! deadline turns into a failure (the children are killed on the way out).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Counters, fork, wait_until};
use mp_sync::{Condition, Error, Lock};

/// How long a whole run may take before it counts as hung.
const OVERALL: Duration = Duration::from_secs(120);

/// Waits until `done` reaches `n`, at most [`OVERALL`]; `state` describes
/// the shared state for the failure message.
fn await_children(done: &AtomicU64, n: u64, cond: &Condition, state: impl Fn() -> String) {
    let start = Instant::now();
    while done.load(Ordering::SeqCst) < n {
        assert!(
            start.elapsed() < OVERALL,
            "hung: {} of {n} processes finished after {OVERALL:?}; {} waiting on the condition; {}",
            done.load(Ordering::SeqCst),
            cond.raw().waiting(),
            state()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

// Counter indexes of the bounded buffer.
const COUNT: usize = 0; // items in the buffer
const HEAD: usize = 1; // items taken so far (next slot to take)
const TAIL: usize = 2; // items put so far (next slot to fill)
const DONE: usize = 3; // processes finished
const SLOTS: usize = 4; // CAP slots
const CAP: u64 = 4;
const PER_CONSUMER: usize = SLOTS + CAP as usize; // then 3 per consumer: items, sum, sum of squares

/// Producers put the items 1..=items (split among them) into a buffer of
/// 4 guarded by the condition's lock; consumers take them. Every wait is
/// `wait_for(predicate)`, every change is followed by `notify_all`.
fn bounded_buffer(cond: Condition, producers: u64, consumers: usize, items: u64) {
    let c = Counters::new(PER_CONSUMER + 3 * consumers);
    let at = |i: usize| c.get(i);
    let mut kids = Vec::new();
    for p in 0..producers {
        let (cond, c) = (&cond, &c);
        kids.push(fork(move || {
            let at = |i: usize| c.get(i);
            // Producer p puts p+1, p+1+producers, ...
            let mut item = p + 1;
            while item <= items {
                let mut g = cond.acquire().unwrap();
                g.wait_for(|| at(COUNT).load(Ordering::Relaxed) < CAP)
                    .unwrap();
                let tail = at(TAIL).load(Ordering::Relaxed);
                at(SLOTS + (tail % CAP) as usize).store(item, Ordering::Relaxed);
                at(TAIL).store(tail + 1, Ordering::Relaxed);
                let n = at(COUNT).load(Ordering::Relaxed);
                at(COUNT).store(n + 1, Ordering::Relaxed);
                g.notify_all();
                drop(g);
                item += producers;
            }
            at(DONE).fetch_add(1, Ordering::SeqCst);
            0
        }));
    }
    for k in 0..consumers {
        let (cond, c) = (&cond, &c);
        kids.push(fork(move || {
            let at = |i: usize| c.get(i);
            let (mut got, mut sum, mut squares) = (0u64, 0u64, 0u64);
            loop {
                let mut g = cond.acquire().unwrap();
                g.wait_for(|| {
                    at(COUNT).load(Ordering::Relaxed) > 0
                        || at(HEAD).load(Ordering::Relaxed) == items
                })
                .unwrap();
                if at(COUNT).load(Ordering::Relaxed) == 0 {
                    break; // every item was taken
                }
                let head = at(HEAD).load(Ordering::Relaxed);
                let item = at(SLOTS + (head % CAP) as usize).load(Ordering::Relaxed);
                at(HEAD).store(head + 1, Ordering::Relaxed);
                let n = at(COUNT).load(Ordering::Relaxed);
                at(COUNT).store(n - 1, Ordering::Relaxed);
                g.notify_all();
                drop(g);
                got += 1;
                sum += item;
                squares += item * item;
            }
            let base = PER_CONSUMER + 3 * k;
            at(base).store(got, Ordering::SeqCst);
            at(base + 1).store(sum, Ordering::SeqCst);
            at(base + 2).store(squares, Ordering::SeqCst);
            at(DONE).fetch_add(1, Ordering::SeqCst);
            0
        }));
    }
    await_children(at(DONE), producers + consumers as u64, &cond, || {
        format!(
            "count {}, put {}, taken {}",
            at(COUNT).load(Ordering::SeqCst),
            at(TAIL).load(Ordering::SeqCst),
            at(HEAD).load(Ordering::SeqCst)
        )
    });
    for kid in kids {
        assert_eq!(kid.wait(), 0);
    }
    let (mut got, mut sum, mut squares) = (0, 0, 0);
    for k in 0..consumers {
        let base = PER_CONSUMER + 3 * k;
        got += at(base).load(Ordering::SeqCst);
        sum += at(base + 1).load(Ordering::SeqCst);
        squares += at(base + 2).load(Ordering::SeqCst);
    }
    assert_eq!(got, items, "items consumed");
    assert_eq!(sum, items * (items + 1) / 2, "sum of the items consumed");
    assert_eq!(
        squares,
        items * (items + 1) * (2 * items + 1) / 6,
        "sum of the squares of the items consumed"
    );
    assert_eq!(at(COUNT).load(Ordering::SeqCst), 0);
    assert_eq!(cond.raw().waiting(), 0);
}

const ITEMS: u64 = 9_000;

fn rlock() -> Condition {
    Condition::new().unwrap()
}

fn lock() -> Condition {
    Condition::with_lock(Lock::new().unwrap()).unwrap()
}

#[test]
fn bounded_buffer_1x1_rlock() {
    bounded_buffer(rlock(), 1, 1, ITEMS);
}

#[test]
fn bounded_buffer_1x2_rlock() {
    bounded_buffer(rlock(), 1, 2, ITEMS);
}

#[test]
fn bounded_buffer_2x1_rlock() {
    bounded_buffer(rlock(), 2, 1, ITEMS);
}

#[test]
fn bounded_buffer_3x3_rlock() {
    bounded_buffer(rlock(), 3, 3, ITEMS);
}

#[test]
fn bounded_buffer_1x1_lock() {
    bounded_buffer(lock(), 1, 1, ITEMS);
}

#[test]
fn bounded_buffer_1x2_lock() {
    bounded_buffer(lock(), 1, 2, ITEMS);
}

#[test]
fn bounded_buffer_2x1_lock() {
    bounded_buffer(lock(), 2, 1, ITEMS);
}

#[test]
fn bounded_buffer_3x3_lock() {
    bounded_buffer(lock(), 3, 3, ITEMS);
}

// Counter indexes of the hand-off chain.
const BATON: usize = 0; // 1 while the baton lies free
const LAST: usize = 1; // 1 + index of the process that passed it last
const HOPS: usize = 2; // hand-offs so far
const CHAIN_DONE: usize = 3; // processes finished
const FINISHED: usize = 4; // 1 once HOPS reached the target

/// `procs` processes pass a baton: the holder puts it down and wakes one
/// waiter with `notify(1)`, then waits itself; it may not pick up the
/// baton it just put down, so every hop needs the notify to reach a
/// process that was already waiting.
fn handoff_chain(cond: Condition, procs: u64, hops: u64) {
    let c = Counters::new(5);
    let at = |i: usize| c.get(i);
    at(BATON).store(1, Ordering::SeqCst);
    let kids: Vec<_> = (0..procs)
        .map(|me| {
            let (cond, c) = (&cond, &c);
            fork(move || {
                let at = |i: usize| c.get(i);
                let mut g = cond.acquire().unwrap();
                loop {
                    g.wait_for(|| {
                        at(FINISHED).load(Ordering::Relaxed) == 1
                            || (at(BATON).load(Ordering::Relaxed) == 1
                                && at(LAST).load(Ordering::Relaxed) != me + 1)
                    })
                    .unwrap();
                    if at(FINISHED).load(Ordering::Relaxed) == 1 {
                        break;
                    }
                    // Pick the baton up, then pass it on.
                    at(BATON).store(0, Ordering::Relaxed);
                    let h = at(HOPS).load(Ordering::Relaxed) + 1;
                    at(HOPS).store(h, Ordering::Relaxed);
                    at(LAST).store(me + 1, Ordering::Relaxed);
                    if h == hops {
                        at(FINISHED).store(1, Ordering::Relaxed);
                        g.notify_all();
                        break;
                    }
                    at(BATON).store(1, Ordering::Relaxed);
                    g.notify(1);
                }
                drop(g);
                at(CHAIN_DONE).fetch_add(1, Ordering::SeqCst);
                0
            })
        })
        .collect();
    await_children(at(CHAIN_DONE), procs, &cond, || {
        format!(
            "hops {}, baton free {}, last {}",
            at(HOPS).load(Ordering::SeqCst),
            at(BATON).load(Ordering::SeqCst),
            at(LAST).load(Ordering::SeqCst)
        )
    });
    for kid in kids {
        assert_eq!(kid.wait(), 0);
    }
    assert_eq!(at(HOPS).load(Ordering::SeqCst), hops);
    assert_eq!(cond.raw().waiting(), 0);
}

const HOPS_N: u64 = 3_000;

#[test]
fn notify_one_handoff_chain_2_rlock() {
    handoff_chain(rlock(), 2, HOPS_N);
}

#[test]
fn notify_one_handoff_chain_4_rlock() {
    handoff_chain(rlock(), 4, HOPS_N);
}

#[test]
fn notify_one_handoff_chain_2_lock() {
    handoff_chain(lock(), 2, HOPS_N);
}

#[test]
fn notify_one_handoff_chain_4_lock() {
    handoff_chain(lock(), 4, HOPS_N);
}

/// A waiter woken while the notifier dies holding the lock re-acquires it
/// and reports `OwnerDied`; it leaves the waiter count either way.
fn woken_waiter_takes_over_from_dead_notifier(cond: Condition) {
    let waiter = fork(|| {
        let mut g = cond.acquire().unwrap();
        match g.wait_timeout(Duration::from_secs(60)) {
            Err(Error::OwnerDied { .. }) => 0,
            Ok(_) => 1,
            Err(_) => 2,
        }
    });
    wait_until(|| cond.raw().waiting() == 1);
    let notifier = fork(|| {
        let g = cond.acquire().unwrap();
        g.notify_all();
        std::mem::forget(g); // dies holding the lock
        0
    });
    assert_eq!(notifier.wait(), 0);
    assert_eq!(waiter.wait(), 0, "the waiter did not report OwnerDied");
    assert_eq!(cond.raw().waiting(), 0);
    // The waiter released the lock it took over.
    let mut g = cond.acquire().unwrap();
    assert!(
        !g.wait_timeout(Duration::from_millis(20)).unwrap(),
        "a wait with no notify timed out"
    );
    assert_eq!(cond.raw().waiting(), 0);
}

#[test]
fn woken_waiter_takes_over_from_dead_notifier_rlock() {
    woken_waiter_takes_over_from_dead_notifier(rlock());
}

#[test]
fn woken_waiter_takes_over_from_dead_notifier_lock() {
    woken_waiter_takes_over_from_dead_notifier(lock());
}

/// A waiter killed in its sleep absorbs no notification: `notify(1)`
/// reaches the living waiter.
#[test]
fn dead_waiter_absorbs_no_notify() {
    let cond = lock();
    let waiter = || {
        fork(|| {
            let mut g = cond.acquire().unwrap();
            match g.wait_timeout(Duration::from_secs(60)) {
                Ok(true) => 0,
                _ => 1,
            }
        })
    };
    let doomed = waiter();
    wait_until(|| cond.raw().waiting() == 1);
    let living = waiter();
    wait_until(|| cond.raw().waiting() == 2);
    doomed.kill();
    assert_eq!(doomed.wait(), -libc::SIGKILL);
    // Make sure the living one sleeps on the condition (not between the
    // lock and its sleep), then notify once.
    std::thread::sleep(Duration::from_millis(100));
    {
        let g = cond.acquire().unwrap();
        g.notify(1);
    }
    assert_eq!(
        living.wait(),
        0,
        "notify(1) did not reach the living waiter"
    );
    // The dead waiter stays counted (it cannot deregister).
    assert_eq!(cond.raw().waiting(), 1);
}

/// Timed waits that time out leave the count; a notify after them changes
/// nothing for a later waiter.
#[test]
fn timed_out_waiters_leave_no_trace() {
    let cond = rlock();
    let kids: Vec<_> = (0..3)
        .map(|_| {
            fork(|| {
                let mut g = cond.acquire().unwrap();
                match g.wait_timeout(Duration::from_millis(200)) {
                    Ok(false) => 0,
                    _ => 1,
                }
            })
        })
        .collect();
    for k in kids {
        assert_eq!(k.wait(), 0);
    }
    assert_eq!(cond.raw().waiting(), 0);
    let mut g = cond.acquire().unwrap();
    g.notify(3);
    // A notify with no waiter is not kept for a later one.
    assert!(!g.wait_timeout(Duration::from_millis(50)).unwrap());
    assert_eq!(cond.raw().waiting(), 0);
}
