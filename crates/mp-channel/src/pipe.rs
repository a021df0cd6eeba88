//! `Pipe`: two connected ends, like Python's `multiprocessing.Pipe`.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use mp_os::time::Deadline;
use mp_os::wait::Waitable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::attach::Attach;
use crate::chan::{Chan, KIND_PIPE};
use crate::error::{Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError};
// `io`: what every handle does with its rings.
use crate::handle_ops::{self as io, Call};
use crate::ring::{DecodeSink, SliceSink, VecSink, WaitMode};

/// Default ring size of a pipe, per direction.
pub const DEFAULT_PIPE_CAPACITY: usize = 256 * 1024;

/// Creates a duplex pipe: two connected ends, each can send and receive.
///
/// ```
/// let (a, b) = mp_channel::pipe()?;
/// a.send(&"hello")?;
/// assert_eq!(b.recv::<String>()?, "hello");
/// b.send(&[1u8, 2, 3])?;
/// assert_eq!(a.recv::<[u8; 3]>()?, [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] when the shared segment or an eventfd cannot be created.
pub fn pipe() -> Result<(PipeEnd, PipeEnd), Error> {
    Pipe::new(true)
}

/// Constructors of pipes (`Pipe::new(duplex)`, `Pipe::builder()`).
///
/// ```
/// use mp_channel::Pipe;
/// // Simplex: the first end receives, the second sends (as in Python).
/// let (rx, tx) = Pipe::new(false)?;
/// tx.send(&1u32)?;
/// assert_eq!(rx.recv::<u32>()?, 1);
/// assert!(rx.send(&2u32).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Pipe(());

impl Pipe {
    /// A duplex (`true`) or simplex (`false`: `(receiver, sender)`) pipe.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the shared segment or an eventfd cannot be created.
    #[allow(clippy::new_ret_no_self)] // Python's `Pipe(duplex)` returns both ends
    pub fn new(duplex: bool) -> Result<(PipeEnd, PipeEnd), Error> {
        Pipe::builder().duplex(duplex).build()
    }

    /// A builder for ring size and wait mode.
    ///
    /// ```
    /// use mp_channel::{Pipe, WaitMode};
    /// let (a, b) = Pipe::builder().capacity(1 << 20).wait_mode(WaitMode::NoSpin).build()?;
    /// a.send_bytes(b"x")?;
    /// assert_eq!(b.recv_bytes()?, b"x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> PipeBuilder {
        PipeBuilder {
            duplex: true,
            capacity: DEFAULT_PIPE_CAPACITY,
            mode: WaitMode::Adaptive,
        }
    }
}

/// Configures a pipe: see [`Pipe::builder`].
#[derive(Debug, Clone)]
pub struct PipeBuilder {
    duplex: bool,
    capacity: usize,
    mode: WaitMode,
}

impl PipeBuilder {
    /// Duplex (the default) or simplex.
    pub fn duplex(mut self, duplex: bool) -> Self {
        self.duplex = duplex;
        self
    }

    /// Ring bytes per direction (rounded up to a power of two, 4 KiB to
    /// 1 GiB). Larger messages still pass: they are streamed.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// How both ends wait (each end can change it later).
    pub fn wait_mode(mut self, mode: WaitMode) -> Self {
        self.mode = mode;
        self
    }

    /// Creates the pipe.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the shared segment or an eventfd cannot be created.
    pub fn build(self) -> Result<(PipeEnd, PipeEnd), Error> {
        let n = if self.duplex { 2 } else { 1 };
        let chan = Arc::new(Chan::create(KIND_PIPE, n, self.capacity as u64, 0, false)?);
        let (first, second) = if self.duplex {
            (
                Attach::new(chan.clone(), Some(0), Some(1), self.mode),
                Attach::new(chan, Some(1), Some(0), self.mode),
            )
        } else {
            (
                Attach::new(chan.clone(), None, Some(0), self.mode),
                Attach::new(chan, Some(0), None, self.mode),
            )
        };
        Ok((
            PipeEnd {
                registration: first,
            },
            PipeEnd {
                registration: second,
            },
        ))
    }
}

