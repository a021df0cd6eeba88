//! Message passing between processes: [`Pipe`], [`Queue`], [`SimpleQueue`]
//! and [`JoinableQueue`], Python's `multiprocessing` channels rebuilt on
//! rings in shared memory.
//!
//! ```
//! use mp_channel::{pipe, Queue};
//!
//! let (parent, child) = pipe()?;
//! let q = Queue::<Vec<u32>>::new()?;
//! // In real use `child` and `q` travel to another process (they are serde
//! // values) or are inherited through fork.
//! child.send(&"ping")?;
//! assert_eq!(parent.recv::<String>()?, "ping");
//! q.put(vec![1, 2, 3])?;
//! assert_eq!(q.get()?, vec![1, 2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! * Values are postcard-encoded; `send_bytes`/`recv_bytes_into` skip
//!   serde. Every send is one message, never merged or split; a message
//!   larger than the ring is streamed through it.
//! * Blocking calls spin briefly, then sleep on a futex; nobody makes a
//!   system call when nobody sleeps. [`WaitMode`] selects busy-polling or
//!   no spinning instead.
//! * Every blocking call tells a dead peer from a slow one: a writer killed
//!   in the middle of a message leaves a record that readers skip; when
//!   every writer (reader) has gone, readers (writers) get `Disconnected`.
//! * [`wait`] waits on several pipe ends and queues (and processes) at once.
//! * [`connection`]: Python's `multiprocessing.connection` (`Listener`,
//!   `Client`) over Unix sockets and TCP, wire-compatible with CPython.
//! * With the `tokio` feature, `recv_async` and `get_async` await
//!   readability through the channel's eventfd.
//!
//! Linux only. A process sharing a channel may be buggy or hostile: it can
//! forge or destroy messages, or stall as a slow peer would, but whatever it
//! writes into the shared memory never makes this process access memory out
//! of bounds or panic, and a damaged control block is an error
//! ([`RecvError::Corrupt`], [`SendError::Corrupt`]) rather than a wait
//! without end.
//!
//! # Cargo features
//!
//! * `tokio` (off by default): `PipeEnd::recv_async` and
//!   `Queue::get_async`, which await the channel's eventfd through
//!   tokio's `AsyncFd` instead of blocking the thread.
//!
//! See the crate README for the ring's design and measured figures.

#![cfg(target_os = "linux")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(all(not(loom), feature = "tokio"))]
mod asyncio;
#[cfg(not(loom))]
mod attach;
#[cfg(not(loom))]
mod bytes;
#[cfg(not(loom))]
mod chan;
mod codec;
#[cfg(not(loom))]
pub mod connection;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod feed;
#[cfg(not(loom))]
mod handle_ops;
mod holders;
#[cfg(not(loom))]
mod pipe;
#[cfg(not(loom))]
mod queue;
mod ring;
mod sync;

#[cfg(not(loom))]
pub use crate::bytes::Bytes;
#[cfg(not(loom))]
pub use crate::error::{
    Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
#[cfg(not(loom))]
pub use crate::pipe::{DEFAULT_PIPE_CAPACITY, Pipe, PipeBuilder, PipeEnd, pipe};
#[cfg(not(loom))]
pub use crate::queue::{DEFAULT_QUEUE_CAPACITY, JoinableQueue, Queue, QueueBuilder, SimpleQueue};
pub use crate::ring::WaitMode;
pub use mp_os::wait::{Waitable, wait};

/// Logs (target `mp_channel`, level warn) that a reader skipped the record
/// a writer (liveness token `writer`) died while writing: the message is
/// lost. The `log_to_stderr` logger of `mp-proc` adds the process name.
#[cold]
pub(crate) fn log_dead_writer_skipped(writer: u32) {
    log::warn!(
        target: "mp_channel",
        "skipped a message whose writer (thread token {writer:#x}) died while writing it"
    );
}

/// Logs (target `mp_channel`, level warn) that a reader dropped a streamed
/// message its writer (liveness token `writer`) left unfinished: it died,
/// or gave up at its deadline.
#[cold]
pub(crate) fn log_stream_abandoned(writer: u32) {
    log::warn!(
        target: "mp_channel",
        "dropped a streamed message its writer (thread token {writer:#x}) left unfinished"
    );
}
