//! Pipes across processes: messages, framing, sizes, timeouts, close and
//! disconnection.

mod common;

use std::time::{Duration, Instant};

use common::{LONG, fork};
use mp_channel::{Pipe, RecvError, RecvTimeoutError, SendError, WaitMode, Waitable, pipe};

#[test]
fn duplex_ping_pong_between_processes() {
    for mode in [WaitMode::Adaptive, WaitMode::NoSpin, WaitMode::BusyPoll] {
        let (a, b) = Pipe::builder().wait_mode(mode).build().unwrap();
        let mut child = fork(move || {
            for _ in 0..1000 {
                let v: u64 = b.recv().unwrap();
                b.send(&(v + 1)).unwrap();
            }
            0
        });
        for i in 0..1000u64 {
            a.send(&(i * 2)).unwrap();
            assert_eq!(a.recv::<u64>().unwrap(), i * 2 + 1);
        }
        assert_eq!(child.wait_within(LONG), 0);
    }
}

#[test]
fn each_send_is_one_message() {
    let (rx, tx) = Pipe::new(false).unwrap();
    let mut child = fork(move || {
        for n in 0..2000usize {
            tx.send_bytes(&vec![(n % 251) as u8; n % 700]).unwrap();
        }
        0
    });
    for n in 0..2000usize {
        let m = rx.recv_bytes().unwrap();
        assert_eq!(m, vec![(n % 251) as u8; n % 700], "message {n}");
    }
    assert_eq!(child.wait_within(LONG), 0);
    assert!(matches!(rx.recv_bytes(), Err(RecvError::Disconnected)));
}

#[test]
fn recv_bytes_into_too_short_keeps_the_message() {
    let (a, b) = pipe().unwrap();
    a.send_bytes(b"0123456789").unwrap();
    let mut small = [0u8; 4];
    match b.recv_bytes_into(&mut small) {
        Err(RecvError::TooShort { needed }) => assert_eq!(needed, 10),
        other => panic!("{other:?}"),
    }
    let mut big = [0u8; 16];
    assert_eq!(b.recv_bytes_into(&mut big).unwrap(), 10);
    assert_eq!(&big[..10], b"0123456789");
}

#[test]
fn large_messages_bigger_than_the_ring_arrive_intact() {
    let (a, b) = Pipe::builder().capacity(64 * 1024).build().unwrap();
    let mk = |n: usize, seed: u32| -> Vec<u8> {
        let mut x = seed.wrapping_mul(2654435761) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    };
    // The last one is large enough to be copied out of the ring with
    // non-temporal stores (into a misaligned buffer, with a ragged end).
    let sizes = [
        5 << 20,
        3 << 20,
        100_000,
        7,
        64 * 1024,
        9 << 20,
        (17 << 20) + 5,
    ];
    let mut child = fork(move || {
        for (i, &n) in sizes.iter().enumerate() {
            if i % 2 == 0 {
                b.send_bytes(&mk(n, i as u32)).unwrap();
            } else {
                b.send(&mk(n, i as u32)).unwrap();
            }
        }
        // And back: a big value received by the child.
        let v: Vec<u8> = b.recv().unwrap();
        if v == mk(4 << 20, 99) { 0 } else { 3 }
    });
    for (i, &n) in sizes.iter().enumerate() {
        let got = if i % 2 == 0 {
            let mut buf = vec![0u8; 18 << 20];
            let len = a.recv_bytes_into(&mut buf[3..]).unwrap();
            buf[3..3 + len].to_vec()
        } else {
            a.recv::<Vec<u8>>().unwrap()
        };
        assert_eq!(got.len(), n, "message {i}");
        assert!(got == mk(n, i as u32), "message {i} corrupted");
    }
    a.send(&mk(4 << 20, 99)).unwrap();
    assert_eq!(child.wait_within(LONG), 0);
}

#[test]
fn corrupt_frame_is_a_decode_error() {
    let (a, b) = pipe().unwrap();
    a.send_bytes(&[0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(b.recv::<String>(), Err(RecvError::Decode(_))));
    a.send_bytes(&[5, b'a']).unwrap();
    assert!(matches!(b.recv::<String>(), Err(RecvError::Decode(_))));
    // The pipe still works.
    a.send(&"fine").unwrap();
    assert_eq!(b.recv::<String>().unwrap(), "fine");
}

#[test]
fn timeouts_return_after_about_their_duration() {
    let (a, b) = pipe().unwrap();
    let t = Instant::now();
    assert!(
        b.recv_timeout::<u8>(Duration::from_millis(200))
            .unwrap_err()
            .is_timeout()
    );
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(190) && e < Duration::from_secs(5),
        "{e:?}"
    );
    assert!(b.try_recv::<u8>().unwrap_err().is_empty());
    let t = Instant::now();
    assert!(!b.poll(Some(Duration::from_millis(100))));
    assert!(t.elapsed() >= Duration::from_millis(90));
    // A full ring: send_timeout times out.
    let (x, _y) = Pipe::builder().capacity(4096).build().unwrap();
    let mut n = 0;
    let t = Instant::now();
    loop {
        match x.send_timeout(&[0u8; 500][..], Duration::from_millis(100)) {
            Ok(()) => n += 1,
            Err(e) => {
                assert!(e.is_timeout(), "{e:?}");
                break;
            }
        }
    }
    assert!(n > 0 && t.elapsed() >= Duration::from_millis(90));
    drop(a);
}

