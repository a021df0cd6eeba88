//! [`Future`]: the pending result of one submitted call, and the state it
//! shares with the pool's completion path ([`Core`]).
//!
//! # States
//!
//! `PENDING` → `RUNNING` (the dispatcher hands the task to a worker, or a
//! pool thread picks it up) → `DONE_OK` / `DONE_ERR`; or `PENDING` →
//! `CANCELLED`. Only `PENDING` → `RUNNING` happens without the core's
//! lock (one compare-and-swap on the dispatch path); every final
//! transition happens under it, together with storing the value, so that a
//! waiter that checks the state under the lock never misses the wake-up.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mp_proc::CallError;

use super::{FutureError, Registry, WaitSet};
use crate::Error;
use crate::task::Job;

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const DONE_OK: u8 = 2;
const DONE_ERR: u8 = 3;
const CANCELLED: u8 = 4;

/// Turns a worker's output (the encoded results of `nitems` items) into
/// the future's value.
pub(crate) type Decode<T> = fn(Result<Vec<u8>, CallError>, usize) -> Result<T, FutureError>;

/// Someone to tell when the future is done.
enum Listener {
    Waker(Waker),
    Set(Arc<WaitSet>, usize),
    Callback(Box<dyn FnOnce() + Send>),
}

struct Slot<T> {
    /// The outcome, once done; an `Ok` value leaves with the first `result`.
    value: Option<Result<T, FutureError>>,
    /// Threads blocked in `result`.
    waiters: usize,
    listeners: Vec<Listener>,
}

/// The shared state of one future: filled in by the dispatcher (process
/// executor) or a pool thread (thread executor).
pub(crate) struct Core<T> {
    state: AtomicU8,
    slot: Mutex<Slot<T>>,
    cv: Condvar,
    decode: Option<Decode<T>>,
    /// Set when the executor breaks on a worker's death.
    breaker: Option<Arc<Registry>>,
}

impl<T> Core<T> {
    pub(crate) fn new(decode: Option<Decode<T>>, breaker: Option<Arc<Registry>>) -> Core<T> {
        Core {
            state: AtomicU8::new(PENDING),
            slot: Mutex::new(Slot {
                value: None,
                waiters: 0,
                listeners: Vec::new(),
            }),
            cv: Condvar::new(),
            decode,
            breaker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    pub(crate) fn is_final(&self) -> bool {
        self.state() >= DONE_OK
    }

    /// `PENDING` → `RUNNING`; false if it was cancelled (or failed) first.
    pub(crate) fn begin(&self) -> bool {
        match self
            .state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(s) => s == RUNNING,
        }
    }

    /// Stores the outcome unless it is already done; wakes and runs the
    /// listeners. Returns whether this call finished it.
    pub(crate) fn finish(&self, r: Result<T, FutureError>) -> bool {
        let mut slot = self.lock();
        if self.is_final() {
            return false;
        }
        let fin = match &r {
            Ok(_) => DONE_OK,
            Err(FutureError::Cancelled) => CANCELLED,
            Err(_) => DONE_ERR,
        };
        slot.value = Some(r);
        self.state.store(fin, Ordering::Release);
        self.settle(slot);
        true
    }

    /// Wakes the blocked threads and runs the listeners, outside the lock.
    fn settle(&self, mut slot: MutexGuard<'_, Slot<T>>) {
        if slot.waiters > 0 {
            self.cv.notify_all();
        }
        let listeners = std::mem::take(&mut slot.listeners);
        drop(slot);
        for l in listeners {
            fire(l);
        }
    }

    /// Python's `cancel`: only a future that has not started.
    pub(crate) fn cancel(&self) -> bool {
        let mut slot = self.lock();
        match self
            .state
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                slot.value = Some(Err(FutureError::Cancelled));
                self.settle(slot);
                true
            }
            Err(s) => s == CANCELLED,
        }
    }

    /// Waits until done or `deadline`; the guard, or `Timeout`.
    fn wait_done(&self, deadline: Option<Instant>) -> Result<MutexGuard<'_, Slot<T>>, FutureError> {
        let mut slot = self.lock();
        loop {
            if self.is_final() {
                return Ok(slot);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Err(FutureError::Timeout);
            }
            slot.waiters += 1;
            slot = match deadline {
                None => self.cv.wait(slot).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    self.cv
                        .wait_timeout(slot, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            slot.waiters -= 1;
        }
    }

    /// Waits and takes the value (errors stay for the next caller).
    pub(crate) fn take(&self, deadline: Option<Instant>) -> Result<T, FutureError> {
        let mut slot = self.wait_done(deadline)?;
        match slot.value.take() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => {
                slot.value = Some(Err(e.clone()));
                Err(e)
            }
            None => Err(FutureError::ResultTaken),
        }
    }

    fn exception(&self, deadline: Option<Instant>) -> Result<Option<FutureError>, FutureError> {
        let slot = self.wait_done(deadline)?;
        Ok(match &slot.value {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        })
    }

    /// Adds a listener, or fires it now if the future is done.
    fn listen(&self, l: Listener) {
        let mut slot = self.lock();
        if self.is_final() {
            drop(slot);
            fire(l);
        } else {
            slot.listeners.push(l);
        }
    }

    /// Registers `(set, index)`; false (nothing registered) if done.
    pub(crate) fn listen_set(&self, set: &Arc<WaitSet>, index: usize) -> bool {
        let mut slot = self.lock();
        if self.is_final() {
            return false;
        }
        slot.listeners.push(Listener::Set(set.clone(), index));
        true
    }

    /// Removes the registrations of `set`.
    pub(crate) fn unlisten_set(&self, set: &Arc<WaitSet>) {
        let mut slot = self.lock();
        slot.listeners
            .retain(|l| !matches!(l, Listener::Set(s, _) if Arc::ptr_eq(s, set)));
    }

    /// Whether done; if not, `cx`'s waker is woken when it is.
    fn poll_done(&self, cx: &mut Context<'_>) -> bool {
        let mut slot = self.lock();
        if self.is_final() {
            return true;
        }
        let known = slot
            .listeners
            .iter()
            .any(|l| matches!(l, Listener::Waker(w) if w.will_wake(cx.waker())));
        if !known {
            slot.listeners.push(Listener::Waker(cx.waker().clone()));
        }
        false
    }

    pub(crate) fn failed(&self) -> bool {
        self.state() == DONE_ERR
    }
}

