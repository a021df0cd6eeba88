//! Reference counting: an object is freed when the last proxy of it,
//! in any process, lets go; proxies in transit and proxies stored inside
//! other objects keep theirs alive.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mp_manager::{Address, DictProxy, Error, ListProxy, Manager, QueueProxy, RemoteError};
use mp_proc::{Process, StartMethod};

/// Waits (generously) until the server holds `n` objects.
fn count_becomes(m: &Manager, n: usize) -> usize {
    let t = Instant::now();
    loop {
        let c = m.object_count().unwrap();
        if c == n || t.elapsed() > Duration::from_secs(30) {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn creating_and_dropping_proxies_in_a_loop_leaves_nothing_behind() {
    let m = Manager::new().unwrap();
    let base = m.object_count().unwrap();
    for i in 0..200u32 {
        let d = m.dict::<u32, u32>().unwrap();
        d.insert(i, i).unwrap();
        let clones: Vec<_> = (0..3).map(|_| d.clone()).collect();
        let l = m.list_from(vec![i]).unwrap();
        let q = m.queue::<u32>().unwrap();
        let lock = m.lock().unwrap();
        drop(lock.acquire().unwrap());
        assert_eq!(m.object_count().unwrap(), base + 4);
        drop(d);
        // The clones keep the dict.
        assert_eq!(clones[0].get(&i).unwrap(), Some(i));
        drop((clones, l, q, lock));
    }
    assert_eq!(m.object_count().unwrap(), base);
    // Every kind is freed, and a freed object is gone for good.
    let l = m.list::<u8>().unwrap();
    let copy: ListProxy<u8> = postcard::from_bytes(&postcard::to_allocvec(&l).unwrap()).unwrap();
    drop(l);
    copy.append(1).unwrap(); // the decoded copy holds it
    let kinds = (
        m.namespace().unwrap(),
        m.value(1u8).unwrap(),
        m.rlock().unwrap(),
        m.semaphore(1).unwrap(),
        m.bounded_semaphore(1).unwrap(),
        m.event().unwrap(),
        m.condition().unwrap(),
        m.barrier(2).unwrap(),
        m.array(vec![1u8]).unwrap(),
        m.joinable_queue::<u8>().unwrap(),
    );
    assert_eq!(m.object_count().unwrap(), base + 11);
    drop(kinds);
    drop(copy);
    assert_eq!(m.object_count().unwrap(), base);
}

#[test]
fn published_and_stored_objects_are_kept() {
    let m = Manager::new().unwrap();
    let base = m.object_count().unwrap();
    // Published: kept while the name names it.
    let q = m.queue::<u8>().unwrap();
    m.publish("q", &q).unwrap();
    drop(q);
    assert_eq!(m.object_count().unwrap(), base + 1);
    let again = m.lookup::<QueueProxy<u8>>("q").unwrap();
    again.put(1).unwrap();
    m.publish("q", &m.queue::<u8>().unwrap()).unwrap();
    drop(again);
    assert_eq!(m.object_count().unwrap(), base + 1, "replaced and released");

    // Stored in another object: kept, and it writes through, however often
    // it is read back.
    let d = m.dict::<String, ListProxy<i32>>().unwrap();
    let l = m.list::<i32>().unwrap();
    d.insert("a".into(), l.clone()).unwrap();
    drop(l);
    for i in 0..3 {
        let inner = d.item(&"a".into()).unwrap();
        inner.append(i).unwrap();
    }
    assert_eq!(d.item(&"a".into()).unwrap().to_vec().unwrap(), [0, 1, 2]);
}

fn append_and_report((l, out): (ListProxy<u32>, QueueProxy<Vec<u32>>)) {
    l.append(7).unwrap();
    out.put(l.to_vec().unwrap()).unwrap();
}

fn decode_later((bytes, out): (Vec<u8>, QueueProxy<Vec<u32>>)) {
    let l: ListProxy<u32> = postcard::from_bytes(&bytes).unwrap();
    append_and_report((l, out));
}

#[test]
fn a_proxy_sent_to_a_child_outlives_the_parents() {
    // SAFETY: the targets only talk to the manager over sockets.
    unsafe { mp_proc::enable_fork() };
    for method in StartMethod::ALL {
        let m = Manager::new().unwrap();
        let out = m.queue::<Vec<u32>>().unwrap();
        let base = m.object_count().unwrap();
        // The arguments are encoded when the process is made; the parent's
        // proxies are all gone before the child decodes its copy.
        let l = m.list_from(vec![1u32]).unwrap();
        let p = Process::new(append_and_report, (l.clone(), out.clone())).start_method(method);
        drop(l);
        assert_eq!(
            m.object_count().unwrap(),
            base + 1,
            "{method:?}: in transit"
        );
        p.start().unwrap();
        assert_eq!(
            out.get_timeout(Duration::from_secs(60)).unwrap(),
            [1, 7],
            "{method:?}"
        );
        p.join().unwrap();
        // Nobody holds it any more.
        assert_eq!(count_becomes(&m, base), base, "{method:?}");

        // The same by hand: serialized bytes decoded by the child long
        // after the sender dropped its proxy.
        let l = m.list_from(vec![2u32]).unwrap();
        let bytes = postcard::to_allocvec(&l).unwrap();
        drop(l);
        let p = Process::new(decode_later, (bytes, out.clone())).start_method(method);
        p.start().unwrap();
        assert_eq!(
            out.get_timeout(Duration::from_secs(60)).unwrap(),
            [2, 7],
            "{method:?}"
        );
        p.join().unwrap();
        assert_eq!(count_becomes(&m, base), base, "{method:?}");
    }
}

/// Connects to the manager at `addr`, makes objects of its own, says so,
/// and waits to be killed.
fn makes_objects_and_waits((addr, key, ready): (Address, Vec<u8>, mp_shm::Value<u32>)) {
    let m = Manager::connect_to(addr, key).unwrap();
    let d: DictProxy<u8, u8> = m.dict().unwrap();
    let keep = (d, m.list::<u8>().unwrap(), m.lock().unwrap());
    ready.set(1);
    std::thread::sleep(Duration::from_secs(60));
    drop(keep);
}

#[test]
fn a_killed_clients_objects_are_freed() {
    for m in [
        Manager::new().unwrap(),
        Manager::serve("127.0.0.1:0", b"refcount key".to_vec()).unwrap(),
    ] {
        let base = m.object_count().unwrap();
        let ready = mp_shm::Value::new(0u32).unwrap();
        let p = Process::new(
            makes_objects_and_waits,
            (m.address().clone(), m.authkey().to_vec(), ready.clone()),
        );
        p.start().unwrap();
        wait_nonzero(&ready);
        assert_eq!(m.object_count().unwrap(), base + 3);
        let pid = p.pid().unwrap();
        p.kill().unwrap();
        assert!(p.join().is_err());
        assert!(gone_within(pid, Duration::from_secs(10)));
        assert_eq!(count_becomes(&m, base), base);
    }
}

#[test]
fn a_freed_object_is_an_error_not_a_hang() {
    let m = Manager::new().unwrap();
    let q = m.queue::<u8>().unwrap();
    // A proxy whose object was freed: decoded from bytes that carry no
    // reference (an id of an object dropped meanwhile).
    let bytes = postcard::to_allocvec(&q).unwrap();
    drop(q);
    let stale: QueueProxy<u8> = postcard::from_bytes(&bytes).unwrap();
    // The transit reference kept it: still usable.
    stale.put(1).unwrap();
    let id_bytes = bytes.clone();
    drop(stale);
    let again: Result<QueueProxy<u8>, _> = postcard::from_bytes(&id_bytes);
    let again = again.unwrap();
    match again.put(1) {
        Err(Error::Remote(RemoteError::NoSuchObject(_))) => {}
        other => panic!("expected NoSuchObject, got {other:?}"),
    }
}
