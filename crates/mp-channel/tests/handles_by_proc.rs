//! Handles sent through a queue travel as `/proc/PID/fd/N` and must arrive
//! as the very object that was sent, or as an error saying why; never as
//! another object.

mod common;

use common::{LONG, fork};
use mp_channel::{Queue, RecvTimeoutError};
use mp_shm::Value;

const N: u64 = 50;

/// Runs the one-time set-up of shared values (an atfork registration) in
/// this process before it forks: a child forked while another test thread
/// is in the middle of it would wait for it for ever.
fn warm_up() {
    drop(Value::new(0u64).unwrap());
}

#[test]
fn values_put_and_dropped_at_once_arrive_as_themselves() {
    warm_up();
    let q = Queue::<Value<u64>>::new().unwrap();
    let done = Queue::<u8>::new().unwrap();
    let (qc, dc) = (q.clone(), done.clone());
    let mut child = fork(move || {
        for i in 0..N {
            // Created, put and dropped at once: the descriptor number is
            // free for the next Value as soon as the sender lets go.
            qc.put(Value::new(i).unwrap()).unwrap();
        }
        // Stay alive until the parent has every value.
        dc.get_timeout(LONG).unwrap();
        0
    });
    for i in 0..N {
        match q.get_timeout(LONG) {
            Ok(v) => assert_eq!(
                v.get(),
                i,
                "message {i} attached to another message's value"
            ),
            Err(e) => panic!("message {i}: {e}"),
        }
    }
    done.put(1).unwrap();
    assert_eq!(child.wait_within(LONG), 0);
}

#[test]
fn values_from_a_sender_that_exited_are_errors_never_other_values() {
    warm_up();
    let q = Queue::<Value<u64>>::new().unwrap();
    let qc = q.clone();
    let mut child = fork(move || {
        for i in 0..N {
            qc.put(Value::new(i).unwrap()).unwrap();
        }
        0
    });
    assert_eq!(child.wait_within(LONG), 0);
    // Values of our own, so that descriptor numbers and pids are in use.
    let _ours: Vec<_> = (0..N).map(|i| Value::new(1000 + i).unwrap()).collect();
    for i in 0..N {
        match q.get_timeout(LONG) {
            Ok(v) => panic!("message {i} attached to a value holding {}", v.get()),
            Err(RecvTimeoutError::Attach(why)) => {
                assert!(why.contains("exited"), "message {i}: {why}")
            }
            Err(e) => panic!("message {i}: unexpected error {e}"),
        }
    }
    assert!(q.empty());
}

#[test]
fn a_value_sent_twice_and_dropped_is_itself_or_an_error() {
    // The same bytes decoded twice: the second decode comes after the
    // sender let go (its export was acknowledged by the first receiver).
    let v = Value::new(7u64).unwrap();
    let bytes = postcard::to_allocvec(&v).unwrap();
    let first: Value<u64> = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(first.get(), 7);
    drop(v);
    drop(first);
    let _others: Vec<_> = (0..8).map(|i| Value::new(100 + i).unwrap()).collect();
    if let Ok(again) = postcard::from_bytes::<Value<u64>>(&bytes) {
        assert_eq!(again.get(), 7, "attached to another value");
    }
}

#[test]
fn descriptors_of_the_wrong_kind_are_refused() {
    use mp_os::handle::{collect_fds, provide_fds};
    let q = Queue::<u8>::new().unwrap();
    let (bytes, mut fds) = collect_fds(|| postcard::to_allocvec(&q));
    let bytes = bytes.unwrap();
    assert_eq!(fds.len(), 2, "segment and eventfd");
    let memfd = || -> std::os::fd::OwnedFd {
        rustix::fs::memfd_create("forged", rustix::fs::MemfdFlags::CLOEXEC).unwrap()
    };
    // A memfd where the eventfd belongs.
    let efd = std::mem::replace(&mut fds[1], memfd());
    let r = provide_fds(fds, || postcard::from_bytes::<Queue<u8>>(&bytes));
    assert!(r.is_err(), "a memfd taken for an eventfd");
    // An eventfd (or an unsealed memfd) where the segment belongs.
    let (_, fds) = collect_fds(|| postcard::to_allocvec(&q));
    let seg = fds.into_iter().next().unwrap();
    let efd2 = efd.try_clone().unwrap();
    let r = provide_fds(vec![efd, efd2], || {
        postcard::from_bytes::<Queue<u8>>(&bytes)
    });
    assert!(r.is_err(), "an eventfd taken for the segment");
    let r = provide_fds(vec![memfd(), seg], || {
        postcard::from_bytes::<Queue<u8>>(&bytes)
    });
    assert!(r.is_err(), "an unsealed memfd taken for the segment");
}

#[test]
fn many_senders_many_values_each_arrives_as_itself() {
    warm_up();
    const SENDERS: u64 = 4;
    const EACH: u64 = 500;
    let q = Queue::<(u64, Value<u64>)>::new().unwrap();
    let done = Queue::<u8>::new().unwrap();
    let mut children: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (qc, dc) = (q.clone(), done.clone());
            fork(move || {
                for i in 0..EACH {
                    let tag = s * 1_000_000 + i;
                    qc.put((tag, Value::new(tag).unwrap())).unwrap();
                }
                dc.get_timeout(LONG).unwrap();
                0
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..SENDERS * EACH {
        let (tag, v) = q.get_timeout(LONG).unwrap();
        assert_eq!(v.get(), tag, "message {tag} attached to another value");
        assert!(seen.insert(tag), "message {tag} twice");
    }
    for _ in 0..SENDERS {
        done.put(1).unwrap();
    }
    for c in &mut children {
        assert_eq!(c.wait_within(LONG), 0);
    }
    assert_eq!(seen.len() as u64, SENDERS * EACH);
}
