//! `Pool`: worker processes and the calls that feed them.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use mp_channel::{Queue, WaitMode};
use mp_proc::{Function, RawFunction, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::collect::{AsyncResult, Callbacks, IMap};
use crate::dispatch::{Dispatcher, Job, TaskRec};
use crate::insights::{Insights, Record};
#[cfg(feature = "progress")]
use crate::task_pool::CallKind;
use crate::task_pool::{Sink, Submit, TaskPool};
use crate::worker::{Bytes, Init, Msg, PassFd, TaskHeader};
use crate::{BoxError, Error};

/// Ring bytes of the shared result queue.
const INBOX_RING: usize = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Closed,
    Terminated,
}

pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) init: Option<Init>,
    pub(crate) max_tasks_per_child: u64,
    pub(crate) chunksize: Option<usize>,
    pub(crate) start_method: Option<StartMethod>,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) wait_mode: WaitMode,
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) progress: bool,
    /// Workers measure their times (`Pool::insights`).
    pub(crate) insights: bool,
}

pub(crate) struct Ctl {
    pub(crate) state: State,
    pub(crate) pending: VecDeque<TaskRec>,
    pub(crate) broken: Option<String>,
}

/// What the pool's handle and its dispatcher thread share.
pub(crate) struct Shared {
    pub(crate) cfg: Config,
    pub(crate) inbox: Queue<Msg>,
    /// Set when `ctl` has news for the dispatcher.
    pub(crate) wake: AtomicBool,
    ctl: Mutex<Ctl>,
    pub(crate) pids: Mutex<Vec<u32>>,
    /// Every worker started, for `Pool::insights`.
    pub(crate) records: Mutex<Vec<Arc<Record>>>,
    seq: AtomicU64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Ctl> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the dispatcher to terminate the pool (kill the workers, fail
    /// what is left) without waiting for it: callable from the dispatcher
    /// thread itself (a completion path).
    pub(crate) fn terminate_soon(&self) {
        self.lock().state = State::Terminated;
        self.kick();
    }

    /// Wakes the dispatcher.
    fn kick(&self) {
        if !self.wake.swap(true, Ordering::AcqRel) {
            let _ = self.inbox.put(Msg::Wake);
        }
    }

    fn check_running(&self) -> Result<(), Error> {
        let ctl = self.lock();
        if let Some(m) = &ctl.broken {
            return Err(Error::Initializer { message: m.clone() });
        }
        if ctl.state != State::Running {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Queues tasks for the dispatcher. On error the tasks are failed.
    fn submit(&self, tasks: Vec<TaskRec>) -> Result<(), Error> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut ctl = self.lock();
        let err = if let Some(m) = &ctl.broken {
            Some(Error::Initializer { message: m.clone() })
        } else if ctl.state != State::Running {
            Some(Error::Closed)
        } else {
            None
        };
        if let Some(e) = err {
            drop(ctl);
            for t in tasks {
                t.job.fail(t.index, t.nitems, &e);
            }
            return Err(e);
        }
        ctl.pending.extend(tasks);
        drop(ctl);
        self.kick();
        Ok(())
    }

    /// Builds the frame of one task.
    fn task<A: Serialize + Send + 'static>(
        &self,
        func: RawFunction,
        job: &Arc<dyn Job>,
        index: usize,
        items: Vec<A>,
    ) -> Result<TaskRec, Error> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let nitems = items.len();
        let hdr = TaskHeader { seq, func };
        let enc = |mut frame: Vec<u8>| {
            let chunk = mp_proc::encode_chunk(&items)
                .map_err(|e| Error::Call(mp_proc::CallError::BadInput(e.to_string())))?;
            frame.extend_from_slice(&chunk);
            Ok::<Vec<u8>, Error>(frame)
        };
        let head = || {
            let mut v = Vec::with_capacity(64 + nitems * std::mem::size_of::<A>());
            v.extend_from_slice(
                &postcard::to_allocvec(&hdr).map_err(|e| Error::Decode(e.to_string()))?,
            );
            Ok(v)
        };
        let (frame, fds, transits) = mp_os::handle::collect_handles(|| head().and_then(enc));
        let mut frame = frame?;
        let mut keep: Option<Box<dyn std::any::Any + Send>> = None;
        if !fds.is_empty() {
            // Handles in the items: write them as `/proc/PID/fd/N`
            // references and keep the items (their descriptors) alive until
            // the task is over. This first encoding is thrown away, and
            // what it registered with it.
            drop((fds, transits));
            frame = head().and_then(enc)?;
            keep = Some(Box::new(items));
        }
        Ok(TaskRec {
            job: job.clone(),
            index,
            nitems,
            seq,
            frame,
            keep,
            attempts: 0,
        })
    }
}

