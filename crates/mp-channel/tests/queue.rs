//! Queues across processes: MPMC without loss or duplication, bounds,
//! timeouts, close, JoinableQueue.

mod common;

use std::time::{Duration, Instant};

use common::{Child, LONG, fork};
use mp_channel::{Error, JoinableQueue, Queue, RecvError, SendError, SimpleQueue, TrySendError};

const PRODUCERS: u32 = 4;
const CONSUMERS: usize = 4;
const PER_PRODUCER: u64 = 250_000;
const PER_PRODUCER_ENV: &str = "MP_CHANNEL_PER_PRODUCER";

#[test]
fn four_producers_four_consumers_nothing_lost_or_duplicated() {
    let q = Queue::<(u32, u64)>::builder()
        .ring_bytes(256 * 1024)
        .build()
        .unwrap();
    // Per consumer and producer: count, sum, sum of squares.
    let results = Queue::<(usize, Vec<(u64, u64, u64)>, bool)>::new().unwrap();
    let mut children: Vec<Child> = Vec::new();
    // Producers first: a forked child inherits every open handle of its
    // parent (as with descriptors), so the parent closes its producer side
    // before it forks the consumers, which wait for every producer to go.
    for p in 0..PRODUCERS {
        let q = q.clone();
        children.push(fork(move || {
            for seq in 0..per_producer() {
                q.put((p, seq)).unwrap();
            }
            0
        }));
    }
    q.close();
    for c in 0..CONSUMERS {
        let (q, results) = (q.clone(), results.clone());
        children.push(fork(move || {
            assert!(q.is_closed()); // a clone of a closed handle puts nothing
            let mut stats = vec![(0u64, 0u64, 0u64); PRODUCERS as usize];
            let mut last = vec![None::<u64>; PRODUCERS as usize];
            let mut fifo = true;
            loop {
                match q.get() {
                    Ok((p, seq)) => {
                        let s = &mut stats[p as usize];
                        s.0 += 1;
                        s.1 += seq;
                        s.2 = s.2.wrapping_add(seq.wrapping_mul(seq));
                        if last[p as usize].is_some_and(|l| l >= seq) {
                            fifo = false;
                        }
                        last[p as usize] = Some(seq);
                    }
                    Err(RecvError::Disconnected) => break,
                    Err(e) => panic!("consumer: {e}"),
                }
            }
            results.put((c, stats, fifo)).unwrap();
            0
        }));
    }
    let mut total = vec![(0u64, 0u64, 0u64); PRODUCERS as usize];
    for _ in 0..CONSUMERS {
        let (_c, stats, fifo) = results.get_timeout(LONG).unwrap();
        assert!(fifo, "per-producer FIFO order broken");
        for (t, s) in total.iter_mut().zip(stats) {
            t.0 += s.0;
            t.1 += s.1;
            t.2 = t.2.wrapping_add(s.2);
        }
    }
    let n = per_producer();
    let sq = (0..n).fold(0u64, |a, x| a.wrapping_add(x.wrapping_mul(x)));
    for (p, t) in total.iter().enumerate() {
        assert_eq!(t.0, n, "producer {p}: count");
        assert_eq!(t.1, n * (n - 1) / 2, "producer {p}: sum");
        assert_eq!(t.2, sq, "producer {p}: sum of squares");
    }
    for mut c in children {
        assert_eq!(c.wait_within(LONG), 0);
    }
    assert!(q.empty());
}

fn per_producer() -> u64 {
    std::env::var(PER_PRODUCER_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PER_PRODUCER)
}