fn fire(l: Listener) {
    match l {
        Listener::Waker(w) => w.wake(),
        Listener::Set(set, i) => set.push(i),
        Listener::Callback(f) => {
            // Python logs a failing callback and goes on; so do we (the
            // completion path must not die).
            if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
                eprintln!(
                    "mp-pool: a done callback panicked: {}",
                    crate::thread_pool::panic_message(p.as_ref())
                );
            }
        }
    }
}

impl<T: Send + 'static> Job for Core<T> {
    fn complete(&self, _index: usize, nitems: usize, out: Result<Vec<u8>, CallError>) {
        let r = match self.decode {
            Some(decode) => decode(out, nitems),
            None => Err(FutureError::from(Error::Decode(
                "a thread task's future got a process result".into(),
            ))),
        };
        self.finish(r);
    }

    fn fail(&self, _index: usize, _nitems: usize, err: &Error) {
        match (&self.breaker, err) {
            (Some(reg), Error::WorkerDied { .. }) => {
                // Broken first, so that whoever sees this future fail
                // also sees new submissions refused.
                let reason = err.to_string();
                reg.break_now(&reason);
                self.finish(Err(FutureError::BrokenPool { reason }));
            }
            _ => {
                self.finish(Err(FutureError::from(err.duplicate())));
            }
        }
    }

    fn cancelled(&self) -> bool {
        self.is_final()
    }

    fn start(&self) -> bool {
        self.begin()
    }
}

/// The pending result of a call submitted to an executor: Python's
/// `concurrent.futures.Future`.
///
/// A `Future` is a cheap handle (clones share the call). [`result`](Future::result)
/// waits and moves the value out: a second call returns
/// [`FutureError::ResultTaken`]; a failure is returned to every caller.
/// It is also a [`std::future::Future`]: `fut.await` waits without blocking
/// the thread (the task is woken from the pool's completion path).
///
/// ```
/// use std::time::Duration;
/// use mp_pool::ThreadPoolExecutor;
///
/// let ex = ThreadPoolExecutor::new(2)?;
/// let fut = ex.submit(|ms: u64| { std::thread::sleep(Duration::from_millis(ms)); ms * 2 }, 50)?;
/// assert!(matches!(fut.result_timeout(Duration::from_millis(1)), Err(mp_pool::FutureError::Timeout)));
/// assert_eq!(fut.result()?, 100);
/// assert!(fut.done() && !fut.cancelled());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Future<R> {
    pub(crate) core: Arc<Core<R>>,
}