/// A pool of worker processes running `fn(A) -> R` over many inputs:
/// Python's `multiprocessing.Pool`.
///
/// ```
/// use mp_pool::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::new(2)?;
/// assert_eq!(pool.map(square, 0..5)?, vec![0, 1, 4, 9, 16]);
/// let r = pool.apply_async(square, 7)?;
/// assert_eq!(r.get()?, 49);
/// let firsts: Vec<u64> = pool.imap(square, 0..1000)?.take(3).collect::<Result<_, _>>()?;
/// assert_eq!(firsts, vec![0, 1, 4]);
/// pool.close();
/// pool.join()?;
/// # Ok::<(), mp_pool::Error>(())
/// ```
///
/// Targets are `fn` items (or non-capturing closures) of one parameter
/// (a tuple for several); arguments and results are serde types. See the
/// crate docs for failures, shared inputs and the design.
pub struct Pool {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.shared.cfg.processes)
            .field("state", &self.shared.lock().state)
            .field("pids", &self.pids())
            .finish()
    }
}

/// Configures a [`Pool`]: see [`Pool::builder`].
pub struct PoolBuilder {
    processes: Option<usize>,
    init: Option<Result<Init, Error>>,
    max_tasks_per_child: Option<u64>,
    chunksize: Option<usize>,
    start_method: Option<StartMethod>,
    task_timeout: Option<Duration>,
    retries: u32,
    wait_mode: WaitMode,
    progress: bool,
    insights: bool,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("initializer", &self.init.is_some())
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("chunksize", &self.chunksize)
            .field("start_method", &self.start_method)
            .field("task_timeout", &self.task_timeout)
            .field("retries", &self.retries)
            .field("insights", &self.insights)
            .finish()
    }
}

