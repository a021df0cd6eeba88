//! The crate's error type.

use std::io;

/// Everything that can go wrong in this crate.
///
/// ```
/// use mp_shm::{Error, SharedMemory};
///
/// let err = SharedMemory::attach("mp-shm-doc-no-such-name").unwrap_err();
/// assert!(matches!(err, Error::NotFound { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `SharedMemory::create` with a name that is taken.
    #[error("shared memory {name:?} already exists")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// `SharedMemory::attach` (or `unlink`) of a name that does not exist.
    #[error("no shared memory named {name:?}")]
    NotFound {
        /// The name.
        name: String,
    },
    /// `unlink` of a name this handle already unlinked.
    #[error("shared memory {name:?} was already unlinked")]
    AlreadyUnlinked {
        /// The name.
        name: String,
    },
    /// `unlink` through a handle that attached: only the creator unlinks.
    #[error(
        "shared memory {name:?} was attached, not created, by this handle: only its creator unlinks it"
    )]
    NotOwner {
        /// The name.
        name: String,
    },
    /// A shared-memory object of size 0.
    #[error("shared memory cannot have size 0")]
    ZeroSize,
    /// A name that is empty, too long, or contains `/` or NUL.
    #[error("invalid shared memory name {name:?}: use 1-250 characters without '/' or NUL")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A byte range outside the object.
    #[error("bytes {offset}..{end} are outside the {size}-byte shared memory")]
    OutOfBounds {
        /// Start of the range.
        offset: usize,
        /// End of the range.
        end: usize,
        /// Size of the object.
        size: usize,
    },
    /// `ShareableList::get` / `set` at an index past the end.
    #[error("index {index} out of range for a list of {len} items")]
    IndexOutOfRange {
        /// The index.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// A `str` or `bytes` value longer than its `ShareableList` slot
    /// (Python's "bytes/str item exceeds available storage").
    #[error("item {index} of {len} bytes exceeds the {capacity} bytes of its slot")]
    ItemTooLarge {
        /// The index.
        index: usize,
        /// The value's encoded length.
        len: usize,
        /// The slot's size.
        capacity: usize,
    },
    /// A block that does not hold a `ShareableList` in CPython's layout.
    #[error("shared memory {name:?} does not hold a ShareableList: {what}")]
    CorruptList {
        /// The block's name.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// A shape that does not fit the memory of an `ndarray` view (feature
    /// `ndarray`): an element count other than the array's, a view past
    /// the end of a `SharedMemory`, strides out of bounds.
    #[error("shape does not fit: {0}")]
    Shape(String),
    /// A `SharedMemory` offset that is not a multiple of the element
    /// type's alignment (feature `ndarray`).
    #[error("offset {offset} is not a multiple of the element alignment {align}")]
    Misaligned {
        /// The byte offset asked for.
        offset: usize,
        /// The alignment of the element type.
        align: usize,
    },
    /// An argument out of range (a too-large array, an alignment above 4096).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A lock error (a timeout or a non-blocking attempt that failed).
    #[error(transparent)]
    Sync(#[from] mp_sync::Error),
    /// The operating system refused.
    #[error("operating system error: {0}")]
    Os(#[from] io::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Lets `?` take a lock error from `get_lock().acquire()`; the guard is
/// dropped, which releases the lock.
impl<G> From<mp_sync::OwnerDied<G>> for Error {
    fn from(e: mp_sync::OwnerDied<G>) -> Error {
        Error::Sync(e.into())
    }
}

/// Lets `?` take a lock error from `get_lock().try_acquire()` and friends.
impl<G> From<mp_sync::TryAcquireError<G>> for Error {
    fn from(e: mp_sync::TryAcquireError<G>) -> Error {
        Error::Sync(e.into())
    }
}
