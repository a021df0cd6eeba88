//! A timed send of a message streamed in several fragments honours one
//! deadline for the whole call, and the message it gives up on is dropped
//! whole: the channel stays usable, its counts consistent.

mod common;

use std::time::{Duration, Instant};

use common::{LONG, fork};
use mp_channel::{Bytes, Pipe, Queue, SendTimeoutError};

/// Ring bytes: the smallest ring, so that the messages below are several
/// rings long.
const RING: usize = 4096;
const DEADLINE: Duration = Duration::from_millis(300);
/// A `maxsize` that never limits these tests: a queue with one keeps
/// Python's blocking `put`, which is what a timed streamed put needs (an
/// unbounded queue buffers in the putting process and never times out).
const BOUND: usize = 1 << 20;

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
    assert!(matches!(got, Err(SendTimeoutError::Timeout(()))), "{got:?}");
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
    unsafe { libc::kill(child.pid() as i32, libc::SIGSTOP) };
    let tx2 = tx.clone();
    let sent = try_within(Duration::from_secs(30), move || {
        let start = Instant::now();
        (
            tx2.send_timeout(&big(6 * RING, 3), DEADLINE),
            start.elapsed(),
        )
    });
    // SAFETY: as above.
    unsafe { libc::kill(child.pid() as i32, libc::SIGCONT) };
    // (On a panic `child` is killed and reaped as it drops.)
    let (got, took) = sent.expect("send_timeout did not return");
    assert!(matches!(got, Err(SendTimeoutError::Timeout(()))), "{got:?}");
    assert_near_deadline(took);
    tx.send_timeout(&Bytes(vec![9; 10]), LONG).unwrap();
    assert_eq!(
        child.wait_within(LONG),
        0,
        "the child got the next message whole"
    );
}

#[test]
fn queue_put_timeout_gives_the_value_back_and_counts_balance() {
    let q = Queue::<Bytes>::builder()
        .ring_bytes(RING)
        .maxsize(BOUND)
        .build()
        .unwrap();
    let q2 = q.clone();
    let value = big(4 * RING, 4);
    let (got, took) = within(Duration::from_secs(30), move || {
        let start = Instant::now();
        (q2.put_timeout(value, DEADLINE), start.elapsed())
    });
    assert_near_deadline(took);
    match got {
        Err(SendTimeoutError::Timeout(v)) => {
            assert_eq!(v, big(4 * RING, 4), "the value comes back")
        }
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
        .maxsize(BOUND)
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

/// Message `seq` of writer `w`: `size` pattern bytes and a checksum.
fn stamped(w: u8, seq: u32, size: usize) -> Bytes {
    let mut m = vec![w];
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend((0..size).map(|i| (i as u8) ^ (seq as u8) ^ w.wrapping_mul(17)));
    let sum = checksum(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    Bytes(m)
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Writer and sequence number of a whole, intact message.
fn unstamp(m: &Bytes) -> Option<(u8, u32)> {
    let m = &m.0;
    if m.len() < 13 {
        return None;
    }
    let (body, sum) = m.split_at(m.len() - 8);
    let (w, seq) = (body[0], u32::from_le_bytes(body[1..5].try_into().unwrap()));
    (checksum(body).to_le_bytes() == sum && stamped(w, seq, body.len() - 5).0 == *m)
        .then_some((w, seq))
}

/// Several writer processes put messages, many streamed over several
/// rings, with timeouts of a few milliseconds, while slow readers in other
/// processes take them: many puts give up in the middle of their message.
/// Every message whose put succeeded arrives once and whole; none whose
/// put timed out arrives at all; the queue ends empty.
#[test]
fn timed_streams_from_several_processes_arrive_whole_or_not_at_all() {
    const WRITERS: u8 = 3;
    const READERS: u8 = 2;
    const PER: u32 = 1000;
    let q = Queue::<Bytes>::builder()
        .ring_bytes(RING)
        .maxsize(BOUND)
        .build()
        .unwrap();
    let (res_rx, res_tx) = Pipe::builder().duplex(false).build().unwrap();
    let mut kids = Vec::new();
    for w in 0..WRITERS {
        let (q, res_tx) = (q.clone(), res_tx.clone());
        kids.push(fork(move || {
            let (mut ok, mut timed_out) = (Vec::new(), 0u32);
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(w);
            for seq in 0..PER {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let size = [40, 700, 3000, 9000, 20_000][(rng % 5) as usize];
                let timeout = Duration::from_micros(200 + (rng >> 8) % 4000);
                match q.put_timeout(stamped(w, seq, size), timeout) {
                    Ok(()) => ok.push((w, seq)),
                    Err(e) if e.is_timeout() => timed_out += 1,
                    Err(e) => panic!("{e:?}"),
                }
            }
            q.close();
            res_tx.send(&(true, ok, timed_out)).unwrap();
            0
        }));
    }
    // The readers must not inherit a sending handle, or they would never
    // see the writers go (the README's rule for forked children).
    q.close();
    for r in 0..READERS {
        let (q, res_tx) = (q.clone(), res_tx.clone());
        kids.push(fork(move || {
            q.close();
            let (mut got, mut bad) = (Vec::new(), 0u32);
            loop {
                match q.get_timeout(LONG) {
                    Ok(m) => match unstamp(&m) {
                        Some(id) => got.push(id),
                        None => bad += 1,
                    },
                    Err(e) if e.is_disconnected() => break,
                    Err(e) => panic!("{e:?}"),
                }
                if got.len() % 7 == usize::from(r) {
                    // A slow consumer now and then: writers give up.
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            res_tx.send(&(false, got, bad)).unwrap();
            0
        }));
    }
    drop(q);
    drop(res_tx);
    let (mut ok, mut got) = (Vec::new(), Vec::new());
    let (mut timed_out, mut bad) = (0, 0);
    for _ in 0..WRITERS + READERS {
        let (writer, list, n): (bool, Vec<(u8, u32)>, u32) = res_rx.recv_timeout(LONG).unwrap();
        if writer {
            ok.extend(list);
            timed_out += n;
        } else {
            got.extend(list);
            bad += n;
        }
    }
    for mut k in kids {
        assert_eq!(k.wait_within(LONG), 0);
    }
    assert_eq!(bad, 0, "messages torn or mixed");
    assert!(timed_out > 0, "no put gave up: the test tests nothing");
    ok.sort_unstable();
    got.sort_unstable();
    assert_eq!(
        got.len(),
        ok.len(),
        "{} puts succeeded, {} messages arrived ({timed_out} puts timed out)",
        ok.len(),
        got.len()
    );
    assert_eq!(got, ok, "exactly the messages put arrive, once each");
}
