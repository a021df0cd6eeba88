//! Channel ends in a pool's tasks and initializer arguments: no registration
//! leaks with a task, and workers decoding the initializer's arguments do
//! not release the parent's own registration.

use std::time::{Duration, Instant};

use mp_channel::{Pipe, PipeEnd, RecvTimeoutError, SendTimeoutError};
use mp_pool::Pool;
use mp_shm::Value;

const LIMIT: Duration = Duration::from_secs(30);

fn use_end(tx: PipeEnd) -> bool {
    tx.send(&1u32).is_ok()
}

fn disconnected(rx: &PipeEnd) {
    let start = Instant::now();
    loop {
        match rx.recv_timeout::<u32>(LIMIT) {
            Err(RecvTimeoutError::Disconnected) => return,
            // Whatever a task managed to send before the end was gone.
            Ok(_) if start.elapsed() < LIMIT => {}
            r => panic!("expected Disconnected, got {r:?}"),
        }
    }
}

#[test]
fn a_channel_end_in_tasks_leaves_no_registration_behind() {
    let pool = Pool::new(2).unwrap();
    let (rx, tx) = Pipe::new(false).unwrap();
    // Each task carries the end (it may or may not re-attach in a worker:
    // either way nothing stays registered once the tasks are over).
    let _ = pool.map(use_end, vec![tx.clone(), tx.clone(), tx.clone()]);
    let _ = pool.apply(use_end, tx.clone());
    drop(tx);
    disconnected(&rx);
}

fn init_count((rx, started): (PipeEnd, Value<u32>)) {
    // The worker lets go of its copy of the end at once.
    drop(rx);
    started.update(|n| *n += 1);
}

fn noop(x: u32) -> u32 {
    x
}

#[test]
fn workers_decoding_initializer_arguments_do_not_release_the_parents_end() {
    let (rx, tx) = Pipe::new(false).unwrap();
    let started = Value::new(0u32).unwrap();
    let pool = Pool::builder()
        .processes(4)
        .initializer(init_count, (rx.clone(), started.clone()))
        .build()
        .unwrap();
    pool.map(noop, 0..64).unwrap();
    let t0 = Instant::now();
    while started.get() < 4 {
        assert!(t0.elapsed() < LIMIT, "the initializers did not all run");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Four workers decoded (and dropped) the reader: ours is still there.
    tx.send(&7u32).unwrap();
    assert_eq!(rx.recv_timeout::<u32>(LIMIT).unwrap(), 7);
    // Once the pool and our reader are gone, nobody reads.
    pool.terminate();
    drop(pool);
    drop(rx);
    let t0 = Instant::now();
    loop {
        match tx.send_timeout(&8u32, Duration::from_millis(100)) {
            Err(SendTimeoutError::Disconnected(_)) => break,
            Ok(()) | Err(SendTimeoutError::Timeout(_)) if t0.elapsed() < LIMIT => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => panic!("expected Disconnected, got {r:?}"),
        }
    }
}
