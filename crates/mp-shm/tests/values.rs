//! Value, Array, RawValue, RawArray across processes.

mod common;

use std::time::{Duration, Instant};

use common::{fork, wait_until};
use mp_shm::{Array, RawArray, RawValue, Value};
use mp_sync::Event;

#[test]
fn child_writes_are_seen_by_the_parent() {
    let v = Value::new(0i32).unwrap();
    let a = Array::<f64>::zeroed(4).unwrap();
    let rv = RawValue::new(0u64).unwrap();
    let ra = RawArray::<u16>::zeroed(3).unwrap();
    let child = fork(|| {
        v.set(42);
        for i in 0..4 {
            a.set(i, i as f64 * 0.5);
        }
        rv.set(7);
        ra.set(2, 9);
        0
    });
    assert_eq!(child.wait(), 0);
    assert_eq!(v.get(), 42);
    assert_eq!(a.to_vec(), [0.0, 0.5, 1.0, 1.5]);
    assert_eq!(rv.get(), 7);
    assert_eq!(ra.to_vec(), [0, 0, 9]);
}

const N: u64 = 100_000;

#[test]
fn locked_counter_exact_with_update() {
    let v = Value::new(0u64).unwrap();
    let work = || {
        for _ in 0..N {
            v.update(|x| *x += 1);
        }
    };
    let child = fork(|| {
        work();
        0
    });
    work();
    assert_eq!(child.wait(), 0);
    assert_eq!(v.get(), 2 * N);
}

#[test]
fn locked_counter_exact_with_guard_and_get_lock() {
    let v = Value::new(0u64).unwrap();
    let a = Array::<u64>::zeroed(2).unwrap();
    let work = || {
        for i in 0..N {
            if i % 2 == 0 {
                *v.lock() += 1;
            } else {
                // Python: with v.get_lock(): v.value += 1
                let _l = v.get_lock().acquire().unwrap();
                v.set(v.get() + 1);
            }
            a.lock()[1] += 1;
        }
    };
    let child = fork(|| {
        work();
        0
    });
    work();
    assert_eq!(child.wait(), 0);
    assert_eq!(v.get(), 2 * N);
    assert_eq!(a.get(1), 2 * N);
}

#[test]
fn dead_holder_of_value_lock_does_not_hang_get_set() {
    let v = Value::new(5i32).unwrap();
    let held = Event::new().unwrap();
    let child = fork(|| {
        let mut g = v.lock();
        *g = 6;
        held.set();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    held.wait();
    child.kill();
    let start = Instant::now();
    assert_eq!(v.get(), 6);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    v.set(7);
    let g = v.lock();
    assert_eq!(*g, 7);
    assert!(g.owner_died().is_none());
    drop(g);
    assert_eq!(child.wait(), -libc::SIGKILL);
}

#[test]
fn dead_holder_of_get_lock_is_reported_to_a_guard() {
    let a = Array::<u8>::zeroed(3).unwrap();
    let held = Event::new().unwrap();
    let child = fork(|| {
        a.get_lock().acquire().unwrap().forget();
        held.set();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    held.wait();
    let pid = child.pid();
    child.kill();
    let start = Instant::now();
    let mut g = a.lock_timeout(Duration::from_secs(20)).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(g.owner_died(), Some(pid));
    g[0] = 1;
    drop(g);
    assert_eq!(a.to_vec(), [1, 0, 0]);
    assert_eq!(child.wait(), -libc::SIGKILL);
}

#[test]
fn lock_timeouts() {
    let v = Value::new(0u8).unwrap();
    let held = Event::new().unwrap();
    let go = Event::new().unwrap();
    let child = fork(|| {
        let _g = v.lock();
        held.set();
        go.wait();
        0
    });
    held.wait();
    assert!(matches!(
        v.try_lock(),
        Err(mp_shm::Error::Sync(mp_sync::Error::WouldBlock))
    ));
    let d = Duration::from_millis(300);
    let start = Instant::now();
    assert!(matches!(
        v.lock_timeout(d),
        Err(mp_shm::Error::Sync(mp_sync::Error::Timeout))
    ));
    common::assert_about(start.elapsed(), d);
    go.set();
    assert_eq!(child.wait(), 0);
}

#[test]
fn serialized_inside_a_transport_same_memory_same_lock() {
    let v = Value::new(1u32).unwrap();
    let a = Array::from_slice(&[1u8, 2]).unwrap();
    let rv = RawValue::new(3i16).unwrap();
    let ra = RawArray::from_slice(&[4i64]).unwrap();
    let (bytes, fds) =
        mp_os::handle::collect_fds(|| postcard::to_allocvec(&(&v, &a, &rv, &ra)).unwrap());
    // Four small objects in one shared arena: its descriptor travels once.
    assert_eq!(fds.len(), 1);
    let held = Event::new().unwrap();
    let go = Event::new().unwrap();
    // The child inherits the descriptors (as a forked child of a start method would).
    let child = fork(|| {
        let (v2, a2, rv2, ra2): (Value<u32>, Array<u8>, RawValue<i16>, RawArray<i64>) =
            mp_os::handle::provide_fds(fds, || postcard::from_bytes(&bytes)).unwrap();
        if v2.get() != 1 || a2.to_vec() != [1, 2] || rv2.get() != 3 || ra2.get(0) != 4 {
            return 2;
        }
        v2.set(10);
        rv2.set(30);
        let _g = v2.lock(); // the same lock as the parent's
        held.set();
        go.wait();
        0
    });
    held.wait();
    assert!(
        v.try_lock().is_err(),
        "the deserialized Value uses the same lock"
    );
    go.set();
    assert_eq!(child.wait(), 0);
    assert_eq!(v.get(), 10);
    assert_eq!(rv.get(), 30);
}

#[test]
fn serialized_outside_a_transport_reattaches_in_child() {
    let v = Value::new(0u64).unwrap();
    let bytes = postcard::to_allocvec(&v).unwrap();
    let child = fork(|| {
        let v2: Value<u64> = postcard::from_bytes(&bytes).unwrap();
        for _ in 0..1000 {
            v2.update(|x| *x += 1);
        }
        0
    });
    for _ in 0..1000 {
        v.update(|x| *x += 1);
    }
    assert_eq!(child.wait(), 0);
    assert_eq!(v.get(), 2000);
    let back: Value<u64> = postcard::from_bytes(&bytes).unwrap();
    wait_until(|| back.get() == 2000);
}
