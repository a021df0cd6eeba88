//! Handles from the foundation crates travel in a target's arguments and
//! re-attach in the child under every start method.

use std::time::Duration;

use mp_proc::{Process, StartMethod};
use mp_shm::{Array, Value};
use mp_sync::{Event, Lock};

fn methods() -> [StartMethod; 3] {
    // SAFETY: the targets only touch shared memory and sleep.
    unsafe { mp_proc::enable_fork() };
    StartMethod::ALL
}

fn square_list((list, result, total): (Vec<i32>, Array<i32>, Value<i32>)) {
    for (i, n) in list.iter().enumerate() {
        result.set(i, n * n);
    }
    total.set(result.to_vec().iter().sum());
}

fn add_many((v, lock, n): (Value<i64>, Lock, i64)) {
    for _ in 0..n {
        let _g = lock.acquire().unwrap();
        // SAFETY: the lock serializes every access to the raw pointer.
        unsafe { *v.as_ptr() += 1 };
    }
}

fn wait_then_set((go, done): (Event, Event)) -> bool {
    let ok = go.wait_timeout(Duration::from_secs(30));
    done.set();
    ok
}

fn returns_value(x: i32) -> Value<i32> {
    Value::new(x * 10).unwrap()
}

#[test]
fn value_and_array_written_by_child() {
    for m in methods() {
        let result = Array::<i32>::zeroed(4).unwrap();
        let total = Value::new(0i32).unwrap();
        let p = Process::new(
            square_list,
            (vec![1, 2, 3, 4], result.clone(), total.clone()),
        )
        .start_method(m);
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(result.to_vec(), [1, 4, 9, 16], "{m}");
        assert_eq!(total.get(), 30, "{m}");
    }
}

#[test]
fn lock_shared_with_children_keeps_count_exact() {
    for m in methods() {
        let v = Value::new(0i64).unwrap();
        let lock = Lock::new().unwrap();
        let procs: Vec<_> = (0..3)
            .map(|_| Process::new(add_many, (v.clone(), lock.clone(), 20_000)).start_method(m))
            .collect();
        for p in &procs {
            p.start().unwrap();
        }
        add_many((v.clone(), lock.clone(), 20_000));
        for p in &procs {
            p.join().unwrap();
        }
        assert_eq!(v.get(), 80_000, "{m}");
    }
}

#[test]
fn events_cross_in_both_directions() {
    for m in methods() {
        let (go, done) = (Event::new().unwrap(), Event::new().unwrap());
        let p = Process::new(wait_then_set, (go.clone(), done.clone())).start_method(m);
        p.start().unwrap();
        assert!(!done.wait_timeout(Duration::from_millis(50)));
        go.set();
        assert!(done.wait_timeout(Duration::from_secs(30)), "{m}");
        assert!(p.join().unwrap());
    }
}

#[test]
fn handle_in_return_value_reattaches() {
    for m in methods() {
        let p = Process::new(returns_value, 4).start_method(m);
        p.start().unwrap();
        let v = p.join().unwrap();
        assert_eq!(v.get(), 40, "{m}");
        v.set(5);
        assert_eq!(v.get(), 5);
    }
}

#[test]
fn target_outside_the_executable_is_refused() {
    // SAFETY: the pointer is never called: start() refuses it first.
    let f: fn(i32) -> i32 =
        unsafe { std::mem::transmute::<usize, fn(i32) -> i32>(libc_abs_addr()) };
    let p = Process::new(f, 1);
    assert!(matches!(
        p.start(),
        Err(mp_proc::Error::TargetOutsideBinary)
    ));
}

fn libc_abs_addr() -> usize {
    unsafe extern "C" {
        fn abs(x: i32) -> i32;
    }
    abs as unsafe extern "C" fn(i32) -> i32 as usize
}
