//! `ThreadPoolExecutor`: futures on a [`ThreadPool`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::future::Core;
use super::{FutureError, MapIter, Registry};
use crate::{Error, Future, ThreadPool};

/// Threads of this process running submitted calls, each with its
/// [`Future`]: Python's `concurrent.futures.ThreadPoolExecutor`. Calls may
/// be any closure (`FnOnce` for `submit`, `Fn` for `map`); no serde.
///
/// ```
/// use mp_pool::{ThreadPoolExecutor, as_completed};
///
/// let base = 100;
/// let ex = ThreadPoolExecutor::new(4)?;
/// let futs: Vec<_> = (0..10).map(|i| ex.submit(move |x: i32| x + base, i)).collect::<Result<_, _>>()?;
/// let total: i32 = as_completed(&futs, None).map(|r| r.and_then(|(_, f)| f.result())).sum::<Result<i32, _>>()?;
/// assert_eq!(total, 1045);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping the executor shuts it down and waits for every submitted call.
pub struct ThreadPoolExecutor {
    pool: ThreadPool,
    reg: Arc<Registry>,
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolExecutor")
            .field("pool", &self.pool)
            .finish()
    }
}

/// Runs `f`, catching a panic as the call's failure.
fn run<R>(f: impl FnOnce() -> R) -> Result<R, FutureError> {
    mp_proc::catch_panic(f).map_err(|e| FutureError::from(Error::from(e)))
}

impl ThreadPoolExecutor {
    /// An executor of `max_workers` threads.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::new`].
    pub fn new(max_workers: usize) -> Result<ThreadPoolExecutor, Error> {
        Ok(ThreadPoolExecutor {
            pool: ThreadPool::new(max_workers)?,
            reg: Registry::new(None),
        })
    }

    /// The number of threads.
    pub fn max_workers(&self) -> usize {
        self.pool.processes()
    }

    /// Queues `job(started)` on the pool, `core`'s call.
    fn spawn<T: Send + 'static>(
        &self,
        core: &Arc<Core<T>>,
        job: impl FnOnce() -> Result<T, FutureError> + Send + 'static,
    ) -> Result<(), FutureError> {
        let c = core.clone();
        let spawned = self.pool.spawn_task(move |run| {
            if !run {
                c.finish(Err(FutureError::from(Error::Terminated)));
            } else if c.begin() {
                c.finish(job());
            }
        });
        if let Err(e) = spawned {
            let e = self.reg.refused(e);
            core.finish(Err(e.clone()));
            return Err(e);
        }
        Ok(())
    }

    /// Schedules `f(arg)` on a pool thread and returns its [`Future`]
    /// (Python's `submit`).
    ///
    /// # Errors
    ///
    /// [`FutureError::ShutDown`] after
    /// [`shutdown`](ThreadPoolExecutor::shutdown).
    pub fn submit<A, R, F>(&self, f: F, arg: A) -> Result<Future<R>, FutureError>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.reg.check()?;
        let core = Arc::new(Core::new(None, None));
        self.reg.add(&core);
        self.spawn(&core, move || run(move || f(arg)))?;
        Ok(Future::from_core(core))
    }

    /// `map` with chunk size 1 and no timeout: see
    /// [`map_with`](ThreadPoolExecutor::map_with).
    ///
    /// # Errors
    ///
    /// As [`map_with`](ThreadPoolExecutor::map_with).
    pub fn map<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<MapIter<R>, FutureError>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.map_with(f, items, 1, None)
    }

    /// As [`ProcessPoolExecutor::map_with`](crate::ProcessPoolExecutor::map_with).
    ///
    /// ```
    /// use mp_pool::ThreadPoolExecutor;
    ///
    /// let ex = ThreadPoolExecutor::new(2)?;
    /// let out: Vec<i32> = ex.map_with(|x: i32| x * 3, 0..10, 4, None)?.collect::<Result<_, _>>()?;
    /// assert_eq!(out, (0..10).map(|x| x * 3).collect::<Vec<_>>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`FutureError::ShutDown`] after shutdown; [`FutureError::Pool`]
    /// (`InvalidArgument`) for a chunk size of 0.
    pub fn map_with<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
        timeout: Option<Duration>,
    ) -> Result<MapIter<R>, FutureError>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        if chunksize == 0 {
            return Err(FutureError::from(Error::InvalidArgument(
                "chunksize must be at least 1".into(),
            )));
        }
        self.reg.check()?;
        let f = Arc::new(f);
        let mut chunks = VecDeque::new();
        let mut it = items.into_iter().peekable();
        while it.peek().is_some() {
            let items: Vec<A> = it.by_ref().take(chunksize).collect();
            let core = Arc::new(Core::new(None, None));
            self.reg.add(&core);
            chunks.push_back((core.clone(), items.len()));
            let f = f.clone();
            let job = move || Ok(items.into_iter().map(|a| run(|| f(a))).collect::<Vec<_>>());
            if let Err(e) = self.spawn(&core, job) {
                for (c, _) in &chunks {
                    c.cancel();
                }
                return Err(e);
            }
        }
        Ok(MapIter::new(chunks, timeout))
    }

    /// As [`ProcessPoolExecutor::shutdown`](crate::ProcessPoolExecutor::shutdown).
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.reg.shut_down(cancel_futures);
        self.pool.close();
        if wait {
            let _ = self.pool.join();
        }
    }
}

/// Dropping the executor is `shutdown(true, false)`: it waits for every
/// submitted call.
impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}
