//! The segment layout shared by `Value`, `Array`, `RawValue` and
//! `RawArray`.
//!
//! ```text
//! segment offset  size  field
//!              0    64  mp_os object header (magic VALU / ARRY / RVAL / RARR, version 3)
//!             64    24  RawRLock (Value and Array; zero and unused in the raw kinds);
//!                       its `pinned` word (offset 84) holds the liveness token of
//!                       the thread whose ValueGuard / ArrayGuard is alive (0: none),
//!                       so that a Condition wait refuses to release the lock under
//!                       it. With a chosen lock (`with_lock`) the RawRLock here is
//!                       unused but its `pinned` word is still this object's borrow
//!                       flag, and the chosen lock's own `pinned` word counts the
//!                       guards alive under it
//!             88     4  lock kind: 0 the RawRLock above, 1 a chosen RLock sent
//!                       beside the segment (Value and Array)
//!             92     4  reserved
//!             96     8  element size in bytes
//!            104     8  element alignment
//!            112     8  number of elements
//!            120     8  reserved
//!     max(128, align)   the elements, contiguous (aligned to their type)
//! ```

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use mp_os::segment::{HEADER_SIZE, Segment};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::shm_safe::ShmSafe;

/// Version 2 had no lock-kind word (always the embedded lock) and a
/// borrow flag of 0 or 1.
pub(crate) const VERSION: u32 = 3;
const BORROWED: usize = HEADER_SIZE + 20;
const LOCK_KIND: usize = HEADER_SIZE + 24;
const ELEM_SIZE: usize = HEADER_SIZE + 32;
const ELEM_ALIGN: usize = HEADER_SIZE + 40;
const LEN: usize = HEADER_SIZE + 48;
/// Segment offset of the `RawRLock`.
pub(crate) const LOCK_OFFSET: usize = HEADER_SIZE;

/// Segment offset of the elements for a type of alignment `align`.
fn data_offset(align: usize) -> usize {
    (HEADER_SIZE + 64).next_multiple_of(align)
}

/// A typed view of a value/array segment.
pub(crate) struct Block<T> {
    seg: Segment,
    data: NonNull<T>,
    len: usize,
    _marker: PhantomData<T>,
}

// SAFETY: the block only hands out data through methods whose callers
// synchronize (a lock, or atomics); the segment is Send + Sync.
unsafe impl<T: ShmSafe> Send for Block<T> {}
// SAFETY: as above.
unsafe impl<T: ShmSafe> Sync for Block<T> {}

impl<T> Clone for Block<T> {
    fn clone(&self) -> Self {
        Block {
            seg: self.seg.clone(),
            data: self.data,
            len: self.len,
            _marker: PhantomData,
        }
    }
}

impl<T: ShmSafe> Block<T> {
    /// A zeroed block of `len` elements (zero is a valid `T`).
    pub(crate) fn create(magic: [u8; 4], len: usize) -> Result<Block<T>, Error> {
        if align_of::<T>() > 4096 {
            return Err(Error::InvalidArgument("element alignment above 4096"));
        }
        let off = data_offset(align_of::<T>());
        let bytes = size_of::<T>()
            .checked_mul(len)
            .and_then(|b| b.checked_add(off - HEADER_SIZE))
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or(Error::InvalidArgument("array too large"))?;
        let seg = Segment::object(magic, VERSION, bytes)?;
        // SAFETY: the segment is at least `off + size*len` bytes (page
        // aligned) and not yet shared: plain writes of the metadata.
        unsafe {
            let base = seg.as_ptr();
            base.add(ELEM_SIZE)
                .cast::<u64>()
                .write(size_of::<T>() as u64);
            base.add(ELEM_ALIGN)
                .cast::<u64>()
                .write(align_of::<T>() as u64);
            base.add(LEN).cast::<u64>().write(len as u64);
        }
        Ok(Self::view(seg, len))
    }

    fn view(seg: Segment, len: usize) -> Block<T> {
        let off = data_offset(align_of::<T>());
        // SAFETY: `off` is inside the segment (checked by the callers).
        let data = unsafe { NonNull::new_unchecked(seg.as_ptr().add(off).cast::<T>()) };
        Block {
            seg,
            data,
            len,
            _marker: PhantomData,
        }
    }

    /// Checks a received segment: kind, version, element type and bounds.
    fn attach(seg: Segment, magic: [u8; 4]) -> Result<Block<T>, String> {
        seg.check(magic, VERSION).map_err(|e| e.to_string())?;
        if seg.len() < HEADER_SIZE + 64 {
            return Err("shared segment too small".into());
        }
        // SAFETY: in bounds (checked above); the metadata is written once
        // before the segment is shared, so plain reads do not race.
        let (size, align, len) = unsafe {
            let base = seg.as_ptr();
            (
                base.add(ELEM_SIZE).cast::<u64>().read(),
                base.add(ELEM_ALIGN).cast::<u64>().read(),
                base.add(LEN).cast::<u64>().read(),
            )
        };
        if size != size_of::<T>() as u64 || align != align_of::<T>() as u64 {
            return Err(format!(
                "shared segment holds elements of size {size} and alignment {align}, expected {} and {}",
                size_of::<T>(),
                align_of::<T>()
            ));
        }
        let len = usize::try_from(len).map_err(|_| "length out of range".to_string())?;
        let end = size_of::<T>()
            .checked_mul(len)
            .and_then(|b| b.checked_add(data_offset(align_of::<T>())))
            .ok_or_else(|| "length out of range".to_string())?;
        if end > seg.len() {
            return Err("shared array larger than its segment".into());
        }
        Ok(Self::view(seg, len))
    }

    pub(crate) fn deserialize_as<'de, D: Deserializer<'de>>(
        d: D,
        magic: [u8; 4],
    ) -> Result<Block<T>, D::Error> {
        let seg = Segment::deserialize(d)?;
        Self::attach(seg, magic).map_err(serde::de::Error::custom)
    }

    #[inline]
    pub(crate) fn ptr(&self) -> *mut T {
        self.data.as_ptr()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The lock-kind word of the synchronized kinds (0 embedded, 1 chosen).
    #[inline]
    pub(crate) fn lock_kind(&self) -> &AtomicU32 {
        // SAFETY: in bounds, 4-byte aligned, used only atomically.
        unsafe { &*self.seg.as_ptr().add(LOCK_KIND).cast::<AtomicU32>() }
    }

    /// The borrow flag of the synchronized kinds.
    #[inline]
    pub(crate) fn borrowed(&self) -> &AtomicU32 {
        // SAFETY: in bounds, 4-byte aligned, used only atomically.
        unsafe { &*self.seg.as_ptr().add(BORROWED).cast::<AtomicU32>() }
    }
}

impl<T> Serialize for Block<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.seg.serialize(s)
    }
}
