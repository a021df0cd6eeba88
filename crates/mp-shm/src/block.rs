//! The object layout shared by `Value`, `Array`, `RawValue` and
//! `RawArray`. A small object (a single value, a short array: a payload of
//! at most `mp_os::arena::MAX_PAYLOAD` bytes) lives in a slot of a shared
//! arena, whose 64-byte slot header takes the place of the object header
//! below (offsets are then from the start of the slot); a larger one has a
//! segment of its own.
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
//!
//! Offsets 64..128 are `Meta`, the head of an `mp_os::object::Object`:
//! kind, version and the payload's size are checked there, the element
//! type and count here.

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use mp_os::object::{Kind, Object, Plain};
use mp_os::segment::HEADER_SIZE;
use serde::{Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::shm_safe::ShmSafe;

/// Version 2 had no lock-kind word (always the embedded lock) and a
/// borrow flag of 0 or 1.
pub(crate) const VERSION: u32 = 3;
/// Offset of the `RawRLock` in the object's payload (segment offset 64).
pub(crate) const LOCK_OFFSET: usize = 0;
/// Word of the `RawRLock` that is the borrow flag (its `pinned` word, at
/// byte 20).
const BORROWED: usize = 5;

/// The fixed part of the payload (segment offsets 64..128 above).
#[repr(C)]
struct Meta {
    /// The `RawRLock`, as seen from here: six words, of which this file
    /// only touches the borrow flag (`mp-sync` owns the rest).
    lock: [AtomicU32; 6],
    lock_kind: AtomicU32,
    _reserved: u32,
    elem_size: AtomicU64,
    elem_align: AtomicU64,
    len: AtomicU64,
    _reserved2: u64,
}

const _: () = assert!(size_of::<Meta>() == 64);

// SAFETY: repr(C), integers and atomics only: any bits are a Meta (and
// `attach` checks the element size, alignment and count against the
// segment before they are used).
unsafe impl Plain for Meta {}

/// Segment offset of the elements for a type of alignment `align`.
fn data_offset(align: usize) -> usize {
    (HEADER_SIZE + 64).next_multiple_of(align)
}

/// A typed view of a value/array segment.
pub(crate) struct Block<T> {
    obj: Object<Meta>,
    data: NonNull<T>,
    len: usize,
    _marker: PhantomData<T>,
}

// SAFETY: the block only hands out data through methods whose callers
// synchronize (a lock, or atomics); the object is Send + Sync.
unsafe impl<T: ShmSafe> Send for Block<T> {}
// SAFETY: as above.
unsafe impl<T: ShmSafe> Sync for Block<T> {}

impl<T> Clone for Block<T> {
    fn clone(&self) -> Self {
        Block {
            obj: self.obj.clone(),
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
        let tail = size_of::<T>()
            .checked_mul(len)
            .and_then(|b| b.checked_add(off - HEADER_SIZE - size_of::<Meta>()))
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or(Error::InvalidArgument("array too large"))?;
        let meta = Meta {
            lock: Default::default(),
            lock_kind: AtomicU32::new(0),
            _reserved: 0,
            elem_size: AtomicU64::new(size_of::<T>() as u64),
            elem_align: AtomicU64::new(align_of::<T>() as u64),
            len: AtomicU64::new(len as u64),
            _reserved2: 0,
        };
        let kind = Kind::new(magic, VERSION);
        // An arena slot's payload is 64-byte aligned, a segment's
        // page-aligned: more aligned elements need a segment.
        let obj = if align_of::<T>() <= HEADER_SIZE {
            Object::create(kind, meta, tail)?
        } else {
            Object::create_own(kind, meta, tail)?
        };
        Self::view(obj, len).map_err(|_| Error::InvalidArgument("array too large"))
    }

    /// The elements of a checked object.
    fn view(obj: Object<Meta>, len: usize) -> Result<Block<T>, String> {
        let bytes = size_of::<T>()
            .checked_mul(len)
            .ok_or_else(|| "length out of range".to_string())?;
        let data = obj
            .region(data_offset(align_of::<T>()) - HEADER_SIZE, bytes)
            .ok_or_else(|| "shared array larger than its segment".to_string())?;
        if !(data.as_ptr() as usize).is_multiple_of(align_of::<T>()) {
            return Err("shared array elements misaligned for their type".to_string());
        }
        Ok(Block {
            obj,
            data: data.cast::<T>(),
            len,
            _marker: PhantomData,
        })
    }

    /// Checks a received object (whose kind, version and size were
    /// checked): element type and bounds.
    fn checked(obj: Object<Meta>) -> Result<Block<T>, String> {
        // The metadata is written once before the segment is shared.
        let m = obj.head();
        let (size, align, len) = (
            m.elem_size.load(Relaxed),
            m.elem_align.load(Relaxed),
            m.len.load(Relaxed),
        );
        if size != size_of::<T>() as u64 || align != align_of::<T>() as u64 {
            return Err(format!(
                "shared segment holds elements of size {size} and alignment {align}, expected {} and {}",
                size_of::<T>(),
                align_of::<T>()
            ));
        }
        let len = usize::try_from(len).map_err(|_| "length out of range".to_string())?;
        Self::view(obj, len)
    }

    pub(crate) fn deserialize_as<'de, D: Deserializer<'de>>(
        d: D,
        magic: [u8; 4],
    ) -> Result<Block<T>, D::Error> {
        let obj = Object::<Meta>::deserialize_as(d, Kind::new(magic, VERSION))?;
        Self::checked(obj).map_err(serde::de::Error::custom)
    }

    #[inline]
    pub(crate) fn ptr(&self) -> *mut T {
        self.data.as_ptr()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The object: its payload starts with the `RawRLock` (offsets 64..88
    /// above).
    pub(crate) fn object(&self) -> &Object<impl Plain> {
        &self.obj
    }

    /// The lock-kind word of the synchronized kinds (0 embedded, 1 chosen).
    #[inline]
    pub(crate) fn lock_kind(&self) -> &AtomicU32 {
        &self.obj.head().lock_kind
    }

    /// The borrow flag of the synchronized kinds.
    #[inline]
    pub(crate) fn borrowed(&self) -> &AtomicU32 {
        &self.obj.head().lock[BORROWED]
    }
}

impl<T> Serialize for Block<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.obj.serialize(s)
    }
}
