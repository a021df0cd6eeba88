//! `ThreadPool`: the same calls on threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mp_pool::{Callbacks, Error, ThreadPool};

#[test]
fn thread_pool_calls() {
    let pool = ThreadPool::new(2).unwrap();
    let k = 3;
    assert_eq!(
        pool.map(move |x: i32| x * k, 0..5).unwrap(),
        vec![0, 3, 6, 9, 12]
    );
    assert_eq!(
        pool.map_chunked(|x: i32| x + 1, 0..5, 1).unwrap(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        pool.starmap(|(a, b): (i32, i32)| a * b, [(2, 3), (4, 5)])
            .unwrap(),
        vec![6, 20]
    );
    assert_eq!(
        pool.apply(|s: String| s.len(), "four".to_string()).unwrap(),
        4
    );
    assert!(pool.map(|x: i32| x, Vec::new()).unwrap().is_empty());
    let v: Vec<i32> = pool
        .imap(|x: i32| x * x, 0..100)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(v, (0..100).map(|x| x * x).collect::<Vec<_>>());
    let first: Vec<u64> = pool
        .imap(|x: u64| x, 0..)
        .unwrap()
        .take(3)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, vec![0, 1, 2]);
    let r = pool
        .map_results(|x: i32| if x == 1 { panic!("one!") } else { x }, 0..3)
        .unwrap();
    assert!(matches!(&r[1], Err(Error::TaskPanicked { message }) if message == "one!"));
    assert_eq!(*r[2].as_ref().unwrap(), 2);
    let input = vec![Ok(1), Err("bad"), Ok(3)];
    assert!(matches!(
        pool.try_map(|x: i32| x, input.clone()),
        Err(Error::Input(_))
    ));
    let out: Vec<_> = pool.try_imap(|x: i32| x, input).unwrap().collect();
    assert_eq!(out.len(), 2);
    // The closure forms of the newer calls.
    let k = 10;
    let r = pool
        .starmap_async(move |(a, b): (i32, i32)| a * b + k, [(2, 3), (4, 5)])
        .unwrap();
    assert_eq!(r.get_cloned().unwrap(), [16, 30]);
    assert_eq!(r.get().unwrap(), [16, 30]);
    let r = pool
        .map_async_chunked(move |x: i32| x + k, 0..50, 7)
        .unwrap();
    assert_eq!(r.get().unwrap(), (10..60).collect::<Vec<_>>());
    assert!(matches!(
        pool.map_async_chunked(|x: i32| x, 0..3, 0),
        Err(Error::InvalidArgument(_))
    ));
    let mut v: Vec<i32> = pool
        .imap_unordered_chunked(move |x: i32| x - k, 0..20, 3)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    v.sort();
    assert_eq!(v, (-10..10).collect::<Vec<_>>());
}

#[test]
fn thread_pool_async_and_lifecycle() {
    let pool = ThreadPool::new(2).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let r = pool
        .map_async_with(
            |x: u64| x + 1,
            0..10,
            Callbacks::new().on_success(move |v: &Vec<u64>| {
                c.fetch_add(v.len(), Ordering::SeqCst);
            }),
        )
        .unwrap();
    assert_eq!(r.get().unwrap().len(), 10);
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    let slow = pool
        .apply_async(|ms: u64| std::thread::sleep(Duration::from_millis(ms)), 100)
        .unwrap();
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(1)),
        Err(Error::Timeout)
    ));
    assert!(matches!(pool.join(), Err(Error::StillRunning)));
    pool.close();
    assert!(matches!(pool.map(|x: i32| x, 0..2), Err(Error::Closed)));
    pool.join().unwrap();
    assert!(slow.ready());
    assert!(matches!(ThreadPool::new(0), Err(Error::InvalidArgument(_))));
}

#[test]
fn thread_pool_terminate_fails_unstarted_tasks() {
    let pool = ThreadPool::new(1).unwrap();
    let r = pool
        .map_async(
            |ms: u64| std::thread::sleep(Duration::from_millis(ms)),
            vec![20u64; 200],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    pool.terminate();
    assert!(matches!(r.get(), Err(Error::Terminated)));
}
