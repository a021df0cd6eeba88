//! Async receive through tokio (`tokio` feature): the channel's eventfd in
//! an `AsyncFd`.
//!
//! The future registers as a poller on the ring (so writers signal the
//! eventfd), then alternates non-blocking receives with waits for
//! readability. It wakes at least every `SLICE` to look for dead writers,
//! so it needs a runtime with IO and time enabled.

use std::os::fd::OwnedFd;

use mp_os::futex::SLICE;
use mp_os::time::Deadline;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::attach::Attach;
use crate::error::{RecvError, RecvFailure};
use crate::handle_ops::{self, Call};
use crate::pipe::PipeEnd;
use crate::queue::Queue;
use crate::ring::DecodeSink;

struct Poller<'a>(&'a Attach);

impl Drop for Poller<'_> {
    fn drop(&mut self) {
        handle_ops::register(self.0, false);
    }
}

/// Receives through `try_read` (a non-blocking receive on `a`), waiting
/// for readiness between attempts: the result of a blocking receive.
async fn recv_async<T>(
    a: &Attach,
    try_read: impl FnMut() -> Result<T, RecvFailure>,
) -> Result<T, RecvError> {
    recv_async_inner(a, try_read)
        .await
        .map_err(RecvFailure::blocking)
}

async fn recv_async_inner<T>(
    a: &Attach,
    mut try_read: impl FnMut() -> Result<T, RecvFailure>,
) -> Result<T, RecvFailure> {
    let mut afd: Option<AsyncFd<OwnedFd>> = None;
    let mut poller = None;
    loop {
        match try_read() {
            Err(RecvFailure::Empty) => {}
            r => return r,
        }
        if poller.is_none() {
            handle_ops::register(a, true);
            poller = Some(Poller(a));
            continue; // re-check after registering
        }
        let fd = match &afd {
            Some(f) => f,
            None => {
                let dup = handle_ops::readiness_fd(a)
                    .try_clone_to_owned()
                    .map_err(|_| RecvFailure::Closed)?;
                afd.insert(
                    {
                        // SAFETY: `dup` is an open descriptor owned by the
                        // AsyncFd for its whole life; an OwnedFd always
                        // returns the same descriptor.
                        unsafe { AsyncFd::register_with_interest(dup, Interest::READABLE) }
                    }
                    .map_err(|_| RecvFailure::Closed)?,
                )
            }
        };
        if handle_ops::is_ready(a, false) {
            continue;
        }
        match tokio::time::timeout(SLICE, fd.readable()).await {
            Ok(Ok(mut guard)) => guard.clear_ready(),
            Ok(Err(_)) => return Err(RecvFailure::Closed),
            Err(_) => {
                // A slice without events: look for dead writers.
                handle_ops::is_ready(a, true);
            }
        }
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl PipeEnd {
    /// Receives one value without blocking the async runtime.
    ///
    /// Needs a tokio runtime with IO and time enabled.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let (a, b) = mp_channel::pipe()?;
    /// a.send(&5u8)?;
    /// assert_eq!(b.recv_async::<u8>().await?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`PipeEnd::recv`].
    pub async fn recv_async<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        let a = self.attach();
        recv_async(a, || {
            handle_ops::read(a, &mut DecodeSink::new(), Deadline::now(), Call::Try)
        })
        .await
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Takes the next value without blocking the async runtime.
    ///
    /// Needs a tokio runtime with IO and time enabled.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let q = mp_channel::Queue::<u8>::new()?;
    /// q.put(5)?;
    /// assert_eq!(q.get_async().await?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Queue::get`].
    pub async fn get_async(&self) -> Result<T, RecvError> {
        recv_async(self.attach(), || self.get_inner(Deadline::now(), Call::Try)).await
    }
}
