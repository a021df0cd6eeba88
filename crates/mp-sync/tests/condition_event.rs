//! Condition and Event across processes.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Counters, asleep, fork, wait_until};
use mp_sync::{Condition, Event, Lock};

fn notify_wakes(cond: Condition) {
    let woken = Counters::new(1);
    let children: Vec<_> = (0..3)
        .map(|_| {
            fork(|| {
                let mut g = cond.acquire().unwrap();
                match g.wait_timeout(Duration::from_secs(20)) {
                    Ok(true) => {
                        woken.get(0).fetch_add(1, Ordering::SeqCst);
                        0
                    }
                    _ => 1,
                }
            })
        })
        .collect();
    // Registered, and asleep in the kernel: a waiter that has released the
    // lock but not yet gone to sleep would return on any notify (a spurious
    // wake-up, allowed).
    wait_until(|| cond.raw().waiting() == 3 && children.iter().all(|c| asleep(c.pid())));
    {
        let g = cond.acquire().unwrap();
        g.notify(1);
    }
    wait_until(|| woken.get(0).load(Ordering::SeqCst) == 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        woken.get(0).load(Ordering::SeqCst),
        1,
        "notify(1) woke more than one"
    );
    assert_eq!(cond.raw().waiting(), 2);
    {
        let g = cond.acquire().unwrap();
        g.notify_all();
    }
    for ch in children {
        assert_eq!(ch.wait(), 0);
    }
    assert_eq!(woken.get(0).load(Ordering::SeqCst), 3);
}

#[test]
fn condition_notify_one_then_all_rlock() {
    notify_wakes(Condition::new().unwrap());
}

#[test]
fn condition_notify_one_then_all_lock() {
    notify_wakes(Condition::with_lock(Lock::new().unwrap()).unwrap());
}

#[test]
fn condition_wait_for_predicate_in_shared_memory() {
    let cond = Condition::new().unwrap();
    let c = Counters::new(1);
    let child = fork(|| {
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            let g = cond.acquire().unwrap();
            c.get(0).fetch_add(1, Ordering::SeqCst);
            g.notify_all();
        }
        0
    });
    let mut g = cond.acquire().unwrap();
    let ok = g
        .wait_for_timeout(
            || c.get(0).load(Ordering::SeqCst) >= 5,
            Duration::from_secs(20),
        )
        .unwrap();
    assert!(ok);
    drop(g);
    assert_eq!(child.wait(), 0);
    let mut g = cond.acquire().unwrap();
    assert!(
        !g.wait_for_timeout(|| false, Duration::from_millis(50))
            .unwrap()
    );
}

#[test]
fn condition_handle_travels_with_its_lock() {
    let cond = Condition::new().unwrap();
    let bytes = postcard::to_allocvec(&cond).unwrap();
    let ready = Event::new().unwrap();
    let child = fork(|| {
        let cond: Condition = postcard::from_bytes(&bytes).unwrap();
        let mut g = cond.acquire().unwrap();
        ready.set();
        if g.wait_timeout(Duration::from_secs(20)).unwrap() {
            0
        } else {
            1
        }
    });
    ready.wait();
    let g = cond.acquire().unwrap(); // the child released it by waiting
    wait_until(|| cond.raw().waiting() == 1);
    g.notify(1);
    drop(g);
    assert_eq!(child.wait(), 0);
}

#[test]
fn event_across_processes() {
    let ev = Event::new().unwrap();
    let child = fork(|| {
        if !ev.wait_timeout(Duration::from_secs(20)) {
            return 1;
        }
        ev.wait();
        0
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!ev.is_set());
    ev.set();
    assert_eq!(child.wait(), 0);
    assert!(ev.is_set());
    ev.clear();
    assert!(!ev.is_set());
    assert!(!ev.wait_timeout(Duration::from_millis(20)));
}

/// A waiter asleep when `set` runs returns even if `clear` follows at once
/// (a pulse), as `threading.Event` does: the set is not lost because the
/// waiter looked only after the clear.
fn event_pulse_reaches(timed: bool) {
    let ev = Event::new().unwrap();
    let kids: Vec<_> = (0..3)
        .map(|_| {
            fork(|| {
                if timed {
                    if ev.wait_timeout(Duration::from_secs(60)) {
                        0
                    } else {
                        1
                    }
                } else {
                    ev.wait();
                    0
                }
            })
        })
        .collect();
    // Every waiter asleep on the event.
    std::thread::sleep(Duration::from_millis(50));
    wait_until(|| kids.iter().all(|k| asleep(k.pid())));
    ev.set();
    ev.clear();
    for k in kids {
        assert_eq!(k.wait(), 0);
    }
    assert!(!ev.is_set());
    assert!(!ev.wait_timeout(Duration::from_millis(20)));
}

#[test]
fn event_pulse_reaches_sleeping_waiters() {
    event_pulse_reaches(false);
}

#[test]
fn event_pulse_reaches_sleeping_timed_waiters() {
    event_pulse_reaches(true);
}