impl PoolBuilder {
    /// Number of worker processes (default: [`mp_proc::cpu_count`]).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Runs `f(args)` once in each worker before its first task (Python's
    /// `initializer` and `initargs`). The arguments may hold handles (a
    /// shared array, a queue, ...): this is how every worker gets a big
    /// read-only input once. If it panics, the pool is broken: every task
    /// fails with [`Error::Initializer`].
    pub fn initializer<A: Serialize + DeserializeOwned + 'static>(
        mut self,
        f: fn(A),
        args: A,
    ) -> Self {
        let func = Function::new(f).raw();
        // Every worker (and every replacement) decodes these arguments:
        // the channels in them stay connected as long as the pool keeps
        // them, and no worker releases anything.
        let (bytes, fds, transits) =
            mp_os::handle::collect_handles(|| postcard::to_allocvec(&args));
        self.init = Some(
            bytes
                .map(|b| Init {
                    func,
                    args: Bytes(b),
                    fds: fds.into_iter().map(|f| PassFd(Arc::new(f))).collect(),
                    _keep: Some(Arc::new(transits)),
                })
                .map_err(|e| Error::InvalidArgument(format!("initializer arguments: {e}"))),
        );
        self
    }

    /// Replaces a worker after it has run `n` tasks (chunks) (Python's
    /// `maxtasksperchild`). Default: never.
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// The chunk size of `map` and `imap` calls that do not give one
    /// (default: `map` about `len / (4 x processes)` as in Python, `imap` 1).
    pub fn chunksize(mut self, n: usize) -> Self {
        self.chunksize = Some(n);
        self
    }

    /// How workers are started (default: the process-wide start method,
    /// forkserver unless changed; see [`mp_proc::set_start_method`]).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// Uses a context's start method (Python's `ctx.Pool(...)`).
    pub fn context(self, ctx: &mp_proc::Context) -> Self {
        self.start_method(ctx.method())
    }

    /// Kills a worker whose task runs longer than `timeout`: the task fails
    /// with [`Error::TaskTimeout`] (or is retried) and the worker is
    /// replaced. Default: no limit.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// Runs a task again, up to `n` more times, when its worker dies or it
    /// times out (default 0: the task fails). Panics are not retried.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// How the dispatcher and the workers wait on their channels (default
    /// [`WaitMode::Adaptive`]: spin briefly, then sleep).
    pub fn wait_mode(mut self, mode: WaitMode) -> Self {
        self.wait_mode = mode;
        self
    }

    /// Shows an `indicatif` progress bar on standard error for `map`,
    /// `map_results`, `starmap` and `imap` calls.
    #[cfg(feature = "progress")]
    #[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Makes every worker measure where its time goes, for
    /// [`Pool::insights`]: start-up, initializer, the task function,
    /// waiting for work, receiving arguments and sending results (a few
    /// clock reads per chunk; none per item). Without it the insights hold
    /// only the counts of tasks and items. Default: off.
    ///
    /// ```
    /// use mp_pool::Pool;
    ///
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// let pool = Pool::builder().processes(2).insights(true).build()?;
    /// pool.map(double, 0..1000)?;
    /// let insights = pool.insights();
    /// assert!(insights.timed);
    /// assert_eq!(insights.total().items, 1000);
    /// println!("{insights}"); // a table: one line per worker and a total
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn insights(mut self, on: bool) -> Self {
        self.insights = on;
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for zero processes, chunk size or
    /// `max_tasks_per_child`, a zero task timeout, or initializer arguments
    /// that cannot be serialized; [`Error::Process`] when a worker cannot
    /// start; [`Error::Channel`] when the channels cannot be created.
    pub fn build(self) -> Result<Pool, Error> {
        let processes = self.processes.unwrap_or_else(mp_proc::cpu_count);
        if processes == 0 {
            return Err(Error::InvalidArgument(
                "the number of processes must be at least 1".into(),
            ));
        }
        if self.chunksize == Some(0) {
            return Err(Error::InvalidArgument(
                "chunksize must be at least 1".into(),
            ));
        }
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::InvalidArgument(
                "max_tasks_per_child must be at least 1".into(),
            ));
        }
        if self.task_timeout == Some(Duration::ZERO) {
            return Err(Error::InvalidArgument(
                "task_timeout must not be zero".into(),
            ));
        }
        let init = self.init.transpose()?;
        let inbox = Queue::builder()
            .ring_bytes(INBOX_RING)
            .wait_mode(self.wait_mode)
            .build()
            .map_err(Error::channel)?;
        let shared = Arc::new(Shared {
            cfg: Config {
                processes,
                init,
                max_tasks_per_child: self.max_tasks_per_child.unwrap_or(0),
                chunksize: self.chunksize,
                start_method: self.start_method,
                task_timeout: self.task_timeout,
                retries: self.retries,
                wait_mode: self.wait_mode,
                progress: self.progress,
                insights: self.insights,
            },
            inbox,
            wake: AtomicBool::new(false),
            ctl: Mutex::new(Ctl {
                state: State::Running,
                pending: VecDeque::new(),
                broken: None,
            }),
            pids: Mutex::new(Vec::new()),
            records: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
        });
        let d = Dispatcher::start(shared.clone())?;
        let thread = std::thread::Builder::new()
            .name("mp-pool-dispatcher".into())
            .spawn(move || d.run())
            .map_err(|e| Error::Channel(Box::new(e)))?;
        Ok(Pool {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }
}

impl Pool {
    /// A pool of `processes` workers with default settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for 0, otherwise as
    /// [`PoolBuilder::build`].
    pub fn new(processes: usize) -> Result<Pool, Error> {
        Pool::builder().processes(processes).build()
    }

