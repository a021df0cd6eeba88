//! `ThreadPool`: the pool API on rayon threads.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::{self, Plan};
use crate::collect::{AsyncResult, Callbacks, IMap, Sink, Submit, boxed, boxed_try};
use crate::shared::State;
use crate::task_pool::TaskPool;
use crate::{BoxError, Error};

struct Inner {
    st: Mutex<(State, usize)>,
    cv: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, (State, usize)> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The same calls as [`Pool`](crate::Pool), run on a rayon thread pool in
/// this process: Python's `multiprocessing.pool.ThreadPool`. Targets may be
/// any `Fn(A) -> R + Send + Sync` (closures that capture are fine) and need
/// no serde.
///
/// ```
/// use mp_pool::ThreadPool;
///
/// let offset = 10;
/// let pool = ThreadPool::new(2)?;
/// assert_eq!(pool.map(move |x: i32| x + offset, 0..4)?, vec![10, 11, 12, 13]);
/// let total: i32 = pool.imap_unordered(|x: i32| x * x, 0..10)?.map(Result::unwrap).sum();
/// assert_eq!(total, 285);
/// # Ok::<(), mp_pool::Error>(())
/// ```
///
/// `terminate` cannot stop a running closure: it fails every task that has
/// not started with [`Error::Terminated`] and waits for the running ones.
pub struct ThreadPool {
    pool: rayon::ThreadPool,
    threads: usize,
    inner: Arc<Inner>,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads)
            .field("state", &st.0)
            .field("outstanding", &st.1)
            .finish()
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

impl ThreadPool {
    /// A pool of `threads` threads.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for 0; [`Error::Channel`] if rayon cannot
    /// start its threads.
    pub fn new(threads: usize) -> Result<ThreadPool, Error> {
        if threads == 0 {
            return Err(Error::InvalidArgument(
                "the number of threads must be at least 1".into(),
            ));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("mp-threadpool-{i}"))
            .build()
            .map_err(|e| Error::Channel(Box::new(e)))?;
        Ok(ThreadPool {
            pool,
            threads,
            inner: Arc::new(Inner {
                st: Mutex::new((State::Running, 0)),
                cv: Condvar::new(),
            }),
        })
    }

    /// The number of threads.
    pub fn processes(&self) -> usize {
        self.threads
    }

    fn check_running(&self) -> Result<(), Error> {
        if self.inner.lock().0 == State::Running {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    /// Opens one call of `f` (see [`TaskPool::start_call`]).
    fn submitter<'a, A, R, F>(&'a self, f: F, sink: &Sink<R>) -> Result<Submit<'a, A>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.check_running()?;
        let f = Arc::new(f);
        let inner = self.inner.clone();
        let pool = &self.pool;
        let sink = sink.clone();
        Ok(Box::new(move |chunks: Vec<(usize, Vec<A>)>| {
            {
                let mut st = inner.lock();
                if st.0 != State::Running {
                    drop(st);
                    for (i, items) in chunks {
                        sink.fail(i, items.len(), &Error::Closed);
                    }
                    return Err(Error::Closed);
                }
                st.1 += chunks.len();
            }
            for (index, items) in chunks {
                let (f, sink, inner) = (f.clone(), sink.clone(), inner.clone());
                pool.spawn(move || {
                    if inner.lock().0 == State::Terminated || sink.is_cancelled() {
                        sink.fail(index, items.len(), &Error::Terminated);
                    } else {
                        let out = items
                            .into_iter()
                            .map(|a| {
                                catch_unwind(AssertUnwindSafe(|| f(a))).map_err(|p| {
                                    Error::TaskPanicked {
                                        message: panic_message(p.as_ref()),
                                    }
                                })
                            })
                            .collect();
                        sink.deliver_each(index, out);
                    }
                    let mut st = inner.lock();
                    st.1 -= 1;
                    if st.1 == 0 {
                        inner.cv.notify_all();
                    }
                });
            }
            Ok(())
        }))
    }

