//! [`ConnectionError`](super::ConnectionError), the one error type of the connection module.

use std::io;

/// An error of a [`Connection`](super::Connection), [`Listener`](super::Listener) or [`Client`](super::Client).
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
    /// [`Connection::recv_bytes_into`](super::Connection::recv_bytes_into) got a message longer than its
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

pub(crate) type Result<T, E = ConnectionError> = std::result::Result<T, E>;