    /// A builder for the other settings.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_pool::Pool;
    ///
    /// fn greet(name: String) {
    ///     eprintln!("{name}: worker {} starting", std::process::id());
    /// }
    /// fn double(x: i32) -> i32 { x * 2 }
    ///
    /// let pool = Pool::builder()
    ///     .processes(2)
    ///     .initializer(greet, "pool".to_string())
    ///     .max_tasks_per_child(10)
    ///     .task_timeout(Duration::from_secs(60))
    ///     .build()?;
    /// assert_eq!(pool.map(double, [1, 2, 3])?, vec![2, 4, 6]);
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            init: None,
            max_tasks_per_child: None,
            chunksize: None,
            start_method: None,
            task_timeout: None,
            retries: 0,
            wait_mode: WaitMode::Adaptive,
            progress: false,
            insights: false,
        }
    }

    /// The number of workers.
    pub fn processes(&self) -> usize {
        self.shared.cfg.processes
    }

    /// The process ids of the current workers (they change when workers are
    /// replaced; empty once the pool has been joined or terminated).
    pub fn pids(&self) -> Vec<u32> {
        self.shared
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What each worker has done so far and where its time went, as
    /// mpire's insights: tasks and items always, times when the pool was
    /// built with [`PoolBuilder::insights`]. Every worker ever started is
    /// listed, also those replaced or gone; `Display` prints a table.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_pool::Pool;
    ///
    /// fn warm_up(ms: u64) {
    ///     std::thread::sleep(Duration::from_millis(ms));
    /// }
    /// fn slow_double(x: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(2));
    ///     x * 2
    /// }
    ///
    /// let pool = Pool::builder()
    ///     .processes(2)
    ///     .initializer(warm_up, 10)
    ///     .insights(true)
    ///     .build()?;
    /// pool.map_chunked(slow_double, 0..20, 1)?;
    /// let i = pool.insights();
    /// assert_eq!(i.workers.len(), 2);
    /// assert_eq!(i.total().tasks, 20);
    /// assert!(i.workers.iter().all(|w| w.init >= Duration::from_millis(10)));
    /// assert!(i.total().working >= Duration::from_millis(40));
    /// eprintln!("{i}");
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn insights(&self) -> Insights {
        let records = self
            .shared
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Insights::collect(self.shared.cfg.insights, &records)
    }

    /// Queues one task per `(job, items)`, each job its own sink (the
    /// executor's futures). On error every job has been failed with it.
    pub(crate) fn submit_jobs<A, R>(
        &self,
        f: fn(A) -> R,
        tasks: Vec<(Arc<dyn Job>, Vec<A>)>,
    ) -> Result<(), Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let func = Function::new(f);
        let err = if func.is_portable() {
            self.shared.check_running().err()
        } else {
            Some(Error::Call(mp_proc::CallError::OutsideBinary))
        };
        if let Some(e) = err {
            for (job, items) in tasks {
                job.fail(0, items.len(), &e);
            }
            return Err(e);
        }
        let func = func.raw();
        let mut batch = Vec::with_capacity(tasks.len());
        for (job, items) in tasks {
            let n = items.len();
            match self.shared.task(func, &job, 0, items) {
                Ok(t) => batch.push(t),
                Err(e) => job.fail(0, n, &e),
            }
        }
        self.shared.submit(batch)
    }

    /// The state shared with the dispatcher.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    #[cfg_attr(not(feature = "progress"), allow(unused_variables))]
    fn progress<R: Send + 'static>(&self, sink: &Sink<R>) {
        #[cfg(feature = "progress")]
        if self.shared.cfg.progress {
            let bar = match sink.kind() {
                CallKind::Map { items } => indicatif::ProgressBar::new(items as u64),
                CallKind::Stream => indicatif::ProgressBar::no_length(),
                _ => return,
            };
            sink.collector().set_bar(bar);
        }
    }

    /// Applies `f` to every item and returns the results in order (Python's
    /// `map`), failing with the first task failure: [`TaskPool::map`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::map`].
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::map(self, f, items)
    }

    /// [`map`](Pool::map) with an explicit chunk size: [`TaskPool::map_chunked`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::map_chunked`].
    pub fn map_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::map_chunked(self, f, items, chunksize)
    }

    /// Python's `starmap`: [`map`](Pool::map) over an iterator of tuples: [`TaskPool::starmap`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::starmap`].
    pub fn starmap<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::starmap(self, f, items)
    }

    /// [`map`](Pool::map) over an input that can fail, read to the end first: [`TaskPool::try_map`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::try_map`].
    pub fn try_map<A, R, E>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = Result<A, E>>,
    ) -> Result<Vec<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        E: Into<BoxError>,
    {
        TaskPool::try_map(self, f, items)
    }

    /// Every item's own result, in order, after all have run: [`TaskPool::map_results`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::map_results`].
    pub fn map_results<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<Result<R, Error>>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::map_results(self, f, items)
    }

    /// Submits a map and returns at once (Python's `map_async`): [`TaskPool::map_async`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::map_async`].
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::map_async(self, f, items)
    }

    /// [`map_async`](Pool::map_async) with an explicit chunk size: [`TaskPool::map_async_chunked`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::map_async_chunked`].
    pub fn map_async_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::map_async_chunked(self, f, items, chunksize)
    }

    /// [`map_async`](Pool::map_async) with callbacks, run on the pool's
    /// dispatcher thread when the map finishes: [`TaskPool::map_async_with`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::map_async_with`].
    pub fn map_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::map_async_with(self, f, items, callbacks)
    }

    /// Python's `starmap_async`: [`map_async`](Pool::map_async) over an
    /// iterator of tuples: [`TaskPool::starmap_async`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::starmap_async`].
    pub fn starmap_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::starmap_async(self, f, items)
    }

    /// Runs `f(arg)` in a worker and waits for the result (Python's `apply`): [`TaskPool::apply`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::apply`].
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::apply(self, f, arg)
    }

    /// Submits `f(arg)` and returns at once (Python's `apply_async`): [`TaskPool::apply_async`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::apply_async`].
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::apply_async(self, f, arg)
    }

    /// [`apply_async`](Pool::apply_async) with callbacks, run on the pool's
    /// dispatcher thread when the task finishes: [`TaskPool::apply_async_with`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::apply_async_with`].
    pub fn apply_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::apply_async_with(self, f, arg, callbacks)
    }

    /// Yields results in input order as they become available (Python's
    /// `imap`); the input is read lazily: [`TaskPool::imap`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::imap`].
    pub fn imap<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'a,
    ) -> Result<IMap<'a, R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::imap(self, f, items)
    }

    /// [`imap`](Pool::imap) with an explicit chunk size: [`TaskPool::imap_chunked`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::imap_chunked`].
    pub fn imap_chunked<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> Result<IMap<'a, R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::imap_chunked(self, f, items, chunksize)
    }

    /// Like [`imap`](Pool::imap), yielding results as tasks finish (Python's
    /// `imap_unordered`): [`TaskPool::imap_unordered`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::imap_unordered`].
    pub fn imap_unordered<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'a,
    ) -> Result<IMap<'a, R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::imap_unordered(self, f, items)
    }

    /// [`imap_unordered`](Pool::imap_unordered) with an explicit chunk size: [`TaskPool::imap_unordered_chunked`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::imap_unordered_chunked`].
    pub fn imap_unordered_chunked<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> Result<IMap<'a, R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::imap_unordered_chunked(self, f, items, chunksize)
    }

    /// [`imap`](Pool::imap) over an input that can fail: the `Err` becomes one
    /// [`Error::Input`] item and ends the input: [`TaskPool::try_imap`], which has the details.
    ///
    /// # Errors
    ///
    /// As [`TaskPool::try_imap`].
    pub fn try_imap<'a, A, R, E>(
        &'a self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = Result<A, E>> + 'a,
    ) -> Result<IMap<'a, R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        E: Into<BoxError> + 'a,
    {
        TaskPool::try_imap(self, f, items)
    }
    /// Accepts no more work; the workers exit once the submitted tasks are
    /// done (Python's `close`). Later calls fail with [`Error::Closed`].
    pub fn close(&self) {
        let mut ctl = self.shared.lock();
        if ctl.state == State::Running {
            ctl.state = State::Closed;
        }
        drop(ctl);
        self.shared.kick();
    }

    /// Kills the workers now (SIGTERM, then SIGKILL after 200 ms) and
    /// fails every unfinished task with [`Error::Terminated`], however many
    /// are queued (Python's `terminate`). Waits until the workers are
    /// reaped.
    pub fn terminate(&self) {
        self.shared.lock().state = State::Terminated;
        self.shared.kick();
        self.join_thread();
    }

    /// Waits for the workers to exit after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate) (Python's `join`).
    ///
    /// # Errors
    ///
    /// [`Error::StillRunning`] if neither was called.
    pub fn join(&self) -> Result<(), Error> {
        if self.shared.lock().state == State::Running {
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

impl TaskPool for Pool {
    fn processes(&self) -> usize {
        self.shared.cfg.processes
    }

    fn check_running(&self) -> Result<(), Error> {
        self.shared.check_running()
    }

    fn start_call<'a, A, R>(&'a self, f: fn(A) -> R, sink: &Sink<R>) -> Result<Submit<'a, A>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.shared.check_running()?;
        let func = Function::new(f);
        if !func.is_portable() {
            return Err(Error::Call(mp_proc::CallError::OutsideBinary));
        }
        self.progress(sink);
        let func = func.raw();
        let shared = self.shared.clone();
        let job: Arc<dyn Job> = sink.collector().clone();
        Ok(Box::new(move |chunks: Vec<(usize, Vec<A>)>| {
            let mut batch = Vec::with_capacity(chunks.len());
            for (index, items) in chunks {
                let n = items.len();
                match shared.task(func, &job, index, items) {
                    Ok(t) => batch.push(t),
                    Err(e) => job.fail(index, n, &e),
                }
            }
            shared.submit(batch)
        }))
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
        self.shared.cfg.chunksize
    }

    /// How many chunks a blocking call keeps submitted ahead.
    fn window(&self) -> usize {
        (self.shared.cfg.processes * 128).max(1024)
    }
}

/// Dropping a running pool terminates it (as Python's context manager
/// does): the workers are killed and reaped, unfinished tasks fail with
/// [`Error::Terminated`]. A pool that was closed first finishes its tasks
/// and joins instead.
impl Drop for Pool {
    fn drop(&mut self) {
        if self.shared.lock().state == State::Closed {
            self.join_thread();
        } else {
            self.terminate();
        }
    }
}