    /// Runs `task` on a pool thread, counted until it returns (so that
    /// `join` waits for it). `task(false)` means the pool was terminated
    /// before it started: it must only fail its result.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate` (`task` is dropped).
    pub(crate) fn spawn_task(&self, task: impl FnOnce(bool) + Send + 'static) -> Result<(), Error> {
        {
            let mut st = self.inner.lock();
            if st.0 != State::Running {
                return Err(Error::Closed);
            }
            st.1 += 1;
        }
        let inner = self.inner.clone();
        self.pool.spawn(move || {
            let run = inner.lock().0 != State::Terminated;
            // A panic in `task` is caught by its own code (the executor's
            // futures); this guard keeps the count right regardless.
            let _done = Outstanding(inner);
            task(run);
        });
        Ok(())
    }

    fn plan(&self) -> Plan {
        Plan {
            processes: self.threads,
            chunksize: None,
            window: self.window(),
        }
    }

    fn window(&self) -> usize {
        (self.threads * 64).max(256)
    }

    /// As [`TaskPool::map`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`, or the first task
    /// failure.
    pub fn map<A, R, F>(&self, f: F, items: impl IntoIterator<Item = A>) -> Result<Vec<R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        call::map(self.plan(), items.into_iter().collect(), None, |s| {
            self.submitter(f, s)
        })
    }

