//! `wait()` over several pipe ends and queues in other processes.

mod common;

use std::time::{Duration, Instant};

use common::{LONG, fork};
use mp_channel::{Pipe, Queue, Waitable, wait};

#[test]
fn wait_over_several_pipes() {
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..3 {
        let (rx, tx) = Pipe::new(false).unwrap();
        readers.push(rx);
        writers.push(tx);
    }
    let w1 = writers[1].clone();
    let w2 = writers[2].clone();
    let w0 = writers[0].clone(); // kept: end 0 stays connected
    drop(writers);
    let mut child = fork(move || {
        std::thread::sleep(Duration::from_millis(100));
        w1.send(&"one").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        w2.send(&"two").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        0
    });
    let objs: Vec<&dyn Waitable> = readers.iter().map(|r| r as &dyn Waitable).collect();
    // Nothing yet.
    assert!(
        wait(&objs, Some(Duration::from_millis(20)))
            .unwrap()
            .is_empty()
    );
    let t = Instant::now();
    assert_eq!(wait(&objs, Some(LONG)).unwrap(), vec![1]);
    assert!(t.elapsed() >= Duration::from_millis(30));
    // Still ready until received.
    assert_eq!(wait(&objs, Some(Duration::ZERO)).unwrap(), vec![1]);
    assert_eq!(readers[1].recv::<String>().unwrap(), "one");
    assert_eq!(wait(&objs, Some(LONG)).unwrap(), vec![2]);
    assert_eq!(readers[2].recv::<String>().unwrap(), "two");
    // The child exits: its ends are ready (Disconnected); then end 0 too.
    assert_eq!(child.wait_within(LONG), 0);
    let t = Instant::now();
    loop {
        let r = wait(&objs, Some(LONG)).unwrap();
        if r == vec![1, 2] {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{r:?}");
    }
    drop(w0);
    let t = Instant::now();
    loop {
        let r = wait(&objs, Some(LONG)).unwrap();
        if r == vec![0, 1, 2] {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{r:?}");
    }
}

#[test]
fn wait_over_queues_with_two_pollers() {
    let q = Queue::<u32>::new().unwrap();
    let other = Queue::<u32>::new().unwrap();
    let q2 = q.clone();
    // Another process polls the same queue at the same time.
    let mut poller = fork(move || {
        let r = wait(&[&q2], Some(LONG)).unwrap();
        if r == vec![0] { 0 } else { 9 }
    });
    let qp = q.clone();
    let mut producer = fork(move || {
        std::thread::sleep(Duration::from_millis(100));
        qp.put(42).unwrap();
        0
    });
    assert_eq!(wait(&[&other, &q], Some(LONG)).unwrap(), vec![1]);
    assert_eq!(poller.wait_within(LONG), 0);
    assert_eq!(producer.wait_within(LONG), 0);
    assert_eq!(q.get().unwrap(), 42);
}
