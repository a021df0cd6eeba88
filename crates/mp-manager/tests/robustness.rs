//! Untrusted input and misbehaving clients: malformed, truncated, oversized
//! and random frames, silent clients, clients killed mid-request.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use mp_manager::{DictProxy, Error, LockProxy, Manager, QueueProxy, SemaphoreProxy};
use mp_proc::Process;
use proptest::prelude::*;

const KEY: &[u8] = b"robustness key";

fn server() -> &'static Manager {
    static M: OnceLock<Manager> = OnceLock::new();
    M.get_or_init(|| Manager::serve("127.0.0.1:0", KEY.to_vec()).unwrap())
}

/// The server still answers ordinary requests promptly.
fn still_serves(m: &Manager) {
    let t = Instant::now();
    let d = m.dict::<u32, u32>().unwrap();
    d.insert(1, 2).unwrap();
    assert_eq!(d.get(&1).unwrap(), Some(2));
    assert!(t.elapsed() < Duration::from_secs(10), "the server stalled");
}

#[test]
fn garbage_before_authentication_closes_only_that_connection() {
    let m = server();
    let addr = tcp_addr(m);
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xff, 0xff, 0xff, 0xff][..], // a 4 GiB frame
        &[200, 0, 0, 0, 1, 2, 3][..],  // over the handshake limit
        &[64, 0, 0, 0][..],            // right size, then nothing
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        read_frame(&mut s).unwrap().expect("challenge");
        s.write_all(junk).unwrap();
        if junk.len() == 4 && junk[0] == 64 {
            // A truncated answer: close our side; the server must not wait
            // for the rest.
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let r = read_frame(&mut s).unwrap();
        assert!(r.is_none() || r == Some(vec![1]), "{r:?}");
        still_serves(m);
    }
}

#[test]
fn a_silent_client_does_not_stall_others_and_is_dropped() {
    let m = server();
    let addr = tcp_addr(m);
    // Connects and says nothing.
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    read_frame(&mut silent).unwrap().expect("challenge");
    // An authenticated client that sends half a frame and stops.
    let mut half = authed(addr, KEY);
    half.write_all(&[100, 0, 0, 0, 1, 2, 3]).unwrap();
    still_serves(m);
    // The handshake has a deadline (1 s): the silent one is dropped.
    let t = Instant::now();
    assert_eq!(read_frame(&mut silent).unwrap(), None);
    assert!(t.elapsed() < Duration::from_secs(25));
    still_serves(m);
}

#[test]
fn malformed_requests_get_error_replies() {
    let m = server();
    let mut s = authed(tcp_addr(m), KEY);
    // Unknown request variant, unknown op, trailing bytes, empty body.
    for body in [&[99u8][..], &[3, 1, 200][..], &[0, 0][..], &[][..]] {
        send_frame(&mut s, body).unwrap();
        let reply = read_frame(&mut s).unwrap().expect("an error reply");
        // Reply::Err is variant 12; RemoteError::BadRequest is variant 14.
        assert_eq!(reply[..2], [12, 14], "{body:?} -> {reply:?}");
    }
    // A valid Ping (variant 0) on the same connection: Reply::Ok (0).
    send_frame(&mut s, &[0]).unwrap();
    assert_eq!(read_frame(&mut s).unwrap(), Some(vec![0]));
    // An oversized frame closes the connection.
    s.write_all(&(65u32 << 20).to_le_bytes()).unwrap();
    assert_eq!(read_frame(&mut s).unwrap(), None);
    still_serves(m);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random and mutated frames thrown at a live server (its own, so that
    /// the objects random requests touch are only the fuzzer's): every
    /// frame gets a reply or a closed connection, and the server keeps
    /// serving.
    #[test]
    fn fuzz_a_live_server(
        frames in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..48),
                (0usize..5, any::<usize>(), any::<u8>()).prop_map(|(which, at, x)| {
                    let seeds: [&[u8]; 5] = [&[0], &[1, 2], &[1, 0, 0], &[4, 1, b'x'], &[2, 1, 0]];
                    let mut v = seeds[which].to_vec();
                    let n = v.len();
                    v[at % n] ^= x;
                    v
                }),
            ],
            1..8,
        )
    ) {
        static FUZZ: OnceLock<Manager> = OnceLock::new();
        let m = FUZZ.get_or_init(|| Manager::serve("127.0.0.1:0", KEY.to_vec()).unwrap());
        let addr = tcp_addr(m);
        let mut s = authed(addr, KEY);
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        for f in frames {
            if f == [5] {
                continue; // a well-formed Shutdown request
            }
            if send_frame(&mut s, &f).is_err() {
                break;
            }
            match read_frame(&mut s) {
                Ok(Some(_)) => {}
                // Closed, or a request that blocks (a queue get, a lock
                // acquire): drop the connection and go on.
                Ok(None) | Err(_) => break,
            }
        }
        drop(s);
        still_serves(m);
    }
}

