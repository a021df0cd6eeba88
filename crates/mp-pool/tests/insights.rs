//! `Pool::insights`: counts per worker always, times when asked for, and
//! workers that have left the pool still listed.

use std::time::{Duration, Instant};

use mp_pool::Pool;

fn warm_up(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn double(x: u64) -> u64 {
    x * 2
}

fn big(n: usize) -> Vec<u8> {
    vec![7; n]
}

#[test]
fn insights_count_every_task_and_time_each_phase() {
    let born = Instant::now();
    let pool = Pool::builder()
        .processes(2)
        .initializer(warm_up, 30)
        .insights(true)
        .build()
        .unwrap();
    assert_eq!(pool.map_chunked(nap, vec![5; 20], 1).unwrap(), vec![5; 20]);
    // Results of a few MiB take measurable time to send back.
    let out = pool.map_chunked(big, vec![1 << 20; 4], 1).unwrap();
    assert!(out.iter().all(|v| v.len() == 1 << 20));
    let i = pool.insights();
    assert!(i.timed);
    assert_eq!(i.workers.len(), 2, "{i}");
    let pids = pool.pids();
    let total = i.total();
    assert_eq!((total.tasks, total.items), (24, 24), "{i}");
    for w in &i.workers {
        assert!(w.running, "{i}");
        assert!(pids.contains(&w.pid), "{i}");
        assert!(w.startup > Duration::ZERO, "{i}");
        assert!(w.init >= Duration::from_millis(30), "{i}");
        if w.tasks > 0 {
            assert!(w.args > Duration::ZERO, "{i}");
            assert!(w.results > Duration::ZERO, "{i}");
        }
    }
    // 20 naps of 5 ms in the task function, whoever ran them.
    assert!(total.working >= Duration::from_millis(100), "{i}");
    // A worker's phases follow each other: together they fit in its life.
    let lived = born.elapsed();
    for w in &i.workers {
        let sum = w.startup + w.init + w.working + w.waiting + w.args + w.results;
        assert!(sum <= lived, "{sum:?} > {lived:?}\n{i}");
    }
    let text = i.to_string();
    eprintln!("{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.lines().next().unwrap().contains("working"), "{text}");
    assert!(text.lines().last().unwrap().contains("total"), "{text}");
    assert!(!text.contains("not measured"), "{text}");
    pool.close();
    pool.join().unwrap();
    let after = pool.insights();
    assert!(after.workers.iter().all(|w| !w.running), "{after}");
    assert_eq!(after.total().tasks, 24);
}

#[test]
fn without_insights_only_the_counts_are_kept() {
    let pool = Pool::new(2).unwrap();
    pool.map_chunked(double, 0..100, 10).unwrap();
    pool.apply(double, 1).unwrap();
    let i = pool.insights();
    assert!(!i.timed);
    let total = i.total();
    assert_eq!((total.tasks, total.items), (11, 101), "{i}");
    assert_eq!(total.working, Duration::ZERO);
    assert_eq!(total.startup, Duration::ZERO);
    assert!(i.to_string().contains("times not measured"), "{i}");
}

#[test]
fn replaced_workers_stay_in_the_insights() {
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .insights(true)
        .build()
        .unwrap();
    pool.map_chunked(double, 0..6, 1).unwrap();
    let i = pool.insights();
    // No worker ran more than two tasks, so at least three ran (a
    // successor starts as its predecessor is sent its last task, and may
    // take over a task its predecessor had not started).
    let ran: Vec<u64> = i.workers.iter().map(|w| w.tasks).collect();
    assert_eq!(ran.iter().sum::<u64>(), 6, "{i}");
    assert!(ran.iter().all(|&n| n <= 2), "{i}");
    assert!(ran.len() >= 3, "{i}");
    assert_eq!(
        i.workers.iter().map(|w| w.worker).collect::<Vec<_>>(),
        (1..=ran.len() as u64).collect::<Vec<_>>()
    );
    pool.close();
    pool.join().unwrap();
    let i = pool.insights();
    assert!(i.workers.iter().all(|w| !w.running), "{i}");
    assert!(i.to_string().contains("exited"), "{i}");
}
