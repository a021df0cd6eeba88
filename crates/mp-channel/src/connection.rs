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

mod address;
mod client;
mod error;
mod handshake;
mod listener;
mod messages;
mod socket;

#[cfg(test)]
mod tests;

pub use address::{Address, Codec};
pub use client::{Client, client};
pub use error::ConnectionError;
pub use listener::{Listener, ListenerBuilder};
pub use messages::Connection;
pub use mp_os::wait::wait;
/// The `serde-pickle` crate: [`pickle::Value`] holds any plain Python value.
pub use serde_pickle as pickle;

use std::time::Duration;

/// How long the handshake may take by default.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(30);
