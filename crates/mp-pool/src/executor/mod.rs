//! Executors with futures: Python's `concurrent.futures`
//! (`ProcessPoolExecutor`, `ThreadPoolExecutor`, `Future`, `as_completed`,
//! `wait`), built on [`Pool`](crate::Pool) and [`ThreadPool`](crate::ThreadPool).
//!
//! ```
//! use mp_pool::{ProcessPoolExecutor, as_completed};
//!
//! fn square(x: u64) -> u64 { x * x }
//!
//! let ex = ProcessPoolExecutor::new(2)?;
//! let futs: Vec<_> = (0..8).map(|x| ex.submit(square, x)).collect::<Result<_, _>>()?;
//! let mut total = 0;
//! for done in as_completed(&futs, None) {
//!     let (_index, fut) = done?;
//!     total += fut.result()?;
//! }
//! assert_eq!(total, 140);
//! let squares: Vec<u64> = ex.map(square, 0..4)?.collect::<Result<_, _>>()?;
//! assert_eq!(squares, vec![0, 1, 4, 9]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Differences from Python
//!
//! * **A dead worker fails only its own task** ([`FutureError::WorkerDied`]),
//!   and the pool starts a replacement; Python marks the whole executor
//!   broken (`BrokenProcessPool`) and fails every pending future. Python's
//!   behaviour is available with
//!   [`ExecutorBuilder::break_on_worker_death`].
//! * [`Future::result`] moves the value out (Rust values need not be
//!   `Clone`); a second call gives [`FutureError::ResultTaken`]. Failures
//!   are returned to every caller.
//! * `map` yields every item's own `Result` and goes on after a failed
//!   item (Python's iterator raises and stops); a timeout ends it, as in
//!   Python, after cancelling the chunks that have not started.
//! * Dropping an executor is Python's `with` block exit: `shutdown(wait =
//!   true)`, every submitted call finishes first. After
//!   `shutdown(false, ..)` the drop still waits (Python's interpreter
//!   waits for the workers at exit).

mod future;
mod process;
mod thread;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

pub use future::Future;
pub use process::{ExecutorBuilder, ProcessPoolExecutor};
pub use thread::ThreadPoolExecutor;

use crate::Error;
use crate::shared::Shared;
use future::Core;

/// Why a future (or an executor call) failed. Task failures keep their
/// kind; the pool's other errors are in [`FutureError::Pool`].
///
/// ```
/// let e = mp_pool::FutureError::WorkerDied { pid: 42, exitcode: -6 };
/// assert_eq!(e.to_string(), "worker process 42 died: killed by signal 6 (SIGABRT)");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FutureError {
    /// The future was cancelled before it started (Python's
    /// `CancelledError`).
    #[error("the future was cancelled")]
    Cancelled,
    /// The deadline of `result_timeout`, `as_completed` or `map` passed
    /// (Python's `TimeoutError`); the call goes on.
    #[error("timed out waiting for the result")]
    Timeout,
    /// The task's function panicked; the panic message.
    #[error("the task panicked: {message}")]
    TaskPanicked {
        /// The panic message.
        message: String,
    },
    /// The worker process running the task died; the executor goes on.
    #[error("worker process {pid} died: {}", crate::error::describe_exit(*.exitcode))]
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// The exit code, or minus the signal number.
        exitcode: i32,
    },
    /// The task ran longer than the pool's task timeout
    /// ([`ExecutorBuilder::task_timeout`]); its worker was killed.
    #[error("the task ran longer than {timeout:?} (worker process {pid} was killed)")]
    TaskTimeout {
        /// The per-task timeout.
        timeout: Duration,
        /// The killed worker's process id.
        pid: u32,
    },
    /// The executor is broken (Python's `BrokenProcessPool`): a worker
    /// died under [`ExecutorBuilder::break_on_worker_death`], or the
    /// workers' initializer failed. Every pending future fails with it and
    /// new submissions are refused.
    #[error("the executor is broken: {reason}")]
    BrokenPool {
        /// What broke it.
        reason: String,
    },
    /// A submission after `shutdown` (Python's `RuntimeError`).
    #[error("cannot schedule new futures after shutdown")]
    ShutDown,
    /// `result` after the value was taken by an earlier `result` (or
    /// `.await`).
    #[error("the result was already taken")]
    ResultTaken,
    /// Another pool error (a function outside this executable, an
    /// undecodable result, ...).
    #[error(transparent)]
    Pool(Arc<Error>),
}

