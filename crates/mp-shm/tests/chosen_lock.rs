//! `Value`/`Array` under a chosen lock (Python's `lock=`), and `Array<u8>`
//! as a char array.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Counters, fork};
use mp_shm::{Array, Error, Value};
use mp_sync::RLock;

#[test]
fn one_lock_keeps_two_values_consistent_across_processes() {
    const N: u64 = 20_000;
    const PROCS: usize = 4;
    let lock = RLock::new().unwrap();
    let a = Value::with_lock(0u64, lock.clone()).unwrap();
    let b = Value::with_lock(0u64, lock.clone()).unwrap();
    let torn = Counters::new(1);
    assert!(a.get_lock().ptr_eq(&lock) && b.get_lock().ptr_eq(&lock));
    let work = || {
        for i in 0..N {
            let _l = lock.acquire().unwrap();
            // Under the shared lock the two move together.
            if a.get() != b.get() {
                torn.get(0).fetch_add(1, Ordering::Relaxed);
            }
            if i % 2 == 0 {
                a.update(|x| *x += 1);
                b.update(|x| *x += 1);
            } else {
                let (mut ga, mut gb) = (a.lock(), b.lock()); // two guards, one lock
                *ga += 1;
                *gb += 1;
            }
        }
    };
    let kids: Vec<_> = (0..PROCS - 1)
        .map(|_| {
            fork(|| {
                work();
                0
            })
        })
        .collect();
    work();
    for k in kids {
        assert_eq!(k.wait(), 0);
    }
    assert_eq!(torn.get(0).load(Ordering::Relaxed), 0);
    assert_eq!(a.get(), N * PROCS as u64);
    assert_eq!(b.get(), N * PROCS as u64);
}

#[test]
fn holding_the_chosen_lock_excludes_other_processes() {
    let lock = RLock::new().unwrap();
    let arr = Array::<u32>::zeroed_with_lock(4, lock.clone()).unwrap();
    // A handle that travelled (serde) keeps the same lock.
    let (bytes, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&arr).unwrap());
    let back: Array<u32> =
        mp_os::handle::provide_fds(fds, || postcard::from_bytes(&bytes)).unwrap();
    let g = lock.acquire().unwrap();
    let child = fork(|| {
        // The parent holds the chosen lock: the array's lock is busy.
        match back.try_lock() {
            Err(Error::Sync(mp_sync::Error::WouldBlock)) => {}
            _ => return 1,
        }
        back.lock_timeout(Duration::from_secs(30)).unwrap()[0] = 7;
        0
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(arr.lock()[0], 0, "the child waits for the lock");
    drop(g);
    assert_eq!(child.wait(), 0);
    assert_eq!(arr.to_vec(), [7, 0, 0, 0]);
}

#[test]
fn a_handle_whose_lock_kind_does_not_match_is_refused() {
    let own = Value::new(1u8).unwrap();
    let chosen = Value::with_lock(1u8, RLock::new().unwrap()).unwrap();
    // Serialized as (segment, Option<RLock>).
    let (own_bytes, own_fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&own).unwrap());
    let r: Result<Value<u8>, _> =
        mp_os::handle::provide_fds(own_fds, || postcard::from_bytes(&own_bytes));
    assert_eq!(r.unwrap().get(), 1);
    // An own-lock segment sent with a lock beside it: the kinds disagree.
    let lock = chosen.get_lock().clone();
    let (bytes, fds) = mp_os::handle::collect_fds(|| {
        let mut b = postcard::to_allocvec(&own).unwrap();
        assert_eq!(b.pop(), Some(0), "None: no chosen lock");
        b.extend(postcard::to_allocvec(&Some(lock)).unwrap());
        b
    });
    let r: Result<Value<u8>, _> = mp_os::handle::provide_fds(fds, || postcard::from_bytes(&bytes));
    assert!(r.is_err(), "an own-lock segment with a chosen lock");
}

#[test]
fn condition_refuses_to_wait_under_a_guard_of_a_value_with_a_chosen_lock() {
    let lock = RLock::new().unwrap();
    let v = Value::with_lock(0u32, lock.clone()).unwrap();
    let w = Value::with_lock(0u32, lock.clone()).unwrap();
    let cond = mp_sync::Condition::with_lock(lock.clone()).unwrap();
    {
        let g = v.lock();
        let mut cg = cond.acquire().unwrap();
        assert!(matches!(
            cg.wait_timeout(Duration::from_millis(1)),
            Err(mp_sync::Error::InvalidArgument(_))
        ));
        drop(cg);
        // Another value under the same lock is not borrowed.
        w.set(5);
        drop(g);
    }
    let mut cg = cond.acquire().unwrap();
    assert!(!cg.wait_timeout(Duration::from_millis(1)).unwrap());
    drop(cg);
    assert_eq!(w.get(), 5);
}

#[test]
#[should_panic(expected = "borrowed")]
fn nested_access_to_the_same_value_under_a_chosen_lock_panics() {
    let v = Value::with_lock(1u8, RLock::new().unwrap()).unwrap();
    let _g = v.lock();
    let _ = v.get();
}

#[test]
fn char_array_value_and_raw() {
    let a = Array::<u8>::zeroed(8).unwrap();
    assert_eq!(a.value(), b"");
    a.set_value(b"hello").unwrap();
    assert_eq!(a.value(), b"hello");
    assert_eq!(a.raw(), b"hello\0\0\0");
    a.set_value(b"hi").unwrap();
    assert_eq!(a.value(), b"hi");
    assert_eq!(a.raw(), b"hi\0lo\0\0\0"); // as ctypes: the tail stays
    a.set_value(b"12345678").unwrap(); // fills it: no room for a NUL
    assert_eq!(a.value(), b"12345678");
    assert!(matches!(
        a.set_value(b"123456789"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        a.set_raw(b"123456789"),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(a.value(), b"12345678", "nothing written on error");
    a.set_raw(b"ab\0").unwrap();
    assert_eq!(a.raw(), b"ab\x0045678");
    assert_eq!(a.value(), b"ab");
    let child = fork(|| {
        a.set_value(b"child").unwrap();
        0
    });
    assert_eq!(child.wait(), 0);
    assert_eq!(a.value(), b"child");
}
