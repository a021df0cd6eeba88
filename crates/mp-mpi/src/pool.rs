//! `Pool`: the handle, its builder, and the registry of the world's
//! worker ranks.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use mp_pool::{Error, Sink, Submit, TaskPool};
use mp_proc::{Function, RawFunction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::dispatch::{Cmd, Dispatcher, Ending, Job, Phase, Settings, Slot, Status, Task};
use crate::error::MpiError;
use crate::raw::Comm;

/// The worker ranks of `MPI_COMM_WORLD` (ranks 1..N of a job started by
/// `mpirun`), held here between pools.
pub(crate) struct World {
    pub(crate) slots: Option<Vec<Slot>>,
}

pub(crate) static WORLD: Mutex<Option<World>> = Mutex::new(None);

fn world() -> MutexGuard<'static, Option<World>> {
    WORLD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops the world's workers (at exit, before `MPI_Finalize`).
pub(crate) fn stop_world() {
    let slots = world().as_mut().and_then(|w| w.slots.take());
    if let Some(slots) = slots {
        let (_tx, rx) = channel();
        let d = Dispatcher::new(
            Comm::world(),
            slots,
            Settings {
                init: None,
                depth: 1,
                heartbeat_timeout: Duration::from_secs(30),
                start_timeout: Duration::from_secs(60),
                ending: Ending::Stop,
            },
            rx,
            Arc::new(Mutex::new(Status::default())),
        );
        d.stop_only();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Closed,
    Terminated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    World,
    Spawned,
}

/// A pool of MPI worker ranks running `fn(A) -> R` over many inputs, with
/// the API of [`mp_pool::Pool`].
///
/// Start it with [`Pool::world`] in a program run by `mpirun -np N` (after
/// [`init`](crate::init)), or with [`Pool::spawn`] from a plain process.
///
/// ```no_run
/// use mp_mpi::TaskPool; // the calls
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), mp_pool::Error> {
///     mp_mpi::init(); // ranks 1.. serve here and never return
///     let pool = mp_mpi::Pool::spawn(2)?; // or Pool::world() under mpirun
///     assert_eq!(pool.map(square, 0..5)?, vec![0, 1, 4, 9, 16]);
///     pool.close();
///     pool.join()
/// }
/// ```
pub struct Pool {
    kind: Kind,
    processes: usize,
    chunksize: Option<usize>,
    tx: Mutex<Option<Sender<Cmd>>>,
    status: Arc<Mutex<Status>>,
    state: Mutex<State>,
    thread: Mutex<Option<JoinHandle<()>>>,
    seq: AtomicU64,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("kind", &self.kind)
            .field("processes", &self.processes)
            .field("state", &*self.state())
            .field("pids", &self.pids())
            .finish()
    }
}

/// Configures a [`Pool`]: see [`Pool::builder`].
pub struct PoolBuilder {
    init: Option<Result<(RawFunction, Vec<u8>), Error>>,
    chunksize: Option<usize>,
    depth: usize,
    heartbeat_timeout: Duration,
    start_timeout: Duration,
    spawn_info: Vec<(String, String)>,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("initializer", &self.init.is_some())
            .field("chunksize", &self.chunksize)
            .field("depth", &self.depth)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("start_timeout", &self.start_timeout)
            .field("spawn_info", &self.spawn_info)
            .finish()
    }
}

