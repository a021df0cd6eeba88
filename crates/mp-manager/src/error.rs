//! The crate's error type and the errors a server sends back.

use std::io;

use serde::{Deserialize, Serialize};

/// Everything that can go wrong talking to a manager.
///
/// ```
/// use mp_manager::{Error, RemoteError};
/// let e = Error::Remote(RemoteError::NoSuchAttribute("value".into()));
/// assert_eq!(e.to_string(), "'Namespace' object has no attribute 'value'");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed (socket, bind, connect, ...).
    #[error("{op} failed")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The authentication handshake failed: a wrong key on either side, or
    /// a peer that is not a manager.
    #[error("manager authentication failed: {0}")]
    Auth(&'static str),
    /// The server carried out the request and answered with an error.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A value could not be encoded, or a reply could not be decoded (for
    /// instance a proxy whose type parameters do not match the object's
    /// contents).
    #[error("cannot {what}: {message}")]
    Codec {
        /// `"encode a value"`, `"decode a reply"`, ...
        what: &'static str,
        /// The codec's message.
        message: String,
    },
    /// The connection to the server closed (the server exited or was
    /// killed, or the network went away).
    #[error("the manager server has gone away")]
    ServerGone,
    /// The server answered with something that is not a valid reply.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Starting or stopping the server process failed.
    #[error("manager server process: {0}")]
    Process(#[from] mp_proc::Error),
    /// A proxy of one kind was built over an object of another kind (for
    /// instance `lookup::<ListProxy<_>>` of a published dict).
    #[error("the object is a {found}, not a {expected}")]
    WrongKind {
        /// The kind the proxy wanted.
        expected: &'static str,
        /// The kind the object has.
        found: String,
    },
    /// A block or list of a `SharedMemoryManager` could not be attached.
    #[error(transparent)]
    Shm(#[from] mp_shm::Error),
    /// The manager was shut down.
    #[error("the manager was shut down")]
    Shutdown,
    /// An empty authentication key for a TCP manager, on either side:
    /// anyone who can reach the port could connect.
    #[error("an empty authentication key is refused for a manager on TCP")]
    EmptyAuthkey,
}

impl Error {
    pub(crate) fn io(op: &'static str, source: io::Error) -> Error {
        Error::Io { op, source }
    }

    /// Whether this is the server's "timed out" answer (a blocking call whose
    /// timeout passed).
    ///
    /// ```
    /// use mp_manager::{Error, RemoteError};
    /// assert!(Error::Remote(RemoteError::Timeout).is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Remote(RemoteError::Timeout))
    }
}

/// An error the server reports for one request; the connection stays
/// usable. The names follow Python's exceptions where one exists.
///
/// ```
/// use mp_manager::RemoteError;
/// assert_eq!(RemoteError::MissingKey.to_string(), "KeyError: no such key");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// `KeyError`: the dict has no such key.
    #[error("KeyError: no such key")]
    MissingKey,
    /// `AttributeError`: the Namespace has no attribute of that name.
    #[error("'Namespace' object has no attribute '{0}'")]
    NoSuchAttribute(String),
    /// `IndexError`: a list index out of range, or `pop` from an empty list.
    #[error("IndexError: list index out of range")]
    IndexOutOfRange,
    /// `ValueError`: `remove` / `index` of a value that is not in the list.
    #[error("ValueError: value is not in the list")]
    NotInList,
    /// `queue.Empty`: a non-blocking or timed `get` found no item.
    #[error("queue.Empty: the queue is empty")]
    Empty,
    /// `queue.Full`: a non-blocking or timed `put` found no room.
    #[error("queue.Full: the queue is full")]
    Full,
    /// A blocking call's timeout passed.
    #[error("the operation timed out")]
    Timeout,
    /// Releasing a lock that is not held (or, for an `RLock` or
    /// `Condition`, held by someone else).
    #[error("RuntimeError: cannot release un-acquired lock")]
    NotOwner,
    /// `threading.BrokenBarrierError`.
    #[error("BrokenBarrierError: the barrier is broken")]
    BrokenBarrier,
    /// `JoinableQueue.task_done` called more times than there were items.
    #[error("ValueError: task_done() called too many times")]
    TaskDoneTooOften,
    /// A request for an object id the server does not have.
    #[error("no object with id {0} on this manager")]
    NoSuchObject(u64),
    /// A request that does not apply to the object's kind (for instance
    /// `append` sent to a dict).
    #[error("the operation does not apply to a {0}")]
    WrongKind(String),
    /// `create` of a type name that was not registered with the server.
    #[error("no type named '{0}' is registered with this manager")]
    UnknownType(String),
    /// `lookup` of a name nothing was published under.
    #[error("nothing is published under the name '{0}'")]
    NotPublished(String),
    /// The request could not be decoded (malformed or from another
    /// version).
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// A registered type's method (or its creation) failed: the error it
    /// returned, of the kind it gave (a `KeyError`, `TypeError`, ...).
    #[error(transparent)]
    Method(MethodError),
    /// `ValueError`: a `BoundedSemaphore` released more times than it was
    /// acquired (above its initial value).
    #[error("ValueError: Semaphore released too many times")]
    ReleasedTooOften,
    /// `JoinableQueue.join` found tasks that will never be done: items got
    /// by clients whose connections all closed (the process exited or was
    /// killed, or its host vanished) before they called `task_done`. They
    /// were written off, so a later `join` waits only for the others.
    #[error("{count} task(s) were taken by a client that went away before calling task_done()")]
    TasksLost {
        /// How many tasks were written off while this `join` waited.
        count: u64,
    },
}

