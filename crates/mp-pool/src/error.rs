//! The pool's error type.

use std::time::Duration;

use mp_proc::CallError;

/// Why a pool call or one of its tasks failed.
///
/// Task failures (`TaskPanicked`, `WorkerDied`, `TaskTimeout`, `Call`,
/// `Terminated`, `Input`) fail the task (or, for [`Pool::map`](crate::Pool::map),
/// the whole map, as Python raises); the pool itself goes on.
///
/// ```
/// let e = mp_pool::Error::WorkerDied { pid: 42, exitcode: -9 };
/// assert_eq!(e.to_string(), "worker process 42 died: killed by signal 9 (SIGKILL)");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting or argument is out of range (`Pool::new(0)`, chunksize 0, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The pool was closed or terminated before this call.
    #[error("the pool is not running (closed or terminated)")]
    Closed,
    /// `join` before `close` or `terminate`.
    #[error("the pool is still running: call close() or terminate() before join()")]
    StillRunning,
    /// The task's function panicked; the panic message.
    #[error("the task panicked: {message}")]
    TaskPanicked {
        /// The panic message.
        message: String,
    },
    /// The worker process running the task died (killed by a signal, aborted,
    /// exited). `exitcode` follows Python: the exit code, or minus the signal
    /// number.
    #[error("worker process {pid} died: {}", describe_exit(*.exitcode))]
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// The exit code, or minus the signal number.
        exitcode: i32,
    },
    /// The task ran longer than the pool's task timeout; its worker was
    /// killed and replaced.
    #[error("the task ran longer than {timeout:?} (worker process {pid} was killed)")]
    TaskTimeout {
        /// The pool's per-task timeout.
        timeout: Duration,
        /// The killed worker's process id.
        pid: u32,
    },
    /// The pool was terminated (or dropped) before the task finished.
    #[error("the pool was terminated before the task finished")]
    Terminated,
    /// The worker could not run the function: undecodable arguments, an
    /// unserializable result, or a function outside this executable.
    #[error("the task could not run: {0}")]
    Call(CallError),
    /// The worker's initializer failed; the pool is broken (no more workers
    /// are started) and every task fails with this error.
    #[error("the worker initializer failed: {message}")]
    Initializer {
        /// What went wrong (the panic message, ...).
        message: String,
    },
    /// The input iterator yielded an error (`try_map`, `try_imap`).
    #[error("the input iterator failed: {0}")]
    Input(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A result could not be decoded in this process.
    #[error("cannot decode a task's result: {0}")]
    Decode(String),
    /// `get_timeout` / `wait` deadline passed; the result is still pending.
    #[error("timed out waiting for the result")]
    Timeout,
    /// `successful()` before the result is ready (Python's ValueError).
    #[error("the result is not ready")]
    NotReady,
    /// `get` after the value was already taken by an earlier `get`.
    #[error("the result was already taken by an earlier get()")]
    ResultTaken,
    /// Starting a worker process failed.
    #[error("cannot start a worker process: {0}")]
    Process(#[from] mp_proc::Error),
    /// Creating a channel to the workers failed.
    #[error("channel error: {0}")]
    Channel(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A pool backend's own failure (a [`TaskPool`](crate::TaskPool)
    /// implemented by another crate: its transport, its runtime).
    #[error("pool backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub(crate) fn describe_exit(code: i32) -> String {
    if code < 0 {
        format!(
            "killed by signal {} ({})",
            -code,
            mp_proc::signal_name(-code)
        )
    } else {
        format!("exited with code {code}")
    }
}

impl Error {
    /// A copy of a task failure, for each item of a failed chunk (errors
    /// that own a source are copied as their message).
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
            Error::Closed => Error::Closed,
            Error::StillRunning => Error::StillRunning,
            Error::TaskPanicked { message } => Error::TaskPanicked {
                message: message.clone(),
            },
            Error::WorkerDied { pid, exitcode } => Error::WorkerDied {
                pid: *pid,
                exitcode: *exitcode,
            },
            Error::TaskTimeout { timeout, pid } => Error::TaskTimeout {
                timeout: *timeout,
                pid: *pid,
            },
            Error::Terminated => Error::Terminated,
            Error::Call(c) => Error::Call(c.clone()),
            Error::Initializer { message } => Error::Initializer {
                message: message.clone(),
            },
            Error::Decode(s) => Error::Decode(s.clone()),
            Error::Timeout => Error::Timeout,
            Error::NotReady => Error::NotReady,
            Error::ResultTaken => Error::ResultTaken,
            Error::Input(e) => Error::Input(e.to_string().into()),
            Error::Process(e) => Error::Channel(e.to_string().into()),
            Error::Channel(e) => Error::Channel(e.to_string().into()),
            Error::Backend(e) => Error::Backend(e.to_string().into()),
        }
    }

    pub(crate) fn channel(e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Channel(Box::new(e))
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Error {
        match e {
            CallError::Panicked(message) => Error::TaskPanicked { message },
            other => Error::Call(other),
        }
    }
}