impl PoolBuilder {
    /// Runs `f(args)` once in each worker before its first task of this
    /// pool (Python's `initializer` and `initargs`). If it panics, the
    /// pool is broken: every task fails with [`Error::Initializer`].
    pub fn initializer<A: Serialize + DeserializeOwned + 'static>(
        mut self,
        f: fn(A),
        args: A,
    ) -> Self {
        let func = Function::new(f);
        self.init = Some(if func.is_portable() {
            postcard::to_allocvec(&args)
                .map(|b| (func.raw(), b))
                .map_err(|e| Error::Call(mp_proc::CallError::BadInput(e.to_string())))
        } else {
            Err(Error::Call(mp_proc::CallError::OutsideBinary))
        });
        self
    }

    /// The chunk size of calls that give none (default: `map` about
    /// `len / (4 x workers)`, `imap` 1).
    pub fn chunksize(mut self, n: usize) -> Self {
        self.chunksize = Some(n);
        self
    }

    /// How many chunks each worker holds at once (default 2: one running,
    /// one on its way, so a worker never waits for the root).
    pub fn depth(mut self, n: usize) -> Self {
        self.depth = n;
        self
    }

    /// How long a worker may stay silent (workers send a heartbeat every
    /// 500 ms) before it is taken for lost and its tasks fail (default 30
    /// s). Workers on the root's host are also watched through their
    /// process, which notices a death at once.
    pub fn heartbeat_timeout(mut self, t: Duration) -> Self {
        self.heartbeat_timeout = t;
        self
    }

    /// How long a worker may take to start and say hello (default 60 s).
    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.start_timeout = t;
        self
    }

    /// An `MPI_Info` key of `MPI_Comm_spawn` (for OpenMPI: `host`,
    /// `hostfile`, `add-host`, `map_by`, ...), for [`spawn`](PoolBuilder::spawn).
    pub fn spawn_info(mut self, key: &str, value: &str) -> Self {
        self.spawn_info.push((key.to_string(), value.to_string()));
        self
    }

    fn settings(&mut self, ending: Ending) -> Result<Settings, Error> {
        if self.depth == 0 || self.chunksize == Some(0) {
            return Err(Error::InvalidArgument(
                "depth and chunksize must be at least 1".into(),
            ));
        }
        let init = self.init.take().transpose()?;
        Ok(Settings {
            init,
            depth: self.depth,
            heartbeat_timeout: self.heartbeat_timeout,
            start_timeout: self.start_timeout,
            ending,
        })
    }

    /// A pool of the world's worker ranks (1..N of `mpirun -np N`), in
    /// the rank 0 process after [`init`](crate::init). One world pool at
    /// a time: the workers return to the process when it is closed and
    /// joined, terminated or dropped, and serve the next one.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] with [`MpiError::Setup`] when this process is
    /// not rank 0 of an MPI job of two or more ranks that called `init`,
    /// or another world pool is running; [`MpiError::NoWorkers`] when every
    /// worker is lost.
    pub fn world(mut self) -> Result<Pool, Error> {
        let settings = self.settings(Ending::Release)?;
        let slots = {
            let mut w = world();
            let Some(w) = w.as_mut() else {
                return Err(MpiError::Setup(
                    "not rank 0 of an MPI job: run the program with `mpirun -np N` \
                     (N >= 2) and call mp_mpi::init() first in main"
                        .into(),
                )
                .into());
            };
            w.slots
                .take()
                .ok_or_else(|| MpiError::Setup("another pool holds the world's workers".into()))?
        };
        let alive = slots.iter().filter(|s| s.phase != Phase::Lost).count();
        if alive == 0 {
            if let Some(w) = world().as_mut() {
                w.slots = Some(slots);
            }
            return Err(MpiError::NoWorkers.into());
        }
        Ok(self.start(Kind::World, Comm::world(), slots, settings))
    }

    /// A pool of `n` new worker processes started with `MPI_Comm_spawn`
    /// (this executable again, with a marker argument that makes them serve
    /// before `main`). Initializes MPI in this process on first use.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for 0; [`Error::Backend`] with
    /// [`MpiError::Call`] when MPI refuses (for OpenMPI: more workers than
    /// slots without `OMPI_MCA_rmaps_base_oversubscribe=1`, no `orted`, ...).
    pub fn spawn(mut self, n: usize) -> Result<Pool, Error> {
        if n == 0 {
            return Err(Error::InvalidArgument(
                "a pool needs at least one worker".into(),
            ));
        }
        let settings = self.settings(Ending::Stop)?;
        crate::keep_hook();
        crate::ensure_init()?;
        let exe = std::env::current_exe()
            .map_err(|e| MpiError::Setup(format!("cannot find this executable: {e}")))?;
        let exe = exe
            .to_str()
            .ok_or_else(|| MpiError::Setup("the executable's path is not UTF-8".into()))?
            .to_string();
        let n32 = i32::try_from(n).map_err(|_| Error::InvalidArgument(format!("{n} workers")))?;
        let comm = Comm::spawn(&exe, &[crate::proto::SPAWNED_ARG], n32, &self.spawn_info)?;
        comm.errors_return()?;
        let slots = (0..n32).map(Slot::new).collect();
        Ok(self.start(Kind::Spawned, comm, slots, settings))
    }

    fn start(self, kind: Kind, comm: Comm, slots: Vec<Slot>, settings: Settings) -> Pool {
        let processes = slots.iter().filter(|s| s.phase != Phase::Lost).count();
        let status = Arc::new(Mutex::new(Status {
            alive: processes,
            ..Status::default()
        }));
        let (tx, rx) = channel();
        let d = Dispatcher::new(comm, slots, settings, rx, status.clone());
        let thread = std::thread::Builder::new()
            .name("mp-mpi-dispatch".into())
            .spawn(move || {
                let (comm, slots) = d.run();
                finish(kind, comm, slots);
            })
            .expect("cannot start the dispatcher thread");
        Pool {
            kind,
            processes,
            chunksize: self.chunksize,
            tx: Mutex::new(Some(tx)),
            status,
            state: Mutex::new(State::Running),
            thread: Mutex::new(Some(thread)),
            seq: AtomicU64::new(0),
        }
    }
}

