//! [`AsyncResult`]: the pending result of an asynchronous call.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::collector::Collector;
use crate::Error;

/// The pending result of an asynchronous call (`apply_async`,
/// `map_async`): Python's `AsyncResult`.
///
/// [`get`](AsyncResult::get) hands the value out once (it moves); later
/// calls return [`Error::ResultTaken`]. Dropping an `AsyncResult` does not
/// cancel the task.
///
/// ```
/// use std::time::Duration;
/// use mp_pool::ThreadPool;
///
/// let pool = ThreadPool::new(2)?;
/// let r = pool.apply_async(|ms: u64| { std::thread::sleep(Duration::from_millis(ms)); ms }, 50)?;
/// assert!(matches!(r.get_timeout(Duration::from_millis(1)), Err(mp_pool::Error::Timeout)));
/// r.wait();
/// assert!(r.ready());
/// assert!(r.successful()?);
/// assert_eq!(r.get()?, 50);
/// # Ok::<(), mp_pool::Error>(())
/// ```
pub struct AsyncResult<T> {
    coll: Arc<dyn Source<T>>,
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.coll.finished())
            .finish()
    }
}

/// What an [`AsyncResult`] reads from.
trait Source<T>: Send + Sync {
    fn wait(&self, deadline: Option<Instant>) -> bool;
    fn finished(&self) -> bool;
    fn take(&self, deadline: Option<Instant>) -> Result<T, Error>;
    fn successful(&self) -> Result<bool, Error>;
    fn poll_finished(&self, cx: &mut Context<'_>) -> bool;
}

struct AllOf<R>(Arc<Collector<R>>);
struct OneOf<R>(Arc<Collector<R>>);

impl<R: Send + 'static> Source<Vec<R>> for AllOf<R> {
    fn wait(&self, deadline: Option<Instant>) -> bool {
        self.0.wait_finished(deadline)
    }
    fn finished(&self) -> bool {
        self.0.is_finished()
    }
    fn take(&self, deadline: Option<Instant>) -> Result<Vec<R>, Error> {
        self.0.take_all(deadline)
    }
    fn successful(&self) -> Result<bool, Error> {
        self.0.successful()
    }
    fn poll_finished(&self, cx: &mut Context<'_>) -> bool {
        self.0.poll_finished(cx)
    }
}

impl<R: Send + 'static> Source<R> for OneOf<R> {
    fn wait(&self, deadline: Option<Instant>) -> bool {
        self.0.wait_finished(deadline)
    }
    fn finished(&self) -> bool {
        self.0.is_finished()
    }
    fn take(&self, deadline: Option<Instant>) -> Result<R, Error> {
        let v = self.0.take_all(deadline)?;
        v.into_iter()
            .next()
            .ok_or_else(|| Error::Decode("an apply produced no result".into()))
    }
    fn successful(&self) -> Result<bool, Error> {
        self.0.successful()
    }
    fn poll_finished(&self, cx: &mut Context<'_>) -> bool {
        self.0.poll_finished(cx)
    }
}

impl<R: Send + 'static> AsyncResult<Vec<R>> {
    pub(crate) fn all(c: Arc<Collector<R>>) -> Self {
        AsyncResult {
            coll: Arc::new(AllOf(c)),
        }
    }
}

impl<R: Send + 'static> AsyncResult<R> {
    pub(crate) fn one(c: Arc<Collector<R>>) -> Self {
        AsyncResult {
            coll: Arc::new(OneOf(c)),
        }
    }
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl<T> AsyncResult<T> {
    /// Waits for the result and takes it.
    ///
    /// # Errors
    ///
    /// The task's failure ([`Error::TaskPanicked`], [`Error::WorkerDied`],
    /// ...), or [`Error::ResultTaken`] on a second call.
    pub fn get(&self) -> Result<T, Error> {
        self.coll.take(None)
    }

    /// Waits at most `timeout` for the result and takes it.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if it is not ready by then (it stays pending and
    /// can be waited for again); otherwise as [`get`](AsyncResult::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        self.coll.take(deadline(timeout))
    }

    /// Waits until the result is ready.
    pub fn wait(&self) {
        self.coll.wait(None);
    }

    /// Waits at most `timeout`; returns whether the result is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.coll.wait(deadline(timeout))
    }

    /// Whether the call has finished (successfully or not).
    pub fn ready(&self) -> bool {
        self.coll.finished()
    }

    /// Whether the call finished without error.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] if it has not finished (Python raises
    /// `ValueError`).
    pub fn successful(&self) -> Result<bool, Error> {
        self.coll.successful()
    }
}

/// Awaiting an `AsyncResult` takes its value, as [`get`](AsyncResult::get)
/// does, without blocking the thread: the task is woken from the pool's
/// completion path (the dispatcher thread, or the thread-pool thread that
/// finished the call).
///
/// ```
/// use mp_pool::ThreadPool;
///
/// let pool = ThreadPool::new(2)?;
/// let r = pool.apply_async(|x: i32| x * 2, 21)?;
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let v = rt.block_on(async { r.await })?;
/// assert_eq!(v, 42);
/// # Ok::<(), mp_pool::Error>(())
/// ```
impl<T> std::future::Future for AsyncResult<T> {
    type Output = Result<T, Error>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.coll.poll_finished(cx) {
            Poll::Ready(self.coll.take(None))
        } else {
            Poll::Pending
        }
    }
}
