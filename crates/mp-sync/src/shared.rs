//! The handle plumbing every primitive shares: a segment plus the offset of
//! the raw object inside it, serialized as such and checked on the way in.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use mp_os::segment::{HEADER_SIZE, Segment};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A raw primitive that can live in shared memory behind a handle.
///
/// # Safety
///
/// The type is `#[repr(C)]`, starts with its tag as an `AtomicU32`, and is
/// valid for any bit pattern that its `new` could leave behind after other
/// processes used it through atomics only.
pub(crate) unsafe trait RawObject: Sync + Send + 'static {
    /// Magic of the segment header when the object owns its segment.
    const MAGIC: [u8; 4];
    /// The first word of the object: kind and layout version.
    const TAG: u32;
}

/// Layout version written in the segment header of an object that owns its
/// segment.
pub(crate) const VERSION: u32 = 2;

/// Builds a tag from four ASCII bytes (kind and version).
pub(crate) const fn tag(b: [u8; 4]) -> u32 {
    u32::from_le_bytes(b)
}

/// A segment and a pointer to a raw object inside it.
pub(crate) struct Shared<R> {
    seg: Segment,
    ptr: NonNull<R>,
    _marker: PhantomData<R>,
}

// SAFETY: the pointee is Sync + Send (atomics), and the segment, which keeps
// the mapping alive, is itself Send + Sync.
unsafe impl<R: RawObject> Send for Shared<R> {}
// SAFETY: as above; every access goes through `&R`.
unsafe impl<R: RawObject> Sync for Shared<R> {}

impl<R> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Shared {
            seg: self.seg.clone(),
            ptr: self.ptr,
            _marker: PhantomData,
        }
    }
}

impl<R: RawObject> Shared<R> {
    /// Creates an object segment holding `init`.
    pub(crate) fn create(init: R) -> std::io::Result<Self> {
        let seg = Segment::object(R::MAGIC, VERSION, size_of::<R>())?;
        let ptr = seg.payload().cast::<R>();
        // SAFETY: the payload is at least size_of::<R>() bytes, 64-byte
        // aligned, and not yet visible to anyone else.
        unsafe { ptr.write(init) };
        // SAFETY: a pointer into a live mapping is not null.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        Ok(Shared {
            seg,
            ptr,
            _marker: PhantomData,
        })
    }

    /// A handle onto an object at `offset` in `seg`.
    ///
    /// # Safety
    ///
    /// `offset` is in bounds and aligned for `R`, and the bytes there hold an
    /// `R` (initialized with its `new`) that every process uses only as an
    /// `R` for as long as the segment is mapped.
    pub(crate) unsafe fn from_segment(seg: Segment, offset: usize) -> Self {
        debug_assert!(Self::fits(&seg, offset));
        // SAFETY: in bounds by the caller's contract.
        let ptr = unsafe { NonNull::new_unchecked(seg.as_ptr().add(offset).cast::<R>()) };
        Shared {
            seg,
            ptr,
            _marker: PhantomData,
        }
    }

    fn fits(seg: &Segment, offset: usize) -> bool {
        offset.is_multiple_of(align_of::<R>())
            && offset
                .checked_add(size_of::<R>())
                .is_some_and(|end| end <= seg.len())
    }

    #[inline]
    pub(crate) fn get(&self) -> &R {
        // SAFETY: the pointer is in the mapping, which `self.seg` keeps alive,
        // and holds an `R` (created here or checked on deserialization).
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    pub(crate) fn offset(&self) -> usize {
        self.ptr.as_ptr() as usize - self.seg.as_ptr() as usize
    }

    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }
}

impl<R: RawObject> fmt::Debug for Shared<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("segment", &self.seg)
            .field("offset", &self.offset())
            .finish()
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    seg: &'a Segment,
    offset: u64,
}

#[derive(Deserialize)]
struct Wire {
    seg: Segment,
    offset: u64,
}

impl<R: RawObject> Serialize for Shared<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireRef {
            seg: &self.seg,
            offset: self.offset() as u64,
        }
        .serialize(s)
    }
}

impl<'de, R: RawObject> Deserialize<'de> for Shared<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let w = Wire::deserialize(d)?;
        let offset =
            usize::try_from(w.offset).map_err(|_| D::Error::custom("offset out of range"))?;
        if offset < HEADER_SIZE || !Self::fits(&w.seg, offset) {
            return Err(D::Error::custom(format!(
                "a {} handle points outside its shared segment",
                String::from_utf8_lossy(&R::MAGIC)
            )));
        }
        // SAFETY: in bounds and 4-byte aligned (R's alignment is at least
        // 4 since it starts with an AtomicU32); reading it atomically cannot
        // race with other processes' atomic accesses.
        let found =
            unsafe { (*w.seg.as_ptr().add(offset).cast::<AtomicU32>()).load(Ordering::Acquire) };
        if found != R::TAG {
            return Err(D::Error::custom(format!(
                "shared segment does not hold a {} of this layout version (tag {:#x}, expected {:#x})",
                String::from_utf8_lossy(&R::MAGIC),
                found,
                R::TAG
            )));
        }
        // SAFETY: bounds, alignment and tag checked above; the tag is written
        // only by `R::new`, so the object there is an `R`.
        Ok(unsafe { Self::from_segment(w.seg, offset) })
    }
}

/// Implements `Clone`, `Debug`-free plumbing for a handle type wrapping
/// `Shared<Raw>` in a field named `inner`: `Deref`, `Serialize`,
/// `Deserialize`, `ptr_eq`.
macro_rules! handle_impls {
    ($handle:ident, $raw:ty) => {
        impl std::ops::Deref for $handle {
            type Target = $raw;
            #[inline]
            fn deref(&self) -> &$raw {
                self.inner.get()
            }
        }

        impl serde::Serialize for $handle {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.inner.serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $handle {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($handle {
                    inner: crate::shared::Shared::deserialize(d)?,
                })
            }
        }

        impl $handle {
            /// Whether two handles refer to the same shared object in this
            /// process's mapping (clones do; a deserialized copy maps the
            /// same memory at another address and does not).
            pub fn ptr_eq(&self, other: &Self) -> bool {
                self.inner.ptr_eq(&other.inner)
            }
        }
    };
}
pub(crate) use handle_impls;
