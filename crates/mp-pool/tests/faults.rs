//! Worker deaths, timeouts, retries, worker replacement, initializers,
//! terminate and drop: the pool never hangs and never leaks a worker.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mp_pool::{Error, Pool};

mod common;

/// Kills its own worker with SIGKILL on item 13.
fn die_on_13(x: u32) -> u32 {
    if x == 13 {
        // SAFETY: raising a signal in this process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(1));
    x + 1
}

fn abort_on_5(x: u32) -> u32 {
    if x == 5 {
        std::process::abort();
    }
    x
}

fn exit_on_2(x: u32) -> u32 {
    if x == 2 {
        std::process::exit(7);
    }
    x
}

fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

fn pid_of(_: u32) -> u32 {
    std::process::id()
}

#[test]
fn a_sigkilled_worker_fails_only_its_task_20_times_in_a_row() {
    for trial in 0..20 {
        let pool = Pool::new(2).unwrap();
        let t = Instant::now();
        // Chunks of one item (imap's default): only item 13 is lost. (With
        // bigger chunks, the whole chunk holding 13 fails.)
        let r: Vec<_> = pool.imap(die_on_13, 0..40).unwrap().collect();
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "trial {trial}: {:?}",
            t.elapsed()
        );
        assert_eq!(r.len(), 40);
        for (i, x) in r.iter().enumerate() {
            if i == 13 {
                match x {
                    Err(Error::WorkerDied { exitcode, .. }) => {
                        assert_eq!(*exitcode, -libc::SIGKILL)
                    }
                    other => panic!("trial {trial}: item 13 gave {other:?}"),
                }
            } else {
                assert_eq!(*x.as_ref().unwrap(), i as u32 + 1, "trial {trial} item {i}");
            }
        }
        // `map` raises the same error.
        match pool.map_chunked(die_on_13, 10..16, 1) {
            Err(e @ Error::WorkerDied { .. }) => {
                assert!(e.to_string().contains("SIGKILL"), "{e}")
            }
            other => panic!("trial {trial}: {other:?}"),
        }
        // The worker was replaced: the pool keeps its size and works.
        assert_eq!(pool.pids().len(), 2);
        assert_eq!(pool.map(die_on_13, 0..5).unwrap(), vec![1, 2, 3, 4, 5]);
    }
}

#[test]
fn a_worker_killed_from_outside_mid_map() {
    let pool = Pool::new(2).unwrap();
    let victim = pool.pids()[0];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        // SAFETY: signalling a worker process of this test.
        unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    });
    let t = Instant::now();
    let r: Vec<_> = pool.imap_unordered(nap, vec![20u64; 40]).unwrap().collect();
    killer.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(30));
    let failed: Vec<_> = r.iter().filter(|x| x.is_err()).collect();
    assert!(failed.len() <= 1, "{failed:?}");
    for e in failed {
        assert!(
            matches!(e, Err(Error::WorkerDied { pid, exitcode: -9 }) if *pid == victim),
            "{e:?}"
        );
    }
    assert!(!pool.pids().contains(&victim));
    assert!(!common::alive(victim));
}

#[test]
fn abort_and_exit_are_reported() {
    let pool = Pool::new(2).unwrap();
    let r: Vec<_> = pool.imap(abort_on_5, 0..8).unwrap().collect();
    assert!(
        matches!(r[5], Err(Error::WorkerDied { exitcode, .. }) if exitcode == -libc::SIGABRT),
        "{:?}",
        r[5]
    );
    assert_eq!(r.iter().filter(|x| x.is_ok()).count(), 7);
    let r: Vec<_> = pool.imap(exit_on_2, 0..4).unwrap().collect();
    assert!(
        matches!(r[2], Err(Error::WorkerDied { exitcode: 7, .. })),
        "{:?}",
        r[2]
    );
    assert!(matches!(
        pool.apply(exit_on_2, 2),
        Err(Error::WorkerDied { exitcode: 7, .. })
    ));
    assert_eq!(pool.apply(exit_on_2, 3).unwrap(), 3);
}

static MARK: OnceLock<String> = OnceLock::new();

