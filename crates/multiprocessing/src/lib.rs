//! Python's `multiprocessing`, for Rust: `use multiprocessing as mp;` and
//! the programs read like their Python originals, but run faster and never
//! hang when a process dies.
//!
//! ```
//! use multiprocessing as mp;
//!
//! fn square_list((list, result, total): (Vec<i32>, mp::Array<i32>, mp::Value<i32>)) {
//!     for (i, n) in list.iter().enumerate() {
//!         result.set(i, n * n);
//!     }
//!     total.set(result.to_vec().iter().sum());
//! }
//!
//! fn main() -> Result<(), mp::Error> {
//!     mp::init(); // children run their target here and never return
//!     let result = mp::Array::<i32>::zeroed(4)?;
//!     let total = mp::Value::new(0i32)?;
//!     let p = mp::Process::new(square_list, (vec![1, 2, 3, 4], result.clone(), total.clone()))
//!         .name("p1");
//!     p.start()?;
//!     p.join()?; // an error if the child panicked, was killed, ...
//!     assert_eq!(result.to_vec(), [1, 4, 9, 16]);
//!     assert_eq!(total.get(), 30);
//!     Ok(())
//! }
//! ```
//!
//! # What is here
//!
//! * **Processes** ([`mod@proc`]): [`Process`], [`current_process`],
//!   [`parent_process`], [`active_children`], [`cpu_count`], start methods
//!   ([`StartMethod`], [`set_start_method`], [`get_context`]).
//! * **Shared state** ([`shm`]): [`Value`], [`Array`], [`RawValue`],
//!   [`RawArray`], [`SharedMemory`], [`ShareableList`] (shared with
//!   CPython processes too), and the [`ShmSafe`] marker for types
//!   that may live in shared memory.
//! * **Synchronization** ([`sync`]): [`Lock`], [`RLock`], [`Semaphore`],
//!   [`BoundedSemaphore`], [`Condition`], [`Event`], [`Barrier`].
//! * **Message passing** ([`channel`]): [`Pipe`] / [`pipe`], [`Queue`],
//!   [`SimpleQueue`], [`JoinableQueue`], and [`wait`] over several of them
//!   and processes; [`connection`]: `Listener` / `Client` over Unix
//!   sockets and TCP, wire-compatible with CPython's
//!   `multiprocessing.connection`.
//! * **Pools** ([`pool`]): [`Pool`] (processes) and [`ThreadPool`]
//!   (threads), with [`AsyncResult`].
//! * **Executors** ([`futures`], Python's `concurrent.futures`):
//!   [`ProcessPoolExecutor`], [`ThreadPoolExecutor`], their
//!   [`futures::Future`]s, [`as_completed`] and [`futures::wait`].
//! * **Managers** ([`manager`]): [`Manager`], a server process holding
//!   dicts, lists, namespaces, queues and locks for many processes, locally
//!   or over TCP with an authkey.
//!
//! Feature `ndarray` (off by default): `ndarray` views of shared arrays
//! and shared memory ([`shm`]'s docs say which are safe).
//!
//! Every piece is also a crate of its own (`mp-sync` alone gives
//! cross-process locks over any shared mapping).
//!
//! # From Python to Rust
//!
//! | Python | Rust |
//! |---|---|
//! | `if __name__ == "__main__":` | `mp::init();` as the first line of `main` (optional on Linux) |
//! | `Process(target=f, args=(a, b))` | `mp::Process::new(f, (a, b))` with `fn f((a, b): (A, B))`: one parameter, a tuple for several |
//! | `p.start()`, `p.join()` | `p.start()?`, `p.join()?` (returns the target's return value) |
//! | `p.join(timeout)` | `p.join_timeout(d)?` (`None` while it still runs) |
//! | `p.exitcode`, `p.is_alive()`, `p.pid`, `p.name`, `p.daemon = True` | `p.exitcode()`, `p.is_alive()`, `p.pid()`, `p.get_name()`, `.daemon(true)` (builder) |
//! | `log_to_stderr(logging.INFO)`, `get_logger()` | `mp::log_to_stderr(log::LevelFilter::Info)`, `mp::get_logger()` on the `log` facade: `[INFO/Process-1] ...` lines on stderr, installed only when no `log` logger is; children inherit the level. Any `log` backend receives the records |
//! | `multiprocessing.set_start_method("spawn")` | `mp::set_start_method(mp::StartMethod::Spawn)?` |
//! | `set_start_method("spawn", force=True)`, `set_start_method(None, force=True)` | `mp::set_start_method_force(Some(mp::StartMethod::Spawn))?`, `mp::set_start_method_force(None)?` |
//! | `set_forkserver_preload(["numpy"])` | `mp::set_forkserver_preload(Some(warm_up))?`: a `fn()` run once in the fork server when it starts |
//! | `current_process()._start_method` / `get_start_method()` in a child | `mp::current_process().start_method()` / `mp::get_start_method()` (the method that started it) |
//! | `Process(daemon=None)` inheriting the creator's flag | the same: `Process::new` takes `current_process().daemon()`; a daemon may have (daemonic) children here |
//! | `p.interrupt()` (3.14) | `p.interrupt()?` (SIGINT; a Rust child dies of it, exit code `-2`) |
//! | `"fork"` | `unsafe { mp::enable_fork() }` first: a forked child has only the calling thread |
//! | `get_context("spawn").Process(...)` | `mp::get_context(mp::StartMethod::Spawn)?.process(f, args)` |
//! | `Value('i', 0)`, `v.value`, `v.value = 3` | `mp::Value::new(0i32)?`, `v.get()`, `v.set(3)` |
//! | `with v.get_lock(): v.value += 1` | `v.update(\|x\| *x += 1)` or `let mut g = v.lock(); *g += 1;` |
//! | `Array('i', 4)`, `a[i]`, `a[:]` | `mp::Array::<i32>::zeroed(4)?`, `a.get(i)` / `a.set(i, x)`, `a.to_vec()` |
//! | `Value('i', 0, lock=False)` | `mp::RawValue::new(0i32)?` |
//! | `Value('i', 0, lock=lock)`, `Array('d', n, lock=lock)` (an `RLock`) | `mp::Value::with_lock(0i32, lock)?`, `mp::Array::<f64>::zeroed_with_lock(n, lock)?` (a plain `Lock` cannot be chosen: `get`/`set` re-enter the lock) |
//! | `Array('c', 16)`, `a.value`, `a.raw`, `a.value = b"hi"` | `mp::Array::<u8>::zeroed(16)?`, `a.value()`, `a.raw()`, `a.set_value(b"hi")?` |
//! | `np.frombuffer(a.get_obj()).reshape(r, c)` (under `with a.get_lock():`) | feature `ndarray`: `let mut g = a.lock(); let m = g.view_mut((r, c))?;`, or the copy `a.to_ndarray((r, c))?` |
//! | `np.ndarray(shape, dtype, buffer=shm.buf, offset=k)` | `unsafe { shm.view::<T, _>(k, shape)? }` (no lock: the caller keeps writers out), or the copy `shm.to_ndarray::<T, _>(k, shape)?` |
//! | `shared_memory.SharedMemory(name, create=True, size=n)` | `mp::SharedMemory::create(name, n)?` (the creator unlinks on drop) |
//! | `shared_memory.ShareableList(["a", 1, 2.5, True, None, b"x"])` | `mp::ShareableList::new(&["a".into(), 1.into(), 2.5.into(), true.into(), ().into(), b"x".as_slice().into()])?`, CPython's block layout |
//! | `ShareableList(name=n)`, `sl[i]`, `sl[i] = v`, `len(sl)`, `sl.format` | `mp::ShareableList::attach(n)?`, `sl.get(i)?` (an `mp::shm::Item`), `sl.set(i, v)?`, `sl.len()`, `sl.format()?` |
//! | `q.put(pickle.PickleBuffer(big))` (protocol 5, out of band) | `let mut b = mp::SharedBuf::new(n)?;` fill it in place, `q.put(b)?`: the queue carries its handle, the receiver maps the same pages; one owner at a time |
//! | `Lock()`, `with lock:` | `mp::Lock::new()?`, `let _g = lock.acquire()?;` |
//! | `lock.acquire(timeout=t)` | `lock.acquire_timeout(t)` |
//! | `Event().wait(timeout)` | `event.wait_timeout(t)` (returns whether it was set) |
//! | `Semaphore(3)` | `mp::Semaphore::new(3)?` |
//! | `Barrier(n).wait()` | `barrier.wait()?` returns the party index |
//! | `Barrier(n, action=f, timeout=t)` | `mp::Barrier::with_options(n, Some(f), Some(t))?` (`f` a `fn()`, run by the party that trips it, before the others are released) |
//! | `Queue()`, `q.put(x)`, `q.get()` | `mp::Queue::new()?`, `q.put(x)?`, `q.get()?` |
//! | `q.get_nowait()` raising `queue.Empty` | `q.get_nowait()` returning `Err(TryRecvError::Empty)` (`get_timeout(t)`: `RecvTimeoutError::Timeout`) |
//! | `q.put_nowait(x)` raising `queue.Full` | `Err(TrySendError::Full(x))`, the value handed back (`put_timeout(x, t)`: `SendTimeoutError::Timeout(x)`); a blocking `put` returns a `SendError<T>`, which has no `Full` |
//! | `a, b = Pipe()`, `a.send(x)`, `b.recv()` | `let (a, b) = mp::pipe()?;`, `a.send(&x)?`, `b.recv::<T>()?` |
//! | `connection.wait([a, b, p.sentinel])` | `mp::wait(&[&a, &b, &p], timeout)?` |
//! | `JoinableQueue()`, `q.task_done()`, `q.join()` | the same names |
//! | `connection.Listener(address, authkey=k)`, `l.accept()` | `mp::connection::Listener::bind(address, Some(k))?`, `l.accept()?` |
//! | `connection.Client(address, authkey=k)` | `mp::connection::client(address, Some(k))?`, or `Client::new(address).authkey(k).connect()?` |
//! | `conn.send(obj)` / `conn.recv()` with a Python peer | `Client::new(a).codec(Codec::Pickle)`, then `conn.send(&x)?` / `conn.recv::<T>()?`, or `conn.send_py(&value)?` / `conn.recv_py()?` with `pickle::Value` |
//! | `conn.send_bytes(b)`, `conn.recv_bytes()`, `conn.recv_bytes_into(buf)`, `conn.poll(t)` | the same names (`poll(Some(t))`; `BufferTooShort` as `ConnectionError::BufferTooShort(msg)`) |
//! | `("127.0.0.1", 6000)`, `"/tmp/sock"`, `"\0name"` | `Address::from("127.0.0.1:6000")`, `Address::from("/tmp/sock")`, `Address::from("\0name")` |
//! | `connection.wait([conn, listener], t)` | `mp::wait(&[&conn, &listener], Some(t))?` |
//! | `with Pool(4) as pool: pool.map(f, xs)` | `mp::Pool::new(4)?.map(f, xs)?` (dropping the pool terminates it) |
//! | `Pool(initializer=f, initargs=a, maxtasksperchild=n)` | `mp::Pool::builder().initializer(f, a).max_tasks_per_child(n).build()?` |
//! | `pool.apply_async(f, (x,)).get(timeout)` | `pool.apply_async(f, x)?.get_timeout(t)?` (or `.await` it) |
//! | `concurrent.futures.ProcessPoolExecutor(max_workers)`, `ThreadPoolExecutor` | `mp::ProcessPoolExecutor::new(n)?` (`::builder()` for `initializer`, `max_tasks_per_child`, `mp_context`), `mp::ThreadPoolExecutor::new(n)?`; dropping one is leaving the `with` block (it waits) |
//! | `fut = ex.submit(f, x)`, `fut.result(timeout)`, `done()`, `running()`, `cancel()`, `add_done_callback(cb)` | `let fut = ex.submit(f, x)?;`, `fut.result()?` / `fut.result_timeout(t)?` (moves the value out), the same names; `fut.await` in async code |
//! | `ex.map(f, xs, timeout=t, chunksize=n)` | `ex.map(f, xs)?` / `ex.map_with(f, xs, n, Some(t))?`: an iterator of each item's `Result` |
//! | `ex.shutdown(wait=True, cancel_futures=False)` | `ex.shutdown(true, false)` |
//! | `as_completed(fs, timeout)`, `wait(fs, timeout, FIRST_COMPLETED)` | `mp::as_completed(&fs, timeout)` (yields `(index, &future)`), `mp::futures::wait(&fs, timeout, ReturnWhen::FirstCompleted)` (index lists) |
//! | `BrokenProcessPool` when a worker dies | only the dead worker's future fails (`FutureError::WorkerDied`) and the worker is replaced; `.break_on_worker_death(true)` for Python's behaviour |
//! | `Manager()`, `m.dict()`, `m.list()`, `m.Namespace()` | `mp::Manager::new()?`, `m.dict::<K, V>()?`, `m.list::<T>()?`, `m.namespace()?` |
//! | `m.Array('d', [1.0, 2.0])`, `m.BoundedSemaphore(2)` | `m.array(vec![1.0f64, 2.0])?` (get/set/len/slice/to_vec), `m.bounded_semaphore(2)?` (a release above 2 is `RemoteError::ReleasedTooOften`) |
//! | proxies' reference counts, `m._number_of_objects()` | the same counting (an object is freed when its last proxy anywhere goes or its processes die; proxies stored inside other objects pin theirs), `m.object_count()?` |
//! | `BaseManager.register('T', T, exposed=('get',))`, `raise KeyError(k)` in a method | `types.add_exposed::<T>("T", &["get"])`, `Err(MethodError::new(ExceptionKind::Key, msg))` (`mp::manager::{MethodError, ExceptionKind}`): the caller gets `RemoteError::Method(e)`, kind intact |
//! | `with SharedMemoryManager() as smm: smm.SharedMemory(n)`, `smm.ShareableList(seq)` | `let smm = mp::manager::SharedMemoryManager::start()?;`, `smm.shared_memory(n)?`, `smm.shareable_list(&items)?`: the server unlinks them all at `shutdown`/drop, or when the owner dies |
//! | `BaseManager(address, authkey).get_server().serve_forever()` | `mp::Manager::serve(addr, authkey)` / `Manager::connect(addr, authkey)` |
//!
//! Errors of every crate convert into [`Error`] with `?`.
//!
//! # Cargo features
//!
//! Both are off by default and switch on the same feature of the crate
//! that owns the items:
//!
//! * `tokio`: `recv_async` on pipe ends and `get_async` on queues
//!   (`mp-channel/tokio`).
//! * `progress`: `PoolBuilder::progress`, an `indicatif` progress bar
//!   for long pool maps (`mp-pool/progress`).
//!
//! Linux only.

