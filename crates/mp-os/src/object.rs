//! A typed object in a shared segment: how every crate above builds the
//! shared memory of a lock, a value or array, a channel.
//!
//! An [`Object<T>`] is a [`Segment`] and a `T` inside it, at a place that
//! was checked once, so that reading the `T` afterwards needs no further
//! check:
//!
//! * [`Object::create`] makes an object segment (the 64-byte [`Header`](crate::segment::Header)
//!   with the kind's magic and layout version) whose payload starts with
//!   `T`, followed by `tail` zeroed bytes that the owner lays out itself
//!   (ring buffers, array elements);
//! * [`Object::attach`] takes a segment received from another process and
//!   checks it the way every kind needs: sealed against resizing, the
//!   magic and version of the kind, a payload large enough for `T`;
//! * [`Object::at`] places a `T` at an offset of some other segment (a lock
//!   inside a value's segment): in bounds, aligned, after the header.
//!
//! What goes beyond (a channel's ring sizes, an array's element type) the
//! owner checks against [`Object::payload_len`] and reaches with
//! [`Object::region`], which is bounds-checked too. The `T` and its
//! layout are documented in the file that owns the kind.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use mp_os::object::{Kind, Object, Plain};
//!
//! #[repr(C)]
//! struct Counter {
//!     hits: AtomicU32,
//!     limit: u32,
//! }
//! // SAFETY: repr(C), integers and atomics only: any bits are a Counter.
//! unsafe impl Plain for Counter {}
//!
//! const COUNTER: Kind = Kind::new(*b"CNTR", 1);
//! let c = Object::create(COUNTER, Counter { hits: AtomicU32::new(0), limit: 9 }, 0)?;
//! c.head().hits.fetch_add(1, Ordering::Relaxed);
//!
//! // What another process does with the segment it received:
//! let twin = Object::<Counter>::attach(c.segment().clone(), COUNTER)?;
//! assert_eq!(twin.head().hits.load(Ordering::Relaxed), 1);
//! assert!(Object::<Counter>::attach(c.segment().clone(), Kind::new(*b"CNTR", 2)).is_err());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handle;
use crate::segment::{HEADER_SIZE, Segment};

/// A type that may be read from memory that other processes write.
///
/// # Safety
///
/// * `#[repr(C)]` (or a primitive, or an array of such types), with an
///   alignment of at most 64 (an object's payload starts 64 bytes into a
///   page-aligned mapping);
/// * no pointers, references or file descriptors: they mean nothing in
///   another process;
/// * every bit pattern is a valid value, since a peer may write anything:
///   integers, atomics, arrays of them (no `bool`, `char`, enums or
///   `NonZero*`);
/// * shared through `&T`: fields that change after the object is shared
///   are atomics (or live in `UnsafeCell`s that the owner synchronizes).
pub unsafe trait Plain: Sync + Send + Sized + 'static {}

macro_rules! plain {
    ($($t:ty),*) => {
        $(
            // SAFETY: a primitive: any bits are a value, no pointers.
            unsafe impl Plain for $t {}
        )*
    };
}
plain!(u8, u16, u32, u64, i8, i16, i32, i64);
plain!(
    std::sync::atomic::AtomicU8,
    std::sync::atomic::AtomicU16,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicI64
);
// SAFETY: an array of `Plain` values is `Plain` (same alignment, no gaps).
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

/// The kind of an object: the magic and layout version its segment
/// header carries (see [`segment`](crate::segment)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// Four ASCII bytes naming the kind.
    pub magic: [u8; 4],
    /// Layout version of the kind; bumped whenever the layout changes.
    pub version: u32,
}

impl Kind {
    /// The kind `magic` at layout version `version`.
    pub const fn new(magic: [u8; 4], version: u32) -> Kind {
        Kind { magic, version }
    }
}

