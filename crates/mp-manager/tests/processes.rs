//! Proxies used from other processes, under every start method; the
//! server's lifetime.

use std::time::{Duration, Instant};

use mp_manager::{
    DictProxy, Error, EventProxy, ListProxy, LockProxy, Manager, NamespaceProxy, SemaphoreProxy,
    ValueProxy,
};
use mp_proc::{Process, StartMethod};
use mp_testkit::gone_within;

fn methods() -> [StartMethod; 3] {
    // SAFETY: the targets only talk to the manager over sockets.
    unsafe { mp_proc::enable_fork() };
    StartMethod::ALL
}

fn run_all<A: serde::Serialize + serde::de::DeserializeOwned + 'static, R>(
    method: StartMethod,
    target: fn(A) -> R,
    args: impl IntoIterator<Item = A>,
) -> Vec<R>
where
    R: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let ps: Vec<_> = args
        .into_iter()
        .map(|a| Process::new(target, a).start_method(method))
        .collect();
    for p in &ps {
        p.start().unwrap();
    }
    ps.iter().map(|p| p.join().unwrap()).collect()
}

fn worker((d, key, value): (DictProxy<i32, i32>, i32, i32)) {
    d.insert(key, value).unwrap();
}

#[test]
fn dict_filled_by_ten_processes_under_every_method() {
    for method in methods() {
        let m = Manager::builder().start_method(method).start().unwrap();
        let d = m.dict::<i32, i32>().unwrap();
        run_all(method, worker, (0..10).map(|i| (d.clone(), i, i * 2)));
        assert_eq!(
            format!("{:?}", d.copy().unwrap()),
            "{0: 0, 1: 2, 2: 4, 3: 6, 4: 8, 5: 10, 6: 12, 7: 14, 8: 16, 9: 18}",
            "{method:?}"
        );
        let pid = m.pid().unwrap();
        drop(m);
        assert!(
            gone_within(pid, Duration::from_secs(10)),
            "server outlived its Manager"
        );
    }
}

type Record = (String, u32);

fn insert_record((record, records): (Record, ListProxy<Record>)) {
    records.append(record).unwrap();
}

fn print_records(records: ListProxy<Record>) -> Vec<String> {
    records
        .to_vec()
        .unwrap()
        .into_iter()
        .map(|(name, score)| format!("Name: {name}\nScore: {score}\n"))
        .collect()
}

#[test]
fn records_list() {
    let m = Manager::new().unwrap();
    let records = m
        .list_from(vec![
            ("Sam".to_string(), 10),
            ("Adam".to_string(), 9),
            ("Kevin".to_string(), 9),
        ])
        .unwrap();
    for method in methods() {
        let p1 = Process::new(insert_record, (("Jeff".to_string(), 8), records.clone()))
            .start_method(method);
        p1.start().unwrap();
        p1.join().unwrap();
        let p2 = Process::new(print_records, records.clone()).start_method(method);
        p2.start().unwrap();
        let printed = p2.join().unwrap();
        assert_eq!(printed.last().unwrap(), "Name: Jeff\nScore: 8\n");
        records.pop().unwrap();
    }
    assert_eq!(records.len().unwrap(), 3);
}

fn producer((ns, event): (NamespaceProxy, EventProxy)) {
    std::thread::sleep(Duration::from_millis(100));
    ns.set("value", "This is the value").unwrap();
    event.set().unwrap();
}

fn consumer((ns, event): (NamespaceProxy, EventProxy)) -> (String, String) {
    let before = match ns.get::<String>("value") {
        Ok(v) => format!("Before event: {v}"),
        Err(e) => format!("Before event, error: {e}"),
    };
    event.wait().unwrap();
    (
        before,
        format!("After event: {}", ns.get::<String>("value").unwrap()),
    )
}

#[test]
fn namespace_with_an_event() {
    let m = Manager::new().unwrap();
    for method in methods() {
        let ns = m.namespace().unwrap();
        let event = m.event().unwrap();
        let c = Process::new(consumer, (ns.clone(), event.clone())).start_method(method);
        let p = Process::new(producer, (ns.clone(), event.clone())).start_method(method);
        c.start().unwrap();
        p.start().unwrap();
        let (before, after) = c.join().unwrap();
        p.join().unwrap();
        assert_eq!(
            before,
            "Before event, error: 'Namespace' object has no attribute 'value'"
        );
        assert_eq!(after, "After event: This is the value");
    }
}

fn mutating_producer((ns, event): (NamespaceProxy, EventProxy)) {
    // DOES NOT UPDATE THE SHARED VALUE: a local copy changes.
    let mut l: Vec<String> = ns.get("my_list").unwrap();
    l.push("This is the value".into());
    event.set().unwrap();
}

fn list_consumer((ns, event): (NamespaceProxy, EventProxy)) -> Vec<String> {
    event.wait().unwrap();
    ns.get("my_list").unwrap()
}

#[test]
fn mutable_namespace_values_are_not_propagated() {
    let m = Manager::new().unwrap();
    let ns = m.namespace().unwrap();
    ns.set("my_list", &Vec::<String>::new()).unwrap();
    let event = m.event().unwrap();
    let c = Process::new(list_consumer, (ns.clone(), event.clone()));
    let p = Process::new(mutating_producer, (ns.clone(), event.clone()));
    c.start().unwrap();
    p.start().unwrap();
    assert!(c.join().unwrap().is_empty());
    p.join().unwrap();
}

/// Python's ActivePool: a manager list of active names behind a lock.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct ActivePool {
    active: ListProxy<String>,
    lock: LockProxy,
    most: ValueProxy<usize>,
}

