//! criterion micro-benchmarks of mp-sync and mp-shm: uncontended locks,
//! Value access, and a two-process lock hand-off.
//!
//! `cargo bench -p mp-benches --bench sync -- --quick`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mp_shm::{RawValue, Value};
use mp_sync::{Lock, RLock, RawLock, Semaphore};

fn uncontended(c: &mut Criterion) {
    let lock = Lock::new().unwrap();
    c.bench_function("lock_acquire_release", |b| {
        b.iter(|| drop(black_box(&lock).acquire().unwrap()))
    });
    let raw = RawLock::new();
    c.bench_function("rawlock_acquire_release", |b| {
        b.iter(|| drop(black_box(&raw).acquire().unwrap()))
    });
    let rlock = RLock::new().unwrap();
    c.bench_function("rlock_acquire_release", |b| {
        b.iter(|| drop(black_box(&rlock).acquire().unwrap()))
    });
    let outer = rlock.acquire().unwrap();
    c.bench_function("rlock_reacquire_release", |b| {
        b.iter(|| drop(black_box(&rlock).acquire().unwrap()))
    });
    drop(outer);
    c.bench_function("lock_new_drop", |b| {
        b.iter(|| drop(black_box(Lock::new().unwrap())))
    });
    c.bench_function("value_new_drop", |b| {
        b.iter(|| drop(black_box(Value::new(black_box(1u64)).unwrap())))
    });
    let sem = Semaphore::new(1).unwrap();
    c.bench_function("semaphore_acquire_release", |b| {
        b.iter(|| drop(black_box(&sem).acquire()))
    });
}

fn values(c: &mut Criterion) {
    let v = Value::new(0u64).unwrap();
    c.bench_function("value_get", |b| b.iter(|| black_box(&v).get()));
    c.bench_function("value_set", |b| b.iter(|| black_box(&v).set(black_box(1))));
    c.bench_function("value_update_increment", |b| {
        b.iter(|| black_box(&v).update(|x| *x += 1))
    });
    let r = RawValue::new(0u64).unwrap();
    c.bench_function("rawvalue_get", |b| b.iter(|| black_box(&r).get()));
}

/// A forked child that runs `f(stop)` until `stop` becomes nonzero: on
/// drop the flag is set and the child given 5 s to leave (mp-testkit
/// kills and reaps it after that).
struct Child {
    child: mp_testkit::Child,
    stop: RawValue<u32>,
}

impl Child {
    fn spawn(f: impl FnOnce(&RawValue<u32>)) -> Child {
        let stop = RawValue::new(0u32).unwrap();
        let child = mp_testkit::fork(|| {
            f(&stop);
            0
        });
        Child { child, stop }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop.set(1);
        let _ = self.child.try_wait(Duration::from_secs(5));
    }
}

fn two_processes(c: &mut Criterion) {
    // Lock hand-off: a turn word guarded by the lock; the parent flips it
    // 0 -> 1 under the lock, the child 1 -> 0. One iteration = one round
    // trip through the lock between the two processes.
    {
        let lock = Lock::new().unwrap();
        let turn = RawValue::new(0u32).unwrap();
        let (l2, t2) = (lock.clone(), turn.clone());
        let _child = Child::spawn(move |stop| {
            while stop.get() == 0 {
                let _g = l2.acquire().unwrap();
                if t2.get() == 1 {
                    t2.set(0);
                }
            }
        });
        c.bench_function("two_process_lock_round_trip", |b| {
            b.iter(|| {
                loop {
                    let _g = lock.acquire().unwrap();
                    if turn.get() == 0 {
                        turn.set(1);
                        break;
                    }
                }
                // wait for the child's turn to end
                loop {
                    let _g = lock.acquire().unwrap();
                    if turn.get() == 0 {
                        break;
                    }
                }
            })
        });
    }
    // Semaphore pair ping-pong: blocking hand-off (spin, then futex).
    {
        let ping = Semaphore::new(0).unwrap();
        let pong = Semaphore::new(0).unwrap();
        let (p2, q2) = (ping.clone(), pong.clone());
        let child = Child::spawn(move |stop| {
            while stop.get() == 0 {
                if let Ok(g) = p2.acquire_timeout(Duration::from_millis(50)) {
                    g.forget();
                    q2.release().unwrap();
                }
            }
        });
        c.bench_function("two_process_semaphore_ping_pong", |b| {
            b.iter(|| {
                ping.release().unwrap();
                pong.acquire().forget();
            })
        });
        drop(child);
    }
}

criterion_group!(benches, uncontended, values, two_processes);
criterion_main!(benches);
