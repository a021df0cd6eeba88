//! `ProcessPoolExecutor`: futures on a process [`Pool`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mp_proc::{CallError, ChunkResults, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::future::{Core, Decode};
use super::{FutureError, MapIter, Registry};
use crate::task::Job;
use crate::{Error, Future, Pool, PoolBuilder};

/// Worker processes running submitted calls, each with its [`Future`]:
/// Python's `concurrent.futures.ProcessPoolExecutor`.
///
/// ```
/// use mp_pool::{FutureError, ProcessPoolExecutor};
///
/// fn check(x: i32) -> i32 { assert!(x >= 0, "negative input"); x * 10 }
///
/// let ex = ProcessPoolExecutor::new(2)?;
/// let ok = ex.submit(check, 4)?;
/// let bad = ex.submit(check, -1)?;
/// assert_eq!(ok.result()?, 40);
/// assert!(matches!(bad.result(), Err(FutureError::TaskPanicked { .. })));
/// ex.shutdown(true, false);
/// assert!(matches!(ex.submit(check, 1), Err(FutureError::ShutDown)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Targets are `fn` items (or non-capturing closures) of one parameter, as
/// for [`Pool`]; arguments and results are serde types.
///
/// A worker that dies fails only the call it was running
/// ([`FutureError::WorkerDied`]) and is replaced; Python breaks the whole
/// executor instead, which [`ExecutorBuilder::break_on_worker_death`]
/// offers. Dropping the executor shuts it down and waits for every
/// submitted call (Python's `with` block).
pub struct ProcessPoolExecutor {
    pool: Pool,
    reg: Arc<Registry>,
    breaks: bool,
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .field("pool", &self.pool)
            .field("break_on_worker_death", &self.breaks)
            .field("broken", &self.reg.broken())
            .finish()
    }
}

/// Configures a [`ProcessPoolExecutor`]: see
/// [`ProcessPoolExecutor::builder`].
pub struct ExecutorBuilder {
    pool: PoolBuilder,
    breaks: bool,
}

impl fmt::Debug for ExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorBuilder")
            .field("pool", &self.pool)
            .field("break_on_worker_death", &self.breaks)
            .finish()
    }
}

