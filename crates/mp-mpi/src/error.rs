//! What MPI-specific failures look like.

/// An MPI-specific failure. Pool calls return [`mp_pool::Error`] (the
/// error type every pool shares); the failures that only MPI has travel
/// in it as [`mp_pool::Error::Backend`] holding one of these, which
/// [`MpiError::of`] finds again.
///
/// ```
/// use mp_mpi::MpiError;
///
/// let e: mp_pool::Error = MpiError::WorkerLost {
///     rank: 2,
///     pid: 4242,
///     host: "node7".into(),
///     why: "the process exited".into(),
/// }
/// .into();
/// assert!(matches!(MpiError::of(&e), Some(MpiError::WorkerLost { rank: 2, .. })));
/// assert!(e.to_string().contains("worker rank 2 (process 4242 on node7) is lost"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MpiError {
    /// An MPI call returned an error code (the communicators use
    /// `MPI_ERRORS_RETURN`, so MPI never aborts the program).
    #[error("{call} failed: {message} (MPI error {code})")]
    Call {
        /// The MPI function.
        call: &'static str,
        /// Its error code.
        code: i32,
        /// `MPI_Error_string` of the code.
        message: String,
    },
    /// A worker rank died or stopped answering: the tasks it held fail
    /// with this error.
    #[error("worker rank {rank} (process {pid} on {host}) is lost: {why}")]
    WorkerLost {
        /// Its rank (in `MPI_COMM_WORLD`, or in the spawned group).
        rank: i32,
        /// Its process id.
        pid: u32,
        /// Its host (`MPI_Get_processor_name`).
        host: String,
        /// How it was noticed.
        why: String,
    },
    /// Every worker of the pool is lost: nothing can run.
    #[error("no worker rank is left in the pool")]
    NoWorkers,
    /// A pool needs MPI started in a way this process was not (see
    /// [`init`](crate::init) and [`Pool::spawn`](crate::Pool::spawn)).
    #[error("{0}")]
    Setup(String),
    /// A message between the root and a worker did not make sense.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl MpiError {
    /// The `MpiError` inside a pool error, if it holds one.
    pub fn of(e: &mp_pool::Error) -> Option<&MpiError> {
        match e {
            mp_pool::Error::Backend(b) => b.downcast_ref::<MpiError>(),
            _ => None,
        }
    }
}

impl From<MpiError> for mp_pool::Error {
    fn from(e: MpiError) -> mp_pool::Error {
        mp_pool::Error::Backend(Box::new(e))
    }
}

/// A copy of a pool error for each chunk it fails (`mp_pool::Error` is not
/// `Clone`): the variants a pool call reports, an MPI error as itself, any
/// other as its message.
pub(crate) fn dup_error(e: &mp_pool::Error) -> mp_pool::Error {
    match e {
        mp_pool::Error::Closed => mp_pool::Error::Closed,
        mp_pool::Error::Terminated => mp_pool::Error::Terminated,
        mp_pool::Error::Initializer { message } => mp_pool::Error::Initializer {
            message: message.clone(),
        },
        mp_pool::Error::TaskPanicked { message } => mp_pool::Error::TaskPanicked {
            message: message.clone(),
        },
        mp_pool::Error::Call(c) => mp_pool::Error::Call(c.clone()),
        mp_pool::Error::Backend(b) => match b.downcast_ref::<MpiError>() {
            Some(m) => m.clone().into(),
            None => mp_pool::Error::Backend(b.to_string().into()),
        },
        other => mp_pool::Error::Backend(other.to_string().into()),
    }
}
