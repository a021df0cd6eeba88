//! The calls of `Pool`: results, ordering, async results, callbacks,
//! inputs, settings and the pool's life cycle.

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_pool::{Callbacks, Error, Pool};

fn double(x: i64) -> i64 {
    x * 2
}

fn add((a, b): (i64, i64)) -> i64 {
    a + b
}

fn pid_of(_: u32) -> u32 {
    std::process::id()
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn fail_on_three(x: i64) -> i64 {
    if x == 3 {
        panic!("three is bad");
    }
    x
}

#[test]
fn map_returns_results_in_order() {
    let pool = Pool::new(2).unwrap();
    let v = pool.map(double, 0..1000).unwrap();
    assert_eq!(v, (0..1000).map(double).collect::<Vec<_>>());
    for cs in [1, 3, 7, 1000, 5000] {
        let v = pool.map_chunked(double, 0..1000, cs).unwrap();
        assert_eq!(
            v,
            (0..1000).map(double).collect::<Vec<_>>(),
            "chunksize {cs}"
        );
    }
    assert_eq!(pool.starmap(add, [(1, 2), (3, 4)]).unwrap(), vec![3, 7]);
    assert_eq!(pool.apply(double, 21).unwrap(), 42);
}

#[test]
fn empty_input() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.map(double, Vec::new()).unwrap(), Vec::<i64>::new());
    assert_eq!(
        pool.map_chunked(double, Vec::new(), 1).unwrap(),
        Vec::<i64>::new()
    );
    assert!(pool.map_results(double, Vec::new()).unwrap().is_empty());
    assert_eq!(pool.imap(double, Vec::new()).unwrap().count(), 0);
    assert_eq!(pool.imap_unordered(double, Vec::new()).unwrap().count(), 0);
    assert_eq!(
        pool.map_async(double, Vec::new()).unwrap().get().unwrap(),
        Vec::<i64>::new()
    );
}

#[test]
fn both_workers_take_part() {
    let pool = Pool::new(2).unwrap();
    let pids: HashSet<u32> = pool
        .map_chunked(pid_of, 0..200, 1)
        .unwrap()
        .into_iter()
        .collect();
    let mine: HashSet<u32> = pool.pids().into_iter().collect();
    assert!(pids.is_subset(&mine), "{pids:?} vs {mine:?}");
    assert_eq!(mine.len(), 2);
    assert!(!pids.contains(&std::process::id()));
}

#[test]
fn panics_fail_the_task_and_the_pool_goes_on() {
    let pool = Pool::new(2).unwrap();
    let before = pool.pids();
    let e = pool.map_chunked(fail_on_three, 0..10, 1).unwrap_err();
    match &e {
        Error::TaskPanicked { message } => assert!(message.contains("three is bad"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
    let r = pool.map_results(fail_on_three, 0..6).unwrap();
    assert_eq!(r.len(), 6);
    for (i, x) in r.iter().enumerate() {
        if i == 3 {
            assert!(matches!(x, Err(Error::TaskPanicked { .. })));
        } else {
            assert_eq!(*x.as_ref().unwrap(), i as i64);
        }
    }
    assert!(matches!(
        pool.apply(fail_on_three, 3),
        Err(Error::TaskPanicked { .. })
    ));
    assert_eq!(pool.map(double, 0..5).unwrap(), vec![0, 2, 4, 6, 8]);
    assert_eq!(pool.pids(), before, "a panic must not cost a worker");
}

#[test]
fn async_results() {
    let pool = Pool::new(2).unwrap();
    let slow = pool.apply_async(nap, 300).unwrap();
    assert!(!slow.ready());
    assert!(matches!(slow.successful(), Err(Error::NotReady)));
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    assert!(!slow.wait_timeout(Duration::from_millis(10)));
    slow.wait();
    assert!(slow.ready());
    assert!(slow.successful().unwrap());
    assert_eq!(slow.get().unwrap(), 300);
    assert!(matches!(slow.get(), Err(Error::ResultTaken)));

    let m = pool.map_async(double, 0..100).unwrap();
    assert_eq!(m.get_timeout(Duration::from_secs(30)).unwrap().len(), 100);

    let bad = pool.apply_async(fail_on_three, 3).unwrap();
    bad.wait();
    assert!(!bad.successful().unwrap());
    assert!(matches!(bad.get(), Err(Error::TaskPanicked { .. })));
}

#[test]
fn callbacks_run_before_ready() {
    let pool = Pool::new(2).unwrap();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    let r = pool
        .map_async_with(
            double,
            0..10,
            Callbacks::new()
                .on_success(move |v: &Vec<i64>| tx.send(format!("ok {}", v.len())).unwrap()),
        )
        .unwrap();
    let e = pool
        .apply_async_with(
            fail_on_three,
            3,
            Callbacks::new()
                .on_success(|_| panic!("must not succeed"))
                .on_error(move |e| tx2.send(format!("err {e}")).unwrap()),
        )
        .unwrap();
    r.wait();
    e.wait();
    let mut got: Vec<String> = rx.try_iter().collect();
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1], "ok 10");
    assert!(
        got[0].starts_with("err ") && got[0].contains("three is bad"),
        "{got:?}"
    );
}

#[test]
fn imap_yields_in_order_and_unordered_as_they_finish() {
    let pool = Pool::new(2).unwrap();
    let v: Vec<i64> = pool
        .imap(double, 0..500)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(v, (0..500).map(double).collect::<Vec<_>>());
    let v: Vec<i64> = pool
        .imap_chunked(double, 0..500, 7)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(v, (0..500).map(double).collect::<Vec<_>>());
    // A slow first item does not hold back the others in imap_unordered.
    let order: Vec<u64> = pool
        .imap_unordered(nap, [400, 1, 1, 1])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(order.len(), 4);
    assert_eq!(*order.last().unwrap(), 400, "{order:?}");
    let mut sorted: Vec<i64> = pool
        .imap_unordered_chunked(double, 0..300, 4)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    sorted.sort();
    assert_eq!(sorted, (0..300).map(double).collect::<Vec<_>>());
}

#[test]
fn imap_streams_its_input() {
    let pool = Pool::new(2).unwrap();
    // An endless input: imap must not try to collect it.
    let first: Vec<i64> = pool
        .imap(double, 0..)
        .unwrap()
        .take(5)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, vec![0, 2, 4, 6, 8]);
    // The input is read a bounded window ahead of the consumer.
    let read = std::cell::Cell::new(0usize);
    let input = (0..1_000_000i64).inspect(|_| read.set(read.get() + 1));
    let mut it = pool.imap(double, input).unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert!(read.get() < 100_000, "read {} items ahead", read.get());
    drop(it);
}

