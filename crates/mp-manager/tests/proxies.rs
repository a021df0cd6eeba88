//! Each proxy's semantics against the equivalent local collection, in one
//! process (the cross-process behaviour is in `processes.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mp_manager::{DictProxy, Error, ListProxy, Manager, RemoteError};
use proptest::prelude::*;

/// One manager for the whole file (each test makes its own objects).
fn manager() -> &'static Manager {
    static M: OnceLock<Manager> = OnceLock::new();
    M.get_or_init(|| Manager::new().expect("start a manager"))
}

fn remote(e: Error) -> RemoteError {
    match e {
        Error::Remote(r) => r,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[derive(Debug, Clone)]
enum DictOp {
    Insert(u8, i32),
    Remove(u8),
    Get(u8),
    Contains(u8),
    SetDefault(u8, i32),
    Update(Vec<(u8, i32)>),
    PopItem,
    Clear,
}

fn dict_op() -> impl Strategy<Value = DictOp> {
    prop_oneof![
        4 => (any::<u8>(), any::<i32>()).prop_map(|(k, v)| DictOp::Insert(k % 16, v)),
        2 => any::<u8>().prop_map(|k| DictOp::Remove(k % 16)),
        2 => any::<u8>().prop_map(|k| DictOp::Get(k % 16)),
        1 => any::<u8>().prop_map(|k| DictOp::Contains(k % 16)),
        1 => (any::<u8>(), any::<i32>()).prop_map(|(k, v)| DictOp::SetDefault(k % 16, v)),
        1 => proptest::collection::vec((0u8..16, any::<i32>()), 0..4).prop_map(DictOp::Update),
        1 => Just(DictOp::PopItem),
        1 => Just(DictOp::Clear),
    ]
}

/// A local model of Python's dict: insertion-ordered.
#[derive(Default)]
struct Model(Vec<(u8, i32)>);

impl Model {
    fn pos(&self, k: u8) -> Option<usize> {
        self.0.iter().position(|e| e.0 == k)
    }
    fn insert(&mut self, k: u8, v: i32) -> Option<i32> {
        match self.pos(k) {
            Some(i) => Some(std::mem::replace(&mut self.0[i].1, v)),
            None => {
                self.0.push((k, v));
                None
            }
        }
    }
    fn remove(&mut self, k: u8) -> Option<i32> {
        self.pos(k).map(|i| self.0.remove(i).1)
    }
}

#[derive(Debug, Clone)]
enum ListOp {
    Append(i16),
    Extend(Vec<i16>),
    Insert(i64, i16),
    Pop,
    PopAt(i64),
    Get(i64),
    Set(i64, i16),
    Remove(i16),
    Index(i16),
    Count(i16),
    Reverse,
    Sort,
    Slice(i64, i64),
}

fn list_op() -> impl Strategy<Value = ListOp> {
    let small = || -4i16..4;
    prop_oneof![
        4 => small().prop_map(ListOp::Append),
        1 => proptest::collection::vec(small(), 0..4).prop_map(ListOp::Extend),
        2 => (-8i64..8, small()).prop_map(|(i, v)| ListOp::Insert(i, v)),
        1 => Just(ListOp::Pop),
        1 => (-8i64..8).prop_map(ListOp::PopAt),
        2 => (-8i64..8).prop_map(ListOp::Get),
        1 => (-8i64..8, small()).prop_map(|(i, v)| ListOp::Set(i, v)),
        1 => small().prop_map(ListOp::Remove),
        1 => small().prop_map(ListOp::Index),
        1 => small().prop_map(ListOp::Count),
        1 => Just(ListOp::Reverse),
        1 => Just(ListOp::Sort),
        1 => (-8i64..8, -8i64..8).prop_map(|(a, b)| ListOp::Slice(a, b)),
    ]
}

fn py_index(i: i64, len: usize) -> Option<usize> {
    let j = if i < 0 { i + len as i64 } else { i };
    (0..len as i64).contains(&j).then_some(j as usize)
}

fn py_clamp(i: i64, len: usize) -> usize {
    let l = len as i64;
    (if i < 0 { (i + l).max(0) } else { i.min(l) }) as usize
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn dict_matches_an_ordered_map(ops in proptest::collection::vec(dict_op(), 1..40)) {
        let d: DictProxy<u8, i32> = manager().dict().unwrap();
        let mut m = Model::default();
        for op in ops {
            match op {
                DictOp::Insert(k, v) => prop_assert_eq!(d.insert(k, v).unwrap(), m.insert(k, v)),
                DictOp::Remove(k) => prop_assert_eq!(d.remove(&k).unwrap(), m.remove(k)),
                DictOp::Get(k) => {
                    let want = m.pos(k).map(|i| m.0[i].1);
                    prop_assert_eq!(d.get(&k).unwrap(), want);
                    match want {
                        Some(v) => prop_assert_eq!(d.item(&k).unwrap(), v),
                        None => prop_assert_eq!(remote(d.item(&k).unwrap_err()), RemoteError::MissingKey),
                    }
                }
                DictOp::Contains(k) => prop_assert_eq!(d.contains_key(&k).unwrap(), m.pos(k).is_some()),
                DictOp::SetDefault(k, v) => {
                    let want = match m.pos(k) {
                        Some(i) => m.0[i].1,
                        None => { m.insert(k, v); v }
                    };
                    prop_assert_eq!(d.setdefault(k, v).unwrap(), want);
                }
                DictOp::Update(items) => {
                    for (k, v) in &items { m.insert(*k, *v); }
                    d.update(items).unwrap();
                }
                DictOp::PopItem => match m.0.pop() {
                    Some(kv) => prop_assert_eq!(d.popitem().unwrap(), kv),
                    None => prop_assert_eq!(remote(d.popitem().unwrap_err()), RemoteError::MissingKey),
                },
                DictOp::Clear => { m.0.clear(); d.clear().unwrap(); }
            }
            prop_assert_eq!(d.len().unwrap(), m.0.len());
        }
        prop_assert_eq!(d.items().unwrap(), m.0.clone());
        prop_assert_eq!(d.keys().unwrap(), m.0.iter().map(|e| e.0).collect::<Vec<_>>());
        prop_assert_eq!(d.values().unwrap(), m.0.iter().map(|e| e.1).collect::<Vec<_>>());
        prop_assert_eq!(d.copy().unwrap(), m.0.iter().copied().collect::<BTreeMap<_, _>>());
    }

    #[test]
    fn list_matches_a_vec(ops in proptest::collection::vec(list_op(), 1..40)) {
        let l: ListProxy<i16> = manager().list().unwrap();
        let mut v: Vec<i16> = Vec::new();
        for op in ops {
            match op {
                ListOp::Append(x) => { v.push(x); prop_assert_eq!(l.append(x).unwrap(), v.len()); }
                ListOp::Extend(xs) => { v.extend(&xs); prop_assert_eq!(l.extend(xs).unwrap(), v.len()); }
                ListOp::Insert(i, x) => { v.insert(py_clamp(i, v.len()), x); l.insert(i, x).unwrap(); }
                ListOp::Pop => match v.pop() {
                    Some(x) => prop_assert_eq!(l.pop().unwrap(), x),
                    None => prop_assert_eq!(remote(l.pop().unwrap_err()), RemoteError::IndexOutOfRange),
                },
                ListOp::PopAt(i) => match py_index(i, v.len()) {
                    Some(j) => prop_assert_eq!(l.pop_at(i).unwrap(), v.remove(j)),
                    None => prop_assert_eq!(remote(l.pop_at(i).unwrap_err()), RemoteError::IndexOutOfRange),
                },
                ListOp::Get(i) => match py_index(i, v.len()) {
                    Some(j) => prop_assert_eq!(l.get(i).unwrap(), v[j]),
                    None => prop_assert_eq!(remote(l.get(i).unwrap_err()), RemoteError::IndexOutOfRange),
                },
                ListOp::Set(i, x) => match py_index(i, v.len()) {
                    Some(j) => { v[j] = x; l.set(i, x).unwrap(); }
                    None => prop_assert_eq!(remote(l.set(i, x).unwrap_err()), RemoteError::IndexOutOfRange),
                },
                ListOp::Remove(x) => match v.iter().position(|y| *y == x) {
                    Some(j) => { v.remove(j); l.remove(&x).unwrap(); }
                    None => prop_assert_eq!(remote(l.remove(&x).unwrap_err()), RemoteError::NotInList),
                },
                ListOp::Index(x) => match v.iter().position(|y| *y == x) {
                    Some(j) => prop_assert_eq!(l.index(&x).unwrap(), j),
                    None => prop_assert_eq!(remote(l.index(&x).unwrap_err()), RemoteError::NotInList),
                },
                ListOp::Count(x) => {
                    prop_assert_eq!(l.count(&x).unwrap(), v.iter().filter(|y| **y == x).count());
                    prop_assert_eq!(l.contains(&x).unwrap(), v.contains(&x));
                }
                ListOp::Reverse => { v.reverse(); l.reverse().unwrap(); }
                ListOp::Sort => { v.sort(); l.sort().unwrap(); }
                ListOp::Slice(a, b) => {
                    let (a2, b2) = (py_clamp(a, v.len()), py_clamp(b, v.len()));
                    let want = if a2 < b2 { v[a2..b2].to_vec() } else { Vec::new() };
                    prop_assert_eq!(l.slice(a, b).unwrap(), want);
                }
            }
            prop_assert_eq!(l.len().unwrap(), v.len());
        }
        prop_assert_eq!(l.to_vec().unwrap(), v);
    }
}

#[test]
fn list_from_and_iteration_snapshot() {
    let records = manager()
        .list_from(vec![
            ("Sam".to_string(), 10),
            ("Adam".to_string(), 9),
            ("Kevin".to_string(), 9),
        ])
        .unwrap();
    records.append(("Jeff".to_string(), 8)).unwrap();
    let names: Vec<String> = records.to_vec().unwrap().into_iter().map(|r| r.0).collect();
    assert_eq!(names, ["Sam", "Adam", "Kevin", "Jeff"]);
    records
        .sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)))
        .unwrap();
    assert_eq!(records.get(0).unwrap().0, "Jeff");
    records.delete(0).unwrap();
    records.clear().unwrap();
    assert!(records.is_empty().unwrap());
}