    /// As [`TaskPool::map_chunked`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// As [`map`](ThreadPool::map), plus [`Error::InvalidArgument`] for 0.
    pub fn map_chunked<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let items = items.into_iter().collect();
        call::map(self.plan(), items, Some(chunksize), |s| {
            self.submitter(f, s)
        })
    }

    /// As [`TaskPool::starmap`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// As [`map`](ThreadPool::map).
    pub fn starmap<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.map(f, items)
    }

    /// As [`TaskPool::try_map`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Input`], otherwise as [`map`](ThreadPool::map).
    pub fn try_map<A, R, E, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = Result<A, E>>,
    ) -> Result<Vec<R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        E: Into<BoxError>,
    {
        self.check_running()?;
        let items = call::collect_input(items)?;
        call::map(self.plan(), items, None, |s| self.submitter(f, s))
    }

    /// As [`TaskPool::map_results`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`.
    pub fn map_results<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<Result<R, Error>>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let items = items.into_iter().collect();
        call::map_results(self.plan(), items, |s| self.submitter(f, s))
    }

    /// As [`TaskPool::map_async`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`.
    pub fn map_async<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.map_async_with(f, items, Callbacks::new())
    }

    /// As [`TaskPool::map_async_chunked`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`; [`Error::InvalidArgument`]
    /// for 0.
    pub fn map_async_chunked<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let items = items.into_iter().collect();
        call::map_async(self.plan(), items, Some(chunksize), Callbacks::new(), |s| {
            self.submitter(f, s)
        })
    }

    /// As [`TaskPool::map_async_with`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`.
    pub fn map_async_with<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let items = items.into_iter().collect();
        call::map_async(self.plan(), items, None, callbacks, |s| {
            self.submitter(f, s)
        })
    }

    /// As [`TaskPool::starmap_async`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`.
    pub fn starmap_async<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.map_async(f, items)
    }

    /// As [`TaskPool::apply`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`, or the task's failure.
    pub fn apply<A, R, F>(&self, f: F, arg: A) -> Result<R, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.apply_async(f, arg)?.get()
    }

    /// As [`TaskPool::apply_async`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`.
    pub fn apply_async<A, R, F>(&self, f: F, arg: A) -> Result<AsyncResult<R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.apply_async_with(f, arg, Callbacks::new())
    }

    /// As [`TaskPool::apply_async_with`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`.
    pub fn apply_async_with<A, R, F>(
        &self,
        f: F,
        arg: A,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        call::apply_async(arg, callbacks, |s| self.submitter(f, s))
    }

    /// As [`TaskPool::imap`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`.
    pub fn imap<'a, A, R, F>(
        &'a self,
        f: F,
        items: impl IntoIterator<Item = A> + 'a,
    ) -> Result<IMap<'a, R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        call::stream(self.plan(), boxed(items), None, true, |s| {
            self.submitter(f, s)
        })
    }

    /// As [`TaskPool::imap_chunked`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// As [`imap`](ThreadPool::imap), plus [`Error::InvalidArgument`] for 0.
    pub fn imap_chunked<'a, A, R, F>(
        &'a self,
        f: F,
        items: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> Result<IMap<'a, R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        call::stream(self.plan(), boxed(items), Some(chunksize), true, |s| {
            self.submitter(f, s)
        })
    }

    /// As [`TaskPool::imap_unordered`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// As [`imap`](ThreadPool::imap).
    pub fn imap_unordered<'a, A, R, F>(
        &'a self,
        f: F,
        items: impl IntoIterator<Item = A> + 'a,
    ) -> Result<IMap<'a, R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        call::stream(self.plan(), boxed(items), None, false, |s| {
            self.submitter(f, s)
        })
    }

    /// As [`TaskPool::imap_unordered_chunked`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// As [`imap_chunked`](ThreadPool::imap_chunked).
    pub fn imap_unordered_chunked<'a, A, R, F>(
        &'a self,
        f: F,
        items: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> Result<IMap<'a, R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        call::stream(self.plan(), boxed(items), Some(chunksize), false, |s| {
            self.submitter(f, s)
        })
    }

    /// As [`TaskPool::try_imap`], for any `Fn`.
    ///
    /// # Errors
    ///
    /// As [`imap`](ThreadPool::imap).
    pub fn try_imap<'a, A, R, E, F>(
        &'a self,
        f: F,
        items: impl IntoIterator<Item = Result<A, E>> + 'a,
    ) -> Result<IMap<'a, R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        E: Into<BoxError> + 'a,
    {
        call::stream(self.plan(), boxed_try(items), None, true, |s| {
            self.submitter(f, s)
        })
    }

    /// Accepts no more work (running and queued tasks finish).
    pub fn close(&self) {
        let mut st = self.inner.lock();
        if st.0 == State::Running {
            st.0 = State::Closed;
        }
    }

    /// Fails every task that has not started with [`Error::Terminated`]
    /// and waits for the running ones.
    pub fn terminate(&self) {
        self.inner.lock().0 = State::Terminated;
        self.wait_idle();
    }

    /// Waits until every submitted task is done, after
    /// [`close`](ThreadPool::close) or [`terminate`](ThreadPool::terminate).
    ///
    /// # Errors
    ///
    /// [`Error::StillRunning`] if neither was called.
    pub fn join(&self) -> Result<(), Error> {
        if self.inner.lock().0 == State::Running {
            return Err(Error::StillRunning);
        }
        self.wait_idle();
        Ok(())
    }

    fn wait_idle(&self) {
        let mut st = self.inner.lock();
        while st.1 > 0 {
            st = self.inner.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Decrements the outstanding count when a spawned task ends.
struct Outstanding(Arc<Inner>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.1 -= 1;
        if st.1 == 0 {
            self.0.cv.notify_all();
        }
    }
}

impl TaskPool for ThreadPool {
    fn processes(&self) -> usize {
        self.threads
    }

    fn check_running(&self) -> Result<(), Error> {
        ThreadPool::check_running(self)
    }

    fn start_call<'a, A, R>(&'a self, f: fn(A) -> R, sink: &Sink<R>) -> Result<Submit<'a, A>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submitter(f, sink)
    }

    fn close(&self) {
        ThreadPool::close(self);
    }

    fn terminate(&self) {
        ThreadPool::terminate(self);
    }

    fn join(&self) -> Result<(), Error> {
        ThreadPool::join(self)
    }

    fn window(&self) -> usize {
        ThreadPool::window(self)
    }
}

/// Dropping a running thread pool terminates it (tasks not yet started
/// fail with [`Error::Terminated`]; running ones finish first).
impl Drop for ThreadPool {
    fn drop(&mut self) {
        if self.inner.lock().0 == State::Closed {
            self.wait_idle();
        } else {
            self.terminate();
        }
    }
}
