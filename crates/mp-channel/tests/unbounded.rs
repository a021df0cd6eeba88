//! Unbounded queues: `put` never waits for consumers (values wait in a
//! buffer of the putting process, written by its feeder thread), in order,
//! flushed before the process leaves; bounded queues still block.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{LONG, fork};
use mp_channel::{Bytes, Error, JoinableQueue, Queue, RecvTimeoutError, SendError, SimpleQueue};

/// Item `i`: `len` bytes, starting with `i`, then a pattern of it.
fn item(i: u64, len: usize) -> Bytes {
    let mut v: Vec<u8> = (0..len).map(|k| (k as u64 * 7 + i) as u8).collect();
    v[..8].copy_from_slice(&i.to_le_bytes());
    Bytes(v)
}

fn check(b: &Bytes, i: u64, len: usize) -> bool {
    b.len() == len && **b == *item(i, len)
}

/// Runs `f` on another thread; panics if it does not finish within
/// `limit` (a put that blocks for ever is a failure, not a hung test).
fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

const N: u64 = 20_000;
const SHORT: Duration = Duration::from_secs(10);
const LEN: usize = 1_000;

#[test]
fn twenty_thousand_puts_before_any_reader_then_a_child_reads_them_in_order() {
    let q = Queue::<Bytes>::new().unwrap();
    let qp = q.clone();
    within(Duration::from_secs(60), move || {
        for i in 0..N {
            qp.put(item(i, LEN)).unwrap();
        }
        qp
    });
    assert_eq!(q.qsize(), N as usize, "buffered values count in qsize");
    let q2 = q.clone();
    let mut child = fork(move || {
        for i in 0..N {
            let v = q2.get_timeout(LONG).unwrap();
            if !check(&v, i, LEN) {
                return 3;
            }
        }
        0
    });
    assert_eq!(child.wait_within(LONG), 0);
    assert!(q.empty());
    assert_eq!(q.qsize(), 0);
}

#[test]
fn a_value_larger_than_the_ring_returns_at_once_and_is_read_intact() {
    let q = Queue::<Bytes>::builder()
        .ring_bytes(64 << 10)
        .build()
        .unwrap();
    let big = 3 << 20;
    let qp = q.clone();
    within(Duration::from_secs(30), move || {
        qp.put(item(1, big)).unwrap();
        qp.put(item(2, 10)).unwrap();
        qp
    });
    let q2 = q.clone();
    let mut child = fork(move || {
        let a = q2.get_timeout(LONG).unwrap();
        let b = q2.get_timeout(LONG).unwrap();
        (!(check(&a, 1, big) && check(&b, 2, 10))) as i32
    });
    assert_eq!(child.wait_within(LONG), 0);
    // SimpleQueue too.
    let s = SimpleQueue::<Bytes>::new().unwrap();
    let sp = s.clone();
    within(Duration::from_secs(30), move || {
        sp.put(item(3, big)).unwrap()
    });
    assert!(check(&s.get().unwrap(), 3, big));
}

#[test]
fn a_child_that_puts_many_then_exits_delivers_everything() {
    for by_drop in [true, false] {
        // The parent's handle lives in a box whose address the child knows,
        // so that the child can drop its own copy of it: then the handle
        // the child's closure holds is its last one.
        let q = Box::into_raw(Box::new(
            Queue::<Bytes>::builder()
                .ring_bytes(64 << 10)
                .build()
                .unwrap(),
        ));
        // SAFETY: `q` is valid until the `Box::from_raw` at the end.
        let q2 = unsafe { (*q).clone() };
        let addr = q as usize;
        let mut child = fork(move || {
            for i in 0..N {
                q2.put(item(i, LEN)).unwrap();
            }
            if by_drop {
                // SAFETY: the child's copy of the parent's box, never used
                // again in the child.
                drop(unsafe { Box::from_raw(addr as *mut Queue<Bytes>) });
                drop(q2); // its last handle: the drop flushes
            }
            // Otherwise the exit hooks flush, as in a child started by
            // mp-proc (the fork helper runs them).
            0
        });
        // SAFETY: as above.
        let q = unsafe { Box::from_raw(q) };
        // The child is done putting long before anyone reads.
        std::thread::sleep(Duration::from_millis(300));
        for i in 0..N {
            let v = q
                .get_timeout(SHORT)
                .unwrap_or_else(|e| panic!("item {i} (by drop: {by_drop}): {e}"));
            assert!(check(&v, i, LEN), "item {i} (by drop: {by_drop})");
        }
        assert_eq!(child.wait_within(LONG), 0);
        assert!(q.get_nowait().unwrap_err().is_empty());
    }
}

