//! Python's `multiprocessing.connection`, wire-compatible with CPython:
//! [`Listener`], [`Client`], [`Connection`] and [`wait`] over Unix sockets
//! (a path or a Linux abstract name) and TCP.
//!
//! A Rust process and a CPython process can talk to each other through
//! these: the framing, the authentication handshake and (with
//! [`Codec::Pickle`]) the encoding of values are CPython's.
//!
//! ```
//! use mp_channel::connection::{Client, Listener};
//!
//! let dir = std::env::temp_dir().join(format!("mp-conn-doc-{}", std::process::id()));
//! let listener = Listener::bind(dir.as_path(), Some(b"secret"))?;
//! let address = listener.address().clone();
//! let t = std::thread::spawn(move || -> Result<String, mp_channel::connection::ConnectionError> {
//!     let conn = Client::new(address).authkey(b"secret").connect()?;
//!     conn.send(&"hello")?;
//!     conn.recv::<String>()
//! });
//! let conn = listener.accept()?;
//! let got: String = conn.recv()?;
//! conn.send(&format!("{got}, world"))?;
//! assert_eq!(t.join().unwrap()?, "hello, world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The wire
//!
//! * **Framing** (both codecs, and `send_bytes`/`recv_bytes`): a message is
//!   a 4-byte big-endian signed length, then the bytes. A message longer
//!   than `i32::MAX` bytes gets the length `-1` and then its length as an
//!   8-byte big-endian unsigned integer; both forms are read.
//! * **Authentication** (when an authkey is given), CPython's
//!   `deliver_challenge` / `answer_challenge`: the listener sends
//!   `#CHALLENGE#` and a random message, the client answers with an HMAC of
//!   it keyed with the authkey, the listener replies `#WELCOME#` or
//!   `#FAILURE#`; then the same with the roles swapped. Challenges sent from
//!   here are CPython 3.12's: `{sha256}` and 40 random bytes, answered with
//!   `{sha256}` and the HMAC-SHA256. A 20-byte challenge without a prefix
//!   (CPython 3.11 and older) is answered with the bare HMAC-MD5, and a bare
//!   16-byte HMAC-MD5 answer to our challenge (from CPython 3.11 and older)
//!   is accepted, as CPython 3.12 does. The digests known here are `md5`,
//!   `sha256` and `sha384`; a peer that asks for `sha3_256` or `sha3_384`
//!   gets an authentication error.
//! * **Values**: [`Codec::Postcard`] (the default, between Rust peers) or
//!   [`Codec::Pickle`] for a CPython peer, whose `Connection.send` and
//!   `recv` pickle. Pickles are written with protocol 3 (which every
//!   Python 3 reads) and read in any protocol 0 to 5. `None`, `bool`,
//!   `int`, `float`, `str`, `bytes`, `list`, `tuple` and `dict` map to
//!   [`pickle::Value`], sent with [`Connection::send_py`] and received with
//!   [`Connection::recv_py`] (on any connection); a serde type works too (a struct is a `dict` with
//!   `str` keys; `Vec<u8>` is a list of ints unless wrapped for bytes).
//!
//! # Differences from Python
//!
//! * The authkey is given explicitly (`None`: no authentication); there is
//!   no process-wide default key.
//! * The handshake has a deadline ([`ListenerBuilder::auth_timeout`],
//!   [`Client::auth_timeout`], 30 s by default): a peer that connects and
//!   never answers makes `accept` fail instead of hanging it.
//! * [`Connection::close`] consumes the connection (using a closed one
//!   cannot compile); dropping it closes it too. A `Connection` is `Send`
//!   but not `Sync`: one thread at a time, as in Python.
//! * After [`ConnectionError::BadMessageLength`] the connection is shut
//!   down (Python closes it).

