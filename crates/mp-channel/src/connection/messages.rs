//! [`Connection`](super::Connection): framed messages over a socket, encoded by its codec.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::marker::PhantomData;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use mp_os::wait::Waitable;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::address::Codec;
use super::error::{ConnectionError, Result};
use super::socket::{Stream, eof_or, frame_header, poll_readable};

/// One end of a connection made by a [`Listener`](super::Listener) or a
/// [`Client`](super::Client): framed messages over a socket (Python's
/// `multiprocessing.connection.Connection`).
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use mp_channel::connection::Connection;
///
/// let (a, b) = UnixStream::pair()?;
/// let (a, b) = (Connection::from(a), Connection::from(b));
/// a.send_bytes(b"raw")?;
/// assert_eq!(b.recv_bytes()?, b"raw");
/// b.send(&(1u8, "two"))?;
/// assert_eq!(a.recv::<(u8, String)>()?, (1, "two".to_string()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Connection {
    pub(super) stream: Stream,
    codec: Codec,
    /// Not `Sync`: two threads sending at once would interleave frames.
    _not_sync: PhantomData<Cell<()>>,
}

impl From<UnixStream> for Connection {
    fn from(s: UnixStream) -> Connection {
        Connection::new(Stream::Unix(s), Codec::Postcard)
    }
}

impl From<TcpStream> for Connection {
    fn from(s: TcpStream) -> Connection {
        let _ = s.set_nodelay(true);
        Connection::new(Stream::Tcp(s), Codec::Postcard)
    }
}

impl Connection {
    fn new(stream: Stream, codec: Codec) -> Connection {
        Connection {
            stream,
            codec,
            _not_sync: PhantomData,
        }
    }