impl From<Error> for FutureError {
    fn from(e: Error) -> FutureError {
        match e {
            Error::TaskPanicked { message } => FutureError::TaskPanicked { message },
            Error::WorkerDied { pid, exitcode } => FutureError::WorkerDied { pid, exitcode },
            Error::TaskTimeout { timeout, pid } => FutureError::TaskTimeout { timeout, pid },
            Error::Timeout => FutureError::Timeout,
            Error::Closed => FutureError::ShutDown,
            Error::ResultTaken => FutureError::ResultTaken,
            Error::Initializer { message } => FutureError::BrokenPool {
                reason: format!("the worker initializer failed: {message}"),
            },
            Error::Terminated => FutureError::BrokenPool {
                reason: "the pool was terminated".into(),
            },
            other => FutureError::Pool(Arc::new(other)),
        }
    }
}

/// When [`wait`] returns (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`,
/// `ALL_COMPLETED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any future is done (or cancelled).
    FirstCompleted,
    /// As soon as any future fails; all completed if none fails.
    FirstException,
    /// When every future is done.
    AllCompleted,
}

/// What [`wait`] returns: the indexes (into the slice it was given, in
/// increasing order) of the futures that are done and of those that are
/// not (Python's `(done, not_done)` sets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitResult {
    /// Finished, failed or cancelled futures.
    pub done: Vec<usize>,
    /// The others.
    pub not_done: Vec<usize>,
}

/// Indexes of futures that became done, for one `wait` / `as_completed`.
pub(crate) struct WaitSet {
    q: Mutex<Vec<usize>>,
    cv: Condvar,
}