#[test]
fn maxsize_bounds_the_queue() {
    let q = Queue::with_capacity(3).unwrap();
    for i in 0..3 {
        q.put_nowait(i).unwrap();
    }
    assert!(q.full());
    assert_eq!(q.qsize(), 3);
    match q.put_nowait(9) {
        Err(TrySendError::Full(v)) => assert_eq!(v, 9),
        other => panic!("{other:?}"),
    }
    let t = Instant::now();
    let e = q.put_timeout(10, Duration::from_millis(150)).unwrap_err();
    assert!(e.is_timeout());
    assert_eq!(e.into_inner(), 10);
    assert!(t.elapsed() >= Duration::from_millis(140));
    // A consumer in another process makes room.
    let q2 = q.clone();
    let mut child = fork(move || {
        std::thread::sleep(Duration::from_millis(100));
        (q2.get().unwrap() != 0) as i32
    });
    q.put(3).unwrap(); // blocks until the child takes one
    assert_eq!(child.wait_within(LONG), 0);
    assert_eq!(
        (0..3).map(|_| q.get().unwrap()).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(q.empty());
}

#[test]
fn get_timeout_and_nowait() {
    let q = Queue::<String>::new().unwrap();
    assert!(q.get_nowait().unwrap_err().is_empty());
    let t = Instant::now();
    assert!(
        q.get_timeout(Duration::from_millis(200))
            .unwrap_err()
            .is_timeout()
    );
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(190) && e < Duration::from_secs(5),
        "{e:?}"
    );
    let q2 = q.clone();
    let mut child = fork(move || {
        std::thread::sleep(Duration::from_millis(50));
        q2.put("late".into()).unwrap();
        0
    });
    assert_eq!(q.get_timeout(Duration::from_secs(30)).unwrap(), "late");
    assert_eq!(child.wait_within(LONG), 0);
}

#[test]
fn close_semantics() {
    let q = Queue::<u8>::new().unwrap();
    q.put(1).unwrap();
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.put(2), Err(SendError::Closed(2))));
    // Still a consumer.
    assert_eq!(q.get().unwrap(), 1);
    // Every handle has closed: drained and disconnected.
    assert!(matches!(q.get(), Err(RecvError::Disconnected)));

    // A producer in another process closes; the consumer drains then sees
    // Disconnected.
    let q = Queue::<u32>::new().unwrap();
    let q2 = q.clone();
    let mut child = fork(move || {
        for i in 0..100 {
            q2.put(i).unwrap();
        }
        q2.close();
        std::thread::sleep(Duration::from_millis(300));
        0
    });
    q.close();
    let got: Vec<u32> = std::iter::from_fn(|| q.get().ok()).collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(child.wait_within(LONG), 0);
}

#[test]
fn producer_error_when_every_consumer_has_gone() {
    let q = Queue::<u64>::builder().ring_bytes(4096).build().unwrap();
    let q2 = q.clone();
    let mut child = fork(move || {
        drop(q2.get());
        0 // exits holding its handle: found dead
    });
    // Only the child can receive from now on: the parent's handle closes
    // its producer side but stays a consumer... so hand it over instead.
    let qp = q.clone();
    drop(q);
    qp.put(1).unwrap();
    assert_eq!(child.wait_within(LONG), 0);
    // The parent's handle is still a consumer: no error yet.
    qp.put(2).unwrap();
    assert_eq!(qp.get().unwrap(), 2);
}

#[test]
fn simple_queue_across_processes() {
    let q = SimpleQueue::<Vec<u16>>::new().unwrap();
    let q2 = q.clone();
    let mut child = fork(move || {
        q2.put(vec![1, 2, 3]).unwrap();
        0
    });
    assert_eq!(q.get().unwrap(), vec![1, 2, 3]);
    assert!(q.empty());
    assert_eq!(child.wait_within(LONG), 0);
}

#[test]
fn joinable_queue_task_done_and_join() {
    let q = JoinableQueue::<u32>::new().unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDone)));
    for i in 0..10 {
        q.put(i).unwrap();
    }
    assert_eq!(q.unfinished(), 10);
    assert!(!q.join_timeout(Duration::from_millis(50)).unwrap());
    let q2 = q.clone();
    let mut child = fork(move || {
        for _ in 0..10 {
            q2.get().unwrap();
            std::thread::sleep(Duration::from_millis(5));
            q2.task_done().unwrap();
        }
        // One too many.
        if q2.task_done().is_err() { 0 } else { 7 }
    });
    let t = Instant::now();
    q.join().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(40));
    assert_eq!(q.unfinished(), 0);
    assert_eq!(child.wait_within(LONG), 0);
}

