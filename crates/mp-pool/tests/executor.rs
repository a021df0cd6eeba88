//! `ProcessPoolExecutor`, `ThreadPoolExecutor` and their futures: submit,
//! map, timeouts, cancellation, shutdown, `as_completed`, `wait`, worker
//! deaths (with and without breaking the executor), done callbacks,
//! awaiting in tokio, and many submitting threads.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_pool::{
    FutureError, Pool, ProcessPoolExecutor, ReturnWhen, ThreadPoolExecutor, as_completed, wait,
};

mod common;

fn square(x: u64) -> u64 {
    x * x
}

/// Sleeps `ms` milliseconds, returns `ms`.
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn abort_on_13(x: u64) -> u64 {
    if x == 13 {
        std::process::abort();
    }
    std::thread::sleep(Duration::from_millis(2));
    x
}

/// Panics after `ms` milliseconds.
fn fail_after(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    panic!("failed after {ms} ms");
}

/// Creates the file `path` (proof that the call ran).
fn touch(path: String) {
    std::fs::write(path, b"ran").unwrap();
}

fn wait_until(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn submit_and_result() {
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let futs: Vec<_> = (0..20).map(|x| ex.submit(square, x).unwrap()).collect();
    for (x, f) in futs.iter().enumerate() {
        assert_eq!(f.result().unwrap(), (x * x) as u64);
        assert!(f.done() && !f.running() && !f.cancelled());
        assert!(f.exception().is_none());
        assert!(matches!(f.result(), Err(FutureError::ResultTaken)));
    }
    let bad = ex.submit(fail_after, 0).unwrap();
    match bad.result() {
        Err(FutureError::TaskPanicked { message }) => {
            assert!(message.contains("failed after 0 ms"))
        }
        other => panic!("{other:?}"),
    }
    // A failure is returned to every caller.
    assert!(matches!(
        bad.result(),
        Err(FutureError::TaskPanicked { .. })
    ));
    assert!(matches!(
        bad.exception(),
        Some(FutureError::TaskPanicked { .. })
    ));
}

#[test]
fn map_yields_in_order_with_chunksize() {
    let ex = ProcessPoolExecutor::new(3).unwrap();
    for chunksize in [1, 7, 1000] {
        let out: Vec<u64> = ex
            .map_with(square, 0..500u64, chunksize, None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out, (0..500u64).map(|x| x * x).collect::<Vec<_>>());
    }
    // Every item has its own result: a panicking item does not hide the others.
    fn check(x: u64) -> u64 {
        assert!(x != 5, "five");
        x
    }
    let out: Vec<_> = ex.map_with(check, 0..10u64, 3, None).unwrap().collect();
    assert_eq!(out.len(), 10);
    for (i, r) in out.iter().enumerate() {
        if i == 5 {
            assert!(matches!(r, Err(FutureError::TaskPanicked { .. })));
        } else {
            assert_eq!(*r.as_ref().unwrap(), i as u64);
        }
    }
    assert!(matches!(
        ex.map_with(square, 0..3, 0, None),
        Err(FutureError::Pool(_))
    ));

    let tex = ThreadPoolExecutor::new(3).unwrap();
    let out: Vec<u64> = tex
        .map_with(|x: u64| x + 1, 0..300u64, 11, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, (1..301u64).collect::<Vec<_>>());
}

#[test]
fn result_timeout_and_map_timeout() {
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let f = ex.submit(nap, 600).unwrap();
    assert!(matches!(
        f.result_timeout(Duration::from_millis(20)),
        Err(FutureError::Timeout)
    ));
    assert!(!f.done());
    assert_eq!(f.result_timeout(Duration::from_secs(60)).unwrap(), 600);

    // map: the deadline runs from the call; a late chunk ends the iterator
    // with one Timeout, and the chunks that had not started are cancelled.
    let t = Instant::now();
    let mut it = ex
        .map_with(
            nap,
            [10, 3000, 3000, 10, 10, 10],
            1,
            Some(Duration::from_millis(500)),
        )
        .unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 10);
    assert!(matches!(it.next(), Some(Err(FutureError::Timeout))));
    assert!(it.next().is_none());
    assert!(
        t.elapsed() < Duration::from_millis(2900),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn cancel_succeeds_before_start_and_fails_after() {
    let dir = std::env::temp_dir().join(format!("mp-pool-exec-cancel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("ran");
    let _ = std::fs::remove_file(&marker);

    let ex = ProcessPoolExecutor::new(1).unwrap();
    let busy = ex.submit(nap, 500).unwrap();
    wait_until("the first call runs", Duration::from_secs(30), || {
        busy.running()
    });
    assert!(!busy.cancel(), "a running call cannot be cancelled");
    assert!(!busy.cancelled());
    // The only worker is busy: this one waits in the queue.
    let queued = ex
        .submit(touch, marker.to_string_lossy().into_owned())
        .unwrap();
    assert!(!queued.running() && !queued.done());
    assert!(queued.cancel());
    assert!(queued.cancel(), "cancelling twice is still true");
    assert!(queued.cancelled() && queued.done() && !queued.running());
    assert!(matches!(queued.result(), Err(FutureError::Cancelled)));
    assert_eq!(busy.result().unwrap(), 500);
    assert!(!busy.cancel(), "a finished call cannot be cancelled");
    // Later calls run; the cancelled one never did.
    assert_eq!(ex.submit(square, 3).unwrap().result().unwrap(), 9);
    ex.shutdown(true, false);
    assert!(!marker.exists(), "the cancelled call ran");
    std::fs::remove_dir_all(&dir).unwrap();

    // The same on threads.
    let ran = Arc::new(AtomicUsize::new(0));
    let tex = ThreadPoolExecutor::new(1).unwrap();
    let busy = tex.submit(nap, 300).unwrap();
    wait_until("the thread call runs", Duration::from_secs(30), || {
        busy.running()
    });
    assert!(!busy.cancel());
    let r = ran.clone();
    let queued = tex
        .submit(move |_: ()| r.fetch_add(1, Ordering::SeqCst), ())
        .unwrap();
    assert!(queued.cancel());
    tex.shutdown(true, false);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(busy.result().unwrap(), 300);
}

#[test]
fn shutdown_with_cancel_futures_cancels_the_queued_calls() {
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let first = ex.submit(nap, 400).unwrap();
    wait_until("the first call runs", Duration::from_secs(30), || {
        first.running()
    });
    let rest: Vec<_> = (0..10).map(|x| ex.submit(square, x).unwrap()).collect();
    let t = Instant::now();
    ex.shutdown(true, true);
    assert!(t.elapsed() < Duration::from_secs(30));
    assert_eq!(first.result().unwrap(), 400, "the running call finishes");
    for f in &rest {
        assert!(f.cancelled(), "{f:?}");
        assert!(matches!(f.result(), Err(FutureError::Cancelled)));
    }
    assert!(matches!(ex.submit(square, 1), Err(FutureError::ShutDown)));
    assert!(ex.pids().is_empty(), "the workers exited");

    // Without cancel_futures, shutdown(wait) runs everything first.
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let futs: Vec<_> = (0..10).map(|x| ex.submit(nap, x).unwrap()).collect();
    ex.shutdown(false, false);
    drop(ex); // waits
    for (x, f) in futs.iter().enumerate() {
        assert!(f.done());
        assert_eq!(f.result().unwrap(), x as u64);
    }
}

#[test]
fn as_completed_yields_in_completion_order() {
    let ex = ProcessPoolExecutor::new(4).unwrap();
    let sleeps = [1600u64, 50, 900, 400];
    let futs: Vec<_> = sleeps
        .iter()
        .map(|&ms| ex.submit(nap, ms).unwrap())
        .collect();
    let order: Vec<usize> = as_completed(&futs, None)
        .map(|r| {
            let (i, f) = r.unwrap();
            assert!(f.done());
            assert_eq!(f.result().unwrap(), sleeps[i]);
            i
        })
        .collect();
    assert_eq!(order, vec![1, 3, 2, 0]);
    // Done futures come at once.
    let again: Vec<usize> = as_completed(&futs, Some(Duration::ZERO))
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(again.len(), 4);

    // A deadline: one Timeout item, then the end.
    let futs = vec![ex.submit(nap, 20).unwrap(), ex.submit(nap, 5000).unwrap()];
    let t = Instant::now();
    let mut it = as_completed(&futs, Some(Duration::from_millis(800)));
    assert_eq!(it.next().unwrap().unwrap().0, 0);
    assert!(matches!(it.next(), Some(Err(FutureError::Timeout))));
    assert!(it.next().is_none());
    assert!(t.elapsed() < Duration::from_millis(4500));
    drop(it);
    assert_eq!(
        futs[1].result().unwrap(),
        5000,
        "a timeout leaves the call running"
    );
}

#[test]
fn wait_in_its_three_modes() {
    let ex = ProcessPoolExecutor::new(3).unwrap();

    let futs = vec![ex.submit(nap, 30).unwrap(), ex.submit(nap, 3000).unwrap()];
    let r = wait(&futs, None, ReturnWhen::FirstCompleted);
    assert_eq!((r.done, r.not_done), (vec![0], vec![1]));

    // A timeout is not an error: the not-done list says what is left.
    let r = wait(
        &futs[1..],
        Some(Duration::from_millis(20)),
        ReturnWhen::AllCompleted,
    );
    assert_eq!((r.done, r.not_done), (vec![], vec![0]));

    let futs = vec![
        ex.submit(nap, 3000).unwrap(),
        ex.submit(fail_after, 100).unwrap(),
        ex.submit(nap, 10).unwrap(),
    ];
    let r = wait(&futs, None, ReturnWhen::FirstException);
    assert!(r.done.contains(&1), "{r:?}");
    assert!(r.not_done.contains(&0), "{r:?}");
    assert!(futs[1].exception().is_some());

    // No failure: FirstException waits for all.
    let futs = vec![ex.submit(nap, 200).unwrap(), ex.submit(nap, 10).unwrap()];
    let r = wait(&futs, None, ReturnWhen::FirstException);
    assert_eq!((r.done, r.not_done), (vec![0, 1], vec![]));

    let futs: Vec<_> = [300, 10, 150]
        .iter()
        .map(|&ms| ex.submit(nap, ms).unwrap())
        .collect();
    let r = wait(&futs, None, ReturnWhen::AllCompleted);
    assert_eq!((r.done, r.not_done), (vec![0, 1, 2], vec![]));
    assert!(futs.iter().all(|f| f.done()));
}

#[test]
fn a_killed_worker_fails_only_its_future() {
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let first_pids = ex.pids();
    let futs: Vec<_> = (0..30)
        .map(|x| ex.submit(abort_on_13, x).unwrap())
        .collect();
    for (x, f) in futs.iter().enumerate() {
        match f.result() {
            Ok(v) => assert_eq!(v, x as u64),
            Err(FutureError::WorkerDied { exitcode, .. }) => {
                assert_eq!(x, 13);
                assert_eq!(exitcode, -libc::SIGABRT);
            }
            Err(e) => panic!("item {x}: {e}"),
        }
    }
    assert!(matches!(
        futs[13].result(),
        Err(FutureError::WorkerDied { .. })
    ));
    // The executor goes on, with a replacement worker.
    assert_eq!(ex.submit(square, 7).unwrap().result().unwrap(), 49);
    assert_eq!(ex.pids().len(), 2);
    let mut all = first_pids;
    all.extend(ex.pids());
    drop(ex);
    assert!(
        common::all_gone(&all, Duration::from_secs(10)),
        "a worker was left behind"
    );
}

#[test]
fn break_on_worker_death_breaks_the_executor() {
    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .break_on_worker_death(true)
        .build()
        .unwrap();
    let pids = ex.pids();
    // Both workers nap first; the fatal call runs after one of them; the
    // long naps behind it (one may have started) are failed by the break.
    let warm: Vec<_> = (0..2).map(|_| ex.submit(nap, 800).unwrap()).collect();
    let dead = ex.submit(abort_on_13, 13).unwrap();
    let slow: Vec<_> = (0..4).map(|_| ex.submit(nap, 20_000).unwrap()).collect();
    match dead.result() {
        Err(FutureError::BrokenPool { reason }) => assert!(reason.contains("died"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Refused as soon as a future was seen failing.
    assert!(matches!(
        ex.submit(square, 1),
        Err(FutureError::BrokenPool { .. })
    ));
    for f in &slow {
        assert!(
            matches!(f.result(), Err(FutureError::BrokenPool { .. })),
            "{f:?}"
        );
    }
    for f in &warm {
        match f.result() {
            Ok(800) | Err(FutureError::BrokenPool { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        ex.submit(square, 1),
        Err(FutureError::BrokenPool { .. })
    ));
    assert!(matches!(
        ex.map(square, [1, 2]),
        Err(FutureError::BrokenPool { .. })
    ));
    drop(ex);
    assert!(common::all_gone(&pids, Duration::from_secs(10)));
}

fn failing_init(_: ()) {
    panic!("no database");
}

#[test]
fn a_failing_initializer_breaks_the_executor() {
    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(failing_init, ())
        .build()
        .unwrap();
    let f = ex.submit(square, 2).unwrap();
    match f.result() {
        Err(FutureError::BrokenPool { reason }) => {
            assert!(reason.contains("no database"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    wait_until("the executor refuses work", Duration::from_secs(30), || {
        matches!(ex.submit(square, 1), Err(FutureError::BrokenPool { .. }))
    });
}

#[test]
fn done_callbacks_run_once_also_when_added_late() {
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let f = ex.submit(nap, 200).unwrap();
    let c = calls.clone();
    f.add_done_callback(move |f| {
        assert!(f.done());
        c.fetch_add(1, Ordering::SeqCst);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(f.result().unwrap(), 200);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Added after completion: runs now, on this thread.
    let c = calls.clone();
    let here = std::thread::current().id();
    f.add_done_callback(move |_| {
        assert_eq!(std::thread::current().id(), here);
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // A cancelled future's callbacks run too; a panicking callback harms
    // nothing.
    let busy = ex.submit(nap, 300).unwrap();
    let queued = ex.submit(square, 2).unwrap();
    let c = calls.clone();
    queued.add_done_callback(move |f| {
        assert!(f.cancelled());
        c.fetch_add(1, Ordering::SeqCst);
    });
    busy.add_done_callback(|_| panic!("a callback that panics"));
    assert!(queued.cancel());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(busy.result().unwrap(), 300);
    assert_eq!(ex.submit(square, 5).unwrap().result().unwrap(), 25);
}

#[test]
fn futures_are_awaited_in_tokio_without_blocking_the_runtime() {
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let tex = ThreadPoolExecutor::new(2).unwrap();
    let pool = Pool::new(1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let body = async {
        // A ticker on the same (only) runtime thread: it advances only if
        // awaiting does not block the thread.
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.fetch_add(1, Ordering::SeqCst);
            }
        });
        let futs: Vec<_> = [400u64, 100, 300]
            .iter()
            .map(|&ms| ex.submit(nap, ms).unwrap())
            .collect();
        let mut got = Vec::new();
        for f in futs {
            got.push(f.await.unwrap());
        }
        assert_eq!(got, vec![400, 100, 300]);
        let sq = ex.submit(square, 9).unwrap().await.unwrap();
        assert_eq!(sq, 81);
        let t = tex.submit(|x: u64| x + 1, 1).unwrap().await.unwrap();
        assert_eq!(t, 2);
        let bad = ex.submit(fail_after, 10).unwrap().await;
        assert!(matches!(bad, Err(FutureError::TaskPanicked { .. })));
        // The Pool's AsyncResult too.
        let r = pool.apply_async(nap, 150).unwrap().await.unwrap();
        assert_eq!(r, 150);
        let v = pool.map_async(square, 0..4u64).unwrap().await.unwrap();
        assert_eq!(v, vec![0, 1, 4, 9]);
        ticker.abort();
    };
    // A lost wake-up fails the test instead of hanging it.
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), body)
            .await
            .expect("an awaited future was never woken")
    });
    assert!(
        ticks.load(Ordering::SeqCst) >= 10,
        "the runtime thread was blocked: {} ticks",
        ticks.load(Ordering::SeqCst)
    );
}

#[test]
fn five_thousand_submits_from_four_threads_complete_exactly_once() {
    for round in 0..3 {
        let ex = ProcessPoolExecutor::new(2).unwrap();
        let futs: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4u64)
                .map(|t| {
                    let ex = &ex;
                    s.spawn(move || {
                        (0..1250u64)
                            .map(|i| ex.submit(square, t * 1250 + i).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(futs.len(), 5000);
        let mut seen = HashSet::new();
        let mut values = HashSet::new();
        for r in as_completed(&futs, Some(Duration::from_secs(120))) {
            let (i, f) = r.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(seen.insert(i), "round {round}: index {i} twice");
            assert!(values.insert(f.result().unwrap()));
        }
        assert_eq!(seen.len(), 5000);
        assert_eq!(values, (0..5000u64).map(|x| x * x).collect::<HashSet<_>>());

        let tex = ThreadPoolExecutor::new(3).unwrap();
        let futs: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4u64)
                .map(|t| {
                    let tex = &tex;
                    s.spawn(move || {
                        (0..1250u64)
                            .map(|i| tex.submit(|x: u64| x * 2, t * 1250 + i).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let got: HashSet<u64> = as_completed(&futs, Some(Duration::from_secs(120)))
            .map(|r| r.unwrap().1.result().unwrap())
            .collect();
        assert_eq!(got, (0..5000u64).map(|x| x * 2).collect::<HashSet<_>>());
    }
}
