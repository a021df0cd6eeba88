use std::mem::size_of;
use std::time::Duration;

use super::*;

#[test]
fn layout_sizes() {
    assert_eq!(size_of::<RawLock>(), 16);
    assert_eq!(size_of::<RawRLock>(), 24);
    assert_eq!(size_of::<RawSemaphore>(), 16);
    assert_eq!(size_of::<RawEvent>(), 16);
    assert_eq!(size_of::<RawCondition>(), 16);
    assert_eq!(size_of::<RawBarrier>(), 320);
}

#[test]
fn handles_are_send_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Lock>();
    check::<RLock>();
    check::<Semaphore>();
    check::<BoundedSemaphore>();
    check::<Condition>();
    check::<Event>();
    check::<Barrier>();
}

#[test]
fn lock_basics() {
    let l = Lock::new().unwrap();
    let g = l.acquire().unwrap();
    assert!(l.locked());
    assert_eq!(l.owner(), Some(mp_os::liveness::current_tid()));
    assert!(matches!(l.try_acquire(), Err(TryAcquireError::WouldBlock)));
    drop(g);
    assert!(!l.locked());
    assert!(matches!(l.release(), Err(Error::NotLocked)));
}

#[test]
fn lock_release_from_other_thread() {
    let l = Lock::new().unwrap();
    l.acquire().unwrap().forget();
    let l2 = l.clone();
    std::thread::spawn(move || l2.release().unwrap())
        .join()
        .unwrap();
    assert!(!l.locked());
}

#[test]
fn guard_after_foreign_release_does_not_unlock_new_holder() {
    let l = Lock::new().unwrap();
    let g = l.acquire().unwrap();
    l.release().unwrap();
    let l2 = l.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let (tx2, rx2) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _g = l2.acquire().unwrap();
        tx.send(()).unwrap();
        rx2.recv().unwrap();
    });
    rx.recv().unwrap();
    drop(g); // must not release the other thread's hold
    assert!(l.locked());
    tx2.send(()).unwrap();
    t.join().unwrap();
}

#[test]
fn rlock_non_owner_release() {
    let l = RLock::new().unwrap();
    let g = l.acquire().unwrap();
    let l2 = l.clone();
    let r = std::thread::spawn(move || l2.release()).join().unwrap();
    assert!(matches!(r, Err(Error::NotOwner)));
    // the owner holds only a guard level: release() refuses too
    assert!(matches!(l.release(), Err(Error::NotOwner)));
    drop(g);
    assert!(matches!(l.release(), Err(Error::NotLocked)));
}

#[test]
fn rlock_threads_exclude() {
    let l = RLock::new().unwrap();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut ts = vec![];
    for _ in 0..2 {
        let l = l.clone();
        let c = counter.clone();
        ts.push(std::thread::spawn(move || {
            for _ in 0..20_000 {
                let _g = l.acquire().unwrap();
                let _g2 = l.acquire().unwrap();
                let v = c.load(std::sync::atomic::Ordering::Relaxed);
                c.store(v + 1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 40_000);
}

#[test]
fn condition_wait_for_with_lock() {
    let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (c2, f2) = (cond.clone(), flag.clone());
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let g = c2.acquire().unwrap();
        f2.store(true, std::sync::atomic::Ordering::Relaxed);
        g.notify_all();
    });
    let mut g = cond.acquire().unwrap();
    g.wait_for(|| flag.load(std::sync::atomic::Ordering::Relaxed))
        .unwrap();
    drop(g);
    t.join().unwrap();
}

#[test]
fn condition_notify_requires_owner() {
    let cond = Condition::new().unwrap();
    assert!(matches!(cond.notify(1), Err(Error::NotOwner)));
    let g = cond.acquire().unwrap();
    cond.notify(1).unwrap();
    drop(g);
}

#[test]
fn condition_rlock_depth_restored() {
    let l = RLock::new().unwrap();
    let cond = Condition::with_lock(l.clone()).unwrap();
    let outer = l.acquire().unwrap();
    let mut g = cond.acquire().unwrap();
    assert_eq!(l.count(), 2);
    assert!(
        !g.wait_timeout(std::time::Duration::from_millis(10))
            .unwrap()
    );
    assert_eq!(l.count(), 2);
    drop(g);
    drop(outer);
    assert!(!l.locked());
}

#[test]
fn barrier_invalid() {
    assert!(matches!(Barrier::new(0), Err(Error::InvalidArgument(_))));
}

#[test]
fn errors_convert() {
    fn f(l: &Lock) -> Result<()> {
        let _g = l.try_acquire()?;
        Ok(())
    }
    let l = Lock::new().unwrap();
    let _g = l.acquire().unwrap();
    assert!(matches!(f(&l), Err(Error::WouldBlock)));
    let d: OwnerDied<u8> = OwnerDied::new(1, 7);
    assert_eq!(format!("{d:?}"), "OwnerDied { dead_tid: 7, .. }");
    assert!(matches!(Error::from(d), Error::OwnerDied { tid: 7 }));
}

/// Writes `token` into the state word of `lock` (offset 4 of the layout),
/// as a holder with that token would have.
fn forge_holder(lock: &RawLock, token: u32) {
    let state = std::ptr::from_ref(lock)
        .cast::<std::sync::atomic::AtomicU32>()
        .wrapping_add(1);
    // SAFETY: RawLock is repr(C) with an AtomicU32 state at offset 4, and
    // `lock` is alive for the whole call.
    unsafe { (*state).store(token, std::sync::atomic::Ordering::SeqCst) };
}

#[test]
fn a_holder_whose_thread_id_was_reused_counts_as_dead() {
    use mp_os::liveness::{TID_BITS, token_tid};
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ttx, trx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        ttx.send(mp_os::liveness::current_token()).unwrap();
        let _ = rx.recv();
    });
    let live = trx.recv().unwrap();
    let lock = RawLock::new();

    // The live thread's own token: it is alive, the lock stays its own.
    forge_holder(&lock, live);
    assert!(matches!(
        lock.acquire_timeout(Duration::from_millis(300)),
        Err(TryAcquireError::Timeout)
    ));

    // Its id with another start time: the holder was a thread that died and
    // whose id the live thread got since.
    let reused = live ^ (1 << TID_BITS);
    forge_holder(&lock, reused);
    match lock.acquire_timeout(Duration::from_secs(20)) {
        Err(TryAcquireError::OwnerDied(d)) => {
            assert_eq!(d.dead_tid(), token_tid(live));
            assert_eq!(lock.owner(), Some(mp_os::liveness::current_tid()));
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    tx.send(()).unwrap();
    t.join().unwrap();
}