impl ExecutorBuilder {
    /// Number of worker processes (Python's `max_workers`; default
    /// [`mp_proc::cpu_count`]).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.pool = self.pool.processes(n);
        self
    }

    /// Runs `f(args)` once in each worker first (Python's `initializer`,
    /// `initargs`). If it fails, the executor is broken: every call fails
    /// with [`FutureError::BrokenPool`].
    pub fn initializer<A: Serialize + DeserializeOwned + 'static>(
        mut self,
        f: fn(A),
        args: A,
    ) -> Self {
        self.pool = self.pool.initializer(f, args);
        self
    }

    /// Replaces a worker after `n` calls (Python's `max_tasks_per_child`).
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.pool = self.pool.max_tasks_per_child(n);
        self
    }

    /// How workers are started (Python's `mp_context`).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.pool = self.pool.start_method(method);
        self
    }

    /// Uses a context's start method (Python's `mp_context=ctx`).
    pub fn context(mut self, ctx: &mp_proc::Context) -> Self {
        self.pool = self.pool.context(ctx);
        self
    }

    /// Kills a worker whose call runs longer than `timeout`; the call fails
    /// with [`FutureError::TaskTimeout`] (not in Python).
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.pool = self.pool.task_timeout(timeout);
        self
    }

    /// Runs a call again, up to `n` more times, when its worker dies (not
    /// in Python).
    pub fn retries(mut self, n: u32) -> Self {
        self.pool = self.pool.retries(n);
        self
    }

    /// Every other pool setting: the executor runs on a pool built from
    /// `pool`, which replaces the settings made so far (call it first). Its
    /// chunk size is not used: `map_with` takes one.
    pub fn pool(mut self, pool: PoolBuilder) -> Self {
        self.pool = pool;
        self
    }

    /// Python's behaviour when a worker dies (default false): the executor
    /// breaks — every unfinished future fails with
    /// [`FutureError::BrokenPool`] (the dead worker's call too), the
    /// workers are stopped, and later submissions are refused with it. A
    /// worker killed by [`task_timeout`](ExecutorBuilder::task_timeout) does
    /// not break it (Python has no task timeout).
    ///
    /// ```
    /// use mp_pool::{FutureError, ProcessPoolExecutor};
    ///
    /// fn crash(x: i32) -> i32 { if x == 0 { std::process::abort() } x }
    ///
    /// let ex = ProcessPoolExecutor::builder().max_workers(1).break_on_worker_death(true).build()?;
    /// let f = ex.submit(crash, 0)?;
    /// assert!(matches!(f.result(), Err(FutureError::BrokenPool { .. })));
    /// assert!(matches!(ex.submit(crash, 1), Err(FutureError::BrokenPool { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn break_on_worker_death(mut self, on: bool) -> Self {
        self.breaks = on;
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::build`].
    pub fn build(self) -> Result<ProcessPoolExecutor, Error> {
        let pool = self.pool.build()?;
        let reg = Registry::new(Some(Arc::downgrade(pool.shared())));
        Ok(ProcessPoolExecutor {
            pool,
            reg,
            breaks: self.breaks,
        })
    }
}

fn call_error(e: CallError) -> FutureError {
    FutureError::from(Error::from(e))
}

/// The value of a one-item task.
fn decode_one<R: DeserializeOwned + 'static>(
    out: Result<Vec<u8>, CallError>,
    _nitems: usize,
) -> Result<R, FutureError> {
    let missing = || FutureError::from(Error::Decode("a task produced no result".into()));
    match out.and_then(|b| mp_proc::decode_chunk_results::<R>(&b)) {
        Ok(ChunkResults::Ok(v)) => v.into_iter().next().ok_or_else(missing),
        Ok(ChunkResults::Mixed(v)) => v
            .into_iter()
            .next()
            .ok_or_else(missing)?
            .map_err(call_error),
        Err(e) => Err(call_error(e)),
    }
}

/// Every item's result of a `map` chunk.
fn decode_chunk<R: DeserializeOwned + 'static>(
    out: Result<Vec<u8>, CallError>,
    nitems: usize,
) -> Result<Vec<Result<R, FutureError>>, FutureError> {
    let v: Vec<Result<R, FutureError>> =
        match out.and_then(|b| mp_proc::decode_chunk_results::<R>(&b)) {
            Ok(ChunkResults::Ok(v)) => v.into_iter().map(Ok).collect(),
            Ok(ChunkResults::Mixed(v)) => v.into_iter().map(|r| r.map_err(call_error)).collect(),
            Err(e) => return Err(call_error(e)),
        };
    if v.len() != nitems {
        return Err(FutureError::from(Error::Decode(format!(
            "{} results for {nitems} items",
            v.len()
        ))));
    }
    Ok(v)
}

impl ProcessPoolExecutor {
    /// An executor of `max_workers` processes.
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::build`] (`Error::InvalidArgument` for 0).
    pub fn new(max_workers: usize) -> Result<ProcessPoolExecutor, Error> {
        ProcessPoolExecutor::builder()
            .max_workers(max_workers)
            .build()
    }

    /// A builder for the other settings.
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder {
            pool: Pool::builder(),
            breaks: false,
        }
    }

    /// The number of worker processes.
    pub fn max_workers(&self) -> usize {
        self.pool.processes()
    }

    /// The process ids of the current workers.
    pub fn pids(&self) -> Vec<u32> {
        self.pool.pids()
    }

    fn new_core<T: Send + 'static>(&self, decode: Decode<T>) -> Arc<Core<T>> {
        let breaker = self.breaks.then(|| self.reg.clone());
        let core = Arc::new(Core::new(Some(decode), breaker));
        self.reg.add(&core);
        core
    }

    /// Schedules `f(arg)` on a worker and returns its [`Future`] (Python's
    /// `submit`).
    ///
    /// # Errors
    ///
    /// [`FutureError::ShutDown`] after [`shutdown`](ProcessPoolExecutor::shutdown),
    /// [`FutureError::BrokenPool`] when the executor is broken,
    /// [`FutureError::Pool`] for a function outside this executable. The
    /// call's own failures (arguments that cannot be encoded included) come
    /// from the future.
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<Future<R>, FutureError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.reg.check()?;
        let core = self.new_core(decode_one::<R>);
        let job: Arc<dyn Job> = core.clone();
        self.pool
            .submit_jobs(f, vec![(job, vec![arg])])
            .map_err(|e| self.reg.refused(e))?;
        // Arguments that cannot be encoded fail the future, as in Python.
        Ok(Future::from_core(core))
    }

    /// `map` with chunk size 1 and no timeout: see
    /// [`map_with`](ProcessPoolExecutor::map_with).
    ///
    /// # Errors
    ///
    /// As [`map_with`](ProcessPoolExecutor::map_with).
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<MapIter<R>, FutureError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_with(f, items, 1, None)
    }

    /// Submits `f` over every item at once, in chunks of `chunksize`
    /// items (one task each), and returns an iterator of the results in
    /// input order (Python's `map(fn, iterable, timeout, chunksize)`).
    ///
    /// Each item has its own `Result`: a failed item (a panic) does not
    /// stop the others; a chunk whose worker died fails all its items. With
    /// a `timeout` (counted from this call), the iterator yields
    /// `Err(FutureError::Timeout)` once a result is not there in time,
    /// cancels the chunks that have not started, and ends. Dropping the
    /// iterator early cancels them too.
    ///
    /// ```
    /// use mp_pool::ProcessPoolExecutor;
    ///
    /// fn cube(x: i64) -> i64 { x * x * x }
    ///
    /// let ex = ProcessPoolExecutor::new(2)?;
    /// let out: Vec<i64> = ex.map_with(cube, 0..100, 10, None)?.collect::<Result<_, _>>()?;
    /// assert_eq!(out[3], 27);
    /// assert_eq!(out.len(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`submit`](ProcessPoolExecutor::submit), and
    /// [`FutureError::Pool`] (`InvalidArgument`) for a chunk size of 0.
    pub fn map_with<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
        timeout: Option<Duration>,
    ) -> Result<MapIter<R>, FutureError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        if chunksize == 0 {
            return Err(FutureError::from(Error::InvalidArgument(
                "chunksize must be at least 1".into(),
            )));
        }
        self.reg.check()?;
        let mut chunks = VecDeque::new();
        let mut tasks = Vec::new();
        let mut it = items.into_iter().peekable();
        while it.peek().is_some() {
            let items: Vec<A> = it.by_ref().take(chunksize).collect();
            let core = self.new_core(decode_chunk::<R>);
            chunks.push_back((core.clone(), items.len()));
            tasks.push((core as Arc<dyn Job>, items));
        }
        self.pool
            .submit_jobs(f, tasks)
            .map_err(|e| self.reg.refused(e))?;
        Ok(MapIter::new(chunks, timeout))
    }

    /// Stops accepting calls (Python's `shutdown(wait, cancel_futures)`):
    /// with `cancel_futures`, cancels every call that has not started;
    /// with `wait`, returns once every other call has finished and the
    /// workers have exited. Later submissions fail with
    /// [`FutureError::ShutDown`]. Calling it again is harmless.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.reg.shut_down(cancel_futures);
        self.pool.close();
        if wait {
            let _ = self.pool.join();
        }
    }
}

/// Dropping the executor is `shutdown(true, false)`: it waits for every
/// submitted call, as leaving Python's `with` block does.
impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}
