//! Queue and JoinableQueue proxies.

use std::time::Duration;

use crate::client::enc;
use crate::error::Error;
use crate::proxy::collections::Storable;
use crate::proxy::{proxy_type, wire_timeout};
use crate::wire::{Kind, Op};

proxy_type!(
    /// A FIFO queue in the manager's server: Python's `Manager().Queue()`.
    ///
    /// Blocking calls block only the calling thread (the server serves each
    /// connection on its own thread); timeouts are kept by the server.
    /// A timed or non-blocking `get` that finds nothing is
    /// `Remote(Empty)`, a `put` into a full bounded queue `Remote(Full)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = mp_manager::Manager::new()?;
    /// let q = m.queue::<String>()?;
    /// q.put("hello".to_string())?;
    /// assert_eq!(q.qsize()?, 1);
    /// assert_eq!(q.get()?, "hello");
    /// assert!(q.get_timeout(Duration::from_millis(10)).is_err());
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    QueueProxy[T], Kind::Queue
);

proxy_type!(
    /// A queue with `task_done` and `join`: Python's
    /// `Manager().JoinableQueue()`.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let q = m.joinable_queue::<u32>()?;
    /// q.put(1)?;
    /// assert_eq!(q.get()?, 1);
    /// q.task_done()?;
    /// q.join()?; // every item was processed
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    JoinableQueueProxy[T], Kind::Queue
);

macro_rules! queue_methods {
    ($name:ident) => {
        impl<T: Storable> $name<T> {
            /// Puts an item, waiting for room in a bounded queue.
            ///
            /// # Errors
            ///
            /// Connection and encode errors.
            pub fn put(&self, item: T) -> Result<(), Error> {
                self.h.op(Op::QueuePut(enc(&item)?, None))?.ok()
            }

            /// Puts an item, waiting at most `timeout` for room.
            ///
            /// # Errors
            ///
            /// `Remote(Full)` when the timeout passed.
            pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), Error> {
                self.h
                    .op(Op::QueuePut(enc(&item)?, wire_timeout(Some(timeout))))?
                    .ok()
            }

            /// Puts an item if there is room now.
            ///
            /// # Errors
            ///
            /// `Remote(Full)` when there is none.
            pub fn put_nowait(&self, item: T) -> Result<(), Error> {
                self.h.op(Op::QueuePut(enc(&item)?, Some(0)))?.ok()
            }

            /// Takes the oldest item, waiting for one.
            ///
            /// # Errors
            ///
            /// Connection and decode errors.
            pub fn get(&self) -> Result<T, Error> {
                self.h.op(Op::QueueGet(None))?.value()
            }

            /// Takes the oldest item, waiting at most `timeout`.
            ///
            /// # Errors
            ///
            /// `Remote(Empty)` when the timeout passed.
            pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
                self.h
                    .op(Op::QueueGet(wire_timeout(Some(timeout))))?
                    .value()
            }

            /// Takes the oldest item if there is one now.
            ///
            /// # Errors
            ///
            /// `Remote(Empty)` when there is none.
            pub fn get_nowait(&self) -> Result<T, Error> {
                self.h.op(Op::QueueGet(Some(0)))?.value()
            }

            /// The number of items.
            ///
            /// # Errors
            ///
            /// Connection errors.
            pub fn qsize(&self) -> Result<usize, Error> {
                Ok(self.h.op(Op::Len)?.count()? as usize)
            }

            /// Whether the queue is empty.
            ///
            /// # Errors
            ///
            /// Connection errors.
            pub fn empty(&self) -> Result<bool, Error> {
                Ok(self.qsize()? == 0)
            }
        }
    };
}

queue_methods!(QueueProxy);
queue_methods!(JoinableQueueProxy);

impl<T: Storable> JoinableQueueProxy<T> {
    /// Marks one item taken with `get` as processed.
    ///
    /// Call it in the process that got the item: the server counts each
    /// client process's items taken and not done, which is how
    /// [`join`](JoinableQueueProxy::join) recognises the tasks of a client
    /// that went away.
    ///
    /// # Errors
    ///
    /// `Remote(TaskDoneTooOften)` when called more often than items were
    /// put.
    pub fn task_done(&self) -> Result<(), Error> {
        self.h.op(Op::QueueTaskDone)?.ok()
    }

    /// Waits until every item put has been marked done.
    ///
    /// Unlike Python's, it does not wait for ever when a consumer went away
    /// holding a task: when every connection of a client process has closed
    /// (it exited or was killed, or its host vanished and the peer timeout
    /// passed), the items it got and never marked done are written off, and
    /// `join` returns `Remote(TasksLost)` (every `join` waiting then does,
    /// or else the next one). Tasks of clients that are alive are waited
    /// for.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let q = m.joinable_queue::<u32>()?;
    /// q.put(1)?;
    /// let _task = q.get()?;
    /// q.task_done()?;
    /// q.join()?; // every task done
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `Remote(TasksLost { count })` as above; connection errors.
    pub fn join(&self) -> Result<(), Error> {
        self.h.op(Op::QueueJoin(None))?.ok()
    }

    /// As [`join`](JoinableQueueProxy::join), for at most `timeout`.
    ///
    /// # Errors
    ///
    /// `Remote(Timeout)` when the timeout passed, `Remote(TasksLost)` as
    /// for `join` (also when the timeout passed).
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.h.op(Op::QueueJoin(wire_timeout(Some(timeout))))?.ok()
    }
}
