//! `SharedBuf`: a byte buffer in a segment of its own that moves between
//! processes by handle, without copying its bytes.
//!
//! ```text
//! segment offset  size  field
//!              0    64  mp_os object header (magic SBUF, version 1)
//!             64     8  length of the buffer in bytes (u64), written once
//!                       before the segment is shared
//!             72     8  transfer word (AtomicU64): generation << 1 | in_transit.
//!                       Sending stores (generation + 1) << 1 | 1; the one
//!                       receiver that swaps it back to (generation + 1) << 1
//!                       owns the buffer, every other decoding of the same
//!                       message fails
//!             80    48  reserved (zero)
//!            128   len  the bytes
//! ```
//!
//! The buffer has one owner at a time. Sending it (serializing it into a
//! `Queue`, a `Pipe` or a process's arguments) gives ownership away: the
//! sender's handle can no longer reach the bytes, and exactly one decoding
//! of the message takes ownership on the other side. That is what makes
//! `&mut [u8]` access safe without a lock, as for an owned `Vec<u8>`.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};

use mp_os::segment::{HEADER_SIZE, Segment};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

const MAGIC: [u8; 4] = *b"SBUF";
const VERSION: u32 = 1;
/// Segment offset of the length word.
const LEN: usize = HEADER_SIZE;
/// Segment offset of the transfer word.
const TRANSFER: usize = HEADER_SIZE + 8;
/// Segment offset of the bytes.
const DATA: usize = HEADER_SIZE + 64;

/// A byte buffer in shared memory that a `Queue` or `Pipe` carries by
/// handle: putting a 64 MiB `SharedBuf` sends a few dozen bytes, and the
/// receiver maps the very pages the sender wrote (Python's out-of-band
/// pickle buffers; iceoryx2's loaned samples).
///
/// Write it in place like a `Vec<u8>` (it derefs to `[u8]`), then send it.
/// Sending gives it away: afterwards the sender's value can only be
/// dropped (any access panics), and only one receiver can take it, so the
/// bytes always have a single owner. Its memory goes back to the system
/// when the last process holding it drops it or dies; nothing is left in
/// `/dev/shm`.
///
/// ```
/// use mp_shm::SharedBuf;
///
/// let mut buf = SharedBuf::new(1 << 20)?;
/// buf[..5].copy_from_slice(b"hello");
/// assert_eq!(&buf[..5], b"hello");
/// assert_eq!(buf.len(), 1 << 20);
///
/// // What a Queue or Pipe does with it: the message holds a handle.
/// let msg = postcard::to_allocvec(&buf).unwrap();
/// assert!(msg.len() < 100);
/// let got: SharedBuf = postcard::from_bytes(&msg).unwrap();
/// assert_eq!(&got[..5], b"hello");
/// // The same message cannot be taken twice.
/// assert!(postcard::from_bytes::<SharedBuf>(&msg).is_err());
/// # Ok::<(), mp_shm::Error>(())
/// ```
///
/// # Errors and panics
///
/// Receiving fails (a decode error of the channel) when the message does
/// not name a `SharedBuf` segment, when its length does not fit the
/// segment, or when the buffer was already taken by an earlier decoding of
/// the same message. Using a `SharedBuf` after it was serialized panics;
/// serializing it twice is an error.
pub struct SharedBuf {
    seg: Segment,
    data: NonNull<u8>,
    len: usize,
    /// Set once this handle has been serialized: the bytes belong to the
    /// receiver from then on.
    sent: AtomicBool,
}

// SAFETY: a SharedBuf is the only owner of its bytes (see the module docs):
// `&mut` access needs `&mut self`, `&` access reads only, exactly as for a
// `Box<[u8]>`. The segment handle itself is Send + Sync.
unsafe impl Send for SharedBuf {}
// SAFETY: as above.
unsafe impl Sync for SharedBuf {}

impl SharedBuf {
    /// A zeroed buffer of `len` bytes in a new shared segment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `len` is too large to map;
    /// [`Error::Os`] when the segment cannot be created.
    pub fn new(len: usize) -> Result<SharedBuf, Error> {
        let payload = len
            .checked_add(DATA - HEADER_SIZE)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or(Error::InvalidArgument("buffer too large"))?;
        let seg = Segment::object(MAGIC, VERSION, payload)?;
        // SAFETY: the segment holds DATA + len bytes and nobody else sees
        // it yet: a plain write of the length.
        unsafe { seg.as_ptr().add(LEN).cast::<u64>().write(len as u64) };
        Ok(SharedBuf::view(seg, len))
    }

