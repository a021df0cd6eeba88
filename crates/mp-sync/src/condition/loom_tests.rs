//! Loom model of the condition's wait/notify protocol over a model of the
//! kernel's futex queue (`loom_futex`): a notification that reaches nobody
//! leaves a waiter asleep for ever, which loom reports as a deadlock. Run
//! with `RUSTFLAGS="--cfg loom" cargo test -p mp-sync --release --lib loom`.

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::{Arc, Mutex, MutexGuard};
use loom::thread;

use super::{RawCondition, WaitGuard, sealed};
use crate::Deadline;

/// The user's lock in the model, with the data it guards in `count`.
struct Model {
    lock: Mutex<()>,
    cond: RawCondition,
    count: AtomicU32,
}

/// A held `Model::lock`, as a condition's wait releases and re-takes it.
struct Guard<'a> {
    lock: &'a Mutex<()>,
    held: Option<MutexGuard<'a, ()>>,
}

impl sealed::Sealed for Guard<'_> {
    fn unlock_for_wait(&mut self) -> u64 {
        self.held = None;
        0
    }
    fn relock_after_wait(&mut self, _saved: u64) -> Option<u32> {
        self.held = Some(self.lock.lock().unwrap());
        None
    }
}
impl WaitGuard for Guard<'_> {}

impl Model {
    fn new() -> Arc<Model> {
        Arc::new(Model {
            lock: Mutex::new(()),
            cond: RawCondition::new(),
            count: AtomicU32::new(0),
        })
    }

    fn acquire(&self) -> Guard<'_> {
        Guard {
            lock: &self.lock,
            held: Some(self.lock.lock().unwrap()),
        }
    }

    fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    fn add(&self, d: i32) {
        let c = self.count().wrapping_add_signed(d);
        self.count.store(c, Ordering::Relaxed);
    }
}

fn check(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(3));
    b.max_branches = 100_000;
    b.check(f);
}

/// Units handed over one by one with `notify(1)` to two consumers, one of
/// which first waits with a deadline (a timeout racing a wake-up): every
/// unit reaches a consumer.
#[test]
fn loom_notify_one_reaches_a_waiter() {
    check(|| {
        let m = Model::new();
        let consumers: Vec<_> = [true, false]
            .into_iter()
            .map(|timed_first| {
                let m = m.clone();
                thread::spawn(move || {
                    let mut g = m.acquire();
                    let mut timed = timed_first;
                    while m.count() == 0 {
                        if timed {
                            let far = Deadline::after(Some(std::time::Duration::from_secs(600)));
                            m.cond.wait_deadline(&mut g, far).unwrap();
                            timed = false;
                        } else {
                            m.cond.wait(&mut g).unwrap();
                        }
                    }
                    m.add(-1);
                })
            })
            .collect();
        for _ in 0..2 {
            let g = m.acquire();
            m.add(1);
            m.cond.notify(&g, 1);
        }
        for c in consumers {
            c.join().unwrap();
        }
        assert_eq!(m.count(), 0);
        assert_eq!(m.cond.waiting(), 0);
    });
}

/// The bounded buffer (capacity 1) with `notify_all`: a consumer that loops
/// back into `wait` must not take the wake-up meant for the producer.
#[test]
fn loom_bounded_buffer_notify_all() {
    check(|| {
        const ITEMS: u32 = 2;
        let m = Model::new();
        let m2 = m.clone();
        let consumer = thread::spawn(move || {
            for _ in 0..ITEMS {
                let mut g = m2.acquire();
                m2.cond.wait_for(&mut g, || m2.count() > 0).unwrap();
                m2.add(-1);
                m2.cond.notify_all(&g);
            }
        });
        for _ in 0..ITEMS {
            let mut g = m.acquire();
            m.cond.wait_for(&mut g, || m.count() < 1).unwrap();
            m.add(1);
            m.cond.notify_all(&g);
        }
        consumer.join().unwrap();
        assert_eq!(m.count(), 0);
        assert_eq!(m.cond.waiting(), 0);
    });
}

/// The bounded buffer (capacity 1) with one producer and two consumers,
/// each consumer taking one item: wake-ups meant for the producer or for
/// the other consumer reach them.
#[test]
fn loom_bounded_buffer_two_consumers() {
    check(|| {
        let m = Model::new();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    let mut g = m.acquire();
                    m.cond.wait_for(&mut g, || m.count() > 0).unwrap();
                    m.add(-1);
                    m.cond.notify_all(&g);
                })
            })
            .collect();
        for _ in 0..2 {
            let mut g = m.acquire();
            m.cond.wait_for(&mut g, || m.count() < 1).unwrap();
            m.add(1);
            m.cond.notify_all(&g);
        }
        for c in consumers {
            c.join().unwrap();
        }
        assert_eq!(m.count(), 0);
        assert_eq!(m.cond.waiting(), 0);
    });
}

/// A notify(1) hand-off: the notifier waits right after it notified and
/// may not take the baton back, so the wake-up must reach the other one.
#[test]
fn loom_handoff_notify_one() {
    check(|| {
        // count: 1 + index of the last holder; the baton is always free.
        let m = Model::new();
        let players: Vec<_> = (1..=2u32)
            .map(|me| {
                let m = m.clone();
                thread::spawn(move || {
                    let mut g = m.acquire();
                    for _ in 0..2 {
                        m.cond.wait_for(&mut g, || m.count() != me).unwrap();
                        m.count.store(me, Ordering::Relaxed);
                        m.cond.notify(&g, 1);
                    }
                })
            })
            .collect();
        for p in players {
            p.join().unwrap();
        }
        assert_eq!(m.cond.waiting(), 0);
    });
}
