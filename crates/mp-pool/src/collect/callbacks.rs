//! [`Callbacks`]: Python's `callback` and `error_callback`.

use std::fmt;

use super::collector::Callback;
use crate::Error;

/// Callbacks run when an asynchronous call finishes, on the pool's
/// dispatcher thread (a thread-pool worker for [`ThreadPool`](crate::ThreadPool)),
/// before [`AsyncResult::ready`](crate::AsyncResult::ready) turns true: Python's `callback` and
/// `error_callback`. Keep them short: they hold up the delivery of other
/// results.
///
/// ```
/// use std::sync::mpsc;
/// use mp_pool::{Callbacks, ThreadPool};
///
/// let pool = ThreadPool::new(2)?;
/// let (tx, rx) = mpsc::channel();
/// let r = pool.apply_async_with(|x: i32| x + 1, 41, Callbacks::new().on_success(move |v: &i32| {
///     tx.send(*v).unwrap();
/// }))?;
/// assert_eq!(r.get()?, 42);
/// assert_eq!(rx.recv().unwrap(), 42);
/// # Ok::<(), mp_pool::Error>(())
/// ```
pub struct Callbacks<T> {
    pub(crate) on_success: Option<OnSuccess<T>>,
    pub(crate) on_error: Option<OnError>,
}

type OnSuccess<T> = Box<dyn FnOnce(&T) + Send>;
type OnError = Box<dyn FnOnce(&Error) + Send>;

impl<T> fmt::Debug for Callbacks<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("on_success", &self.on_success.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

impl<T> Default for Callbacks<T> {
    fn default() -> Self {
        Callbacks {
            on_success: None,
            on_error: None,
        }
    }
}

impl<T> Callbacks<T> {
    /// No callbacks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` with the result when the call succeeds (Python's `callback`).
    pub fn on_success(mut self, f: impl FnOnce(&T) + Send + 'static) -> Self {
        self.on_success = Some(Box::new(f));
        self
    }

    /// Runs `f` with the error when the call fails (Python's `error_callback`).
    pub fn on_error(mut self, f: impl FnOnce(&Error) + Send + 'static) -> Self {
        self.on_error = Some(Box::new(f));
        self
    }
}

impl<R: Send + 'static> Callbacks<Vec<R>> {
    pub(crate) fn into_callback(self) -> Option<Callback<R>> {
        if self.on_success.is_none() && self.on_error.is_none() {
            return None;
        }
        Some(Box::new(move |r: Result<&Vec<R>, &Error>| match r {
            Ok(v) => {
                if let Some(f) = self.on_success {
                    f(v)
                }
            }
            Err(e) => {
                if let Some(f) = self.on_error {
                    f(e)
                }
            }
        }))
    }
}

impl<R: Send + 'static> Callbacks<R> {
    /// For a single-item call: the callback sees the item.
    pub(crate) fn into_item_callback(self) -> Option<Callback<R>> {
        if self.on_success.is_none() && self.on_error.is_none() {
            return None;
        }
        Some(Box::new(move |r: Result<&Vec<R>, &Error>| match r {
            Ok(v) => {
                if let (Some(f), Some(x)) = (self.on_success, v.first()) {
                    f(x)
                }
            }
            Err(e) => {
                if let Some(f) = self.on_error {
                    f(e)
                }
            }
        }))
    }
}
