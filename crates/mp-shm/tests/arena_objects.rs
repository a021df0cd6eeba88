//! Values and locks live in shared arenas: tens of thousands of them fit
//! under a small descriptor limit, and they stay alive exactly as long as a
//! handle to them does, across processes.

mod common;

use std::time::Duration;

use common::*;
use mp_shm::Value;
use mp_sync::{Event, Lock};

/// Sets both the soft and the hard limit on open files to `n` in this
/// process (a forked child: the test process itself is not limited).
fn limit_open_files(n: u64) {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: a plain system call on a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

#[test]
fn sixty_thousand_values_and_locks_under_1024_descriptors() {
    let mut child = fork(|| {
        limit_open_files(1024);
        let values: Vec<Value<i64>> = (0..60_000)
            .map(|i| Value::new(i).expect("a value under the descriptor limit"))
            .collect();
        let locks: Vec<Lock> = (0..60_000)
            .map(|_| Lock::new().expect("a lock under the descriptor limit"))
            .collect();
        for (v, l) in values.iter().zip(&locks) {
            let _g = l.acquire().unwrap();
            v.update(|x| *x += 1);
        }
        assert!(
            values
                .iter()
                .enumerate()
                .all(|(i, v)| v.get() == i as i64 + 1)
        );
        assert!(locks.iter().all(|l| !l.locked()));
        assert!(mp_os::arena::arenas_mapped() < 100);
        drop(values);
        drop(locks);
        // Freed slots are used again: no new arenas for the same again.
        let before = mp_os::arena::arenas_mapped();
        let again: Vec<Lock> = (0..60_000).map(|_| Lock::new().unwrap()).collect();
        assert_eq!(mp_os::arena::arenas_mapped(), before);
        drop(again);
        0
    });
    assert_eq!(child.wait_within(Duration::from_secs(300)), 0);
}

#[test]
fn a_child_killed_holding_slots_does_not_fail_the_parent() {
    let values: Vec<Value<i64>> = (0..500).map(|i| Value::new(i).unwrap()).collect();
    let locks: Vec<Lock> = (0..500).map(|_| Lock::new().unwrap()).collect();
    let ready = Event::new().unwrap();
    let mut child = fork(|| {
        let _g = locks[0].acquire().unwrap();
        values[0].set(-1);
        ready.set();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    assert!(ready.wait_timeout(Duration::from_secs(30)));
    child.kill_and_reap();
    assert_eq!(values[0].get(), -1);
    // The dead holder's lock is taken over; everything else works.
    let _ = locks[0].acquire();
    assert!(
        values[1..]
            .iter()
            .enumerate()
            .all(|(i, v)| v.get() == i as i64 + 1)
    );
    drop((values, locks));
    let fresh: Vec<Value<i64>> = (0..500).map(|i| Value::new(i).unwrap()).collect();
    assert!(fresh.iter().enumerate().all(|(i, v)| v.get() == i as i64));
}

#[test]
fn a_handle_outlives_its_sender_while_it_travels() {
    let v = Value::new(5i64).unwrap();
    let bytes = postcard::to_allocvec(&v).unwrap();
    let probe = Lock::new().unwrap();
    let probe_bytes = postcard::to_allocvec(&probe).unwrap();
    drop(v);
    drop(probe);
    // Nobody holds either object now but the serialized handles.
    let child = fork(move || {
        let v: Value<i64> = postcard::from_bytes(&bytes).unwrap();
        let l: Lock = postcard::from_bytes(&probe_bytes).unwrap();
        let _g = l.acquire().unwrap();
        i32::from(v.get() != 5)
    });
    assert_eq!(child.wait(), 0);
}

#[test]
fn a_stale_handle_never_attaches_to_a_new_object() {
    let v = Value::new(1i64).unwrap();
    let bytes = postcard::to_allocvec(&v).unwrap();
    let back: Value<i64> = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back.get(), 1);
    drop((v, back));
    // The slot is free (and soon reused): the old handle is refused.
    let fresh: Vec<Value<i64>> = (0..1000).map(|_| Value::new(2i64).unwrap()).collect();
    assert!(postcard::from_bytes::<Value<i64>>(&bytes).is_err());
    assert!(fresh.iter().all(|f| f.get() == 2));
}
