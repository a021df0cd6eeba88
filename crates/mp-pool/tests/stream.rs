//! Streaming calls (`imap`, `imap_unordered`) at chunk size 1 over inputs
//! several windows long, many times in a row: every result comes out, and
//! the stream never stalls (a watchdog fails the test instead of hanging).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use mp_pool::{Pool, ThreadPool};

/// Items per stream: several windows of chunks (a window is 1024 chunks).
const ITEMS: u64 = 5000;
/// Streams in a row.
const RUNS: usize = 25;
/// A stream making no progress for this long is taken as a stall. A
/// correct run takes well under a second; the machine may be busy.
const STALL: Duration = Duration::from_secs(60);

fn inc(x: u64) -> u64 {
    x + 1
}

/// Runs `body(run)` for `runs` runs on a thread; fails if one run makes no
/// progress for `STALL` (the thread is left behind, the test fails).
fn watchdog(what: &'static str, runs: usize, body: impl Fn(usize) + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        for run in 0..runs {
            body(run);
            if tx.send(run).is_err() {
                return;
            }
        }
    });
    for run in 0..runs {
        match rx.recv_timeout(STALL) {
            Ok(r) => assert_eq!(r, run),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{what}: run {run} of {runs} stalled (no result for {STALL:?})")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break, // it panicked
        }
    }
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

/// Reads a whole `imap` (ordered) and checks it.
fn check_imap(pool: &Pool, run: usize) {
    let mut n = 0u64;
    for r in pool.imap(inc, 0..ITEMS).unwrap() {
        assert_eq!(r.unwrap(), n + 1, "run {run}: item {n}");
        n += 1;
    }
    assert_eq!(n, ITEMS, "run {run}");
}

/// Reads a whole `imap_unordered` and checks that every item came once.
fn check_imap_unordered(pool: &Pool, run: usize) {
    let mut seen = vec![false; ITEMS as usize];
    let mut n = 0;
    for r in pool.imap_unordered(inc, 0..ITEMS).unwrap() {
        let v = r.unwrap() as usize;
        assert!((1..=ITEMS as usize).contains(&v), "run {run}: {v}");
        assert!(!seen[v - 1], "run {run}: {v} twice");
        seen[v - 1] = true;
        n += 1;
    }
    assert_eq!(n, ITEMS as usize, "run {run}");
}

#[test]
fn imap_chunk_size_1_never_stalls() {
    watchdog("imap", RUNS, |run| {
        let pool = Pool::new(2).unwrap();
        check_imap(&pool, run);
    });
}

#[test]
fn imap_unordered_chunk_size_1_never_stalls() {
    watchdog("imap_unordered", RUNS, |run| {
        let pool = Pool::new(2).unwrap();
        check_imap_unordered(&pool, run);
    });
}

/// 10,000 `apply_async` calls from 4 threads, then streams; and streams
/// while 4 threads keep submitting `apply_async` calls.
#[test]
fn imap_with_apply_async_from_threads_never_stalls() {
    watchdog("imap after and during apply_async", RUNS / 5, |run| {
        let pool = Pool::new(2).unwrap();
        let applies = |pool: &Pool| {
            thread::scope(|s| {
                for t in 0..4u64 {
                    s.spawn(move || {
                        let rs: Vec<_> = (0..2500u64)
                            .map(|i| pool.apply_async(inc, t * 10_000 + i).unwrap())
                            .collect();
                        for (i, r) in rs.into_iter().enumerate() {
                            assert_eq!(r.get().unwrap(), t * 10_000 + i as u64 + 1);
                        }
                    });
                }
            })
        };
        applies(&pool);
        for _ in 0..3 {
            check_imap(&pool, run);
            check_imap_unordered(&pool, run);
        }
        thread::scope(|s| {
            s.spawn(|| applies(&pool));
            for _ in 0..3 {
                check_imap(&pool, run);
                check_imap_unordered(&pool, run);
            }
        });
    });
}

/// The thread pool streams through the same window logic.
#[test]
fn thread_pool_imap_never_stalls() {
    watchdog("ThreadPool::imap", RUNS, |run| {
        let pool = ThreadPool::new(2).unwrap();
        let mut n = 0u64;
        for r in pool.imap(inc, 0..ITEMS).unwrap() {
            assert_eq!(r.unwrap(), n + 1, "run {run}: item {n}");
            n += 1;
        }
        assert_eq!(n, ITEMS);
        let mut m = 0;
        for r in pool.imap_unordered(inc, 0..ITEMS).unwrap() {
            r.unwrap();
            m += 1;
        }
        assert_eq!(m, ITEMS);
    });
}