/// After a pool's dispatcher ended: world workers go back to the registry;
/// a spawned group is disconnected, or, when some worker is lost (a
/// disconnect would wait for it forever), freed, and the workers of this
/// host that are still there are killed.
fn finish(kind: Kind, comm: Comm, slots: Vec<Slot>) {
    match kind {
        Kind::World => {
            if let Some(w) = world().as_mut() {
                w.slots = Some(slots);
            }
        }
        Kind::Spawned => {
            if slots.iter().all(|s| s.phase == Phase::Left) {
                let _ = comm.release(true);
            } else {
                let _ = comm.release(false);
                for s in &slots {
                    if let (Some(h), Some(w)) = (&s.hello, &s.watch)
                        && w.is_local()
                        && !w.ended()
                    {
                        // SAFETY: kill has no memory preconditions; the pid
                        // is watched through a pidfd that says the process
                        // has not ended, so it was not reused.
                        unsafe { libc::kill(h.pid as libc::pid_t, libc::SIGKILL) };
                    }
                }
            }
        }
    }
}

impl Pool {
    /// A builder for the other settings.
    ///
    /// ```no_run
    /// fn hello(name: String) {
    ///     eprintln!("{name}: worker {} ready", std::process::id());
    /// }
    /// let pool = mp_mpi::Pool::builder()
    ///     .initializer(hello, "mpi".to_string())
    ///     .chunksize(16)
    ///     .spawn(2)?;
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            init: None,
            chunksize: None,
            depth: 2,
            heartbeat_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(60),
            spawn_info: Vec::new(),
        }
    }

    /// [`PoolBuilder::world`] with default settings.
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::world`].
    pub fn world() -> Result<Pool, Error> {
        Pool::builder().world()
    }

    /// [`PoolBuilder::spawn`] with default settings.
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::spawn`].
    pub fn spawn(n: usize) -> Result<Pool, Error> {
        Pool::builder().spawn(n)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The number of workers the pool started with.
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// The number of workers not lost so far.
    pub fn alive(&self) -> usize {
        self.status().alive
    }

    /// The process ids of the workers that said hello and are not lost
    /// (on their own hosts).
    pub fn pids(&self) -> Vec<u32> {
        self.status().pids.clone()
    }

    fn running(&self) -> Result<(), Error> {
        if let Some(m) = &self.status().broken {
            return Err(Error::Initializer { message: m.clone() });
        }
        if *self.state() != State::Running {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn send(&self, cmd: Cmd) -> Result<(), Cmd> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref() {
            Some(tx) => tx.send(cmd).map_err(|e| e.0),
            None => Err(cmd),
        }
    }

    /// Encodes and queues chunks `(index, items)` of one call of `f`; each
    /// chunk's outcome goes to `job`.
    pub(crate) fn submit<A>(
        &self,
        func: RawFunction,
        chunks: Vec<(usize, Vec<A>)>,
        job: &Arc<dyn Job>,
    ) -> Result<(), Error>
    where
        A: Serialize + Send + 'static,
    {
        let mut tasks = Vec::with_capacity(chunks.len());
        for (index, items) in chunks {
            let nitems = items.len();
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let frame = mp_pool::codec::encode_chunk(&items)
                .and_then(|chunk| crate::dispatch::task_frame(seq, func, &chunk));
            match frame {
                Ok(frame) => tasks.push(Task {
                    seq,
                    index,
                    nitems,
                    frame,
                    job: job.clone(),
                }),
                Err(e) => job.done(index, nitems, Err(e)),
            }
        }
        if let Err(e) = self.running() {
            for t in tasks {
                t.job
                    .done(t.index, t.nitems, Err(crate::error::dup_error(&e)));
            }
            return Err(e);
        }
        if let Err(Cmd::Submit(tasks)) = self.send(Cmd::Submit(tasks)) {
            for t in tasks {
                t.job.done(t.index, t.nitems, Err(Error::Closed));
            }
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn raw_function<A, R>(&self, f: fn(A) -> R) -> Result<RawFunction, Error>
    where
        A: DeserializeOwned + 'static,
        R: Serialize + 'static,
    {
        self.running()?;
        let func = Function::with_runner::<mp_pool::codec::ChunkRunner>(f);
        if !func.is_portable() {
            return Err(Error::Call(mp_proc::CallError::OutsideBinary));
        }
        Ok(func.raw())
    }

    /// Accepts no more work; the submitted tasks finish (Python's
    /// `close`). World workers then return to the process for the next
    /// world pool; spawned workers exit.
    pub fn close(&self) {
        let mut st = self.state();
        if *st == State::Running {
            *st = State::Closed;
        }
        drop(st);
        let _ = self.send(Cmd::Close);
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Fails every unfinished task with [`Error::Terminated`] now
    /// (Python's `terminate`) and waits until every worker has answered
    /// (or is lost). MPI cannot interrupt a running task: a worker
    /// finishes the chunks it holds (at most `depth`) before it answers.
    pub fn terminate(&self) {
        *self.state() = State::Terminated;
        let _ = self.send(Cmd::Terminate);
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.join_thread();
    }

    /// Waits for the workers after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate) (Python's `join`).
    ///
    /// # Errors
    ///
    /// [`Error::StillRunning`] if neither was called.
    pub fn join(&self) -> Result<(), Error> {
        if *self.state() == State::Running {
            return Err(Error::StillRunning);
        }
        self.join_thread();
        Ok(())
    }

    fn join_thread(&self) {
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

/// Dropping a running pool terminates it; a closed one finishes its tasks
/// and joins.
impl Drop for Pool {
    fn drop(&mut self) {
        if *self.state() == State::Closed {
            self.join_thread();
        } else {
            self.terminate();
        }
    }
}

/// Where the chunks of one call go: the call's [`Sink`].
struct SinkJob<R> {
    sink: Sink<R>,
}

impl<R: DeserializeOwned + Send + 'static> Job for SinkJob<R> {
    fn done(&self, index: usize, nitems: usize, out: Result<&[u8], Error>) {
        match out {
            Ok(bytes) => self.sink.deliver_encoded(index, nitems, Ok(bytes.to_vec())),
            Err(e) => self.sink.fail(index, nitems, &e),
        }
    }

    fn cancelled(&self) -> bool {
        self.sink.is_cancelled()
    }
}

/// The shared pool interface: a function written against [`TaskPool`]
/// runs on `mp_pool::Pool`, `ThreadPool` and this pool unchanged.
impl TaskPool for Pool {
    fn processes(&self) -> usize {
        self.processes
    }

    fn check_running(&self) -> Result<(), Error> {
        self.running()
    }

    fn start_call<'a, A, R>(&'a self, f: fn(A) -> R, sink: &Sink<R>) -> Result<Submit<'a, A>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let func = self.raw_function(f)?;
        let job: Arc<dyn Job> = Arc::new(SinkJob { sink: sink.clone() });
        Ok(Box::new(move |chunks| self.submit(func, chunks, &job)))
    }

    fn close(&self) {
        Pool::close(self);
    }

    fn terminate(&self) {
        Pool::terminate(self);
    }

    fn join(&self) -> Result<(), Error> {
        Pool::join(self)
    }

    fn default_chunksize(&self) -> Option<usize> {
        self.chunksize
    }
}
