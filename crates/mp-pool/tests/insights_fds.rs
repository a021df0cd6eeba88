//! `Pool::insights` with workers replaced for ever: a worker that has left
//! the pool keeps its figures but no descriptor or mapping. Alone in its
//! test binary, so that the descriptor count is this test's own.

use std::time::Duration;

use mp_pool::Pool;

fn double(x: u64) -> u64 {
    x * 2
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn replaced_workers_leave_no_descriptor_behind() {
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(1)
        .insights(true)
        .build()
        .unwrap();
    assert_eq!(pool.map_chunked(double, 0..4, 1).unwrap(), [0, 2, 4, 6]);
    let before = open_fds();
    let out = pool.map_chunked(double, 0..300, 1).unwrap();
    assert_eq!(out, (0..300).map(double).collect::<Vec<_>>());
    // Once the last workers are reaped, only the pool's own descriptors
    // remain (fewer than before: no worker runs).
    pool.close();
    pool.join().unwrap();
    let after = open_fds();
    let i = pool.insights();
    // Every worker served at most one task (a replacement may have started
    // just before the close and served none); all are still listed.
    assert!(i.workers.len() >= 304, "{i}");
    assert_eq!((i.total().tasks, i.total().items), (304, 304));
    assert!(i.workers.iter().all(|w| w.tasks <= 1 && !w.running), "{i}");
    assert!(i.total().working > Duration::ZERO);
    assert!(
        after <= before + 4,
        "open descriptors grew from {before} to {after} over 300 replaced workers"
    );
}
