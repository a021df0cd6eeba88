use std::io;

/// The umbrella error: any error of the `multiprocessing` crates, so that
/// `?` works across them in one function.
///
/// ```
/// use multiprocessing as mp;
///
/// fn run() -> Result<i32, mp::Error> {
///     let v = mp::Value::new(1i32)?;          // mp_shm::Error
///     let lock = mp::Lock::new()?;            // mp_sync::Error
///     let _g = lock.acquire()?;               // mp_sync::OwnerDied<_>
///     Ok(v.get())
/// }
/// assert_eq!(run().unwrap(), 1);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Starting, joining or signalling a process.
    #[error(transparent)]
    Process(#[from] mp_proc::Error),
    /// Shared values, arrays and named shared memory.
    #[error(transparent)]
    Shm(#[from] mp_shm::Error),
    /// Locks, semaphores, conditions, events and barriers.
    #[error(transparent)]
    Sync(#[from] mp_sync::Error),
    /// An operating-system error outside the crates above.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl<G> From<mp_sync::OwnerDied<G>> for Error {
    fn from(e: mp_sync::OwnerDied<G>) -> Error {
        Error::Sync(e.into())
    }
}

impl<G> From<mp_sync::TryAcquireError<G>> for Error {
    fn from(e: mp_sync::TryAcquireError<G>) -> Error {
        Error::Sync(e.into())
    }
}
