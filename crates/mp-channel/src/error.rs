//! Errors: set-up errors ([`Error`]); send errors that hand the value back,
//! one type per kind of call ([`SendError`] for a blocking send,
//! [`TrySendError`] for a non-blocking one, [`SendTimeoutError`] for a
//! timed one); and receive errors, likewise ([`RecvError`],
//! [`TryRecvError`], [`RecvTimeoutError`]).
//!
//! Each type holds only what its calls can return: a blocking `put` cannot
//! find the queue full, so [`SendError`] has no `Full`. The calls share one
//! internal failure type ([`SendFailure`], [`RecvFailure`]) that each public
//! method narrows to its own type.

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

/// Declares a public send error type: the variants every send can return,
/// plus the one its kind of call adds (`Full`, `Timeout`), and its methods
/// and trait impls.
macro_rules! send_error {
    (
        $(#[$meta:meta])*
        $name:ident $({ $(#[$extra_meta:meta])* $extra:ident => $extra_msg:literal })?
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name<T = ()> {
            $($(#[$extra_meta])* $extra(T),)?
            /// Every receiving handle has been closed, dropped, or its
            /// process died.
            Disconnected(T),
            /// This handle was closed (`close`), or cannot send (the read
            /// end of a simplex pipe).
            Closed(T),
            /// The value could not be encoded with postcard.
            Encode(T, postcard::Error),
            /// The channel's control block is damaged (a buggy or hostile
            /// process that maps it wrote positions no writer or reader
            /// leaves): nothing more can be sent on it.
            Corrupt(T),
        }

        impl<T> $name<T> {
            /// The value that was not sent.
            pub fn into_inner(self) -> T {
                match self {
                    $($name::$extra(v) |)?
                    $name::Disconnected(v)
                    | $name::Closed(v)
                    | $name::Encode(v, _)
                    | $name::Corrupt(v) => v,
                }
            }

            /// Whether every receiver has gone.
            pub fn is_disconnected(&self) -> bool {
                matches!(self, $name::Disconnected(_))
            }

            /// Whether this handle was closed (or cannot send).
            pub fn is_closed(&self) -> bool {
                matches!(self, $name::Closed(_))
            }

            /// The same error without the value.
            pub fn without_value(self) -> $name<()> {
                self.map(|_| ())
            }

            /// The same error with `f` applied to the value.
            pub fn map<U>(self, f: impl FnOnce(T) -> U) -> $name<U> {
                match self {
                    $($name::$extra(v) => $name::$extra(f(v)),)?
                    $name::Disconnected(v) => $name::Disconnected(f(v)),
                    $name::Closed(v) => $name::Closed(f(v)),
                    $name::Encode(v, e) => $name::Encode(f(v), e),
                    $name::Corrupt(v) => $name::Corrupt(f(v)),
                }
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$extra(_) => f.write_str(concat!(stringify!($extra), "(..)")),)?
                    $name::Disconnected(_) => f.write_str("Disconnected(..)"),
                    $name::Closed(_) => f.write_str("Closed(..)"),
                    $name::Encode(_, e) => write!(f, "Encode(.., {e:?})"),
                    $name::Corrupt(_) => f.write_str("Corrupt(..)"),
                }
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$extra(_) => f.write_str($extra_msg),)?
                    $name::Disconnected(_) => {
                        f.write_str("sending on a channel whose receivers have all gone")
                    }
                    $name::Closed(_) => f.write_str("sending on a closed or receive-only handle"),
                    $name::Encode(_, e) => write!(f, "cannot encode the message: {e}"),
                    $name::Corrupt(_) => f.write_str("corrupt channel: damaged control block"),
                }
            }
        }

        impl<T> std::error::Error for $name<T> {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $name::Encode(_, e) => Some(e),
                    _ => None,
                }
            }
        }
    };
}

send_error! {
    /// A blocking send failed (`PipeEnd::send`, `send_bytes`, `Queue::put`,
    /// `SimpleQueue::put`); the value comes back.
    ///
    /// A blocking send waits as long as it takes for room, so it has no
    /// `Full` and no `Timeout`. `Debug` does not need `T: Debug`.
    ///
    /// ```
    /// let q = mp_channel::Queue::<u32>::new()?;
    /// q.close();
    /// match q.put(7) {
    ///     Err(mp_channel::SendError::Closed(v)) => assert_eq!(v, 7),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    SendError
}