/// The kind of a registered method's error: Python's exception classes,
/// which a caller can match on as a Python caller catches them.
///
/// ```
/// use mp_manager::ExceptionKind;
/// assert_eq!(ExceptionKind::Key.python_name(), "KeyError");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExceptionKind {
    /// `KeyError`: no such key.
    Key,
    /// `IndexError`: an index out of range.
    Index,
    /// `ValueError`: an argument of the right type but a bad value.
    Value,
    /// `TypeError`: arguments of the wrong type (for instance arguments
    /// that do not decode as the method's).
    Type,
    /// `AttributeError`: no such method, or one not exposed.
    Attribute,
    /// `NotImplementedError`.
    NotImplemented,
    /// `RuntimeError`.
    Runtime,
    /// `OSError`: an operating-system call failed (a
    /// `SharedMemoryManager` that could not create a block).
    Os,
    /// Any other error (Python's `Exception`); a method that panicked.
    Other,
}

impl ExceptionKind {
    /// The Python exception class's name.
    pub fn python_name(self) -> &'static str {
        match self {
            ExceptionKind::Key => "KeyError",
            ExceptionKind::Index => "IndexError",
            ExceptionKind::Value => "ValueError",
            ExceptionKind::Type => "TypeError",
            ExceptionKind::Attribute => "AttributeError",
            ExceptionKind::NotImplemented => "NotImplementedError",
            ExceptionKind::Runtime => "RuntimeError",
            ExceptionKind::Os => "OSError",
            ExceptionKind::Other => "Exception",
        }
    }
}

/// What a registered type's method returns on failure: a kind and a
/// message. The caller gets it back as
/// [`RemoteError::Method`], kind and message intact.
///
/// ```
/// use mp_manager::{ExceptionKind, MethodError};
/// let e = MethodError::new(ExceptionKind::Key, "'ann'");
/// assert_eq!(e.to_string(), "KeyError: 'ann'");
/// // A bare message is an `Exception`.
/// let e: MethodError = "out of stock".into();
/// assert_eq!(e.kind, ExceptionKind::Other);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", kind.python_name())]
#[non_exhaustive]
pub struct MethodError {
    /// Which exception it is.
    pub kind: ExceptionKind,
    /// The message.
    pub message: String,
}

impl MethodError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ExceptionKind, message: impl Into<String>) -> MethodError {
        MethodError {
            kind,
            message: message.into(),
        }
    }
}

impl From<String> for MethodError {
    fn from(message: String) -> MethodError {
        MethodError::new(ExceptionKind::Other, message)
    }
}

impl From<&str> for MethodError {
    fn from(message: &str) -> MethodError {
        MethodError::new(ExceptionKind::Other, message)
    }
}