#[test]
fn namespace_attributes() {
    let ns = manager().namespace().unwrap();
    let e = ns.get::<String>("value").unwrap_err();
    assert_eq!(remote(e), RemoteError::NoSuchAttribute("value".into()));
    ns.set("value", "This is the value").unwrap();
    ns.set("n", &5u64).unwrap();
    ns.set("my_list", &Vec::<String>::new()).unwrap();
    assert_eq!(ns.get::<String>("value").unwrap(), "This is the value");
    assert_eq!(ns.names().unwrap(), ["my_list", "n", "value"]);
    assert!(ns.contains("n").unwrap());
    // The mutable-value caveat: a copy changed locally is not the attribute.
    let mut copy: Vec<String> = ns.get("my_list").unwrap();
    copy.push("This is the value".into());
    assert!(ns.get::<Vec<String>>("my_list").unwrap().is_empty());
    ns.del("n").unwrap();
    assert_eq!(
        remote(ns.del("n").unwrap_err()),
        RemoteError::NoSuchAttribute("n".into())
    );
    // The wrong type is a decode error, not a panic.
    assert!(matches!(ns.get::<bool>("value"), Err(Error::Codec { .. })));
}

#[test]
fn value_get_set_update() {
    let v = manager().value(10i64).unwrap();
    assert_eq!(v.set(11).unwrap(), 10);
    assert_eq!(v.update(|x| x + 1).unwrap(), 12);
    assert_eq!(v.get().unwrap(), 12);
}