send_error! {
    /// A non-blocking send failed (`Queue::put_nowait`); the value comes
    /// back.
    ///
    /// ```
    /// let q = mp_channel::Queue::with_capacity(1)?;
    /// q.put(1u8)?;
    /// let e = q.put_nowait(2).unwrap_err();
    /// assert!(e.is_full());
    /// assert_eq!(e.into_inner(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    TrySendError {
        /// There is no room now: the queue holds `maxsize` messages, or the
        /// ring has no room for the bytes.
        Full => "sending on a full channel"
    }
}

send_error! {
    /// A timed send failed (`PipeEnd::send_timeout`, `Queue::put_timeout`);
    /// the value comes back.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = mp_channel::Queue::with_capacity(1)?;
    /// q.put(1u8)?;
    /// let e = q.put_timeout(2, Duration::from_millis(10)).unwrap_err();
    /// assert!(e.is_timeout());
    /// assert_eq!(e.into_inner(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    SendTimeoutError {
        /// The timeout passed before there was room.
        Timeout => "timed out waiting for room in the channel"
    }
}

impl<T> TrySendError<T> {
    /// Whether there was no room.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// Whether the timeout passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(v) => TrySendError::Disconnected(v),
            SendError::Closed(v) => TrySendError::Closed(v),
            SendError::Encode(v, e) => TrySendError::Encode(v, e),
            SendError::Corrupt(v) => TrySendError::Corrupt(v),
        }
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(v) => SendTimeoutError::Disconnected(v),
            SendError::Closed(v) => SendTimeoutError::Closed(v),
            SendError::Encode(v, e) => SendTimeoutError::Encode(v, e),
            SendError::Corrupt(v) => SendTimeoutError::Corrupt(v),
        }
    }
}

/// Every way a send can fail: what the send path shared by all calls
/// returns. Each public call narrows it to its own error type; a variant
/// its kind of call cannot produce is a bug of this crate.
pub(crate) enum SendFailure<T = ()> {
    /// The deadline of a non-blocking call passed.
    Full(T),
    /// The deadline of a timed call passed.
    Timeout(T),
    Disconnected(T),
    Closed(T),
    Encode(T, postcard::Error),
    Corrupt(T),
}

impl<T> SendFailure<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> SendFailure<U> {
        match self {
            SendFailure::Full(v) => SendFailure::Full(f(v)),
            SendFailure::Timeout(v) => SendFailure::Timeout(f(v)),
            SendFailure::Disconnected(v) => SendFailure::Disconnected(f(v)),
            SendFailure::Closed(v) => SendFailure::Closed(f(v)),
            SendFailure::Encode(v, e) => SendFailure::Encode(f(v), e),
            SendFailure::Corrupt(v) => SendFailure::Corrupt(f(v)),
        }
    }

    /// The error of a call without a deadline.
    pub(crate) fn blocking(self) -> SendError<T> {
        match self {
            SendFailure::Disconnected(v) => SendError::Disconnected(v),
            SendFailure::Closed(v) => SendError::Closed(v),
            SendFailure::Encode(v, e) => SendError::Encode(v, e),
            SendFailure::Corrupt(v) => SendError::Corrupt(v),
            // The ring gives up waiting only once the deadline has passed.
            SendFailure::Full(_) | SendFailure::Timeout(_) => {
                unreachable!("a send without a deadline stopped waiting for room")
            }
        }
    }

    /// The error of a non-blocking call.
    pub(crate) fn non_blocking(self) -> TrySendError<T> {
        match self {
            // A call whose deadline is now: no room now.
            SendFailure::Full(v) | SendFailure::Timeout(v) => TrySendError::Full(v),
            SendFailure::Disconnected(v) => TrySendError::Disconnected(v),
            SendFailure::Closed(v) => TrySendError::Closed(v),
            SendFailure::Encode(v, e) => TrySendError::Encode(v, e),
            SendFailure::Corrupt(v) => TrySendError::Corrupt(v),
        }
    }

    /// The error of a timed call.
    pub(crate) fn timed(self) -> SendTimeoutError<T> {
        match self {
            SendFailure::Full(v) | SendFailure::Timeout(v) => SendTimeoutError::Timeout(v),
            SendFailure::Disconnected(v) => SendTimeoutError::Disconnected(v),
            SendFailure::Closed(v) => SendTimeoutError::Closed(v),
            SendFailure::Encode(v, e) => SendTimeoutError::Encode(v, e),
            SendFailure::Corrupt(v) => SendTimeoutError::Corrupt(v),
        }
    }
}

