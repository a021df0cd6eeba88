//! [`SimpleQueue`]: a [`Queue`] with Python's smaller API.

use std::fmt;
use std::os::fd::BorrowedFd;

use mp_os::wait::Waitable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, RecvError, SendError};
// `io`: what every handle does with its rings.

use super::Queue;

/// A simpler queue (Python's `SimpleQueue`): `put`, `get`, `empty`,
/// `close`; unbounded (see [`Queue`]).
///
/// ```
/// let q = mp_channel::SimpleQueue::new()?;
/// q.put("x".to_string())?;
/// assert!(!q.empty());
/// assert_eq!(q.get()?, "x");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("empty", &self.queue.empty())
            .finish()
    }
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new queue.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn new() -> Result<Self, Error> {
        Ok(SimpleQueue {
            queue: Queue::new()?,
        })
    }

    /// Puts `value` (never blocks: see [`Queue`]).
    ///
    /// # Errors
    ///
    /// As [`Queue::put`].
    pub fn put(&self, value: T) -> Result<(), SendError<T>> {
        self.queue.put(value)
    }

    /// Takes the next value, blocking until there is one.
    ///
    /// # Errors
    ///
    /// As [`Queue::get`].
    pub fn get(&self) -> Result<T, RecvError> {
        self.queue.get()
    }

    /// Whether the queue is empty.
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// Closes this handle: later `put`s and `get`s on it fail with
    /// `Closed` (Python's `SimpleQueue.close`; see [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close();
    }

    /// This handle will put no more; it still gets (see
    /// [`Queue::close_put`]).
    pub fn close_put(&self) {
        self.queue.close_put();
    }
}

impl<T> Waitable for SimpleQueue<T> {
    fn is_ready(&self) -> bool {
        self.queue.is_ready()
    }
    fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.queue.readiness_fd()
    }
    fn register(&self) {
        self.queue.register();
    }
    fn unregister(&self) {
        self.queue.unregister();
    }
    fn check_stalled(&self) -> bool {
        self.queue.check_stalled()
    }
}

impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.queue.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SimpleQueue<T>, D::Error> {
        Queue::deserialize(d).map(|queue| SimpleQueue { queue })
    }
}
