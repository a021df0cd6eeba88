//! `RawValue<T>` and `RawArray<T>`: shared memory without a lock.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::block::Block;
use crate::error::Error;
use crate::shm_safe::{AtomicShmSafe, ShmSafe, atomic_load, atomic_store};

const RVAL: [u8; 4] = *b"RVAL";
const RARR: [u8; 4] = *b"RARR";

/// A value in shared memory without a lock (Python's
/// `multiprocessing.RawValue`).
///
/// # Access rules
///
/// Other threads and processes may read and write the value at any moment,
/// so no safe method may do a plain (non-atomic) access — that would be a
/// data race. Hence:
///
/// * for element types that fit one atomic instruction
///   ([`AtomicShmSafe`]: integers up to 64 bits, `f32`, `f64`),
///   [`get`](RawValue::get) and [`set`](RawValue::set) are safe: relaxed
///   atomic loads and stores of the whole element (no tearing, no ordering
///   with other memory: use a lock or an `Event` to order);
/// * for every other [`ShmSafe`] type, use the `unsafe`
///   [`read`](RawValue::read) / [`write`](RawValue::write), whose callers
///   guarantee that nobody writes concurrently (an outside lock, a
///   hand-off through a queue, ...).
///
/// ```
/// let v = mp_shm::RawValue::new(1.5f64)?;
/// v.set(v.get() * 2.0);
/// assert_eq!(v.get(), 3.0);
/// # Ok::<(), mp_shm::Error>(())
/// ```
pub struct RawValue<T> {
    block: Block<T>,
}

impl<T> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            block: self.block.clone(),
        }
    }
}

impl<T: ShmSafe> RawValue<T> {
    /// Creates a shared value holding `v`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the segment cannot be created.
    pub fn new(v: T) -> Result<RawValue<T>, Error> {
        let block = Block::<T>::create(RVAL, 1)?;
        // SAFETY: the fresh segment holds one element and is not shared.
        unsafe { block.ptr().write(v) };
        Ok(RawValue { block })
    }

    /// Reads the value with a plain (possibly torn) copy.
    ///
    /// # Safety
    ///
    /// No thread of any process writes the value during the call.
    pub unsafe fn read(&self) -> T {
        // SAFETY: valid pointer; no concurrent writer by the caller's
        // contract; every bit pattern is a valid T.
        unsafe { self.block.ptr().read_volatile() }
    }

    /// Writes the value with a plain copy.
    ///
    /// # Safety
    ///
    /// No thread of any process reads or writes the value during the call.
    pub unsafe fn write(&self, v: T) {
        // SAFETY: valid pointer; exclusive by the caller's contract.
        unsafe { self.block.ptr().write_volatile(v) }
    }

    /// Pointer to the value in this process's mapping.
    pub fn as_ptr(&self) -> *mut T {
        self.block.ptr()
    }
}

impl<T: AtomicShmSafe> RawValue<T> {
    /// Reads the value (a relaxed atomic load).
    pub fn get(&self) -> T {
        // SAFETY: valid and aligned; every access from safe code is atomic.
        unsafe { atomic_load(self.block.ptr()) }
    }

    /// Writes the value (a relaxed atomic store).
    pub fn set(&self, v: T) {
        // SAFETY: as in `get`.
        unsafe { atomic_store(self.block.ptr(), v) }
    }
}

impl<T: ShmSafe> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawValue")
            .field("ptr", &self.as_ptr())
            .finish()
    }
}

impl<T> Serialize for RawValue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.block.serialize(s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let block = Block::deserialize_as(d, RVAL)?;
        if block.len() != 1 {
            return Err(serde::de::Error::custom(
                "a RawValue segment holds one element",
            ));
        }
        Ok(RawValue { block })
    }
}