#[test]
fn a_forked_child_does_not_inherit_what_its_parent_buffered() {
    let q = Queue::<u64>::builder().ring_bytes(4096).build().unwrap();
    for i in 0..5_000 {
        q.put(i).unwrap();
    }
    // The child's copies of the handles go at its end: nothing to flush.
    let q2 = q.clone();
    let mut child = fork(move || {
        drop(q2);
        0
    });
    assert_eq!(child.wait_within(Duration::from_secs(30)), 0);
    for i in 0..5_000 {
        assert_eq!(q.get_timeout(LONG).unwrap(), i);
    }
    assert!(
        q.get_timeout(Duration::from_millis(300))
            .unwrap_err()
            .is_timeout()
    );
}

#[test]
fn close_with_values_still_buffered_delivers_them_then_disconnects() {
    let q = Queue::<u64>::builder().ring_bytes(4096).build().unwrap();
    let q2 = q.clone();
    let mut child = fork(move || {
        for i in 0..3_000 {
            q2.put(i).unwrap();
        }
        q2.close();
        match q2.put(9) {
            Err(SendError::Closed(9)) => 0,
            _ => 4,
        }
    });
    q.close();
    for i in 0..3_000 {
        assert_eq!(q.get_timeout(LONG).unwrap(), i);
    }
    assert!(matches!(
        q.get_timeout(LONG),
        Err(RecvTimeoutError::Disconnected)
    ));
    assert_eq!(child.wait_within(LONG), 0);
}

#[test]
fn a_last_handle_with_no_other_reader_does_not_wait_on_drop() {
    let q = Queue::<u64>::builder().ring_bytes(4096).build().unwrap();
    for i in 0..2_000 {
        q.put(i).unwrap();
    }
    // Nobody else could ever read them: the drop does not wait.
    within(Duration::from_secs(10), move || drop(q));
}

#[test]
fn bounded_queues_still_block() {
    let q = Queue::<Bytes>::builder()
        .maxsize(2)
        .ring_bytes(4096)
        .build()
        .unwrap();
    q.put(item(0, 10)).unwrap();
    q.put(item(1, 10)).unwrap();
    assert!(q.put_nowait(item(2, 10)).unwrap_err().is_full());
    assert!(
        q.put_timeout(item(2, 10), Duration::from_millis(100))
            .unwrap_err()
            .is_timeout()
    );
}

fn rss_mb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024
}

#[test]
fn draining_a_large_backlog_gives_the_memory_back() {
    const ITEMS: u64 = 300_000;
    let q = Queue::<Bytes>::new().unwrap();
    let before = rss_mb();
    for i in 0..ITEMS {
        q.put(item(i, LEN)).unwrap();
    }
    let peak = rss_mb();
    assert!(
        peak > before + 200,
        "the backlog is in memory: {before} -> {peak} MB"
    );
    for i in 0..ITEMS {
        let v = q.get_timeout(LONG).unwrap();
        assert!(check(&v, i, LEN));
    }
    q.join_thread();
    let t = Instant::now();
    let mut now = rss_mb();
    while now > before + 100 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
        now = rss_mb();
    }
    eprintln!("RSS: {before} MB before, {peak} MB full, {now} MB drained");
    assert!(
        now <= before + 100,
        "memory not given back: {before} MB before, {peak} MB full, {now} MB drained"
    );
}

#[test]
fn joinable_queue_counts_buffered_values_as_unfinished() {
    let q = Queue::<u64>::builder()
        .ring_bytes(4096)
        .build_joinable()
        .unwrap();
    for i in 0..2_000 {
        q.put(i).unwrap();
    }
    assert_eq!(q.unfinished(), 2_000);
    assert!(!q.join_timeout(Duration::from_millis(200)).unwrap());
    let q2 = q.clone();
    let mut child = fork(move || {
        for i in 0..2_000 {
            if q2.get_timeout(LONG).unwrap() != i {
                return 3;
            }
            q2.task_done().unwrap();
        }
        0
    });
    q.join_timeout(LONG).unwrap();
    assert_eq!(q.unfinished(), 0);
    assert_eq!(child.wait_within(LONG), 0);
}

#[test]
fn join_writes_off_what_a_dead_producer_still_buffered() {
    let q = Queue::<u64>::builder()
        .ring_bytes(4096)
        .build_joinable()
        .unwrap();
    let mut fds = [0i32; 2];
    // SAFETY: pipe() fills the two-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let q2 = q.clone();
    let mut child = fork(move || {
        for i in 0..2_000 {
            q2.put(i).unwrap();
        }
        // SAFETY: writing one byte to our copy of the pipe.
        unsafe { libc::write(fds[1], [1u8].as_ptr().cast(), 1) };
        std::thread::sleep(Duration::from_secs(600));
        0
    });
    let mut b = [0u8; 1];
    // SAFETY: reading one byte from our copy of the pipe.
    assert_eq!(unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) }, 1);
    assert_eq!(q.unfinished(), 2_000);
    child.kill_and_reap();
    let mut got = 0u64;
    while let Ok(v) = q.get_timeout(Duration::from_millis(300)) {
        assert_eq!(v, got);
        got += 1;
        q.task_done().unwrap();
    }
    assert!(got > 0 && got < 2_000, "{got}");
    match q.join_timeout(LONG) {
        Err(Error::TasksLost { count }) => assert_eq!(count, 2_000 - got),
        other => panic!("expected TasksLost, got {other:?}"),
    }
    assert_eq!(q.unfinished(), 0);
    assert!(q.join_timeout(Duration::from_secs(1)).unwrap());
    // SAFETY: closing our pipe descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

