//! [`Client`](super::Client): connects to a listener and answers its handshake.

use std::net::TcpStream;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
use std::time::Duration;

use super::DEFAULT_AUTH_TIMEOUT;
use super::address::{Address, Codec};
use super::error::Result;
use super::messages::Connection;

/// Connects to a [`Listener`](super::Listener) (or a CPython `Listener`): Python's
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
    /// A client of `address`, without authkey, with [`Codec::Postcard`](super::Codec::Postcard).
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

    /// The codec of the connection ([`Codec::Pickle`](super::Codec::Pickle) for a Python
    /// listener).
    pub fn codec(mut self, codec: Codec) -> Client {
        self.codec = codec;
        self
    }

    /// How long the listener may take to finish the handshake (`None`: no
    /// limit). Default [`DEFAULT_AUTH_TIMEOUT`](super::DEFAULT_AUTH_TIMEOUT).
    pub fn auth_timeout(mut self, t: Option<Duration>) -> Client {
        self.auth_timeout = t;
        self
    }

    /// Connects, and runs the handshake when an authkey was given.
    ///
    /// # Errors
    ///
    /// `Io` when connecting fails (nobody listens: `ECONNREFUSED` or
    /// `ENOENT`), [`ConnectionError::Authentication`](super::ConnectionError::Authentication) when the handshake
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
/// [`Codec::Postcard`](super::Codec::Postcard); use [`Client`](super::Client) for the other options.
///
/// # Errors
///
/// As [`Client::connect`](super::Client::connect).
pub fn client(address: impl Into<Address>, authkey: Option<&[u8]>) -> Result<Connection> {
    let mut c = Client::new(address);
    if let Some(k) = authkey {
        c = c.authkey(k);
    }
    c.connect()
}