#[test]
fn queue_is_fifo_with_timeouts() {
    let q = manager().bounded_queue::<u32>(3).unwrap();
    let mut model = VecDeque::new();
    for i in 0..3 {
        q.put(i).unwrap();
        model.push_back(i);
    }
    assert_eq!(remote(q.put_nowait(9).unwrap_err()), RemoteError::Full);
    let t = Instant::now();
    assert_eq!(
        remote(q.put_timeout(9, Duration::from_millis(50)).unwrap_err()),
        RemoteError::Full
    );
    assert!(t.elapsed() >= Duration::from_millis(45));
    assert_eq!(q.qsize().unwrap(), 3);
    while let Some(want) = model.pop_front() {
        assert_eq!(q.get().unwrap(), want);
    }
    assert!(q.empty().unwrap());
    assert_eq!(remote(q.get_nowait().unwrap_err()), RemoteError::Empty);
    let t = Instant::now();
    let e = q.get_timeout(Duration::from_millis(50)).unwrap_err();
    assert_eq!(remote(e), RemoteError::Empty);
    assert!(t.elapsed() >= Duration::from_millis(45));
    // A blocked get is woken by a put from another thread.
    let q2 = q.clone();
    let h = std::thread::spawn(move || q2.get().unwrap());
    std::thread::sleep(Duration::from_millis(50));
    q.put(42).unwrap();
    assert_eq!(h.join().unwrap(), 42);
}