#[test]
fn a_joinable_queue_made_with_new_is_unbounded() {
    let q = JoinableQueue::<u64>::new().unwrap();
    let qp = q.clone();
    within(Duration::from_secs(60), move || {
        for i in 0..200_000 {
            qp.put(i).unwrap();
        }
    });
    for i in 0..200_000 {
        assert_eq!(q.get().unwrap(), i);
        q.task_done().unwrap();
    }
    q.join().unwrap();
}

#[test]
fn put_nowait_and_put_timeout_on_an_unbounded_queue_never_report_full() {
    let q = Queue::<u64>::builder().ring_bytes(4096).build().unwrap();
    for i in 0..2_000 {
        q.put_nowait(i).unwrap();
    }
    q.put_timeout(2_000, Duration::from_micros(1)).unwrap();
    assert_eq!(q.qsize(), 2_001);
    for i in 0..=2_000 {
        assert_eq!(q.get_timeout(LONG).unwrap(), i);
    }
}

#[test]
fn contended_puts_stay_on_the_fast_path_while_the_ring_has_room() {
    // Small puts from several producers while another streams large
    // values (holding the writers' lock for a while), a consumer keeping
    // up: a value that goes to the buffer while the ring has room went
    // there because of other writers.
    const P: u64 = 3;
    const PUTS: u64 = 20_000;
    const BIG: usize = 4 << 20;
    let q = Queue::<Bytes>::builder()
        .ring_bytes(8 << 20)
        .build()
        .unwrap();
    let qb = q.clone();
    let mut big = fork(move || {
        for i in 0..20 {
            qb.put(item(i, BIG)).unwrap();
        }
        0
    });
    let mut kids: Vec<_> = (0..P)
        .map(|p| {
            let q = q.clone();
            fork(move || {
                for i in 0..PUTS {
                    q.put(Bytes((p << 32 | i).to_le_bytes().to_vec())).unwrap();
                }
                // Last, after its values (FIFO per producer): how many of
                // them went through this process's buffer.
                let n = q.buffered_puts();
                q.put(Bytes([p.to_le_bytes(), n.to_le_bytes()].concat()))
                    .unwrap();
                0
            })
        })
        .collect();
    let mut next = [0u64; P as usize];
    let (mut buffered, mut counts, mut bigs) = (0, 0, 0);
    while counts < P || bigs < 20 {
        let v = q.get_timeout(LONG).unwrap();
        match v.len() {
            8 => {
                let v = u64::from_le_bytes(v[..].try_into().unwrap());
                let p = (v >> 32) as usize;
                assert_eq!(v & 0xffff_ffff, next[p], "in order per producer");
                next[p] += 1;
            }
            16 => {
                let p = u64::from_le_bytes(v[..8].try_into().unwrap()) as usize;
                assert_eq!(next[p], PUTS, "the count comes after every value");
                buffered += u64::from_le_bytes(v[8..].try_into().unwrap());
                counts += 1;
            }
            n => {
                assert_eq!(n, BIG);
                bigs += 1;
            }
        }
    }
    assert_eq!(big.wait_within(LONG), 0);
    for k in &mut kids {
        assert_eq!(k.wait_within(LONG), 0);
    }
    assert!(
        buffered <= P * PUTS / 100,
        "{buffered} of {} values went through the buffer",
        P * PUTS
    );
    assert_eq!(q.qsize(), 0);
}

#[test]
fn a_streamed_value_that_fits_in_the_room_goes_straight_into_the_ring() {
    // Larger than a quarter of the ring (streamed in fragments) but with
    // room for all of them: written at once, not copied into the buffer, so
    // a process that leaves with `_exit` right after the put loses nothing.
    let q = Queue::<Bytes>::builder()
        .ring_bytes(256 * 1024)
        .build()
        .unwrap();
    let len = 100_000;
    let q2 = q.clone();
    let mut child = fork(move || {
        q2.put(item(7, len)).unwrap();
        assert_eq!(q2.buffered_puts(), 0, "the value went through the buffer");
        0 // `_exit`: no exit hook, no flush
    });
    assert_eq!(child.wait_within(LONG), 0);
    let got = q.get_timeout(SHORT).unwrap();
    assert!(check(&got, 7, len));
    // A value that does not fit in the room left still goes to the buffer
    // and arrives in order behind what the ring holds.
    q.put(item(1, 200_000)).unwrap();
    q.put(item(2, 200_000)).unwrap();
    assert!(check(&q.get_timeout(SHORT).unwrap(), 1, 200_000));
    assert!(check(&q.get_timeout(SHORT).unwrap(), 2, 200_000));
}
