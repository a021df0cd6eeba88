//! The handle plumbing every primitive shares: a raw object in shared
//! memory (`mp_os::object`: a slot of a shared arena, or a place in a
//! segment), serialized as the object plus the offset of the raw object
//! inside it and checked on the way in.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use mp_os::object::{Kind, Object, Plain};
use mp_os::segment::Segment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A raw primitive that can live in shared memory behind a handle.
///
/// # Safety
///
/// The type is [`Plain`] (any bits written by another process are a
/// value), `#[repr(C)]`, and starts with its tag as an `AtomicU32`.
pub(crate) unsafe trait RawObject: Plain {
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

/// A raw object in shared memory: an object of its own (`create`), or a
/// place inside another object (`within`) or segment (`from_segment`).
pub(crate) struct Shared<R> {
    obj: Object<R>,
}

impl<R> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Shared {
            obj: self.obj.clone(),
        }
    }
}

impl<R: RawObject> Shared<R> {
    /// Creates an object holding `init` (in a shared arena's slot).
    pub(crate) fn create(init: R) -> std::io::Result<Self> {
        let obj = Object::create(Kind::new(R::MAGIC, VERSION), init, 0)?;
        Ok(Shared { obj })
    }

    /// A handle onto an object at `offset` in `seg`.
    ///
    /// # Safety
    ///
    /// `offset` is in bounds and aligned for `R`, and the bytes there hold an
    /// `R` (initialized with its `new`) that every process uses only as an
    /// `R` for as long as the segment is mapped.
    ///
    /// # Panics
    ///
    /// When `offset` is out of bounds or misaligned after all.
    pub(crate) unsafe fn from_segment(seg: Segment, offset: usize) -> Self {
        let obj = Object::at(seg, offset).expect("a raw object in bounds (the caller's contract)");
        Shared { obj }
    }

    /// A handle onto an object at `offset` in the payload of `obj`, which
    /// it keeps alive.
    ///
    /// # Safety
    ///
    /// The bytes there hold an `R` (initialized with its `new`) that every
    /// process uses only as an `R` for as long as `obj` exists.
    ///
    /// # Panics
    ///
    /// When `offset` is out of bounds or misaligned.
    pub(crate) unsafe fn within<X>(obj: &Object<X>, offset: usize) -> Self {
        let obj = obj
            .part(offset)
            .expect("a raw object in bounds (the caller's contract)");
        Shared { obj }
    }

    #[inline]
    pub(crate) fn get(&self) -> &R {
        self.obj.head()
    }

    pub(crate) fn segment(&self) -> &Segment {
        self.obj.segment()
    }

    pub(crate) fn offset(&self) -> usize {
        self.obj.offset()
    }

    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        self.obj.ptr_eq(&other.obj)
    }
}

impl<R: RawObject> fmt::Debug for Shared<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("segment", self.segment())
            .field("offset", &self.offset())
            .finish()
    }
}

impl<R: RawObject> Serialize for Shared<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.obj.serialize(s)
    }
}

impl<'de, R: RawObject> Deserialize<'de> for Shared<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let obj = Object::<R>::deserialize_any(d)?;
        // SAFETY: an `R` starts with its tag, an AtomicU32 (`RawObject`);
        // reading it atomically cannot race with other processes' atomic
        // accesses.
        let found =
            unsafe { &*std::ptr::from_ref(obj.head()).cast::<AtomicU32>() }.load(Ordering::Acquire);
        if found != R::TAG {
            return Err(D::Error::custom(format!(
                "shared segment does not hold a {} of this layout version (tag {:#x}, expected {:#x})",
                String::from_utf8_lossy(&R::MAGIC),
                found,
                R::TAG
            )));
        }
        // The tag is written only by `R::new`: the object there is an `R`.
        Ok(Shared { obj })
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
            /// process's mapping (clones do, and so does a copy received
            /// in this process: an object in a shared arena is mapped
            /// once per process; one placed in a segment of its own with
            /// `from_segment` maps again at another address and does not).
            pub fn ptr_eq(&self, other: &Self) -> bool {
                self.inner.ptr_eq(&other.inner)
            }
        }
    };
}
pub(crate) use handle_impls;