    /// This connection with `codec` for [`send`](Connection::send) and
    /// [`recv`](Connection::recv).
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use mp_channel::connection::{Codec, Connection};
    /// let (a, _b) = UnixStream::pair()?;
    /// let a = Connection::from(a).with_codec(Codec::Pickle);
    /// assert_eq!(a.codec(), Codec::Pickle);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_codec(mut self, codec: Codec) -> Connection {
        self.codec = codec;
        self
    }

    /// The codec of [`send`](Connection::send) and [`recv`](Connection::recv).
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Sends `value`, encoded with this connection's [`Codec`](super::Codec), as one
    /// message (Python's `send`).
    ///
    /// ```
    /// # use std::os::unix::net::UnixStream;
    /// # use mp_channel::connection::Connection;
    /// # let (a, b) = UnixStream::pair()?;
    /// # let (a, b) = (Connection::from(a), Connection::from(b));
    /// a.send(&vec![1, 2, 3])?;
    /// assert_eq!(b.recv::<Vec<i32>>()?, [1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConnectionError::Postcard`](super::ConnectionError::Postcard) or [`ConnectionError::Pickle`](super::ConnectionError::Pickle) when the
    /// value cannot be encoded (nothing is sent), `Io` when writing fails
    /// (`EPIPE` when the peer has gone).
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let buf = match self.codec {
            Codec::Postcard => postcard::to_stdvec(value)?,
            Codec::Pickle => serde_pickle::to_vec(&value, serde_pickle::SerOptions::new())?,
        };
        self.send_bytes(&buf)
    }

    /// Receives one message and decodes it with this connection's
    /// [`Codec`](super::Codec) (Python's `recv`). Blocks until a message comes.
    ///
    /// # Errors
    ///
    /// [`ConnectionError::Eof`](super::ConnectionError::Eof) when the peer has closed the connection,
    /// `Postcard` / `Pickle` when the message does not decode as a `T` (the
    /// message is consumed), `Io` for other failures.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        let buf = self.recv_bytes()?;
        Ok(match self.codec {
            Codec::Postcard => postcard::from_bytes(&buf)?,
            Codec::Pickle => serde_pickle::from_slice(&buf, serde_pickle::DeOptions::new())?,
        })
    }

    /// Pickles a dynamic Python value and sends it, whatever this
    /// connection's codec (Python's `send` of a plain value).
    ///
    /// ```
    /// # use std::os::unix::net::UnixStream;
    /// use mp_channel::connection::{Connection, pickle::Value};
    /// # let (a, b) = UnixStream::pair()?;
    /// # let (a, b) = (Connection::from(a), Connection::from(b));
    /// a.send_py(&Value::Tuple(vec![Value::None, Value::Bytes(b"x".to_vec())]))?;
    /// assert_eq!(b.recv_py()?, Value::Tuple(vec![Value::None, Value::Bytes(b"x".to_vec())]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send`](Connection::send).
    pub fn send_py(&self, value: &serde_pickle::Value) -> Result<()> {
        let buf = serde_pickle::value_to_vec(value, serde_pickle::SerOptions::new())?;
        self.send_bytes(&buf)
    }

    /// Receives one pickled message as a dynamic Python value, whatever
    /// this connection's codec (Python's `recv`).
    ///
    /// # Errors
    ///
    /// As [`recv`](Connection::recv); [`ConnectionError::Pickle`](super::ConnectionError::Pickle) when the
    /// message is not a pickle of plain values (`None`, `bool`, `int`,
    /// `float`, `str`, `bytes`, `list`, `tuple`, `dict`, `set`).
    pub fn recv_py(&self) -> Result<serde_pickle::Value> {
        let buf = self.recv_bytes()?;
        Ok(serde_pickle::value_from_slice(
            &buf,
            serde_pickle::DeOptions::new(),
        )?)
    }

    /// Sends `buf` as one message, as it is (Python's `send_bytes`).
    ///
    /// ```
    /// # use std::os::unix::net::UnixStream;
    /// # use mp_channel::connection::Connection;
    /// # let (a, b) = UnixStream::pair()?;
    /// # let (a, b) = (Connection::from(a), Connection::from(b));
    /// a.send_bytes(&[0, 1, 2])?;
    /// assert_eq!(b.recv_bytes()?, [0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `Io` when writing fails (`EPIPE` when the peer has gone; no
    /// `SIGPIPE` is raised).
    pub fn send_bytes(&self, buf: &[u8]) -> Result<()> {
        let (header, hlen) = frame_header(buf.len());
        let mut slices = [IoSlice::new(&header[..hlen]), IoSlice::new(buf)];
        let mut rest: &mut [IoSlice<'_>] = &mut slices;
        while !rest.is_empty() {
            match rustix::net::sendmsg(
                self.stream.fd(),
                rest,
                &mut rustix::net::SendAncillaryBuffer::default(),
                rustix::net::SendFlags::NOSIGNAL,
            ) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        Ok(())
    }

    /// Reads the length header of the next message.
    fn recv_header(&self) -> Result<u64> {
        let mut h = [0u8; 4];
        self.stream.read_exact(&mut h).map_err(eof_or)?;
        let n = i32::from_be_bytes(h);
        if n >= 0 {
            return Ok(n as u64);
        }
        if n != -1 {
            self.stream.shutdown();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad message length header {n}"),
            )
            .into());
        }
        let mut h = [0u8; 8];
        self.stream.read_exact(&mut h).map_err(eof_or)?;
        Ok(u64::from_be_bytes(h))
    }

    fn recv_payload(&self, n: u64) -> Result<Vec<u8>> {
        // Grow as the data comes rather than trusting the header with a
        // huge allocation up front.
        let mut out = Vec::with_capacity(n.min(16 << 20) as usize);
        let got = self
            .stream
            .read_to_end_limited(n, &mut out)
            .map_err(eof_or)?;
        if (got as u64) < n {
            return Err(ConnectionError::Eof);
        }
        Ok(out)
    }

    /// Receives one message as bytes (Python's `recv_bytes`). Blocks until
    /// a message comes.
    ///
    /// # Errors
    ///
    /// [`ConnectionError::Eof`](super::ConnectionError::Eof) when the peer has closed the connection
    /// (also in the middle of a message), `Io` for other failures.
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        let n = self.recv_header()?;
        self.recv_payload(n)
    }

    /// Receives one message of at most `maxlength` bytes (Python's
    /// `recv_bytes(maxlength)`).
    ///
    /// ```
    /// # use std::os::unix::net::UnixStream;
    /// # use mp_channel::connection::{Connection, ConnectionError};
    /// # let (a, b) = UnixStream::pair()?;
    /// # let (a, b) = (Connection::from(a), Connection::from(b));
    /// a.send_bytes(&[0; 10])?;
    /// assert!(matches!(b.recv_bytes_max(4), Err(ConnectionError::BadMessageLength { len: 10, max: 4 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConnectionError::BadMessageLength`](super::ConnectionError::BadMessageLength) when the message is longer
    /// (the connection is then shut down, as Python closes it), else as
    /// [`recv_bytes`](Connection::recv_bytes).
    pub fn recv_bytes_max(&self, maxlength: usize) -> Result<Vec<u8>> {
        let n = self.recv_header()?;
        if n > maxlength as u64 {
            self.stream.shutdown();
            return Err(ConnectionError::BadMessageLength {
                len: n,
                max: maxlength as u64,
            });
        }
        self.recv_payload(n)
    }

    /// Receives one message into `buf` and returns its length (Python's
    /// `recv_bytes_into`).
    ///
    /// ```
    /// # use std::os::unix::net::UnixStream;
    /// # use mp_channel::connection::{Connection, ConnectionError};
    /// # let (a, b) = UnixStream::pair()?;
    /// # let (a, b) = (Connection::from(a), Connection::from(b));
    /// let mut buf = [0u8; 8];
    /// a.send_bytes(b"abc")?;
    /// assert_eq!(b.recv_bytes_into(&mut buf)?, 3);
    /// assert_eq!(&buf[..3], b"abc");
    /// a.send_bytes(b"too long for it")?;
    /// match b.recv_bytes_into(&mut buf) {
    ///     Err(ConnectionError::BufferTooShort(msg)) => assert_eq!(msg, b"too long for it"),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConnectionError::BufferTooShort`](super::ConnectionError::BufferTooShort) with the whole message when it
    /// does not fit (nothing is lost), else as
    /// [`recv_bytes`](Connection::recv_bytes).
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        let n = self.recv_header()?;
        if n > buf.len() as u64 {
            return Err(ConnectionError::BufferTooShort(self.recv_payload(n)?));
        }
        let n = n as usize;
        self.stream.read_exact(&mut buf[..n]).map_err(eof_or)?;
        Ok(n)
    }

    /// Whether a message (or end of file) can be read now: Python's
    /// `poll()` without a timeout, which returns at once.
    /// [`poll_timeout`](Connection::poll_timeout) waits.
    ///
    /// This differs from the previous API, in which `poll` took the timeout
    /// and `poll(None)` waited without limit: that is `poll_timeout(None)`
    /// now.
    ///
    /// ```
    /// # use std::os::unix::net::UnixStream;
    /// # use mp_channel::connection::Connection;
    /// # let (a, b) = UnixStream::pair()?;
    /// # let (a, b) = (Connection::from(a), Connection::from(b));
    /// assert!(!b.poll()?);
    /// a.send_bytes(b"x")?;
    /// assert!(b.poll_timeout(None)?); // a wait without limit
    /// assert!(b.poll()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `poll(2)`.
    pub fn poll(&self) -> Result<bool> {
        self.poll_timeout(Some(Duration::ZERO))
    }

    /// Whether a message (or end of file) can be read within `timeout`
    /// (Python's `poll(timeout)`); `None` waits as long as it takes, as
    /// Python's `poll(None)`.
    ///
    /// ```
    /// # use std::os::unix::net::UnixStream;
    /// # use std::time::Duration;
    /// # use mp_channel::connection::Connection;
    /// # let (a, b) = UnixStream::pair()?;
    /// # let (a, b) = (Connection::from(a), Connection::from(b));
    /// assert!(!b.poll_timeout(Some(Duration::from_millis(10)))?);
    /// a.send_bytes(b"x")?;
    /// assert!(b.poll_timeout(Some(Duration::from_secs(5)))?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `poll(2)`.
    pub fn poll_timeout(&self, timeout: Option<Duration>) -> Result<bool> {
        Ok(poll_readable(self.stream.fd(), timeout)?)
    }

    /// The socket's file descriptor (Python's `fileno()`).
    pub fn fileno(&self) -> RawFd {
        self.stream.fd().as_raw_fd()
    }

    /// Closes the connection (Python's `close()`; dropping it does the
    /// same). The peer's next receive gets [`ConnectionError::Eof`](super::ConnectionError::Eof).
    pub fn close(self) {
        drop(self);
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.fd()
    }
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.fileno()
    }
}

/// [`wait`](super::wait) on connections, as Python's `connection.wait`: ready when a
/// message (or end of file) can be read.
impl Waitable for Connection {
    fn is_ready(&self) -> bool {
        poll_readable(self.stream.fd(), Some(Duration::ZERO)).unwrap_or(true)
    }

    fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.stream.fd()
    }
}