impl WaitSet {
    fn new() -> Arc<WaitSet> {
        Arc::new(WaitSet {
            q: Mutex::new(Vec::new()),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<usize>> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, i: usize) {
        self.lock().push(i);
        self.cv.notify_all();
    }

    /// Takes the indexes that arrived, waiting for one until `deadline`.
    fn take(&self, deadline: Option<Instant>) -> Vec<usize> {
        let mut q = self.lock();
        loop {
            if !q.is_empty() {
                return std::mem::take(&mut *q);
            }
            let now = Instant::now();
            match deadline {
                Some(d) if d <= now => return Vec::new(),
                Some(d) => {
                    q = self
                        .cv
                        .wait_timeout(q, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => q = self.cv.wait(q).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

fn deadline_of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Yields the futures as they complete (Python's `as_completed`): each
/// item is the future's index in `futures` and the future; those already
/// done come first. With a `timeout` (counted from this call), the
/// iterator yields one `Err(FutureError::Timeout)` when the deadline passes
/// with futures still pending, and ends.
///
/// ```
/// use std::time::Duration;
/// use mp_pool::{ThreadPoolExecutor, as_completed};
///
/// let ex = ThreadPoolExecutor::new(3)?;
/// let nap = |ms: u64| { std::thread::sleep(Duration::from_millis(ms)); ms };
/// let futs = vec![ex.submit(nap, 300)?, ex.submit(nap, 10)?, ex.submit(nap, 150)?];
/// let order: Vec<usize> = as_completed(&futs, None).map(|r| r.map(|(i, _)| i)).collect::<Result<_, _>>()?;
/// assert_eq!(order, vec![1, 2, 0]);
/// # Ok::<(), mp_pool::FutureError>(())
/// ```
pub fn as_completed<R: Send + 'static>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
) -> AsCompleted<'_, R> {
    let set = WaitSet::new();
    let mut ready = VecDeque::new();
    for (i, f) in futures.iter().enumerate() {
        if !f.core.listen_set(&set, i) {
            ready.push_back(i);
        }
    }
    AsCompleted {
        futures,
        set,
        ready,
        left: futures.len(),
        deadline: deadline_of(timeout),
        ended: false,
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<'a, R: Send + 'static> {
    futures: &'a [Future<R>],
    set: Arc<WaitSet>,
    ready: VecDeque<usize>,
    left: usize,
    deadline: Option<Instant>,
    ended: bool,
}

impl<R: Send + 'static> fmt::Debug for AsCompleted<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.left)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<'a, R: Send + 'static> Iterator for AsCompleted<'a, R> {
    type Item = Result<(usize, &'a Future<R>), FutureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended || self.left == 0 {
            return None;
        }
        if self.ready.is_empty() {
            self.ready.extend(self.set.take(self.deadline));
        }
        match self.ready.pop_front() {
            Some(i) => {
                self.left -= 1;
                Some(Ok((i, &self.futures[i])))
            }
            None => {
                self.ended = true;
                Some(Err(FutureError::Timeout))
            }
        }
    }
}

impl<R: Send + 'static> Drop for AsCompleted<'_, R> {
    fn drop(&mut self) {
        if self.left > 0 {
            for f in self.futures {
                f.core.unlisten_set(&self.set);
            }
        }
    }
}

/// Waits until `return_when` holds for `futures` or `timeout` passes
/// (Python's `concurrent.futures.wait`); returns the indexes of the done
/// and not-done futures. A timeout is not an error: the not-done list says
/// what is left.
///
/// ```
/// use std::time::Duration;
/// use mp_pool::{ReturnWhen, ThreadPoolExecutor, wait};
///
/// let ex = ThreadPoolExecutor::new(2)?;
/// let nap = |ms: u64| std::thread::sleep(Duration::from_millis(ms));
/// let futs = vec![ex.submit(nap, 10)?, ex.submit(nap, 500)?];
/// let r = wait(&futs, None, ReturnWhen::FirstCompleted);
/// assert_eq!(r.done, vec![0]);
/// assert_eq!(r.not_done, vec![1]);
/// let r = wait(&futs, None, ReturnWhen::AllCompleted);
/// assert_eq!(r.done, vec![0, 1]);
/// # Ok::<(), mp_pool::FutureError>(())
/// ```
pub fn wait<R: Send + 'static>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> WaitResult {
    let deadline = deadline_of(timeout);
    let set = WaitSet::new();
    // (done flags, how many, whether one failed)
    let mut seen = (vec![false; futures.len()], 0usize, false);
    let mark = |i: usize, seen: &mut (Vec<bool>, usize, bool)| {
        if !std::mem::replace(&mut seen.0[i], true) {
            seen.1 += 1;
            seen.2 |= futures[i].core.failed();
        }
    };
    let mut registered = false;
    for (i, f) in futures.iter().enumerate() {
        if !f.core.listen_set(&set, i) {
            mark(i, &mut seen);
        } else {
            registered = true;
        }
    }
    loop {
        let met = match return_when {
            ReturnWhen::FirstCompleted => seen.1 > 0,
            ReturnWhen::FirstException => seen.2,
            ReturnWhen::AllCompleted => false,
        };
        if met || seen.1 == futures.len() {
            break;
        }
        let arrived = set.take(deadline);
        if arrived.is_empty() {
            break; // timed out
        }
        for i in arrived {
            mark(i, &mut seen);
        }
    }
    if registered {
        for f in futures {
            f.core.unlisten_set(&set);
        }
    }
    let mut r = WaitResult::default();
    for (i, f) in futures.iter().enumerate() {
        if f.done() {
            r.done.push(i);
        } else {
            r.not_done.push(i);
        }
    }
    r
}

/// What an executor can do to a future it no longer sees the type of.
trait Pending: Send + Sync {
    fn cancel(&self) -> bool;
    fn break_with(&self, reason: &str);
    fn is_final(&self) -> bool;
}

impl<T: Send + 'static> Pending for Core<T> {
    fn cancel(&self) -> bool {
        Core::cancel(self)
    }
    fn break_with(&self, reason: &str) {
        self.finish(Err(FutureError::BrokenPool {
            reason: reason.to_string(),
        }));
    }
    fn is_final(&self) -> bool {
        Core::is_final(self)
    }
}

/// An executor's view of its unfinished futures (for
/// `shutdown(cancel_futures)` and breaking), and its state.
pub(crate) struct Registry {
    /// Futures submitted and (maybe) not done, weakly; pruned as it grows.
    list: Mutex<(Vec<Weak<dyn Pending>>, usize)>,
    shut: AtomicBool,
    broken: Mutex<Option<String>>,
    /// The process pool to terminate when the executor breaks.
    pool: Option<Weak<Shared>>,
}

impl Registry {
    fn new(pool: Option<Weak<Shared>>) -> Arc<Registry> {
        Arc::new(Registry {
            list: Mutex::new((Vec::new(), 64)),
            shut: AtomicBool::new(false),
            broken: Mutex::new(None),
            pool,
        })
    }

    fn lock_list(&self) -> MutexGuard<'_, (Vec<Weak<dyn Pending>>, usize)> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn broken(&self) -> Option<String> {
        self.broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Refuses submissions to a broken or shut-down executor.
    fn check(&self) -> Result<(), FutureError> {
        if let Some(reason) = self.broken() {
            return Err(FutureError::BrokenPool { reason });
        }
        if self.shut.load(Ordering::Acquire) {
            return Err(FutureError::ShutDown);
        }
        Ok(())
    }

    /// The error for a refused submission.
    fn refused(&self, e: Error) -> FutureError {
        match self.check() {
            Err(fe) => fe,
            Ok(()) => FutureError::from(e),
        }
    }

    fn add<T: Send + 'static>(&self, core: &Arc<Core<T>>) {
        let weak: Weak<dyn Pending> = Arc::downgrade(core) as Weak<dyn Pending>;
        let mut g = self.lock_list();
        let (list, prune_at) = &mut *g;
        if list.len() >= *prune_at {
            list.retain(|w| w.upgrade().is_some_and(|p| !p.is_final()));
            *prune_at = (list.len() * 2).max(64);
        }
        list.push(weak);
    }

    fn snapshot(&self) -> Vec<Weak<dyn Pending>> {
        std::mem::take(&mut self.lock_list().0)
    }

    fn shut_down(&self, cancel_futures: bool) {
        self.shut.store(true, Ordering::Release);
        if cancel_futures {
            for w in self.snapshot() {
                if let Some(p) = w.upgrade() {
                    p.cancel();
                }
            }
        }
    }

    /// Breaks the executor: refuses new work (from now on), fails every
    /// unfinished future with `BrokenPool`, terminates the pool.
    pub(crate) fn break_now(&self, reason: &str) {
        {
            let mut b = self.broken.lock().unwrap_or_else(|e| e.into_inner());
            if b.is_some() {
                return;
            }
            *b = Some(reason.to_string());
        }
        for w in self.snapshot() {
            if let Some(p) = w.upgrade() {
                p.break_with(reason);
            }
        }
        if let Some(shared) = self.pool.as_ref().and_then(Weak::upgrade) {
            shared.terminate_soon();
        }
    }
}

/// One `map` chunk's future (every item's result) and its item count.
type ChunkCore<R> = Arc<Core<Vec<Result<R, FutureError>>>>;

/// The result iterator of an executor's `map`: every item's result in
/// input order. See [`ProcessPoolExecutor::map_with`].
pub struct MapIter<R: Send + 'static> {
    chunks: VecDeque<(ChunkCore<R>, usize)>,
    current: std::vec::IntoIter<Result<R, FutureError>>,
    deadline: Option<Instant>,
    ended: bool,
}

impl<R: Send + 'static> fmt::Debug for MapIter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapIter")
            .field("chunks_left", &self.chunks.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<R: Send + 'static> MapIter<R> {
    fn new(chunks: VecDeque<(ChunkCore<R>, usize)>, timeout: Option<Duration>) -> MapIter<R> {
        MapIter {
            chunks,
            current: Vec::new().into_iter(),
            deadline: deadline_of(timeout),
            ended: false,
        }
    }

    fn cancel_rest(&mut self) {
        for (c, _) in self.chunks.drain(..) {
            c.cancel();
        }
    }
}

impl<R: Send + 'static> Iterator for MapIter<R> {
    type Item = Result<R, FutureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.current.next() {
                return Some(r);
            }
            if self.ended {
                return None;
            }
            let (core, n) = self.chunks.front()?;
            match core.take(self.deadline) {
                Ok(v) => self.current = v.into_iter(),
                Err(FutureError::Timeout) => {
                    self.ended = true;
                    self.cancel_rest();
                    return Some(Err(FutureError::Timeout));
                }
                Err(e) => {
                    let errs: Vec<_> = (0..*n).map(|_| Err(e.clone())).collect();
                    self.current = errs.into_iter();
                }
            }
            self.chunks.pop_front();
        }
    }
}

/// Dropping the iterator early cancels the chunks that have not started
/// (as Python's result iterator does when it is closed).
impl<R: Send + 'static> Drop for MapIter<R> {
    fn drop(&mut self) {
        self.cancel_rest();
    }
}
