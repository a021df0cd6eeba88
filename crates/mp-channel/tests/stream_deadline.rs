//! A timed send of a message streamed in several fragments honours one
//! deadline for the whole call, and the message it gives up on is dropped
//! whole: the channel stays usable, its counts consistent.

mod common;

use std::time::{Duration, Instant};

use common::{LONG, fork};
use mp_channel::{Bytes, Pipe, Queue, SendError};

/// Ring bytes: the smallest ring, so that the messages below are several
/// rings long.
const RING: usize = 4096;
const DEADLINE: Duration = Duration::from_millis(300);

fn big(n: usize, seed: u8) -> Bytes {
    Bytes((0..n).map(|i| (i as u8).wrapping_mul(13) ^ seed).collect())
}

/// Runs `f` on a thread; `None` if it does not return within `limit`
/// (the thread is left behind: the test fails anyway).
fn try_within<R: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// As `try_within`, panicking when `f` does not return in time.
fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    try_within(limit, f).expect("the call did not return within its limit")
}

/// The call took its deadline, give or take a loaded machine (no timing
/// claim beyond "it returned, and not before its deadline").
fn assert_near_deadline(took: Duration) {
    assert!(took >= DEADLINE, "returned before its deadline: {took:?}");
    assert!(
        took < DEADLINE + Duration::from_secs(5),
        "overran its deadline: {took:?}"
    );
}

#[test]
fn pipe_send_timeout_bounds_every_fragment() {
    let (rx, tx) = Pipe::builder()
        .duplex(false)
        .capacity(RING)
        .build()
        .unwrap();
    let tx2 = tx.clone();
    let (got, took) = within(Duration::from_secs(30), move || {
        let start = Instant::now();
        (
            tx2.send_timeout(&big(5 * RING, 1), DEADLINE),
            start.elapsed(),
        )
    });
    assert!(matches!(got, Err(SendError::Timeout(()))), "{got:?}");
    assert_near_deadline(took);
    // The reader drops the fragments that made it into the ring and gets
    // the next message.
    let reader = std::thread::spawn(move || {
        let first = rx.recv_timeout::<Bytes>(LONG).unwrap();
        let second = rx.recv_timeout::<Bytes>(LONG).unwrap();
        (first, second)
    });
    tx.send(&Bytes(vec![1, 2, 3])).unwrap();
    // Streaming works as before.
    tx.send_timeout(&big(3 * RING + 7, 2), LONG).unwrap();
    let (first, second) = reader.join().unwrap();
    assert_eq!(first, Bytes(vec![1, 2, 3]));
    assert_eq!(second, big(3 * RING + 7, 2));
}

/// The reader is another process, stopped while the writer streams: the
/// writer gives up at its deadline; the reader, resumed, reads what the
/// ring holds of the message, sees it abandoned, and gets the next one.
#[test]
fn stopped_reader_process_gets_the_next_message_whole() {
    let (rx, tx) = Pipe::builder()
        .duplex(false)
        .capacity(RING)
        .build()
        .unwrap();
    let mut child = fork(move || {
        let m: Bytes = rx.recv_timeout(LONG).unwrap();
        i32::from(m != Bytes(vec![9; 10]))
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.pid, libc::SIGSTOP) };
    let tx2 = tx.clone();
    let sent = try_within(Duration::from_secs(30), move || {
        let start = Instant::now();
        (
            tx2.send_timeout(&big(6 * RING, 3), DEADLINE),
            start.elapsed(),
        )
    });
    // SAFETY: as above.
    unsafe { libc::kill(child.pid, libc::SIGCONT) };
    // (On a panic `child` is killed and reaped as it drops.)
    let (got, took) = sent.expect("send_timeout did not return");
    assert!(matches!(got, Err(SendError::Timeout(()))), "{got:?}");
    assert_near_deadline(took);
    tx.send_timeout(&Bytes(vec![9; 10]), LONG).unwrap();
    assert_eq!(child.wait(LONG), 0, "the child got the next message whole");
}

#[test]
fn queue_put_timeout_gives_the_value_back_and_counts_balance() {
    let q = Queue::<Bytes>::builder().ring_bytes(RING).build().unwrap();
    let q2 = q.clone();
    let value = big(4 * RING, 4);
    let (got, took) = within(Duration::from_secs(30), move || {
        let start = Instant::now();
        (q2.put_timeout(value, DEADLINE), start.elapsed())
    });
    assert_near_deadline(took);
    match got {
        Err(SendError::Timeout(v)) => assert_eq!(v, big(4 * RING, 4), "the value comes back"),
        other => panic!("{other:?}"),
    }
    let q2 = q.clone();
    let consumer = std::thread::spawn(move || q2.get_timeout(LONG).unwrap());
    q.put(Bytes(vec![5; 5])).unwrap();
    assert_eq!(consumer.join().unwrap(), Bytes(vec![5; 5]));
    assert_eq!(q.qsize(), 0);
    assert!(q.get_nowait().unwrap_err().is_empty());
}

#[test]
fn joinable_queue_join_returns_after_an_abandoned_put() {
    let q = Queue::<Bytes>::builder()
        .ring_bytes(RING)
        .build_joinable()
        .unwrap();
    let q2 = q.clone();
    let got = within(Duration::from_secs(30), move || {
        q2.put_timeout(big(4 * RING, 5), DEADLINE)
    });
    assert!(got.unwrap_err().is_timeout());
    let q2 = q.clone();
    let consumer = std::thread::spawn(move || {
        let v = q2.get_timeout(LONG).unwrap();
        q2.task_done().unwrap();
        v
    });
    q.put(Bytes(vec![6; 6])).unwrap();
    assert_eq!(consumer.join().unwrap(), Bytes(vec![6; 6]));
    assert!(
        q.join_timeout(Duration::from_secs(10)).unwrap(),
        "no task left unfinished"
    );
    assert_eq!(q.qsize(), 0);
}
