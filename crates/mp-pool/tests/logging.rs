//! Log records of the pool: a worker replaced, tasks lost, a broken pool,
//! received by whatever `log` logger the program installs.

use std::sync::Mutex;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};
use mp_pool::{Error, Pool};

/// Keeps every record of target `mp_pool`.
struct Capture(Mutex<Vec<(Level, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &Record<'_>) {
        if r.target() == "mp_pool" {
            self.0
                .lock()
                .unwrap()
                .push((r.level(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn records() -> Vec<(Level, String)> {
    CAPTURE.0.lock().unwrap().clone()
}

/// Kills its own worker with SIGKILL on item 3.
fn die_on_3(x: u32) -> u32 {
    if x == 3 {
        // SAFETY: raising a signal in this process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    x
}

fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn bad_init(_: u8) {
    panic!("no database");
}

fn double(x: u32) -> u32 {
    x * 2
}

/// One test, so that the records of one case are not mixed with
/// another's (the logger is global).
#[test]
fn replaced_workers_lost_tasks_and_broken_pools_are_logged() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(LevelFilter::Debug);

    // A worker killed by a signal: replaced, its task lost.
    let pool = Pool::new(1).unwrap();
    let r = pool.map_chunked(die_on_3, 0..6, 1);
    assert!(matches!(r, Err(Error::WorkerDied { .. })));
    let recs = records();
    let replaced = recs
        .iter()
        .find(|(_, m)| m.contains("replaced by PoolWorker-2"))
        .unwrap_or_else(|| panic!("no replacement record in {recs:?}"));
    assert_eq!(replaced.0, Level::Warn);
    assert!(
        replaced.1.starts_with("PoolWorker-1 (pid "),
        "{}",
        replaced.1
    );
    assert!(
        replaced.1.contains("killed by signal 9 (SIGKILL)"),
        "{}",
        replaced.1
    );
    let lost = recs
        .iter()
        .find(|(_, m)| m.starts_with("tasks lost: 1 task(s) (1 item(s))"))
        .unwrap_or_else(|| panic!("no tasks-lost record in {recs:?}"));
    assert_eq!(lost.0, Level::Warn);
    assert!(lost.1.contains("PoolWorker-1"), "{}", lost.1);
    drop(pool);

    // A timeout: the worker is killed, said so, and replaced.
    CAPTURE.0.lock().unwrap().clear();
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(matches!(
        pool.apply(sleepy, 10_000),
        Err(Error::TaskTimeout { .. })
    ));
    let recs = records();
    assert!(
        recs.iter()
            .any(|(_, m)| m.contains("running over the task timeout: replaced by")),
        "{recs:?}"
    );
    drop(pool);

    // A retried task is not lost.
    CAPTURE.0.lock().unwrap().clear();
    let pool = Pool::builder().processes(1).retries(1).build().unwrap();
    let r = pool.map_chunked(die_on_3, 0..6, 1);
    assert!(matches!(r, Err(Error::WorkerDied { .. })));
    let recs = records();
    assert!(
        recs.iter()
            .any(|(l, m)| *l == Level::Info && m.contains("run again")),
        "{recs:?}"
    );
    assert_eq!(
        recs.iter()
            .filter(|(_, m)| m.starts_with("tasks lost"))
            .count(),
        1,
        "the task is lost after its retry only: {recs:?}"
    );
    drop(pool);

    // Workers replaced after their task limit: debug records.
    CAPTURE.0.lock().unwrap().clear();
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    assert_eq!(
        pool.map_chunked(double, 0..6, 1).unwrap(),
        [0, 2, 4, 6, 8, 10]
    );
    let recs = records();
    assert!(
        recs.iter()
            .any(|(l, m)| *l == Level::Debug && m.contains("reached its task limit: added")),
        "{recs:?}"
    );
    assert!(!recs.iter().any(|(l, _)| *l <= Level::Warn), "{recs:?}");
    drop(pool);

    // A failing initializer breaks the pool: an error record.
    CAPTURE.0.lock().unwrap().clear();
    let pool = Pool::builder()
        .processes(1)
        .initializer(bad_init, 0)
        .build()
        .unwrap();
    assert!(pool.map(double, 0..3).is_err());
    let recs = records();
    assert!(
        recs.iter().any(|(l, m)| *l == Level::Error
            && m.starts_with("the pool is broken")
            && m.contains("no database")),
        "{recs:?}"
    );
}
