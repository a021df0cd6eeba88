//! A `SharedBuf` moves through queues and pipes by handle: the receiver sees
//! the sender's bytes, writes its own in place and sends the buffer back;
//! a decoded-twice message cannot alias it; a sender killed after its put
//! leaves the receiver an error (or the buffer), never a hang or a leak.

use std::time::Duration;

use multiprocessing::{Pipe, Process, Queue, SharedBuf, StartMethod};

const LEN: usize = 8 << 20;

fn pattern(i: usize, round: u8) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(round)
}

/// Receives buffers, checks them, rewrites them with the next round's
/// pattern in place, and sends them back.
fn echo((inbox, outbox): (Queue<SharedBuf>, Queue<SharedBuf>)) -> u32 {
    let mut rounds = 0;
    while let Ok(mut buf) = inbox.get_timeout(Duration::from_secs(60)) {
        if buf.is_empty() {
            break;
        }
        let round = buf[0];
        for (i, b) in buf.iter().enumerate().skip(1) {
            assert_eq!(*b, pattern(i, round), "byte {i} of round {round}");
        }
        let next = round.wrapping_add(1);
        buf[0] = next;
        for (i, b) in buf.iter_mut().enumerate().skip(1) {
            *b = pattern(i, next);
        }
        outbox.put(buf).unwrap();
        rounds += 1;
    }
    rounds
}

#[test]
fn buffers_go_back_and_forth_through_queues_without_copies() {
    // SAFETY: the target only uses the queues it is given.
    unsafe { multiprocessing::proc::enable_fork() };
    for m in StartMethod::ALL {
        let (to_child, from_child) = (Queue::new().unwrap(), Queue::new().unwrap());
        let p = Process::new(echo, (to_child.clone(), from_child.clone())).start_method(m);
        p.start().unwrap();
        let mut round = 0u8;
        let mut buf = SharedBuf::new(LEN).unwrap();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = pattern(i, round);
        }
        buf[0] = round;
        for _ in 0..5 {
            to_child.put(buf).unwrap();
            buf = from_child
                .get_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("{m:?}: {e}"));
            round += 1;
            assert_eq!(buf[0], round, "{m:?}");
            assert!(
                buf.iter()
                    .enumerate()
                    .skip(1)
                    .all(|(i, b)| *b == pattern(i, round)),
                "{m:?}: round {round}"
            );
        }
        to_child.put(SharedBuf::new(0).unwrap()).unwrap();
        assert_eq!(p.join().unwrap(), 5, "{m:?}");
    }
}

fn send_one(end: multiprocessing::channel::PipeEnd) {
    let buf = SharedBuf::from_slice(b"from the child").unwrap();
    end.send(&buf).unwrap();
    // Live until the parent has decoded the message (a handle re-attaches
    // through /proc while its sender runs).
    let _: Result<u8, _> = end.recv_timeout(Duration::from_secs(60));
}

#[test]
fn a_pipe_carries_a_buffer_and_the_same_message_cannot_be_taken_twice() {
    let (a, b) = Pipe::new(true).unwrap();
    let p = Process::new(send_one, b);
    p.start().unwrap();
    assert!(a.poll(Some(Duration::from_secs(60))), "nothing sent");
    let bytes = a.recv_bytes().unwrap();
    let first: SharedBuf = postcard::from_bytes(&bytes).unwrap();
    let second = postcard::from_bytes::<SharedBuf>(&bytes);
    assert!(second.is_err(), "two owners of one buffer");
    assert_eq!(&*first, b"from the child");
    a.send(&1u8).unwrap();
    p.join().unwrap();
    // Still ours after the sender has gone.
    assert_eq!(&*first, b"from the child");
}

fn put_then_wait_to_be_killed(q: Queue<SharedBuf>) {
    let mut buf = SharedBuf::new(LEN).unwrap();
    buf.fill(7);
    q.put(buf).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_sender_killed_after_its_put_leaves_an_error_or_the_buffer() {
    let q = Queue::<SharedBuf>::new().unwrap();
    let p = Process::new(put_then_wait_to_be_killed, q.clone());
    p.start().unwrap();
    // Wait until the message is in the queue, then kill the sender.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while q.empty() {
        assert!(std::time::Instant::now() < deadline, "nothing was put");
        std::thread::sleep(Duration::from_millis(5));
    }
    p.kill().unwrap();
    let _ = p.join();
    match q.get_timeout(Duration::from_secs(60)) {
        Ok(buf) => assert!(buf.iter().all(|&b| b == 7)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
