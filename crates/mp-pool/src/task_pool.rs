//! [`TaskPool`]: the API that every pool shares ([`Pool`](crate::Pool),
//! [`ThreadPool`](crate::ThreadPool), and pools of other crates), written
//! once over a few primitives.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::{self, Plan};
use crate::collect::{AsyncResult, Callbacks, IMap, Sink, Submit, boxed, boxed_try};
use crate::{BoxError, Error};

/// The API every pool shares: Python's `Pool` methods over `fn(A) -> R`
/// targets with serde arguments and results. [`Pool`](crate::Pool) (worker
/// processes) and [`ThreadPool`](crate::ThreadPool) implement it, and a
/// crate can implement it for a pool of its own (over MPI, say): six
/// required methods ([`processes`](TaskPool::processes),
/// [`check_running`](TaskPool::check_running),
/// [`start_call`](TaskPool::start_call), [`close`](TaskPool::close),
/// [`terminate`](TaskPool::terminate), [`join`](TaskPool::join)) and the
/// calls come with it: chunking, streaming windows, fail-fast maps,
/// callbacks and `AsyncResult`s are written once, here. A function written
/// against it runs on any pool:
///
/// ```
/// use mp_pool::{Pool, TaskPool, ThreadPool};
///
/// fn is_prime(n: u64) -> bool {
///     n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d))
/// }
///
/// fn count_primes<P: TaskPool>(pool: &P, below: u64) -> Result<usize, mp_pool::Error> {
///     let flags = pool.map(is_prime, 0..below)?;
///     Ok(flags.into_iter().filter(|&p| p).count())
/// }
///
/// assert_eq!(count_primes(&Pool::new(2)?, 1000)?, 168);
/// assert_eq!(count_primes(&ThreadPool::new(2)?, 1000)?, 168);
/// # Ok::<(), mp_pool::Error>(())
/// ```
///
/// The concrete pools have the same methods as inherent methods (no import
/// needed); [`ThreadPool`](crate::ThreadPool)'s also take capturing
/// closures.
pub trait TaskPool {
    /// The number of workers.
    fn processes(&self) -> usize;

    /// `Ok` while the pool accepts work; [`Error::Closed`] after
    /// [`close`](TaskPool::close) or [`terminate`](TaskPool::terminate), or
    /// the pool's own refusal (a broken pool). Calls check it before they
    /// read their input.
    ///
    /// # Errors
    ///
    /// As above.
    fn check_running(&self) -> Result<(), Error>;