use std::cell::Cell;
use std::fmt;
use std::io::{self, IoSlice, Read};
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use mp_os::wait::Waitable;
use rustix::event::{PollFd, PollFlags};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use mp_os::wait::wait;
/// The `serde-pickle` crate: [`pickle::Value`] holds any plain Python value.
pub use serde_pickle as pickle;

/// How long the handshake may take by default.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a [`Listener`] listens and a [`Client`] connects.
///
/// Parsed from a string as Python infers the family: a leading NUL byte is
/// a Linux abstract socket name, `host:port` is TCP, anything else a Unix
/// socket path.
///
/// ```
/// use mp_channel::connection::Address;
///
/// assert_eq!(Address::from("127.0.0.1:6000"), Address::Tcp("127.0.0.1:6000".parse()?));
/// assert_eq!(Address::from("/tmp/sock"), Address::Unix("/tmp/sock".into()));
/// assert_eq!(Address::from("\0name"), Address::Abstract(b"name".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A Unix socket at a path (`AF_UNIX`); the listener removes the file
    /// when it is dropped.
    Unix(PathBuf),
    /// A Linux abstract Unix socket name (Python's `"\0name"`), without the
    /// leading NUL.
    Abstract(Vec<u8>),
    /// A TCP address (`AF_INET`, `AF_INET6`).
    Tcp(SocketAddr),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "{}", p.display()),
            Address::Abstract(n) => write!(f, "\\0{}", String::from_utf8_lossy(n)),
            Address::Tcp(a) => write!(f, "{a}"),
        }
    }
}

impl FromStr for Address {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Address, Self::Err> {
        Ok(Address::from(s))
    }
}

impl From<&str> for Address {
    fn from(s: &str) -> Address {
        if let Some(name) = s.strip_prefix('\0') {
            return Address::Abstract(name.as_bytes().to_vec());
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Address::Tcp(a);
        }
        if s.contains(':')
            && !s.contains('/')
            && let Some(a) = s.to_socket_addrs().ok().and_then(|mut it| it.next())
        {
            return Address::Tcp(a);
        }
        Address::Unix(PathBuf::from(s))
    }
}

impl From<String> for Address {
    fn from(s: String) -> Address {
        Address::from(s.as_str())
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Tcp(a)
    }
}

impl From<&Path> for Address {
    fn from(p: &Path) -> Address {
        Address::Unix(p.to_path_buf())
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Address {
        Address::Unix(p)
    }
}

/// How [`Connection::send`] and [`Connection::recv`] encode values.
///
/// ```
/// use mp_channel::connection::Codec;
/// assert_eq!(Codec::default(), Codec::Postcard);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// postcard, as every other channel of this crate: for Rust peers.
    #[default]
    Postcard,
    /// pickle, as CPython's `Connection.send` / `recv`: for Python peers.
    Pickle,
}

/// An error of a [`Connection`], [`Listener`] or [`Client`].
///
/// ```
/// use mp_channel::connection::ConnectionError;
/// let e = ConnectionError::Eof;
/// assert!(e.to_string().contains("closed"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// A system call failed (connecting, binding, reading, writing).
    #[error("connection I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection (Python's `EOFError`).
    #[error("the peer closed the connection")]
    Eof,
    /// The handshake failed: wrong key, a protocol error, no answer in time
    /// (Python's `AuthenticationError`).
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// A message was longer than the receiver accepts; the connection has
    /// been shut down.
    #[error("bad message length: {len} bytes, at most {max} accepted")]
    BadMessageLength {
        /// The announced length.
        len: u64,
        /// The most the call accepted.
        max: u64,
    },
    /// [`Connection::recv_bytes_into`] got a message longer than its
    /// buffer; the whole message is here (Python's `BufferTooShort`).
    #[error("the buffer is too short for a message of {} bytes", .0.len())]
    BufferTooShort(Vec<u8>),
    /// A value could not be encoded or decoded with postcard.
    #[error("postcard: {0}")]
    Postcard(#[from] postcard::Error),
    /// A value could not be encoded or decoded with pickle.
    #[error("pickle: {0}")]
    Pickle(#[from] serde_pickle::Error),
}

type Result<T, E = ConnectionError> = std::result::Result<T, E>;

#[derive(Debug)]
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => (&*s).read_exact(buf),
            Stream::Tcp(s) => (&*s).read_exact(buf),
        }
    }

    fn read_to_end_limited(&self, n: u64, out: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.take(n).read_to_end(out),
            Stream::Tcp(s) => s.take(n).read_to_end(out),
        }
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Tcp(s) => s.set_write_timeout(t),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