#[test]
fn corrupt_frame_in_a_queue_is_a_decode_error() {
    // Handles are untyped on the wire: the same queue seen as u32 and String.
    let q = Queue::<u32>::new().unwrap();
    let (bytes, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&q));
    let qs: Queue<String> =
        mp_os::handle::provide_fds(fds, || postcard::from_bytes(&bytes.unwrap())).unwrap();
    q.put(u32::MAX).unwrap();
    assert!(matches!(qs.get(), Err(RecvError::Decode(_))));
    q.put(3).unwrap();
    assert_eq!(q.get().unwrap(), 3);
}

#[test]
fn large_values_through_a_small_queue() {
    let q = Queue::<Vec<u64>>::builder()
        .ring_bytes(8192)
        .build()
        .unwrap();
    let q2 = q.clone();
    let mut child = fork(move || {
        for k in 0..3u64 {
            q2.put((0..500_000).map(|i| i * k).collect()).unwrap();
        }
        0
    });
    for k in 0..3u64 {
        let v = q.get().unwrap();
        assert_eq!(v.len(), 500_000);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * k));
    }
    assert_eq!(child.wait_within(LONG), 0);
}

#[test]
fn join_writes_off_the_tasks_of_a_consumer_that_died() {
    let q = JoinableQueue::<u32>::new().unwrap();
    for i in 0..5 {
        q.put(i).unwrap();
    }
    let (q2, q3) = (q.clone(), q.clone());
    // A consumer that takes two tasks, finishes one, and is killed while it
    // holds the other.
    let (ready_r, ready_w) = pipe_fds();
    let victim = fork(move || {
        q2.get().unwrap();
        q2.task_done().unwrap();
        q2.get().unwrap();
        // SAFETY: writing one byte to our copy of the pipe.
        unsafe { libc::write(ready_w, [1u8].as_ptr().cast(), 1) };
        std::thread::sleep(Duration::from_secs(600));
        0
    });
    let mut b = [0u8; 1];
    // SAFETY: reading one byte from our copy of the pipe.
    assert_eq!(unsafe { libc::read(ready_r, b.as_mut_ptr().cast(), 1) }, 1);
    let mut victim = victim;
    victim.kill_and_reap();
    // A healthy consumer does the other three.
    let mut worker = fork(move || {
        for _ in 0..3 {
            q3.get().unwrap();
            q3.task_done().unwrap();
        }
        0
    });
    assert_eq!(worker.wait_within(LONG), 0);
    let t = Instant::now();
    match q.join_timeout(LONG) {
        Err(Error::TasksLost { count }) => assert_eq!(count, 1),
        other => panic!("expected TasksLost, got {other:?}"),
    }
    assert!(t.elapsed() < LONG);
    assert_eq!(q.unfinished(), 0);
    // Written off once: the next join has nothing to wait for.
    assert!(q.join_timeout(Duration::from_secs(5)).unwrap());
    // SAFETY: closing our pipe descriptors.
    unsafe {
        libc::close(ready_r);
        libc::close(ready_w);
    }
}

#[test]
fn a_consumer_that_exits_after_task_done_leaves_nothing_to_write_off() {
    let q = JoinableQueue::<u32>::new().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    let q2 = q.clone();
    let mut c = fork(move || {
        for _ in 0..2 {
            q2.get().unwrap();
            q2.task_done().unwrap();
        }
        0
    });
    assert_eq!(c.wait_within(LONG), 0);
    q.join().unwrap();
    // get_nowait on an empty joinable queue does not count a task.
    assert!(q.get_nowait().unwrap_err().is_empty());
    q.put(3).unwrap();
    assert!(!q.join_timeout(Duration::from_millis(300)).unwrap());
    assert_eq!(q.get().unwrap(), 3);
    q.task_done().unwrap();
    q.join().unwrap();
}

