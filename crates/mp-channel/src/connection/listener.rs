//! [`Listener`](super::Listener): accepts connections and runs the handshake on each.

use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
use std::time::Duration;

use mp_os::wait::Waitable;

use super::DEFAULT_AUTH_TIMEOUT;
use super::address::{Address, Codec};
use super::error::Result;
use super::messages::Connection;
use super::socket::poll_readable;

#[derive(Debug)]
enum ListenSocket {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A socket that accepts [`Connection`](super::Connection)s (Python's
/// `multiprocessing.connection.Listener`).
///
/// See the [module docs](super) for an example.
#[derive(Debug)]
pub struct Listener {
    socket: ListenSocket,
    address: Address,
    authkey: Option<Vec<u8>>,
    codec: Codec,
    auth_timeout: Option<Duration>,
}

/// Options of a [`Listener`](super::Listener): the authkey, the codec of its connections,
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

    /// The codec of accepted connections (default [`Codec::Postcard`](super::Codec::Postcard);
    /// [`Codec::Pickle`](super::Codec::Pickle) for Python clients).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// How long a client may take to finish the handshake (`None`: no
    /// limit, as Python). Default [`DEFAULT_AUTH_TIMEOUT`](super::DEFAULT_AUTH_TIMEOUT).
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
    /// As [`ListenerBuilder::bind`](super::ListenerBuilder::bind).
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
    /// [`ConnectionError::Authentication`](super::ConnectionError::Authentication) when the client failed the
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

/// [`wait`](super::wait) on listeners: ready when a client is waiting to be accepted.
impl Waitable for Listener {
    fn is_ready(&self) -> bool {
        poll_readable(self.as_fd(), Some(Duration::ZERO)).unwrap_or(true)
    }

    fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}