/// The length header of a message of `n` bytes: 4 bytes, or 12 for a
/// message over `i32::MAX` bytes. Returns the buffer and how much of it is
/// used.
fn frame_header(n: usize) -> ([u8; 12], usize) {
    let mut h = [0u8; 12];
    match i32::try_from(n) {
        Ok(n) => {
            h[..4].copy_from_slice(&n.to_be_bytes());
            (h, 4)
        }
        Err(_) => {
            h[..4].copy_from_slice(&(-1i32).to_be_bytes());
            h[4..].copy_from_slice(&(n as u64).to_be_bytes());
            (h, 12)
        }
    }
}

fn eof_or(e: io::Error) -> ConnectionError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ConnectionError::Eof
    } else {
        ConnectionError::Io(e)
    }
}

/// Whether `fd` is readable (or at end of file, or in error) within
/// `timeout` (`None`: wait as long as it takes).
fn poll_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = mp_os::time::Deadline::after(timeout);
    loop {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let ts = deadline.remaining().map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One end of a connection made by a [`Listener`] or a [`Client`]: framed
/// messages over a socket (Python's `multiprocessing.connection.Connection`).
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
    stream: Stream,
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

    /// Sends `value`, encoded with this connection's [`Codec`], as one
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
    /// [`ConnectionError::Postcard`] or [`ConnectionError::Pickle`] when the
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
    /// [`Codec`] (Python's `recv`). Blocks until a message comes.
    ///
    /// # Errors
    ///
    /// [`ConnectionError::Eof`] when the peer has closed the connection,
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
    /// As [`recv`](Connection::recv); [`ConnectionError::Pickle`] when the
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
    /// [`ConnectionError::Eof`] when the peer has closed the connection
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
    /// [`ConnectionError::BadMessageLength`] when the message is longer
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
    /// [`ConnectionError::BufferTooShort`] with the whole message when it
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
    /// same). The peer's next receive gets [`ConnectionError::Eof`].
    pub fn close(self) {
        drop(self);
    }

    /// CPython's `deliver_challenge`: sends a `{sha256}` challenge and
    /// checks the answer.
    fn deliver_challenge(&self, authkey: &[u8]) -> Result<()> {
        let mut message = Vec::with_capacity(8 + MESSAGE_LENGTH);
        message.extend_from_slice(b"{sha256}");
        let mut random = [0u8; MESSAGE_LENGTH];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        message.extend_from_slice(&random);
        let mut challenge = CHALLENGE.to_vec();
        challenge.extend_from_slice(&message);
        self.send_bytes(&challenge)?;
        let response = self.recv_bytes_max(256)?;
        match verify_challenge(authkey, &message, &response) {
            Ok(()) => self.send_bytes(WELCOME),
            Err(e) => {
                let _ = self.send_bytes(FAILURE);
                Err(e)
            }
        }
    }

    /// CPython's `answer_challenge`: answers in the form the challenge
    /// used.
    fn answer_challenge(&self, authkey: &[u8]) -> Result<()> {
        let message = self.recv_bytes_max(256)?;
        let Some(message) = message.strip_prefix(CHALLENGE) else {
            return Err(auth_error(format!(
                "protocol error, expected a challenge, got {:?}",
                String::from_utf8_lossy(&message)
            )));
        };
        if message.len() < MD5ONLY_MESSAGE_LENGTH {
            return Err(auth_error(format!(
                "challenge too short: {} bytes",
                message.len()
            )));
        }
        let digest = create_response(authkey, message)?;
        self.send_bytes(&digest)?;
        let response = self.recv_bytes_max(256)?;
        if response != WELCOME {
            return Err(auth_error("digest sent was rejected".into()));
        }
        Ok(())
    }

    /// Runs the handshake within `timeout`; `listener_side` delivers the
    /// first challenge.
    fn authenticate(
        &self,
        authkey: &[u8],
        listener_side: bool,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.stream.set_read_timeout(timeout)?;
        self.stream.set_write_timeout(timeout)?;
        let r = if listener_side {
            self.deliver_challenge(authkey)
                .and_then(|()| self.answer_challenge(authkey))
        } else {
            self.answer_challenge(authkey)
                .and_then(|()| self.deliver_challenge(authkey))
        };
        let r = r.map_err(|e| match e {
            ConnectionError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                auth_error(format!(
                    "the peer did not finish the handshake within {timeout:?}"
                ))
            }
            ConnectionError::Eof => {
                auth_error("the peer closed the connection during the handshake".into())
            }
            e => e,
        });
        r?;
        self.stream.set_read_timeout(None)?;
        self.stream.set_write_timeout(None)?;
        Ok(())
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

/// [`wait`] on connections, as Python's `connection.wait`: ready when a
/// message (or end of file) can be read.
impl Waitable for Connection {
    fn is_ready(&self) -> bool {
        poll_readable(self.stream.fd(), Some(Duration::ZERO)).unwrap_or(true)
    }

    fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.stream.fd()
    }
}