#[test]
fn disconnected_when_the_writer_exits_without_dropping() {
    let (rx, tx) = Pipe::new(false).unwrap();
    let mut child = fork(move || {
        tx.send(&1u32).unwrap();
        tx.send(&2u32).unwrap();
        0 // _exit: no destructor runs; the reader finds the process dead
    });
    // The parent's copy of `tx` moved into the closure, dropped here at
    // fork time (only the child runs the closure).
    assert_eq!(child.wait_within(LONG), 0);
    assert_eq!(rx.recv::<u32>().unwrap(), 1);
    assert_eq!(rx.recv::<u32>().unwrap(), 2);
    let t = Instant::now();
    assert!(matches!(rx.recv::<u32>(), Err(RecvError::Disconnected)));
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn disconnected_when_the_writer_drops_or_closes() {
    let (rx, tx) = Pipe::new(false).unwrap();
    let mut child = fork(move || {
        tx.send(&7u8).unwrap();
        drop(tx);
        std::thread::sleep(Duration::from_millis(300));
        0
    });
    assert_eq!(rx.recv::<u8>().unwrap(), 7);
    let t = Instant::now();
    assert!(matches!(rx.recv::<u8>(), Err(RecvError::Disconnected)));
    // Dropped (not dead): noticed at once, not after a liveness slice.
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(child.wait_within(LONG), 0);

    let (a, b) = pipe().unwrap();
    let mut child = fork(move || {
        b.send(&1u8).unwrap();
        b.close();
        assert!(matches!(b.send(&2u8), Err(SendError::Closed(()))));
        assert!(matches!(b.recv::<u8>(), Err(RecvError::Closed)));
        std::thread::sleep(Duration::from_millis(300));
        0
    });
    assert_eq!(a.recv::<u8>().unwrap(), 1);
    assert!(matches!(a.recv::<u8>(), Err(RecvError::Disconnected)));
    assert!(matches!(a.send(&3u8), Err(SendError::Disconnected(()))));
    assert_eq!(child.wait_within(LONG), 0);
}

#[test]
fn writer_gets_an_error_when_every_reader_has_gone() {
    let (rx, tx) = Pipe::builder()
        .duplex(false)
        .capacity(4096)
        .build()
        .unwrap();
    let mut child = fork(move || {
        let _ = rx.recv::<u8>();
        0 // exits without dropping `rx`
    });
    // The parent's `rx` moved into the child's closure.
    tx.send(&1u8).unwrap();
    assert_eq!(child.wait_within(LONG), 0);
    // Fill the ring: the writer blocks, then finds the reader dead.
    let t = Instant::now();
    let r = loop {
        if let Err(e) = tx.send(&[0u8; 100][..]) {
            break e;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no error");
    };
    assert!(r.is_disconnected(), "{r:?}");
}

#[test]
fn inherited_end_keeps_the_pipe_connected() {
    // The parent drops its writer right after fork; the child's inherited
    // copy still counts (fork duplicates holders like descriptors).
    let (rx, tx) = Pipe::new(false).unwrap();
    let tx2 = tx.clone();
    let mut child = fork(move || {
        std::thread::sleep(Duration::from_millis(200));
        tx2.send(&5u8).unwrap();
        0
    });
    drop(tx);
    assert_eq!(rx.recv::<u8>().unwrap(), 5);
    assert_eq!(child.wait_within(LONG), 0);
    assert!(matches!(rx.recv::<u8>(), Err(RecvError::Disconnected)));
}

#[test]
fn cloned_ends_share_the_pipe() {
    let (a, b) = pipe().unwrap();
    let a2 = a.clone();
    a.send(&1u8).unwrap();
    a2.send(&2u8).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    assert_eq!(b.recv::<u8>().unwrap(), 2);
    drop(a);
    a2.send(&3u8).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 3);
    drop(a2);
    assert!(matches!(b.recv::<u8>(), Err(RecvError::Disconnected)));
}

#[test]
fn a_clone_dropped_while_another_thread_forks_does_not_stay_registered() {
    // One thread keeps cloning and dropping a sender while another forks:
    // a clone dropped while a fork is being prepared must leave no
    // registration behind under this process, else the channel would stay
    // connected after every sender has gone.
    let (rx, tx) = Pipe::new(false).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let clones: Vec<_> = (0..16).map(|_| tx.clone()).collect();
                drop(clones);
            }
        });
        for _ in 0..400 {
            assert_eq!(fork(|| 0).wait_within(LONG), 0);
            // Frees the dead child's slot in the holder tables (a slow
            // readiness check prunes), so that they never fill up.
            rx.check_stalled();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    drop(tx);
    let r = rx.recv_timeout::<u8>(Duration::from_secs(20));
    assert!(matches!(r, Err(RecvTimeoutError::Disconnected)), "{r:?}");
}
