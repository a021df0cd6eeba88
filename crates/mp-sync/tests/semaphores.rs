//! Semaphore and BoundedSemaphore across processes.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Counters, fork};
use mp_sync::{BoundedSemaphore, Error, SEM_VALUE_MAX, Semaphore};

#[test]
fn semaphore_admits_at_most_three_across_processes() {
    let sem = Semaphore::new(3).unwrap();
    // 0: inside now, 1: most inside at once, 2: entries
    let c = Counters::new(3);
    let work = || {
        for _ in 0..200 {
            let _g = sem.acquire();
            let now = c.get(0).fetch_add(1, Ordering::SeqCst) + 1;
            c.get(1).fetch_max(now, Ordering::SeqCst);
            c.get(2).fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(200));
            c.get(0).fetch_sub(1, Ordering::SeqCst);
        }
    };
    let children: Vec<_> = (0..4)
        .map(|_| {
            fork(|| {
                work();
                0
            })
        })
        .collect();
    work();
    for ch in children {
        assert_eq!(ch.wait(), 0);
    }
    assert_eq!(c.get(2).load(Ordering::SeqCst), 1000);
    let most = c.get(1).load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} inside at once");
    assert_eq!(sem.get_value(), 3);
}

#[test]
fn bounded_semaphore_over_release() {
    let sem = BoundedSemaphore::new(2).unwrap();
    assert!(matches!(sem.release(), Err(Error::ReleasedTooManyTimes)));
    sem.acquire().forget();
    sem.release().unwrap();
    assert!(matches!(sem.release(), Err(Error::ReleasedTooManyTimes)));
    assert_eq!(sem.get_value(), 2);
    assert_eq!(sem.max_value(), 2);
    // over-release from another process
    let child = fork(|| match sem.release() {
        Err(Error::ReleasedTooManyTimes) => 0,
        _ => 1,
    });
    assert_eq!(child.wait(), 0);
    sem.acquire().forget();
    assert!(matches!(sem.release_n(2), Err(Error::ReleasedTooManyTimes)));
    sem.release_n(1).unwrap();
}

#[test]
fn semaphore_limits_and_release_wakes_other_process() {
    assert!(matches!(
        Semaphore::new(SEM_VALUE_MAX + 1),
        Err(Error::InvalidArgument(_))
    ));
    let full = Semaphore::new(SEM_VALUE_MAX).unwrap();
    assert!(matches!(full.release(), Err(Error::InvalidArgument(_))));

    let sem = Semaphore::new(0).unwrap();
    assert!(matches!(sem.try_acquire(), Err(Error::WouldBlock)));
    let child = fork(|| match sem.acquire_timeout(Duration::from_secs(20)) {
        Ok(g) => {
            g.forget();
            0
        }
        Err(_) => 1,
    });
    std::thread::sleep(Duration::from_millis(100));
    sem.release().unwrap();
    assert_eq!(child.wait(), 0);
    assert_eq!(sem.get_value(), 0);
}