/// A `T` in a shared segment, at a place checked once (see the module
/// docs). Cloning shares the mapping.
///
/// Sharing memory with another process means trusting it with these bytes:
/// it can write anything into them (which [`Plain`] makes harmless to
/// read) and change them at any moment (which the owner's protocol, on
/// atomics, copes with).
pub struct Object<T> {
    seg: Segment,
    ptr: NonNull<T>,
    _marker: PhantomData<T>,
}

// SAFETY: `T: Plain` is Send + Sync and shared through `&T`; the segment,
// which keeps the mapping alive, is Send + Sync.
unsafe impl<T: Plain> Send for Object<T> {}
// SAFETY: as above.
unsafe impl<T: Plain> Sync for Object<T> {}

impl<T> Clone for Object<T> {
    fn clone(&self) -> Self {
        Object {
            seg: self.seg.clone(),
            ptr: self.ptr,
            _marker: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Object<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("segment", &self.seg)
            .field("offset", &self.offset())
            .finish()
    }
}

fn invalid(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

impl<T: Plain> Object<T> {
    /// Creates an anonymous object segment of kind `kind`: the header, then
    /// `head`, then `tail` zeroed bytes (the payload is
    /// `size_of::<T>() + tail` bytes).
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the size overflows; otherwise as
    /// [`Segment::object`].
    pub fn create(kind: Kind, head: T, tail: usize) -> io::Result<Object<T>> {
        const { assert!(align_of::<T>() <= HEADER_SIZE) };
        let len = size_of::<T>()
            .checked_add(tail)
            .filter(|&n| n <= isize::MAX as usize - HEADER_SIZE)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "object too large"))?;
        let seg = Segment::object(kind.magic, kind.version, len)?;
        let ptr = payload(&seg).cast::<T>();
        // SAFETY: the payload holds at least size_of::<T>() bytes (the
        // segment is HEADER_SIZE + len bytes), is 64-byte aligned, and no
        // other process or thread can see the segment yet.
        unsafe { ptr.as_ptr().write(head) };
        Ok(Object {
            seg,
            ptr,
            _marker: PhantomData,
        })
    }

    /// Attaches to an object segment received from another process:
    /// checks that it is sealed against resizing, that its header names
    /// `kind` (magic and version), and that its payload holds a `T`.
    ///
    /// # Errors
    ///
    /// `InvalidData` when any check fails (see [`Segment::check`]).
    pub fn attach(seg: Segment, kind: Kind) -> io::Result<Object<T>> {
        const { assert!(align_of::<T>() <= HEADER_SIZE) };
        seg.check(kind.magic, kind.version)?;
        if seg.payload_len() < size_of::<T>() {
            return Err(invalid(format!(
                "a {:?} object of {} bytes is too small for its layout ({} bytes)",
                String::from_utf8_lossy(&kind.magic),
                seg.payload_len(),
                size_of::<T>()
            )));
        }
        let ptr = payload(&seg).cast::<T>();
        Ok(Object {
            seg,
            ptr,
            _marker: PhantomData,
        })
    }