// ---------------------------------------------------------------------------
// The handshake, as CPython's Lib/multiprocessing/connection.py.

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in a challenge sent from here (CPython 3.12's length).
const MESSAGE_LENGTH: usize = 40;
/// The challenge length of CPython 3.11 and older (no digest prefix).
const MD5ONLY_MESSAGE_LENGTH: usize = 20;
/// The bare HMAC-MD5 answer of CPython 3.11 and older.
const MD5_DIGEST_LEN: usize = 16;
/// The longest digest name CPython allows (`sha3_384`).
const MAX_DIGEST_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Md5,
    Sha256,
    Sha384,
}

impl Digest {
    fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
        }
    }

    fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length: this cannot fail.
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC accepts every key length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, message),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, message),
        }
    }
}

fn auth_error(msg: String) -> ConnectionError {
    ConnectionError::Authentication(msg)
}

/// CPython's `_get_digest_name_and_payload`: `None` for the legacy
/// unprefixed form (16 or 20 bytes), else the `{digest}` prefix.
fn digest_and_payload(message: &[u8]) -> Result<(Option<Digest>, &[u8])> {
    if message.len() == MD5ONLY_MESSAGE_LENGTH || message.len() == MD5_DIGEST_LEN {
        return Ok((None, message));
    }
    if message.first() == Some(&b'{') {
        let end = message.len().min(MAX_DIGEST_LEN + 2);
        if let Some(curly) = message[1..end].iter().position(|&b| b == b'}') {
            let curly = curly + 1;
            let digest = match &message[1..curly] {
                b"md5" => Some(Digest::Md5),
                b"sha256" => Some(Digest::Sha256),
                b"sha384" => Some(Digest::Sha384),
                b"sha3_256" | b"sha3_384" => {
                    return Err(auth_error(format!(
                        "digest {} is not supported here (md5, sha256, sha384 are)",
                        String::from_utf8_lossy(&message[1..curly])
                    )));
                }
                _ => None,
            };
            if let Some(d) = digest {
                return Ok((Some(d), &message[curly + 1..]));
            }
        }
    }
    Err(auth_error(
        "unsupported message length, missing digest prefix, or unsupported digest".into(),
    ))
}