impl ActivePool {
    fn make_active(&self, name: &str) {
        let _g = self.lock.acquire().unwrap();
        let n = self.active.append(name.to_string()).unwrap();
        self.most.update(|m| m.max(n)).unwrap();
    }
    fn make_inactive(&self, name: &str) {
        let _g = self.lock.acquire().unwrap();
        self.active.remove(&name.to_string()).unwrap();
    }
}

fn pool_worker((s, pool, name): (SemaphoreProxy, ActivePool, String)) {
    let _g = s.acquire().unwrap();
    pool.make_active(&name);
    std::thread::sleep(Duration::from_millis(30));
    pool.make_inactive(&name);
}

#[test]
fn active_pool_with_a_semaphore() {
    let m = Manager::new().unwrap();
    let pool = ActivePool {
        active: m.list().unwrap(),
        lock: m.lock().unwrap(),
        most: m.value(0).unwrap(),
    };
    let s = m.semaphore(3).unwrap();
    run_all(
        StartMethod::Forkserver,
        pool_worker,
        (0..10).map(|i| (s.clone(), pool.clone(), i.to_string())),
    );
    let most = pool.most.get().unwrap();
    assert!(
        (1..=3).contains(&most),
        "at most 3 active at once, saw {most}"
    );
    assert!(pool.active.is_empty().unwrap());
}

fn nested_writer(d: DictProxy<String, ListProxy<u32>>) {
    d.item(&"inner".to_string()).unwrap().append(99).unwrap();
}

#[test]
fn a_list_inside_a_dict_writes_through_from_a_child() {
    let m = Manager::new().unwrap();
    let inner = m.list::<u32>().unwrap();
    let d = m.dict().unwrap();
    d.insert("inner".to_string(), inner.clone()).unwrap();
    for method in methods() {
        run_all(method, nested_writer, [d.clone()]);
    }
    assert_eq!(inner.to_vec().unwrap(), [99, 99, 99]);
}

fn appender((l, who, n): (ListProxy<u64>, u64, u64)) {
    for i in 0..n {
        l.append(who * 1_000_000 + i).unwrap();
    }
}

fn incrementer((d, n): (DictProxy<String, u64>, u64)) {
    for _ in 0..n {
        let g = d.lock().unwrap();
        let v = g.item(&"count".to_string()).unwrap();
        g.insert("count".to_string(), v + 1).unwrap();
    }
}

#[test]
fn eight_processes_ten_thousand_updates_none_lost() {
    let m = Manager::new().unwrap();
    let l = m.list::<u64>().unwrap();
    let d = m.dict::<String, u64>().unwrap();
    d.insert("count".into(), 0).unwrap();
    let a: Vec<_> = (0..8)
        .map(|w| Process::new(appender, (l.clone(), w, 10_000)))
        .collect();
    let b: Vec<_> = (0..8)
        .map(|_| Process::new(incrementer, (d.clone(), 250)))
        .collect();
    for p in a.iter().chain(&b) {
        p.start().unwrap();
    }
    for p in a.iter().chain(&b) {
        p.join().unwrap();
    }
    let mut v = l.to_vec().unwrap();
    assert_eq!(v.len(), 80_000);
    v.sort_unstable();
    let mut want: Vec<u64> = (0..8)
        .flat_map(|w| (0..10_000).map(move |i| w * 1_000_000 + i))
        .collect();
    want.sort_unstable();
    assert_eq!(v, want);
    assert_eq!(d.item(&"count".into()).unwrap(), 8 * 250);
}

#[test]
fn shutdown_stops_the_server_and_proxies_fail_cleanly() {
    let m = Manager::new().unwrap();
    let d = m.dict::<u8, u8>().unwrap();
    d.insert(1, 1).unwrap();
    let pid = m.pid().unwrap();
    m.shutdown().unwrap();
    assert!(gone_within(pid, Duration::from_secs(10)));
    assert!(matches!(m.dict::<u8, u8>(), Err(Error::Shutdown)));
    let e = d.get(&1).unwrap_err();
    assert!(
        matches!(e, Error::ServerGone | Error::Io { .. }),
        "unexpected {e:?}"
    );
    m.shutdown().unwrap(); // twice is fine
}

#[test]
fn a_killed_server_is_an_error_not_a_hang() {
    let m = Manager::new().unwrap();
    let q = m.queue::<u8>().unwrap();
    let pid = m.pid().unwrap();
    let q2 = q.clone();
    let h = std::thread::spawn(move || q2.get());
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: plain kill(2) of the server child this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let r = h.join().unwrap();
    assert!(matches!(r, Err(Error::ServerGone)), "unexpected {r:?}");
    assert!(gone_within(pid, Duration::from_secs(10)));
    drop(m); // shutdown of a dead server must not fail or hang
}

fn owner_of_a_manager(pid_out: mp_shm::Value<u32>) {
    let m = Manager::new().unwrap();
    pid_out.set(m.pid().unwrap());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn the_server_dies_with_its_owner() {
    let pid_out = mp_shm::Value::new(0u32).unwrap();
    let owner = Process::new(owner_of_a_manager, pid_out.clone());
    owner.start().unwrap();
    let t = Instant::now();
    while pid_out.get() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "owner never started its manager"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let server = pid_out.get();
    assert!(mp_os::liveness::thread_alive(server));
    owner.kill().unwrap();
    let _ = owner.join();
    assert!(
        gone_within(server, Duration::from_secs(10)),
        "server outlived its killed owner"
    );
}