    /// A buffer holding a copy of `bytes`.
    ///
    /// ```
    /// let buf = mp_shm::SharedBuf::from_slice(b"abc")?;
    /// assert_eq!(&*buf, b"abc");
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`SharedBuf::new`].
    pub fn from_slice(bytes: &[u8]) -> Result<SharedBuf, Error> {
        let mut buf = SharedBuf::new(bytes.len())?;
        buf.copy_from_slice(bytes);
        Ok(buf)
    }

    fn view(seg: Segment, len: usize) -> SharedBuf {
        // SAFETY: DATA is inside the mapping (its length is at least
        // DATA + len, checked by the callers), so the pointer is non-null.
        let data = unsafe { NonNull::new_unchecked(seg.as_ptr().add(DATA)) };
        SharedBuf {
            seg,
            data,
            len,
            sent: AtomicBool::new(false),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this handle was sent (serialized): its bytes now belong to
    /// the receiver, and any access panics.
    pub fn is_sent(&self) -> bool {
        self.sent.load(Relaxed)
    }

    #[track_caller]
    fn check_owned(&self) {
        assert!(
            !self.is_sent(),
            "SharedBuf used after it was sent: its bytes belong to the receiver"
        );
    }

    fn transfer(&self) -> &AtomicU64 {
        // SAFETY: in bounds (DATA > TRANSFER + 8), 8-byte aligned (page
        // aligned mapping), and only ever accessed atomically.
        unsafe { &*self.seg.as_ptr().add(TRANSFER).cast::<AtomicU64>() }
    }
}

impl Deref for SharedBuf {
    type Target = [u8];

    /// # Panics
    ///
    /// If the buffer was sent.
    fn deref(&self) -> &[u8] {
        self.check_owned();
        // SAFETY: `len` bytes from `data` are mapped for the life of the
        // segment; nobody else writes them while we own the buffer.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }
}

impl DerefMut for SharedBuf {
    /// # Panics
    ///
    /// If the buffer was sent.
    fn deref_mut(&mut self) -> &mut [u8] {
        self.check_owned();
        // SAFETY: as in `deref`, and `&mut self` makes this the only access
        // in this process.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for SharedBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for SharedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for SharedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBuf")
            .field("len", &self.len)
            .field("sent", &self.is_sent())
            .finish()
    }
}

/// Sends the handle and a transfer ticket; gives the bytes away.
impl Serialize for SharedBuf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.sent.swap(true, AcqRel) {
            return Err(S::Error::custom("this SharedBuf was already sent"));
        }
        let word = self.transfer();
        let ticket = ((word.load(Acquire) >> 1) + 1) << 1 | 1;
        word.store(ticket, Release);
        (&self.seg, ticket).serialize(s)
    }
}

/// Attaches to the segment and takes the buffer; fails for a message that
/// was already taken.
impl<'de> Deserialize<'de> for SharedBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (seg, ticket) = <(Segment, u64)>::deserialize(d)?;
        seg.check(MAGIC, VERSION).map_err(D::Error::custom)?;
        if seg.len() < DATA {
            return Err(D::Error::custom("SharedBuf segment too small"));
        }
        // SAFETY: in bounds (checked above); written once before sharing.
        let len = unsafe { seg.as_ptr().add(LEN).cast::<u64>().read() };
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= seg.len() - DATA)
            .ok_or_else(|| D::Error::custom("SharedBuf longer than its segment"))?;
        let buf = SharedBuf::view(seg, len);
        if ticket & 1 == 0
            || buf
                .transfer()
                .compare_exchange(ticket, ticket & !1, AcqRel, Acquire)
                .is_err()
        {
            // Drop without touching the bytes: someone else owns them.
            buf.sent.store(true, Relaxed);
            return Err(D::Error::custom(
                "this SharedBuf was already received (a message decoded twice)",
            ));
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_large_buffers() {
        let b = SharedBuf::new(0).unwrap();
        assert!(b.is_empty());
        assert_eq!(&*b, b"");
        let msg = postcard::to_allocvec(&b).unwrap();
        let got: SharedBuf = postcard::from_bytes(&msg).unwrap();
        assert!(got.is_empty());
        assert!(matches!(
            SharedBuf::new(usize::MAX),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_received_buffer_can_be_sent_on() {
        let mut a = SharedBuf::from_slice(&[1, 2, 3]).unwrap();
        a[0] = 9;
        let m1 = postcard::to_allocvec(&a).unwrap();
        assert!(a.is_sent());
        assert!(postcard::to_allocvec(&a).is_err(), "sent twice");
        let mut b: SharedBuf = postcard::from_bytes(&m1).unwrap();
        b[1] = 8;
        let m2 = postcard::to_allocvec(&b).unwrap();
        // The first message's ticket is stale now.
        assert!(postcard::from_bytes::<SharedBuf>(&m1).is_err());
        let c: SharedBuf = postcard::from_bytes(&m2).unwrap();
        assert_eq!(&*c, &[9, 8, 3]);
    }

    #[test]
    #[should_panic(expected = "used after it was sent")]
    fn access_after_sending_panics() {
        let b = SharedBuf::new(4).unwrap();
        let _msg = postcard::to_allocvec(&b).unwrap();
        let _ = b[0];
    }

    #[test]
    fn another_kind_of_segment_is_refused() {
        let seg = Segment::object(*b"RARR", 3, 4096).unwrap();
        let msg = postcard::to_allocvec(&(&seg, 3u64)).unwrap();
        let err = postcard::from_bytes::<SharedBuf>(&msg).unwrap_err();
        assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
    }
}
