//! Lock and RLock across processes: exclusion, dead holders, serde.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Counters, fork, wait_until};
use mp_sync::{Error, Event, Lock, RLock, TryAcquireError};

#[test]
fn locked_counter_is_exact_across_two_processes() {
    const N: u64 = 100_000;
    let lock = Lock::new().unwrap();
    let c = Counters::new(1);
    let work = |lock: &Lock, c: &Counters| {
        for _ in 0..N {
            let _g = lock.acquire().unwrap();
            let p = c.plain(0);
            // SAFETY: the cell is accessed only under the lock.
            unsafe { p.write_volatile(p.read_volatile() + 1) };
        }
    };
    let child = fork(|| {
        work(&lock, &c);
        0
    });
    work(&lock, &c);
    assert_eq!(child.wait(), 0);
    // SAFETY: the child is gone.
    assert_eq!(unsafe { c.plain(0).read_volatile() }, 2 * N);
}

#[test]
fn child_holding_lock_blocks_parent() {
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let go = Event::new().unwrap();
    let child = fork(|| {
        let _g = lock.acquire().unwrap();
        held.set();
        go.wait();
        0
    });
    held.wait();
    assert!(matches!(
        lock.try_acquire(),
        Err(TryAcquireError::WouldBlock)
    ));
    assert_eq!(lock.owner(), Some(child.pid()));
    go.set();
    let _g = lock.acquire_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(child.wait(), 0);
}

#[test]
fn lock_released_by_another_process() {
    let lock = Lock::new().unwrap();
    lock.acquire().unwrap().forget();
    let child = fork(|| match lock.release() {
        Ok(()) => 0,
        Err(_) => 1,
    });
    assert_eq!(child.wait(), 0);
    assert!(!lock.locked());
    assert!(matches!(lock.release(), Err(Error::NotLocked)));
}

fn killed_holder_is_reported(reap_first: bool) {
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let child = fork(|| {
        let _g = lock.acquire().unwrap();
        held.set();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    held.wait();
    let pid = child.pid();
    child.kill();
    if reap_first {
        assert_eq!(child.wait(), -libc::SIGKILL);
    }
    let start = Instant::now();
    let err = lock.acquire().expect_err("the holder died");
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(err.dead_tid(), pid);
    let g = err.into_inner();
    assert_eq!(lock.owner(), Some(mp_os::liveness::current_tid()));
    drop(g);
    assert!(!lock.locked());
    drop(lock.acquire().unwrap());
}

#[test]
fn killed_lock_holder_zombie_reported_to_next_acquirer() {
    killed_holder_is_reported(false);
}

#[test]
fn killed_lock_holder_reaped_reported_to_next_acquirer() {
    killed_holder_is_reported(true);
}

#[test]
fn owner_died_converts_with_question_mark_and_unlocks() {
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let child = fork(|| {
        lock.acquire().unwrap().forget();
        held.set();
        0 // exits holding the lock
    });
    held.wait();
    assert_eq!(child.wait(), 0);
    fn take(lock: &Lock) -> Result<(), Error> {
        let _g = lock.acquire_timeout(Duration::from_secs(10))?;
        Ok(())
    }
    let start = Instant::now();
    assert!(matches!(take(&lock), Err(Error::OwnerDied { .. })));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!lock.locked(), "converting the error released the lock");
}

#[test]
fn killed_rlock_owner_reported_and_depth_reset() {
    let lock = RLock::new().unwrap();
    let held = Event::new().unwrap();
    let child = fork(|| {
        let _a = lock.acquire().unwrap();
        let _b = lock.acquire().unwrap();
        held.set();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    held.wait();
    child.kill();
    let start = Instant::now();
    let g = match lock.acquire_timeout(Duration::from_secs(20)) {
        Err(TryAcquireError::OwnerDied(d)) => d.into_guard(),
        other => panic!("expected OwnerDied, got {other:?}"),
    };
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(lock.count(), 1);
    drop(g);
    assert!(!lock.locked());
    assert_eq!(child.wait(), -libc::SIGKILL);
}

#[test]
fn rlock_recursion_and_non_owner_release_across_processes() {
    let lock = RLock::new().unwrap();
    let held = Event::new().unwrap();
    let go = Event::new().unwrap();
    let child = fork(|| {
        lock.acquire().unwrap().forget();
        lock.acquire().unwrap().forget();
        if lock.count() != 2 {
            return 2;
        }
        held.set();
        go.wait();
        let ok =
            lock.release().is_ok() && lock.is_owned() && lock.release().is_ok() && !lock.locked();
        if ok { 0 } else { 3 }
    });
    held.wait();
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
    assert!(matches!(
        lock.try_acquire(),
        Err(TryAcquireError::WouldBlock)
    ));
    assert!(!lock.is_owned());
    go.set();
    assert_eq!(child.wait(), 0);
    let _g = lock.try_acquire().unwrap();
}

#[test]
fn handles_serialized_inside_a_transport_reattach() {
    let lock = Lock::new().unwrap();
    let rlock = RLock::new().unwrap();
    let (bytes, fds) =
        mp_os::handle::collect_fds(|| postcard::to_allocvec(&(&lock, &rlock)).unwrap());
    // Both in one shared arena: its descriptor travels once.
    assert_eq!(fds.len(), 1);
    let (lock2, rlock2): (Lock, RLock) =
        mp_os::handle::provide_fds(fds, || postcard::from_bytes(&bytes)).unwrap();
    // The arena is mapped once per process: the copy is the same lock.
    assert!(lock2.ptr_eq(&lock));
    let g = lock2.acquire().unwrap();
    assert!(lock.locked());
    drop(g);
    let _r = rlock.acquire().unwrap();
    assert!(rlock2.is_owned());
}

#[test]
fn handle_serialized_by_proc_path_reattaches_in_child() {
    let lock = Lock::new().unwrap();
    let bytes = postcard::to_allocvec(&lock).unwrap();
    let done = Counters::new(1);
    let child = fork(|| {
        let l: Lock = match postcard::from_bytes(&bytes) {
            Ok(l) => l,
            Err(_) => return 2,
        };
        l.acquire().unwrap().forget();
        done.get(0).store(1, Ordering::SeqCst);
        0
    });
    assert_eq!(child.wait(), 0);
    assert_eq!(done.get(0).load(Ordering::SeqCst), 1);
    assert!(lock.locked());
    lock.release().unwrap();
}

#[test]
fn deserializing_the_wrong_kind_is_an_error() {
    let ev = Event::new().unwrap();
    let bytes = postcard::to_allocvec(&ev).unwrap();
    let r: Result<Lock, _> = postcard::from_bytes(&bytes);
    assert!(r.is_err());
    let _back: Event = postcard::from_bytes(&bytes).unwrap();
    assert!(postcard::from_bytes::<Lock>(&[1, 2, 3]).is_err());
}

#[test]
fn contended_lock_wakes_sleeping_waiter() {
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let c = Counters::new(1);
    let g = lock.acquire().unwrap();
    let child = fork(|| {
        held.set();
        let _g = lock.acquire().unwrap();
        c.get(0).store(1, Ordering::SeqCst);
        0
    });
    held.wait();
    std::thread::sleep(Duration::from_millis(200)); // let it fall asleep
    assert_eq!(c.get(0).load(Ordering::SeqCst), 0);
    drop(g);
    wait_until(|| c.get(0).load(Ordering::SeqCst) == 1);
    assert_eq!(child.wait(), 0);
}