/// Dies the first time (no marker file yet), succeeds when retried.
fn die_once(path: String) -> u32 {
    if std::fs::metadata(&path).is_err() {
        std::fs::write(&path, b"x").unwrap();
        // SAFETY: raising a signal in this process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    42
}

#[test]
fn retries_run_the_task_again() {
    let path = std::env::temp_dir().join(format!("mp-pool-retry-{}", std::process::id()));
    let path = path.to_string_lossy().into_owned();
    let _ = MARK.set(path.clone());
    let _ = std::fs::remove_file(&path);
    let pool = Pool::builder().processes(2).retries(1).build().unwrap();
    assert_eq!(pool.apply(die_once, path.clone()).unwrap(), 42);
    let _ = std::fs::remove_file(&path);
    // Without retries it fails.
    let pool = Pool::builder().processes(1).build().unwrap();
    assert!(matches!(
        pool.apply(die_once, path.clone()),
        Err(Error::WorkerDied { .. })
    ));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_task_over_its_timeout_is_killed_and_replaced() {
    let pool = Pool::builder()
        .processes(2)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let before = pool.pids();
    let t = Instant::now();
    let r: Vec<_> = pool.imap(nap, [10, 60_000, 10, 10]).unwrap().collect();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(matches!(r[1], Err(Error::TaskTimeout { .. })), "{:?}", r[1]);
    assert!(r[1].as_ref().unwrap_err().to_string().contains("300ms"));
    assert!(r[0].is_ok() && r[2].is_ok() && r[3].is_ok());
    let after = pool.pids();
    assert_eq!(after.len(), 2);
    assert_ne!(before, after);
    assert_eq!(pool.map(nap, [1, 1]).unwrap().len(), 2);
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let first = pool.pids();
    let pids = pool.map_chunked(pid_of, 0..20, 1).unwrap();
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    // 20 tasks, at most 2 per worker: at least 10 different workers.
    assert!(distinct.len() >= 10, "{} workers: {pids:?}", distinct.len());
    for p in &distinct {
        assert!(
            pids.iter().filter(|x| *x == p).count() <= 2,
            "{p} ran more than 2"
        );
    }
    assert_eq!(pool.pids().len(), 2);
    assert_ne!(pool.pids(), first);
    let olds: Vec<u32> = distinct
        .iter()
        .copied()
        .filter(|p| !pool.pids().contains(p))
        .collect();
    assert!(
        common::all_gone(&olds, Duration::from_secs(10)),
        "retired workers linger"
    );
}

static STARTS: OnceLock<u32> = OnceLock::new();

fn init_worker(tag: u32) {
    // Runs once per worker: a second call would find the cell set.
    STARTS
        .set(tag)
        .expect("initializer ran twice in one worker");
    println!("Starting {}", std::process::id());
}

fn init_state(_: u32) -> (u32, Option<u32>) {
    (std::process::id(), STARTS.get().copied())
}

fn init_panics(_: ()) {
    panic!("cannot open the database");
}

#[test]
fn initializer_runs_once_in_every_worker() {
    let pool = Pool::builder()
        .processes(2)
        .initializer(init_worker, 77)
        .build()
        .unwrap();
    let r = pool.map_chunked(init_state, 0..50, 1).unwrap();
    for (pid, tag) in &r {
        assert_eq!(*tag, Some(77), "worker {pid} did not run the initializer");
    }
    // The test process itself never ran it.
    assert!(STARTS.get().is_none());
    // With worker replacement every new worker runs it too.
    let pool = Pool::builder()
        .processes(2)
        .initializer(init_worker, 5)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let r = pool.map_chunked(init_state, 0..12, 1).unwrap();
    assert!(r.iter().all(|(_, t)| *t == Some(5)));
    assert!(r.iter().map(|(p, _)| p).collect::<HashSet<_>>().len() >= 6);
}

#[test]
fn a_failing_initializer_breaks_the_pool_without_hanging() {
    let pool = Pool::builder()
        .processes(2)
        .initializer(init_panics, ())
        .build()
        .unwrap();
    let t = Instant::now();
    let e = pool.map(pid_of, 0..10).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(
        matches!(&e, Error::Initializer { message } if message.contains("cannot open the database")),
        "{e}"
    );
    assert!(matches!(
        pool.apply(pid_of, 1),
        Err(Error::Initializer { .. })
    ));
}

#[test]
fn terminate_with_10k_queued_tasks_is_prompt() {
    let pool = Pool::new(2).unwrap();
    let pids = pool.pids();
    let r = pool.map_async(nap, vec![50u64; 10_000]).unwrap();
    let many: Vec<_> = (0..200)
        .map(|_| pool.apply_async(nap, 50).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    pool.terminate();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "terminate took {took:?}");
    assert!(matches!(
        r.get_timeout(Duration::from_secs(5)),
        Err(Error::Terminated)
    ));
    for a in many {
        assert!(matches!(
            a.get_timeout(Duration::from_secs(5)),
            Err(Error::Terminated)
        ));
    }
    assert!(common::all_gone(&pids, Duration::from_secs(5)));
    assert!(matches!(pool.map(pid_of, 0..2), Err(Error::Closed)));
    pool.join().unwrap();
}

#[test]
fn a_pool_dropped_without_close_leaves_no_worker() {
    let pids;
    let pending;
    {
        let pool = Pool::new(2).unwrap();
        pids = pool.pids();
        assert_eq!(pids.len(), 2);
        assert!(pids.iter().all(|&p| common::alive(p)));
        pending = pool.apply_async(nap, 60_000).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // dropped here, busy
    }
    assert!(matches!(
        pending.get_timeout(Duration::from_secs(5)),
        Err(Error::Terminated)
    ));
    assert!(
        common::all_gone(&pids, Duration::from_secs(5)),
        "workers {pids:?} survived the drop"
    );
    // No dispatcher thread left behind either (it is joined by drop):
    // nothing to check portably, but a second pool works.
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.apply(pid_of, 0).unwrap(), pool.pids()[0]);
}

#[test]
fn a_closed_pool_dropped_finishes_its_work() {
    let pids;
    let r;
    {
        let pool = Pool::new(2).unwrap();
        pids = pool.pids();
        r = pool.map_async(nap, vec![20u64; 6]).unwrap();
        pool.close();
    }
    assert_eq!(r.get_timeout(Duration::from_secs(10)).unwrap().len(), 6);
    assert!(common::all_gone(&pids, Duration::from_secs(5)));
}