/// CPython's `_create_response`.
fn create_response(authkey: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    match digest_and_payload(message)?.0 {
        None => Ok(Digest::Md5.hmac(authkey, message)),
        Some(d) => {
            let mut out = format!("{{{}}}", d.name()).into_bytes();
            out.extend_from_slice(&d.hmac(authkey, message));
            Ok(out)
        }
    }
}

/// CPython's `_verify_challenge`, in constant time.
fn verify_challenge(authkey: &[u8], message: &[u8], response: &[u8]) -> Result<()> {
    let (digest, mac) = digest_and_payload(response)?;
    let digest = digest.unwrap_or(Digest::Md5);
    let expected = digest.hmac(authkey, message);
    if expected.len() != mac.len() {
        return Err(auth_error(format!(
            "expected {} of length {}, got {}",
            digest.name(),
            expected.len(),
            mac.len()
        )));
    }
    let diff = expected
        .iter()
        .zip(mac)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(auth_error("digest received was wrong".into()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Listener and Client.

#[derive(Debug)]
enum ListenSocket {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A socket that accepts [`Connection`]s (Python's
/// `multiprocessing.connection.Listener`).
///
/// See the [module docs](self) for an example.
#[derive(Debug)]
pub struct Listener {
    socket: ListenSocket,
    address: Address,
    authkey: Option<Vec<u8>>,
    codec: Codec,
    auth_timeout: Option<Duration>,
}

/// Options of a [`Listener`]: the authkey, the codec of its connections,
/// the handshake deadline.
///
/// ```
/// use mp_channel::connection::{Codec, Listener};
/// let l = Listener::builder("127.0.0.1:0")
///     .authkey(b"key")
///     .codec(Codec::Pickle)
///     .bind()?;
/// assert!(matches!(l.address(), mp_channel::connection::Address::Tcp(a) if a.port() != 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ListenerBuilder {
    address: Address,
    authkey: Option<Vec<u8>>,
    codec: Codec,
    auth_timeout: Option<Duration>,
}

impl ListenerBuilder {
    /// Require clients to prove they know `key` (CPython's handshake).
    pub fn authkey(mut self, key: &[u8]) -> Self {
        self.authkey = Some(key.to_vec());
        self
    }

    /// The codec of accepted connections (default [`Codec::Postcard`];
    /// [`Codec::Pickle`] for Python clients).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// How long a client may take to finish the handshake (`None`: no
    /// limit, as Python). Default [`DEFAULT_AUTH_TIMEOUT`].
    pub fn auth_timeout(mut self, t: Option<Duration>) -> Self {
        self.auth_timeout = t;
        self
    }

    /// Binds and listens.
    ///
    /// # Errors
    ///
    /// `Io`: the address is in use (a Unix socket path that exists
    /// included, as in Python), not permitted, or cannot be resolved.
    pub fn bind(self) -> Result<Listener> {
        let (socket, address) = match &self.address {
            Address::Unix(p) => {
                let l = UnixListener::bind(p)?;
                (ListenSocket::Unix(l), self.address.clone())
            }
            Address::Abstract(name) => {
                let a = UnixAddr::from_abstract_name(name)?;
                let l = UnixListener::bind_addr(&a)?;
                (ListenSocket::Unix(l), self.address.clone())
            }
            Address::Tcp(a) => {
                let l = TcpListener::bind(a)?;
                let local = l.local_addr()?;
                (ListenSocket::Tcp(l), Address::Tcp(local))
            }
        };
        Ok(Listener {
            socket,
            address,
            authkey: self.authkey,
            codec: self.codec,
            auth_timeout: self.auth_timeout,
        })
    }
}

impl Listener {
    /// Listens at `address`; with `authkey`, every client must prove it
    /// knows the key (Python's `Listener(address, authkey=...)`).
    ///
    /// # Errors
    ///
    /// As [`ListenerBuilder::bind`].
    pub fn bind(address: impl Into<Address>, authkey: Option<&[u8]>) -> Result<Listener> {
        let mut b = Listener::builder(address);
        if let Some(k) = authkey {
            b = b.authkey(k);
        }
        b.bind()
    }

    /// A builder for a listener at `address`.
    pub fn builder(address: impl Into<Address>) -> ListenerBuilder {
        ListenerBuilder {
            address: address.into(),
            authkey: None,
            codec: Codec::Postcard,
            auth_timeout: Some(DEFAULT_AUTH_TIMEOUT),
        }
    }

    /// The address listened at (with the port chosen by the system when
    /// bound to port 0), Python's `address`.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Waits for a client, runs the handshake when the listener has an
    /// authkey, and returns the connection (Python's `accept()`).
    ///
    /// # Errors
    ///
    /// [`ConnectionError::Authentication`] when the client failed the
    /// handshake (wrong key, no answer within the deadline; the client's
    /// connection is closed and the listener stays usable), `Io` when
    /// `accept(2)` fails.
    pub fn accept(&self) -> Result<Connection> {
        let conn = match &self.socket {
            ListenSocket::Unix(l) => Connection::from(l.accept()?.0),
            ListenSocket::Tcp(l) => Connection::from(l.accept()?.0),
        }
        .with_codec(self.codec);
        if let Some(key) = &self.authkey {
            conn.authenticate(key, true, self.auth_timeout)?;
        }
        Ok(conn)
    }

    /// Closes the listener (dropping it does the same): a Unix socket
    /// file is removed.
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Address::Unix(p) = &self.address {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            ListenSocket::Unix(l) => l.as_fd(),
            ListenSocket::Tcp(l) => l.as_fd(),
        }
    }
}

/// [`wait`] on listeners: ready when a client is waiting to be accepted.
impl Waitable for Listener {
    fn is_ready(&self) -> bool {
        poll_readable(self.as_fd(), Some(Duration::ZERO)).unwrap_or(true)
    }

    fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

/// Connects to a [`Listener`] (or a CPython `Listener`): Python's
/// `multiprocessing.connection.Client`, as a builder.
///
/// ```no_run
/// use mp_channel::connection::{Client, Codec};
///
/// // A CPython `Listener(("127.0.0.1", 6000), authkey=b"secret")`:
/// let conn = Client::new("127.0.0.1:6000")
///     .authkey(b"secret")
///     .codec(Codec::Pickle)
///     .connect()?;
/// conn.send(&("hello", 1, 2.5))?; // a tuple on the Python side
/// # Ok::<(), mp_channel::connection::ConnectionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    address: Address,
    authkey: Option<Vec<u8>>,
    codec: Codec,
    auth_timeout: Option<Duration>,
}

impl Client {
    /// A client of `address`, without authkey, with [`Codec::Postcard`].
    pub fn new(address: impl Into<Address>) -> Client {
        Client {
            address: address.into(),
            authkey: None,
            codec: Codec::Postcard,
            auth_timeout: Some(DEFAULT_AUTH_TIMEOUT),
        }
    }

    /// Prove to the listener that we know `key`, and check that it does.
    pub fn authkey(mut self, key: &[u8]) -> Client {
        self.authkey = Some(key.to_vec());
        self
    }

    /// The codec of the connection ([`Codec::Pickle`] for a Python
    /// listener).
    pub fn codec(mut self, codec: Codec) -> Client {
        self.codec = codec;
        self
    }

    /// How long the listener may take to finish the handshake (`None`: no
    /// limit). Default [`DEFAULT_AUTH_TIMEOUT`].
    pub fn auth_timeout(mut self, t: Option<Duration>) -> Client {
        self.auth_timeout = t;
        self
    }

    /// Connects, and runs the handshake when an authkey was given.
    ///
    /// # Errors
    ///
    /// `Io` when connecting fails (nobody listens: `ECONNREFUSED` or
    /// `ENOENT`), [`ConnectionError::Authentication`] when the handshake
    /// fails (wrong key on either side, protocol error, no answer in time).
    pub fn connect(&self) -> Result<Connection> {
        let conn = match &self.address {
            Address::Unix(p) => Connection::from(UnixStream::connect(p)?),
            Address::Abstract(name) => {
                let a = UnixAddr::from_abstract_name(name)?;
                Connection::from(UnixStream::connect_addr(&a)?)
            }
            Address::Tcp(a) => Connection::from(TcpStream::connect(a)?),
        }
        .with_codec(self.codec);
        if let Some(key) = &self.authkey {
            conn.authenticate(key, false, self.auth_timeout)?;
        }
        Ok(conn)
    }
}

/// Python's `Client(address, authkey=authkey)`: connects with
/// [`Codec::Postcard`]; use [`Client`] for the other options.
///
/// # Errors
///
/// As [`Client::connect`].
pub fn client(address: impl Into<Address>, authkey: Option<&[u8]>) -> Result<Connection> {
    let mut c = Client::new(address);
    if let Some(k) = authkey {
        c = c.authkey(k);
    }
    c.connect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        let (h, n) = frame_header(5);
        assert_eq!(&h[..n], &[0, 0, 0, 5]);
        let (h, n) = frame_header(0x7fff_ffff);
        assert_eq!(&h[..n], &[0x7f, 0xff, 0xff, 0xff]);
        let (h, n) = frame_header(0x8000_0000);
        assert_eq!(
            &h[..n],
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]
        );
    }

    #[test]
    fn reads_the_extended_header() {
        use std::io::Write;
        let (a, mut b) = UnixStream::pair().unwrap();
        let a = Connection::from(a);
        b.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3])
            .unwrap();
        b.write_all(b"abc").unwrap();
        assert_eq!(a.recv_bytes().unwrap(), b"abc");
        b.write_all(&[0xff, 0xff, 0xff, 0xfe]).unwrap();
        assert!(matches!(a.recv_bytes(), Err(ConnectionError::Io(_))));
    }

    #[test]
    fn digest_parsing_follows_cpython() {
        assert_eq!(digest_and_payload(&[7; 20]).unwrap().0, None);
        assert_eq!(digest_and_payload(&[7; 16]).unwrap().0, None);
        let (d, p) =
            digest_and_payload(b"{sha256}0123456789012345678901234567890123456789").unwrap();
        assert_eq!(d, Some(Digest::Sha256));
        assert_eq!(p.len(), 40);
        assert!(digest_and_payload(b"{sha3_256}0123456789012345678901").is_err());
        assert!(digest_and_payload(b"{whirlpool}0123456789012345678901").is_err());
        assert!(digest_and_payload(&[7; 21]).is_err());
    }

    #[test]
    fn responses_take_the_challenge_form() {
        let legacy = [9u8; 20];
        assert_eq!(create_response(b"k", &legacy).unwrap().len(), 16);
        verify_challenge(b"k", &legacy, &create_response(b"k", &legacy).unwrap()).unwrap();
        let modern = b"{sha256}0123456789012345678901234567890123456789";
        let r = create_response(b"k", modern).unwrap();
        assert!(r.starts_with(b"{sha256}"));
        assert_eq!(r.len(), 8 + 32);
        verify_challenge(b"k", modern, &r).unwrap();
        // A legacy client's bare HMAC-MD5 of the prefixed message is accepted.
        verify_challenge(b"k", modern, &Digest::Md5.hmac(b"k", modern)).unwrap();
        assert!(verify_challenge(b"other", modern, &r).is_err());
        // Known answer (Python: hmac.new(b"key", b"The quick brown fox jumps over the lazy dog", "md5")).
        assert_eq!(
            Digest::Md5.hmac(b"key", b"The quick brown fox jumps over the lazy dog"),
            [
                0x80, 0x07, 0x07, 0x13, 0x46, 0x3e, 0x77, 0x49, 0xb9, 0x0c, 0x2d, 0xc2, 0x49, 0x11,
                0xe2, 0x75
            ]
        );
    }
}
