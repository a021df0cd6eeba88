//! Peers killed with SIGKILL: no corruption, no hang.

mod common;

use std::time::{Duration, Instant};

use common::{LONG, fork};
use mp_channel::{Pipe, Queue, RecvError};

fn pattern(n: usize, tag: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(tag))
        .collect()
}

#[test]
fn writer_killed_mid_stream_does_not_block_the_others() {
    // A streams 1 MiB messages through a 64 KiB ring: killed, it almost
    // surely dies in the middle of a message, holding the writers' lock.
    let (rx, tx) = Pipe::builder()
        .duplex(false)
        .capacity(64 * 1024)
        .build()
        .unwrap();
    let txa = tx.clone();
    let mut a = fork(move || {
        loop {
            txa.send_bytes(&pattern(1 << 20, 1)).unwrap();
        }
    });
    let mut buf = vec![0u8; 2 << 20];
    for _ in 0..2 {
        let n = rx.recv_bytes_into(&mut buf).unwrap();
        assert!(buf[..n] == pattern(1 << 20, 1)[..]);
    }
    // Let A get into the middle of a message, then kill it (left a zombie
    // until the end: zombies count as dead).
    std::thread::sleep(Duration::from_millis(5));
    a.kill();
    let txb = tx.clone();
    let mut b = fork(move || {
        for i in 0..2000u32 {
            txb.send_bytes(&i.to_le_bytes()).unwrap();
        }
        txb.send_bytes(&pattern(300_000, 2)).unwrap();
        0
    });
    drop(tx);
    let t = Instant::now();
    let mut next_b = 0u32;
    let mut big_b = false;
    loop {
        match rx.recv_bytes_into(&mut buf) {
            Ok(4) => {
                assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), next_b);
                next_b += 1;
            }
            Ok(300_000) => {
                assert!(buf[..300_000] == pattern(300_000, 2)[..]);
                big_b = true;
            }
            Ok(n) => {
                // The rest of A's complete messages: intact.
                assert_eq!(n, 1 << 20);
                assert!(buf[..n] == pattern(1 << 20, 1)[..]);
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(t.elapsed() < Duration::from_secs(60), "hang");
    }
    assert_eq!(next_b, 2000);
    assert!(big_b);
    assert_eq!(b.wait_within(LONG), 0);
    a.kill_and_reap();
}

#[test]
fn reader_killed_mid_stream_does_not_block_the_writer() {
    const N: u64 = 400_000;
    let q = Queue::<u64>::builder().ring_bytes(4096).build().unwrap();
    let (res_rx, res_tx) = Pipe::new(false).unwrap();
    let qp = q.clone();
    let mut producer = fork(move || {
        for i in 0..N {
            qp.put(i).unwrap();
        }
        0
    });
    // A forked child inherits the parent's open handles: close the
    // parent's producer side before forking the consumers, which wait for
    // every producer to go.
    q.close();
    let q1 = q.clone();
    let mut c1 = fork(move || {
        loop {
            let _ = q1.get();
        }
    });
    let q2 = q.clone();
    let mut c2 = fork(move || {
        let mut n = 0u64;
        let mut last = None;
        loop {
            match q2.get() {
                Ok(v) => {
                    if last.is_some_and(|l| l >= v) {
                        return 5; // FIFO broken
                    }
                    last = Some(v);
                    n += 1;
                }
                Err(RecvError::Disconnected) => break,
                Err(_) => return 6,
            }
        }
        res_tx.send(&n).unwrap();
        0
    });
    // (The parent's `res_tx` moved into the child's closure and is gone.)
    std::thread::sleep(Duration::from_millis(100));
    c1.kill(); // killed while consuming, maybe holding the readers' lock
    assert_eq!(producer.wait_within(LONG), 0, "the producer was blocked");
    drop(q);
    let n: u64 = res_rx.recv_timeout(LONG).unwrap();
    assert!(n > 0 && n <= N, "{n}");
    assert_eq!(c2.wait_within(LONG), 0);
    c1.kill_and_reap();
}

/// A small pseudo-random sequence (no dependency needed).
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn counts_survive_producers_and_consumers_killed_at_random() {
    let mut s = seed();
    for round in 0..20 {
        let q = Queue::<u64>::builder()
            .maxsize(20)
            .ring_bytes(4096)
            .build()
            .unwrap();
        let mut kids: Vec<_> = (0..3)
            .map(|k| {
                let q = q.clone();
                fork(move || {
                    for i in 0u64.. {
                        if (i + k) % 3 != 0 {
                            let _ = q.put_timeout(i, Duration::from_millis(5));
                        } else {
                            let _ = q.get_timeout(Duration::from_millis(5));
                        }
                    }
                    0
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(2_000 + lcg(&mut s) % 30_000));
        for k in &mut kids {
            k.kill_and_reap();
        }
        // Drain (slow checks skip what the dead left half written).
        while q.get_timeout(Duration::from_millis(300)).is_ok() {}
        assert_eq!(q.qsize(), 0, "round {round}: counts drifted");
        for i in 0..20 {
            q.put_timeout(i, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("round {round}: put {i}: {e}"));
        }
        assert!(q.put_nowait(99).unwrap_err().is_full(), "round {round}");
    }
}

#[test]
fn join_survives_producers_and_consumers_killed_at_random() {
    let mut s = seed();
    for round in 0..20 {
        let q = mp_channel::JoinableQueue::<u64>::with_capacity(10).unwrap();
        let mut kids: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                fork(move || {
                    for i in 0u64.. {
                        let _ = q.put_timeout(i, Duration::from_millis(5));
                        if q.get_timeout(Duration::from_millis(5)).is_ok() {
                            q.task_done().unwrap();
                        }
                    }
                    0
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(2_000 + lcg(&mut s) % 30_000));
        for k in &mut kids {
            k.kill_and_reap();
        }
        while q.get_timeout(Duration::from_millis(300)).is_ok() {
            q.task_done().unwrap();
        }
        // Every task is done, or was held by a killed consumer.
        match q.join_timeout(Duration::from_secs(10)) {
            Ok(true) | Err(mp_channel::Error::TasksLost { .. }) => {}
            other => panic!("round {round}: {other:?}, unfinished {}", q.unfinished()),
        }
        assert_eq!(q.unfinished(), 0, "round {round}");
        assert!(q.join_timeout(Duration::from_secs(1)).unwrap());
        assert_eq!(q.qsize(), 0);
    }
}
