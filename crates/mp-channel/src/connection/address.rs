//! Where a connection goes ([`Address`](super::Address)) and how it encodes values
//! ([`Codec`](super::Codec)).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where a [`Listener`](super::Listener) listens and a [`Client`](super::Client) connects.
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

/// How [`Connection::send`](super::Connection::send) and [`Connection::recv`](super::Connection::recv) encode values.
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