#[test]
fn input_errors() {
    let pool = Pool::new(2).unwrap();
    let input: Vec<Result<i64, String>> =
        vec![Ok(1), Ok(2), Err("record 3 is broken".into()), Ok(4)];
    match pool.try_map(double, input.clone()) {
        Err(Error::Input(e)) => assert_eq!(e.to_string(), "record 3 is broken"),
        other => panic!("unexpected {other:?}"),
    }
    let out: Vec<Result<i64, Error>> = pool.try_imap(double, input).unwrap().collect();
    assert_eq!(out.len(), 3);
    assert_eq!(*out[0].as_ref().unwrap(), 2);
    assert_eq!(*out[1].as_ref().unwrap(), 4);
    assert!(matches!(&out[2], Err(Error::Input(e)) if e.to_string() == "record 3 is broken"));
    // Parsing lines is the natural case.
    let lines = "1\n2\nx\n4";
    let parsed = lines.lines().map(|l| l.parse::<i64>());
    assert!(matches!(pool.try_map(double, parsed), Err(Error::Input(_))));
    let ok = "1\n2".lines().map(|l| l.parse::<i64>());
    assert_eq!(pool.try_map(double, ok).unwrap(), vec![2, 4]);
}

#[test]
fn bad_settings_are_errors() {
    assert!(matches!(Pool::new(0), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        Pool::builder().processes(1).chunksize(0).build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pool::builder().processes(1).max_tasks_per_child(0).build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pool::builder()
            .processes(1)
            .task_timeout(Duration::ZERO)
            .build(),
        Err(Error::InvalidArgument(_))
    ));
    let pool = Pool::new(1).unwrap();
    assert!(matches!(
        pool.map_chunked(double, 0..3, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        pool.imap_chunked(double, 0..3, 0),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn default_processes_is_cpu_count() {
    let pool = Pool::builder().build().unwrap();
    assert_eq!(pool.processes(), mp_proc::cpu_count());
    assert_eq!(pool.pids().len(), mp_proc::cpu_count());
}

#[test]
fn calls_after_close_are_errors() {
    let pool = Pool::new(2).unwrap();
    let pending = pool.apply_async(nap, 200).unwrap();
    assert!(matches!(pool.join(), Err(Error::StillRunning)));
    pool.close();
    assert!(matches!(pool.map(double, 0..3), Err(Error::Closed)));
    assert!(matches!(pool.map(double, Vec::new()), Err(Error::Closed)));
    assert!(matches!(pool.apply(double, 1), Err(Error::Closed)));
    assert!(matches!(pool.apply_async(double, 1), Err(Error::Closed)));
    assert!(matches!(pool.map_async(double, 0..3), Err(Error::Closed)));
    assert!(pool.imap(double, 0..3).is_err());
    assert!(pool.imap_unordered(double, 0..3).is_err());
    assert!(matches!(pool.map_results(double, 0..3), Err(Error::Closed)));
    // Work submitted before close still completes.
    let pids = pool.pids();
    pool.join().unwrap();
    assert_eq!(pending.get().unwrap(), 200);
    assert!(pool.pids().is_empty());
    for pid in pids {
        assert!(!common::alive(pid), "worker {pid} still alive after join");
    }
}

#[test]
fn start_and_teardown_are_quick() {
    // Behaviour, not speed: generous bound.
    let t = Instant::now();
    for _ in 0..5 {
        let pool = Pool::new(2).unwrap();
        pool.close();
        pool.join().unwrap();
    }
    assert!(t.elapsed() < Duration::from_secs(20));
}

mod common;