/// One end of a [`pipe`]: `send`/`recv` of serde values (postcard
/// encoded) or raw bytes, each call one message.
///
/// Ends are `Send + Sync`, can be cloned (each clone counts as a holder
/// of the end, like a duplicated descriptor), and are serde values that
/// re-attach in another process (see [`mp_os::handle`]). The other side
/// sees [`RecvError::Disconnected`] once every copy of this end is closed,
/// dropped, or its process has died, and the messages are drained.
pub struct PipeEnd {
    /// This end's registration on the channel (its roles and the
    /// mapping).
    registration: Arc<Attach>,
}

impl fmt::Debug for PipeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeEnd")
            .field("readable", &self.registration.can_recv())
            .field("writable", &self.registration.can_send())
            .field("mode", &self.registration.mode())
            .finish()
    }
}

impl Clone for PipeEnd {
    fn clone(&self) -> Self {
        PipeEnd {
            registration: self.registration.duplicate(),
        }
    }
}

impl PipeEnd {
    /// Sends one value.
    ///
    /// Blocks while the ring is full. A value larger than the ring is
    /// streamed to one receiver.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when the other end has gone,
    /// [`SendError::Closed`] on a closed or receive-only end,
    /// [`SendError::Encode`] when postcard cannot encode the value.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), SendError> {
        io::write_value(&self.registration, value, Deadline::never(), Call::Block)
            .map_err(|e| e.blocking())
    }

    /// Sends one value, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`send`](PipeEnd::send), plus [`SendTimeoutError::Timeout`].
    pub fn send_timeout<T: Serialize + ?Sized>(
        &self,
        value: &T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        io::write_value(
            &self.registration,
            value,
            Deadline::after(Some(timeout)),
            Call::Timed,
        )
        .map_err(|e| e.timed())
    }

    /// Sends `bytes` as one message, without serde.
    ///
    /// ```
    /// let (a, b) = mp_channel::pipe()?;
    /// a.send_bytes(&[7; 100])?;
    /// let mut buf = [0u8; 100];
    /// assert_eq!(b.recv_bytes_into(&mut buf)?, 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send`](PipeEnd::send) (no `Encode`).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), SendError> {
        io::write_bytes(&self.registration, bytes, Deadline::never(), Call::Block)
            .map_err(|e| e.blocking())
    }

    /// Receives one value, blocking until one arrives.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] when the other end has gone and nothing
    /// is left, [`RecvError::Closed`] on a closed or send-only end,
    /// [`RecvError::Decode`] when the message is not a `T` (the message is
    /// consumed), [`RecvError::Corrupt`] for damaged framing.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        io::read(
            &self.registration,
            &mut DecodeSink::new(),
            Deadline::never(),
            Call::Block,
        )
        .map_err(|e| e.blocking())
    }

    /// Receives one value, waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, _b) = mp_channel::pipe()?;
    /// assert!(a.recv_timeout::<u8>(Duration::from_millis(10)).unwrap_err().is_timeout());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`recv`](PipeEnd::recv), plus [`RecvTimeoutError::Timeout`].
    pub fn recv_timeout<T: DeserializeOwned>(
        &self,
        timeout: Duration,
    ) -> Result<T, RecvTimeoutError> {
        io::read(
            &self.registration,
            &mut DecodeSink::new(),
            Deadline::after(Some(timeout)),
            Call::Timed,
        )
        .map_err(|e| e.timed())
    }

    /// Receives one value if one is waiting.
    ///
    /// # Errors
    ///
    /// As [`recv`](PipeEnd::recv), plus [`TryRecvError::Empty`].
    pub fn try_recv<T: DeserializeOwned>(&self) -> Result<T, TryRecvError> {
        io::read(
            &self.registration,
            &mut DecodeSink::new(),
            Deadline::now(),
            Call::Try,
        )
        .map_err(|e| e.non_blocking())
    }

    /// Receives one message as bytes.
    ///
    /// # Errors
    ///
    /// As [`recv`](PipeEnd::recv) (no `Decode`).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        io::read(
            &self.registration,
            &mut VecSink(Vec::new()),
            Deadline::never(),
            Call::Block,
        )
        .map_err(|e| e.blocking())
    }

    /// Receives one message into `buf`; returns its length.
    ///
    /// # Errors
    ///
    /// [`RecvError::TooShort`] when `buf` is shorter than the message: the
    /// message stays for the next call. Otherwise as [`recv`](PipeEnd::recv).
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize, RecvError> {
        io::read(
            &self.registration,
            &mut SliceSink(buf),
            Deadline::never(),
            Call::Block,
        )
        .map_err(|e| e.blocking())
    }

    /// [`recv_bytes_into`](PipeEnd::recv_bytes_into) waiting at most
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_bytes_into`](PipeEnd::recv_bytes_into), plus
    /// [`RecvTimeoutError::Timeout`].
    pub fn recv_bytes_into_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        io::read(
            &self.registration,
            &mut SliceSink(buf),
            Deadline::after(Some(timeout)),
            Call::Timed,
        )
        .map_err(|e| e.timed())
    }

    /// Whether a receive would not block now (a message is waiting, or the
    /// other end has gone): Python's `poll()` without a timeout, which
    /// returns at once. [`poll_timeout`](PipeEnd::poll_timeout) waits.
    ///
    /// This differs from the previous API, in which `poll` took the timeout
    /// and `poll(None)` waited without limit: that is `poll_timeout(None)`
    /// now.
    ///
    /// ```
    /// let (a, b) = mp_channel::pipe()?;
    /// assert!(!b.poll());
    /// a.send(&1u8)?;
    /// assert!(b.poll());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll(&self) -> bool {
        self.poll_timeout(Some(Duration::ZERO))
    }

    /// Waits until a receive would not block (a message is waiting, or the
    /// other end has gone), at most `timeout`; `None` waits as long as it
    /// takes. Returns whether a receive would not block: Python's
    /// `poll(timeout)`, and `poll(None)` for `None`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, b) = mp_channel::pipe()?;
    /// assert!(!b.poll_timeout(Some(Duration::from_millis(10))));
    /// a.send(&1u8)?;
    /// assert!(b.poll_timeout(None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_timeout(&self, timeout: Option<Duration>) -> bool {
        let Some(ring) = self
            .registration
            .recv_ring()
            .filter(|_| self.registration.can_recv())
        else {
            return true;
        };
        let w = self.registration.waiter(Deadline::after(timeout));
        ring.wait_readable(&w)
    }

    /// Closes this end (this copy): later calls on it fail with `Closed`,
    /// and the other side sees `Disconnected` once every copy is gone.
    pub fn close(&self) {
        // Reader first: a peer that has seen this end stop writing
        // (`Disconnected` from `recv`) then finds it gone as a reader too.
        self.registration.close_recv();
        self.registration.close_send();
    }

    /// Whether this end has been closed.
    pub fn is_closed(&self) -> bool {
        self.registration.closed()
    }

    /// Whether this end can receive (open and not the send end of a simplex
    /// pipe).
    pub fn readable(&self) -> bool {
        self.registration.can_recv()
    }

    /// Whether this end can send.
    pub fn writable(&self) -> bool {
        self.registration.can_send()
    }

    /// How blocking calls on this end wait.
    pub fn wait_mode(&self) -> WaitMode {
        self.registration.mode()
    }

    /// Changes how blocking calls on this end wait.
    pub fn set_wait_mode(&self, mode: WaitMode) {
        self.registration.set_mode(mode);
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn attach(&self) -> &Attach {
        &self.registration
    }
}

impl Waitable for PipeEnd {
    fn is_ready(&self) -> bool {
        io::is_ready(&self.registration, false)
    }
    fn readiness_fd(&self) -> BorrowedFd<'_> {
        io::readiness_fd(&self.registration)
    }
    fn register(&self) {
        io::register(&self.registration, true);
    }
    fn unregister(&self) {
        io::register(&self.registration, false);
    }
    fn check_stalled(&self) -> bool {
        io::is_ready(&self.registration, true)
    }
}

impl Serialize for PipeEnd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        io::serialize_handle(&self.registration, s)
    }
}

impl<'de> Deserialize<'de> for PipeEnd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PipeEnd, D::Error> {
        io::deserialize_handle(d, KIND_PIPE).map(|registration| PipeEnd { registration })
    }
}