#[test]
fn joinable_queue_counts_tasks() {
    let q = manager().joinable_queue::<String>().unwrap();
    q.put("a".into()).unwrap();
    q.put("b".into()).unwrap();
    assert!(
        q.join_timeout(Duration::from_millis(20))
            .unwrap_err()
            .is_timeout()
    );
    q.get().unwrap();
    q.task_done().unwrap();
    q.get().unwrap();
    q.task_done().unwrap();
    q.join().unwrap();
    assert_eq!(
        remote(q.task_done().unwrap_err()),
        RemoteError::TaskDoneTooOften
    );
}

#[test]
fn locks_exclude_and_time_out() {
    let m = manager();
    let lock = m.lock().unwrap();
    let g = lock.acquire().unwrap();
    let l2 = lock.clone();
    let t = Instant::now();
    let h = std::thread::spawn(move || {
        l2.acquire_timeout(Duration::from_millis(80))
            .unwrap()
            .is_some()
    });
    assert!(!h.join().unwrap(), "a held lock times out");
    assert!(t.elapsed() >= Duration::from_millis(75));
    g.release().unwrap();
    assert!(lock.try_acquire().unwrap().is_some());

    // RLock: recursive for the owner thread, exclusive for others.
    let r = m.rlock().unwrap();
    let a = r.acquire().unwrap();
    let b = r.acquire().unwrap();
    let r2 = r.clone();
    assert!(
        !std::thread::spawn(move || r2.try_acquire().unwrap().is_some())
            .join()
            .unwrap()
    );
    drop(b);
    let r2 = r.clone();
    assert!(
        !std::thread::spawn(move || r2.try_acquire().unwrap().is_some())
            .join()
            .unwrap()
    );
    drop(a);
    let r2 = r.clone();
    assert!(
        std::thread::spawn(move || r2.try_acquire().unwrap().is_some())
            .join()
            .unwrap()
    );

    // Semaphore.
    let s = m.semaphore(2).unwrap();
    let g1 = s.acquire().unwrap();
    let _g2 = s.acquire().unwrap();
    assert!(s.try_acquire().unwrap().is_none());
    drop(g1);
    let g3 = s.try_acquire().unwrap();
    assert!(g3.is_some());
    s.release().unwrap(); // a unit without a guard
    assert!(s.try_acquire().unwrap().is_some());
}