impl<R> Clone for Future<R> {
    fn clone(&self) -> Self {
        Future {
            core: self.core.clone(),
        }
    }
}

impl<R> fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.core.state() {
            PENDING => "pending",
            RUNNING => "running",
            DONE_OK => "finished",
            DONE_ERR => "failed",
            _ => "cancelled",
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}

impl<R: Send + 'static> Future<R> {
    pub(crate) fn from_core(core: Arc<Core<R>>) -> Future<R> {
        Future { core }
    }

    /// Waits for the call and takes its value (Python's `result()`).
    ///
    /// # Errors
    ///
    /// The call's failure ([`FutureError::TaskPanicked`],
    /// [`FutureError::WorkerDied`], [`FutureError::Cancelled`],
    /// [`FutureError::BrokenPool`], ...), or [`FutureError::ResultTaken`]
    /// when the value was taken before.
    pub fn result(&self) -> Result<R, FutureError> {
        self.core.take(None)
    }

    /// Waits at most `timeout` for the call and takes its value (Python's
    /// `result(timeout)`).
    ///
    /// # Errors
    ///
    /// [`FutureError::Timeout`] if it is not done by then (it stays
    /// pending); otherwise as [`result`](Future::result).
    pub fn result_timeout(&self, timeout: Duration) -> Result<R, FutureError> {
        self.core.take(Instant::now().checked_add(timeout))
    }

    /// Waits for the call and returns its failure, `None` if it succeeded
    /// (Python's `exception()`; a cancelled future gives
    /// [`FutureError::Cancelled`] here rather than raising).
    pub fn exception(&self) -> Option<FutureError> {
        self.core.exception(None).unwrap_or(None)
    }

    /// Whether the call finished, failed or was cancelled.
    pub fn done(&self) -> bool {
        self.core.is_final()
    }

    /// Whether a worker has taken the call and it is not done yet.
    ///
    /// As in Python, "taken" means handed to a worker: a process executor
    /// may queue a few short tasks in a worker's pipe ahead of time, and
    /// those count as running (they can no longer be cancelled).
    pub fn running(&self) -> bool {
        self.core.state() == RUNNING
    }

    /// Whether the call was cancelled.
    pub fn cancelled(&self) -> bool {
        self.core.state() == CANCELLED
    }

    /// Cancels the call if it has not started (Python's `cancel()`):
    /// returns true if it is (now or already) cancelled, false if it is
    /// running or done. A cancelled call never runs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_pool::ThreadPoolExecutor;
    ///
    /// let ex = ThreadPoolExecutor::new(1)?;
    /// let busy = ex.submit(|ms: u64| std::thread::sleep(Duration::from_millis(ms)), 200)?;
    /// let queued = ex.submit(|x: i32| x, 1)?;
    /// assert!(queued.cancel());
    /// assert!(queued.cancelled());
    /// assert!(matches!(queued.result(), Err(mp_pool::FutureError::Cancelled)));
    /// busy.result()?;
    /// assert!(!busy.cancel());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel(&self) -> bool {
        self.core.cancel()
    }

    /// Runs `f(&future)` once when the call is done, on the thread that
    /// completes it (the process executor's dispatcher thread, or a pool
    /// thread); at once, on this thread, if it is done already (Python's
    /// `add_done_callback`). Keep it short: it holds up other results. A
    /// panic in it is reported on standard error and otherwise ignored, as
    /// Python logs it.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use mp_pool::ThreadPoolExecutor;
    ///
    /// let ex = ThreadPoolExecutor::new(1)?;
    /// let fut = ex.submit(|x: i32| x + 1, 1)?;
    /// let (tx, rx) = mpsc::channel();
    /// fut.add_done_callback(move |f| tx.send(f.done()).unwrap());
    /// assert!(rx.recv()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_done_callback(&self, f: impl FnOnce(&Future<R>) + Send + 'static) {
        let me = self.clone();
        self.core
            .listen(Listener::Callback(Box::new(move || f(&me))));
    }
}

/// Awaiting takes the value as [`result`](Future::result) does.
impl<R: Send + 'static> std::future::Future for Future<R> {
    type Output = Result<R, FutureError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.core.poll_done(cx) {
            Poll::Ready(self.core.take(None))
        } else {
            Poll::Pending
        }
    }
}
