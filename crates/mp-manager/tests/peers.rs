//! Peers that are not trusted or not there: crowds of idle connections, an
//! empty key on TCP, and clients that go away holding tasks of a
//! JoinableQueue.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use mp_manager::{Error, JoinableQueueProxy, Manager, RemoteError};
use mp_proc::Process;

const KEY: &[u8] = b"peers key";

#[test]
fn two_hundred_idle_connections_do_not_keep_out_a_good_client() {
    let server = Manager::serve("127.0.0.1:0", KEY.to_vec()).unwrap();
    let addr = tcp_addr(&server);
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let opened = Instant::now();
    // A good client gets in and is served promptly.
    let t = Instant::now();
    let client = Manager::connect(addr, KEY.to_vec()).unwrap();
    let d = client.dict::<u32, u32>().unwrap();
    d.insert(1, 2).unwrap();
    assert_eq!(d.get(&1).unwrap(), Some(2));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Every idle one is closed about a second after it was opened (some
    // at once, to make room).
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        loop {
            match read_frame(&mut s) {
                Ok(Some(_)) => continue, // the challenge
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    let all_closed = opened.elapsed();
    assert!(
        all_closed < Duration::from_secs(6),
        "idle connections kept for {all_closed:?}"
    );
    // The good client's connection was not among them.
    assert_eq!(d.get(&1).unwrap(), Some(2));
}

#[test]
fn an_empty_key_is_refused_for_tcp() {
    let e = Manager::serve("127.0.0.1:0", Vec::new()).unwrap_err();
    assert!(matches!(e, Error::EmptyAuthkey), "{e:?}");
    let e = Manager::builder()
        .tcp("127.0.0.1:0")
        .unwrap()
        .authkey(b"".to_vec())
        .serve_forever()
        .unwrap_err();
    assert!(matches!(e, Error::EmptyAuthkey), "{e:?}");
    assert!(e.to_string().contains("empty authentication key"), "{e}");
    // A client refuses to offer one, before it connects.
    let server = Manager::serve("127.0.0.1:0", KEY.to_vec()).unwrap();
    let e = Manager::connect(tcp_addr(&server), Vec::new()).unwrap_err();
    assert!(matches!(e, Error::EmptyAuthkey), "{e:?}");
    // A local manager's key is its own random one; an empty key given to
    // a local manager is allowed (the socket admits only this user).
    let local = Manager::builder().authkey(Vec::new()).start().unwrap();
    local.list::<u8>().unwrap().append(1).unwrap();
}

/// Takes a task and returns without `task_done` (the process exits).
fn takes_and_exits(q: JoinableQueueProxy<u32>) -> u32 {
    q.get().unwrap()
}

/// Takes a task, says so, and waits (to be killed, or to finish it when
/// `finish` is set).
fn takes_and_waits(
    (q, ready, finish): (
        JoinableQueueProxy<u32>,
        mp_shm::Value<u32>,
        mp_shm::Value<u32>,
    ),
) {
    q.get().unwrap();
    ready.set(1);
    let t = Instant::now();
    while finish.get() == 0 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    q.task_done().unwrap();
}

fn lost(r: Result<(), Error>) -> u64 {
    match r {
        Err(Error::Remote(RemoteError::TasksLost { count })) => count,
        other => panic!("expected TasksLost, got {other:?}"),
    }
}

#[test]
fn join_writes_off_the_tasks_of_clients_that_went_away() {
    let m = Manager::new().unwrap();
    let q = m.joinable_queue::<u32>().unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    // One exits holding a task.
    let p = Process::new(takes_and_exits, q.clone());
    p.start().unwrap();
    p.join().unwrap();
    // One is killed holding a task.
    let ready = mp_shm::Value::new(0u32).unwrap();
    let never = mp_shm::Value::new(0u32).unwrap();
    let victim = Process::new(takes_and_waits, (q.clone(), ready.clone(), never));
    victim.start().unwrap();
    wait_nonzero(&ready);
    victim.kill().unwrap();
    assert!(victim.join().is_err());
    // The last is done here.
    q.get().unwrap();
    q.task_done().unwrap();
    // The two dead clients' tasks are written off, and join returns.
    let t = Instant::now();
    let mut count = 0;
    while count < 2 {
        count += lost(q.join_timeout(Duration::from_secs(20)));
    }
    assert_eq!(count, 2);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // Once: the next join has nothing to wait for.
    q.join_timeout(Duration::from_secs(5)).unwrap();
    m.shutdown().unwrap();
}

#[test]
fn join_waits_for_the_tasks_of_live_clients() {
    let m = Manager::new().unwrap();
    let q = m.joinable_queue::<u32>().unwrap();
    q.put(1).unwrap();
    let ready = mp_shm::Value::new(0u32).unwrap();
    let finish = mp_shm::Value::new(0u32).unwrap();
    let live = Process::new(takes_and_waits, (q.clone(), ready.clone(), finish.clone()));
    live.start().unwrap();
    wait_nonzero(&ready);
    // Its task is being worked on: nothing is written off.
    assert!(
        q.join_timeout(Duration::from_millis(500))
            .unwrap_err()
            .is_timeout()
    );
    finish.set(1);
    live.join().unwrap();
    q.join_timeout(Duration::from_secs(20)).unwrap();
    m.shutdown().unwrap();
}