    /// A `T` at `offset` bytes into `seg`, an object placed inside another
    /// object's segment (a lock inside a value's segment).
    ///
    /// ```
    /// use std::sync::atomic::AtomicU64;
    /// use mp_os::object::Object;
    /// use mp_os::segment::{HEADER_SIZE, Segment};
    ///
    /// let seg = Segment::object(*b"TWO!", 1, 16)?;
    /// let second = Object::<AtomicU64>::at(seg.clone(), HEADER_SIZE + 8)?;
    /// assert_eq!(second.offset(), HEADER_SIZE + 8);
    /// assert!(Object::<AtomicU64>::at(seg.clone(), HEADER_SIZE + 4).is_err()); // misaligned
    /// assert!(Object::<AtomicU64>::at(seg, 4).is_err()); // in the header
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidData` when the `T` would not lie wholly inside the segment
    /// after its header, or would be misaligned. Whether the bytes there
    /// hold a `T` is the caller's to know (a tag, a field of the
    /// enclosing object).
    pub fn at(seg: Segment, offset: usize) -> io::Result<Object<T>> {
        let fits = offset >= HEADER_SIZE
            && offset.is_multiple_of(align_of::<T>())
            && offset
                .checked_add(size_of::<T>())
                .is_some_and(|end| end <= seg.len());
        if !fits {
            return Err(invalid(format!(
                "no room for a {}-byte object at offset {offset} of a {}-byte shared segment",
                size_of::<T>(),
                seg.len()
            )));
        }
        // SAFETY: in bounds (checked above); a pointer into a live mapping
        // is not null.
        let ptr = unsafe { NonNull::new_unchecked(seg.as_ptr().add(offset).cast::<T>()) };
        Ok(Object {
            seg,
            ptr,
            _marker: PhantomData,
        })
    }

    /// The `T`.
    #[inline]
    pub fn head(&self) -> &T {
        // SAFETY: in bounds and aligned (checked when `self` was made); the
        // mapping lives as long as `self.seg`; any bits are a `T` (`Plain`).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Object<T> {
    /// The segment the object lives in.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The `T` as a raw pointer, for an owner that lays out more after it
    /// (valid for the whole mapping, like [`Segment::as_ptr`]; bounds are
    /// the owner's to check, as [`Object::region`] does).
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Where the `T` starts, in bytes from the start of the segment.
    pub fn offset(&self) -> usize {
        self.ptr.as_ptr() as usize - self.seg.as_ptr() as usize
    }

    /// Whether two handles share the same `T` in this process's mapping.
    pub fn ptr_eq(&self, other: &Object<T>) -> bool {
        self.ptr == other.ptr
    }

    /// The payload length recorded in the segment's header, never more
    /// than the mapping holds (see [`Segment::payload_len`]).
    pub fn payload_len(&self) -> usize {
        self.seg.payload_len()
    }

    /// `len` bytes at `offset` bytes into the payload (the `T` of an
    /// object made by [`create`](Object::create) or
    /// [`attach`](Object::attach) is at offset 0): a pointer that may be
    /// used for those bytes as long as the segment is mapped, or `None`
    /// when they are not all inside the payload. `len` may be 0.
    ///
    /// ```
    /// use mp_os::object::{Kind, Object};
    ///
    /// let o = Object::create(Kind::new(*b"TAIL", 1), 0u64, 100)?;
    /// assert!(o.region(8, 100).is_some());
    /// assert!(o.region(8, 101).is_none());
    /// assert!(o.region(usize::MAX, 2).is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn region(&self, offset: usize, len: usize) -> Option<NonNull<u8>> {
        let end = offset.checked_add(len)?;
        if end > self.payload_len() {
            return None;
        }
        // SAFETY: `offset + len` is within the payload, which is within the
        // mapping (`payload_len` is never more than it holds).
        Some(unsafe { payload(&self.seg).add(offset) })
    }

    /// Reads an object written by [`Object`]'s `Serialize` and attaches
    /// to it as [`Object::attach`] does.
    ///
    /// # Errors
    ///
    /// As the segment's `Deserialize` and [`Object::attach`].
    pub fn deserialize_as<'de, D: Deserializer<'de>>(
        d: D,
        kind: Kind,
    ) -> Result<Object<T>, D::Error>
    where
        T: Plain,
    {
        let seg = Segment::deserialize(d)?;
        Object::attach(seg, kind).map_err(handle::attach_error)
    }
}

/// Written as its segment (see [`handle`]): the receiver attaches with
/// [`Object::deserialize_as`], which checks the kind. An object placed
/// with [`Object::at`] carries no offset: its owner writes that itself.
impl<T> Serialize for Object<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.seg.serialize(s)
    }
}

/// The start of the payload of a segment that holds a header (created as
/// an object, checked, or long enough for a `T` after the header).
fn payload(seg: &Segment) -> NonNull<u8> {
    seg.payload()
        .expect("an object's segment is long enough for a header")
}

#[cfg(test)]
mod tests;