/// Authenticates, sends a third of a frame, announces it, and waits to be
/// killed.
fn stalls_mid_frame((addr, ready): (String, mp_shm::Value<u32>)) {
    let mut s = authed(addr.parse().unwrap(), KEY);
    s.write_all(&[30, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    ready.set(1);
    std::thread::sleep(Duration::from_secs(60));
}

/// Takes a dict's exclusive lock, a Lock, a semaphore unit, blocks in a
/// queue get from another thread, announces it, and waits to be killed.
fn holds_everything(
    (d, lock, sem, q, ready): (
        DictProxy<u8, u8>,
        LockProxy,
        SemaphoreProxy,
        QueueProxy<u8>,
        mp_shm::Value<u32>,
    ),
) {
    let _dg = d.lock().unwrap();
    let _lg = lock.acquire().unwrap();
    let _sg = sem.acquire().unwrap();
    std::thread::spawn(move || q.get());
    std::thread::sleep(Duration::from_millis(200)); // let the get reach the server
    ready.set(1);
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_client_killed_mid_request_leaves_the_server_consistent() {
    let m = server();
    let ready = mp_shm::Value::new(0u32).unwrap();
    let p = Process::new(stalls_mid_frame, (tcp_addr(m).to_string(), ready.clone()));
    p.start().unwrap();
    wait_nonzero(&ready);
    still_serves(m);
    p.kill().unwrap();
    assert!(p.join().is_err());
    still_serves(m);
    a_killed_holder_releases_everything(m);
}

#[test]
fn a_local_client_killed_while_holding_locks_releases_them() {
    // A local manager: the connections are shared-memory pipes, and the
    // server notices the dead client through the pipe and the socket.
    let m = Manager::new().unwrap();
    a_killed_holder_releases_everything(&m);
    m.shutdown().unwrap();
}

/// A child takes locks, a semaphore unit and blocks in a queue get, and is
/// killed: everything comes back.
fn a_killed_holder_releases_everything(m: &Manager) {
    let d = m.dict::<u8, u8>().unwrap();
    let lock = m.lock().unwrap();
    let sem = m.semaphore(1).unwrap();
    let q = m.queue::<u8>().unwrap();
    let ready = mp_shm::Value::new(0u32).unwrap();
    let p = Process::new(
        holds_everything,
        (
            d.clone(),
            lock.clone(),
            sem.clone(),
            q.clone(),
            ready.clone(),
        ),
    );
    p.start().unwrap();
    wait_nonzero(&ready);
    // Held by the child: others wait.
    assert!(lock.try_acquire().unwrap().is_none());
    assert!(sem.try_acquire().unwrap().is_none());
    assert!(
        d.lock_timeout(Duration::from_millis(50))
            .unwrap_err()
            .is_timeout()
    );
    let pid = p.pid().unwrap();
    p.kill().unwrap();
    assert!(p.join().is_err());
    assert!(gone_within(pid, Duration::from_secs(10)));
    // Everything it held comes back once the server sees its connections
    // close.
    let _dg = d.lock_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        lock.acquire_timeout(Duration::from_secs(10))
            .unwrap()
            .is_some()
    );
    assert!(
        sem.acquire_timeout(Duration::from_secs(10))
            .unwrap()
            .is_some()
    );
    // Its blocked get took nothing: an item put now is ours.
    q.put(7).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 7);
    drop(_dg);
    still_serves(m);
}

#[test]
fn a_slow_blocking_client_does_not_stall_the_others() {
    let m = server();
    let q = m.queue::<u8>().unwrap();
    let e = m.event().unwrap();
    let blocked: Vec<_> = (0..8)
        .map(|i| {
            let (q, e) = (q.clone(), e.clone());
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    q.get_timeout(Duration::from_secs(30)).map(|_| true)
                } else {
                    e.wait_timeout(Duration::from_secs(30))
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    still_serves(m);
    for _ in 0..4 {
        q.put(1).unwrap();
    }
    e.set().unwrap();
    for h in blocked {
        assert!(h.join().unwrap().unwrap());
    }
}

#[test]
fn requests_over_the_frame_limit_are_refused_by_the_client() {
    // Requests larger than the frame limit are refused by the client
    // before sending; the connection and server are fine.
    let m = server();
    let l = m.list::<Vec<u8>>().unwrap();
    let e = l.append(vec![0u8; 65 << 20]).unwrap_err();
    assert!(matches!(e, Error::Codec { .. }), "{e:?}");
    l.append(vec![1, 2, 3]).unwrap();
    assert_eq!(l.len().unwrap(), 1);
}
