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
    /// Creating a channel, or `task_done` called too often.
    #[error(transparent)]
    Channel(#[from] mp_channel::Error),
    /// A blocking send on a pipe or queue (the unsent value is dropped;
    /// match on `mp_channel::SendError<T>` directly to get it back).
    #[error(transparent)]
    Send(mp_channel::SendError),
    /// A non-blocking send (`put_nowait`), the value dropped as for `Send`.
    #[error(transparent)]
    TrySend(mp_channel::TrySendError),
    /// A timed send (`put_timeout`, `send_timeout`), the value dropped as
    /// for `Send`.
    #[error(transparent)]
    SendTimeout(mp_channel::SendTimeoutError),
    /// A blocking receive from a pipe or queue.
    #[error(transparent)]
    Recv(#[from] mp_channel::RecvError),
    /// A non-blocking receive (`get_nowait`, `try_recv`).
    #[error(transparent)]
    TryRecv(#[from] mp_channel::TryRecvError),
    /// A timed receive (`get_timeout`, `recv_timeout`).
    #[error(transparent)]
    RecvTimeout(#[from] mp_channel::RecvTimeoutError),
    /// `connection`: listeners, clients and their connections.
    #[error(transparent)]
    Connection(#[from] mp_channel::connection::ConnectionError),
    /// Pools and their tasks.
    #[error(transparent)]
    Pool(#[from] mp_pool::Error),
    /// Executor futures and their calls.
    #[error(transparent)]
    Future(#[from] mp_pool::FutureError),
    /// Managers and their proxies.
    #[error(transparent)]
    Manager(#[from] mp_manager::Error),
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

impl<T> From<mp_channel::SendError<T>> for Error {
    fn from(e: mp_channel::SendError<T>) -> Error {
        Error::Send(e.without_value())
    }
}

impl<T> From<mp_channel::TrySendError<T>> for Error {
    fn from(e: mp_channel::TrySendError<T>) -> Error {
        Error::TrySend(e.without_value())
    }
}

impl<T> From<mp_channel::SendTimeoutError<T>> for Error {
    fn from(e: mp_channel::SendTimeoutError<T>) -> Error {
        Error::SendTimeout(e.without_value())
    }
}
