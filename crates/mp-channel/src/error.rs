//! Errors: set-up errors ([`Error`]), send errors that hand the value back
//! ([`SendError`]) and receive errors ([`RecvError`]).

use std::fmt;
use std::io;

/// Creating or attaching to a channel failed, or a queue operation was
/// misused.
///
/// ```
/// let e = mp_channel::Error::TaskDone;
/// assert!(e.to_string().contains("task_done"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The shared segment or the eventfd could not be created.
    #[error("cannot create the channel: {0}")]
    Io(#[from] io::Error),
    /// `JoinableQueue::task_done` was called more times than items were put.
    #[error("task_done() called more times than there were items placed in the queue")]
    TaskDone,
    /// `JoinableQueue::join` found tasks that will never be done: values
    /// got by processes that died before calling `task_done` for them. They
    /// are written off (no longer unfinished), so a later `join` waits only
    /// for the others.
    #[error("{count} task(s) were taken by a process that died before calling task_done()")]
    TasksLost {
        /// How many tasks were written off.
        count: u64,
    },
}

/// A send failed; the value comes back (crossbeam style).
///
/// The same type serves the blocking, timed and non-blocking calls
/// ([`TrySendError`] and [`SendTimeoutError`] are aliases); each call's
/// docs say which variants it returns. `Debug` does not need `T: Debug`.
///
/// ```
/// use mp_channel::SendError;
/// let e = SendError::Full(5);
/// assert!(e.is_full());
/// assert_eq!(e.into_inner(), 5);
/// ```
pub enum SendError<T = ()> {
    /// The queue is full (non-blocking call).
    Full(T),
    /// The timeout passed before there was room.
    Timeout(T),
    /// Every receiving handle has been closed, dropped, or its process died.
    Disconnected(T),
    /// This handle was closed (or cannot send: the read end of a simplex
    /// pipe).
    Closed(T),
    /// The value could not be encoded with postcard.
    Encode(T, postcard::Error),
    /// The channel's control block is damaged (a buggy or hostile process
    /// that maps it wrote positions no writer or reader leaves): nothing
    /// more can be sent on it.
    Corrupt(T),
}

/// The error of a non-blocking send (`put_nowait`): [`SendError::Full`],
/// `Disconnected`, `Closed` or `Encode`.
pub type TrySendError<T> = SendError<T>;

/// The error of a timed send (`put_timeout`): [`SendError::Timeout`],
/// `Disconnected`, `Closed` or `Encode`.
pub type SendTimeoutError<T> = SendError<T>;

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Full(v)
            | SendError::Timeout(v)
            | SendError::Disconnected(v)
            | SendError::Closed(v)
            | SendError::Encode(v, _)
            | SendError::Corrupt(v) => v,
        }
    }

    /// Whether the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, SendError::Full(_))
    }

    /// Whether the timeout passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendError::Timeout(_))
    }

    /// Whether every receiver has gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendError::Disconnected(_))
    }

    /// The same error without the value.
    pub fn without_value(self) -> SendError<()> {
        self.map(|_| ())
    }

    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> SendError<U> {
        match self {
            SendError::Full(v) => SendError::Full(f(v)),
            SendError::Timeout(v) => SendError::Timeout(f(v)),
            SendError::Disconnected(v) => SendError::Disconnected(f(v)),
            SendError::Closed(v) => SendError::Closed(f(v)),
            SendError::Encode(v, e) => SendError::Encode(f(v), e),
            SendError::Corrupt(v) => SendError::Corrupt(f(v)),
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Timeout(_) => f.write_str("Timeout(..)"),
            SendError::Disconnected(_) => f.write_str("Disconnected(..)"),
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Encode(_, e) => write!(f, "Encode(.., {e:?})"),
            SendError::Corrupt(_) => f.write_str("Corrupt(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("sending on a full channel"),
            SendError::Timeout(_) => f.write_str("timed out waiting for room in the channel"),
            SendError::Disconnected(_) => {
                f.write_str("sending on a channel whose receivers have all gone")
            }
            SendError::Closed(_) => f.write_str("sending on a closed or receive-only handle"),
            SendError::Encode(_, e) => write!(f, "cannot encode the message: {e}"),
            SendError::Corrupt(_) => f.write_str("corrupt channel: damaged control block"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Encode(_, e) => Some(e),
            _ => None,
        }
    }
}

/// A receive failed.
///
/// One type for the blocking, timed and non-blocking calls
/// ([`TryRecvError`] and [`RecvTimeoutError`] are aliases).
///
/// ```
/// let e = mp_channel::RecvError::Empty;
/// assert!(e.is_empty());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing to receive (non-blocking call).
    #[error("receiving on an empty channel")]
    Empty,
    /// The timeout passed.
    #[error("timed out waiting on a channel")]
    Timeout,
    /// Every sending handle has been closed, dropped, or its process died,
    /// and the channel is drained.
    #[error("receiving on an empty channel whose senders have all gone")]
    Disconnected,
    /// This handle was closed (or cannot receive: the write end of a
    /// simplex pipe).
    #[error("receiving on a closed or send-only handle")]
    Closed,
    /// `recv_bytes_into`: the buffer is shorter than the message, which
    /// stays in the channel for the next call.
    #[error("buffer too short: the message has {needed} bytes")]
    TooShort {
        /// Length of the waiting message.
        needed: usize,
    },
    /// The message is not a valid postcard encoding of the expected type.
    #[error("cannot decode the message")]
    Decode(#[source] postcard::Error),
    /// The message holds a handle (a shared value, lock, ...) that could
    /// not be re-attached: the message says why (the sending process
    /// exited, or let go of the object before it was received, ...). The
    /// message is consumed. A handle never attaches to another object than
    /// the one that was sent.
    #[error("cannot re-attach a handle in the message: {0}")]
    Attach(String),
    /// The channel's framing or control block is damaged (a buggy or
    /// hostile process that maps it): a record header or position that no
    /// writer or reader of the protocol leaves. The damaged record stays
    /// where it is, so later receives report it too.
    #[error("corrupt channel: {0}")]
    Corrupt(&'static str),
}

/// The error of a non-blocking receive: [`RecvError::Empty`] or another.
pub type TryRecvError = RecvError;

/// The error of a timed receive: [`RecvError::Timeout`] or another.
pub type RecvTimeoutError = RecvError;

impl RecvError {
    /// Whether the channel was empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, RecvError::Empty)
    }

    /// Whether the timeout passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvError::Timeout)
    }

    /// Whether every sender has gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvError::Disconnected)
    }
}