    /// Opens one call of `f`: checks that the pool accepts it and returns
    /// the function that hands its chunks to the workers; each chunk's
    /// results go to `sink` (which the returned function may keep).
    ///
    /// # Errors
    ///
    /// As [`check_running`](TaskPool::check_running), or why `f` cannot
    /// run on this pool (for a process pool, a function outside this
    /// executable: [`Error::Call`]).
    fn start_call<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        sink: &Sink<R>,
    ) -> Result<Submit<'a, A>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static;

    /// Accepts no more work; the submitted tasks finish (Python's `close`).
    fn close(&self);

    /// Stops now: every unfinished task fails with [`Error::Terminated`]
    /// (Python's `terminate`).
    fn terminate(&self);

    /// Waits for the workers after [`close`](TaskPool::close) or
    /// [`terminate`](TaskPool::terminate) (Python's `join`).
    ///
    /// # Errors
    ///
    /// [`Error::StillRunning`] if neither was called.
    fn join(&self) -> Result<(), Error>;

    /// The chunk size of calls that give none (`None`: `map` about
    /// `len / (4 x processes)` as in Python, `imap` 1).
    fn default_chunksize(&self) -> Option<usize> {
        None
    }

    /// How many chunks a blocking or streaming call keeps submitted ahead
    /// of its results.
    fn window(&self) -> usize {
        (self.processes() * 64).max(256)
    }

    /// Applies `f` to every item and returns the results in order
    /// (Python's `map`). Fails with the first task failure (by arrival), as
    /// Python raises; the other tasks of the call are dropped.
    ///
    /// The input is collected first (its length sets the default chunk
    /// size); use [`imap`](TaskPool::imap) to stream it.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`, and the first task
    /// failure: [`Error::TaskPanicked`], [`Error::WorkerDied`],
    /// [`Error::TaskTimeout`], [`Error::Terminated`], [`Error::Call`].
    fn map<A, R>(&self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<Vec<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items = items.into_iter().collect();
        call::map(plan(self), items, None, |s| self.start_call(f, s))
    }

    /// [`map`](TaskPool::map) with an explicit chunk size.
    ///
    /// # Errors
    ///
    /// As [`map`](TaskPool::map), plus [`Error::InvalidArgument`] for 0.
    fn map_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items = items.into_iter().collect();
        call::map(plan(self), items, Some(chunksize), |s| {
            self.start_call(f, s)
        })
    }

    /// Python's `starmap`: in Rust a target of several parameters takes a
    /// tuple, so this is [`map`](TaskPool::map) over an iterator of tuples.
    ///
    /// ```
    /// fn add((a, b): (i32, i32)) -> i32 { a + b }
    /// let pool = mp_pool::Pool::new(2)?;
    /// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)])?, vec![3, 7]);
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`map`](TaskPool::map).
    fn starmap<A, R>(
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

    /// Like [`map`](TaskPool::map), over an input that can fail: the input
    /// is read to the end first (as Python's `map` does with
    /// `list(iterable)`) and its first error is returned as
    /// [`Error::Input`] before any task runs.
    ///
    /// ```
    /// fn inc(x: i32) -> i32 { x + 1 }
    /// let pool = mp_pool::Pool::new(1)?;
    /// let input = vec![Ok(1), Err("line 2: not a number"), Ok(3)];
    /// assert!(matches!(pool.try_map(inc, input), Err(mp_pool::Error::Input(_))));
    /// assert_eq!(pool.try_map(inc, vec![Ok::<_, std::io::Error>(1)])?, vec![2]);
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Input`], otherwise as [`map`](TaskPool::map).
    fn try_map<A, R, E>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = Result<A, E>>,
    ) -> Result<Vec<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        E: Into<BoxError>,
    {
        self.check_running()?;
        let items = call::collect_input(items)?;
        call::map(plan(self), items, None, |s| self.start_call(f, s))
    }

    /// Applies `f` to every item and returns every item's own result, in
    /// order, after all have run: one task's failure (a panic, a killed
    /// worker) does not stop the others.
    ///
    /// ```
    /// fn check(x: i32) -> i32 { assert!(x != 2, "two is not allowed"); x }
    /// let pool = mp_pool::Pool::new(2)?;
    /// let r = pool.map_results(check, [1, 2, 3])?;
    /// assert_eq!(r[0].as_ref().ok(), Some(&1));
    /// assert!(r[1].as_ref().unwrap_err().to_string().contains("two is not allowed"));
    /// assert_eq!(r[2].as_ref().ok(), Some(&3));
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate` (task failures are in
    /// the items).
    fn map_results<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<Result<R, Error>>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items = items.into_iter().collect();
        call::map_results(plan(self), items, |s| self.start_call(f, s))
    }

    /// Submits a map and returns at once (Python's `map_async`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`; task failures come
    /// from [`AsyncResult::get`].
    fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::map_async_with(self, f, items, Callbacks::new())
    }

    /// [`map_async`](TaskPool::map_async) with an explicit chunk size
    /// (Python's `map_async(f, it, chunksize)`).
    ///
    /// ```
    /// fn double(x: u64) -> u64 { x * 2 }
    /// let pool = mp_pool::Pool::new(2)?;
    /// let r = pool.map_async_chunked(double, 0..100, 7)?;
    /// assert_eq!(r.get()?, (0..100).map(|x| x * 2).collect::<Vec<_>>());
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`map_async`](TaskPool::map_async), plus
    /// [`Error::InvalidArgument`] for 0.
    fn map_async_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items = items.into_iter().collect();
        call::map_async(plan(self), items, Some(chunksize), Callbacks::new(), |s| {
            self.start_call(f, s)
        })
    }

    /// [`map_async`](TaskPool::map_async) with callbacks, run when the map
    /// finishes (on the pool's dispatcher thread, or a pool thread).
    ///
    /// # Errors
    ///
    /// As [`map_async`](TaskPool::map_async).
    fn map_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items = items.into_iter().collect();
        call::map_async(plan(self), items, None, callbacks, |s| {
            self.start_call(f, s)
        })
    }

    /// Python's `starmap_async`: [`map_async`](TaskPool::map_async) over
    /// an iterator of tuples.
    ///
    /// ```
    /// fn add((a, b): (i32, i32)) -> i32 { a + b }
    /// let pool = mp_pool::Pool::new(2)?;
    /// let r = pool.starmap_async(add, [(1, 2), (3, 4)])?;
    /// assert_eq!(r.get()?, vec![3, 7]);
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`map_async`](TaskPool::map_async).
    fn starmap_async<A, R>(
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

    /// Runs `f(arg)` in a worker and waits for the result (Python's
    /// `apply`).
    ///
    /// # Errors
    ///
    /// As [`map`](TaskPool::map).
    fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::apply_async(self, f, arg)?.get()
    }

    /// Submits `f(arg)` and returns at once (Python's `apply_async`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`; task failures come from
    /// [`AsyncResult::get`].
    fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskPool::apply_async_with(self, f, arg, Callbacks::new())
    }

    /// [`apply_async`](TaskPool::apply_async) with callbacks, run when the
    /// task finishes (on the pool's dispatcher thread, or a pool thread).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use mp_pool::{Callbacks, Pool};
    ///
    /// fn fail(x: i32) -> i32 { panic!("bad input {x}") }
    ///
    /// let pool = Pool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// let r = pool.apply_async_with(fail, 7, Callbacks::new().on_error(move |e| {
    ///     tx.send(e.to_string()).unwrap();
    /// }))?;
    /// assert!(r.get().is_err());
    /// assert!(rx.recv().unwrap().contains("bad input 7"));
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`apply_async`](TaskPool::apply_async).
    fn apply_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        call::apply_async(arg, callbacks, |s| self.start_call(f, s))
    }

    /// Applies `f` to every item, yielding results in input order as they
    /// become available (Python's `imap`, chunk size 1 unless the pool sets
    /// one). The input is read lazily, a window ahead of the results.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close`/`terminate`; task failures are
    /// items of the iterator.
    fn imap<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'a,
    ) -> Result<IMap<'a, R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        call::stream(plan(self), boxed(items), None, true, |s| {
            self.start_call(f, s)
        })
    }

    /// [`imap`](TaskPool::imap) with an explicit chunk size.
    ///
    /// # Errors
    ///
    /// As [`imap`](TaskPool::imap), plus [`Error::InvalidArgument`] for 0.
    fn imap_chunked<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> Result<IMap<'a, R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        call::stream(plan(self), boxed(items), Some(chunksize), true, |s| {
            self.start_call(f, s)
        })
    }

    /// Like [`imap`](TaskPool::imap), yielding results as tasks finish
    /// (Python's `imap_unordered`).
    ///
    /// # Errors
    ///
    /// As [`imap`](TaskPool::imap).
    fn imap_unordered<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'a,
    ) -> Result<IMap<'a, R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        call::stream(plan(self), boxed(items), None, false, |s| {
            self.start_call(f, s)
        })
    }

    /// [`imap_unordered`](TaskPool::imap_unordered) with an explicit chunk
    /// size.
    ///
    /// # Errors
    ///
    /// As [`imap_chunked`](TaskPool::imap_chunked).
    fn imap_unordered_chunked<'a, A, R>(
        &'a self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> Result<IMap<'a, R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        call::stream(plan(self), boxed(items), Some(chunksize), false, |s| {
            self.start_call(f, s)
        })
    }

    /// [`imap`](TaskPool::imap) over an input that can fail (lines of a
    /// file, records of a parser): results before the first `Err` come out
    /// as usual, the `Err` itself becomes one [`Error::Input`] item at its
    /// position, and the input is not read further.
    ///
    /// ```
    /// fn inc(x: i32) -> i32 { x + 1 }
    /// let pool = mp_pool::Pool::new(2)?;
    /// let input = vec![Ok(1), Ok(2), Err("bad record"), Ok(4)];
    /// let out: Vec<_> = pool.try_imap(inc, input)?.collect();
    /// assert_eq!(out.len(), 3);
    /// assert_eq!(out[1].as_ref().ok(), Some(&3));
    /// assert!(matches!(out[2], Err(mp_pool::Error::Input(_))));
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`imap`](TaskPool::imap).
    fn try_imap<'a, A, R, E>(
        &'a self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = Result<A, E>> + 'a,
    ) -> Result<IMap<'a, R>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        E: Into<BoxError> + 'a,
    {
        call::stream(plan(self), boxed_try(items), None, true, |s| {
            self.start_call(f, s)
        })
    }
}

fn plan<P: TaskPool + ?Sized>(p: &P) -> Plan {
    Plan {
        processes: p.processes(),
        chunksize: p.default_chunksize(),
        window: p.window(),
    }
}