/// Declares a public receive error type: the variants every receive can
/// return, plus the one its kind of call adds (`Empty`, `Timeout`).
macro_rules! recv_error {
    (
        $(#[$meta:meta])*
        $name:ident $({ $(#[$extra_meta:meta])* $extra:ident => $extra_msg:literal })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$extra_meta])* #[error($extra_msg)] $extra,)?
            /// Every sending handle has been closed, dropped, or its process
            /// died, and the channel is drained.
            #[error("receiving on an empty channel whose senders have all gone")]
            Disconnected,
            /// This handle was closed (`close`), or cannot receive (the
            /// write end of a simplex pipe). On a [`Queue`](crate::Queue)
            /// this is Python's `ValueError: Queue is closed` after
            /// `close()`.
            #[error("receiving on a closed or send-only handle")]
            Closed,
            /// `recv_bytes_into`: the buffer is shorter than the message,
            /// which stays in the channel for the next call (only the
            /// `recv_bytes_into` calls return it).
            #[error("buffer too short: the message has {needed} bytes")]
            TooShort {
                /// Length of the waiting message.
                needed: usize,
            },
            /// The message is not a valid postcard encoding of the expected
            /// type (the message is consumed).
            #[error("cannot decode the message")]
            Decode(#[source] postcard::Error),
            /// The message holds a handle (a shared value, lock, ...) that
            /// could not be re-attached: the message says why (the sending
            /// process exited, or let go of the object before it was
            /// received, ...). The message is consumed. A handle never
            /// attaches to another object than the one that was sent.
            #[error("cannot re-attach a handle in the message: {0}")]
            Attach(String),
            /// The channel's framing or control block is damaged (a buggy or
            /// hostile process that maps it): a record header or position
            /// that no writer or reader of the protocol leaves. The damaged
            /// record stays where it is, so later receives report it too.
            #[error("corrupt channel: {0}")]
            Corrupt(&'static str),
        }

        impl $name {
            /// Whether every sender has gone.
            pub fn is_disconnected(&self) -> bool {
                matches!(self, $name::Disconnected)
            }

            /// Whether this handle was closed (or cannot receive).
            pub fn is_closed(&self) -> bool {
                matches!(self, $name::Closed)
            }
        }
    };
}

recv_error! {
    /// A blocking receive failed (`PipeEnd::recv`, `recv_bytes`,
    /// `recv_bytes_into`, `Queue::get`, `recv_async`, `get_async`).
    ///
    /// A blocking receive waits as long as it takes for a message, so it
    /// has no `Empty` and no `Timeout`.
    ///
    /// ```
    /// let (a, b) = mp_channel::pipe()?;
    /// drop(a);
    /// assert!(b.recv::<u8>().unwrap_err().is_disconnected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    RecvError
}

recv_error! {
    /// A non-blocking receive failed (`PipeEnd::try_recv`,
    /// `Queue::get_nowait`).
    ///
    /// ```
    /// let q = mp_channel::Queue::<u8>::new()?;
    /// assert_eq!(q.get_nowait(), Err(mp_channel::TryRecvError::Empty));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    TryRecvError {
        /// Nothing to receive now.
        Empty => "receiving on an empty channel"
    }
}

recv_error! {
    /// A timed receive failed (`PipeEnd::recv_timeout`,
    /// `recv_bytes_into_timeout`, `Queue::get_timeout`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = mp_channel::Queue::<u8>::new()?;
    /// assert!(q.get_timeout(Duration::from_millis(10)).unwrap_err().is_timeout());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    RecvTimeoutError {
        /// The timeout passed before a message came.
        Timeout => "timed out waiting on a channel"
    }
}

impl TryRecvError {
    /// Whether the channel was empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
}

impl RecvTimeoutError {
    /// Whether the timeout passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        RecvFailure::from(e).non_blocking()
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        RecvFailure::from(e).timed()
    }
}

/// Every way a receive can fail: what the receive path shared by all calls
/// returns. Each public call narrows it to its own error type; a variant
/// its kind of call cannot produce is a bug of this crate.
#[derive(Debug)]
pub(crate) enum RecvFailure {
    /// The deadline of a non-blocking call passed.
    Empty,
    /// The deadline of a timed call passed.
    Timeout,
    Disconnected,
    Closed,
    TooShort {
        needed: usize,
    },
    Decode(postcard::Error),
    Attach(String),
    Corrupt(&'static str),
}

/// Narrows a [`RecvFailure`] to the error type `$ty`, in which a deadline
/// that passed (`Empty`, `Timeout`) becomes `$late`.
macro_rules! narrow_recv {
    ($failure:expr, $ty:ident, $late:expr) => {
        match $failure {
            RecvFailure::Disconnected => $ty::Disconnected,
            RecvFailure::Closed => $ty::Closed,
            RecvFailure::TooShort { needed } => $ty::TooShort { needed },
            RecvFailure::Decode(e) => $ty::Decode(e),
            RecvFailure::Attach(why) => $ty::Attach(why),
            RecvFailure::Corrupt(m) => $ty::Corrupt(m),
            RecvFailure::Empty | RecvFailure::Timeout => $late,
        }
    };
}

impl RecvFailure {
    /// The error of a call without a deadline.
    pub(crate) fn blocking(self) -> RecvError {
        // The ring gives up waiting only once the deadline has passed.
        narrow_recv!(
            self,
            RecvError,
            unreachable!("a receive without a deadline stopped waiting")
        )
    }

    /// The error of a non-blocking call (its deadline is now: nothing now).
    pub(crate) fn non_blocking(self) -> TryRecvError {
        narrow_recv!(self, TryRecvError, TryRecvError::Empty)
    }

    /// The error of a timed call.
    pub(crate) fn timed(self) -> RecvTimeoutError {
        narrow_recv!(self, RecvTimeoutError, RecvTimeoutError::Timeout)
    }
}

impl From<RecvError> for RecvFailure {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => RecvFailure::Disconnected,
            RecvError::Closed => RecvFailure::Closed,
            RecvError::TooShort { needed } => RecvFailure::TooShort { needed },
            RecvError::Decode(e) => RecvFailure::Decode(e),
            RecvError::Attach(why) => RecvFailure::Attach(why),
            RecvError::Corrupt(m) => RecvFailure::Corrupt(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variants of each type, spelled out: a match that lists them
    /// stops compiling if a type gains the variant of another kind of call.
    fn send_kind<T>(e: &SendError<T>) -> &'static str {
        match e {
            SendError::Disconnected(_) => "disconnected",
            SendError::Closed(_) => "closed",
            SendError::Encode(..) => "encode",
            SendError::Corrupt(_) => "corrupt",
        }
    }

    fn recv_kind(e: &RecvError) -> &'static str {
        match e {
            RecvError::Disconnected => "disconnected",
            RecvError::Closed => "closed",
            RecvError::TooShort { .. } => "too short",
            RecvError::Decode(_) => "decode",
            RecvError::Attach(_) => "attach",
            RecvError::Corrupt(_) => "corrupt",
        }
    }

    #[test]
    fn each_call_gets_its_own_variants() {
        assert_eq!(send_kind(&SendFailure::Closed(1).blocking()), "closed");
        assert_eq!(SendFailure::Full(1).non_blocking(), TrySendError::Full(1));
        assert_eq!(
            SendFailure::Timeout(1).timed(),
            SendTimeoutError::Timeout(1)
        );
        assert_eq!(
            SendFailure::Disconnected(1).timed(),
            SendTimeoutError::Disconnected(1)
        );
        assert_eq!(recv_kind(&RecvFailure::Closed.blocking()), "closed");
        assert_eq!(RecvFailure::Empty.non_blocking(), TryRecvError::Empty);
        assert_eq!(RecvFailure::Timeout.timed(), RecvTimeoutError::Timeout);
    }

    #[test]
    #[should_panic(expected = "without a deadline")]
    fn a_blocking_send_never_reports_a_deadline() {
        let _ = SendFailure::Timeout(()).blocking();
    }

    #[test]
    fn blocking_errors_convert_into_the_others() {
        let e: TrySendError<u8> = SendError::Closed(3).into();
        assert_eq!(e, TrySendError::Closed(3));
        let e: SendTimeoutError<u8> = SendError::Disconnected(4).into();
        assert!(e.is_disconnected());
        assert_eq!(e.into_inner(), 4);
        let e: TryRecvError = RecvError::TooShort { needed: 9 }.into();
        assert_eq!(e, TryRecvError::TooShort { needed: 9 });
        let e: RecvTimeoutError = RecvError::Disconnected.into();
        assert!(e.is_disconnected());
    }

    #[test]
    fn messages_and_debug_without_the_value() {
        struct NoDebug;
        let e = TrySendError::Full(NoDebug);
        assert_eq!(format!("{e:?}"), "Full(..)");
        assert_eq!(e.to_string(), "sending on a full channel");
        let e = SendTimeoutError::Timeout(NoDebug);
        assert_eq!(format!("{e:?}"), "Timeout(..)");
        assert!(e.to_string().contains("timed out"));
        assert!(SendError::Closed(NoDebug).to_string().contains("closed"));
        assert!(TryRecvError::Empty.to_string().contains("empty"));
        assert!(RecvTimeoutError::Timeout.to_string().contains("timed out"));
    }
}
