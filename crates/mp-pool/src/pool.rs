//! `Pool`: worker processes and the calls that feed them.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mp_proc::Function;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::ChunkRunner;
#[cfg(feature = "progress")]
use crate::collect::CallKind;
use crate::collect::{AsyncResult, Callbacks, IMap, Sink, Submit};
use crate::insights::Insights;
use crate::shared::{Shared, State};
use crate::task::Job;
use crate::task_pool::TaskPool;
use crate::{BoxError, Error};

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

impl Pool {
    /// A pool over started workers and their dispatcher thread.
    pub(crate) fn from_parts(shared: Arc<Shared>, thread: JoinHandle<()>) -> Pool {
        Pool {
            shared,
            thread: Mutex::new(Some(thread)),
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
    /// built with [`PoolBuilder::insights`](crate::PoolBuilder::insights). Every worker ever started is
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
        let func = Function::with_runner::<ChunkRunner>(f);
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

    // The calls below forward to `TaskPool`, whose default methods hold
    // their logic once: they are repeated here on purpose, so that code
    // written against `Pool` (as Python's is) needs no trait import.

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
        let func = Function::with_runner::<ChunkRunner>(f);
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