fn pipe_fds() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe() fills the two-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

/// A value whose `Deserialize` panics when its first byte is 0xFF.
#[derive(serde::Serialize, Debug)]
struct Touchy(Vec<u8>);

impl<'de> serde::Deserialize<'de> for Touchy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<u8>::deserialize(d)?;
        assert!(v.first() != Some(&0xFF), "a Deserialize that panics");
        Ok(Touchy(v))
    }
}

#[test]
fn a_panicking_deserialize_does_not_stall_the_queue() {
    let q = Queue::<Touchy>::builder().ring_bytes(4096).build().unwrap();
    for size in [100usize, 700] {
        q.put(Touchy(vec![0xFF; size])).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.get()));
        assert!(r.is_err(), "the decode panicked");
        // Many laps of the 4 KiB ring afterwards: the record the panic left
        // behind must have been released.
        for i in 0..200u8 {
            q.put_timeout(Touchy(vec![i; size]), Duration::from_secs(30))
                .unwrap();
            let got = q.get_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(got.0, vec![i; size]);
        }
    }
}

#[test]
fn a_producer_killed_while_waiting_for_room_leaves_no_task_behind() {
    let q = JoinableQueue::<u32>::with_capacity(1).unwrap();
    q.put(1).unwrap();
    let q2 = q.clone();
    let mut child = fork(move || {
        q2.put(2).unwrap(); // the queue is full: waits until killed
        0
    });
    std::thread::sleep(Duration::from_millis(300));
    child.kill_and_reap();
    assert_eq!(q.get().unwrap(), 1);
    q.task_done().unwrap();
    assert_eq!(q.unfinished(), 0);
    assert!(q.join_timeout(Duration::from_secs(3)).unwrap());
    assert!(q.empty());
    // The bound still holds exactly one message.
    q.put_nowait(3).unwrap();
    assert!(q.put_nowait(4).unwrap_err().is_full());
}

#[test]
fn a_producer_killed_in_the_middle_of_a_streamed_value_leaves_no_task_behind() {
    let q = Queue::<Vec<u8>>::builder()
        .ring_bytes(4096)
        .maxsize(100)
        .build_joinable()
        .unwrap();
    q.put(vec![1]).unwrap();
    let q2 = q.clone();
    let mut child = fork(move || {
        // Streamed through the 4 KiB ring: waits for a reader mid-value.
        q2.put(vec![7; 100_000]).unwrap();
        0
    });
    std::thread::sleep(Duration::from_millis(300));
    child.kill_and_reap();
    assert_eq!(q.get().unwrap(), vec![1]);
    q.task_done().unwrap();
    // What the dead producer streamed is dropped by the next reader.
    assert!(
        q.get_timeout(Duration::from_secs(2))
            .unwrap_err()
            .is_timeout()
    );
    assert_eq!(q.unfinished(), 0);
    assert!(q.join_timeout(Duration::from_secs(3)).unwrap());
    assert!(q.empty());
}

#[test]
fn a_consumer_killed_while_waiting_in_get_holds_no_task() {
    let q = JoinableQueue::<u32>::new().unwrap();
    let q2 = q.clone();
    let mut child = fork(move || {
        let _ = q2.get(); // nothing to get: waits until killed
        0
    });
    std::thread::sleep(Duration::from_millis(300));
    child.kill_and_reap();
    q.put(1).unwrap();
    // The task is still in the queue: nothing to write off.
    assert!(!q.join_timeout(Duration::from_millis(500)).unwrap());
    assert_eq!(q.unfinished(), 1);
    assert_eq!(q.get().unwrap(), 1);
    q.task_done().unwrap();
    q.join().unwrap();
    assert!(q.task_done().is_err());
}