#[test]
fn event_and_condition() {
    let m = manager();
    let e = m.event().unwrap();
    assert!(!e.is_set().unwrap());
    let e2 = e.clone();
    let h = std::thread::spawn(move || e2.wait_timeout(Duration::from_secs(30)).unwrap());
    std::thread::sleep(Duration::from_millis(30));
    e.set().unwrap();
    assert!(h.join().unwrap());
    e.clear().unwrap();
    assert!(!e.wait_timeout(Duration::from_millis(20)).unwrap());

    let c = m.condition().unwrap();
    let flag = m.value(false).unwrap();
    let (c2, f2) = (c.clone(), flag.clone());
    let h = std::thread::spawn(move || {
        let g = c2.acquire().unwrap();
        g.wait_for(|| f2.get().unwrap(), Some(Duration::from_secs(30)))
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(50));
    {
        let g = c.acquire().unwrap();
        flag.set(true).unwrap();
        g.notify_all().unwrap();
    }
    assert!(h.join().unwrap());
    // notify(1) wakes one waiter at a time.
    let c3 = c.clone();
    let h = std::thread::spawn(move || {
        c3.acquire()
            .unwrap()
            .wait_timeout(Duration::from_secs(30))
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(50));
    c.acquire().unwrap().notify(1).unwrap();
    assert!(h.join().unwrap());
}

#[test]
fn barrier_releases_all_parties() {
    let m = manager();
    let b = m.barrier(3).unwrap();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || b.wait().unwrap())
        })
        .collect();
    let mut idx = vec![b.wait().unwrap()];
    idx.extend(hs.into_iter().map(|h| h.join().unwrap()));
    idx.sort();
    assert_eq!(idx, [0, 1, 2]);
    assert_eq!(b.parties().unwrap(), 3);
    // A timeout breaks it; reset mends it.
    assert_eq!(
        remote(b.wait_timeout(Duration::from_millis(20)).unwrap_err()),
        RemoteError::BrokenBarrier
    );
    assert!(b.broken().unwrap());
    b.reset().unwrap();
    assert!(!b.broken().unwrap());
    assert_eq!(b.n_waiting().unwrap(), 0);
    assert!(m.barrier(0).is_err());
}

#[test]
fn nested_proxies_write_through() {
    let m = manager();
    let d = m.dict::<String, ListProxy<i32>>().unwrap();
    let inner = m.list::<i32>().unwrap();
    d.insert("inner".into(), inner.clone()).unwrap();
    let again = d.item(&"inner".into()).unwrap();
    assert_eq!(again, inner);
    again.append(7).unwrap();
    assert_eq!(inner.to_vec().unwrap(), [7]);
    // A namespace holding a list proxy: the fix for the mutable caveat.
    let ns = m.namespace().unwrap();
    ns.set("my_list", &inner).unwrap();
    ns.get::<ListProxy<i32>>("my_list")
        .unwrap()
        .append(8)
        .unwrap();
    assert_eq!(inner.to_vec().unwrap(), [7, 8]);
}

#[test]
fn locked_guard_makes_read_modify_write_atomic() {
    let m = manager();
    let d = m.dict::<u8, u64>().unwrap();
    d.insert(0, 0).unwrap();
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let d = d.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let g = d.lock().unwrap();
                    let n = g.item(&0).unwrap();
                    g.insert(0, n + 1).unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(d.item(&0).unwrap(), 400);
    // While locked, another connection's request waits.
    let g = d.lock().unwrap();
    assert!(
        d.lock_timeout(Duration::from_millis(30))
            .unwrap_err()
            .is_timeout()
    );
    drop(g);
    assert!(d.lock_timeout(Duration::from_secs(10)).is_ok());
}

#[test]
fn wrong_kind_and_lookup() {
    let m = manager();
    let d = m.dict::<u8, u8>().unwrap();
    m.publish("the-dict", &d).unwrap();
    let same: DictProxy<u8, u8> = m.lookup("the-dict").unwrap();
    assert_eq!(same, d);
    assert!(matches!(
        m.lookup::<ListProxy<u8>>("the-dict"),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        m.lookup::<ListProxy<u8>>("nothing"),
        Err(Error::Remote(RemoteError::NotPublished(_)))
    ));
    // A list proxy pointed at a dict's id gets a clear error.
    let bytes = postcard::to_allocvec(&d).unwrap();
    let l: ListProxy<u8> = postcard::from_bytes(&bytes).unwrap();
    assert!(matches!(
        l.append(1),
        Err(Error::Remote(RemoteError::WrongKind(_)))
    ));
}

#[test]
fn many_threads_many_connections() {
    let m = manager();
    let l = m.list::<u32>().unwrap();
    let hs: Vec<_> = (0..32)
        .map(|t| {
            let l = l.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    l.append(t * 1000 + i).unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let mut v = l.to_vec().unwrap();
    v.sort();
    let mut want: Vec<u32> = (0..32)
        .flat_map(|t| (0..100).map(move |i| t * 1000 + i))
        .collect();
    want.sort();
    assert_eq!(v, want);
}