/// A fixed-length array in shared memory without a lock (Python's
/// `multiprocessing.RawArray`). The [access rules](RawValue#access-rules)
/// of `RawValue` apply element by element. Indexes out of bounds panic.
///
/// ```
/// let a = mp_shm::RawArray::from_slice(&[1u32, 2, 3])?;
/// a.set(0, 10);
/// assert_eq!(a.to_vec(), [10, 2, 3]);
/// # Ok::<(), mp_shm::Error>(())
/// ```
pub struct RawArray<T> {
    block: Block<T>,
}

impl<T> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            block: self.block.clone(),
        }
    }
}

impl<T: ShmSafe> RawArray<T> {
    /// Creates an array of `len` zeroed elements.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the segment cannot be created;
    /// [`Error::InvalidArgument`] when it would not fit in memory.
    pub fn zeroed(len: usize) -> Result<RawArray<T>, Error> {
        Ok(RawArray {
            block: Block::create(RARR, len)?,
        })
    }

    /// Creates an array holding a copy of `items`.
    ///
    /// # Errors
    ///
    /// As [`zeroed`](RawArray::zeroed).
    pub fn from_slice(items: &[T]) -> Result<RawArray<T>, Error> {
        let a = RawArray::zeroed(items.len())?;
        // SAFETY: the fresh segment holds `items.len()` elements and is not
        // yet shared.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), a.block.ptr(), items.len()) };
        Ok(a)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.block.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn check(&self, i: usize) {
        let len = self.len();
        assert!(
            i < len,
            "index out of bounds: the len is {len} but the index is {i}"
        );
    }

    /// The elements as a slice.
    ///
    /// # Safety
    ///
    /// No thread of any process writes the elements while the slice lives.
    pub unsafe fn as_slice(&self) -> &[T] {
        // SAFETY: `len` valid elements; no writer by the caller's contract.
        unsafe { std::slice::from_raw_parts(self.block.ptr(), self.len()) }
    }

    /// The elements as a mutable slice.
    ///
    /// # Safety
    ///
    /// No other thread of any process reads or writes the elements while the
    /// slice lives, and this thread makes no other reference to them.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [T] {
        // SAFETY: `len` valid elements; exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.block.ptr(), self.len()) }
    }

    /// Reads element `i` with a plain copy.
    ///
    /// # Safety
    ///
    /// No thread of any process writes element `i` during the call.
    ///
    /// # Panics
    ///
    /// When `i >= len()`.
    pub unsafe fn read(&self, i: usize) -> T {
        self.check(i);
        // SAFETY: in bounds; no concurrent writer by the caller's contract.
        unsafe { self.block.ptr().add(i).read_volatile() }
    }

    /// Writes element `i` with a plain copy.
    ///
    /// # Safety
    ///
    /// No other thread of any process accesses element `i` during the call.
    ///
    /// # Panics
    ///
    /// When `i >= len()`.
    pub unsafe fn write(&self, i: usize, v: T) {
        self.check(i);
        // SAFETY: in bounds; exclusive by the caller's contract.
        unsafe { self.block.ptr().add(i).write_volatile(v) }
    }

    /// Pointer to the first element in this process's mapping.
    pub fn as_ptr(&self) -> *mut T {
        self.block.ptr()
    }
}

impl<T: AtomicShmSafe> RawArray<T> {
    /// Reads element `i` (a relaxed atomic load).
    ///
    /// # Panics
    ///
    /// When `i >= len()`.
    pub fn get(&self, i: usize) -> T {
        self.check(i);
        // SAFETY: in bounds and aligned; every access from safe code is atomic.
        unsafe { atomic_load(self.block.ptr().add(i)) }
    }

    /// Writes element `i` (a relaxed atomic store).
    ///
    /// # Panics
    ///
    /// When `i >= len()`.
    pub fn set(&self, i: usize, v: T) {
        self.check(i);
        // SAFETY: as in `get`.
        unsafe { atomic_store(self.block.ptr().add(i), v) }
    }

    /// Copies the elements out, each with a relaxed atomic load (the copy
    /// is not a snapshot of the whole array).
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

impl<T: ShmSafe> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T> Serialize for RawArray<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.block.serialize(s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RawArray {
            block: Block::deserialize_as(d, RARR)?,
        })
    }
}
