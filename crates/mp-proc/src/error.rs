use std::io;

/// Everything that can go wrong when starting, joining or signalling a
/// process.
///
/// ```
/// use mp_proc::Error;
/// let e = Error::Exited { code: 3 };
/// assert_eq!(e.to_string(), "the child process exited with code 3");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `join`, `terminate`, ... on a process that was never started.
    #[error("the process has not been started")]
    NotStarted,
    /// `start` on a process that was already started.
    #[error("a process can only be started once")]
    AlreadyStarted,
    /// An operation on a process after `close`.
    #[error("the process object is closed")]
    Closed,
    /// `close` on a process that is still running.
    #[error("cannot close a process that is still running; join or terminate it first")]
    StillRunning,
    /// `join` after the return value was already handed out by an earlier
    /// `join`.
    #[error("the process was already joined and its return value taken")]
    AlreadyJoined,
    /// The target panicked in the child; the panic message is kept.
    #[error("the child process panicked: {message}")]
    Panicked {
        /// The panic payload as text.
        message: String,
    },
    /// The child exited with a non-zero code before returning a value
    /// (for instance through `std::process::exit`).
    #[error("the child process exited with code {code}")]
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The child was killed by a signal.
    #[error("the child process was killed by signal {signal} ({})", signal_name(*signal))]
    Killed {
        /// The signal number (positive; `exitcode()` reports it negated, as
        /// Python does).
        signal: i32,
    },
    /// The arguments (or the return value) could not be serialized, for
    /// instance a handle that cannot travel.
    #[error("cannot serialize the {what}: {message}")]
    Serialize {
        /// `"arguments"` or `"return value"`.
        what: &'static str,
        /// The serializer's message.
        message: String,
    },
    /// The child could not decode its arguments or the parent the return
    /// value (a corrupt message or mismatched types).
    #[error("cannot deserialize the {what}: {message}")]
    Deserialize {
        /// `"arguments"` or `"return value"`.
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The target function is not in this executable's code (for instance
    /// a function from a library loaded at run time), so another process
    /// cannot find it.
    #[error("the target function is outside this executable's code and cannot be found by a child")]
    TargetOutsideBinary,
    /// The child entry hook never ran in this program (see
    /// [`init`](crate::init)).
    #[error(
        "the multiprocessing child entry hook did not run in this program: call mp_proc::init() as the first line of main"
    )]
    NotInitialized,
    /// A child of a start method that re-runs the program tried to start a
    /// process before its entry hook ran: refused, to prevent a fork bomb.
    #[error(
        "refusing to start a process from a child whose entry hook did not run (this would re-run main recursively); call mp_proc::init() as the first line of main"
    )]
    RecursiveStart,
    /// The fork start method was chosen without the unsafe opt-in.
    #[error(
        "the fork start method must be enabled with `unsafe {{ mp_proc::enable_fork() }}` first"
    )]
    ForkNotEnabled,
    /// A process made from a capturing closure can only use fork.
    #[error("a process built from a closure can only be started with the fork method")]
    ClosureNeedsFork,
    /// `set_start_method` was called again with a different method.
    #[error("the start method was already set to {0}")]
    StartMethodAlreadySet(crate::start_method::StartMethod),
    /// The fork server could not be started or answered with an error.
    #[error("fork server: {0}")]
    Forkserver(String),
    /// An operating-system call failed.
    #[error("{op} failed")]
    Os {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn os(op: &'static str, source: impl Into<io::Error>) -> Error {
        Error::Os {
            op,
            source: source.into(),
        }
    }
}

/// The conventional name of a signal number (`SIGTERM` for 15).
///
/// ```
/// assert_eq!(mp_proc::signal_name(9), "SIGKILL");
/// ```
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal",
    }
}