#![cfg(target_os = "linux")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;

pub use error::Error;

#[doc(inline)]
pub use mp_channel as channel;
#[doc(inline)]
pub use mp_channel::connection;
#[doc(inline)]
pub use mp_manager as manager;
#[doc(inline)]
pub use mp_pool as pool;

/// Python's `concurrent.futures`: executors and their futures (from
/// [`mp_pool`]).
///
/// ```
/// use multiprocessing as mp;
/// use mp::futures::{ReturnWhen, wait};
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let ex = mp::ProcessPoolExecutor::new(2)?;
/// let fs: Vec<mp::futures::Future<u64>> = (0..4).map(|x| ex.submit(square, x)).collect::<Result<_, _>>()?;
/// assert_eq!(wait(&fs, None, ReturnWhen::AllCompleted).done.len(), 4);
/// assert_eq!(fs[3].result()?, 9);
/// # Ok::<(), mp::Error>(())
/// ```
pub mod futures {
    pub use mp_pool::{
        AsCompleted, ExecutorBuilder, Future, FutureError, MapIter, ProcessPoolExecutor,
        ReturnWhen, ThreadPoolExecutor, WaitResult, as_completed, wait,
    };
}
#[doc(inline)]
pub use mp_proc as proc;
#[doc(inline)]
pub use mp_shm as shm;
#[doc(inline)]
pub use mp_sync as sync;

pub use mp_channel::{
    Bytes, JoinableQueue, Pipe, PipeEnd, Queue, SimpleQueue, WaitMode, Waitable, pipe, wait,
};
pub use mp_manager::Manager;
pub use mp_pool::{
    AsyncResult, Pool, ProcessPoolExecutor, ThreadPool, ThreadPoolExecutor, as_completed,
};
pub use mp_proc::{
    Context, Process, ProcessInfo, StartMethod, active_children, cpu_count, current_process,
    enable_fork, get_context, get_logger, get_start_method, init, log_to_stderr, parent_process,
    set_forkserver_preload, set_start_method, set_start_method_force,
};
pub use mp_shm::{
    Array, RawArray, RawValue, ShareableList, SharedBuf, SharedMemory, ShmSafe, Value,
};
pub use mp_sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
