//! A typed object in a shared segment: how every crate above builds the
//! shared memory of a lock, a value or array, a channel.
//!
//! An [`Object<T>`] is a [`Segment`] and a `T` inside it, at a place that
//! was checked once, so that reading the `T` afterwards needs no further
//! check:
//!
//! * [`Object::create`] makes an object whose payload starts with `T`,
//!   followed by `tail` zeroed bytes that the owner lays out itself (array
//!   elements): in a slot of a shared [`arena`] when the
//!   payload is at most [`MAX_PAYLOAD`](crate::arena::MAX_PAYLOAD) bytes,
//!   in an object segment of its own (the 64-byte
//!   [`Header`](crate::segment::Header) with the kind's magic and layout
//!   version) otherwise, or always with [`Object::create_own`] (ring
//!   buffers, which are large and travel as their segment);
//! * [`Object::attach`] takes an object segment received from another
//!   process and checks it the way every kind needs: sealed against
//!   resizing, the magic and version of the kind, a payload large enough
//!   for `T`; [`Object::deserialize_as`] does the same for an object
//!   received as a serialized `Object` (its segment, or its arena slot);
//! * [`Object::part`] places another `T` inside an object's payload (a
//!   lock inside a value), holding the object as long as it lives;
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
//! // What another process does with the handle it received:
//! let bytes = postcard::to_allocvec(&c).unwrap();
//! let mut de = postcard::Deserializer::from_bytes(&bytes);
//! let twin = Object::<Counter>::deserialize_as(&mut de, COUNTER).unwrap();
//! assert_eq!(twin.head().hits.load(Ordering::Relaxed), 1);
//! let mut de = postcard::Deserializer::from_bytes(&bytes);
//! assert!(Object::<Counter>::deserialize_as(&mut de, Kind::new(*b"CNTR", 2)).is_err());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::arena::{self, SlotRef};
use crate::handle::{self, Fd};
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
    /// The object's segment, or its arena's.
    seg: Segment,
    ptr: NonNull<T>,
    /// Start and length of the payload (checked when made).
    base: NonNull<u8>,
    len: usize,
    /// The arena slot the object lives in, held as long as the handle.
    slot: Option<Arc<SlotRef>>,
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
            base: self.base,
            len: self.len,
            slot: self.slot.clone(),
            _marker: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Object<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("segment", &self.seg)
            .field("offset", &self.offset())
            .field("slot", &self.slot)
            .finish()
    }
}

