//! Every everyday name is reachable through the umbrella.

use multiprocessing as mp;

fn double(x: i32) -> i32 {
    x * 2
}

#[test]
fn everyday_names_resolve_and_work() -> Result<(), mp::Error> {
    mp::init();
    let p = mp::Process::new(double, 21);
    p.start()?;
    assert_eq!(p.join()?, 42);
    let ctx = mp::get_context(mp::StartMethod::Spawn)?;
    assert_eq!(ctx.method(), mp::StartMethod::Spawn);
    assert!(mp::cpu_count() >= 1);
    assert_eq!(mp::current_process().name(), "MainProcess");
    assert!(mp::parent_process().is_none());
    let _ = mp::active_children();

    let v = mp::Value::new(1u64)?;
    v.update(|x| *x += 1);
    assert_eq!(v.get(), 2);
    let a = mp::Array::<f64>::zeroed(3)?;
    a.set(1, 0.5);
    assert_eq!(a.to_vec(), [0.0, 0.5, 0.0]);
    let r = mp::RawValue::new(7i32)?;
    assert_eq!(r.get(), 7);
    let ra = mp::RawArray::<u8>::zeroed(2)?;
    assert_eq!(ra.len(), 2);

    let lock = mp::Lock::new()?;
    drop(lock.acquire()?);
    let rlock = mp::RLock::new()?;
    let _g1 = rlock.acquire()?;
    let _g2 = rlock.acquire()?;
    let sem = mp::Semaphore::new(2)?;
    drop(sem.acquire());
    let bsem = mp::BoundedSemaphore::new(1)?;
    drop(bsem.acquire());
    let ev = mp::Event::new()?;
    ev.set();
    assert!(ev.is_set());
    let b = mp::Barrier::new(1)?;
    assert_eq!(b.wait()?, 0);
    let c = mp::Condition::new()?;
    let g = c.acquire()?;
    g.notify_all();
    drop(g);

    // Message passing.
    let q = mp::Queue::<String>::new()?;
    q.put("hello".to_string())?;
    assert_eq!(q.get()?, "hello");
    assert!(matches!(
        q.get_nowait(),
        Err(mp::channel::TryRecvError::Empty)
    ));
    let sq = mp::SimpleQueue::<u8>::new()?;
    sq.put(1)?;
    assert_eq!(sq.get()?, 1);
    let jq = mp::JoinableQueue::<u8>::new()?;
    jq.put(2)?;
    assert_eq!(jq.get()?, 2);
    jq.task_done()?;
    jq.join()?;
    let (a, b) = mp::pipe()?;
    a.send(&7u32)?;
    assert_eq!(
        mp::wait(&[&b], Some(std::time::Duration::from_secs(5)))?,
        vec![0]
    );
    assert_eq!(b.recv::<u32>()?, 7);
    let l = mp::connection::Listener::bind("127.0.0.1:0", Some(b"key"))?;
    let addr = l.address().clone();
    let t = std::thread::spawn(move || mp::connection::client(addr, Some(b"key")));
    let server_end = l.accept()?;
    let client_end = t.join().expect("client thread")?;
    client_end.send(&"hi")?;
    assert_eq!(server_end.recv::<String>()?, "hi");

    // Shared with CPython.
    let sl = mp::ShareableList::new(&[1.into(), "two".into()])?;
    assert_eq!(sl.get(1)?, mp::shm::Item::Str("two".into()));
    let smm = mp::manager::SharedMemoryManager::start()?;
    let block = smm.shared_memory(16)?;
    block.write_at(0, b"x")?;
    smm.shutdown()?;

    // Pools.
    let pool = mp::Pool::new(2)?;
    assert_eq!(pool.map(double, vec![1, 2, 3])?, vec![2, 4, 6]);
    let r: mp::AsyncResult<i32> = pool.apply_async(double, 5)?;
    assert_eq!(r.get()?, 10);
    drop(pool);
    let tp = mp::ThreadPool::new(2)?;
    assert_eq!(tp.map(double, vec![4])?, vec![8]);
    let ex = mp::ProcessPoolExecutor::new(1)?;
    let fs: Vec<mp::futures::Future<i32>> = vec![ex.submit(double, 3)?];
    for r in mp::as_completed(&fs, None) {
        assert_eq!(r?.1.result()?, 6);
    }
    let w: mp::futures::WaitResult =
        mp::futures::wait(&fs, None, mp::futures::ReturnWhen::AllCompleted);
    assert_eq!(w.done, vec![0]);
    let tex = mp::ThreadPoolExecutor::new(1)?;
    assert_eq!(tex.submit(double, 4)?.result()?, 8);
    assert!(matches!(tex.map(double, [1])?.next(), Some(Ok(2))));

    // Managers.
    let m = mp::Manager::new()?;
    let d = m.dict::<i32, i32>()?;
    d.insert(1, 2)?;
    assert_eq!(d.get(&1)?, Some(2));
    m.shutdown()?;

    // The crate modules are reachable too.
    let _: Option<mp::sync::Deadline> = None;
    let _: Option<mp::proc::Error> = None;
    let _: Option<mp::shm::Error> = None;
    Ok(())
}
