//! How handles that hold file descriptors travel between processes.
//!
//! Handles in this workspace (shared values, locks, queues, pipe ends,
//! segments) are serde values. Most of them are a shared-memory segment, and
//! a segment is a file descriptor. A descriptor cannot be written as bytes,
//! so serialization goes through one of two routes, decided here once for
//! every crate:
//!
//! 1. **Inside a transport** that can carry descriptors (the arguments of a
//!    new process, the bootstrap socket of a child, a manager connection),
//!    the sender wraps serialization in [`collect_fds`]: each descriptor is
//!    duplicated into a side table and only its index is written. The
//!    transport sends the table with `SCM_RIGHTS` (or lets a forked child
//!    inherit it), and the receiver wraps deserialization in
//!    [`provide_fds`], where each index takes its descriptor back.
//! 2. **Outside any transport** (a handle sent through a shared-memory queue,
//!    or serialized by a user), the sender writes its pid and descriptor
//!    number, and the receiver opens `/proc/PID/fd/N`. This re-opens a memfd
//!    or shared-memory object of a process of the same user while that
//!    process is alive; it does not work for sockets, and the error says so.
//!
//! ```
//! use std::os::fd::AsFd;
//! use mp_os::handle;
//!
//! let file = std::fs::File::open("/dev/null")?;
//! #[derive(serde::Serialize)]
//! struct Wrapper<'a>(#[serde(serialize_with = "ser")] std::os::fd::BorrowedFd<'a>);
//! fn ser<S: serde::Serializer>(fd: &std::os::fd::BorrowedFd<'_>, s: S) -> Result<S::Ok, S::Error> {
//!     handle::serialize_fd(*fd, s)
//! }
//! let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&Wrapper(file.as_fd())));
//! assert_eq!(fds.len(), 1); // the descriptor went to the side table
//! assert!(bytes.is_ok());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::RefCell;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    static SINK: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static SOURCE: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// The wire form of a descriptor inside a serialized handle.
#[derive(Serialize, Deserialize, Debug)]
enum WireFd {
    /// Index into the descriptor table sent beside the bytes.
    Passed(u32),
    /// Re-open `/proc/{pid}/fd/{fd}`.
    Proc { pid: u32, fd: i32 },
}

/// Runs `f` (which serializes handles) with a descriptor table installed,
/// and returns its result with the descriptors that the serialized bytes
/// refer to, in index order. Nested calls each get their own table.
pub fn collect_fds<R>(f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    let saved = SINK.with(|s| s.borrow_mut().replace(Vec::new()));
    let r = f();
    let fds = SINK
        .with(|s| std::mem::replace(&mut *s.borrow_mut(), saved))
        .unwrap_or_default();
    (r, fds)
}

/// Runs `f` (which deserializes handles) with `fds` as the descriptor table
/// that [`collect_fds`] produced on the sending side. Descriptors that `f`
/// does not take are closed when it returns.
pub fn provide_fds<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> R {
    let table = fds.into_iter().map(Some).collect();
    let saved = SOURCE.with(|s| s.borrow_mut().replace(table));
    let r = f();
    SOURCE.with(|s| *s.borrow_mut() = saved);
    r
}

/// Whether a descriptor table is being collected on this thread (a handle
/// that cannot travel by `/proc` can refuse early when it is not).
pub fn in_transport() -> bool {
    SINK.with(|s| s.borrow().is_some())
}

/// Serializes a descriptor as described in the module docs.
///
/// # Errors
///
/// The serializer's error, or a custom error if the descriptor cannot be
/// duplicated.
pub fn serialize_fd<S: Serializer>(fd: BorrowedFd<'_>, s: S) -> Result<S::Ok, S::Error> {
    let wire = SINK.with(|sink| -> Result<WireFd, std::io::Error> {
        let mut sink = sink.borrow_mut();
        match sink.as_mut() {
            Some(table) => {
                table.push(fd.try_clone_to_owned()?);
                Ok(WireFd::Passed((table.len() - 1) as u32))
            }
            None => Ok(WireFd::Proc {
                pid: std::process::id(),
                fd: fd.as_raw_fd(),
            }),
        }
    });
    match wire {
        Ok(w) => w.serialize(s),
        Err(e) => Err(serde::ser::Error::custom(format!(
            "cannot pass a file descriptor: {e}"
        ))),
    }
}

/// Deserializes a descriptor written by [`serialize_fd`].
///
/// # Errors
///
/// A custom error when the index is not in the table (a corrupt or foreign
/// message, or an index used twice), or when `/proc/PID/fd/N` cannot be
/// opened (the sender has exited, or the descriptor is a socket).
pub fn deserialize_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    use serde::de::Error;
    match WireFd::deserialize(d)? {
        WireFd::Passed(i) => SOURCE.with(|src| {
            let mut src = src.borrow_mut();
            let table = src.as_mut().ok_or_else(|| {
                D::Error::custom(
                    "a handle refers to a passed file descriptor, but none were received",
                )
            })?;
            table
                .get_mut(i as usize)
                .and_then(Option::take)
                .ok_or_else(|| D::Error::custom(format!("passed file descriptor #{i} is missing")))
        }),
        WireFd::Proc { pid, fd } => {
            let path = format!("/proc/{pid}/fd/{fd}");
            std::fs::OpenOptions::new().read(true).write(true).open(&path).map(OwnedFd::from).map_err(|e| {
                D::Error::custom(format!(
                    "cannot re-attach a handle through {path} ({e}); handles travel reliably in a \
                     process's arguments, and otherwise only while the sending process is alive"
                ))
            })
        }
    }
}