fn invalid(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

impl<T: Plain> Object<T> {
    /// Creates an object of kind `kind`: `head`, then `tail` zeroed bytes
    /// (the payload is `size_of::<T>() + tail` bytes), in a slot of a
    /// shared [`arena`] when the payload fits in one, in an
    /// object segment of its own otherwise.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the size overflows; otherwise as
    /// [`Segment::object`].
    pub fn create(kind: Kind, head: T, tail: usize) -> io::Result<Object<T>> {
        let len = payload_size::<T>(tail)?;
        match arena::alloc(kind.magic, kind.version, len)? {
            Some(slot) => {
                let obj = Object::<T>::in_slot(slot, 0)?;
                // SAFETY: the slot's payload holds at least size_of::<T>()
                // bytes, 64-byte aligned, zeroed, and no other process or
                // thread can see it yet.
                unsafe { obj.ptr.as_ptr().write(head) };
                Ok(obj)
            }
            None => Object::create_own(kind, head, tail),
        }
    }

    /// As [`Object::create`], always in an object segment of its own (a
    /// channel's rings, which travel as their segment).
    ///
    /// ```
    /// use mp_os::object::{Kind, Object};
    ///
    /// let o = Object::create_own(Kind::new(*b"OWN!", 1), 5u64, 0)?;
    /// let twin = Object::<u64>::attach(o.segment().clone(), Kind::new(*b"OWN!", 1))?;
    /// assert_eq!(*twin.head(), 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Object::create`].
    pub fn create_own(kind: Kind, head: T, tail: usize) -> io::Result<Object<T>> {
        let len = payload_size::<T>(tail)?;
        let seg = Segment::object(kind.magic, kind.version, len)?;
        let obj = Object::<T>::in_segment(seg, HEADER_SIZE)?;
        // SAFETY: the payload holds at least size_of::<T>() bytes (the
        // segment is HEADER_SIZE + len bytes), is 64-byte aligned, and no
        // other process or thread can see the segment yet.
        unsafe { obj.ptr.as_ptr().write(head) };
        Ok(obj)
    }

    /// A `T` at `offset` bytes into the payload of a slot.
    fn in_slot(slot: Arc<SlotRef>, offset: usize) -> io::Result<Object<T>> {
        let (base, len) = (slot.payload(), slot.payload_len());
        let ptr = place::<T>(base, len, offset)?;
        Ok(Object {
            seg: slot.segment().clone(),
            ptr,
            base,
            len,
            slot: Some(slot),
            _marker: PhantomData,
        })
    }

    /// A `T` at segment offset `offset` (at least `HEADER_SIZE`) of `seg`.
    fn in_segment(seg: Segment, offset: usize) -> io::Result<Object<T>> {
        if seg.len() < HEADER_SIZE {
            return Err(no_room::<T>(offset, seg.len()));
        }
        let base = payload(&seg);
        let len = seg.payload_len();
        // Bounds against the whole mapping (an object placed with `at`
        // need not be inside the recorded payload).
        let room = seg.len() - HEADER_SIZE;
        let ptr = offset
            .checked_sub(HEADER_SIZE)
            .ok_or_else(|| no_room::<T>(offset, seg.len()))
            .and_then(|o| place::<T>(base, room, o).map_err(|_| no_room::<T>(offset, seg.len())))?;
        Ok(Object {
            seg,
            ptr,
            base,
            len,
            slot: None,
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
        Object::in_segment(seg, HEADER_SIZE)
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
        Object::in_segment(seg, offset)
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
    /// A `U` at `offset` bytes into this object's payload (the `T` is at
    /// offset 0), holding the object as long as it lives: a lock inside a
    /// value.
    ///
    /// ```
    /// use std::sync::atomic::AtomicU32;
    /// use mp_os::object::{Kind, Object};
    ///
    /// let o = Object::create(Kind::new(*b"PART", 1), 0u64, 8)?;
    /// let word = o.part::<AtomicU32>(8)?;
    /// assert_eq!(word.offset(), o.offset() + 8);
    /// assert!(o.part::<AtomicU32>(14).is_err()); // past the payload
    /// assert!(o.part::<AtomicU32>(2).is_err()); // misaligned
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidData` when the `U` would not lie wholly inside the payload,
    /// or would be misaligned. Whether the bytes there hold a `U` is the
    /// caller's to know.
    pub fn part<U: Plain>(&self, offset: usize) -> io::Result<Object<U>> {
        let ptr = place::<U>(self.base, self.len, offset)?;
        Ok(Object {
            seg: self.seg.clone(),
            ptr,
            base: self.base,
            len: self.len,
            slot: self.slot.clone(),
            _marker: PhantomData,
        })
    }

    /// The arena slot the object lives in, if it does.
    #[cfg(test)]
    pub(crate) fn slot(&self) -> Option<&Arc<SlotRef>> {
        self.slot.as_ref()
    }

    /// The segment the object lives in: its own, or its arena's.
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

    /// The payload length recorded in the segment's header or the arena
    /// slot, never more than the mapping holds (see
    /// [`Segment::payload_len`]).
    pub fn payload_len(&self) -> usize {
        self.len
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
        Some(unsafe { self.base.add(offset) })
    }

    /// Reads an object written by [`Object`]'s `Serialize` and attaches
    /// to it as [`Object::attach`] does (for an object in an arena slot:
    /// the slot still holds the object that was sent, of kind `kind`, with
    /// a payload large enough for `T`).
    ///
    /// # Errors
    ///
    /// As the segment's `Deserialize` and [`Object::attach`]; for an arena
    /// slot, when the object was freed meanwhile or is of another kind.
    pub fn deserialize_as<'de, D: Deserializer<'de>>(
        d: D,
        kind: Kind,
    ) -> Result<Object<T>, D::Error>
    where
        T: Plain,
    {
        Object::receive(d, Some(kind))
    }

    /// Reads an object written by [`Object`]'s `Serialize`, whatever its
    /// kind: a `T` placed inside another object (see [`Object::part`],
    /// [`Object::at`]), whose owner checks what the bytes hold (a tag).
    ///
    /// # Errors
    ///
    /// As [`Object::deserialize_as`], and when the `T` would lie outside
    /// the object or be misaligned.
    pub fn deserialize_any<'de, D: Deserializer<'de>>(d: D) -> Result<Object<T>, D::Error>
    where
        T: Plain,
    {
        Object::receive(d, None)
    }

    fn receive<'de, D: Deserializer<'de>>(d: D, kind: Option<Kind>) -> Result<Object<T>, D::Error>
    where
        T: Plain,
    {
        let offset =
            |o: u64| usize::try_from(o).map_err(|_| invalid("object offset out of range".into()));
        let r = match WireIn::deserialize(d)? {
            WireIn::Own { seg, offset: o } => offset(o).and_then(|o| match kind {
                Some(k) if o == 0 => Object::attach(seg, k),
                Some(_) => Err(invalid(
                    "an object handle at an offset of its segment".into(),
                )),
                None => Object::in_segment(seg, o.saturating_add(HEADER_SIZE)),
            }),
            WireIn::Slot {
                fd,
                index,
                era,
                ticket,
                offset: o,
            } => offset(o).and_then(|o| {
                let slot = arena::receive(fd.0, index, era, ticket)?;
                if let Some(k) = kind {
                    check_slot_kind::<T>(&slot, k)?;
                    if o != 0 {
                        return Err(invalid("an object handle at an offset of its slot".into()));
                    }
                }
                Object::in_slot(slot, o)
            }),
        };
        r.map_err(handle::attach_error)
    }
}

/// The kind and size of an arena slot, against what the receiver expects.
fn check_slot_kind<T>(slot: &SlotRef, kind: Kind) -> io::Result<()> {
    let (magic, version) = slot.kind();
    if magic != kind.magic {
        return Err(invalid(format!(
            "shared arena slot holds a {:?} object, expected {:?}",
            String::from_utf8_lossy(&magic),
            String::from_utf8_lossy(&kind.magic)
        )));
    }
    if version != kind.version {
        return Err(invalid(format!(
            "shared object layout version {version} (this build uses {})",
            kind.version
        )));
    }
    if slot.payload_len() < size_of::<T>() {
        return Err(invalid(format!(
            "a {:?} object of {} bytes is too small for its layout ({} bytes)",
            String::from_utf8_lossy(&kind.magic),
            slot.payload_len(),
            size_of::<T>()
        )));
    }
    Ok(())
}

/// How an [`Object`] travels: its own segment, or its arena's descriptor
/// and slot; with the offset of the `T` in the payload.
#[derive(Serialize)]
enum WireOut<'a> {
    Own {
        seg: &'a Segment,
        offset: u64,
    },
    Slot {
        #[serde(serialize_with = "arena_fd")]
        fd: (BorrowedFd<'a>, (u64, u64)),
        index: u32,
        era: u32,
        ticket: bool,
        offset: u64,
    },
}

#[derive(Deserialize)]
enum WireIn {
    Own {
        seg: Segment,
        offset: u64,
    },
    Slot {
        fd: Fd<OwnedFd>,
        index: u32,
        era: u32,
        ticket: bool,
        offset: u64,
    },
}

/// Written as its segment (see [`handle`]), or as its arena's descriptor
/// and slot (counted while it travels: see [`arena`]), with
/// the offset of the `T` in the object: the receiver attaches with
/// [`Object::deserialize_as`] (which checks the kind) or
/// [`Object::deserialize_any`].
impl<T> Serialize for Object<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let offset = (self.ptr.as_ptr() as usize - self.base.as_ptr() as usize) as u64;
        match &self.slot {
            None => WireOut::Own {
                seg: &self.seg,
                offset,
            }
            .serialize(s),
            Some(slot) => {
                arena::ticket(slot).map_err(serde::ser::Error::custom)?;
                let (fd, key, index, era) = slot.wire();
                let r = WireOut::Slot {
                    fd: (fd, key),
                    index,
                    era,
                    ticket: true,
                    offset,
                }
                .serialize(s);
                if r.is_err() {
                    // Nobody will receive it: as if it had been received.
                    arena::unticket(slot);
                }
                r
            }
        }
    }
}

/// An arena's descriptor: once per message, however many handles.
fn arena_fd<S: Serializer>(fd: &(BorrowedFd<'_>, (u64, u64)), s: S) -> Result<S::Ok, S::Error> {
    handle::serialize_shared_fd(fd.0, fd.1, s)
}

/// The payload size of a `T` and `tail` bytes.
fn payload_size<T>(tail: usize) -> io::Result<usize> {
    const { assert!(align_of::<T>() <= HEADER_SIZE) };
    size_of::<T>()
        .checked_add(tail)
        .filter(|&n| n <= isize::MAX as usize - HEADER_SIZE)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "object too large"))
}

/// A `T` at `offset` bytes of a payload of `len` bytes at `base`: in
/// bounds and aligned.
fn place<T>(base: NonNull<u8>, len: usize, offset: usize) -> io::Result<NonNull<T>> {
    let fits = offset
        .checked_add(size_of::<T>())
        .is_some_and(|end| end <= len)
        && (base.as_ptr() as usize + offset).is_multiple_of(align_of::<T>());
    if !fits {
        return Err(invalid(format!(
            "no room for a {}-byte object at offset {offset} of a {len}-byte shared payload",
            size_of::<T>()
        )));
    }
    // SAFETY: in bounds (checked above); a pointer into a live mapping is
    // not null.
    Ok(unsafe { base.add(offset).cast::<T>() })
}

fn no_room<T>(offset: usize, len: usize) -> io::Error {
    invalid(format!(
        "no room for a {}-byte object at offset {offset} of a {len}-byte shared segment",
        size_of::<T>()
    ))
}

/// The start of the payload of a segment that holds a header (created as
/// an object, checked, or long enough for a `T` after the header).
fn payload(seg: &Segment) -> NonNull<u8> {
    seg.payload()
        .expect("an object's segment is long enough for a header")
}

#[cfg(test)]
mod tests;
