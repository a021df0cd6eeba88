//! A manager served over TCP, used from a process that only knows the
//! address and the key; wrong keys on either side.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::*;
use mp_manager::{DictProxy, Error, Manager, QueueProxy};
use mp_proc::Process;

const KEY: &[u8] = b"the shared secret";

/// Knows nothing but the address and the key.
fn remote_client((addr, key): (String, Vec<u8>)) -> Vec<(String, u32)> {
    let m = Manager::connect(addr.as_str(), key).unwrap();
    let d: DictProxy<String, u32> = m.lookup("scores").unwrap();
    let q: QueueProxy<String> = m.lookup("jobs").unwrap();
    while let Ok(job) = q.get_timeout(Duration::from_millis(200)) {
        d.insert(job.clone(), job.len() as u32).unwrap();
    }
    // Objects it creates are there for the others too.
    let mine = m.list_from(vec![1u8, 2, 3]).unwrap();
    m.publish("from-remote", &mine).unwrap();
    d.items().unwrap()
}

#[test]
fn remote_manager_used_from_a_process_that_knows_only_the_address() {
    let server = Manager::serve("127.0.0.1:0", KEY.to_vec()).unwrap();
    let addr = tcp_addr(&server);
    assert_ne!(addr.port(), 0);
    let d = server.dict::<String, u32>().unwrap();
    let q = server.queue::<String>().unwrap();
    for job in ["alpha", "be", "gamma!"] {
        q.put(job.to_string()).unwrap();
    }
    server.publish("scores", &d).unwrap();
    server.publish("jobs", &q).unwrap();
    let p = Process::new(remote_client, (addr.to_string(), KEY.to_vec()));
    p.start().unwrap();
    let seen = p.join().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(d.get(&"gamma!".to_string()).unwrap(), Some(6));
    let mine: mp_manager::ListProxy<u8> = server.lookup("from-remote").unwrap();
    assert_eq!(mine.to_vec().unwrap(), [1, 2, 3]);
    let pid = server.pid().unwrap();
    drop(server);
    assert!(gone_within(pid, Duration::from_secs(10)));
}

#[test]
fn wrong_key_is_rejected_before_any_request() {
    let server = Manager::serve("127.0.0.1:0", KEY.to_vec()).unwrap();
    let addr = tcp_addr(&server);
    let e = Manager::connect(addr, b"not the key".to_vec()).unwrap_err();
    assert!(matches!(e, Error::Auth(_)), "unexpected {e:?}");

    // By hand: a wrong answer gets a refusal and a closed connection; a
    // request sent anyway is never answered.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let hello = read_frame(&mut s).unwrap().unwrap();
    let mut answer = tag(b"wrong", CLIENT_ROLE, &hello[10..]);
    answer.extend_from_slice(&[1u8; 32]);
    send_frame(&mut s, &answer).unwrap();
    let _ = send_frame(&mut s, &[0]); // a Ping, if it were read
    assert_eq!(read_frame(&mut s).unwrap(), Some(vec![1]), "a refusal");
    assert_eq!(
        read_frame(&mut s).unwrap(),
        None,
        "then the connection closes"
    );

    // A request instead of an answer is not a valid answer either.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    read_frame(&mut s).unwrap().unwrap();
    send_frame(&mut s, &[0]).unwrap();
    assert_eq!(read_frame(&mut s).unwrap(), Some(vec![1]));
    assert_eq!(read_frame(&mut s).unwrap(), None);

    // The right key still works.
    let good = Manager::connect(addr, KEY.to_vec()).unwrap();
    let l = good.list::<u8>().unwrap();
    l.append(1).unwrap();
    assert_eq!(l.len().unwrap(), 1);
}

#[test]
fn a_server_that_does_not_know_the_key_is_rejected_by_the_client() {
    // An impostor that answers the client's challenge without the key.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut hello = b"MPMGR\0\0\x01".to_vec();
        hello.extend_from_slice(&1u16.to_le_bytes());
        hello.extend_from_slice(&[3u8; 32]);
        send_frame(&mut s, &hello).unwrap();
        let _answer = read_frame(&mut s).unwrap();
        let mut welcome = vec![0u8];
        welcome.extend_from_slice(&[0u8; 32]);
        send_frame(&mut s, &welcome).unwrap();
    });
    let e = Manager::connect(addr, KEY.to_vec()).unwrap_err();
    assert!(matches!(e, Error::Auth(_)), "unexpected {e:?}");
    t.join().unwrap();
}

#[test]
fn serve_forever_in_this_process() {
    // Bind to find a free port, then serve on it from a thread.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let a2 = addr.clone();
    let t = std::thread::spawn(move || {
        Manager::builder()
            .tcp(a2.as_str())
            .unwrap()
            .authkey(KEY.to_vec())
            .serve_forever()
    });
    let mut client = None;
    for _ in 0..200 {
        match Manager::connect(addr.as_str(), KEY.to_vec()) {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let client = client.expect("serve_forever never listened");
    let ns = client.namespace().unwrap();
    ns.set("x", &1u8).unwrap();
    assert_eq!(ns.get::<u8>("x").unwrap(), 1);
    client.shutdown_server().unwrap();
    t.join().unwrap().unwrap();
}
